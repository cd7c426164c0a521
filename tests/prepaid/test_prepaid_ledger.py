"""Prepaid calls in SQL (sipproxy.dialog.prepaid through the dialog store), on every backend:
the rating at call start, the shared deadline at answer, the debit once at the end."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select

from ngnpro import models as m
from ngnpro.models.database import open_database
from sipproxy.dialog.prepaid import PrepaidCalls, decode_tariff
from sipproxy.dialog.state import DialogInfo
from sipproxy.dialog.store import DialogStore


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 12, 7, 12, 0, 0)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def ledger(db_url):
    engine, sessions = open_database(db_url)
    with sessions.begin() as s:
        s.add(m.SipDomain(domain="example.com"))
        s.add(m.SipAccount(username="pp", domain="example.com", prepaid=True, balance=Decimal("0.10")))
        s.add(m.SipAccount(username="post", domain="example.com", prepaid=False, balance=Decimal(0)))
        s.add(m.RatingRate(profile="default", prefix="31", price_per_minute=Decimal("0.60"), increment=1))
        s.add(m.RatingRate(profile="default", prefix="3120", price_per_minute=Decimal("1.20"), increment=1))
    clock = Clock()
    prepaid = PrepaidCalls(engine, clock=clock)
    store = DialogStore(sessions, prepaid=prepaid)
    yield store, prepaid, sessions, clock
    engine.dispose()


def _balance(sessions, user="pp") -> Decimal:
    with sessions() as s:
        return s.scalar(select(m.SipAccount.balance).where(m.SipAccount.username == user))


def _deadlines(sessions) -> dict[str, dt.datetime | None]:
    with sessions() as s:
        return {r.call_id: r.deadline for r in s.scalars(select(m.Dialog))}


def _answer(store, prepaid, call_id, number="+31101234567", payer="pp@example.com"):
    rated = prepaid.rate(payer, number)
    assert rated is not None and rated.tariff
    store.confirmed(DialogInfo(call_id=call_id, from_tag="f" + call_id, to_tag="t" + call_id, caller=payer,
                               callee=number, billing_party=payer, tariff=rated.tariff))


def test_rating_at_call_start(ledger):
    store, prepaid, sessions, clock = ledger
    rated = prepaid.rate("pp@example.com", "+31201234567")
    assert rated.prepaid and rated.balance == Decimal("0.10") and rated.first_increment == Decimal("0.02")
    rate, number = decode_tariff(rated.tariff)
    assert (rate.prefix, number) == ("3120", "+31201234567")  # the longest prefix
    assert prepaid.rate("pp@example.com", "+4930123456").tariff is None  # no rate: refused by routing
    assert prepaid.rate("post@example.com", "+31201234567").prepaid is False
    assert prepaid.rate("nobody@example.com", "+31201234567") is None


def test_one_call_gets_the_balance_and_is_debited_once(ledger):
    store, prepaid, sessions, clock = ledger
    _answer(store, prepaid, "c1")
    assert _deadlines(sessions)["c1"] == clock.now + dt.timedelta(seconds=10)  # 0.10 at 0.01/s
    clock.now += dt.timedelta(seconds=4)
    store.flush()
    store.ended("c1", "fc1", "tc1")
    store.ended("c1", "tc1", "fc1")  # the other party's BYE, a retransmission: nothing more
    assert _balance(sessions) == Decimal("0.06")
    with sessions() as s:
        history = [(e.action, e.value, e.balance, e.session) for e in s.scalars(select(m.CreditEntry))]
    assert history == [("Call", Decimal("-0.04"), Decimal("0.06"), "c1")]


def test_parallel_calls_share_the_balance_and_an_end_lengthens_the_rest(ledger):
    store, prepaid, sessions, clock = ledger
    t0 = clock.now
    _answer(store, prepaid, "c1")
    clock.now = t0 + dt.timedelta(seconds=4)  # c1 has used 0.04; 0.06 left for two calls
    _answer(store, prepaid, "c2")
    expected = t0 + dt.timedelta(seconds=7)
    assert _deadlines(sessions) == {"c1": expected, "c2": expected}
    clock.now = t0 + dt.timedelta(seconds=6)  # c1 ends after 6 s (0.06); c2 ran 2 s (0.02)
    store.ended("c1", "fc1")
    assert _balance(sessions) == Decimal("0.04")
    # 0.04 - 0.02 already used by c2: 2 more seconds for c2 alone
    assert _deadlines(sessions)["c2"] == t0 + dt.timedelta(seconds=8)


def test_the_balance_never_goes_below_zero(ledger):
    store, prepaid, sessions, clock = ledger
    _answer(store, prepaid, "c1")
    clock.now += dt.timedelta(seconds=30)  # the cut-off came late: 0.30 due, 0.10 there
    store.ended("c1", "fc1")
    assert _balance(sessions) == Decimal("0.00")


def test_a_second_proxy_sharing_the_database_debits_nothing_more(ledger, db_url):
    """Both parties' BYEs handled by two processes (or a proxy restarted during the call,
    which finds the row in SQL): one debit."""
    store, prepaid, sessions, clock = ledger
    _answer(store, prepaid, "c1")
    engine2, sessions2 = open_database(db_url)
    try:
        other = DialogStore(sessions2, prepaid=PrepaidCalls(engine2, clock=clock))
        clock.now += dt.timedelta(seconds=3)
        other.ended("c1", "tc1", "fc1")
        store.ended("c1", "fc1", "tc1")
    finally:
        engine2.dispose()
    assert _balance(sessions) == Decimal("0.07")


def test_a_due_call_is_claimed_by_one_process(ledger, db_url):
    store, prepaid, sessions, clock = ledger
    # deadlines are compared with the database's now: answer in real time here
    prepaid._now = lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=20)
    _answer(store, prepaid, "c1")  # answered 20 s ago with 10 s of credit: due
    engine2, sessions2 = open_database(db_url)
    try:
        other = DialogStore(sessions2)
        first, second = store.due(), other.due()
    finally:
        engine2.dispose()
    assert [r.call_id for r in first] == ["c1"] and second == []
    assert store.due() == []


def _early(prepaid, call_id, payer="pp@example.com", number="+31101234567", cseq=1) -> DialogInfo:
    return DialogInfo(call_id=call_id, from_tag="f" + call_id, to_tag="", caller=payer, callee=number,
                      billing_party=payer, caller_cseq=cseq, tariff=prepaid.rate(payer, number).tariff)


def test_a_prepaid_answer_replaces_the_early_row_queued_or_written(ledger):
    """Written at once at answer (with the payer's deadline): an early row still queued is
    not written after all (nor counted), one written already is replaced."""
    store, prepaid, sessions, clock = ledger
    store._greenlet = object()  # queue the writes as the started writer does; flushed by hand
    try:
        store.early(_early(prepaid, "queued"), 62.0)
        store.early(_early(prepaid, "written"), 62.0)
        store.flush()
        store.early(_early(prepaid, "queued2"), 62.0)
        assert store.unflushed("pp@example.com") == 1
        _answer(store, prepaid, "written")
        _answer(store, prepaid, "queued2")
        assert store.unflushed("pp@example.com") == 0 and store._queue == []
        store.flush()
        with sessions() as s:
            rows = {r.call_id: (r.state, r.to_tag) for r in s.scalars(select(m.Dialog))}
        assert rows == {"queued": ("early", ""), "written": ("confirmed", "twritten"),
                        "queued2": ("confirmed", "tqueued2")}
        # two calls share 0.10 at 0.01/s each: 5 s
        deadlines = _deadlines(sessions)
        assert deadlines["written"] == deadlines["queued2"] == clock.now + dt.timedelta(seconds=5)
    finally:
        store._greenlet = None


def test_a_prepaid_call_answered_through_a_restarted_proxy_gets_its_deadline_and_is_debited_once(ledger, db_url):
    store, prepaid, sessions, clock = ledger
    store.early(_early(prepaid, "c1", cseq=3), 62.0)  # by the process that died
    engine2, sessions2 = open_database(db_url)
    try:
        restarted = DialogStore(sessions2, prepaid=PrepaidCalls(engine2, clock=clock))
        restarted.answered("c1", "fc1", 3, "tc1", "<sip:gw>", "", "udp:192.0.2.9:5060")
        assert _deadlines(sessions)["c1"] == clock.now + dt.timedelta(seconds=10)
        clock.now += dt.timedelta(seconds=2)
        restarted.ended("c1", "fc1", "tc1")
    finally:
        engine2.dispose()
    assert _balance(sessions) == Decimal("0.08")
