"""Zones held in memory and the authoritative lookup inside one zone (RFC 1034 4.3.2).

Three kinds of zone answer here:

* :class:`RecordZone`, a DnsPort zone: every record of the zone in memory (zones are small).
* :class:`EnumZone`, an ENUM range (or a configured ENUM TLD holding numbers outside any
  range): SOA and NS at the apex, and under it names of single-digit labels whose reversed
  digits are a provisioned number, answered with NAPTR records built from its mappings.  The
  numbers are *not* held here: a ``numbers`` callable (the store's bounded cache) supplies
  them, so a million numbers never need to be in memory at once.

``lookup`` returns a :class:`Lookup` the answer builder turns into a message; nothing here
does I/O, so the logic is tested without sockets or a database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.SOA

from .enumservice import BadMapping, naptr

log = logging.getLogger("enumdns.zone")

IN = dns.rdataclass.IN
SOA = dns.rdatatype.SOA
NS = dns.rdatatype.NS
NAPTR = dns.rdatatype.NAPTR
CNAME = dns.rdatatype.CNAME

#: Record types the DNS port may carry and enumdns serves.
SERVED_TYPES = ("A", "AAAA", "CNAME", "MX", "NS", "NAPTR", "PTR", "SRV", "TXT", "SOA", "LOC")
#: rdata field holding a domain name, per type: rewritten by :func:`qualify`.
_NAME_FIELDS = {"MX": "exchange", "SRV": "target", "NS": "target", "CNAME": "target",
                "PTR": "target", "NAPTR": "replacement"}

#: One provisioned mapping as the store keeps it: (type, mapto, ttl, priority).
Mapping = tuple[str, str, int, int]


@dataclass
class Lookup:
    """What a zone knows about a name: ``rcode`` NOERROR or NXDOMAIN, the rdatasets at the
    name (empty with NOERROR means NODATA), or a ``referral`` (NS below the apex)."""

    nxdomain: bool = False
    rdatasets: dict[int, dns.rdataset.Rdataset] = field(default_factory=dict)
    referral: tuple[dns.name.Name, dns.rdataset.Rdataset] | None = None


def mailbox_name(email: str) -> dns.name.Name:
    """SOA RNAME from an e-mail address (``a.b@example.com`` -> ``a\\.b.example.com.``)
    or from a name already in RNAME form."""
    email = email.strip().rstrip(".")
    if "@" in email:
        local, _, domain = email.partition("@")
        return dns.name.Name((local.encode(),)).concatenate(dns.name.from_text(domain))
    return dns.name.from_text(email or "hostmaster.localhost")


def qualify(name: dns.name.Name, origin: dns.name.Name) -> dns.name.Name:
    """Make a name from stored record text absolute.

    The writer strips trailing dots, so ``sip.example.com`` means the full name; a single
    label (``sip``) or a name ending in an underscore label (``_sip._tcp``, a service label
    that is never a TLD) is taken relative to the zone, as a zone file would.
    """
    if name.is_absolute():
        return name
    labels = name.labels
    if len(labels) <= 1 or labels[-1].startswith(b"_"):
        return name.derelativize(origin)
    return name.derelativize(dns.name.root)


def record_rdata(rtype: str, value: str, priority: int, origin: dns.name.Name) -> dns.rdata.Rdata:
    """Parse one stored record: MX/SRV keep their preference/priority in ``priority`` and the
    rest in ``value``; every other type has its full rdata text in ``value``."""
    rtype = rtype.upper()
    text = value.strip()
    if rtype in ("MX", "SRV"):
        text = f"{int(priority)} {text}"
    rd = dns.rdata.from_text(IN, dns.rdatatype.from_text(rtype), text, origin=None, relativize=False)
    attr = _NAME_FIELDS.get(rtype)
    if attr:
        rd = rd.replace(**{attr: qualify(getattr(rd, attr), origin)})
    return rd


def make_soa(origin: dns.name.Name, mname: dns.name.Name, rname: dns.name.Name, serial: int,
             refresh: int, retry: int, expire: int, minimum: int, ttl: int) -> dns.rdataset.Rdataset:
    rds = dns.rdataset.Rdataset(IN, SOA, ttl=ttl)
    rds.add(dns.rdtypes.ANY.SOA.SOA(IN, SOA, mname, rname, serial & 0xFFFFFFFF, refresh, retry,
                                      expire, minimum))
    return rds


def make_ns(hosts: Iterable[str], ttl: int) -> dns.rdataset.Rdataset | None:
    rds = dns.rdataset.Rdataset(IN, NS, ttl=ttl)
    for host in hosts:
        rds.add(dns.rdata.from_text(IN, NS, host.rstrip(".") + "."))
    return rds if rds else None


class Zone:
    """What every zone has: an origin, an SOA and usually NS records at the apex.

    ``gen`` grows whenever something in the zone changes; packet-cache entries remember the
    generation they were built from and are ignored once it moves on.
    """

    kind = "zone"

    def __init__(self, origin: dns.name.Name, soa: dns.rdataset.Rdataset,
                 ns: dns.rdataset.Rdataset | None) -> None:
        self.origin = origin
        self.soa = soa
        self.ns = ns
        self.gen = 0

    @property
    def key(self) -> bytes:
        """The origin in lower-case wire form: how the fast path finds zones (a suffix of
        the lower-cased question name, one slice per label, no per-label tuple)."""
        return self.origin.to_wire().lower()

    def soa_wire(self) -> bytes:
        """The SOA rdata, uncompressed (computed once)."""
        wire = self.__dict__.get("_soa_wire")
        if wire is None:
            wire = self._soa_wire = self.soa[0].to_wire()
        return wire

    @property
    def serial(self) -> int:
        return self.soa[0].serial

    def negative_ttl(self) -> int:
        """RFC 2308 section 5: the lower of the SOA's TTL and its MINIMUM field."""
        return min(self.soa.ttl, self.soa[0].minimum)

    def apex(self) -> dict[int, dns.rdataset.Rdataset]:
        sets = {SOA: self.soa}
        if self.ns is not None:
            sets[NS] = self.ns
        return sets

    def lookup(self, qname: dns.name.Name) -> Lookup:  # pragma: no cover - abstract
        raise NotImplementedError


class RecordZone(Zone):
    """A DnsPort zone, every record in memory."""

    kind = "dns"

    def __init__(self, origin: dns.name.Name, soa: dns.rdataset.Rdataset,
                 ns: dns.rdataset.Rdataset | None) -> None:
        super().__init__(origin, soa, ns)
        self.nodes: dict[dns.name.Name, dict[int, dns.rdataset.Rdataset]] = {origin: self.apex()}
        self.existing: set[dns.name.Name] = {origin}  # names with data and empty non-terminals
        self._own_ns = False

    def add(self, name: dns.name.Name, rd: dns.rdata.Rdata, ttl: int) -> None:
        """Add one record (apex SOA is the zone's own; a provisioned SOA is ignored)."""
        if rd.rdtype == SOA:
            return
        node = self.nodes.setdefault(name, {})
        if name == self.origin and rd.rdtype == NS and not self._own_ns:
            # provisioned apex NS records replace the configured name servers
            self._own_ns = True
            self.ns = node[NS] = dns.rdataset.Rdataset(IN, NS, ttl=ttl)
        rds = node.get(rd.rdtype)
        if rds is None:
            rds = node[rd.rdtype] = dns.rdataset.Rdataset(IN, rd.rdtype, ttl=ttl)
        rds.add(rd, ttl)  # an RRset has one TTL (RFC 2181 5.2): the lowest wins
        while name != self.origin and name not in self.existing:
            self.existing.add(name)
            name = name.parent()

    def lookup(self, qname: dns.name.Name) -> Lookup:
        # a delegation (NS below the apex) on the way down hands the query off
        depth = len(qname) - len(self.origin)
        for cut in range(1, depth + 1):
            name = qname.split(len(self.origin) + cut)[1]
            node = self.nodes.get(name)
            if node and NS in node:
                return Lookup(referral=(name, node[NS]))
        node = self.nodes.get(qname)
        if node is not None:
            return Lookup(rdatasets=node)
        if qname in self.existing:
            return Lookup()
        # RFC 4592: the source of synthesis is "*" under the closest encloser
        encloser = qname.parent()
        while encloser != self.origin and encloser not in self.existing:
            encloser = encloser.parent()
        wild = self.nodes.get(dns.name.Name((b"*",)).concatenate(encloser))
        if wild is not None:
            return Lookup(rdatasets=wild)
        return Lookup(nxdomain=True)


class EnumZone(Zone):
    """An ENUM range: numbers are ``prefix`` + digits under the range's apex."""

    kind = "enum"

    def __init__(self, origin: dns.name.Name, soa: dns.rdataset.Rdataset,
                 ns: dns.rdataset.Rdataset | None, tld: str, prefix: str, ttl: int,
                 numbers: Callable[[str, str], tuple[Mapping, ...] | None],
                 has_numbers_below: Callable[[str, str], bool]) -> None:
        super().__init__(origin, soa, ns)
        self.tld = tld
        self.prefix = prefix
        self.ttl = ttl
        self._numbers = numbers
        self._below = has_numbers_below

    def number_of(self, qname: dns.name.Name) -> str | None:
        """The E.164 digits a name under this zone stands for, or None if it is not one."""
        labels = qname.labels[: len(qname) - len(self.origin)]
        digits = []
        for label in reversed(labels):
            if len(label) != 1 or not 48 <= label[0] <= 57:
                return None
            digits.append(chr(label[0]))
        return self.prefix + "".join(digits)

    def lookup(self, qname: dns.name.Name) -> Lookup:
        if qname == self.origin:
            return Lookup(rdatasets=self.apex())
        number = self.number_of(qname)
        if number is None:
            return Lookup(nxdomain=True)
        mappings = self._numbers(number, self.tld)
        if mappings is None:
            # an empty non-terminal (a prefix of a longer number) exists: NODATA, not
            # NXDOMAIN, or a QNAME-minimising resolver would stop here (RFC 8020)
            return Lookup(nxdomain=not self._below(number, self.tld))
        rds = self.naptrs(mappings)
        return Lookup(rdatasets={NAPTR: rds} if rds else {})

    def naptrs(self, mappings: tuple[Mapping, ...]) -> dns.rdataset.Rdataset | None:
        rds = dns.rdataset.Rdataset(IN, NAPTR)
        for mtype, mapto, ttl, priority in mappings:
            try:
                rds.add(naptr(mtype, mapto, priority), ttl if ttl and ttl > 0 else self.ttl)
            except (BadMapping, ValueError) as exc:
                log.warning("zone %s: skipping mapping %s -> %s: %s", self.origin, mtype, mapto, exc)
        return rds if rds else None


def enum_origin(prefix: str, tld: str) -> dns.name.Name:
    """The zone of a range: the prefix's digits reversed, one label each, under the TLD."""
    return dns.name.from_text(".".join(reversed(prefix)) + ("." if prefix else "") + tld.rstrip(".") + ".")
