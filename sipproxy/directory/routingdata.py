"""The routing data the proxy reads from provisioning, as plain immutable values (sans-I/O).

:mod:`.routing` reads the rows (SQL, cached, refreshed from the change feed) and hands out
these values; the routing decisions (:mod:`sipproxy.routing.lcr`, ``.emergency``,
``.diversion``, ``.quickdial``) take them without importing the database layer.

The PSTN chain of the routing guide is ``Route -> Carrier -> Gateways -> Rules``:
a :class:`Route` names a prefix (00+E.164 form, empty = every number), an originator
(empty = everyone; a trusted peer's ``originator`` selects its own routes) and a priority
(lower first); its :class:`Carrier` has :class:`Gateway`\\ s, each with the :class:`Rule`\\ s
that rewrite the number for that gateway.  :class:`LcrTable` is one consistent snapshot of
all routes, indexed for the longest-prefix match.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

__all__ = [
    "Rule", "Gateway", "Carrier", "Route", "LcrTable", "TrustedPeer", "Diversion",
    "EmergencyMapping", "route_prefix_key", "rule_order", "normalise_ip",
    "FUNC", "FBUS", "FNOA", "FNOL", "FUNV", "CONDITIONS", "VOICEMAILBOX",
]

#: Call diversion conditions, as NGNPro names them (API.md 4.1 CallDiversions).
FUNC = "FUNC"  # all calls (unconditional)
FBUS = "FBUS"  # busy
FNOA = "FNOA"  # no answer
FNOL = "FNOL"  # not online (no registered contact)
FUNV = "FUNV"  # unavailable
CONDITIONS = (FUNC, FNOL, FBUS, FNOA, FUNV)
#: The target NGNPro stores for "divert to my voice mailbox".
VOICEMAILBOX = "<voice-mailbox>"


class Rule(NamedTuple):
    """A gateway's number translation: a number starting with ``prefix`` whose length is
    within ``min_length``..``max_length`` (0 = no bound) loses ``strip`` leading digits and
    gets ``prepend`` in front.  Prefix and lengths are of the 00+E.164 form."""

    id: int
    prefix: str = ""
    strip: int = 0
    prepend: str = ""
    min_length: int = 0
    max_length: int = 0


class Gateway(NamedTuple):
    """A PSTN gateway: where to send (``transport``, ``host`` IP or name, ``port``) and the
    rules rewriting the number for it (most specific prefix first, see :func:`rule_order`)."""

    id: int
    name: str
    carrier_id: int
    transport: str
    host: str
    port: int
    rules: tuple[Rule, ...] = ()

    def uri(self, number: str) -> str:
        """``sip:NUMBER@HOST:PORT`` with ``;transport=`` unless UDP (IPv6 hosts bracketed)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        params = "" if self.transport.lower() == "udp" else f";transport={self.transport.lower()}"
        return f"sip:{number}@{host}:{self.port}{params}"


class Carrier(NamedTuple):
    """A PSTN carrier and its gateways (in a stable order: by id; the model has no weight)."""

    id: int
    name: str
    gateways: tuple[Gateway, ...] = ()


class Route(NamedTuple):
    """A PSTN route: numbers starting with ``prefix`` go to ``carrier``; lower ``priority``
    first; ``originator`` empty for everyone."""

    id: int
    prefix: str
    originator: str
    priority: int
    carrier: Carrier


def route_prefix_key(prefix: str) -> str | None:
    """A route prefix as E.164 digits (what :func:`sipproxy.routing.lcr.e164_digits` gives for
    a number), so that ``0031``, ``+31`` and ``31`` all mean "numbers of country 31"; ``""``
    matches every number.  None: the prefix can match no E.164 number (a national ``0...``
    prefix, ``*`` or ``#``)."""
    p = prefix.strip()
    if p.startswith("+"):
        p = p[1:]
    elif p.startswith("00"):
        p = p[2:]
    elif p.startswith("0"):
        return None
    if not p.isdigit() and p != "":
        return None
    return p


def rule_order(rule: Rule) -> tuple[int, int]:
    """Most specific (longest) prefix first, then the oldest (lowest id)."""
    return (-len(rule.prefix), rule.id)


@dataclass(frozen=True)
class LcrTable:
    """Every PSTN route at one moment, indexed by originator then normalised prefix.

    ``index[originator][prefix_key]`` holds the routes of that prefix in the order to try
    them (priority, then id).  Build with :meth:`build`."""

    routes: tuple[Route, ...] = ()
    index: Mapping[str, Mapping[str, tuple[Route, ...]]] = field(default_factory=lambda: MappingProxyType({}))
    #: the longest prefix key per originator (bounds the match loop)
    longest: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    #: the hosts of every gateway, with a route or without one (the guide's gateways for
    #: incoming traffic only): requests from them are incoming PSTN calls
    gateway_hosts: frozenset[str] = frozenset()

    @classmethod
    def build(cls, routes: Iterable[Route], gateways: Iterable[Gateway] = ()) -> LcrTable:
        """The table of ``routes``; ``gateways``: more gateways whose requests are incoming
        PSTN calls (those of carriers without a route)."""
        ordered = tuple(sorted(routes, key=lambda r: (r.originator, r.priority, r.id)))
        index: dict[str, dict[str, list[Route]]] = {}
        for route in ordered:
            key = route_prefix_key(route.prefix)
            if key is None:
                continue
            index.setdefault(route.originator, {}).setdefault(key, []).append(route)
        frozen = MappingProxyType({
            orig: MappingProxyType({k: tuple(v) for k, v in by_prefix.items()})
            for orig, by_prefix in index.items()
        })
        longest = MappingProxyType({orig: max(map(len, by_prefix)) for orig, by_prefix in index.items()})
        every = [g for r in ordered for g in r.carrier.gateways] + list(gateways)
        hosts = frozenset(normalise_ip(g.host) or g.host.lower() for g in every)
        return cls(ordered, frozen, longest, hosts)

    def originators(self) -> frozenset[str]:
        return frozenset(self.index)

    def for_originator(self, originator: str = "") -> tuple[Route, ...]:
        """The routes of ``originator`` (exactly; ``""`` is the default table)."""
        return tuple(r for r in self.routes if r.originator == originator)


class TrustedPeer(NamedTuple):
    """A PBX or gateway trusted by its source IP (no digest challenge).

    ``prefix``/``strip``: how to turn the numbers it sends into routable ones (strip
    ``strip`` leading digits, then prepend ``prefix``); ``originator`` selects its PSTN
    routes; ``transit`` allows PSTN transit, ``enum_lookup`` ENUM look-ups of its numbers."""

    ip: str
    description: str = ""
    tenant: str = ""
    carrier_name: str = ""
    originator: str = ""
    prefix: str = ""
    strip: int = 0
    tags: str = ""
    billing_id: str = ""
    call_limit: int = 0
    blocked: bool = False
    msteams: bool = False
    prepaid: bool = False
    enum_lookup: bool = True
    transit: bool = False


class Diversion(NamedTuple):
    """One call diversion of an account: ``condition`` (FUNC, FBUS, FNOA, FNOL, FUNV) ->
    ``target`` (a ``sip:``/``sips:``/``tel:`` URI or ``<voice-mailbox>``)."""

    condition: str
    target: str


class EmergencyMapping(NamedTuple):
    """An emergency number dialled in ``region`` goes to ``destination`` (URI or number)."""

    region: str
    number: str
    destination: str
    description: str = ""


def normalise_ip(ip: str) -> str | None:
    """An address as ngnpro stores trusted peers (compressed, lower case); an IPv4-mapped
    IPv6 address as its IPv4 form.  None: not an IP address."""
    try:
        addr = ipaddress.ip_address(ip.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.compressed
