"""Transport addresses, and where a response goes (RFC 3261 18.2.2, RFC 3581 section 4).

Sans-I/O: the values here name sockets, they never open one.  :class:`Peer` is a remote
transport address, :class:`Listener` one of ours, :class:`Inbound` a message as it arrived.
:func:`reply_address` is the one place of the rule that sends a response back along its
Via: over the request's connection when there is one, to ``received``:``rport`` behind a
NAT (RFC 3581), else to the Via's sent-by.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ["Peer", "Listener", "Inbound", "parse_listen", "is_ip", "reply_address", "target_of",
           "TRANSPORTS", "default_port"]

#: the transports a SIP URI or Via may name that we speak
TRANSPORTS = frozenset(("udp", "tcp", "tls"))


def default_port(transport: str) -> int:
    """RFC 3261 19.1.2 / RFC 3263: 5061 for TLS, 5060 for the others."""
    return 5061 if transport == "tls" else 5060


@functools.lru_cache(maxsize=4096)
def is_ip(host: str) -> bool:
    """True for an IPv4 or IPv6 address (``[v6]`` too); remembered: hosts repeat."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


class Peer(NamedTuple):
    """A remote transport address: ``Peer("udp", "192.0.2.1", 5060)``.

    A named tuple rather than a frozen dataclass: one is made per datagram received and per
    response sent, and a frozen dataclass's ``__init__`` cost several times as much."""

    transport: str
    host: str
    port: int

    def __str__(self) -> str:
        return address_text(self.transport, self.host, self.port)

    @classmethod
    def parse(cls, text: str) -> Peer:
        """Inverse of ``str()``: ``tcp:1.2.3.4:5060`` or ``udp:[::1]:5060``."""
        transport, _, rest = text.partition(":")
        host, _, port = rest.rpartition(":")
        if host.startswith("["):
            host = host[1:-1]
        if transport not in TRANSPORTS or not host or not port.isdigit():
            raise ValueError(f"not a transport address: {text!r}")
        return cls(transport, host, int(port))


@dataclass(frozen=True)
class Listener:
    """One configured listen address (``udp:127.0.0.1:5060``)."""

    transport: str
    host: str
    port: int

    def __str__(self) -> str:
        return address_text(self.transport, self.host, self.port)


def address_text(transport: str, host: str, port: int) -> str:
    """``transport:host:port``, an IPv6 host in brackets (how addresses are stored and logged)."""
    return f"{transport}:[{host}]:{port}" if ":" in host else f"{transport}:{host}:{port}"


def parse_listen(spec: str) -> Listener:
    """``udp:HOST:PORT`` -> :class:`Listener` (the config validator already checked it)."""
    transport, _, rest = spec.partition(":")
    host, _, port = rest.rpartition(":")
    if host.startswith("["):
        host = host[1:-1]
    return Listener(transport.lower(), host, int(port))


class Inbound:
    """A message as it arrived: bytes, who sent it, on which listener, over which connection
    (opaque here: the runtime's)."""

    __slots__ = ("data", "source", "listener", "connection", "reply_to", "via")

    def __init__(self, data: bytes, source: Peer, listener: Listener, connection: Any = None) -> None:
        self.data = data
        self.source = source
        self.listener = listener
        self.connection = connection
        #: where responses to this request go, worked out once from its top Via (by the edge)
        self.reply_to: Peer | None = None
        #: a request's top Via, parsed and stamped with received/rport (by the edge)
        self.via: Any = None

    def __repr__(self) -> str:
        return f"<Inbound from {self.source} on {self.listener}, {len(self.data)} bytes>"


def reply_address(via: Any, source: Peer | None = None) -> Peer | None:
    """Where a response with top Via ``via`` goes (RFC 3261 18.2.2, RFC 3581 4).

    ``source``: where the request came from, when known.  A request that came over a
    connection is answered over it; one that asked for ``rport`` is answered to the address
    and port it came from.  Otherwise the response goes to ``received`` (else the sent-by
    host) and the sent-by port.  Without ``source`` (a stray 2xx relayed along its Via) the
    Via alone decides: its transport, and its ``received``/``rport`` as we stamped them.
    None when the Via names no address we can send to."""
    rport = via.rport
    if source is not None:
        if source.transport != "udp" or rport is not None:
            return source
        transport = "udp"
    else:
        transport = via.transport.lower()
        if transport not in TRANSPORTS:
            return None
    host = via.received or via.host.strip("[]")
    if not is_ip(host):
        if source is None:
            return None
        host = source.host
    if type(rport) is int:
        port = rport
    else:
        port = via.port or default_port(transport)
    return Peer(transport, host, port)


def target_of(uri: Any) -> tuple[str, str, int] | None:
    """``(transport, host, port)`` a request for SIP URI ``uri`` goes to, before any DNS:
    ``maddr`` over the host, the ``transport`` parameter (TLS for sips), the default port
    (RFC 3261 19.1.2; RFC 3263's SRV and NAPTR steps are the resolver's).  None for a URI
    we cannot send to (not SIP, no host, a transport we do not speak)."""
    if not uri.is_sip or not uri.host:
        return None
    transport = uri.transport or ("tls" if uri.scheme.lower() == "sips" else "udp")
    if transport not in TRANSPORTS:
        return None
    return transport, (uri.maddr or uri.host).strip("[]"), uri.port or default_port(transport)
