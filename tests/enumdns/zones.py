"""The zones the answer tests ask (tests/enumdns/test_enumdns_answer.py), shared with the
DNS query fuzz target (fuzz/enumdns_query.py), which compares the fast path with the
general one on them."""

from __future__ import annotations

import dns.name

from enumdns.zone import (
    EnumZone,
    RecordZone,
    enum_origin,
    mailbox_name,
    make_ns,
    make_soa,
    record_rdata,
)

N = dns.name.from_text


class Authority:
    """Zones by name, like the store; ``fast`` also offers the fast path's ``zone_keys``."""

    def __init__(self, *zones, fast=True):
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


def enum_zone():
    origin = enum_origin("3120", "e164.arpa")
    soa = make_soa(origin, N("ns1.example.com."), mailbox_name("hostmaster@example.com"), 42, 10800, 3600,
                   1209600, 600, 600)
    return EnumZone(origin, soa, make_ns(["ns1.example.com", "ns2.example.com"], 600), "e164.arpa", "3120",
                    600, lambda n, t: NUMBERS.get(f"{n}@{t}"),
                    lambda d, t: any(k.startswith(d) and k.endswith("@" + t) for k in NUMBERS))


def record_zone():
    origin = N("example.com.")
    zone = RecordZone(origin, make_soa(origin, N("ns1.example.com."), N("hostmaster.example.com."), 9, 1, 2, 3,
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
        ("a.b.c", "A", "192.0.2.1", 0),
    ]:
        owner = N(name, origin) if name else origin
        zone.add(owner, record_rdata(rtype, value, prio, origin), 3600)
    return zone
