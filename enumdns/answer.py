"""Authoritative answers: one query message in, one response message out (RFC 1034 4.3.2).

Sans-I/O: :func:`respond` takes the query's wire bytes and something that finds zones (the
store, or a dict of zones in tests) and returns the response's wire bytes.  It sets AA, keeps
the question's case, never recurses (RA clear), answers EDNS(0) queries with EDNS and fits
UDP answers into the client's advertised buffer, setting TC when they do not fit (the client
then asks over TCP, where the limit is 64 KiB).  ANY gets one RRset (RFC 8482).  Garbage gets
FORMERR when it has a header to answer, and nothing at all when it does not.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from typing import Protocol

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset

from .fastpath import fast_respond
from .zone import CNAME, NAPTR, NS, SOA, Lookup, RecordZone, Zone

log = logging.getLogger("enumdns.answer")

#: The largest UDP payload we send, and advertise in our OPT record.
MAX_UDP_PAYLOAD = 4096
#: Without EDNS a UDP response must fit 512 bytes (RFC 1035 4.2.1).
CLASSIC_UDP = 512
TCP_LIMIT = 65535
MAX_CNAME_CHAIN = 8

_ADDRESS = (dns.rdatatype.A, dns.rdatatype.AAAA)
_REFUSED_TYPES = (dns.rdatatype.AXFR, dns.rdatatype.IXFR)
_FORMERR_TYPES = (dns.rdatatype.OPT, dns.rdatatype.TSIG, dns.rdatatype.TKEY)
_NOTIMP_TYPES = (dns.rdatatype.MAILA, dns.rdatatype.MAILB)
#: Types whose targets get their addresses in the additional section (RFC 1035 3.3, 2782).
_TARGET_FIELDS = {dns.rdatatype.MX: "exchange", dns.rdatatype.SRV: "target", NS: "target"}
#: RFC 8482: which RRset a minimal ANY answer prefers, when the name has several.
_ANY_PREFERENCE = (NAPTR, dns.rdatatype.SRV, dns.rdatatype.A, dns.rdatatype.AAAA,
                   dns.rdatatype.CNAME, dns.rdatatype.MX, dns.rdatatype.TXT)


class Authority(Protocol):
    """Where answers come from: the zone that encloses a name, or None (not ours).  An
    authority that also has ``zone_keys`` (zones by lower-case wire labels) gets the fast
    path of :mod:`enumdns.fastpath` for plain ENUM queries."""

    def find_zone(self, qname: dns.name.Name) -> Zone | None: ...


@dataclass
class Response:
    """The response's wire bytes (None: send nothing), the zone it came from (for cache
    invalidation) and whether the same query may be answered from a packet cache."""

    wire: bytes | None
    zone: Zone | None = None
    cacheable: bool = False
    rcode: int = 0


def header_only(wire: bytes, rcode: int) -> bytes:
    """A response with just the header: for queries too broken to echo the question."""
    qid, flags = struct.unpack("!HH", wire[:4])
    flags = 0x8000 | (flags & 0x7800) | (flags & 0x0100) | rcode  # QR, opcode, RD
    return struct.pack("!HHHHHH", qid, flags, 0, 0, 0, 0)


def respond(wire: bytes, authority: Authority, tcp: bool = False) -> Response:
    """Answer one query (see the module docstring)."""
    zone_keys = getattr(authority, "zone_keys", None)
    if zone_keys is not None:
        fast = fast_respond(wire, zone_keys, tcp, getattr(authority, "zone_depth", 255))
        if fast is not None:
            return Response(fast[0], fast[1], True, fast[2])
    if len(wire) < 12 or wire[2] & 0x80:
        return Response(None)  # no header to answer, or a response: never answer those
    opcode = (wire[2] >> 3) & 0x0F
    if opcode != dns.opcode.QUERY:
        return Response(header_only(wire, dns.rcode.NOTIMP), rcode=dns.rcode.NOTIMP)
    try:
        query = dns.message.from_wire(wire)
    except Exception:  # noqa: BLE001 - any parse failure of client data is FORMERR
        return Response(header_only(wire, dns.rcode.FORMERR), rcode=dns.rcode.FORMERR)
    if len(query.question) != 1:
        return Response(header_only(wire, dns.rcode.FORMERR), rcode=dns.rcode.FORMERR)
    resp = dns.message.make_response(query, our_payload=MAX_UDP_PAYLOAD)
    resp.flags |= query.flags & dns.flags.CD
    if query.edns == 0:  # RFC 3225 3: the DO bit is copied (we just have no signatures)
        resp.use_edns(0, query.ednsflags & dns.flags.DO, MAX_UDP_PAYLOAD)
    if query.edns > 0:  # RFC 6891 6.1.3: we speak version 0 only
        resp.use_edns(0, payload=MAX_UDP_PAYLOAD)
        resp.set_rcode(dns.rcode.BADVERS)
        return Response(_to_wire(resp, query, tcp), rcode=dns.rcode.BADVERS)
    question = query.question[0]
    qname, qtype = question.name, question.rdtype
    zone = None
    if question.rdclass != dns.rdataclass.IN or qtype in _REFUSED_TYPES:
        resp.set_rcode(dns.rcode.REFUSED)
    elif qtype in _FORMERR_TYPES:
        resp.set_rcode(dns.rcode.FORMERR)
    elif qtype in _NOTIMP_TYPES:
        resp.set_rcode(dns.rcode.NOTIMP)
    else:
        zone = authority.find_zone(qname)
        if zone is None:
            resp.set_rcode(dns.rcode.REFUSED)  # not ours, and we never recurse
        else:
            _authoritative(resp, authority, zone, qname, qtype)
    return Response(_to_wire(resp, query, tcp), zone, True, resp.rcode())


def _to_wire(resp: dns.message.Message, query: dns.message.Message, tcp: bool) -> bytes:
    if tcp:
        limit = TCP_LIMIT
    elif query.edns >= 0:
        limit = max(CLASSIC_UDP, min(query.payload, MAX_UDP_PAYLOAD))
    else:
        limit = CLASSIC_UDP
    try:
        return resp.to_wire(max_size=limit)
    except dns.exception.TooBig:
        # RFC 2181 9: set TC and leave out what does not fit; the client retries over TCP
        for section in (resp.answer, resp.authority, resp.additional):
            section.clear()
        resp.flags |= dns.flags.TC
        return resp.to_wire(max_size=limit)


def _rrset(name: dns.name.Name, rds: dns.rdataset.Rdataset, ttl: int | None = None) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(name, rds.rdclass, rds.rdtype)
    rrset.update(rds)
    if ttl is not None:
        rrset.ttl = ttl
    return rrset


def _negative(resp: dns.message.Message, zone: Zone, nxdomain: bool) -> None:
    """NXDOMAIN or NODATA with the zone's SOA, TTL per RFC 2308 section 5."""
    if nxdomain:
        resp.set_rcode(dns.rcode.NXDOMAIN)
    resp.authority.append(_rrset(zone.origin, zone.soa, zone.negative_ttl()))


def _authoritative(resp: dns.message.Message, authority: Authority, zone: Zone,
                   qname: dns.name.Name, qtype: int) -> None:
    resp.flags |= dns.flags.AA
    seen: set[dns.name.Name] = set()
    name = qname
    for _ in range(MAX_CNAME_CHAIN):
        found: Lookup = zone.lookup(name)
        if found.referral is not None:
            if name == qname:
                resp.flags &= ~dns.flags.AA  # below a zone cut we are not authoritative
            cut, ns = found.referral
            resp.authority.append(_rrset(cut, ns))
            _additional(resp, zone, ns)
            return
        if found.nxdomain:
            _negative(resp, zone, True)
            return
        sets = found.rdatasets
        if qtype == dns.rdatatype.ANY and sets:
            pick = next((t for t in _ANY_PREFERENCE if t in sets), next(iter(sets)))
            resp.answer.append(_rrset(name, sets[pick]))
            return
        if qtype in sets:
            resp.answer.append(_rrset(name, sets[qtype]))
            _additional(resp, zone, sets[qtype])
            return
        if CNAME in sets and qtype != CNAME:
            resp.answer.append(_rrset(name, sets[CNAME]))
            seen.add(name)
            name = sets[CNAME][0].target
            nxt = authority.find_zone(name)
            if nxt is None or name in seen:
                return  # the target is not ours: the resolver follows it
            zone = nxt
            continue
        _negative(resp, zone, False)
        return


def _additional(resp: dns.message.Message, zone: Zone, rds: dns.rdataset.Rdataset) -> None:
    """Addresses of MX/SRV/NS targets (and referral glue) that live in the same zone."""
    attr = _TARGET_FIELDS.get(rds.rdtype)
    if attr is None or not isinstance(zone, RecordZone):
        return
    for rd in rds:
        target = getattr(rd, attr)
        node = zone.nodes.get(target)
        if not node:
            continue
        for t in _ADDRESS:
            if t in node:
                resp.additional.append(_rrset(target, node[t]))


__all__ = ["Authority", "Response", "respond", "header_only", "MAX_UDP_PAYLOAD", "SOA"]
