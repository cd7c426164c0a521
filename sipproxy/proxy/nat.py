"""NAT tests (RFC 3581) and the NATed-contact fix of a proxy.

One NAT test, used wherever the platform asks "is this party behind a NAT?" (the ``nat``
media relay policy, the Contact fix of a forwarded request): the request's top Via, as the
edge stamped it with ``received``/``rport``, shows a sent-by other than where the request
came from, or its SDP names a private address.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any

from sipproxy.sip.addressing import Peer
from sipproxy.sip.parser import Request, Response
from sipproxy.sip.uri import ParseError

__all__ = ["sender_behind_nat", "via_shows_nat", "fix_nated_contact"]


_PRIVATE = [ipaddress.ip_network(n) for n in
            ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")]


@functools.lru_cache(maxsize=4096)
def _private(text: str) -> bool:
    """``text`` is a private (RFC 1918 / RFC 6598 / ULA) address; remembered: phones repeat."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return False
    return any(addr in net for net in _PRIVATE)


def sender_behind_nat(req: Request, via: Any = None) -> bool:
    """The NAT test of the ``nat`` media policy: the top Via's sent-by differs from where the
    request came from (``received``/``rport`` as the core stamped them), or the SDP names a
    private address."""
    if via_shows_nat(req, via):
        return True
    body = req.body
    if not body:
        return False
    # the lines that begin with ``c=IN IP``, found without splitting the body into lines
    pos = body.find(b"c=IN IP")
    while pos >= 0:
        if pos == 0 or body[pos - 1] == 10:  # at a line's start (after "\n")
            end = body.find(b"\n", pos)
            line = body[pos:] if end < 0 else body[pos:end]
            if _private(line.split()[-1].split(b"/")[0].decode("ascii", "replace")):
                return True
        pos = body.find(b"c=IN IP", pos + 7)
    return False


def fix_nated_contact(msg: Request | Response, public: Peer) -> bool:
    """Point the single Contact of ``msg`` at ``public`` (where the NATed party really is),
    so in-dialog requests to it reach it.  True when changed."""
    try:
        contacts = msg.contacts
    except ParseError:
        return False
    if not isinstance(contacts, list) or len(contacts) != 1 or not contacts[0].uri.is_sip:
        return False
    contact = contacts[0].copy()
    host = f"[{public.host}]" if ":" in public.host else public.host
    if contact.uri.host == host and contact.uri.port == public.port:
        return False
    contact.uri.host, contact.uri.port = host, public.port
    msg.headers.set("Contact", str(contact))
    return True


def via_shows_nat(req: Request, via: Any = None) -> bool:
    """The top Via's sent-by is not where the request came from (after the core stamped
    ``received``/``rport``; ``via``: that stamped top Via, when the caller has it)."""
    if via is None:
        try:
            via = req.vias[0]
        except (ParseError, IndexError):
            return False
    received = via.received
    if received and received != via.host.strip("[]"):
        return True
    rport = via.rport
    return isinstance(rport, int) and rport is not True and rport != (via.port or 5060)
