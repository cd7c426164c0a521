"""The overload controller (sans-I/O): when it refuses, how much, what it never refuses.

Measurements are fed by hand (``sample``) and the clock is a counter, so every step is
deterministic; the queue-age probe is tested on a real loopback socket.
"""

from __future__ import annotations

import logging
import socket
import time

import pytest

from ngnpro.models.config import ConfigError, validate
from sipproxy.runtime.overload import SPAN, STEP_DOWN, TICK, Overload, rejection, sheddable
from sipproxy.runtime.transport import enable_timestamps, queue_age
from sipproxy.sip.parser import parse_message
from sipproxy.sip.transaction import STATELESS_MARK, server_key

MS = 1e-3


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tick(ctl: Overload, delay: float) -> None:
    """One measurement, a TICK after the last one."""
    ctl.clock.now += TICK
    ctl.sample(delay)


def window(ctl: Overload, delay: float) -> None:
    """A SPAN (and one tick more) in which every measurement is ``delay``."""
    for _ in range(round(SPAN / TICK) + 1):
        tick(ctl, delay)


def request(method: str = "INVITE", *, to_tag: str = "", user: str = "bob", branch: str = "z9hG4bKabc",
            extra: str = "") -> bytes:
    tag = f";tag={to_tag}" if to_tag else ""
    target = f"{user}@example.com" if user else "example.com"
    return (f"{method} sip:{target} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch};rport\r\n"
            f"From: <sip:alice@example.com>;tag=f1\r\nTo: <sip:{target}>{tag}\r\n"
            f"Call-ID: c1@192.0.2.1\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n{extra}"
            "Content-Length: 0\r\n\r\n").encode()


def parsed(data: bytes):  # noqa: ANN201
    msg = parse_message(data)
    return msg, msg.vias[0]


# -- the controller ----------------------------------------------------------------------


def test_below_threshold_nothing_is_refused(caplog):
    ctl = Overload(0.1, clock=Clock())
    with caplog.at_level(logging.INFO, "sipproxy.overload"):
        for delay in (0, 0.02, 0.09, 0.1, 0.05):
            window(ctl, delay)
    assert ctl.reject == 0.0 and ctl.episodes == 0
    assert caplog.records == []


def test_enters_above_threshold_and_logs_once(caplog):
    ctl = Overload(0.1, clock=Clock())
    with caplog.at_level(logging.INFO, "sipproxy.overload"):
        window(ctl, 0.15)
        window(ctl, 0.15)
    assert ctl.reject > 0.0 and ctl.episodes == 1
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "150 ms behind (threshold 100 ms)" in lines[0], lines


def test_a_spike_within_a_window_is_not_a_standing_queue():
    """The window's smallest measurement counts: a pause that drains within the window
    (a garbage collection) does not start refusing."""
    ctl = Overload(0.1, clock=Clock())
    window(ctl, 0.0)
    for delay in (0.4, 0.3, 0.2, 0.1, 0.0) * 3:
        tick(ctl, delay)
    assert ctl.reject == 0.0


def test_after_a_stall_the_next_measurement_decides():
    """Ticks a second apart (the worker did not get to run them: a long step, its start, a
    collection): the one late measurement is not enough -- the next tick shows whether the
    queue stands or has drained already."""
    drained = Overload(0.1, clock=Clock())
    window(drained, 0.0)
    drained.clock.now += 1.0
    drained.sample(1.0)
    assert drained.reject == 0.0
    tick(drained, 0.002)  # read through at once: it was the stall, not the load
    assert drained.reject == 0.0 and drained.episodes == 0
    behind = Overload(0.1, clock=Clock())
    window(behind, 0.0)
    behind.clock.now += 1.0
    behind.sample(1.0)
    tick(behind, 0.98)  # still behind
    assert behind.reject > 0.0 and behind.episodes == 1


def test_a_stalled_timer_firing_twice_back_to_back_is_one_measurement():
    """After a stall libev runs the overdue repeating timer twice within a fraction of a
    millisecond (measured: +0.1 ms, +0.1 ms, then every 20 ms): both see the same queue
    head, which the tick after may find drained.  Counted as two, they entered overload."""
    ctl = Overload(0.1, clock=Clock())
    window(ctl, 0.0)
    ctl.clock.now += 0.5
    ctl.sample(0.5)
    ctl.clock.now += 0.0001
    ctl.sample(0.5)
    assert ctl.reject == 0.0
    tick(ctl, 0.001)  # the queue drained in well under a tick: it was the stall
    assert ctl.reject == 0.0 and ctl.episodes == 0


def test_the_fraction_grows_while_behind_faster_when_far_behind():
    near, far = Overload(0.1, clock=Clock()), Overload(0.1, clock=Clock())
    window(near, 0.11)
    window(far, 0.35)
    assert 0.0 < near.reject < far.reject
    for _ in range(30):
        window(near, 0.11)
    assert near.reject == 1.0


def test_hysteresis_holds_between_low_and_threshold_then_leaves(caplog):
    clock = Clock()
    ctl = Overload(0.1, clock=clock)
    window(ctl, 0.2)
    window(ctl, 0.2)
    held = ctl.reject
    assert held >= 0.4
    for _ in range(20):  # below the threshold but above half of it: no change
        window(ctl, 0.07)
    assert ctl.reject == held
    with caplog.at_level(logging.INFO, "sipproxy.overload"):
        levels = [held]
        while ctl.reject > 0:
            window(ctl, 0.03)
            levels.append(ctl.reject)
    # step by step, at most STEP_DOWN per SPAN, not at once
    assert len(levels) > round(held / STEP_DOWN) / 2
    assert all(0 < a - b <= 2 * STEP_DOWN + 1e-9 for a, b in zip(levels, levels[1:], strict=False))
    assert ctl.episodes == 1
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith("overload over after ") and "30 ms behind now" in lines[0]
    assert 0 < ctl.overloaded_time < clock.now
    window(ctl, 0.2)  # and back in: a second episode
    assert ctl.episodes == 2 and ctl.reject > 0


def test_reports_counts_every_interval_while_overloaded(caplog):
    clock = Clock()
    ctl = Overload(0.1, clock=clock)
    with caplog.at_level(logging.INFO, "sipproxy.overload"):
        for _ in range(10):
            window(ctl, 1.0)  # far behind: everything new is refused
        assert ctl.reject == 1.0
        for n in range(7):
            msg, via = parsed(request(branch=f"z9hG4bK{n}"))
            assert ctl.refuse(msg, via, {}) is not None
        clock.now += 10
        window(ctl, 1.0)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines  # entering, then one report (never one per request)
    assert "refusing 100% of new requests; 7 refused (503), 0 admitted in the last 11 s" in lines[1]
    assert ctl.refused == 7


def test_refusals_are_spread_evenly_and_spare_answers_to_our_challenges():
    ctl = Overload(0.1, clock=Clock())
    ctl.reject = 0.5
    verdicts = []
    for n in range(10):
        msg, via = parsed(request(branch=f"z9hG4bK{n}"))
        verdicts.append(ctl.refuse(msg, via, {}) is not None)
    assert verdicts == [False, True] * 5
    auth = 'Proxy-Authorization: Digest username="alice", realm="example.com", nonce="n", uri="x", response="r"\r\n'
    msg, via = parsed(request(branch="z9hG4bKauth", extra=auth))
    assert ctl.refuse(msg, via, {}) is None  # its call already cost a challenge
    ctl.reject = 1.0
    msg, via = parsed(request(branch="z9hG4bKauth2", extra=auth))
    assert ctl.refuse(msg, via, {}) is not None  # unless everything new is refused
    assert (ctl.refused, ctl.admitted) == (6, 6)


# -- what may be shed ------------------------------------------------------------------


@pytest.mark.parametrize("method", ["INVITE", "REGISTER", "SUBSCRIBE", "MESSAGE", "OPTIONS"])
def test_new_out_of_dialog_requests_are_sheddable(method):
    msg, via = parsed(request(method))
    assert sheddable(msg, via, {}) is True


@pytest.mark.parametrize("data", [
    request("ACK", to_tag="t1"),
    request("ACK"),
    request("CANCEL"),
    request("BYE", to_tag="t1"),
    request("INVITE", to_tag="t1"),  # a re-INVITE
    request("OPTIONS", user=""),  # to the proxy itself (monitoring)
], ids=["ack", "ack-no-tag", "cancel", "bye", "reinvite", "options-to-proxy"])
def test_never_shed(data):
    msg, via = parsed(data)
    assert sheddable(msg, via, {}) is False


def test_a_retransmission_goes_to_its_transaction():
    msg, via = parsed(request())
    server = {server_key(msg, None, via): object()}
    again, again_via = parsed(request())
    assert sheddable(again, again_via, server) is False
    other, other_via = parsed(request(branch="z9hG4bKother"))
    assert sheddable(other, other_via, server) is True


def test_nothing_is_refused_while_not_overloaded_by_refuse_either():
    ctl = Overload(0.1, clock=Clock())  # reject 0: the core does not even ask; refuse agrees
    msg, via = parsed(request())
    assert ctl.refuse(msg, via, {}) is None


# -- the 503 ---------------------------------------------------------------------------


def test_rejection_is_a_503_with_retry_after_and_a_stable_to_tag():
    msg, _via = parsed(request())
    out = parse_message(rejection(msg, 7).to_bytes())
    assert (out.status, out.reason) == (503, "Service Unavailable")
    assert out.headers.get("retry-after") == "7"
    assert out.headers.get("via") == "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport"
    assert out.call_id == "c1@192.0.2.1" and out.cseq == (1, "INVITE")
    tag = out.to.tag
    assert tag and tag.startswith(STATELESS_MARK)  # its ACK is absorbed like a 407's
    again = parse_message(rejection(parsed(request())[0], 7).to_bytes())
    assert again.to.tag == tag  # a retransmission gets the same tag (RFC 3261 8.2.7)
    other = parse_message(rejection(parsed(request(branch="z9hG4bKzzz"))[0], 7).to_bytes())
    assert other.to.tag != tag


def test_threshold_must_be_positive():
    with pytest.raises(ValueError):
        Overload(0)


# -- configuration ---------------------------------------------------------------------


def test_config_defaults_on_and_validates():
    section = validate({})["sipproxy"]
    assert section["overload_delay"] == 250.0 and section["overload_retry_after"] == 5
    assert validate({"sipproxy": {"overload_delay": 0}})["sipproxy"]["overload_delay"] == 0.0
    assert validate({"sipproxy": {"overload_delay": 250}})["sipproxy"]["overload_delay"] == 250.0
    for bad in ({"overload_delay": -1}, {"overload_delay": "100ms"}, {"overload_retry_after": 0},
                {"overload_retry_after": 1.5}, {"overload_retry_after": 7200}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            validate({"sipproxy": bad})


# -- the probe -------------------------------------------------------------------------


def test_queue_age_peeks_at_the_oldest_waiting_datagram():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.bind(("127.0.0.1", 0))
        rx.setblocking(False)
        assert enable_timestamps(rx)
        assert queue_age(rx, time.time()) == 0.0  # nothing waits
        # the kernel turns arrival stamps on a moment after the first socket asks (deferred
        # work); until then a datagram is stamped when first read.  Wait for real stamps.
        for _ in range(100):
            tx.sendto(b"probe", rx.getsockname())
            time.sleep(0.02)
            stamped_on_arrival = queue_age(rx, time.time()) >= 0.015
            rx.recv(100)
            if stamped_on_arrival:
                break
        before = time.time()
        tx.sendto(b"first", rx.getsockname())
        after = time.time()
        time.sleep(0.05)
        tx.sendto(b"second", rx.getsockname())
        for _ in range(100):  # until the kernel has queued it (loopback: at once)
            if queue_age(rx, time.time() + 10) > 0:
                break
        # against a clock one second after the first was sent: its kernel stamp is between
        # ``before`` and ``after`` (the second datagram's is later)
        age = queue_age(rx, after + 1.0)
        assert 1.0 <= age <= 1.0 + (after - before)
        assert rx.recv(100) == b"first"  # peeking left it there
        assert queue_age(rx, after + 1.0) < age  # now the second one is at the head
        assert rx.recv(100) == b"second"
    finally:
        rx.close()
        tx.close()
