"""The kernel path's plain decisions, without root or nft: whether it runs (the ``"auto"``
default and its fallback), the config key, and a session's final counters before its summary."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from mediaproxy.__main__ import start_kernel
from mediaproxy.control import handle_line
from mediaproxy.kernel import KernelPath, decide, has_net_admin
from mediaproxy.relay import Relay
from mediaproxy.session import StreamOffer
from ngnpro.models.config import ConfigError, load_config
from tests.helpers import free_port


@pytest.mark.parametrize(("setting", "ip", "cap", "nft", "use", "why"), [
    ("auto", "192.0.2.1", True, "/usr/sbin/nft", True, ""),
    (True, "192.0.2.1", True, "/usr/sbin/nft", True, ""),
    (False, "192.0.2.1", True, "/usr/sbin/nft", False, "kernel_forwarding = false"),
    ("auto", "2001:db8::1", True, "/usr/sbin/nft", False, "IPv6"),
    ("auto", "192.0.2.1", False, "/usr/sbin/nft", False, "CAP_NET_ADMIN"),
    ("auto", "192.0.2.1", True, None, False, "nft program is missing"),
])
def test_decide(setting, ip, cap, nft, use, why):
    got, reason = decide(setting, ip, cap, nft)
    assert got is use and why in reason


def test_has_net_admin_reads_the_effective_set(tmp_path):
    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapEff:\t000001ffffffffff\n")
    assert has_net_admin(str(status))
    status.write_text("Name:\tx\nCapEff:\t0000000000000000\n")
    assert not has_net_admin(str(status))
    assert not has_net_admin(str(tmp_path / "missing"))


def test_start_kernel_falls_back_with_one_line_or_refuses(caplog):
    caplog.set_level(logging.INFO, logger="mediaproxy")
    assert start_kernel("auto", "::1", 25060) is None  # user space, and says why
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["kernel forwarding off, relaying in user space: relay_ip ::1 is IPv6 (the kernel path is IPv4 only)"]
    assert start_kernel(True, "::1", 25060) is False  # asked for explicitly: an error
    caplog.clear()
    assert start_kernel(False, "127.0.0.1", 25060) is None and caplog.records == []  # off: nothing to say


def test_config_key_accepts_auto_true_false(tmp_path):
    assert load_config(None)["mediaproxy"]["kernel_forwarding"] == "auto"
    for text, value in (("true", True), ("false", False), ('"auto"', "auto")):
        path = tmp_path / "c.toml"
        path.write_text(f"[mediaproxy]\nkernel_forwarding = {text}\n")
        assert load_config(str(path))["mediaproxy"]["kernel_forwarding"] == value
    path.write_text('[mediaproxy]\nkernel_forwarding = "yes"\n')
    with pytest.raises(ConfigError, match="mediaproxy.kernel_forwarding: expected true, false or 'auto'"):
        load_config(str(path))


def test_remove_waits_for_the_kernels_final_counters():
    """A summary taken at ``remove`` counts what the kernel forwarded since its last 2 s read."""
    low = 20000 + (free_port(socket.SOCK_DGRAM) % 20000) // 2 * 2
    k = KernelPath("127.0.0.1", "mediaproxy_test")
    runs = []
    k._run = lambda script, *args: runs.append(args) or ""
    r = Relay("127.0.0.1", (low, low + 20), 30, kernel=k)
    try:
        o = r.update("k1", "a", "", "offer", [StreamOffer("audio", "127.0.0.1", 4000)])
        an = r.update("k1", "a", "b", "answer", [StreamOffer("audio", "127.0.0.1", 5000)])
        to_b, to_a = an["streams"][0]["port"], o["streams"][0]["port"]  # caller sends to_b...
        stream = r.sessions["k1"].streams[0]
        caller_port = next(p for p in stream.ports() if p.port == to_b)
        callee_port = next(p for p in stream.ports() if p.port == to_a)
        caller_port.learned, callee_port.learned = ("127.0.0.1", 4000), ("127.0.0.1", 5000)
        assert k.install([(caller_port, callee_port)]) == 1
        listing = ("table ip mediaproxy_test {\n\tset counted {\n\t\telements = { "
                   f"127.0.0.1 . 4000 . 127.0.0.1 . {to_b} counter packets 7 bytes 1400,\n"
                   f"\t\t\t     127.0.0.1 . 5000 . 127.0.0.1 . {to_a} counter packets 3 bytes 600 }}\n\t}}\n}}\n")
        k._run = lambda script, *args: runs.append(script or args) or (
            listing if script and script.startswith("get element") else "")
        replies = []
        assert handle_line(r, b'{"id":9,"command":"remove","call_id":"k1"}', None, replies.append) is None
        # counters read, then the flow deleted (media stops), then the summary made and answered
        assert runs[-2].startswith("get element ip mediaproxy_test counted {")  # this session's alone
        assert runs[-1].startswith("delete element") and k.flows == {}
        (reply,) = replies
        assert reply["id"] == 9 and reply["ok"]
        summary = reply["summary"]["streams"][0]
        assert summary["packets_caller_to_callee"] == 7 and summary["packets_callee_to_caller"] == 3
        assert summary["bytes_caller_to_callee"] == 1400 - 7 * 28
        assert "k1" not in r.sessions
        # without kernel flows, or without a reply channel, remove answers at once
        assert handle_line(r, b'{"id":10,"command":"remove","call_id":"k1"}', None, replies.append) is None
        assert replies[-1] == {"id": 10, "ok": False, "error": "no session for call 'k1'"}
        assert handle_line(r, b'{"id":11,"command":"remove","call_id":"k1"}')["ok"] is False
    finally:
        r.close()


def test_a_timeout_waits_for_the_sessions_own_kernel_counters():
    """The 2 s counter read is too old to call a stream silent: a read of the session's own
    counters comes first, and only a silence it confirms is reported."""
    low = 20000 + (free_port(socket.SOCK_DGRAM) % 20000) // 2 * 2
    k = KernelPath("127.0.0.1", "mediaproxy_test")
    k._run = lambda script, *args: ""
    events = []
    r = Relay("127.0.0.1", (low, low + 20), 1, kernel=k, notify=lambda session, event: events.append(event))
    try:
        o = r.update("t1", "a", "", "offer", [StreamOffer("audio", "127.0.0.1", 4000)])
        an = r.update("t1", "a", "b", "answer", [StreamOffer("audio", "127.0.0.1", 5000)])
        to_b, to_a = an["streams"][0]["port"], o["streams"][0]["port"]
        session = r.sessions["t1"]
        ports = {p.port: p for p in session.streams[0].ports()}
        caller_port, callee_port = ports[to_b], ports[to_a]
        caller_port.learned, callee_port.learned = ("127.0.0.1", 4000), ("127.0.0.1", 5000)
        assert k.install([(caller_port, callee_port)]) == 1
        now = caller_port.last = callee_port.last = time.monotonic() + 100  # after the updates
        counted = {"n": 0}

        def get(script, *args):  # the kernel forwarded 5 more packets each way since the last read
            counted["n"] += 5
            return (f"127.0.0.1 . 4000 . 127.0.0.1 . {to_b} counter packets {counted['n']} bytes 0,\n"
                    f"127.0.0.1 . 5000 . 127.0.0.1 . {to_a} counter packets {counted['n']} bytes 0")

        k._run = get
        r.tick(now + 1.5)  # silent by the old counters: read first, no report
        assert events == [] and r.tick_soon and session.kernel_read == now + 1.5
        r.tick(now + 1.5)  # the read found packets: not silent
        assert events == [] and caller_port.last == now + 1.5
        k._run = lambda script, *args: (f"127.0.0.1 . 4000 . 127.0.0.1 . {to_b} counter packets 5 bytes 0,\n"
                                        f"127.0.0.1 . 5000 . 127.0.0.1 . {to_a} counter packets 5 bytes 0")
        session.next_check = 0.0
        r.tick(now + 3.0)  # silent again: another read, which confirms it
        assert events == []
        r.tick(now + 3.0)
        assert [e["event"] for e in events] == ["timeout"]
    finally:
        r.close()
