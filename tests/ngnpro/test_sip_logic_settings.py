"""SipPort settings and prepaid logic against a real database (no SOAP): diversions, accept
rules with the DND quirks, reject members, barring, phonebook, device locations, balance,
vouchers, prepaid status and credit history."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select

from ngnpro import sip_accounts as sa
from ngnpro import sip_domains as sd
from ngnpro import sip_prepaid as sp
from ngnpro import sip_settings as ss
from ngnpro.models import sip as m
from ngnpro.models.customer import Customer
from ngnpro.models.database import open_database
from ngnpro.models.runtime import Location, contact_key
from ngnpro.sip_types import (
    AcceptRules,
    CallDiversions,
    PersistentAcceptRule,
    PhonebookEntry,
    PrepaidCard,
    SipAccount,
    SipDomain,
    SipId,
    TemporaryAcceptRule,
)
from ngnpro.soap.context import Scope
from ngnpro.soap.types import Range
from tests.ngnpro.logic import ADMIN, call, code_of

R20 = Scope(reseller_id=20, visible_ids=frozenset({20}), login_id=20, reseller_active=True)
ALICE = SipId(username="alice", domain="example.com")


@pytest.fixture
def db(db_url):
    engine, factory = open_database(db_url)
    with factory() as s:
        s.add_all([Customer(id=10, username="r10", reseller_active=True),
                   Customer(id=20, username="r20", reseller_active=True)])
        s.commit()
    call(factory, sd.add_domain, ADMIN, SipDomain(domain="example.com", customer=10, reseller=10))
    call(factory, sa.add_account, ADMIN, SipAccount(id=ALICE, password="pw"))
    yield factory
    engine.dispose()


def test_call_diversions(db):
    call(db, ss.set_call_diversions, ADMIN, ALICE, CallDiversions(
        FUNC="bob@example.com", FBUS="<voice-mailbox>", FNOA="voice-mailbox", FNOL="", FUNV=None))
    got = call(db, ss.get_call_diversions, ADMIN, ALICE)
    assert (got.FUNC, got.FBUS, got.FNOA, got.FNOL, got.FUNV) == (
        "sip:bob@example.com", "<voice-mailbox>", "<voice-mailbox>", "", "")
    # replace: absent members are removed, an existing condition is updated in place
    call(db, ss.set_call_diversions, ADMIN, ALICE, CallDiversions(FUNC="sip:carol@example.com"))
    got = call(db, ss.get_call_diversions, ADMIN, ALICE)
    assert (got.FUNC, got.FBUS) == ("sip:carol@example.com", "")
    assert code_of(db, ss.set_call_diversions, ADMIN, ALICE, CallDiversions(FBUS="not a uri")) == 1040
    assert call(db, ss.get_call_diversions, ADMIN, ALICE).FUNC == "sip:carol@example.com"
    call(db, ss.set_call_diversions, ADMIN, ALICE, CallDiversions(FUNC="sip:x@y.z", nocondition="empty"))
    assert call(db, ss.get_call_diversions, ADMIN, ALICE).FUNC == ""
    call(db, ss.set_call_diversions, ADMIN, ALICE, CallDiversions(FUNC="sip:x@y.z"))
    call(db, ss.set_call_diversions, ADMIN, ALICE, None)
    assert call(db, ss.get_call_diversions, ADMIN, ALICE).FUNC == ""
    assert code_of(db, ss.get_call_diversions, ADMIN, SipId(username="nobody", domain="example.com")) == 1010
    assert code_of(db, ss.get_call_diversions, R20, ALICE) == 9002


def test_accept_rules_and_dnd_quirks(db):
    call(db, ss.add_phonebook_entry, ADMIN, ALICE, PhonebookEntry(uri="sip:boss@example.com", name="Boss", group="vip"))
    rules = AcceptRules(
        persistent=[PersistentAcceptRule(start="09:00", stop="17:30", groups=["vip", "business"], days=31)],
        temporary=TemporaryAcceptRule(groups=["nobody"], duration=30),
    )
    call(db, ss.set_accept_rules, ADMIN, ALICE, rules)
    got = call(db, ss.get_accept_rules, ADMIN, ALICE)
    p = got.rules.persistent
    assert [(r.start, r.stop, r.groups, r.days) for r in p] == [("09:00", "17:30", ["vip", "business"], 31)]
    assert got.rules.temporary.groups == ["nobody"] and 29 <= got.rules.temporary.duration <= 30
    assert got.nonEmptyGroups == ["vip"]
    # DND toggle: persistent items without days -> persistent rules kept, temporary changed
    call(db, ss.set_accept_rules, ADMIN, ALICE, AcceptRules(
        persistent=[PersistentAcceptRule(start="00:00", stop="23:59", groups=["everybody"])],
        temporary=TemporaryAcceptRule(groups=["everybody"], duration=0)))
    got = call(db, ss.get_accept_rules, ADMIN, ALICE)
    assert [r.days for r in got.rules.persistent] == [31]
    assert (got.rules.temporary.groups, got.rules.temporary.duration) == (["everybody"], 0)
    # persistent missing altogether -> kept; temporary with no groups -> off
    call(db, ss.set_accept_rules, ADMIN, ALICE, AcceptRules(temporary=TemporaryAcceptRule(groups=[], duration=0)))
    got = call(db, ss.get_accept_rules, ADMIN, ALICE)
    assert len(got.rules.persistent) == 1 and got.rules.temporary.groups == []
    # explicit empty persistent list clears them
    call(db, ss.set_accept_rules, ADMIN, ALICE, AcceptRules(persistent=[]))
    assert call(db, ss.get_accept_rules, ADMIN, ALICE).rules.persistent == []
    bad = AcceptRules(persistent=[PersistentAcceptRule(start="25:00", stop="10:00", groups=[], days=1)])
    assert code_of(db, ss.set_accept_rules, ADMIN, ALICE, bad) == 1040
    bad = AcceptRules(persistent=[PersistentAcceptRule(start="09:00", stop="10:00", groups=[], days=128)])
    assert code_of(db, ss.set_accept_rules, ADMIN, ALICE, bad) == 1040


def test_expired_temporary_rule_reads_as_off(db):
    call(db, ss.set_accept_rules, ADMIN, ALICE, AcceptRules(temporary=TemporaryAcceptRule(groups=["nobody"], duration=5)))
    with db() as s:
        rule = s.execute(select(m.AcceptRule)).scalar_one()
        rule.set_at = rule.set_at - dt.timedelta(minutes=6)
        s.commit()
    assert call(db, ss.get_accept_rules, ADMIN, ALICE).rules.temporary.groups == []


def test_reject_members_and_barring(db):
    call(db, ss.set_reject_members, ADMIN, ALICE, ["sip:spam@example.net", "", "spam@example.net", "sip:x@y.z"])
    assert call(db, ss.get_reject_members, ADMIN, ALICE) == ["sip:spam@example.net", "sip:x@y.z"]
    call(db, ss.set_reject_members, ADMIN, ALICE, ["sip:x@y.z", "sip:new@y.z"])
    assert call(db, ss.get_reject_members, ADMIN, ALICE) == ["sip:x@y.z", "sip:new@y.z"]
    assert code_of(db, ss.set_reject_members, ADMIN, ALICE, ["sip:has space@x"]) == 1040
    call(db, ss.set_reject_members, ADMIN, ALICE, [])
    assert call(db, ss.get_reject_members, ADMIN, ALICE) == []
    call(db, ss.set_barring_prefixes, ADMIN, ALICE, ["+31900", "0044", "+31900"])
    assert call(db, ss.get_barring_prefixes, ADMIN, ALICE) == ["+31900", "+0044"]
    assert code_of(db, ss.set_barring_prefixes, ADMIN, ALICE, ["+31abc"]) == 1040
    assert call(db, ss.get_barring_prefixes, ADMIN, ALICE) == ["+31900", "+0044"]
    assert code_of(db, ss.set_barring_prefixes, R20, ALICE, []) == 9002


def test_phonebook(db):
    add = ss.add_phonebook_entry
    call(db, add, ADMIN, ALICE, PhonebookEntry(uri="sip:bob@example.com", name="Bob 'the' %builder", group="friends"))
    call(db, add, ADMIN, ALICE, PhonebookEntry(uri="sip:carol@example.com", name="Carol"))
    call(db, add, ADMIN, ALICE, PhonebookEntry(uri="sip:dave@example.com", name="Dave", group="business"))
    assert code_of(db, add, ADMIN, ALICE, PhonebookEntry(uri="sip:bob@example.com", name="again")) == 1040
    assert code_of(db, add, ADMIN, ALICE, PhonebookEntry(uri="", name="x")) == 1040
    assert code_of(db, add, ADMIN, ALICE, PhonebookEntry(uri="sip:e@x", group="bad group")) == 1040
    get = ss.get_phonebook_entries
    every = call(db, get, ADMIN, ALICE, None, None).entries
    assert [e.name for e in every] == ["Bob 'the' %builder", "Carol", "Dave"]
    assert [e.uri for e in call(db, get, ADMIN, ALICE, PhonebookEntry(name="%a%"), None).entries] == [
        "sip:carol@example.com", "sip:dave@example.com"]
    assert [e.name for e in call(db, get, ADMIN, ALICE, PhonebookEntry(group=""), None).entries] == ["Carol"]
    assert [e.name for e in call(db, get, ADMIN, ALICE, None, Range(start=1, count=1)).entries] == ["Carol"]
    call(db, ss.update_phonebook_entry, ADMIN, ALICE, PhonebookEntry(uri="sip:carol@example.com", group="family"))
    got = call(db, get, ADMIN, ALICE, PhonebookEntry(group="family"), None).entries
    assert [(e.name, e.group) for e in got] == [("Carol", "family")]
    assert code_of(db, ss.update_phonebook_entry, ADMIN, ALICE, PhonebookEntry(uri="sip:zz@x", name="z")) == 2000
    call(db, ss.delete_phonebook_entry, ADMIN, ALICE, "sip:bob@example.com")
    assert code_of(db, ss.delete_phonebook_entry, ADMIN, ALICE, "sip:bob@example.com") == 2000
    assert len(call(db, get, ADMIN, ALICE, None, None).entries) == 2


def test_device_locations(db):
    now = m.utcnow()
    with db() as s:
        for contact, received, ua, left in (
            ("sip:alice@10.0.0.5:5062;transport=tcp;ob", "tcp:198.51.100.7:40123", "Phone/1", 300),
            ("<sips:alice@[2001:db8::1]>", "", "Soft'phone", 60),
            ("sip:alice@10.0.0.9", "udp:10.0.0.9:5060", "Old", -10),  # expired
        ):
            s.add(Location(username="alice", domain="example.com", contact=contact, contact_hash=contact_key(contact),
                           received=received, user_agent=ua, expires=now + dt.timedelta(seconds=left)))
        s.commit()
    call(db, sa.add_account, ADMIN, SipAccount(id=SipId(username="bob", domain="example.com")))
    bob = SipId(username="bob", domain="example.com")
    result = call(db, ss.get_sip_device_locations, ADMIN, [bob, ALICE])
    assert [r.id.username for r in result] == ["bob", "alice"] and result[0].locations == []
    locs = result[1].locations
    assert [(x.address, x.port, x.publicAddress, x.publicPort, x.transport, x.userAgent) for x in locs] == [
        ("10.0.0.5", 5062, "198.51.100.7", 40123, "tcp", "Phone/1"),
        ("2001:db8::1", 5060, "", 0, "tls", "Soft'phone"),
    ]
    assert 250 < locs[0].expires <= 300
    assert code_of(db, ss.get_sip_device_locations, ADMIN, [SipId(username="x", domain="example.com")]) == 1010


def test_balance_and_credit_history(db):
    res = call(db, sp.add_balance, ADMIN, ALICE, 10.5, "CC transaction 42")
    assert (res.old_balance, res.new_balance) == (0.0, 10.5)
    res = call(db, sp.add_balance, ADMIN, ALICE, -0.25, "correction")
    assert (res.old_balance, res.new_balance) == (10.5, 10.25)
    assert code_of(db, sp.add_balance, ADMIN, ALICE, float("nan"), "x") == 1040
    assert code_of(db, sp.add_balance, ADMIN, ALICE, None, "x") == 1040
    assert code_of(db, sp.add_balance, R20, ALICE, 1.0, "x") == 9002
    assert code_of(db, sp.add_balance, ADMIN, SipId(username="nobody", domain="example.com"), 1.0, "") == 1010
    history = call(db, sp.get_credit_history, ADMIN, ALICE, 200).entries
    assert [(e.description, e.value, e.balance) for e in history] == [
        ("correction", -0.25, 10.25), ("CC transaction 42", 10.5, 10.5)]
    assert history[0].date[:4].isdigit() and history[0].action == sp.ACTION_BALANCE
    assert len(call(db, sp.get_credit_history, ADMIN, ALICE, 1).entries) == 1
    status = call(db, sp.get_prepaid_status, ADMIN, [ALICE])
    assert [(s.balance, s.id.username) for s in status] == [(10.25, "alice")]


def test_vouchers(db):
    with db() as s:
        s.add_all([
            m.PrepaidCard(id=1, number="1111", value=Decimal("5")),
            m.PrepaidCard(id=2, number="2222", value=Decimal("7"), reseller=20),
            m.PrepaidCard(id=3, number="3333", value=Decimal("0")),
        ])
        s.commit()
    res = call(db, sp.add_balance_from_voucher, ADMIN, ALICE, PrepaidCard(id=1, number="1111"))
    assert (res.old_balance, res.new_balance) == (0.0, 5.0)
    assert code_of(db, sp.add_balance_from_voucher, ADMIN, ALICE, PrepaidCard(id=1, number="1111")) == 2001
    assert code_of(db, sp.add_balance_from_voucher, ADMIN, ALICE, PrepaidCard(number="9999")) == 2000
    assert code_of(db, sp.add_balance_from_voucher, ADMIN, ALICE, PrepaidCard(id=9, number="1111")) == 2000
    assert code_of(db, sp.add_balance_from_voucher, ADMIN, ALICE, PrepaidCard(number="2222")) == 2000
    assert code_of(db, sp.add_balance_from_voucher, ADMIN, ALICE, PrepaidCard(number="3333")) == 2001
    assert code_of(db, sp.add_balance_from_voucher, ADMIN, ALICE, PrepaidCard(number="")) == 1040
    with db() as s:
        card = s.get(m.PrepaidCard, 1)
        assert card.used_by == "alice@example.com" and card.used_date is not None
        assert s.get(m.PrepaidCard, 2).used_by == ""
    history = call(db, sp.get_credit_history, ADMIN, ALICE, 0).entries
    assert [(e.action, e.description, e.value) for e in history] == [(sp.ACTION_VOUCHER, "Prepaid card 1111", 5.0)]


NASTY = "x'); DROP TABLE sip_accounts;-- \"%_\\ <b>&amp;"


def test_sql_metacharacters_in_every_free_text_field_are_stored_literally(db):
    from ngnpro.sip_types import AclEntry, SipAccountProperty

    call(db, sa.update_account, ADMIN, SipAccount(
        id=ALICE, firstName=NASTY, lastName=NASTY, quickdialPrefix=NASTY[:60], region=NASTY[:60],
        acl=[AclEntry(ip="192.0.2.1", tag=NASTY[:60])],
        properties=[SipAccountProperty(name=NASTY, value=NASTY, category=NASTY[:30], permission=NASTY[:30])],
    ))
    got = call(db, sa.get_account, ADMIN, ALICE)
    assert (got.firstName, got.lastName, got.quickdialPrefix, got.region) == (NASTY, NASTY, NASTY[:60], NASTY[:60])
    assert got.acl[0].tag == NASTY[:60]
    assert (got.properties[0].name, got.properties[0].value) == (NASTY, NASTY)
    call(db, ss.add_phonebook_entry, ADMIN, ALICE, PhonebookEntry(uri="sip:o'neil;--@example.com", name=NASTY))
    [entry] = call(db, ss.get_phonebook_entries, ADMIN, ALICE, PhonebookEntry(name=NASTY[:5] + "%"), None).entries
    assert (entry.uri, entry.name) == ("sip:o'neil;--@example.com", NASTY)
    call(db, ss.set_reject_members, ADMIN, ALICE, ["sip:a');--@example.com"])
    assert call(db, ss.get_reject_members, ADMIN, ALICE) == ["sip:a');--@example.com"]
    call(db, ss.set_call_diversions, ADMIN, ALICE, CallDiversions(FUNC="sip:o'neil;x=%_@example.com"))
    assert call(db, ss.get_call_diversions, ADMIN, ALICE).FUNC == "sip:o'neil;x=%_@example.com"
    call(db, sp.add_balance, ADMIN, ALICE, 1.0, NASTY)
    assert call(db, sp.get_credit_history, ADMIN, ALICE, 1).entries[0].description == NASTY
    # fields with a grammar refuse them instead
    for bad in (SipAccount(id=ALICE, timezone=NASTY), SipAccount(id=ALICE, rpid=NASTY),
                SipAccount(id=ALICE, email=NASTY), SipAccount(id=ALICE, groups=[NASTY]),
                SipAccount(id=ALICE, firstName="nul\x00byte"), SipAccount(id=ALICE, lastName="x" * 256)):
        assert code_of(db, sa.update_account, ADMIN, bad) == 1040
    assert code_of(db, sa.get_account, ADMIN, SipId(username=NASTY, domain="example.com")) == 1040
    assert code_of(db, sd.add_domain, ADMIN, SipDomain(domain=NASTY)) == 1040
    with db() as s:
        assert s.execute(select(m.SipAccount.first_name)).scalar_one() == NASTY
