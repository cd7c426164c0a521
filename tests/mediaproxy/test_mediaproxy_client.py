"""sipproxy.media.relay against real relay processes: SDP in, relayed media, several relays."""

from __future__ import annotations

import gevent
import pytest
from gevent.event import AsyncResult

from sipproxy.media.relay import MediaRelayError, MediaRelays, should_relay
from sipproxy.sip.sdp import parse
from tests.mediaproxy.rtp import Endpoint, start_relay


def sdp(ep: Endpoint, extra: str = "") -> str:
    return (f"v=0\r\no=- 1 1 IN IP4 {ep.host}\r\ns=-\r\nc=IN IP4 {ep.host}\r\nt=0 0\r\n"
            f"m=audio {ep.port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n{extra}")


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("client")
    svc, control, rng = start_relay(tmp, f"sqlite:///{tmp / 'msp.sqlite'}", media_timeout=2)
    yield control
    svc.stop()


@pytest.fixture
def two_relays(tmp_path):
    url = f"sqlite:///{tmp_path / 'msp.sqlite'}"
    one = start_relay(tmp_path, url, media_timeout=2, name="relay1")
    two = start_relay(tmp_path, url, media_timeout=2, name="relay2")
    yield one, two
    one[0].stop()
    two[0].stop()


def call(relays: MediaRelays, call_id: str):
    a, b = Endpoint(), Endpoint()
    offered = parse(relays.offer(call_id, sdp(a), sender_tag="alice"))
    answered = parse(relays.answer(call_id, sdp(b), sender_tag="bob", peer_tag="alice"))
    to_b = (offered.media[0].address, offered.media[0].port)  # what bob sees: send here
    to_a = (answered.media[0].address, answered.media[0].port)
    return a, b, to_a, to_b


def test_offer_answer_media_and_summary(relay):
    c1 = relay
    relays = MediaRelays([f"127.0.0.1:{c1}"])
    a, b, to_a, to_b = call(relays, "c1")
    assert to_a[0] == "127.0.0.1" and to_a[1] != a.port and to_b[1] != b.port
    a.send(to_a, 3)
    assert len(b.receive(3)) == 3
    b.send(to_b, 2)
    assert len(a.receive(2)) == 2
    assert relays.relay_of("c1") == f"127.0.0.1:{c1}"
    summary = relays.remove("c1", reason="bye")
    assert summary["reason"] == "bye" and summary["from_tag"] == "alice" and summary["to_tag"] == "bob"
    s = summary["streams"][0]
    assert (s["packets_caller_to_callee"], s["packets_callee_to_caller"], s["codec"]) == (3, 2, "PCMU")
    assert relays.remove("c1") is None
    # a re-INVITE from bob (the callee) keeps the ports on hold
    a, b, to_a, to_b = call(relays, "c2")
    held = parse(relays.offer("c2", sdp(b, "a=sendonly\r\n"), sender_tag="bob", peer_tag="alice"))
    assert (held.media[0].port, held.media[0].direction) == (to_a[1], "sendonly")
    back = parse(relays.answer("c2", sdp(a, "a=recvonly\r\n"), sender_tag="alice", peer_tag="bob"))
    assert back.media[0].port == to_b[1]
    relays.remove("c2")
    relays.close()


def test_timeout_callback(relay):
    c1 = relay
    got = AsyncResult()
    relays = MediaRelays([f"127.0.0.1:{c1}"], on_timeout=got.set)
    a, b, to_a, to_b = call(relays, "c-timeout")
    a.send(to_a, 1)
    ev = got.get(timeout=10)
    assert (ev.call_id, ev.from_tag, ev.to_tag, ev.reason) == ("c-timeout", "alice", "bob", "media timeout")
    assert relays.remove(ev.call_id, reason=ev.reason)["reason"] == "media timeout"
    relays.close()


def test_sessions_spread_and_a_stopped_relay_is_skipped(two_relays):
    (svc1, c1, r1), (svc2, c2, r2) = two_relays
    relays = MediaRelays([f"127.0.0.1:{c1}", f"127.0.0.1:{c2}"], retry_interval=60)
    for i in range(4):
        call(relays, f"spread-{i}")
    used = [relays.relay_of(f"spread-{i}") for i in range(4)]
    assert used.count(f"127.0.0.1:{c1}") == 2 and used.count(f"127.0.0.1:{c2}") == 2
    svc1.stop()
    gevent.sleep(0.2)
    for i in range(4):
        a, b, to_a, to_b = call(relays, f"after-{i}")
        assert relays.relay_of(f"after-{i}") == f"127.0.0.1:{c2}"
        assert r2[0] <= to_a[1] < r2[1]
        a.send(to_a, 1)
        assert len(b.receive(1)) == 1
    svc2.stop()
    with pytest.raises(MediaRelayError):
        relays.offer("none-left", sdp(Endpoint()), sender_tag="alice")
    relays.close()


def test_no_media_lines_unchanged_and_policy():
    relays = MediaRelays(["127.0.0.1:9"])
    body = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\n"
    assert relays.offer("x", body, sender_tag="a") == body
    assert should_relay("always", False, False)
    assert should_relay("nat", False, True) and not should_relay("nat", False, False)
    assert should_relay("nat", False, False, account_flag=True)
    assert not should_relay("never", True, True)
