"""EnumPort logic against a real database (no SOAP): ranges, numbers, mappings, scoping,
serials and change-log entries."""

from __future__ import annotations

from sqlalchemy import select

from ngnpro import enum_port as ep
from ngnpro.enum_types import (
    EnumId,
    EnumMapping,
    EnumNumber,
    EnumNumberFilter,
    EnumNumberQuery,
    EnumRange,
    EnumRangeId,
    EnumRangeQuery,
)
from ngnpro.models.changes import ChangeLogEntry
from ngnpro.models.e164 import EnumMapping as MappingRow
from ngnpro.models.e164 import EnumRange as RangeRow
from tests.ngnpro.logic import ADMIN, call, code_of, customer, reseller


def rng(prefix: str, tld: str = "e164.arpa", **kw) -> EnumRange:
    return EnumRange(id=EnumRangeId(prefix=prefix, tld=tld), **kw)


def num(number: str, *maps: tuple[str, str], tld: str = "e164.arpa", **kw) -> EnumNumber:
    mappings = [EnumMapping(type=t, mapto=m, ttl=60, priority=i) for i, (t, m) in enumerate(maps)]
    return EnumNumber(id=EnumId(number=number, tld=tld), mappings=mappings, **kw)


def test_range_lifecycle_and_serial(db):
    call(db, ep.add_range, ADMIN, rng("3120", minDigits=11, maxDigits=11, info="NL test",
                                      nameservers=["ns1.example.com."], reseller=10))
    assert code_of(db, ep.add_range, ADMIN, rng("3120")) == 3001
    got = call(db, ep.get_ranges, ADMIN, None)
    assert got.total == 1
    r = got.ranges[0]
    assert (r.id.prefix, r.id.tld, r.minDigits, r.maxDigits, r.nameservers, r.customer, r.reseller, r.used) == (
        "3120", "e164.arpa", 11, 11, ["ns1.example.com"], 10, 10, 0)
    first_serial = r.serial
    assert first_serial >= 2024010100
    call(db, ep.update_range, ADMIN, rng("3120", info="changed", ttl=600))
    r2 = call(db, ep.get_ranges, ADMIN, None).ranges[0]
    assert (r2.info, r2.ttl) == ("changed", 600) and r2.serial > first_serial
    assert code_of(db, ep.update_range, ADMIN, rng("3199")) == 3004
    call(db, ep.delete_range, ADMIN, EnumRangeId(prefix="3120", tld="e164.arpa"))
    assert call(db, ep.get_ranges, ADMIN, None).total == 0
    assert code_of(db, ep.delete_range, ADMIN, EnumRangeId(prefix="3120", tld="e164.arpa")) == 3004
    with db() as s:
        keys = [k for (k,) in s.execute(select(ChangeLogEntry.key).where(ChangeLogEntry.topic == "enum_range"))]
    assert keys == ["3120@e164.arpa"] * 3


BAD_RANGES = [
    rng("31a"), rng(""), rng("1234567890123456"), rng("31", tld="bad_tld..x"),
    rng("31", minDigits=12, maxDigits=11), rng("31", maxDigits=16), rng("31", nameservers=["not a host"]),
    rng("31", info="x\x00y"),
]


def test_range_validation(db):
    for bad in BAD_RANGES:
        assert code_of(db, ep.add_range, ADMIN, bad) == 1040, bad
    assert call(db, ep.get_ranges, ADMIN, None).total == 0


def test_numbers_mappings_and_faults(db):
    call(db, ep.add_range, ADMIN, rng("3120", minDigits=11, maxDigits=11))
    serial0 = call(db, ep.get_ranges, ADMIN, None).ranges[0].serial
    call(db, ep.add_number, ADMIN, num("31201234567", ("sip", "sip:alice@example.com"), ("mailto", "mailto:a@example.com"),
                                       info="alice", owner=7))
    assert call(db, ep.get_ranges, ADMIN, None).ranges[0].serial > serial0
    assert code_of(db, ep.add_number, ADMIN, num("31201234567")) == 3003
    assert code_of(db, ep.add_number, ADMIN, num("4420123456")) == 3005
    assert code_of(db, ep.add_number, ADMIN, num("3120123")) == 1040  # too short for the range
    assert code_of(db, ep.add_number, ADMIN, num("31201234568", ("sip", "not a uri"))) == 1040
    assert code_of(db, ep.add_number, ADMIN, num("31201234568", ("bad type!", "sip:a@b"))) == 1040

    got = call(db, ep.get_number, ADMIN, EnumId(number="+31201234567", tld="e164.arpa"))
    assert (got.info, got.owner, [(m.type, m.mapto, m.ttl) for m in got.mappings]) == (
        "alice", 7, [("sip", "sip:alice@example.com", 60), ("mailto", "mailto:a@example.com", 60)])
    assert code_of(db, ep.get_number, ADMIN, EnumId(number="31209999999", tld="e164.arpa")) == 3002

    # update: keep mapping 0 (by id, changed), drop mapping 1, add a new one (id 0)
    keep = got.mappings[0]
    keep.mapto = "sip:bob@example.com"
    got.mappings = [keep, EnumMapping(id=0, type="web:http", mapto="http://example.com", priority=5)]
    call(db, ep.update_number, ADMIN, got)
    again = call(db, ep.get_number, ADMIN, EnumId(number="31201234567", tld="e164.arpa"))
    assert sorted((m.type, m.mapto) for m in again.mappings) == [("sip", "sip:bob@example.com"), ("web:http", "http://example.com")]
    assert keep.id in [m.id for m in again.mappings]
    # absent mappings member: kept
    call(db, ep.update_number, ADMIN, EnumNumber(id=again.id, info="new info"))
    third = call(db, ep.get_number, ADMIN, again.id)
    assert third.info == "new info" and len(third.mappings) == 2

    # getNumbers: mapto substring, type, number LIKE
    def numbers(**flt):
        return call(db, ep.get_numbers, ADMIN, EnumNumberQuery(filter=EnumNumberFilter(**flt)))
    assert numbers(mapto="bob@example.com", type="sip").total == 1
    assert numbers(mapto="alice@example.com").total == 0
    assert numbers(number="3120%").total == 1
    assert numbers(type="mailto").total == 0

    call(db, ep.delete_number, ADMIN, EnumId(number="31201234567", tld="e164.arpa"))
    assert code_of(db, ep.delete_number, ADMIN, EnumId(number="31201234567", tld="e164.arpa")) == 3002
    with db() as s:
        assert s.execute(select(MappingRow)).first() is None


def test_failed_call_changes_nothing(db):
    call(db, ep.add_range, ADMIN, rng("3120"))
    with db() as s:
        serial = s.execute(select(RangeRow.serial)).scalar_one()
        count = len(s.execute(select(ChangeLogEntry)).all())
    assert code_of(db, ep.add_number, ADMIN, num("31201", ("sip", "sip:a@b"), ("sip", "bad"))) == 1040
    with db() as s:
        assert s.execute(select(RangeRow.serial)).scalar_one() == serial
        assert len(s.execute(select(ChangeLogEntry)).all()) == count


def test_subrange_adopts_numbers_longest_prefix(db):
    call(db, ep.add_range, ADMIN, rng("31"))
    call(db, ep.add_number, ADMIN, num("3120555"))
    call(db, ep.add_range, ADMIN, rng("3120"))
    ranges = {r.id.prefix: r.used for r in call(db, ep.get_ranges, ADMIN, None).ranges}
    assert ranges == {"31": 0, "3120": 1}
    call(db, ep.add_number, ADMIN, num("3130555"))
    ranges = {r.id.prefix: r.used for r in call(db, ep.get_ranges, ADMIN, None).ranges}
    assert ranges == {"31": 1, "3120": 1}


def test_reseller_scoping(db):
    r10, r20, c11 = reseller(10, (11,)), reseller(20), customer(11, 10)
    call(db, ep.add_range, r10, rng("3120"))
    call(db, ep.add_range, r20, rng("4420"))
    # a reseller cannot take numbers out of another reseller's range, nor nest a range in it
    assert code_of(db, ep.add_number, r20, num("3120111")) == 9002
    assert code_of(db, ep.add_range, r20, rng("31201")) == 9002
    # customers cannot manage ranges; they may take numbers from their reseller's range
    assert code_of(db, ep.add_range, c11, rng("49")) == 9002
    call(db, ep.add_number, c11, num("3120111", ("sip", "sip:c@example.com")))
    call(db, ep.add_number, r10, num("3120222", customer=11))
    call(db, ep.add_number, r10, num("3120333"))
    assert call(db, ep.get_ranges, r20, None).total == 1
    assert call(db, ep.get_numbers, r20, None).total == 0
    assert call(db, ep.get_numbers, r10, None).total == 3
    assert sorted(n.id.number for n in call(db, ep.get_numbers, c11, None).numbers) == ["3120111", "3120222"]
    assert code_of(db, ep.get_number, r20, EnumId(number="3120111", tld="e164.arpa")) == 9002
    assert code_of(db, ep.delete_number, c11, EnumId(number="3120333", tld="e164.arpa")) == 9002
    assert code_of(db, ep.delete_range, r20, EnumRangeId(prefix="3120", tld="e164.arpa")) == 9002
    assert call(db, ep.get_ranges, ADMIN, EnumRangeQuery()).total == 2
