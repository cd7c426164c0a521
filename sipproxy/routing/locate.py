"""Locating SIP servers (RFC 3263 section 4): from a SIP URI to the transport addresses
to try, in failover order.  Sans-I/O: the records come through a
:class:`sipproxy.routing.resolver.DnsLookup`.

The target is the URI's ``maddr``, else its host.  Then (RFC 3263 4.1 and 4.2):

1. an IP address: no DNS; the ``transport`` parameter, else UDP (TLS for ``sips:``), and
   the URI's port, else the transport's default (5060, 5061 for TLS);
2. an explicit port: no NAPTR or SRV; the target's addresses (A, else AAAA) on that port;
3. a ``transport`` parameter: SRV of ``_sip._udp``, ``_sip._tcp`` or ``_sips._tcp`` (TLS)
   under the target, else its addresses on the default port;
4. NAPTR records of the target with service ``SIP+D2U``, ``SIP+D2T`` or ``SIPS+D2T`` (only
   ``SIPS+D2T`` for a ``sips:`` URI), flag ``s`` and no regexp, of transports we speak, in
   ORDER then PREFERENCE: the SRV records their replacement names, the first that gives
   addresses decides the transport;
5. without such NAPTR records (or none whose SRV answered): SRV of ``_sip._udp``,
   ``_sip._tcp``, ``_sips._tcp`` (only ``_sips._tcp`` for ``sips:``), the first found wins;
6. no SRV at all: the target's addresses, UDP (TLS for ``sips:``) on the default port.  An
   SRV answer whose only target is ``.`` (RFC 2782: decidedly not available) ends the
   search with no address.

SRV records are ordered by :func:`order_srv` (RFC 2782: priority ascending; within one
priority a weighted random order, zero weights first), each target's addresses follow
each other, and an address seen before is not repeated.  The random source is a parameter
so that tests can seed it.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable

from sipproxy.routing.resolver import DnsLookup, Naptr, Srv
from sipproxy.sip.addressing import TRANSPORTS, Peer, default_port, is_ip
from sipproxy.sip.uri import URI

__all__ = ["locate", "order_srv", "sip_naptrs", "srv_name", "NAPTR_SERVICES", "SRV_ORDER"]

#: NAPTR service -> our transport (RFC 3263 section 4.1)
NAPTR_SERVICES = {"sip+d2u": "udp", "sip+d2t": "tcp", "sips+d2t": "tls"}
#: SRV service prefix of each transport (RFC 3263 4.1)
_SRV_PREFIX = {"udp": "_sip._udp", "tcp": "_sip._tcp", "tls": "_sips._tcp"}
#: the order in which SRV records are asked for when there is no NAPTR record
SRV_ORDER = ("udp", "tcp", "tls")


def srv_name(transport: str, target: str) -> str:
    """``_sip._udp.example.com`` and the like."""
    return f"{_SRV_PREFIX[transport]}.{target}"


def sip_naptrs(records: Iterable[Naptr], secure: bool = False,
               transports: Collection[str] = TRANSPORTS) -> list[tuple[str, str]]:
    """The usable NAPTR records of RFC 3263 4.1 as ``(transport, SRV name)``, in ORDER then
    PREFERENCE.  Records of other services, flags or with a regexp are left out, as are
    transports not in ``transports``; for ``sips:`` only ``SIPS+D2T`` remains."""
    usable = []
    for rec in records:
        try:
            transport = NAPTR_SERVICES.get(rec.service.lower())
            if (transport is None or transport not in transports or rec.flags.lower() != "s"
                    or rec.regexp or rec.replacement in ("", ".")):
                continue
            if secure and transport != "tls":
                continue
            usable.append((rec.order, rec.preference, transport, rec.replacement.rstrip(".")))
        except (AttributeError, TypeError):
            continue
    usable.sort(key=lambda r: (r[0], r[1]))
    return [(transport, name) for _, _, transport, name in usable]


def order_srv(records: Iterable[Srv], rng: random.Random | None = None) -> list[Srv]:
    """RFC 2782's order: by priority ascending; within one priority, repeatedly pick a
    record at random with probability proportional to its weight (the zero-weight ones
    placed first, so they are picked only when the draw is 0).  Records with target "."
    are left out."""
    rng = rng or random.Random()
    groups: dict[int, list[Srv]] = {}
    for rec in records:
        if rec.target in ("", ".") or not 0 < rec.port <= 65535:
            continue
        groups.setdefault(rec.priority, []).append(rec)
    ordered: list[Srv] = []
    for priority in sorted(groups):
        group = sorted(groups[priority], key=lambda r: r.weight != 0)  # zero weights first
        while group:
            total = sum(max(r.weight, 0) for r in group)
            draw = rng.randint(0, total)
            running = 0
            for i, rec in enumerate(group):
                running += max(rec.weight, 0)
                if running >= draw:
                    ordered.append(group.pop(i))
                    break
    return ordered


def locate(uri: URI, dns: DnsLookup, rng: random.Random | None = None,
           transports: Collection[str] = TRANSPORTS) -> list[Peer]:
    """The transport addresses for a request to ``uri`` (a parsed SIP/SIPS URI), in the
    order to try them; [] when it cannot be located.  ``transports``: the ones this proxy
    speaks (listens on); the others are never chosen.  See the module's text."""
    scheme = (uri.scheme or "").lower()
    host = uri.host
    if scheme not in ("sip", "sips") or not host:
        return []
    secure = scheme == "sips"
    target = (uri.maddr or host).strip("[]").rstrip(".").lower()
    if not target:
        return []
    transport = uri.transport
    if transport is not None:
        if secure and transport == "tcp":
            transport = "tls"  # sips over TCP is TLS (RFC 3261 26.2.2)
        if transport not in TRANSPORTS or transport not in transports or (secure and transport != "tls"):
            return []
    port = uri.port
    # the transport without NAPTR or SRV: UDP for sip: (TCP when we do not speak UDP), TLS
    # for sips:
    plain = "tls" if secure else ("udp" if "udp" in transports else "tcp")
    if plain not in transports and transport is None:
        return []

    # 1 and 2: no NAPTR nor SRV
    if is_ip(target):
        t = transport or plain
        return [Peer(t, target, port or default_port(t))]
    if port:
        t = transport or plain
        return _addresses(dns, target, t, port)

    # 3: the transport is known
    if transport is not None:
        records = dns.srv(srv_name(transport, target))
        if records:
            return _srv_peers(records, transport, dns, rng)
        return _addresses(dns, target, transport, default_port(transport))

    # 4: NAPTR
    for t, name in sip_naptrs(dns.naptr(target), secure, transports):
        peers = _srv_peers(dns.srv(name), t, dns, rng)
        if peers:
            return peers

    # 5: SRV for each transport
    found_srv = False
    for t in SRV_ORDER:
        if t not in transports or (secure and t != "tls"):
            continue
        records = dns.srv(srv_name(t, target))
        if records:
            found_srv = True
            peers = _srv_peers(records, t, dns, rng)
            if peers:
                return peers
    if found_srv:
        return []

    # 6: addresses
    return _addresses(dns, target, plain, default_port(plain))


def _addresses(dns: DnsLookup, host: str, transport: str, port: int) -> list[Peer]:
    return [Peer(transport, ip, port) for ip in _unique(dns.address(host))]


def _srv_peers(records: list[Srv], transport: str, dns: DnsLookup,
               rng: random.Random | None) -> list[Peer]:
    peers: list[Peer] = []
    for rec in order_srv(records, rng):
        for ip in dns.address(rec.target.rstrip(".")):
            peer = Peer(transport, ip, rec.port)
            if peer not in peers:
                peers.append(peer)
    return peers


def _unique(items: Iterable[str]) -> list[str]:
    out: list[str] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out
