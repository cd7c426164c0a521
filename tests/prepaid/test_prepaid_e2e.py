"""End to end with sipp through ``python -m sipproxy``: a prepaid call to the PSTN (LCR to a
gateway played by sipp) is cut off when its balance runs out, within a second, with BYE
both ways and ``Reason: SIP ;cause=402;text="Credit exhausted"``; the balance ends at zero;
parallel calls share it; a proxy killed during a call debits it once after its restart;
calls without a rate or without credit are refused at start; ``max_call_duration`` ends
any call."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from ngnpro import models as m
from ngnpro.models import open_database
from tests.helpers import free_port
from tests.sipproxy_e2e.sipp_support import SCENARIOS, ProxyProcess, Sipp, call_row, provision

USERS = {"pp": "pw-p", "pp2": "pw-q", "pp3": "pw-r", "broke": "pw-b", "post": "pw-o"}
#: 0.60 a minute in 1-second increments: a cent a second
CENT_A_SECOND = Decimal("0.60")
NUMBER = "0031201234567"  # to the PSTN (default pstn_regexp), rated by prefix 31
UNRATED = "0049301234567"  # routed (prefix 0049) but no rate


def _scenario(tmp: Path, name: str, reason: str) -> str:
    """tests/sipp's media-timeout caller/callee, expecting the proxy's BYE for ``reason``."""
    text = (SCENARIOS / name).read_text().replace("SIP ;cause=200;text=.Media timeout.", reason)
    text = text.replace('<exec rtp_stream="RTP_FILE,1,0"/>', "")
    out = tmp / name.replace("e2e_timeout", "cut")
    out.write_text(text)
    return str(out)


def _stamps(trace: Path) -> list[tuple[float, str]]:
    """(time, first line) of every message in a sipp -trace_msg file."""
    out, stamp = [], None
    for line in trace.read_text(errors="replace").splitlines():
        found = re.search(r"(\d{4}-\d\d-\d\d)\s+(\d\d:\d\d:\d\d\.\d+)", line)
        if line.startswith("-----") and found:
            stamp = dt.datetime.fromisoformat(f"{found.group(1)} {found.group(2)}").timestamp()
        elif stamp is not None and line.strip() and " message " not in line:
            out.append((stamp, line.strip()))
            stamp = None
    return out


def _answered_to_bye(trace: Path) -> float:
    """Seconds from the callee's 200 OK to the INVITE to the BYE it received."""
    msgs = _stamps(trace)
    ok = next(t for t, first in msgs if first.startswith("SIP/2.0 200"))
    bye = next(t for t, first in msgs if first.startswith("BYE "))
    return bye - ok


def _set(url: str, **balances: Decimal) -> None:
    engine, sessions = open_database(url)
    with sessions.begin() as s:
        for user, balance in balances.items():
            s.execute(m.SipAccount.__table__.update().where(m.SipAccount.username == user).values(balance=balance))
        s.execute(m.CreditEntry.__table__.delete())
    engine.dispose()


def _ledger(url: str, user: str) -> tuple[Decimal, list[tuple[str, Decimal]]]:
    engine, sessions = open_database(url)
    with sessions() as s:
        account = s.scalar(select(m.SipAccount).where(m.SipAccount.username == user))
        history = [(e.session, e.value) for e in s.scalars(select(m.CreditEntry).where(
            m.CreditEntry.account_id == account.id))]
        balance = account.balance
    engine.dispose()
    return balance, history


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prepaid")
    url = f"sqlite:///{tmp / 'msp.sqlite'}"
    provision(url, users=USERS)
    gw_port = free_port()
    engine, sessions = open_database(url)
    with sessions.begin() as s:
        for user in ("pp", "pp2", "pp3", "broke"):
            s.execute(m.SipAccount.__table__.update().where(m.SipAccount.username == user).values(prepaid=True))
        s.add(m.SipAccountGroup(account_id=s.scalar(select(m.SipAccount.id).where(m.SipAccount.username == "post")),
                                name="free-pstn"))
        carrier = m.Carrier(name="carrier")
        s.add(carrier)
        s.flush()
        s.add(m.Gateway(carrier_id=carrier.id, name="gw", ip="127.0.0.1", port=gw_port))
        s.add(m.Route(carrier_id=carrier.id, prefix="0031", priority=10))
        s.add(m.Route(carrier_id=carrier.id, prefix="0049", priority=10))
        s.add(m.RatingRate(profile="default", prefix="31", price_per_minute=CENT_A_SECOND, increment=1))
    engine.dispose()
    proxy = ProxyProcess(tmp, url)
    yield proxy, url, gw_port, tmp
    proxy.stop()


def _call(tmp: Path, name: str, proxy, gw_port: int, user: str, password: str, reason: str, *,
          number: str = NUMBER) -> tuple[Sipp, Sipp]:
    uas = Sipp(tmp, f"{name}-gw", _scenario(tmp, "e2e_timeout_uas.xml", reason), proxy.port, port=gw_port,
               server=True, timeout=30)
    uac = Sipp(tmp, name, _scenario(tmp, "e2e_timeout_uac.xml", reason), proxy.port,
               rows=[call_row(user, password, number)], timeout=30)
    return uac, uas


CREDIT = "SIP ;cause=402;text=.Credit exhausted."


def test_a_call_is_cut_when_the_balance_runs_out(platform, tmp_path):
    proxy, url, gw_port, _ = platform
    _set(url, pp=Decimal("0.05"))  # five seconds
    uac, uas = _call(tmp_path, "cut", proxy, gw_port, "pp", "pw-p", CREDIT)
    assert uac.wait(40) == 0, f"{uac.report()}\n--- proxy\n{proxy.output()[-4000:]}"
    assert uas.wait(10) == 0, uas.report()
    lasted = _answered_to_bye(tmp_path / "cut-gw.msg")
    assert 5.0 <= lasted < 6.0, lasted  # on time, within a second
    balance, history = _ledger(url, "pp")
    assert balance == Decimal("0") and len(history) == 1 and history[0][1] == Decimal("-0.05")


def test_parallel_calls_share_one_balance(platform, tmp_path):
    proxy, url, gw_port, _ = platform
    _set(url, pp2=Decimal("0.08"))  # two calls from the same moment: four seconds each
    gw = Sipp(tmp_path, "par-gw", _scenario(tmp_path, "e2e_timeout_uas.xml", CREDIT), proxy.port, port=gw_port,
              server=True, timeout=30, calls=2)
    calls = [Sipp(tmp_path, f"par{n}", _scenario(tmp_path, "e2e_timeout_uac.xml", CREDIT), proxy.port,
                  rows=[call_row("pp2", "pw-q", NUMBER)], timeout=30) for n in (1, 2)]
    for c in calls:
        assert c.wait(40) == 0, f"{c.report()}\n--- proxy\n{proxy.output()[-4000:]}"
    gw.wait(10)
    balance, history = _ledger(url, "pp2")
    assert balance == Decimal("0") and len(history) == 2
    assert sum(v for _, v in history) == Decimal("-0.08")
    # neither call had the whole balance: each ended well before 8 s
    for n in (1, 2):
        msgs = _stamps(tmp_path / f"par{n}.msg")
        ok = next(t for t, first in msgs if first.startswith("SIP/2.0 200"))
        bye = next(t for t, first in msgs if first.startswith("BYE "))
        assert bye - ok < 6.5, bye - ok


def test_no_credit_and_no_rate_are_refused_at_start(platform, tmp_path):
    proxy, url, gw_port, _ = platform
    _set(url, broke=Decimal("0.005"), pp3=Decimal("5"))
    for name, user, pw, number, status, reason, warning in (
            ("broke", "broke", "pw-b", NUMBER, 402, "Insufficient Credit", "The prepaid balance does not cover the call"),
            ("unrated", "pp3", "pw-r", UNRATED, 403, "Destination Not Rated",
             "No rate for this destination: a prepaid account cannot pay for it")):
        scenario = tmp_path / f"uac{status}.xml"
        scenario.write_text((SCENARIOS / "e2e_uac_reject.xml").read_text().replace(
            '<recv response="403"/>', f'<recv response="{status}"/>'))
        sipp = Sipp(tmp_path, name, str(scenario), proxy.port, rows=[call_row(user, pw, number)])
        assert sipp.wait() == 0, f"{sipp.report()}\n--- proxy\n{proxy.output()[-3000:]}"
        trace = (tmp_path / f"{name}.msg").read_text(errors="replace")
        assert f"SIP/2.0 {status} {reason}" in trace and f'"{warning}"' in trace
    assert _ledger(url, "broke")[0] == Decimal("0.005")


def test_a_proxy_killed_during_a_call_debits_it_once_after_restart(platform, tmp_path):
    proxy, url, gw_port, _ = platform
    _set(url, pp3=Decimal("1.00"))
    uas = Sipp(tmp_path, "kill-gw", "e2e_uas.xml", proxy.port, port=gw_port, server=True, timeout=30)
    uac = Sipp(tmp_path, "kill", "e2e_uac.xml", proxy.port, rows=[call_row("pp3", "pw-r", NUMBER)],
               timeout=30, extra=("-d", "4000"))  # the caller hangs up after 4 s
    trace = tmp_path / "kill.msg"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not (trace.exists() and "ACK sip:" in trace.read_text(errors="replace")):
        time.sleep(0.05)
    proxy.service.proc.kill()  # kill -9 once the call is up: no graceful stop
    proxy.service.proc.wait()
    restarted = ProxyProcess(proxy.tmp, url, port=proxy.port)
    proxy.service = restarted.service  # the module's other tests go on with it (and stop it)
    assert uac.wait(30) == 0, f"{uac.report()}\n--- proxy\n{restarted.output()[-4000:]}"
    assert uas.wait(10) == 0, uas.report()
    time.sleep(0.5)  # the dialog store's batch
    balance, history = _ledger(url, "pp3")
    assert len(history) == 1, history  # once, by the restarted proxy that found the call in SQL
    assert Decimal("-0.05") <= history[0][1] <= Decimal("-0.03") and balance == Decimal("1.00") + history[0][1]


@contextlib.contextmanager
def _alice_and_bob(tmp: Path, **settings: object) -> Iterator[tuple[ProxyProcess, int]]:
    """A proxy of its own with ``settings``, alice and bob provisioned and bob registered:
    (the proxy, bob's port)."""
    url = f"sqlite:///{tmp / 'msp.sqlite'}"
    provision(url, users={"alice": "pw-a", "bob": "pw-b"})
    proxy = ProxyProcess(tmp, url, **settings)
    try:
        reg = Sipp(tmp, "reg", "e2e_register.xml", proxy.port,
                   rows=["bob;example.com;[authentication username=bob password=pw-b]"])
        assert reg.wait() == 0, reg.report()
        yield proxy, reg.port
    finally:
        proxy.stop()


def test_max_call_duration_ends_any_call(tmp_path):
    reason = "SIP ;cause=200;text=.Maximum call duration."
    with _alice_and_bob(tmp_path, max_call_duration=2) as (proxy, bob_port):
        uas = Sipp(tmp_path, "max-b", _scenario(tmp_path, "e2e_timeout_uas.xml", reason), proxy.port, port=bob_port,
                   server=True, timeout=20)
        uac = Sipp(tmp_path, "max", _scenario(tmp_path, "e2e_timeout_uac.xml", reason), proxy.port,
                   rows=[call_row("alice", "pw-a", "bob")], timeout=20)
        assert uac.wait(30) == 0, f"{uac.report()}\n--- proxy\n{proxy.output()[-4000:]}"
        assert uas.wait(10) == 0, uas.report()
        assert 2.0 <= _answered_to_bye(tmp_path / "max-b.msg") < 3.0


def _with_session_timer(tmp: Path, scenario: str, name: str, interval: int) -> str:
    """A scenario whose INVITEs ask for session timers (``Supported: timer``)."""
    text = Path(scenario).read_text().replace(
        "Max-Forwards: 70\n", f"Max-Forwards: 70\n      Session-Expires: {interval}\n      Supported: timer\n")
    out = tmp / name
    out.write_text(text)
    return str(out)


EXPIRED = "SIP ;cause=408;text=.Session expired."


def test_a_session_not_refreshed_is_ended_when_it_expires(tmp_path):
    """RFC 4028: the caller asks for a 2 s session interval and supports timers, the callee
    does not do them: the proxy puts ``Session-Expires: 2;refresher=uac`` and ``Require: timer``
    in the 2xx; no refresh comes (the caller vanished), so the proxy ends the call when the
    interval passes, BYE both ways."""
    with _alice_and_bob(tmp_path, session_min_se=1) as (proxy, bob_port):
        uas = Sipp(tmp_path, "se-b", _scenario(tmp_path, "e2e_timeout_uas.xml", EXPIRED), proxy.port, port=bob_port,
                   server=True, timeout=20)
        uac_xml = _with_session_timer(tmp_path, _scenario(tmp_path, "e2e_timeout_uac.xml", EXPIRED), "se_uac.xml", 2)
        uac = Sipp(tmp_path, "se", uac_xml, proxy.port, rows=[call_row("alice", "pw-a", "bob")], timeout=20)
        assert uac.wait(30) == 0, f"{uac.report()}\n--- proxy\n{proxy.output()[-4000:]}"
        assert uas.wait(10) == 0, uas.report()
        caller_trace = (tmp_path / "se.msg").read_text(errors="replace")
        assert "Session-Expires: 2;refresher=uac" in caller_trace and "Require: timer" in caller_trace
        assert 2.0 <= _answered_to_bye(tmp_path / "se-b.msg") < 3.0


def test_an_invite_below_min_se_gets_422(tmp_path):
    # bob is online: the call is routed, then refused
    with _alice_and_bob(tmp_path, session_min_se=300) as (proxy, _):
        scenario = tmp_path / "uac422.xml"
        scenario.write_text((SCENARIOS / "e2e_uac_reject.xml").read_text().replace(
            '<recv response="403"/>', '<recv response="422"/>'))
        uac = Sipp(tmp_path, "se422", _with_session_timer(tmp_path, str(scenario), "se422.xml", 120), proxy.port,
                   rows=[call_row("alice", "pw-a", "bob")])
        assert uac.wait() == 0, f"{uac.report()}\n--- proxy\n{proxy.output()[-3000:]}"
        trace = (tmp_path / "se422.msg").read_text(errors="replace")
        assert "SIP/2.0 422 Session Interval Too Small" in trace and "Min-SE: 300" in trace
