"""The authorization rules (sipproxy.auth.policy), one by one: pure decisions on values."""

from __future__ import annotations

import datetime as _dt
from decimal import Decimal

import pytest

from sipproxy.auth import policy
from sipproxy.directory.account import GROUP_BLOCKED, GROUP_PSTN, GROUP_QUOTA, AcceptWindow, Account


def _account(**kw) -> Account:  # noqa: ANN003
    base = dict(id=1, username="alice", domain="example.com", ha1="", ha1b="", ha1_sha256="")
    base.update(kw)
    if "groups" in base:
        base["groups"] = frozenset(base["groups"])
    return Account(**base)


def _never() -> int:
    raise AssertionError("not asked")


# -- outgoing ----------------------------------------------------------------------------

def test_refusals_carry_status_reason_and_warning_text():
    for r in (policy.NO_PSTN, policy.BLOCKED, policy.BLOCKED_BY_CUSTOMER, policy.QUOTA, policy.CREDIT,
              policy.CALL_LIMIT, policy.BARRED, policy.ACL, policy.CALLEE_BLOCKED, policy.NOT_ACCEPTED,
              policy.DND, policy.REJECTED):
        assert 400 <= r.status < 700 and r.reason and r.warning
    assert policy.CREDIT.status == 402 and policy.CALL_LIMIT.status == 403
    assert policy.warning_header("proxy.example.com", 'say "no"') == (
        "Warning", '399 proxy.example.com "say \\"no\\""')


def test_1_pstn_needs_access():
    assert policy.pstn(_account(), month_cost=_never) == policy.NO_PSTN
    assert policy.pstn(_account(groups={GROUP_PSTN}), month_cost=lambda: Decimal(0)) is None
    assert policy.pstn(_account(prepaid=True, balance=Decimal(1)), month_cost=_never) is None


def test_2_blocked_by_the_administrator_or_by_the_customer():
    assert policy.outgoing(_account(groups={GROUP_BLOCKED}), e164=None, call=True,
                           active_calls=_never) == policy.BLOCKED
    by_customer = _account(groups={GROUP_BLOCKED}, blocked_by="customer")
    assert policy.outgoing(by_customer, e164=None, call=True, active_calls=_never) == policy.BLOCKED_BY_CUSTOMER
    assert policy.pstn(by_customer, month_cost=_never) == policy.BLOCKED_BY_CUSTOMER
    # the property alone (the group removed again) does not block
    assert policy.outgoing(_account(blocked_by="customer"), e164=None, call=True, active_calls=lambda: 0) is None


def test_3_monthly_quota():
    acct = _account(groups={GROUP_PSTN}, quota=10)
    assert policy.pstn(acct, month_cost=lambda: Decimal("9.99")) is None
    assert policy.pstn(acct, month_cost=lambda: Decimal("10")) == policy.QUOTA
    assert policy.pstn(_account(groups={GROUP_PSTN}), month_cost=_never) is None  # no quota: not read
    # blocked by the quota job (the ``quota`` group)
    assert policy.pstn(_account(groups={GROUP_PSTN, GROUP_QUOTA}), month_cost=_never) == policy.QUOTA


def test_4_prepaid_balance():
    assert policy.pstn(_account(prepaid=True, balance=Decimal(0)), month_cost=_never) == policy.CREDIT
    assert policy.pstn(_account(prepaid=True, balance=Decimal("-1")), month_cost=_never) == policy.CREDIT
    assert policy.pstn(_account(prepaid=True, balance=Decimal("0.01")), month_cost=_never) is None
    # with a rate: the first increment must be covered
    rich = _account(prepaid=True, balance=Decimal("0.05"))
    assert policy.pstn(rich, month_cost=_never, first_increment_cost=Decimal("0.06")) == policy.CREDIT
    assert policy.pstn(rich, month_cost=_never, first_increment_cost=Decimal("0.05")) is None
    # a prepaid account's quota is its balance
    assert policy.pstn(_account(prepaid=True, balance=Decimal(5), quota=1), month_cost=_never) is None


def test_5_call_limit():
    acct = _account(call_limit=2)
    assert policy.outgoing(acct, e164=None, call=True, active_calls=lambda: 1) is None
    assert policy.outgoing(acct, e164=None, call=True, active_calls=lambda: 2) == policy.CALL_LIMIT
    assert policy.outgoing(acct, e164=None, call=False, active_calls=_never) is None  # a MESSAGE
    assert policy.outgoing(_account(), e164=None, call=True, active_calls=_never) is None  # no limit


@pytest.mark.parametrize("e164, barred", [
    ("+31900123", True), ("+4420123", True), ("+31201234567", False), (None, False), ("+449", False),
])
def test_6_barring_prefixes(e164, barred):
    acct = _account(barring_prefixes=("+31900", "4420"))
    refused = policy.outgoing(acct, e164=e164, call=True, active_calls=lambda: 0)
    assert (refused == policy.BARRED) is barred


# -- incoming ----------------------------------------------------------------------------

NOON = _dt.datetime(2026, 12, 7, 12, 0)  # a Monday, UTC


def _in(account: Account, caller: str = "sip:bob@example.net", ip: str = "192.0.2.1",
        now: _dt.datetime = NOON, **kw) -> policy.Refusal | None:  # noqa: ANN003
    return policy.incoming(account, source_ip=ip, caller=caller, now=now, **kw)


def test_incoming_allowed_by_default():
    assert _in(_account()) is None


def test_incoming_1_acl():
    acct = _account(acl=(("192.0.2.0", 24), ("2001:db8::1", 128)))
    assert _in(acct, ip="192.0.2.77") is None
    assert _in(acct, ip="2001:db8::1") is None
    assert _in(acct, ip="198.51.100.1") == policy.ACL
    assert _in(acct, ip="198.51.100.1", check_acl=False) is None  # a trusted peer
    assert _in(_account(), ip="198.51.100.1", domain_acl=[("192.0.2.0", 24)]) == policy.ACL


def test_incoming_1_the_domains_acl_and_the_accounts_must_both_allow():
    office, home = ("192.0.2.0", 24), ("198.51.100.7", 32)
    plain, fenced = _account(), _account(acl=(home,))
    # the domain's ACL alone: inside passes, outside is refused, empty allows all
    assert _in(plain, ip="192.0.2.10", domain_acl=[office]) is None
    assert _in(plain, ip="203.0.113.5", domain_acl=[office]) == policy.ACL
    assert _in(plain, ip="203.0.113.5", domain_acl=[]) is None
    # any of the domain's networks will do
    assert _in(plain, ip="198.51.100.7", domain_acl=[office, home]) is None
    # both lists: the source must be in each of them
    assert _in(fenced, ip="198.51.100.7", domain_acl=[office, home]) is None
    assert _in(fenced, ip="192.0.2.10", domain_acl=[office, home]) == policy.ACL  # the account's refuses
    assert _in(fenced, ip="198.51.100.7", domain_acl=[office]) == policy.ACL  # the domain's refuses
    # IPv6 networks; an address of the other family is never inside
    assert _in(plain, ip="2001:db8::5", domain_acl=[("2001:db8::", 64)]) is None
    assert _in(plain, ip="[2001:db8:1::5]", domain_acl=[("2001:db8::", 64)]) == policy.ACL
    assert _in(plain, ip="192.0.2.10", domain_acl=[("2001:db8::", 64)]) == policy.ACL
    # a trusted peer skips both lists; the ACL refusal comes before the callee's other rules
    assert _in(fenced, ip="203.0.113.5", domain_acl=[office], check_acl=False) is None
    assert _in(_account(groups={GROUP_BLOCKED}), ip="203.0.113.5", domain_acl=[office]) == policy.ACL


def test_incoming_2_blocked():
    assert _in(_account(groups={GROUP_BLOCKED})) == policy.CALLEE_BLOCKED


def test_incoming_3_accept_rules_caller():
    temp = AcceptWindow(persistent=False, groups=frozenset({"friends"}), duration=0)
    book = (("sip:bob@example.net", "friends"), ("sip:eve@example.net", "work"))
    acct = _account(accept_rules=(temp,), phonebook=book)
    assert _in(acct, caller="sip:bob@example.net") is None
    assert _in(acct, caller="<sip:bob@EXAMPLE.net;user=phone>") is None
    assert _in(acct, caller="sip:eve@example.net") == policy.NOT_ACCEPTED
    assert _in(acct, caller="sip:stranger@example.net") == policy.NOT_ACCEPTED
    nobody = _account(accept_rules=(AcceptWindow(persistent=False, groups=frozenset({"nobody"})),))
    assert _in(nobody) == policy.NOT_ACCEPTED
    # a temporary rule that ran out no longer applies
    old = AcceptWindow(persistent=False, groups=frozenset({"nobody"}), duration=30,
                       set_at=NOON - _dt.timedelta(hours=1))
    assert _in(_account(accept_rules=(old,))) is None
    running = AcceptWindow(persistent=False, groups=frozenset({"nobody"}), duration=120,
                           set_at=NOON - _dt.timedelta(hours=1))
    assert _in(_account(accept_rules=(running,))) == policy.NOT_ACCEPTED


def test_incoming_4_time_of_day_in_the_accounts_timezone():
    office = AcceptWindow(persistent=True, groups=frozenset({"everybody"}), start="09:00", stop="17:00", days=31)
    acct = _account(accept_rules=(office,), timezone="Europe/Amsterdam")
    assert _in(acct, now=_dt.datetime(2026, 12, 7, 12, 0)) is None  # Monday 13:00 in Amsterdam
    assert _in(acct, now=_dt.datetime(2026, 12, 7, 16, 30)) == policy.DND  # 17:30 there
    assert _in(acct, now=_dt.datetime(2026, 12, 5, 12, 0)) == policy.DND  # Saturday
    utc = _account(accept_rules=(office,))  # no timezone: UTC
    assert _in(utc, now=_dt.datetime(2026, 12, 7, 16, 30)) is None
    # a window over midnight, Friday night into Saturday morning
    night = AcceptWindow(persistent=True, groups=frozenset({"everybody"}), start="22:00", stop="06:00", days=16)
    late = _account(accept_rules=(night,))
    assert _in(late, now=_dt.datetime(2026, 12, 4, 23, 0)) is None
    assert _in(late, now=_dt.datetime(2026, 12, 5, 5, 0)) is None
    assert _in(late, now=_dt.datetime(2026, 12, 6, 5, 0)) == policy.DND
    # inside the window, the caller must be in its groups
    friends = AcceptWindow(persistent=True, groups=frozenset({"friends"}), start="00:00", stop="23:59", days=127)
    picky = _account(accept_rules=(friends,), phonebook=(("sip:bob@example.net", "friends"),))
    assert _in(picky) is None
    assert _in(picky, caller="sip:carol@example.net") == policy.NOT_ACCEPTED


def test_incoming_5_reject_list():
    acct = _account(reject_members=("sip:spam@example.net", "sip:+31201234567@example.com"))
    assert _in(acct, caller="sip:spam@example.net") == policy.REJECTED
    assert _in(acct, caller="<sip:Spam@example.net>") is None  # the user part is case-sensitive
    assert _in(acct, caller="sip:spam@EXAMPLE.NET;user=phone") == policy.REJECTED
    assert _in(acct, caller="tel:+31201234567") == policy.REJECTED  # a number, any form
    assert _in(acct, caller="sip:friend@example.net") is None
