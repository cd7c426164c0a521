"""The relay as a process: real UDP on loopback, driven over its JSON-lines control port."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session as DbSession

from ngnpro.models import MediaSession
from tests.mediaproxy.rtp import Control, Endpoint, start_relay


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("relay")
    svc, control, rng = start_relay(tmp, f"sqlite:///{tmp / 'msp.sqlite'}", media_timeout=2)
    yield svc, control, rng
    svc.stop()


@pytest.fixture
def ctl(relay):
    c = Control(relay[1])
    yield c
    c.close()


def stream(ep: Endpoint, port: int | None = None, **kw) -> dict:
    d = {"type": "audio", "ip": ep.host, "port": ep.port if port is None else port, "codec": "PCMU"}
    d.update(kw)
    return d


def offer(ctl: Control, call: str, streams: list[dict], from_tag: str = "ft", to_tag: str = "") -> dict:
    r = ctl.call(command="update", call_id=call, from_tag=from_tag, to_tag=to_tag, direction="offer", streams=streams)
    assert r["ok"], r
    return r


def answer(ctl: Control, call: str, streams: list[dict], from_tag: str = "ft", to_tag: str = "tt") -> dict:
    r = ctl.call(command="update", call_id=call, from_tag=from_tag, to_tag=to_tag, direction="answer", streams=streams)
    assert r["ok"], r
    return r


def setup_call(ctl, call, a, b):
    o = offer(ctl, call, [stream(a)])
    an = answer(ctl, call, [stream(b)])
    # the offer's answer is where the callee sends, the answer's is where the caller sends
    return (o["ip"], an["streams"][0]["port"]), (o["ip"], o["streams"][0]["port"]), o, an


def test_ports_even_odd_and_media_both_ways(relay, ctl):
    lo, hi = relay[2]
    a, b = Endpoint(), Endpoint()
    to_b_side, to_a_side, o, an = setup_call(ctl, "call-both", a, b)
    for s in (o["streams"][0], an["streams"][0]):
        assert s["port"] % 2 == 0 and s["rtcp_port"] == s["port"] + 1
        assert lo <= s["port"] < hi
    assert o["streams"][0]["port"] != an["streams"][0]["port"]
    a.send(to_b_side, 5)  # caller -> relay (caller's leg) -> callee
    got = b.receive(5)
    assert len(got) == 5
    assert got[0][1] == to_a_side  # it comes from the relay port the callee sends to
    assert got[0][0][12:] == bytes(160)  # payload untouched
    b.send(to_a_side, 3)
    assert len(a.receive(3)) == 3
    r = ctl.call(command="remove", call_id="call-both", from_tag="ft", to_tag="tt")
    st = r["summary"]["streams"][0]
    assert st["packets_caller_to_callee"] == 5 and st["packets_callee_to_caller"] == 3
    assert st["bytes_caller_to_callee"] == 5 * 172
    assert st["codec"] == "PCMU" and st["media_type"] == "audio"
    # ports are closed after remove: nothing is relayed any more
    a.send(to_b_side, 1)
    assert b.receive(1, 0.3) == []


def test_symmetric_learning_behind_nat_and_no_hijack(relay, ctl):
    a, b, attacker = Endpoint(), Endpoint(), Endpoint()
    # both phones announce a private port that is not where they really send from (NAT)
    o = offer(ctl, "call-nat", [stream(a, port=4000)])
    an = answer(ctl, "call-nat", [stream(b, port=4002)])
    a_side, b_side = (o["ip"], an["streams"][0]["port"]), (o["ip"], o["streams"][0]["port"])
    a.send(a_side, 2)  # relayed to the callee's SDP address (4002), where nobody listens
    assert b.receive(1, 0.3) == []
    b.send(b_side, 2)  # the callee's real address is learned from its packets
    assert len(a.receive(2)) == 2  # and the caller's was learned from its first packets
    a.send(a_side, 2)
    assert len(b.receive(2)) == 2
    attacker.send(a_side, 3)  # a third socket sends to the caller's relay port
    attacker.send(b_side, 3)
    assert b.receive(1, 0.3) == [] and a.receive(1, 0.3) == []
    assert attacker.receive(1, 0.3) == []
    a.send(a_side, 1)
    assert len(b.receive(1)) == 1  # the locked stream still works
    s = ctl.call(command="remove", call_id="call-nat", from_tag="ft")["summary"]["streams"][0]
    assert s["caller"]["dropped"] == 3 and s["callee"]["dropped"] == 3
    assert s["packets_caller_to_callee"] == 5
    assert s["caller"]["source"] == f"127.0.0.1:{a.port}"
    assert s["caller"]["sdp"] == "127.0.0.1:4000"


def test_reinvite_hold_video_codec_change_and_port0(relay, ctl):
    a, b, av, bv = Endpoint(), Endpoint(), Endpoint(), Endpoint()
    o = offer(ctl, "call-re", [stream(a)])
    an = answer(ctl, "call-re", [stream(b)])
    ports = (o["streams"][0], an["streams"][0])
    # hold by the caller: sendonly, the callee answers recvonly; same ports
    o2 = offer(ctl, "call-re", [stream(a, direction="sendonly")])
    an2 = answer(ctl, "call-re", [stream(b, direction="recvonly")])
    assert (o2["streams"][0], an2["streams"][0]) == ports
    # old style hold with c=0.0.0.0, from the callee this time (a re-INVITE the other way)
    o3 = offer(ctl, "call-re", [stream(b) | {"ip": "0.0.0.0"}], from_tag="tt", to_tag="ft")
    assert o3["streams"][0] == ports[1]  # the caller keeps sending to the caller's leg
    an3 = answer(ctl, "call-re", [stream(a)], from_tag="tt", to_tag="ft")
    assert an3["streams"][0] == ports[0]
    # resume, add video and change codec
    o4 = offer(ctl, "call-re", [stream(a, codec="G722"), {"type": "video", "ip": "127.0.0.1", "port": av.port, "codec": "H264"}])
    an4 = answer(ctl, "call-re", [stream(b, codec="G722"), {"type": "video", "ip": "127.0.0.1", "port": bv.port, "codec": "H264"}])
    assert o4["streams"][0] == ports[0] and an4["streams"][0] == ports[1]
    video_to_b = ("127.0.0.1", an4["streams"][1]["port"])
    av.send(video_to_b, 2)
    assert len(bv.receive(2)) == 2
    b.send((o["ip"], ports[0]["port"]), 1)
    assert len(a.receive(1)) == 1
    # drop video with port 0: audio keeps its ports, video ports close
    o5 = offer(ctl, "call-re", [stream(a, codec="G722"), {"type": "video", "ip": "127.0.0.1", "port": 0}])
    assert o5["streams"][1] == {"port": 0, "rtcp_port": 0} and o5["streams"][0] == ports[0]
    answer(ctl, "call-re", [stream(b, codec="G722"), {"type": "video", "ip": "127.0.0.1", "port": 0}])
    av.send(video_to_b, 1)
    assert bv.receive(1, 0.3) == []
    a.send(("127.0.0.1", ports[1]["port"]), 1)
    assert len(b.receive(1)) == 1
    summary = ctl.call(command="remove", call_id="call-re", from_tag="ft")["summary"]
    streams = {(s["index"], s["media_type"]): s for s in summary["streams"]}
    assert streams[(0, "audio")]["codec"] == "G722"
    assert streams[(1, "video")]["reason"] == "removed" and streams[(1, "video")]["packets_caller_to_callee"] == 2
    assert streams[(0, "audio")]["reason"] == "bye"


def test_media_timeout_event(relay, ctl):
    a, b = Endpoint(), Endpoint()
    to_b_side, to_a_side, *_ = setup_call(ctl, "call-to", a, b)
    a.send(to_b_side, 1)
    b.send(to_a_side, 1)
    t0 = time.monotonic()
    ev = ctl.wait_event(5)
    elapsed = time.monotonic() - t0
    assert ev["event"] == "timeout" and ev["call_id"] == "call-to" and ev["reason"] == "media timeout"
    assert ev["from_tag"] == "ft" and ev["to_tag"] == "tt"
    # media_timeout is 2 s (the fixture): reported no sooner, and by the relay's next timeout
    # scan (every 0.5 s) after it, plus 0.5 s for a loaded machine
    assert 1.9 <= elapsed <= 2 + 0.5 + 0.5, elapsed
    r = ctl.call(command="remove", call_id="call-to", from_tag="ft", reason="media timeout")
    assert r["summary"]["reason"] == "media timeout"


def test_hold_does_not_time_out_the_silent_party(relay, ctl):
    a, b = Endpoint(), Endpoint()
    o = offer(ctl, "call-hold", [stream(a, direction="inactive")])
    an = answer(ctl, "call-hold", [stream(b, direction="inactive")])
    assert o["ok"] and an["ok"]
    with pytest.raises(TimeoutError):
        ctl.wait_event(3.5)
    ctl.call(command="remove", call_id="call-hold", from_tag="ft")


def test_bad_requests_get_errors_and_change_nothing(relay, ctl):
    assert ctl.raw(b"not json\n")["error"] == "not a JSON object"
    r = ctl.call(command="frobnicate")
    assert not r["ok"] and "unknown command" in r["error"]
    r = ctl.call(command="update", call_id="bad", from_tag="f", direction="offer", streams=[{"ip": "x", "port": 4}])
    assert not r["ok"] and "streams[0].ip" in r["error"]
    r = ctl.call(command="update", call_id="bad", from_tag="f", to_tag="t", direction="answer", streams=[{"ip": "127.0.0.1", "port": 4}])
    assert not r["ok"] and "no session" in r["error"]
    r = ctl.call(command="update", call_id="bad", from_tag="f", direction="offer", streams=[{"ip": "127.0.0.1", "port": 70000}])
    assert not r["ok"] and "port" in r["error"]
    r = ctl.call(command="remove", call_id="bad")
    assert not r["ok"] and "no session" in r["error"]
    assert ctl.call(command="ping")["sessions"] == 0


def test_summary_row_written(tmp_path, db_url):
    svc, control, _ = start_relay(tmp_path, db_url)
    try:
        ctl = Control(control)
        a, b = Endpoint(), Endpoint()
        to_b_side, to_a_side, *_ = setup_call(ctl, "call-db", a, b)
        a.send(to_b_side, 4)
        assert len(b.receive(4)) == 4
        summary = ctl.call(command="remove", call_id="call-db", from_tag="ft", reason="bye")["summary"]
        engine = create_engine(db_url)
        row = None
        deadline = time.monotonic() + 20
        while row is None and time.monotonic() < deadline:
            with DbSession(engine) as db:
                try:
                    row = db.scalars(select(MediaSession).where(MediaSession.call_id == "call-db")).first()
                except Exception:  # the relay may still be creating the schema
                    row = None
            time.sleep(0.1)
        engine.dispose()
        assert row is not None, svc.output()
        assert (row.from_tag, row.to_tag, row.reason, row.relay) == ("ft", "tt", "bye", "127.0.0.1")
        streams = json.loads(row.streams)
        assert streams == summary["streams"]
        assert streams[0]["packets_caller_to_callee"] == 4
        ctl.close()
    finally:
        svc.stop()


def test_ipv6_relay(tmp_path):
    svc, control, _ = start_relay(tmp_path, f"sqlite:///{tmp_path / 'msp.sqlite'}", relay_ip="::1")
    try:
        ctl = Control(control)
        a, b = Endpoint("::1"), Endpoint("::1")
        o = offer(ctl, "call-v6", [stream(a, port=a.port)])
        an = answer(ctl, "call-v6", [stream(b)])
        assert o["ip"] == "::1"
        a.send(("::1", an["streams"][0]["port"]), 2)
        got = b.receive(2)
        assert len(got) == 2 and got[0][1][:2] == ("::1", o["streams"][0]["port"])
        b.send(("::1", o["streams"][0]["port"]), 1)
        assert len(a.receive(1)) == 1
        s = ctl.call(command="remove", call_id="call-v6")["summary"]["streams"][0]
        assert (s["packets_caller_to_callee"], s["packets_callee_to_caller"]) == (2, 1)
        assert s["caller"]["source"] == f"[::1]:{a.port}"
        ctl.close()
    finally:
        svc.stop()
