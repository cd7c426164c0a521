"""Fuzz target: DNS query datagrams (`enumdns.answer.respond`, with its fast path
`enumdns.fastpath.fast_respond` for plain ENUM queries), over UDP and TCP.

`respond` has no parse error of its own: by contract garbage gets FORMERR when it has a
header to answer and nothing when it does not. Properties: it never raises; the time bound;
every answer is a well-formed DNS response to that query (same id, QR set, within the UDP
size limit: 512 bytes without EDNS, the advertised size up to 4096 with it); the fast path
answers exactly as the general path does (the same zones without ``zone_keys``).
"""

from __future__ import annotations

import dns.message
import dns.name

from enumdns.answer import respond
from enumdns.zone import (
    EnumZone,
    RecordZone,
    enum_origin,
    mailbox_name,
    make_ns,
    make_soa,
    record_rdata,
)
from fuzz._common import check, expect_only, time_bound

N = dns.name.from_text


class Authority:
    """Zones by name, like the store; ``fast`` also offers the fast path's ``zone_keys``."""

    def __init__(self, zones, fast: bool) -> None:
        self.zones = {z.origin: z for z in zones}
        if fast:
            self.zone_keys = {z.key: z for z in zones}

    def find_zone(self, qname):
        while True:
            if qname in self.zones:
                return self.zones[qname]
            if len(qname) <= 1:
                return None
            qname = qname.parent()


NUMBERS = {
    "31201234567@e164.arpa": (("sip", "sip:alice@example.com", 300, 10), ("mailto", "mailto:a@example.com", 300, 20)),
    "31209999999@e164.arpa": (),
    "3120555@e164.arpa": tuple(("sip", f"sip:user{i}-{'x' * 40}@example.com", 60, i) for i in range(30)),
}


def _zones():
    origin = enum_origin("3120", "e164.arpa")
    soa = make_soa(origin, N("ns1.example.com."), mailbox_name("hostmaster@example.com"), 42, 10800, 3600,
                   1209600, 600, 600)
    enum = EnumZone(origin, soa, make_ns(["ns1.example.com", "ns2.example.com"], 600), "e164.arpa", "3120",
                    600, lambda n, t: NUMBERS.get(f"{n}@{t}"),
                    lambda d, t: any(k.startswith(d) and k.endswith("@" + t) for k in NUMBERS))
    origin = N("example.com.")
    records = RecordZone(origin, make_soa(origin, N("ns1.example.com."), N("hostmaster.example.com."), 9, 1, 2, 3,
                                          300, 3600), make_ns(["ns1.example.com"], 3600))
    for name, rtype, value, prio in [
        ("_sip._udp", "SRV", "100 5060 sip.example.com", 10),
        ("sip", "A", "192.0.2.10", 0),
        ("sip", "AAAA", "2001:db8::10", 0),
        ("", "NAPTR", '20 100 "s" "SIP+D2U" "" _sip._udp', 0),
        ("", "MX", "mail", 5),
        ("www", "CNAME", "sip", 0),
        ("*.wild", "TXT", '"wildcard"', 0),
        ("sub", "NS", "ns.sub.example.com", 0),
        ("ns.sub", "A", "192.0.2.53", 0),
    ]:
        owner = N(name, origin) if name else origin
        records.add(owner, record_rdata(rtype, value, prio, origin), 3600)
    return enum, records


FAST = Authority(_zones(), fast=True)
SLOW = Authority(_zones(), fast=False)


def _rrsets(section) -> list:
    return [(r.name.to_text(), r.rdtype, r.ttl, sorted(x.to_text() for x in r)) for r in section]


def view(msg: dns.message.Message) -> tuple:
    return (msg.id, msg.flags, msg.rcode(), msg.edns, msg.ednsflags, msg.payload if msg.edns >= 0 else 0,
            [(q.name.to_text(), q.rdtype, q.rdclass) for q in msg.question],
            _rrsets(msg.answer), _rrsets(msg.authority))


def _check_answer(query: bytes, wire: bytes | None, tcp: bool) -> dns.message.Message | None:
    if wire is None:
        return None
    check(len(query) >= 12, "an answer to a datagram without a DNS header")
    msg = expect_only((), dns.message.from_wire, wire)
    check(msg.id == int.from_bytes(query[:2], "big"), "answer id is not the query id")
    check(msg.flags & 0x8000, "answer without QR")
    if not tcp:
        limit = 512
        if msg.edns >= 0 and len(query) > 12:
            try:
                q = dns.message.from_wire(query)
                limit = max(512, min(q.payload, 4096)) if q.edns >= 0 else 512
            except Exception:  # noqa: BLE001 - a query only the fast path read
                limit = 4096
        check(len(wire) <= limit, f"UDP answer of {len(wire)} bytes over the {limit}-byte limit")
    return msg


def TestOneInput(data: bytes) -> None:  # noqa: N802
    with time_bound():
        for tcp in (False, True):
            fast = expect_only((), respond, data, FAST, tcp)
            slow = expect_only((), respond, data, SLOW, tcp)
            a = _check_answer(data, fast.wire, tcp)
            b = _check_answer(data, slow.wire, tcp)
            check((a is None) == (b is None), "only one of the fast and the general path answers")
            if a is not None:
                check(view(a) == view(b), f"fast path answers differently:\n{view(a)!r}\n{view(b)!r}")


if __name__ == "__main__":
    from fuzz.run import main_for

    main_for(__name__)
