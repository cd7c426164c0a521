"""End to end with sipp through ``python -m sipproxy``: the authorization refusals that
test_sipproxy_e2e_authorization.py does not cover, each with its status, reason phrase and
``Warning: 399`` text (docs/routing.md "Authorization").

Outgoing (an authenticated subscriber calls): blocked by its customer, the monthly quota
used up (this month's accounting rows against ``quota``; the ``quota`` group), a site hook
refusing.  Incoming (a caller of another domain, not challenged, calls a subscriber): the
callee's ACL, the callee blocked, accept rules that do not take the caller, outside the
accept rules' windows in the callee's time zone, a site hook refusing.  Each refusal has a
control beside it where one is cheap: the same call without the one fact that refuses it
gets past the rule (to 404 No Route To Destination or 480 without a Warning: nothing is
provisioned beyond the rule).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from ngnpro.models import (
    AcceptRule,
    AccountingRecord,
    PhonebookEntry,
    SipAccount,
    SipAccountAcl,
    SipAccountGroup,
    SipAccountProperty,
    open_database,
)

from .sipp_support import SCENARIOS, ProxyProcess, Sipp, call_row, provision

USERS = {"bob": "pw-b", "custblock": "pw-c", "spender": "pw-s", "thrifty": "pw-t", "capped": "pw-q",
         "hooked": "pw-h", "fenced": "pw-f", "open": "pw-o", "frozen": "pw-z", "choosy": "pw-y",
         "sleepy": "pw-e", "awake": "pw-w", "guarded": "pw-g"}
PSTN = "0031201234567"  # a PSTN number by the default pstn_regexp; no LCR route: 404 past the rules
PREMIUM = "0031900123456"  # the site hook's refused numbers (+31900...)
ELSEWHERE = "elsewhere.example"  # callers of another domain are not challenged (incoming calls)

#: the site's hooks: premium numbers refused to everybody (outgoing rule 7, with its own
#: Warning text), calls to ``guarded`` from another domain refused (incoming rule 6, the
#: default Warning)
PREPROCESS_PSTN = '''
def hook(request, api):
    if (api.number() or "").startswith("+31900"):
        api.reply(403, "Premium Rate Refused", warning="Premium-rate numbers are not allowed on this platform")
'''
HANDLE_LOCAL_EXTENSIONS = '''
def hook(request, api):
    if request.uri.user == "guarded" and request.from_.uri.host != api.server_domain:
        api.reply(403, "Outside Callers Refused")
'''


def _window_around(now: dt.datetime) -> tuple[str, str]:
    """An accept window from an hour before ``now`` to an hour after it (HH:MM)."""
    return ((now - dt.timedelta(hours=1)).strftime("%H:%M"), (now + dt.timedelta(hours=1)).strftime("%H:%M"))


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("refusals")
    url = f"sqlite:///{tmp / 'msp.sqlite'}"
    provision(url, users=USERS)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    first_of_month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start, stop = _window_around(now)
    engine, sessions = open_database(url)
    with sessions() as s, s.begin():
        ids = {u: s.scalar(select(SipAccount.id).where(SipAccount.username == u)) for u in USERS}
        # outgoing
        s.add(SipAccountGroup(account_id=ids["custblock"], name="blocked"))
        s.add(SipAccountProperty(account_id=ids["custblock"], name="blocked_by", value="customer"))
        for user in ("spender", "thrifty", "capped", "hooked"):
            s.add(SipAccountGroup(account_id=ids[user], name="free-pstn"))
        for user in ("spender", "thrifty"):
            s.get(SipAccount, ids[user]).quota = 10
        # spender: 6 + 5 this month (11 >= 10); thrifty: 3 this month, 50 last month
        for who, price, when in (("spender", "6", now), ("spender", "5", first_of_month),
                                 ("thrifty", "3", now), ("thrifty", "50", first_of_month - dt.timedelta(seconds=1))):
            s.add(AccountingRecord(call_id=f"{who}-{price}", billing_party=f"{who}@example.com",
                                   caller=f"{who}@example.com", start_time=when, stop_time=when,
                                   duration=60, price=Decimal(price), status=200))
        s.add(SipAccountGroup(account_id=ids["capped"], name="quota"))  # put there by the quota job
        # incoming
        s.add(SipAccountAcl(account_id=ids["fenced"], ip="192.0.2.0", mask=24))
        s.add(SipAccountAcl(account_id=ids["open"], ip="192.0.2.0", mask=24))
        s.add(SipAccountAcl(account_id=ids["open"], ip="127.0.0.0", mask=8))
        s.add(SipAccountGroup(account_id=ids["frozen"], name="blocked"))
        # choosy: a temporary rule (until removed) accepting only the phonebook's friends
        s.add(AcceptRule(account_id=ids["choosy"], persistent=False, groups="friends", duration=0))
        s.add(PhonebookEntry(account_id=ids["choosy"], uri=f"sip:pal@{ELSEWHERE}", group="friends"))
        # sleepy and awake accept everybody from an hour before to an hour after now, UTC
        # wall clock; sleepy lives in Tokyo (UTC+9, no summer time), where that is long past
        for user, zone in (("sleepy", "Asia/Tokyo"), ("awake", "")):
            s.get(SipAccount, ids[user]).timezone = zone
            s.add(AcceptRule(account_id=ids[user], persistent=True, start=start, stop=stop, days=127,
                             groups="everybody"))
    engine.dispose()
    site = tmp / "site"
    site.mkdir()
    (site / "preprocess_pstn.py").write_text(PREPROCESS_PSTN)
    (site / "handle_local_extensions.py").write_text(HANDLE_LOCAL_EXTENSIONS)
    p = ProxyProcess(tmp, url, siteconfig=str(site), server_domain="example.com")
    yield p
    p.stop()


def _expecting(tmp: Path, scenario: str, status: int) -> str:
    """tests/sipp's ``scenario`` expecting the final ``status`` instead of its own."""
    text = (SCENARIOS / scenario).read_text()
    own = "403" if scenario == "e2e_uac_reject.xml" else "603"
    out = tmp / f"{Path(scenario).stem}_{status}.xml"
    out.write_text(text.replace(f'<recv response="{own}"/>', f'<recv response="{status}"/>'))
    return str(out)


def _run(tmp: Path, proxy: ProxyProcess, name: str, row: str, status: int, *, outgoing: bool) -> str:
    """One sipp call (``outgoing``: an authenticated subscriber's, else an unchallenged
    caller's of another domain) that must end with ``status``; its message trace."""
    scenario = "e2e_uac_reject.xml" if outgoing else "e2e_uac_declined.xml"
    sipp = Sipp(tmp, name, _expecting(tmp, scenario, status), proxy.port, rows=[row])
    rc = sipp.wait()
    assert rc == 0, f"sipp exited {rc}\n{sipp.report()}\n--- proxy\n{proxy.output()[-4000:]}"
    assert ("2 INVITE" if outgoing else "1 INVITE", status) in sipp.finals()
    return (tmp / f"{name}.msg").read_text(errors="replace")


def _refused(trace: str, status: int, reason: str, warning: str) -> None:
    assert f"SIP/2.0 {status} {reason}\r\n" in trace or f"SIP/2.0 {status} {reason}\n" in trace, trace
    assert f'Warning: 399 example.com "{warning}"' in trace, trace


def _incoming(caller: str, callee: str) -> str:
    return f"{caller};{ELSEWHERE};{callee};example.com"


# -- outgoing ---------------------------------------------------------------------------


def test_an_account_blocked_by_its_customer_gets_403(proxy, tmp_path):
    trace = _run(tmp_path, proxy, "custblock", call_row("custblock", "pw-c", "bob"), 403, outgoing=True)
    _refused(trace, 403, "Account Blocked By Customer", "The account is blocked by its customer")
    assert "authorization: INVITE from custblock@example.com (source 127.0.0.1)" in proxy.output()


def test_the_monthly_quota_used_up_by_this_months_calls_gets_403(proxy, tmp_path):
    """spender's accounting rows this month cost 11 against a quota of 10; thrifty's cost
    3 this month (and 50 the month before, which does not count) and goes on to the
    PSTN -- which has no route here."""
    trace = _run(tmp_path, proxy, "spender", call_row("spender", "pw-s", PSTN), 403, outgoing=True)
    _refused(trace, 403, "Quota Exceeded", "The monthly quota of the account is used up")
    control = _run(tmp_path, proxy, "thrifty", call_row("thrifty", "pw-t", PSTN), 404, outgoing=True)
    assert "SIP/2.0 404 No Route To Destination" in control and "Warning:" not in control


def test_a_call_to_another_subscriber_is_not_refused_for_quota(proxy, tmp_path):
    """The quota is the PSTN's rule: spender still reaches bob (not online: 480)."""
    trace = _run(tmp_path, proxy, "spender-bob", call_row("spender", "pw-s", "bob"), 480, outgoing=True)
    assert "Warning:" not in trace


def test_the_quota_group_gets_403(proxy, tmp_path):
    trace = _run(tmp_path, proxy, "capped", call_row("capped", "pw-q", PSTN), 403, outgoing=True)
    _refused(trace, 403, "Quota Exceeded", "The monthly quota of the account is used up")


def test_a_site_hook_refuses_an_outgoing_call(proxy, tmp_path):
    trace = _run(tmp_path, proxy, "premium", call_row("hooked", "pw-h", PREMIUM), 403, outgoing=True)
    _refused(trace, 403, "Premium Rate Refused", "Premium-rate numbers are not allowed on this platform")
    assert ("authorization: INVITE from hooked@example.com (source 127.0.0.1) to sip:0031900123456@example.com "
            "refused by the site hook preprocess_pstn: 403") in proxy.output()
    control = _run(tmp_path, proxy, "hooked", call_row("hooked", "pw-h", PSTN), 404, outgoing=True)
    assert "Warning:" not in control


# -- incoming ---------------------------------------------------------------------------


def test_a_source_address_outside_the_callees_acl_gets_403(proxy, tmp_path):
    """fenced takes calls from 192.0.2.0/24 only; open from 127.0.0.0/8 too (and is not
    online: 480 past the ACL)."""
    trace = _run(tmp_path, proxy, "fenced", _incoming("pal", "fenced"), 403, outgoing=False)
    _refused(trace, 403, "Source Address Not Allowed", "The source address may not call this account")
    assert f"authorization: INVITE from sip:pal@{ELSEWHERE} (source 127.0.0.1) to sip:fenced@example.com" \
        in proxy.output()
    control = _run(tmp_path, proxy, "open", _incoming("pal", "open"), 480, outgoing=False)
    assert "Warning:" not in control


def test_a_blocked_callee_gets_403(proxy, tmp_path):
    trace = _run(tmp_path, proxy, "frozen", _incoming("pal", "frozen"), 403, outgoing=False)
    _refused(trace, 403, "Account Blocked", "The called account is blocked")


def test_a_caller_the_accept_rules_do_not_take_is_declined(proxy, tmp_path):
    """choosy accepts its phonebook's ``friends`` only: pal is one (480: not online),
    stranger is not (603)."""
    trace = _run(tmp_path, proxy, "stranger", _incoming("stranger", "choosy"), 603, outgoing=False)
    _refused(trace, 603, "Decline", "The callee accepts no calls from this caller now")
    control = _run(tmp_path, proxy, "pal", _incoming("pal", "choosy"), 480, outgoing=False)
    assert "Warning:" not in control


def test_outside_the_accept_windows_in_the_callees_time_zone_gets_480(proxy, tmp_path):
    """The same window around now (UTC wall clock): in sleepy's Tokyo it is nine hours
    later, outside it (480 Do Not Disturb); awake (no time zone: UTC) is inside it, so
    the call goes on (480 without a Warning: not online)."""
    trace = _run(tmp_path, proxy, "sleepy", _incoming("pal", "sleepy"), 480, outgoing=False)
    _refused(trace, 480, "Temporarily Unavailable", "The callee accepts no calls at this time (do not disturb)")
    control = _run(tmp_path, proxy, "awake", _incoming("pal", "awake"), 480, outgoing=False)
    assert "Warning:" not in control


def test_a_site_hook_refuses_an_incoming_call(proxy, tmp_path):
    """The hook names no Warning text: the refusal says which hook refused."""
    trace = _run(tmp_path, proxy, "guarded", _incoming("pal", "guarded"), 403, outgoing=False)
    _refused(trace, 403, "Outside Callers Refused", "Refused by the site hook handle_local_extensions")
    control = _run(tmp_path, proxy, "bob", _incoming("pal", "bob"), 480, outgoing=False)
    assert "Warning:" not in control
