"""The sans-I/O answer builder against in-memory zones: no sockets, no database."""

from __future__ import annotations

import struct

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest

from enumdns.answer import respond
from enumdns.enumservice import BadMapping, enumservice, naptr, regexp
from tests.enumdns.zones import Authority, N, enum_zone, record_zone

AUTH = Authority(enum_zone(), record_zone())
SLOW = Authority(enum_zone(), record_zone(), fast=False)


def ask(name, rtype="A", tcp=False, **kw):
    q = dns.message.make_query(name, rtype, **kw)
    q.flags &= ~dns.flags.RD
    r = respond(q.to_wire(), AUTH, tcp)
    return dns.message.from_wire(r.wire), r


def test_naptr_fields_follow_the_mappings():
    msg, _ = ask("7.6.5.4.3.2.1.0.2.1.3.e164.arpa", "NAPTR")
    assert msg.rcode() == dns.rcode.NOERROR and msg.flags & dns.flags.AA
    rrs = sorted(msg.answer[0], key=lambda r: r.order)
    assert [(r.order, r.preference, r.flags, r.service, r.regexp, r.replacement.to_text()) for r in rrs] == [
        (10, 10, b"u", b"E2U+sip", b"!^.*$!sip:alice@example.com!", "."),
        (20, 20, b"u", b"E2U+email:mailto", b"!^.*$!mailto:a@example.com!", "."),
    ]
    assert msg.answer[0].ttl == 300


def test_enumservice_names():
    assert [enumservice(t) for t in ("sip", "mailto", "web:http", "tel", "h323", "x-skype:callto", "E2U+im")] == [
        "E2U+sip", "E2U+email:mailto", "E2U+web:http", "E2U+pstn:tel", "E2U+h323", "E2U+x-skype:callto", "E2U+im"]
    assert regexp("sip:a!b@x") == "#^.*$#sip:a!b@x#"
    assert regexp("sip:a\\1@x") == "!^.*$!sip:a\\\\1@x!"
    with pytest.raises(BadMapping):
        naptr("sip", "sip:" + "a" * 260, 10)


def test_missing_number_is_nxdomain_with_soa():
    msg, _ = ask("8.6.5.4.3.2.1.0.2.1.3.e164.arpa", "NAPTR")
    assert msg.rcode() == dns.rcode.NXDOMAIN and msg.flags & dns.flags.AA
    soa = msg.authority[0]
    assert soa.rdtype == dns.rdatatype.SOA and soa.name == N("0.2.1.3.e164.arpa.")
    assert soa[0].serial == 42 and soa.ttl == 600 and soa[0].rname == N("hostmaster.example.com.")


def test_number_without_mapping_of_the_type_is_nodata():
    for name, rtype in (("9.9.9.9.9.9.9.0.2.1.3.e164.arpa", "NAPTR"), ("7.6.5.4.3.2.1.0.2.1.3.e164.arpa", "A")):
        msg, _ = ask(name, rtype)
        assert msg.rcode() == dns.rcode.NOERROR and not msg.answer
        assert msg.authority[0].rdtype == dns.rdatatype.SOA


def test_empty_non_terminal_and_non_digit_labels():
    msg, _ = ask("4.3.2.1.0.2.1.3.e164.arpa", "NAPTR")  # prefix of 31201234567
    assert msg.rcode() == dns.rcode.NOERROR and not msg.answer
    msg, _ = ask("x.0.2.1.3.e164.arpa", "NAPTR")
    assert msg.rcode() == dns.rcode.NXDOMAIN


def test_apex_soa_ns_and_any_is_minimal():
    msg, _ = ask("0.2.1.3.e164.arpa", "NS")
    assert sorted(r.target.to_text() for r in msg.answer[0]) == ["ns1.example.com.", "ns2.example.com."]
    msg, _ = ask("0.2.1.3.e164.arpa", "ANY")
    assert len(msg.answer) == 1  # RFC 8482: one RRset, not everything
    msg, _ = ask("7.6.5.4.3.2.1.0.2.1.3.e164.arpa", "ANY")
    assert len(msg.answer) == 1 and msg.answer[0].rdtype == dns.rdatatype.NAPTR


def test_case_is_preserved_and_matching_is_case_insensitive():
    msg, _ = ask("_SIP._Udp.ExAmple.COM", "SRV")
    assert msg.question[0].name.to_text() == "_SIP._Udp.ExAmple.COM."
    assert msg.answer[0].name.to_text() == "_SIP._Udp.ExAmple.COM."
    srv = msg.answer[0][0]
    assert (srv.priority, srv.weight, srv.port, srv.target) == (10, 100, 5060, N("sip.example.com."))
    assert {r.rdtype for r in msg.additional if r.rdtype != dns.rdatatype.OPT} == {dns.rdatatype.A, dns.rdatatype.AAAA}


def test_record_zone_answers():
    msg, _ = ask("example.com", "NAPTR")
    assert msg.answer[0][0].replacement == N("_sip._udp.example.com.")
    msg, _ = ask("example.com", "MX")
    assert (msg.answer[0][0].preference, msg.answer[0][0].exchange) == (5, N("mail.example.com."))
    msg, _ = ask("www.example.com", "A")
    assert [r.rdtype for r in msg.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    msg, _ = ask("x.wild.example.com", "TXT")
    assert msg.answer[0].name == N("x.wild.example.com.") and msg.answer[0][0].strings == (b"wildcard",)
    msg, _ = ask("b.c.example.com", "A")  # empty non-terminal
    assert msg.rcode() == dns.rcode.NOERROR and not msg.answer
    msg, _ = ask("nope.example.com", "A")
    assert msg.rcode() == dns.rcode.NXDOMAIN and msg.authority[0][0].serial == 9
    assert msg.authority[0].ttl == 300  # min(SOA TTL, MINIMUM)


def test_referral_below_a_zone_cut():
    msg, _ = ask("host.sub.example.com", "A")
    assert not msg.flags & dns.flags.AA and not msg.answer
    assert msg.authority[0].rdtype == dns.rdatatype.NS
    assert msg.additional[0].name == N("ns.sub.example.com.")


def test_refused_outside_our_zones_and_no_recursion():
    q = dns.message.make_query("example.org", "A")  # RD set
    msg = dns.message.from_wire(respond(q.to_wire(), AUTH).wire)
    assert msg.rcode() == dns.rcode.REFUSED and not msg.flags & dns.flags.AA
    assert msg.flags & dns.flags.RD and not msg.flags & dns.flags.RA
    msg, _ = ask("example.com", "AXFR")
    assert msg.rcode() == dns.rcode.REFUSED
    q = dns.message.make_query("example.com", "A", rdclass="CH")
    assert dns.message.from_wire(respond(q.to_wire(), AUTH).wire).rcode() == dns.rcode.REFUSED


def test_garbage_gets_formerr_or_nothing():
    assert respond(b"", AUTH).wire is None
    assert respond(b"\x12\x34\x01", AUTH).wire is None
    good = dns.message.make_query("example.com", "A").to_wire()
    for bad in (good[:-3], good + b"junk", b"\xab\xcd" + b"\x00" * 3 + b"\x05" + b"\x00" * 6,
                b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff"):
        resp = respond(bad, AUTH)
        qid, flags = struct.unpack("!HH", resp.wire[:4])
        assert qid == struct.unpack("!H", bad[:2])[0] and flags & 0x8000 and flags & 0xF == dns.rcode.FORMERR
        assert not resp.cacheable
    response = bytearray(good)
    response[2] |= 0x80
    assert respond(bytes(response), AUTH).wire is None  # never answer a response


def test_other_opcodes_are_notimp_and_edns_version_checked():
    q = dns.message.make_query("example.com", "A")
    q.set_opcode(dns.opcode.NOTIFY)
    msg = dns.message.from_wire(respond(q.to_wire(), AUTH).wire)
    assert msg.rcode() == dns.rcode.NOTIMP and msg.opcode() == dns.opcode.NOTIFY
    q = dns.message.make_query("example.com", "A", use_edns=1)
    msg = dns.message.from_wire(respond(q.to_wire(), AUTH).wire)
    assert msg.rcode() == dns.rcode.BADVERS and msg.edns == 0


def test_truncation_follows_the_client_buffer():
    name = "5.5.5.0.2.1.3.e164.arpa"
    msg, _ = ask(name, "NAPTR")  # no EDNS: 512 bytes
    assert msg.flags & dns.flags.TC and not msg.answer
    msg, r = ask(name, "NAPTR", use_edns=0, payload=1232)
    assert msg.flags & dns.flags.TC and len(r.wire) <= 1232
    msg, r = ask(name, "NAPTR", use_edns=0, payload=4096)
    assert not msg.flags & dns.flags.TC and len(msg.answer[0]) == 30 and len(r.wire) > 1232
    msg, _ = ask(name, "NAPTR", tcp=True)
    assert not msg.flags & dns.flags.TC and len(msg.answer[0]) == 30


@pytest.mark.parametrize("name,rtype,kw", [
    ("7.6.5.4.3.2.1.0.2.1.3.e164.arpa", "NAPTR", {}),
    ("7.6.5.4.3.2.1.0.2.1.3.E164.ARPA", "NAPTR", {"use_edns": 0, "payload": 1400}),
    ("7.6.5.4.3.2.1.0.2.1.3.e164.arpa", "A", {}),
    ("8.6.5.4.3.2.1.0.2.1.3.e164.arpa", "NAPTR", {"use_edns": 0, "want_dnssec": True}),
    ("9.9.9.9.9.9.9.0.2.1.3.e164.arpa", "NAPTR", {}),
    ("4.3.2.1.0.2.1.3.e164.arpa", "NAPTR", {}),
    ("x.0.2.1.3.e164.arpa", "NAPTR", {}),
    ("12.3.0.2.1.3.e164.arpa", "NAPTR", {}),  # a two-byte label among the digits
    ("7.6.5.4.3.2.1.0.2.1.3.E164.arpa", "NAPTR", {"use_edns": 0}),
    ("3.2.1.example.org", "NAPTR", {}),
    ("5.5.5.0.2.1.3.e164.arpa", "NAPTR", {}),
    ("5.5.5.0.2.1.3.e164.arpa", "NAPTR", {"use_edns": 0, "payload": 4096}),
    ("1.2.3.example.org", "NAPTR", {"use_edns": 0}),
    ("0.2.1.3.e164.arpa", "SOA", {}),
])
def test_fast_path_matches_the_general_path(name, rtype, kw):
    q = dns.message.make_query(name, rtype, **kw)
    fast = dns.message.from_wire(respond(q.to_wire(), AUTH).wire)
    slow = dns.message.from_wire(respond(q.to_wire(), SLOW).wire)
    assert (fast.id, fast.flags, fast.rcode(), fast.edns, fast.ednsflags) == (
        slow.id, slow.flags, slow.rcode(), slow.edns, slow.ednsflags)
    assert fast.question[0].name.to_text() == slow.question[0].name.to_text() == q.question[0].name.to_text()
    for a, b in ((fast.answer, slow.answer), (fast.authority, slow.authority)):
        assert [(r.name.to_text(), r.ttl, sorted(x.to_text() for x in r)) for r in a] == [
            (r.name.to_text(), r.ttl, sorted(x.to_text() for x in r)) for r in b]
