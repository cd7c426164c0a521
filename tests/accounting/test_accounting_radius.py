"""The queue and the RADIUS client against a real FreeRADIUS (started by the test on
loopback, see tests/accounting/freeradius.py): records arrive with their attributes, a
server that does not answer is failed over, and while none answers the records wait in
the local queue file -- sent once, in order, when one answers again."""

from __future__ import annotations

import socket

import pytest

from sipproxy.accounting import events as ev
from sipproxy.accounting.radius import RadiusClient, RecordQueue
from sipproxy.accounting.service import Accounting
from sipproxy.dialog.state import DialogInfo

from .freeradius import FreeRadius

T0 = 1_800_000_000.0


@pytest.fixture
def radius(tmp_path):
    server = FreeRadius(tmp_path / "radius").start()
    yield server
    server.stop()


def _call(n: int = 1) -> ev.Call:
    info = DialogInfo(call_id=f"call-{n}@test", from_tag=f"f{n}", to_tag=f"t{n}",
                      caller="alice@example.com", callee="bob@example.com", caller_cseq=2)
    return ev.answered(info, when=T0, source_ip="127.0.0.1", source_port=5070, user_agent="phone/1",
                       proxy_ip="127.0.0.1", proxy_port=5060)


def _start(call: ev.Call) -> tuple:
    return (ev.record_id(call.call_id, call.from_tag, ev.START), T0, ev.start_attributes(call))


def _stop_maker(end_time: float):
    def make(call: ev.Call):
        end = ev.CallEnd(end_time, "caller", "BYE")
        rid = ev.record_id(call.call_id, call.from_tag, ev.STOP)
        return [(rid, end_time, ev.stop_attributes(call, end))], [(rid, ev.stop_row(call, end))]
    return make


def _blackhole() -> socket.socket:
    """A UDP port that receives and never answers (a RADIUS server gone silent)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s


def test_record_reaches_freeradius_with_its_attributes(radius):
    client = RadiusClient([("127.0.0.1", radius.port)], radius.secret, timeout=1.0, retries=1)
    call = _call()
    assert client.send(ev.start_attributes(call, {"nas_identifier": "msp-test"})) == f"127.0.0.1:{radius.port}"
    [rec] = radius.wait_for(lambda r: len(r) == 1)
    assert rec["Acct-Status-Type"] == "Start"
    assert rec["Acct-Session-Id"] == "call-1@test"
    assert rec["Sip-From-Tag"] == "f1" and rec["Sip-To-Tag"] == "t1"
    assert rec["Sip-Method"] == "Invite" and rec["Sip-Response-Code"] == "200"
    assert rec["Calling-Station-Id"] == "sip:alice@example.com"
    assert rec["Called-Station-Id"] == "sip:bob@example.com"
    assert rec["Billing-Party"] == "alice@example.com" and rec["User-Agent"] == "phone/1"
    assert rec["Source-IP"] == "127.0.0.1" and rec["NAS-Identifier"] == "msp-test"
    assert rec["Service-Type"] == "Sip-Session"


def test_failover_to_the_next_server_on_timeout(radius):
    silent = _blackhole()
    try:
        client = RadiusClient([("127.0.0.1", silent.getsockname()[1]), ("127.0.0.1", radius.port)],
                              radius.secret, timeout=0.3, retries=1)
        assert client.send(ev.start_attributes(_call())) == f"127.0.0.1:{radius.port}"
        silent.settimeout(0.1)
        tries = []
        try:
            while True:
                tries.append(silent.recv(4096))
        except TimeoutError:
            pass
        assert len(tries) == 2 and tries[0] == tries[1]  # the first server got it twice, identical
        # the silent server is skipped for a while: the next record goes straight on
        assert client.send(ev.start_attributes(_call(2))) == f"127.0.0.1:{radius.port}"
        silent.settimeout(0.2)
        with pytest.raises(TimeoutError):
            silent.recv(4096)
        assert [r["Acct-Session-Id"] for r in radius.wait_for(lambda r: len(r) == 2)] == \
            ["call-1@test", "call-2@test"]
    finally:
        silent.close()


def test_queue_keeps_a_record_once_and_survives_reopening(tmp_path):
    path = tmp_path / "q.sqlite"
    q = RecordQueue(str(path))
    call = _call()
    q.add([_start(call)], call=call, next_interim=T0 + 60)
    q.add([_start(call)], call=call, next_interim=T0 + 60)  # the same event again
    assert q.counts() == {"calls": 1, "records": 1, "rows": 0}
    q.close()
    q = RecordQueue(str(path))  # a restarted proxy
    assert [r[0] for r in q.pending()] == [_start(call)[0]]
    # the BYE (from either side), seen twice: one Stop, one row
    assert q.end_call("call-1@test", "t1", "f1", _stop_maker(T0 + 30)) is not None
    assert q.end_call("call-1@test", "f1", "t1", _stop_maker(T0 + 31)) is None
    assert q.counts() == {"calls": 0, "records": 2, "rows": 1}
    stop = q.pending()[1][2]
    assert dict(stop)["Acct-Session-Time"] == 30


def test_interim_updates_are_queued_per_interval(tmp_path):
    q = RecordQueue(str(tmp_path / "q.sqlite"))
    call = _call()
    q.add([], call=call, next_interim=T0 + 60)

    def make(c, seq):
        return [(ev.record_id(c.call_id, c.from_tag, ev.INTERIM, seq), T0 + 60 * seq,
                 ev.interim_attributes(c, T0 + 60 * seq, seq))]

    assert q.interims(T0 + 59, 60, make) == 0
    assert q.interims(T0 + 61, 60, make) == 1
    assert q.interims(T0 + 62, 60, make) == 0
    assert q.interims(T0 + 500, 60, make) == 1  # a long pause gives one update, not seven
    times = [dict(a)["Acct-Session-Time"] for _, _, a in q.pending()]
    assert times == [60, 120]


def test_records_wait_while_no_server_answers_then_go_once_in_order(tmp_path):
    radius = FreeRadius(tmp_path / "radius")  # configured, not running yet
    q = RecordQueue(str(tmp_path / "q.sqlite"))
    client = RadiusClient([("127.0.0.1", radius.port)], radius.secret, timeout=0.2, retries=0)
    acct = Accounting(q, client)
    calls = [_call(n) for n in range(3)]
    for c in calls:
        q.add([_start(c)], call=c)
    assert acct.run_once() is False  # nobody answers
    assert q.counts()["records"] == 3
    q.end_call(calls[0].call_id, calls[0].from_tag, "", _stop_maker(T0 + 5))
    radius.start()
    try:
        assert acct.run_once() is True
        assert q.counts()["records"] == 0 and acct.sent == 4
        assert acct.run_once() is True  # nothing left: nothing sent again
        recs = radius.wait_for(lambda r: len(r) >= 4)
        assert [(r["Acct-Session-Id"], r["Acct-Status-Type"]) for r in recs] == [
            ("call-0@test", "Start"), ("call-1@test", "Start"), ("call-2@test", "Start"),
            ("call-0@test", "Stop")]
        assert all(int(r.get("Acct-Delay-Time", "0")) >= 0 for r in recs)
    finally:
        radius.stop()


def test_interim_updates_reach_freeradius(radius, tmp_path):
    import time

    q = RecordQueue(str(tmp_path / "q.sqlite"))
    client = RadiusClient([("127.0.0.1", radius.port)], radius.secret, timeout=1.0, retries=1)
    acct = Accounting(q, client, interim_interval=60)
    now = time.time()
    call = ev.answered(DialogInfo(call_id="long@test", from_tag="f", to_tag="t", caller="alice@example.com",
                                  callee="bob@example.com"), when=now - 61)
    q.add([], call=call, next_interim=now - 1)  # answered 61 s ago: its first update is due
    assert acct.run_once() is True
    assert acct.run_once() is True  # not due again for a minute
    [rec] = radius.wait_for(lambda r: len(r) == 1)
    assert rec["Acct-Status-Type"] == "Interim-Update"
    assert rec["Acct-Session-Id"] == "long@test" and int(rec["Acct-Session-Time"]) in (61, 62)
    assert q.counts() == {"calls": 1, "records": 0, "rows": 0}
