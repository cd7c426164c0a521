"""The directory's reads for authorization: the lists read with the account (and kept
fresh by the change feed), this month's cost (cached) and the dialogs count."""

from __future__ import annotations

import datetime as _dt
from decimal import Decimal

from sqlalchemy import select

from ngnpro.models import (
    AcceptRule,
    AccountingRecord,
    BarringPrefix,
    Dialog,
    PhonebookEntry,
    RejectMember,
    SipAccount,
    SipAccountAcl,
    SipAccountGroup,
    SipAccountProperty,
    SipDomain,
    SipDomainAcl,
    record_change,
)
from ngnpro.models.changes import TOPIC_SIP_ACCOUNT, TOPIC_SIP_DOMAIN, Change
from sipproxy.directory.store import Directory
from tests.sipproxy_registrar.support import DOMAIN, provision


def _id(s, user: str) -> int:  # noqa: ANN001
    return s.scalar(select(SipAccount.id).where(SipAccount.username == user))


def _fill(factory) -> None:  # noqa: ANN001
    with factory() as s, s.begin():
        a = _id(s, "alice")
        acct = s.get(SipAccount, a)
        acct.quota, acct.balance, acct.timezone, acct.prepaid = 20, Decimal("1.50"), "Europe/Amsterdam", True
        s.add_all([
            SipAccountGroup(account_id=a, name="blocked"),
            SipAccountProperty(account_id=a, name="blocked_by", value="customer"),
            SipAccountAcl(account_id=a, ip="192.0.2.0", mask=24),
            BarringPrefix(account_id=a, prefix="+31900"),
            RejectMember(account_id=a, uri="sip:spam@example.net"),
            AcceptRule(account_id=a, persistent=True, start="09:00", stop="17:00", days=31, groups="everybody,friends"),
            PhonebookEntry(account_id=a, uri="sip:bob@example.com", name="Bob", group="friends"),
            PhonebookEntry(account_id=a, uri="sip:nogroup@example.com", name="X", group=""),
        ])
        record_change(s, TOPIC_SIP_ACCOUNT, f"alice@{DOMAIN}")


def _check(alice) -> None:  # noqa: ANN001
    assert alice.blocked and alice.blocked_by == "customer"
    assert alice.quota == 20 and alice.balance == Decimal("1.50") and alice.prepaid
    assert alice.timezone == "Europe/Amsterdam"
    assert alice.acl == (("192.0.2.0", 24),)
    assert alice.barring_prefixes == ("+31900",)
    assert alice.reject_members == ("sip:spam@example.net",)
    (rule,) = alice.accept_rules
    assert rule.persistent and (rule.start, rule.stop, rule.days) == ("09:00", "17:00", 31)
    assert rule.groups == frozenset({"everybody", "friends"})
    assert alice.phonebook == (("sip:bob@example.com", "friends"),)


def test_lists_are_read_with_the_account_and_by_warm(db_url: str) -> None:
    engine, factory = provision(db_url, {"alice": "a", "bob": "b"})
    _fill(factory)
    _check(Directory(factory).account("alice", DOMAIN))
    d = Directory(factory)
    assert d.warm() == 2
    _check(d.account("alice", DOMAIN))
    bob = d.account("bob", DOMAIN)
    assert bob.acl == () and bob.barring_prefixes == () and bob.accept_rules == () and not bob.blocked
    engine.dispose()


def test_a_changed_list_is_seen_through_the_change_feed(db_url: str) -> None:
    engine, factory = provision(db_url, {"alice": "a"})
    d = Directory(factory, refresh_interval=0)
    assert d.account("alice", DOMAIN).barring_prefixes == ()
    with factory() as s, s.begin():
        s.add(BarringPrefix(account_id=_id(s, "alice"), prefix="+44"))
        record_change(s, TOPIC_SIP_ACCOUNT, f"alice@{DOMAIN}")
    assert d.account("alice", DOMAIN).barring_prefixes == ("+44",)
    engine.dispose()


def test_month_cost_sums_this_month_and_is_cached(db_url: str) -> None:
    engine, factory = provision(db_url, {"alice": "a"})
    now = _dt.datetime(2026, 12, 7, 12, 0)
    with factory() as s, s.begin():
        s.add_all([
            AccountingRecord(call_id="1", billing_party="alice@example.com", price=Decimal("2.50"),
                             start_time=_dt.datetime(2026, 12, 1, 0, 0, 1)),
            AccountingRecord(call_id="2", billing_party="alice@example.com", price=Decimal("1.25"),
                             start_time=_dt.datetime(2026, 12, 6, 8, 0)),
            AccountingRecord(call_id="3", billing_party="alice@example.com", price=Decimal("100"),
                             start_time=_dt.datetime(2026, 11, 30, 23, 59)),  # last month
            AccountingRecord(call_id="4", billing_party="bob@example.com", price=Decimal("7"),
                             start_time=_dt.datetime(2026, 12, 2)),
        ])
    clock = [0.0]
    d = Directory(factory, clock=lambda: clock[0], quota_refresh=5.0)
    assert d.month_cost("alice@example.com", now) == Decimal("3.75")
    assert d.month_cost("nobody@example.com", now) == 0
    with factory() as s, s.begin():
        s.add(AccountingRecord(call_id="5", billing_party="alice@example.com", price=Decimal("1"),
                               start_time=_dt.datetime(2026, 12, 7, 11, 0)))
    clock[0] = 4.0
    assert d.month_cost("alice@example.com", now) == Decimal("3.75")  # cached
    clock[0] = 5.5
    assert d.month_cost("alice@example.com", now) == Decimal("4.75")  # read again
    engine.dispose()


def test_active_calls_counts_the_callers_dialogs(db_url: str) -> None:
    engine, factory = provision(db_url, {"alice": "a"})
    d = Directory(factory)
    assert d.active_calls("alice@example.com") == 0
    with factory() as s, s.begin():
        s.add_all([Dialog(call_id=f"c{i}", from_tag="f", caller="alice@example.com", callee="bob@example.com")
                   for i in range(3)])
        s.add(Dialog(call_id="other", from_tag="f", caller="bob@example.com", callee="alice@example.com"))
    assert d.active_calls("alice@example.com") == 3
    engine.dispose()


def _domain_id(s, name: str) -> int:  # noqa: ANN001
    return s.scalar(select(SipDomain.id).where(SipDomain.domain == name))


def test_domain_acls_are_read_with_the_domain_set_and_follow_the_feed(db_url: str) -> None:
    """Each domain's ACL in its provisioned order (``position``, not insertion order); a
    ``sip_domain`` change (what ngnpro logs for an ACL change) is seen by the next look-up."""
    engine, factory = provision(db_url, {"alice": "a"})
    with factory() as s, s.begin():
        s.add(SipDomain(domain="other.example"))
        d_id = _domain_id(s, DOMAIN)
        s.add_all([SipDomainAcl(domain_id=d_id, ip="2001:db8::", mask=32, position=1),
                   SipDomainAcl(domain_id=d_id, ip="192.0.2.0", mask=24, tag="office", position=0)])
    d = Directory(factory, config_domains=["static.example"], refresh_interval=0)
    assert d.domain_acl(DOMAIN.upper()) == (("192.0.2.0", 24), ("2001:db8::", 32))
    assert d.domain_acl("other.example") == ()
    assert d.domain_acl("static.example") == () and d.is_local_domain("static.example")
    assert d.domain_acl("nowhere.example") == ()
    with factory() as s, s.begin():
        s.execute(SipDomainAcl.__table__.delete())
        s.add(SipDomainAcl(domain_id=_domain_id(s, "other.example"), ip="198.51.100.7", mask=32))
        record_change(s, TOPIC_SIP_DOMAIN, "other.example")
    assert d.domain_acl(DOMAIN) == ()
    assert d.domain_acl("other.example") == (("198.51.100.7", 32),)
    assert d.is_local_domain("other.example")
    engine.dispose()


def test_a_domain_load_overtaken_by_a_change_is_not_kept(sqlite_url: str) -> None:
    """A change applied while the domain set is read (another greenlet polls the feed during
    the read's database wait) may postdate what was read: that answer is not cached."""
    engine, factory = provision(sqlite_url, {"alice": "a"})
    d = Directory(factory)
    real = d._engine

    class Overtaking:
        """The directory's engine, with a domain change applied during the first read."""

        def __init__(self) -> None:
            self.reads = 0

        def connect(self):  # noqa: ANN201
            self.reads += 1
            if self.reads == 1:
                d.apply([Change(1, TOPIC_SIP_DOMAIN, DOMAIN)])
            return real.connect()

    d._engine = engine_wrapper = Overtaking()
    assert d.is_local_domain(DOMAIN) and d.domain_acl(DOMAIN) == ()
    assert engine_wrapper.reads == 2  # the first read was not kept: the second look-up read again
    assert d.is_local_domain(DOMAIN)
    assert engine_wrapper.reads == 2  # the second one was
    engine.dispose()
