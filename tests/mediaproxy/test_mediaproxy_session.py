"""Session state without a relay process: allocation, learning rules, timeouts, bad input."""

from __future__ import annotations

import socket

import pytest

from mediaproxy.control import handle_line
from mediaproxy.relay import Relay
from mediaproxy.session import CALLEE, CALLER, ControlError, RelayPort, StreamOffer
from tests.helpers import free_port


def relay(pairs: int = 40, timeout: float = 5) -> Relay:
    low = 20000 + (free_port(socket.SOCK_DGRAM) % 20000) // 2 * 2
    return Relay("127.0.0.1", (low, low + 2 * pairs), timeout)


def audio(port: int, **kw) -> StreamOffer:
    return StreamOffer("audio", "127.0.0.1", port, **kw)


def test_ports_run_out_cleanly():
    r = relay(pairs=4)  # two streams of two pairs each
    r.update("c1", "a", "", "offer", [audio(4000)])
    r.update("c2", "a", "", "offer", [audio(4002)])
    before = r.stats()
    with pytest.raises(ControlError, match="no free relay ports"):
        r.update("c3", "a", "", "offer", [audio(4004)])
    assert r.stats() == before and "c3" not in r.sessions
    # a re-offer adding a stream when no ports are left fails; the call keeps what it had
    with pytest.raises(ControlError):
        r.update("c1", "a", "", "offer", [audio(4000), audio(4010)])
    r.remove("c2")
    r.update("c3", "a", "", "offer", [audio(4004)])
    r.close()


def test_answer_for_a_stream_not_offered_changes_nothing():
    r = relay()
    r.update("c1", "a", "", "offer", [audio(4000)])
    with pytest.raises(ControlError, match="stream 1 was not offered"):
        r.update("c1", "a", "b", "answer", [audio(5000), audio(5002)])
    leg = r.sessions["c1"].streams[0].legs[CALLEE]
    assert not leg.known and r.sessions["c1"].callee_tag == ""
    r.close()


def test_learning_rules():
    p = RelayPort(50000)
    p.sdp_addr = ("192.0.2.1", 4000)
    assert p.accept(("198.51.100.1", 31000))  # first source: learned (NAT)
    assert not p.accept(("203.0.113.66", 4000))  # anyone else: dropped
    assert p.learned == ("198.51.100.1", 31000) and p.dropped == 1
    assert p.accept(("192.0.2.1", 4000))  # the SDP address itself always wins
    assert p.learned == ("192.0.2.1", 4000)


def test_timeout_due_and_hold():
    r = relay(timeout=5)
    r.update("c1", "a", "", "offer", [audio(4000)], )
    s = r.sessions["c1"]
    assert s.due(1e9, 5)[0] is None  # not answered: no timeout yet
    r.update("c1", "a", "b", "answer", [audio(5000)])
    now = s.streams[0].legs[CALLER].updated
    assert s.due(now + 4, 5) == (None, now + 5)
    assert s.due(now + 6, 5)[0] is s.streams[0]
    s.streams[0].legs[CALLER].rtp.last = now + 5.5  # caller still sends; callee silent
    assert s.due(now + 6, 5)[0] is s.streams[0]
    r.update("c1", "b", "a", "offer", [audio(5000, direction="sendonly")])  # callee holds
    r.update("c1", "b", "a", "answer", [audio(4000, direction="recvonly")])
    later = s.streams[0].legs[CALLER].updated
    s.streams[0].legs[CALLEE].rtp.last = later
    stream, soonest = s.due(later + 4, 5)
    assert stream is None and soonest == later + 5  # only the callee (sendonly) must send
    r.close()


def test_control_lines_never_raise():
    r = relay()
    for line in [b"", b"[]", b"{}", b'{"command":"update"}', b'{"command":"update","call_id":5}',
                 b'{"command":"update","call_id":"x","from_tag":"a","direction":"offer","streams":[]}',
                 b'{"command":"update","call_id":"x","from_tag":"a","direction":"offer","streams":[{"port":-1}]}',
                 b'{"command":"update","call_id":"x","from_tag":"a","direction":"sideways","streams":[{}]}',
                 b'{"command":"update","call_id":"' + b"x" * 300 + b'","from_tag":"a","direction":"offer"}',
                 b'{"command":"update","call_id":"x","from_tag":"a","direction":"offer","streams":[{"ip":"1.2.3.4","port":1,"direction":"up"}]}',
                 b"\xff\xfe"]:
        reply = handle_line(r, line)
        assert reply["ok"] is False and reply["error"], line
    assert r.sessions == {} and r.stats()["ports"] == 0
    r.close()


def test_kernel_path_counters_and_stale_flows_without_nft():
    import json

    from mediaproxy.kernel import KernelPath

    k = KernelPath("127.0.0.1", "mediaproxy_test")
    a, b = RelayPort(50000), RelayPort(50002)
    a.sock = b.sock = object()
    a.learned, b.learned = ("10.0.0.1", 4000), ("10.0.0.2", 5000)
    a.partner, b.partner = b, a
    scripts = []
    k._run = lambda script, *args: scripts.append((script, args)) or ""
    assert k.install([(a, b)]) == 1 and k.install([(b, a)]) == 0  # once per pair
    added = scripts[-1][0]
    # both directions NATed: whichever party's packet comes first makes the conntrack entry
    assert ("add element ip mediaproxy_test dnat4 { 10.0.0.1 . 4000 . 127.0.0.1 . 50000 : 10.0.0.2 . 5000, "
            "10.0.0.2 . 5000 . 127.0.0.1 . 50002 : 10.0.0.1 . 4000 }") in added
    assert ("snat4 { 10.0.0.1 . 4000 . 10.0.0.2 . 5000 : 127.0.0.1 . 50002, "
            "10.0.0.2 . 5000 . 10.0.0.1 . 4000 : 127.0.0.1 . 50000 }") in added
    listing = {"nftables": [{"set": {"name": "counted", "elem": [
        {"elem": {"val": {"concat": ["10.0.0.1", 4000, "127.0.0.1", 50000]}, "counter": {"packets": 10, "bytes": 2000}}},
        {"elem": {"val": {"concat": ["10.0.0.2", 5000, "127.0.0.1", 50002]}, "counter": {"packets": 4, "bytes": 800}}},
    ]}}]}
    k._run = lambda script, *args: json.dumps(listing)
    k.poll(100.0)
    k.poll(101.0)  # the same counters again add nothing
    assert (a.packets, a.bytes, a.last) == (10, 2000 - 10 * 28, 100.0)
    assert (b.packets, b.bytes) == (4, 800 - 4 * 28)
    assert k.stale() == []
    a.learned = ("10.0.0.9", 4000)  # the caller moved: its flow goes back to user space
    assert k.stale() == [50000]
    k._run = lambda script, *args: scripts.append((script, args)) or ""
    k.uninstall([50000])
    assert ("delete element ip mediaproxy_test dnat4 { 10.0.0.1 . 4000 . 127.0.0.1 . 50000, "
            "10.0.0.2 . 5000 . 127.0.0.1 . 50002 }") in scripts[-1][0]
    assert k.flows == {}
