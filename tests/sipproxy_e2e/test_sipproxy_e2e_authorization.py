"""End to end: authorization refusals and PIKE through ``python -m sipproxy`` with sipp.

The caller's side (a blocked account, the call limit reached, a barred destination) and the
callee's (the reject list) each answer a status, a reason and a ``Warning: 399`` header;
PIKE drops a flooding source's requests while another source still gets through.
"""

from __future__ import annotations

import socket
import time

import pytest
from sqlalchemy import select

from ngnpro.models import (
    BarringPrefix,
    Dialog,
    RejectMember,
    SipAccount,
    SipAccountGroup,
    open_database,
)
from tests.helpers import free_port

from .sipp_support import SCENARIOS, ProxyProcess, Sipp, auth_row, call_row, provision

USERS = {"alice": "pw-a", "bob": "pw-b", "blocky": "pw-x", "limited": "pw-l", "barred": "pw-r",
         "picky": "pw-p", "ringer": "pw-g", "ringing": "pw-i", "offline": "pw-o"}


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("authz")
    url = f"sqlite:///{tmp / 'msp.sqlite'}"
    provision(url, users=USERS)
    engine, sessions = open_database(url)
    with sessions() as s, s.begin():
        ids = {u: s.scalar(select(SipAccount.id).where(SipAccount.username == u)) for u in USERS}
        s.add(SipAccountGroup(account_id=ids["blocky"], name="blocked"))
        s.get(SipAccount, ids["limited"]).call_limit = 1
        s.get(SipAccount, ids["ringer"]).call_limit = 1
        # one call answered elsewhere (another worker or proxy): the limit is reached
        s.add(Dialog(call_id="elsewhere-1", from_tag="t", caller="limited@example.com",
                     callee="bob@example.com", state="confirmed"))
        s.add(SipAccountGroup(account_id=ids["barred"], name="free-pstn"))
        s.add(BarringPrefix(account_id=ids["barred"], prefix="+31900"))
        s.add(RejectMember(account_id=ids["picky"], uri="sip:spam@elsewhere.example"))
    engine.dispose()
    p = ProxyProcess(tmp, url)
    yield p
    p.stop()


def _refused(tmp, proxy, scenario: str, row: str, status: int, reason: str, warning: str) -> str:
    sipp = Sipp(tmp, f"uac{status}", scenario, proxy.port, rows=[row])
    rc = sipp.wait()
    assert rc == 0, f"sipp exited {rc}\n{sipp.report()}\n--- proxy\n{proxy.output()[-4000:]}"
    assert ("2 INVITE" if "reject" in scenario else "1 INVITE", status) in sipp.finals()
    trace = (tmp / f"uac{status}.msg").read_text(errors="replace")
    assert f"SIP/2.0 {status} {reason}" in trace
    assert f'Warning: 399 127.0.0.1 "{warning}"' in trace
    return trace


def test_blocked_account_gets_403(proxy, tmp_path):
    _refused(tmp_path, proxy, "e2e_uac_reject.xml", call_row("blocky", "pw-x", "bob"), 403,
             "Account Blocked", "The account is blocked by the administrator")
    assert "authorization: INVITE from blocky@example.com (source 127.0.0.1)" in proxy.output()


def test_call_limit_reached_gets_403(proxy, tmp_path):
    _refused(tmp_path, proxy, "e2e_uac_reject.xml", call_row("limited", "pw-l", "bob"), 403,
             "Call Limit Reached", "The account has reached its maximum number of concurrent calls")


def test_a_call_still_ringing_counts_towards_the_limit(proxy, tmp_path):
    """ringer (call_limit 1) calls a phone that rings: while it rings a second call is
    refused; once the first is cancelled the next call goes through (here to a callee not
    online: 480)."""
    reg = Sipp(tmp_path, "reg", "e2e_register.xml", proxy.port, rows=[auth_row("ringing", "pw-i")])
    assert reg.wait() == 0, reg.report()
    uas = Sipp(tmp_path, "uas", "e2e_uas_ring.xml", proxy.port, port=reg.port, server=True)
    slow_cancel = tmp_path / "uac_cancel_later.xml"
    slow_cancel.write_text((SCENARIOS / "e2e_uac_cancel.xml").read_text().replace(
        '<recv response="180"/>', '<recv response="180"/>\n  <pause milliseconds="4000"/>', 1))
    first = Sipp(tmp_path, "first", str(slow_cancel), proxy.port, rows=[call_row("ringer", "pw-g", "ringing")])
    deadline = time.monotonic() + 5
    trace = tmp_path / "first.msg"
    while time.monotonic() < deadline and not (trace.exists() and "SIP/2.0 180" in trace.read_text(errors="replace")):
        time.sleep(0.05)
    _refused(tmp_path, proxy, "e2e_uac_reject.xml", call_row("ringer", "pw-g", "alice"), 403,
             "Call Limit Reached", "The account has reached its maximum number of concurrent calls")
    assert first.wait() == 0, first.report()
    assert uas.wait() == 0, uas.report()
    unavailable = tmp_path / "uac_480.xml"
    unavailable.write_text((SCENARIOS / "e2e_uac_reject.xml").read_text().replace(
        '<recv response="403"/>', '<recv response="480"/>'))
    after = Sipp(tmp_path, "after", str(unavailable), proxy.port, rows=[call_row("ringer", "pw-g", "offline")])
    assert after.wait() == 0, f"{after.report()}\n--- proxy\n{proxy.output()[-4000:]}"


def test_barred_destination_gets_403(proxy, tmp_path):
    _refused(tmp_path, proxy, "e2e_uac_reject.xml", call_row("barred", "pw-r", "0900123456"), 403,
             "Destination Barred", "The destination is barred for the account")


def test_a_caller_on_the_reject_list_is_declined(proxy, tmp_path):
    _refused(tmp_path, proxy, "e2e_uac_declined.xml", "spam;elsewhere.example;picky;example.com", 603,
             "Decline", "The callee rejects calls from this caller")


def _options(source: str, port: int, timeout: float = 1.0) -> bytes | None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((source, 0))
    s.settimeout(timeout)
    try:
        here = s.getsockname()
        s.sendto((f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
                  f"Via: SIP/2.0/UDP {here[0]}:{here[1]};rport;branch=z9hG4bK{time.time_ns()}\r\n"
                  f"From: <sip:mon@monitor.example>;tag=1\r\nTo: <sip:127.0.0.1:{port}>\r\n"
                  f"Call-ID: {time.time_ns()}@{source}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                  "Content-Length: 0\r\n\r\n").encode(), ("127.0.0.1", port))
        return s.recv(65535)
    except TimeoutError:
        return None
    finally:
        s.close()


def test_pike_blocks_a_flooding_source_while_another_gets_through(tmp_path):
    url = f"sqlite:///{tmp_path / 'msp.sqlite'}"
    provision(url, users={"alice": "pw-a"})
    proxy = ProxyProcess(tmp_path, url, pike_requests=20, pike_window=2.0, pike_block=30.0)
    try:
        assert (_options("127.0.0.1", proxy.port) or b"").startswith(b"SIP/2.0 200 ")
        flood = Sipp(tmp_path, "flood", "pike_flood.xml", proxy.port, port=free_port(),
                     extra=("-m", "200", "-r", "400", "-l", "400"))
        flood.wait()
        # the flooding address gets nothing any more; another address is answered
        assert _options("127.0.0.1", proxy.port) is None
        assert (_options("127.0.0.2", proxy.port) or b"").startswith(b"SIP/2.0 200 ")
        log = proxy.output()
        assert log.count("pike: 127.0.0.1 sent more than 20 requests in 2 s: blocked for 30 s") == 1
        assert "pike: 127.0.0.2" not in log
    finally:
        proxy.stop()


def test_pike_counts_a_source_across_the_workers(tmp_path, sqlite_url):  # SQLite: the workers' shared memory
    """Forty OPTIONS from forty ports of one address: the kernel spreads them over both
    workers, which must count them together -- twenty answered, not twenty per worker."""
    provision(sqlite_url, users={"alice": "pw-a"})
    proxy = ProxyProcess(tmp_path, sqlite_url, workers=2, pike_requests=20, pike_window=2.0, pike_block=30.0,
                         sections={"logging": {"level": "info"}})
    sockets = []
    try:
        for n in range(40):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.3", 0))
            s.settimeout(0.05)
            sockets.append(s)
            here = s.getsockname()
            s.sendto((f"OPTIONS sip:127.0.0.1:{proxy.port} SIP/2.0\r\n"
                      f"Via: SIP/2.0/UDP {here[0]}:{here[1]};rport;branch=z9hG4bKpike{n}\r\n"
                      f"From: <sip:mon@monitor.example>;tag={n}\r\nTo: <sip:127.0.0.1:{proxy.port}>\r\n"
                      f"Call-ID: pike-{n}@127.0.0.3\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                      "Content-Length: 0\r\n\r\n").encode(), ("127.0.0.1", proxy.port))
            time.sleep(0.005)
        deadline = time.monotonic() + 1.0
        answered = set()
        while time.monotonic() < deadline:
            for n, s in enumerate(sockets):
                try:
                    if s.recv(65535).startswith(b"SIP/2.0 200 "):
                        answered.add(n)
                except (TimeoutError, BlockingIOError):
                    pass
        assert 20 <= len(answered) <= 21, sorted(answered)  # (21: both workers counted at once)
        assert "pike: 127.0.0.3 sent more than 20 requests in 2 s" in proxy.output()
    finally:
        for s in sockets:
            s.close()
        proxy.stop()
