"""What routing asks of DNS, as `typing.Protocol` s, and the records DNS hands back.

The routing code is sans-I/O: it never imports a resolver.  The runtime implements these
interfaces (:class:`sipproxy.runtime.dns.DnsResolver`, on dnspython and gevent) and a test
passes a double.

* :class:`Resolver` -- the three questions the routing pipeline asks: the SIP URIs of an
  E.164 number (ENUM, RFC 6116), the ordered transport addresses of a SIP URI (RFC 3263),
  the addresses of a host name;
* :class:`DnsLookup` -- the record look-ups that the RFC 3263 decisions of
  :mod:`sipproxy.routing.locate` are made from (NAPTR, SRV, A/AAAA);
* :class:`Naptr`, :class:`Srv` -- plain records (text, not dnspython objects).
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from sipproxy.sip.addressing import Peer
from sipproxy.sip.uri import URI

__all__ = ["Naptr", "Srv", "DnsLookup", "Resolver"]


class Naptr(NamedTuple):
    """A NAPTR record (RFC 3403 section 4.1); text fields decoded, ``replacement`` without
    its trailing dot ("" for the root, ".")."""

    order: int
    preference: int
    flags: str
    service: str
    regexp: str
    replacement: str


class Srv(NamedTuple):
    """An SRV record (RFC 2782); ``target`` without its trailing dot ("" for ".")."""

    priority: int
    weight: int
    port: int
    target: str


class DnsLookup(Protocol):
    """Record look-ups: an empty list when the name has none (NXDOMAIN, no data, or the
    servers did not answer in time).  Never raises."""

    def naptr(self, name: str) -> list[Naptr]: ...

    def srv(self, name: str) -> list[Srv]: ...

    def address(self, host: str) -> list[str]: ...


class Resolver(Protocol):
    """What the routing pipeline asks of DNS.  Never raises: no answer is an empty list."""

    def enum(self, e164: str) -> list[str]:
        """The SIP URIs (text, most preferred first) that ENUM maps ``e164`` (``+CC...``) to,
        from the first configured ENUM tree that has any; [] when none does."""
        ...

    def locate(self, uri: URI) -> list[Peer]:
        """The transport addresses to try for a request to SIP/SIPS ``uri``, in failover
        order (RFC 3263); [] when it cannot be located."""
        ...

    def address(self, host: str) -> list[str]:
        """The IP addresses of ``host`` (an IP address is its own answer)."""
        ...
