"""sipproxy.runtime.lanes: work handled in line, a blocked handler handing the loop on; the timer wheel."""

from __future__ import annotations

import gevent
from gevent.event import Event
from gevent.queue import Queue

from sipproxy.runtime.lanes import Lane, TimerWheel


def _lane(handle):
    q: Queue = Queue()
    lane = Lane(q.get, handle, "test")
    lane.start()
    return q, lane


def _until(cond, timeout=5.0):
    with gevent.Timeout(timeout):
        while not cond():
            gevent.sleep(0.005)


def test_items_are_handled_in_order_in_one_greenlet():
    seen = []
    q, lane = _lane(lambda item: seen.append((item, gevent.getcurrent())))
    try:
        for n in range(100):
            q.put(n)
        _until(lambda: len(seen) == 100)
        assert [n for n, _ in seen] == list(range(100))
        assert len({id(g) for _, g in seen}) == 1 and lane.takeovers == 0
    finally:
        lane.stop()


def test_a_blocked_handler_does_not_hold_the_items_behind_it():
    release = Event()
    seen = []

    def handle(item):
        if item == "slow":
            release.wait()  # e.g. a database answer
        seen.append(item)

    q, lane = _lane(handle)
    try:
        q.put("slow")
        q.put("a")
        q.put("b")
        _until(lambda: seen == ["a", "b"])  # handled while "slow" still waits
        assert lane.takeovers == 1
        release.set()
        _until(lambda: seen == ["a", "b", "slow"])
        q.put("c")
        _until(lambda: seen[-1] == "c")
        assert lane.takeovers == 1
    finally:
        lane.stop()


def test_an_exception_in_a_handler_does_not_stop_the_lane():
    seen = []

    def handle(item):
        if item == 0:
            raise RuntimeError("bug")
        seen.append(item)

    q, lane = _lane(handle)
    try:
        q.put(0)
        q.put(1)
        _until(lambda: seen == [1])
    finally:
        lane.stop()


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_wheel_never_fires_early_and_fires_in_due_order():
    clock = _Clock()
    fired = []
    wheel = TimerWheel(lambda entry: fired.append((entry, clock.now)), tick=0.05, clock=clock)
    wheel.start()
    try:
        due = {}
        for name, delay in (("b", 0.2), ("a", 0.1), ("c", 0.3), ("x", 0.15)):
            slot = wheel.add(delay, name)
            due[name] = (clock.now + delay, slot)
        wheel.remove(due["x"][1], "x")  # cancelled: never fires
        clock.now += 0.16  # past "a" (0.1) and a tick (it may be up to one late), before "b"
        _until(lambda: fired)
        gevent.sleep(0.1)
        assert [e for e, _ in fired] == ["a"]
        clock.now += 1.0
        _until(lambda: len(fired) == 3)
        gevent.sleep(0.1)
        assert [e for e, _ in fired] == ["a", "b", "c"]
        assert all(at >= due[e][0] for e, at in fired)
        assert len(wheel) == 0
    finally:
        wheel.stop()


def test_call_later_handle_runs_once_unless_cancelled():
    calls = []
    wheel = TimerWheel(lambda entry: entry(), tick=0.01)
    wheel.start()
    try:
        wheel.call_later(0.02, calls.append, "kept")
        dropped = wheel.call_later(0.02, calls.append, "dropped")
        dropped.cancel()
        _until(lambda: calls)
        gevent.sleep(0.05)
        assert calls == ["kept"] and len(wheel) == 0
    finally:
        wheel.stop()


def test_a_busy_lane_lets_libev_timers_run_every_few_turns():
    """A lane that always has work must not keep timers (retransmissions, the overload
    probe) waiting: gevent runs up to 50 loop callbacks before it looks at its timers, so a
    lane yielding with ``sleep(0)`` (a callback) held them for 50 turns of FAIRNESS items."""
    from sipproxy.runtime.lanes import FAIRNESS

    handled = []
    fired_at = []
    lane = Lane(lambda: 1, lambda item: handled.append(item), "busy")
    timer = gevent.get_hub().loop.timer(0.0)
    timer.start(lambda: fired_at.append(len(handled)))
    lane.start()
    try:
        _until(lambda: fired_at)
    finally:
        lane.stop()
        timer.close()
    assert fired_at[0] <= 3 * FAIRNESS, fired_at
