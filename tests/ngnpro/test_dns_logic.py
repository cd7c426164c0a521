"""DnsPort logic against a real database (no SOAP): value parsing per type, the stored form
enumdns reads, duplicates, CNAME rules, serials, fancy records and scoping."""

from __future__ import annotations

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest
from sqlalchemy import select

from ngnpro import dns_port as dp
from ngnpro.dns_types import (
    DnsFancyRecord,
    DnsRecord,
    DnsRecordFilter,
    DnsRecordQuery,
    DnsZone,
    DnsZoneFilter,
    DnsZoneQuery,
    next_serial,
)
from ngnpro.models.changes import ChangeLogEntry
from ngnpro.models.zones import DnsRecord as RecordRow
from ngnpro.soap.faults import NGNProError
from tests.ngnpro.logic import ADMIN, call, code_of, reseller


def add(db, rtype, value, name="", priority=None, zone="example.com", scope=ADMIN):
    return call(db, dp.add_record, scope, DnsRecord(zone=zone, name=name, type=rtype, value=value, priority=priority))


def stored(db, rid):
    with db() as s:
        row = s.get(RecordRow, rid)
        return row.name, row.type, row.value, row.priority


def test_serial_is_yyyymmddnn_and_increasing():
    import datetime as dt
    day = dt.date(2026, 11, 26)
    assert next_serial(0, day) == 2026112600
    assert next_serial(2026112600, day) == 2026112601
    assert next_serial(2026112799, day) == 2026112800
    assert next_serial(2025010105, day) == 2026112600


def test_zone_lifecycle(db):
    call(db, dp.add_zone, ADMIN, DnsZone(name="Example.COM.", ttl=600, nameservers=["ns1.example.com"],
                                         email="hostmaster@example.com", reseller=10))
    assert code_of(db, dp.add_zone, ADMIN, DnsZone(name="example.com")) == 7001
    z = call(db, dp.get_zone, ADMIN, "example.com")
    assert (z.name, z.ttl, z.nameservers, z.email, z.customer, z.reseller) == (
        "example.com", 600, ["ns1.example.com"], "hostmaster@example.com", 10, 10)
    z.info, z.retry = "main zone", 1800
    call(db, dp.update_zone, ADMIN, z)
    z2 = call(db, dp.get_zone, ADMIN, "example.com")
    assert (z2.info, z2.retry) == ("main zone", 1800) and z2.serial > z.serial
    assert call(db, dp.get_zones, ADMIN, DnsZoneQuery(filter=DnsZoneFilter(name="exa%"))).total == 1
    assert code_of(db, dp.get_zone, ADMIN, "nope.com") == 7002
    assert code_of(db, dp.update_zone, ADMIN, DnsZone(name="nope.com")) == 7002
    for bad in [DnsZone(name="bad zone"), DnsZone(name=""), DnsZone(name="a..b"), DnsZone(name="x.com", ttl=-5),
                DnsZone(name="x.com", nameservers=["ns_1.x.com"]), DnsZone(name="x.com", email="a b@c")]:
        assert code_of(db, dp.add_zone, ADMIN, bad) == 1040
    add(db, "A", "192.0.2.1", "www")
    call(db, dp.delete_zone, ADMIN, "example.com")
    assert code_of(db, dp.delete_zone, ADMIN, "example.com") == 7002
    with db() as s:
        assert s.execute(select(RecordRow)).first() is None
        keys = {k for (k,) in s.execute(select(ChangeLogEntry.key).where(ChangeLogEntry.topic == "dns_zone"))}
    assert keys == {"example.com"}


STORED = [
    ("A", "www", "192.0.2.10", None, ("www", "A", "192.0.2.10", 0)),
    ("AAAA", "", "2001:DB8::0001", None, ("", "AAAA", "2001:db8::1", 0)),
    ("MX", "", "mail.example.com.", 10, ("", "MX", "mail.example.com", 10)),
    ("MX", "sub", "20 mx2.example.net", None, ("sub", "MX", "mx2.example.net", 20)),
    ("SRV", "_sip._udp", "100 5060 sip.example.com", 5, ("_sip._udp", "SRV", "100 5060 sip.example.com", 5)),
    ("SRV", "_sip._tcp.example.com", "1 2 5060 sip.example.com.", None, ("_sip._tcp", "SRV", "2 5060 sip.example.com", 1)),
    ("NAPTR", "", '20 100 "s" "SIP+D2T" "" _sip._tcp.example.com', 100,
     ("", "NAPTR", '20 100 "s" "SIP+D2T" "" _sip._tcp.example.com', 0)),
    ("NAPTR", "e", '10 10 "u" "E2U+sip" "!^.*$!sip:a@example.com!" .', None,
     ("e", "NAPTR", '10 10 "u" "E2U+sip" "!^.*$!sip:a@example.com!" .', 0)),
    ("CNAME", "alias", "www.example.com.", None, ("alias", "CNAME", "www.example.com", 0)),
    ("NS", "delegated", "ns.other.net", None, ("delegated", "NS", "ns.other.net", 0)),
    ("PTR", "ptr", "host.example.com", None, ("ptr", "PTR", "host.example.com", 0)),
    ("TXT", "", "v=spf1 include:example.net -all", None, ("", "TXT", '"v=spf1 include:example.net -all"', 0)),
    ("TXT", "q", '"a b" "c"', None, ("q", "TXT", '"a b" "c"', 0)),
    ("LOC", "loc", "52 22 23 N 4 53 32 E -2m", None, ("loc", "LOC", "52 22 23.000 N 4 53 32.000 E -2.00m", 0)),
    ("A", "*", "192.0.2.99", None, ("*", "A", "192.0.2.99", 0)),
]


def test_records_stored_form(db):
    """One database for every case (creating one per case would dominate the run time)."""
    call(db, dp.add_zone, ADMIN, DnsZone(name="example.com"))
    for rtype, name, value, priority, expected in STORED:
        rid = add(db, rtype, value, name, priority)
        assert stored(db, rid) == expected, (rtype, value)
        # what is stored parses again as rdata (what enumdns does)
        _, t, v, p = expected
        text = f"{p} {v}" if t in ("MX", "SRV") else v
        dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(t), text)
        call(db, dp.delete_record, ADMIN, rid)


INVALID = [
    ("A", "300.1.2.3"), ("A", "example.com"), ("AAAA", "192.0.2.1"), ("MX", "bad host!"), ("SRV", "5060 host"),
    ("SRV", "1 2 99999 host"), ("NAPTR", "10 10 u E2U+sip"), ("CNAME", "two words"), ("LOC", "nowhere"),
    ("SOA", "ns hostmaster 1 2 3 4 5"), ("HINFO", '"x" "y"'), ("A", ""), ("TXT", "x\x01y"), ("MX", "10 a..b"),
]


def test_invalid_values_refused(db):
    call(db, dp.add_zone, ADMIN, DnsZone(name="example.com"))
    serial = call(db, dp.get_zone, ADMIN, "example.com").serial
    for rtype, value in INVALID:
        code = code_of(db, dp.add_record, ADMIN, DnsRecord(zone="example.com", name="x", type=rtype, value=value))
        assert code == 1040, (rtype, value)
    assert call(db, dp.get_zone, ADMIN, "example.com").serial == serial
    assert call(db, dp.get_records, ADMIN, None).total == 0


def test_record_faults_update_and_cname_rules(db):
    call(db, dp.add_zone, ADMIN, DnsZone(name="example.com", ttl=900))
    assert code_of(db, dp.add_record, ADMIN, DnsRecord(zone="nope.com", type="A", value="192.0.2.1")) == 7002
    rid = add(db, "A", "192.0.2.1", "www")
    assert code_of(db, dp.add_record, ADMIN, DnsRecord(zone="example.com", name="www", type="A", value="192.0.2.1")) == 7003
    assert code_of(db, dp.add_record, ADMIN, DnsRecord(zone="example.com", name="www", type="CNAME", value="x.net")) == 1040
    assert code_of(db, dp.add_record, ADMIN, DnsRecord(zone="example.com", name="", type="CNAME", value="x.net")) == 1040
    add(db, "CNAME", "www.example.com", "web")
    assert code_of(db, dp.add_record, ADMIN, DnsRecord(zone="example.com", name="web", type="TXT", value="hi")) == 1040
    rec = call(db, dp.get_record, ADMIN, rid)
    assert (rec.zone, rec.name, rec.ttl, rec.type) == ("example.com", "www", 900, "A")
    rec.value = "192.0.2.2"
    call(db, dp.update_record, ADMIN, rec)
    assert stored(db, rid)[2] == "192.0.2.2"
    rec.zone = "other.com"
    assert code_of(db, dp.update_record, ADMIN, rec) == 1040
    assert code_of(db, dp.update_record, ADMIN, DnsRecord(id=99999, value="192.0.2.3")) == 7004
    assert code_of(db, dp.get_record, ADMIN, 99999) == 7004
    assert code_of(db, dp.delete_record, ADMIN, "abc") == 1040
    assert call(db, dp.get_records, ADMIN, DnsRecordQuery(filter=DnsRecordFilter(zone="example.com", type="A"))).total == 1
    assert call(db, dp.get_records, ADMIN, DnsRecordQuery(filter=DnsRecordFilter(name="w%"))).total == 2
    call(db, dp.delete_record, ADMIN, str(rid))  # numeric strings are accepted
    assert code_of(db, dp.delete_record, ADMIN, rid) == 7004


def test_fancy_records_kept_apart(db):
    call(db, dp.add_zone, ADMIN, DnsZone(name="example.com"))
    add(db, "A", "192.0.2.1", "www")
    fid = call(db, dp.add_record, ADMIN, DnsFancyRecord(zone="example.com", name="Alice@example.com", type="MBOXFW",
                                                        value="alice@elsewhere.net"), True)
    call(db, dp.add_record, ADMIN, DnsFancyRecord(zone="example.com", name="bob", type="MBOXFW", value="b@x.net"), True)
    call(db, dp.add_record, ADMIN, DnsFancyRecord(zone="example.com", name="go", type="URL", value="https://example.org/x"), True)
    assert code_of(db, dp.add_record, ADMIN, DnsFancyRecord(zone="example.com", name="a@other.com", type="MBOXFW",
                                                            value="a@x.net"), True) == 1040
    assert code_of(db, dp.add_record, ADMIN, DnsFancyRecord(zone="example.com", name="go2", type="URL", value="ftp://x"), True) == 1040
    assert code_of(db, dp.add_record, ADMIN, DnsFancyRecord(zone="example.com", name="x", type="A", value="192.0.2.1"), True) == 1040
    assert code_of(db, dp.add_record, ADMIN, DnsRecord(zone="example.com", name="x", type="URL", value="http://x.org"), False) == 1040
    assert call(db, dp.get_records, ADMIN, None).total == 1
    fancy = call(db, dp.get_records, ADMIN, None, True)
    assert sorted((r.name, r.type) for r in fancy.records) == [("alice@example.com", "MBOXFW"), ("bob@example.com", "MBOXFW"), ("go", "URL")]
    assert code_of(db, dp.get_record, ADMIN, fid, False) == 7004  # not an ordinary record
    got = call(db, dp.get_record, ADMIN, fid, True)
    got.value = "alice@new.net"
    call(db, dp.update_record, ADMIN, got, True)
    assert call(db, dp.get_record, ADMIN, fid, True).value == "alice@new.net"
    call(db, dp.delete_record, ADMIN, fid, True)
    assert call(db, dp.get_records, ADMIN, None, True).total == 2


def test_reseller_scoping(db):
    r10, r20 = reseller(10), reseller(20)
    call(db, dp.add_zone, r10, DnsZone(name="ten.com"))
    call(db, dp.add_zone, r20, DnsZone(name="twenty.com"))
    rid = add(db, "A", "192.0.2.1", "www", zone="ten.com", scope=r10)
    assert [z.name for z in call(db, dp.get_zones, r20, None).zones] == ["twenty.com"]
    assert code_of(db, dp.get_zone, r20, "ten.com") == 9002
    assert code_of(db, dp.add_record, r20, DnsRecord(zone="ten.com", name="x", type="A", value="192.0.2.9")) == 9002
    assert code_of(db, dp.get_record, r20, rid) == 9002
    assert code_of(db, dp.delete_record, r20, rid) == 9002
    assert code_of(db, dp.delete_zone, r20, "ten.com") == 9002
    assert code_of(db, dp.add_zone, r20, DnsZone(name="sub.ten.com")) == 9002  # no hijack by delegation
    assert call(db, dp.get_records, r20, None).total == 0
    assert call(db, dp.get_records, r10, None).total == 1
    assert call(db, dp.get_zones, ADMIN, None).total == 2


def test_concurrent_duplicate_zone_is_7001(db):
    """Another writer inserting the same zone between our check and our insert: the unique
    index answers, and the client still gets "zone exists" rather than a server error."""
    from sqlalchemy import event, insert

    from ngnpro.models.zones import DnsZone as ZoneRow

    with db() as s:
        fired = []

        def racing_writer(session, _ctx, _instances):
            if fired:
                return
            fired.append(True)
            session.execute(insert(ZoneRow).values(name="race.example", ttl=1, info="", serial=1, email="",
                                                   refresh=1, retry=1, expire=1, minimum=1, nameservers=""))

        event.listen(s, "before_flush", racing_writer)
        with pytest.raises(NGNProError) as info:
            dp.add_zone(s, ADMIN, DnsZone(name="race.example"))
        s.rollback()
    assert info.value.code == 7001


def test_sql_metacharacters_stored_literally(db):
    nasty = "x'; DROP TABLE dns_zones; -- \\ % _ \""
    call(db, dp.add_zone, ADMIN, DnsZone(name="example.com", info=nasty))
    add(db, "TXT", nasty, "t")
    assert call(db, dp.get_zone, ADMIN, "example.com").info == nasty
    # (a backslash in a LIKE filter is an escape on MariaDB/PostgreSQL, so filter on the rest)
    assert call(db, dp.get_zones, ADMIN, DnsZoneQuery(filter=DnsZoneFilter(info="x'; DROP TABLE dns_zones; --%"))).total == 1
    txt = call(db, dp.get_records, ADMIN, DnsRecordQuery(filter=DnsRecordFilter(type="TXT"))).records[0].value
    parsed = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, txt)
    assert b"".join(parsed.strings).decode() == nasty
