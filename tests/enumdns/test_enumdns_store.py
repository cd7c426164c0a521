"""The store against a real database: loading, bounded memory, and following the change log."""

from __future__ import annotations

import dns.message
import dns.name
import dns.rcode
import pytest

from enumdns.answer import respond
from enumdns.store import Store
from ngnpro.models import DnsRecord, DnsZone, EnumMapping, EnumNumber, EnumRange, open_database
from ngnpro.models.changes import TOPIC_DNS_ZONE, TOPIC_ENUM_NUMBER, TOPIC_ENUM_RANGE, record_change


@pytest.fixture
def db(db_url):
    engine, factory = open_database(db_url)
    yield engine, factory
    engine.dispose()


def add_range(session, prefix="3120", tld="e164.arpa", **kw):
    rng = EnumRange(prefix=prefix, tld=tld, **kw)
    session.add(rng)
    session.flush()
    return rng


def add_number(session, rng, number, *maps):
    num = EnumNumber(number=number, tld=rng.tld, range_id=rng.id)
    num.mappings = [EnumMapping(type=t, mapto=m, ttl=60, priority=p) for t, m, p in maps]
    session.add(num)
    record_change(session, TOPIC_ENUM_NUMBER, f"{number}@{rng.tld}")
    return num


def naptr(store, number, tld="e164.arpa"):
    name = ".".join(reversed(number)) + "." + tld
    wire = respond(dns.message.make_query(name, "NAPTR").to_wire(), store).wire
    msg = dns.message.from_wire(wire)
    return msg.rcode(), sorted(r.regexp.decode() for rrset in msg.answer for r in rrset)


def test_numbers_follow_the_change_log(db):
    engine, factory = db
    with factory() as s:
        rng = add_range(s, serial=3)
        add_number(s, rng, "31201", ("sip", "sip:a@x", 10))
        s.commit()
    store = Store(engine, factory, ["e164.arpa"])
    store.load()
    assert naptr(store, "31201") == (dns.rcode.NOERROR, ["!^.*$!sip:a@x!"])
    assert naptr(store, "31202")[0] == dns.rcode.NXDOMAIN
    with factory() as s:
        rng = s.query(EnumRange).one()
        add_number(s, rng, "31202", ("sip", "sip:b@x", 10), ("mailto", "mailto:b@x", 20))
        num = s.query(EnumNumber).filter_by(number="31201").one()
        num.mappings[0].mapto = "sip:changed@x"
        rng.serial = 4
        record_change(s, TOPIC_ENUM_NUMBER, "31201@e164.arpa")
        s.commit()
    assert naptr(store, "31202")[0] == dns.rcode.NXDOMAIN  # not polled yet: cached view
    assert store.poll() == 2
    assert naptr(store, "31202") == (dns.rcode.NOERROR, ["!^.*$!mailto:b@x!", "!^.*$!sip:b@x!"])
    assert naptr(store, "31201") == (dns.rcode.NOERROR, ["!^.*$!sip:changed@x!"])
    assert store.find_zone(dns.name.from_text("0.2.1.3.e164.arpa.")).serial == 4
    with factory() as s:
        s.delete(s.query(EnumNumber).filter_by(number="31201").one())
        record_change(s, TOPIC_ENUM_NUMBER, "31201@e164.arpa")
        s.commit()
    store.poll()
    assert naptr(store, "31201")[0] == dns.rcode.NXDOMAIN


def test_bounded_cache_reads_misses_from_the_database(db):
    engine, factory = db
    with factory() as s:
        rng = add_range(s)
        for i in range(60):
            add_number(s, rng, f"3120{i:03d}", ("sip", f"sip:{i}@x", 10))
        s.commit()
    store = Store(engine, factory, ["e164.arpa"], capacity=100)
    store.load()
    assert len(store._numbers) == 60 and store._complete
    small = Store(engine, factory, ["e164.arpa"], capacity=10)
    small.load()
    assert not small._complete
    for i in range(60):
        assert naptr(small, f"3120{i:03d}") == (dns.rcode.NOERROR, [f"!^.*$!sip:{i}@x!"])
        assert len(small._numbers) <= 10
    assert naptr(small, "3120999")[0] == dns.rcode.NXDOMAIN
    assert naptr(small, "312001")[0] == dns.rcode.NOERROR  # empty non-terminal of 3120010..019


def test_range_and_zone_changes(db):
    engine, factory = db
    store = Store(engine, factory, ["e164.arpa"], nameservers=["ns.example.net"])
    store.load()
    q = dns.message.make_query("0.2.1.3.e164.arpa", "SOA").to_wire()
    soa = dns.message.from_wire(respond(q, store).wire)
    assert soa.rcode() == dns.rcode.NXDOMAIN
    assert soa.authority[0].name == dns.name.from_text("e164.arpa.")  # the configured TLD zone
    with factory() as s:
        rng = add_range(s, serial=11, nameservers="ns1.example.org")
        record_change(s, TOPIC_ENUM_RANGE, f"{rng.prefix}@{rng.tld}")
        zone = DnsZone(name="Example.COM", serial=5)
        s.add(zone)
        s.flush()
        s.add(DnsRecord(zone_id=zone.id, name="_sip._udp", type="SRV", value="0 5060 sip.example.com", priority=10))
        record_change(s, TOPIC_DNS_ZONE, "Example.COM")
        s.commit()
    store.poll()
    soa = dns.message.from_wire(respond(q, store).wire)
    assert soa.answer[0].name == dns.name.from_text("0.2.1.3.e164.arpa.")
    assert soa.answer[0][0].serial == 11 and soa.answer[0][0].mname == dns.name.from_text("ns1.example.org.")
    srv = dns.message.from_wire(respond(dns.message.make_query("_sip._udp.example.com", "SRV").to_wire(), store).wire)
    assert srv.answer[0][0].port == 5060
    ns = dns.message.from_wire(respond(dns.message.make_query("example.com", "NS").to_wire(), store).wire)
    assert ns.answer[0][0].target == dns.name.from_text("ns.example.net.")  # [enumdns] nameservers
    with factory() as s:
        s.delete(s.query(EnumRange).one())
        record_change(s, TOPIC_ENUM_RANGE, "3120@e164.arpa")
        s.delete(s.query(DnsZone).one())
        record_change(s, TOPIC_DNS_ZONE, "example.com")
        s.commit()
    store.poll()
    soa = dns.message.from_wire(respond(q, store).wire)
    assert soa.rcode() == dns.rcode.NXDOMAIN and soa.authority[0].name == dns.name.from_text("e164.arpa.")
    srv = dns.message.from_wire(respond(dns.message.make_query("_sip._udp.example.com", "SRV").to_wire(), store).wire)
    assert srv.rcode() == dns.rcode.REFUSED


def test_bulk_delete_is_read_in_batches(db):
    engine, factory = db
    with factory() as s:
        rng = add_range(s)
        for i in range(1200):
            add_number(s, rng, f"3120{i:04d}", ("sip", f"sip:{i}@x", 10))
        s.commit()
    store = Store(engine, factory, ["e164.arpa"])
    store.load()
    with factory() as s:
        for num in s.query(EnumNumber).all():
            record_change(s, TOPIC_ENUM_NUMBER, f"{num.number}@{num.tld}")
        s.delete(s.query(EnumRange).one())
        record_change(s, TOPIC_ENUM_RANGE, "3120@e164.arpa")
        s.commit()
    store.poll()
    assert len(store._numbers) == 0
    assert naptr(store, "31200005")[0] == dns.rcode.NXDOMAIN
