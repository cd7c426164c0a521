"""End to end: ``python -m sipproxy`` with ``[radius] server`` set, real sipp user agents
and a real FreeRADIUS (started by the test on loopback with the shipped dictionary): the
Start and Stop of a call, the Failed record of a busy callee, in FreeRADIUS's detail file
and in the ``accounting`` table -- and a FreeRADIUS stopped during calls gets every record
once it is back, none lost and none twice.

The first test runs on every database backend (the ``accounting`` table's rows); the others
are about the proxy's local queue, FreeRADIUS and the relay's summary, which no backend
changes, and run on SQLite only."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from sqlalchemy import create_engine, select

from ngnpro.models import AccountingRecord
from tests.sipproxy_e2e.sipp_support import USERS, ProxyProcess, Sipp, auth_row, call_row, provision

from .freeradius import NAS_KINDS, FreeRadius


def _proxy(tmp_path, db_url, radius: FreeRadius) -> ProxyProcess:
    return ProxyProcess(tmp_path, db_url, sections={"radius": {
        "server": [f"127.0.0.1:{radius.port}"], "secret": radius.secret, "timeout": 0.3,
        "retries": 1, "nas_identifier": "msp-e2e", "queue": str(tmp_path / "radius-queue.sqlite")}})


def _ok(sipp: Sipp, proxy: ProxyProcess) -> None:
    rc = sipp.wait()
    assert rc == 0, f"sipp {sipp.name} exited {rc}\n{sipp.report()}\n--- proxy\n{proxy.output()[-6000:]}"


def _register(tmp_path, proxy, user="bob", password="secret-b", name="reg") -> int:
    reg = Sipp(tmp_path, name, "e2e_register.xml", proxy.port, rows=[auth_row(user, password)])
    _ok(reg, proxy)
    return reg.port


def _call(tmp_path, proxy, name: str, pause_ms: int = 500) -> tuple[Sipp, Sipp]:
    port = _register(tmp_path, proxy, name=f"reg-{name}")
    uas = Sipp(tmp_path, f"uas-{name}", "e2e_uas.xml", proxy.port, port=port, server=True)
    uac = Sipp(tmp_path, f"uac-{name}", "acct_uac.xml", proxy.port,
               rows=[call_row("alice", "secret-a", "bob")], extra=("-d", str(pause_ms)))
    return uac, uas


#: each call's callee is registered from one sipp only (a second binding would fork the call)
ACCOUNTS = {**USERS, "carol": "secret-c", "dave": "secret-d"}


def _busy_call(tmp_path, proxy, name: str, callee: str) -> None:
    port = _register(tmp_path, proxy, user=callee, password=ACCOUNTS[callee], name=f"reg-{name}")
    uas = Sipp(tmp_path, f"uas-{name}", "acct_uas_busy.xml", proxy.port, port=port, server=True)
    uac = Sipp(tmp_path, f"uac-{name}", "e2e_uac_busy.xml", proxy.port,
               rows=[call_row("alice", "secret-a", callee)])
    _ok(uac, proxy)
    _ok(uas, proxy)


def _rows(db_url: str) -> list[AccountingRecord]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as c:
            return list(c.execute(select(AccountingRecord).order_by(AccountingRecord.id)))
    finally:
        engine.dispose()


@pytest.fixture
def radius(tmp_path):
    server = FreeRadius(tmp_path / "radius").start()
    yield server
    server.stop()


def test_call_start_and_stop_and_a_missed_call_reach_freeradius(db_url, tmp_path, radius):
    provision(db_url, users=ACCOUNTS)
    proxy = _proxy(tmp_path, db_url, radius)
    try:
        uac, uas = _call(tmp_path, proxy, "c1", pause_ms=1200)
        _ok(uac, proxy)
        _ok(uas, proxy)
        recs = radius.wait_for(lambda r: [x["Acct-Status-Type"] for x in r] == ["Start", "Stop"], calls_only=True)
        start, stop = recs
        call_id = start["Acct-Session-Id"]
        assert call_id and stop["Acct-Session-Id"] == call_id
        for rec in recs:
            assert rec["Sip-From-Tag"].endswith("e2e1") and rec["Sip-To-Tag"].startswith(
                rec["Sip-To-Tag"].split("e2eB")[0]) and "e2eB" in rec["Sip-To-Tag"]
            assert rec["Calling-Station-Id"] == "sip:alice@example.com"
            assert rec["Called-Station-Id"] == "sip:bob@example.com"
            assert rec["Canonical-URI"] == "sip:bob@example.com"
            assert rec["Sip-Translated-Request-URI"].startswith("sip:bob@127.0.0.1:")
            assert rec["User-Name"] == rec["Billing-Party"] == "alice@example.com"
            assert rec["Source-IP"] == "127.0.0.1" and int(rec["Source-Port"]) == uac.port
            assert rec["User-Agent"] == "acct-test-phone/1.0"
            assert rec["NAS-Identifier"] == "msp-e2e" and rec["NAS-Port"] == str(proxy.port)
            assert rec["Service-Type"] == "Sip-Session"
        assert start["Sip-Method"] == "Invite" and start["Sip-Response-Code"] == "200"
        assert start["Acct-Session-Time"] == "0"
        assert stop["Sip-Method"] == "Bye"
        assert 1 <= int(stop["Acct-Session-Time"]) <= 3  # the caller's 1.2 s pause, rounded
        assert stop["Sip-Call-Duration"] == stop["Acct-Session-Time"]
        assert stop["MSP-Disconnect-Party"] == "caller" and stop["MSP-Disconnect-Reason"] == "BYE"
        assert stop["Acct-Terminate-Cause"] == "User-Request"
        assert stop["Acct-Input-Octets"] == stop["Acct-Output-Octets"] == "0"  # no media relay here
        assert start["MSP-Record-Id"] != stop["MSP-Record-Id"]

        _busy_call(tmp_path, proxy, "c2", "carol")
        recs = radius.wait_for(lambda r: len(r) >= 3, calls_only=True)
        failed = recs[2]
        assert failed["Acct-Status-Type"] == "Failed"
        assert failed["Sip-Method"] == "Invite" and failed["Sip-Response-Code"] == "486"
        assert failed["Acct-Session-Id"] != call_id
        assert failed["Calling-Station-Id"] == "sip:alice@example.com"
        assert failed["MSP-Disconnect-Reason"] == "486 Busy Here"

        # dave has no registration: routing answers 480 itself -- a missed call too
        uac = Sipp(tmp_path, "uac-c3", "acct_uac_480.xml", proxy.port, rows=[call_row("alice", "secret-a", "dave")])
        _ok(uac, proxy)
        recs = radius.wait_for(lambda r: len(r) >= 4, calls_only=True)
        unreachable = recs[3]
        assert unreachable["Acct-Status-Type"] == "Failed" and unreachable["Sip-Response-Code"] == "480"
        assert unreachable["Called-Station-Id"] == unreachable["Canonical-URI"] == "sip:dave@example.com"

        deadline = time.monotonic() + 10
        while len(_rows(db_url)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        ended, missed, _unreachable = _rows(db_url)
        assert (ended.call_id, ended.status, ended.caller, ended.callee) == \
            (call_id, 200, "alice@example.com", "bob@example.com")
        assert ended.duration == int(stop["Acct-Session-Time"]) and ended.reason == "caller: BYE"
        assert ended.user_agent == "acct-test-phone/1.0" and ended.source_ip == "127.0.0.1"
        assert (missed.status, missed.duration, missed.reason) == (486, 0, "Busy Here")
        time.sleep(0.5)
        assert len(radius.records(calls_only=True)) == 4  # nothing sent twice

        # the proxy's accounting announced itself as it started, and does as it stops
        on = radius.records()[0]
        assert on["Acct-Status-Type"] == "Accounting-On"
        assert on["NAS-Identifier"] == "msp-e2e" and on["NAS-IP-Address"] == "127.0.0.1"
        assert on["Acct-Session-Id"].startswith("msp-e2e-") and on["MSP-Record-Id"]
        proxy.stop()
        recs = radius.wait_for(lambda r: bool(r) and r[-1]["Acct-Status-Type"] == "Accounting-Off", timeout=5)
        assert [r["Acct-Status-Type"] for r in recs] == [
            "Accounting-On", "Start", "Stop", "Failed", "Failed", "Accounting-Off"]
        off = recs[-1]
        assert off["Acct-Session-Id"] == on["Acct-Session-Id"] and off["MSP-Record-Id"] != on["MSP-Record-Id"]
        assert off["NAS-Identifier"] == "msp-e2e" and off["NAS-IP-Address"] == "127.0.0.1"
    finally:
        proxy.stop()


def test_freeradius_down_during_calls_records_arrive_once_after_restart(sqlite_url, tmp_path, radius):
    provision(sqlite_url, users=ACCOUNTS)
    proxy = _proxy(tmp_path, sqlite_url, radius)
    try:
        uac, uas = _call(tmp_path, proxy, "long", pause_ms=4000)
        radius.wait_for(lambda r: [x["Acct-Status-Type"] for x in r] == ["Start"], calls_only=True)
        radius.stop()  # FreeRADIUS goes away while the call is up
        _ok(uac, proxy)  # the call ends: its Stop cannot be delivered
        _ok(uas, proxy)
        _busy_call(tmp_path, proxy, "missed", "carol")  # and a missed call while it is away
        time.sleep(1.5)  # the proxy tries, times out, keeps them queued
        assert "no RADIUS server answered" in proxy.output()
        assert [x["Acct-Status-Type"] for x in radius.records(calls_only=True)] == ["Start"]

        # the proxy itself restarts too: the queue file keeps what was not sent
        proxy.stop()
        proxy = _proxy(tmp_path, sqlite_url, radius)
        radius.start()  # same port, same detail file
        recs = radius.wait_for(lambda r: len(r) >= 3, timeout=20, calls_only=True)
        time.sleep(1.5)  # anything sent twice would show up by now
        recs = radius.records(calls_only=True)
        kinds = Counter((r["Acct-Session-Id"], r["Acct-Status-Type"]) for r in recs)
        assert sorted(kinds.values()) == [1, 1, 1], kinds  # none twice
        assert [r["Acct-Status-Type"] for r in recs] == ["Start", "Stop", "Failed"]  # none lost, in order
        stop = recs[1]
        assert stop["Acct-Session-Id"] == recs[0]["Acct-Session-Id"]
        assert 3 <= int(stop["Acct-Session-Time"]) <= 6
        assert int(stop.get("Acct-Delay-Time", "0")) >= 1  # it waited in the queue

        # Accounting-Off of the stop while FreeRADIUS was away waited in the queue too, and
        # went out before the restarted proxy's Accounting-On
        every = radius.records()
        assert [r["Acct-Status-Type"] for r in every] == [
            "Accounting-On", "Start", "Stop", "Failed", "Accounting-Off", "Accounting-On"]
        first_on, off, second_on = every[0], every[4], every[5]
        assert first_on["Acct-Session-Id"] == off["Acct-Session-Id"] != second_on["Acct-Session-Id"]
        assert int(off.get("Acct-Delay-Time", "0")) >= 1
        proxy.stop()  # FreeRADIUS is up: this Off leaves with the process
        every = radius.wait_for(lambda r: len(r) >= 7, timeout=5)
        assert every[6]["Acct-Status-Type"] == "Accounting-Off"
        assert every[6]["Acct-Session-Id"] == second_on["Acct-Session-Id"]
        time.sleep(0.5)
        assert len(radius.records()) == 7  # none twice
    finally:
        proxy.stop()


def test_media_timeout_stop_carries_the_relay_summary(sqlite_url, tmp_path, radius):
    """A call relayed by a real ``python -m mediaproxy`` whose media stops: the proxy ends
    it (BYE both ways) and its Stop says so, with the relay's codecs and counts."""
    import socket

    from tests.helpers import free_port
    from tests.mediaproxy.rtp import start_relay
    from tests.sipproxy_e2e.sipp_support import SCENARIOS

    provision(sqlite_url, users=ACCOUNTS)
    relay, control, _ports = start_relay(tmp_path, sqlite_url, media_timeout=2)
    proxy = None
    try:
        proxy = ProxyProcess(tmp_path, sqlite_url, media_relay="always", sections={
            "mediaproxy": {"control": f"127.0.0.1:{control}", "media_timeout": 2},
            "radius": {"server": f"127.0.0.1:{radius.port}", "secret": radius.secret, "timeout": 0.3,
                       "queue": str(tmp_path / "radius-queue.sqlite")}})
        audio = tmp_path / "tone.pcmu"
        audio.write_bytes(bytes([0xFF, 0x7F] * 4000))  # 1 s of PCMU, then silence
        uac_xml = tmp_path / "e2e_timeout_uac.xml"
        uac_xml.write_text((SCENARIOS / "e2e_timeout_uac.xml").read_text().replace("RTP_FILE", str(audio)))
        port = _register(tmp_path, proxy)
        echo_port = free_port(socket.SOCK_DGRAM) & ~1
        uas = Sipp(tmp_path, "uas", "e2e_timeout_uas.xml", proxy.port, port=port, server=True,
                   timeout=30, extra=("-rtp_echo", "-mp", str(echo_port), "-mi", "127.0.0.1"))
        uac = Sipp(tmp_path, "uac", str(uac_xml), proxy.port, timeout=30,
                   rows=[call_row("alice", "secret-a", "bob")], extra=("-mi", "127.0.0.1"))
        assert uac.wait(40) == 0 and uas.wait(40) == 0, f"{uac.report()}\n{proxy.output()[-4000:]}"
        start, stop = radius.wait_for(lambda r: [x["Acct-Status-Type"] for x in r] == ["Start", "Stop"],
                                      calls_only=True)
        assert stop["Acct-Session-Id"] == start["Acct-Session-Id"]
        assert stop["MSP-Disconnect-Party"] == "proxy" and stop["MSP-Disconnect-Reason"] == "Media timeout"
        assert stop["Acct-Terminate-Cause"] == "Idle-Timeout" and stop["Media-Info"] == "timeout"
        assert stop["Media-Codecs"] == "PCMU" and stop["Sip-Applications"] == "audio"
        # 1 s of RTP from the caller, echoed by the callee: both ways counted
        assert int(stop["Acct-Input-Octets"]) > 8000 and int(stop["Acct-Input-Packets"]) >= 40
        assert int(stop["Acct-Output-Octets"]) > 8000 and int(stop["Acct-Output-Packets"]) >= 40
        assert 2 <= int(stop["Acct-Session-Time"]) <= 6
    finally:
        if proxy is not None:
            proxy.stop()
        relay.stop()


def test_worker_processes_share_the_queue(sqlite_url, tmp_path, radius):
    """``workers = 2``: a call's BYE may reach the other worker than its 2xx did; each call
    still gets its Start and its Stop, once, sent by worker 0."""
    provision(sqlite_url, users=ACCOUNTS)
    proxy = ProxyProcess(tmp_path, sqlite_url, workers=2, sections={"radius": {
        "server": f"127.0.0.1:{radius.port}", "secret": radius.secret, "timeout": 0.3,
        "queue": str(tmp_path / "radius-queue.sqlite")}})
    try:
        deadline = time.monotonic() + 30  # both workers serving (a loaded machine starts them slowly)
        while " [1] INFO listening" not in proxy.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        for n, callee in enumerate(("bob", "carol", "dave")):
            port = _register(tmp_path, proxy, user=callee, password=ACCOUNTS[callee], name=f"reg{n}")
            uas = Sipp(tmp_path, f"uas{n}", "e2e_uas.xml", proxy.port, port=port, server=True)
            uac = Sipp(tmp_path, f"uac{n}", "acct_uac.xml", proxy.port,
                       rows=[call_row("alice", "secret-a", callee)], extra=("-d", "200"))
            _ok(uac, proxy)
            _ok(uas, proxy)
        recs = radius.wait_for(lambda r: len(r) >= 6, calls_only=True)
        time.sleep(1.0)
        kinds = Counter((r["Acct-Session-Id"], r["Acct-Status-Type"]) for r in radius.records(calls_only=True))
        assert len(kinds) == 6 and set(kinds.values()) == {1}, kinds
        assert {r["Canonical-URI"] for r in recs} == {"sip:bob@example.com", "sip:carol@example.com",
                                                      "sip:dave@example.com"}
        proxy.stop()
        # one Accounting-On and one -Off for the proxy: worker 0's, not one per worker
        nas = radius.wait_for(lambda r: [x["Acct-Status-Type"] for x in r if x["Acct-Status-Type"] in NAS_KINDS]
                              == ["Accounting-On", "Accounting-Off"], timeout=5)
        assert len(nas) == 8
    finally:
        proxy.stop()
