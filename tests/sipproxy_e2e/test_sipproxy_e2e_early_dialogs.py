"""End to end with sipp: a ringing call's ``early`` dialog row in the shared database.

Two ``python -m sipproxy`` processes on one SQLite database (two proxies, as two hosts
would run them): a caller with ``call_limit = 1`` whose call rings through one is refused
by the other (403 Call Limit Reached); the early row is gone once the call is cancelled
or answered 486, and the caller may call again.  A proxy killed while a call rings and
started again finds the row, relays the callee's 2xx (it has no transaction for it) and
confirms the row; the BYE removes it.  (docs/callcontrol.md, "A dialog's life".)
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from ngnpro.models import Dialog, SipAccount, open_database

from .sipp_support import SCENARIOS, ProxyProcess, Sipp, auth_row, call_row, provision

USERS = {"ringer": "pw-r", "ringing": "pw-i", "busy": "pw-b", "offline": "pw-o", "caller": "pw-c",
         "answerer": "pw-a"}
LIMIT = ("Call Limit Reached", "The account has reached its maximum number of concurrent calls")


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """Proxies A and B on one database; ``ringer`` may have one call at a time."""
    tmp = tmp_path_factory.mktemp("early")
    url = f"sqlite:///{tmp / 'msp.sqlite'}"
    provision(url, users=USERS)
    engine, sessions = open_database(url)
    with sessions.begin() as s:
        s.execute(SipAccount.__table__.update().where(SipAccount.username == "ringer").values(call_limit=1))
    engine.dispose()
    proxies = []
    try:
        for name in ("a", "b"):
            (tmp / name).mkdir()
            proxies.append(ProxyProcess(tmp / name, url))
        yield url, proxies[0], proxies[1]
    finally:
        for p in proxies:
            p.stop()


def _rows(url: str) -> list[tuple[str, str, str]]:
    """(state, caller, to_tag) of every dialog row, as another process sees them."""
    engine, sessions = open_database(url)
    try:
        with sessions() as s:
            return [(r.state, r.caller, r.to_tag) for r in s.scalars(select(Dialog))]
    finally:
        engine.dispose()


def _wait_rows(url: str, want, timeout: float = 3.0) -> list[tuple[str, str, str]]:  # noqa: ANN001
    """The rows once ``want(rows)`` holds (the writer batches every 50 ms), or as they are."""
    deadline = time.monotonic() + timeout
    rows = _rows(url)
    while not want(rows) and time.monotonic() < deadline:
        time.sleep(0.05)
        rows = _rows(url)
    return rows


def _wait_for(trace: Path, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if trace.exists() and text in trace.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in {trace}")


def _expecting(tmp: Path, scenario: str, own: str, status: int) -> str:
    """tests/sipp's ``scenario`` expecting the final ``status`` instead of its ``own``."""
    out = tmp / f"{Path(scenario).stem}_{status}.xml"
    out.write_text((SCENARIOS / scenario).read_text().replace(f'<recv response="{own}"/>',
                                                              f'<recv response="{status}"/>'))
    return str(out)


def _register(tmp: Path, proxy: ProxyProcess, user: str) -> int:
    reg = Sipp(tmp, f"reg-{user}", "e2e_register.xml", proxy.port, rows=[auth_row(user, USERS[user])])
    assert reg.wait() == 0, reg.report()
    return reg.port


def _ok(sipp: Sipp, *proxies: ProxyProcess) -> None:
    rc = sipp.wait()
    assert rc == 0, f"sipp exited {rc}\n{sipp.report()}" + "".join(
        f"\n--- proxy\n{p.output()[-3000:]}" for p in proxies)


def test_a_call_ringing_through_one_proxy_counts_on_the_other_until_cancelled(shared, tmp_path):
    url, a, b = shared
    uas = Sipp(tmp_path, "uas", "e2e_uas_ring.xml", a.port, port=_register(tmp_path, a, "ringing"), server=True)
    slow_cancel = tmp_path / "uac_cancel_later.xml"
    slow_cancel.write_text((SCENARIOS / "e2e_uac_cancel.xml").read_text().replace(
        '<recv response="180"/>', '<recv response="180"/>\n  <pause milliseconds="3000"/>', 1))
    first = Sipp(tmp_path, "first", str(slow_cancel), a.port, rows=[call_row("ringer", "pw-r", "ringing")])
    _wait_for(tmp_path / "first.msg", "SIP/2.0 180")
    assert _wait_rows(url, bool) == [("early", "ringer@example.com", "")]  # no To tag while it rings
    second = Sipp(tmp_path, "second", "e2e_uac_reject.xml", b.port, rows=[call_row("ringer", "pw-r", "offline")])
    _ok(second, a, b)
    trace = (tmp_path / "second.msg").read_text(errors="replace")
    assert f"SIP/2.0 403 {LIMIT[0]}" in trace and f'"{LIMIT[1]}"' in trace
    _ok(first, a, b)
    _ok(uas, a, b)
    assert _wait_rows(url, lambda rows: not rows) == []  # the CANCEL's 487 removed it
    # the caller may call again, through either proxy (here someone not online: 480)
    after = Sipp(tmp_path, "after", _expecting(tmp_path, "e2e_uac_reject.xml", "403", 480), b.port,
                 rows=[call_row("ringer", "pw-r", "offline")])
    _ok(after, a, b)


def test_a_call_answered_486_leaves_no_row(shared, tmp_path):
    url, a, b = shared
    uas = Sipp(tmp_path, "uas", "acct_uas_busy.xml", b.port, port=_register(tmp_path, b, "busy"), server=True)
    uac = Sipp(tmp_path, "uac", "e2e_uac_busy.xml", b.port, rows=[call_row("ringer", "pw-r", "busy")])
    _ok(uac, a, b)
    _ok(uas, a, b)
    assert ("2 INVITE", 486) in uac.finals()
    assert _wait_rows(url, lambda rows: not rows) == []
    again = Sipp(tmp_path, "again", _expecting(tmp_path, "e2e_uac_reject.xml", "403", 480), a.port,
                 rows=[call_row("ringer", "pw-r", "offline")])
    _ok(again, a, b)  # not refused: the failed call no longer counts


def test_a_proxy_restarted_while_a_call_rings_confirms_it_when_answered(shared, tmp_path):
    """Killed (SIGKILL) after the 180: the callee's 200 (sent 2 s later, and retransmitted)
    reaches the new process, which relays it to the caller along the Via and confirms the
    early row from it; the ACK and the BYE follow the Record-Route to it, and the BYE's
    answer removes the row."""
    url, _, _ = shared
    proxy = ProxyProcess(tmp_path, url)
    try:
        late = tmp_path / "uas_answer_later.xml"
        late.write_text((SCENARIOS / "e2e_uas.xml").read_text().replace(
            "  <send retrans=\"500\">", '  <pause milliseconds="2000"/>\n  <send retrans="500">', 1))
        uas = Sipp(tmp_path, "uas", str(late), proxy.port, port=_register(tmp_path, proxy, "answerer"),
                   server=True, timeout=30)
        uac = Sipp(tmp_path, "uac", "e2e_uac.xml", proxy.port, rows=[call_row("caller", "pw-c", "answerer")],
                   timeout=30, extra=("-d", "2000"))
        _wait_for(tmp_path / "uac.msg", "SIP/2.0 180")
        assert _wait_rows(url, bool) == [("early", "caller@example.com", "")]
        proxy.service.proc.kill()
        proxy.service.proc.wait()
        proxy.service.stop()
        proxy = ProxyProcess(tmp_path, url, port=proxy.port)
        assert _rows(url) == [("early", "caller@example.com", "")]  # found by the new process
        rows = _wait_rows(url, lambda rows: rows and rows[0][0] == "confirmed", timeout=15)
        assert len(rows) == 1 and rows[0][:2] == ("confirmed", "caller@example.com") and rows[0][2], rows
        _ok(uac, proxy)
        _ok(uas, proxy)
        assert ("2 INVITE", 200) in uac.finals() and ("3 BYE", 200) in uac.finals()
        assert "200 to INVITE without a transaction" in proxy.output()  # the new process relayed it
        assert _wait_rows(url, lambda rows: not rows) == []
    finally:
        proxy.stop()
