"""Greenlet loops that run their work in line, and a coarse timer wheel built on one.

Why: a greenlet spawned per datagram (or per fired timer) cost more CPU than most messages'
own work -- a response, an ACK, a retransmission are a few dozen microseconds of Python --
yet a handler must never hold up every message behind it while it waits on the database,
DNS or the media relay.  A :class:`Lane` gets both: one greenlet takes items (datagrams,
due timers) and handles each in line; if a handler *blocks* (switches to the gevent hub),
a libev ``prepare`` watcher -- which runs on every loop iteration, so only while some
greenlet waits -- sees the lane's greenlet still inside its handler and starts a fresh
greenlet that carries the loop on (after running `TAKEOVER_HOOKS`).  The blocked one
finishes its item and ends.  So a greenlet is spawned only when work actually waits, not
per message.

:class:`TimerWheel` holds timers whose precision may be coarse (Timer B, D, F, H, I, J, K, L,
M: seconds long; the proxy's Timer C) in buckets of ``tick`` seconds, fired in order by one
lane: adding one is a dict insert, cancelling one a dict delete, and no libev watcher or
greenlet is made per timer.  A timer never fires early, and at most about one tick late.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import gevent
from gevent import getcurrent

log = logging.getLogger("sipproxy.lanes")

__all__ = ["Lane", "TimerWheel", "Handle", "TAKEOVER_HOOKS"]

#: called (no arguments) in a greenlet that has just taken a lane over from a handler that
#: blocked, before it goes on: the moment to send what that handler owes at once (the
#: proxy's 100 Trying).  Whoever adds a hook removes it when it stops.
TAKEOVER_HOOKS: list[Callable[[], None]] = []

#: items a lane handles before it lets the hub run (timers, other greenlets) once
FAIRNESS = 64
#: how a lane lets the hub run: a timer this short, not ``sleep(0)``.  ``sleep(0)`` is a
#: loop callback, and gevent runs up to 50 callbacks before it looks at its timers again:
#: with a busy lane that was 50 x 64 messages, and every libev timer (retransmission
#: Timers A/E/G, the wheel, the overload probe) ran 0.3-1.1 s late at 700 calls/s.
#: Through a timer the lane resumes after one loop iteration, timers and I/O included.
YIELD = 1e-6

_registry: dict[int, tuple[Any, Any, list[Lane]]] = {}


def _watch(lane: Lane) -> None:
    """Register ``lane`` with this loop's prepare watcher (one per loop, made on first use)."""
    loop = gevent.get_hub().loop
    entry = _registry.get(id(loop))
    if entry is None or entry[0] is not loop:
        lanes: list[Lane] = []
        watcher = loop.prepare(ref=False)

        def check() -> None:
            for ln in lanes:
                busy = ln.busy
                if busy is not None and busy is ln.owner and not ln.stopped:
                    ln.takeovers += 1
                    ln._spawn(takeover=True)

        watcher.start(check)
        entry = _registry[id(loop)] = (loop, watcher, lanes)
    entry[2].append(lane)


def _unwatch(lane: Lane) -> None:
    for _loop, _watcher, lanes in _registry.values():
        if lane in lanes:
            lanes.remove(lane)


class Lane:
    """``next_item()`` (may wait; None: nothing this time) then ``handle(item)`` in line,
    forever, in one greenlet at a time (see the module docstring)."""

    def __init__(self, next_item: Callable[[], Any], handle: Callable[[Any], None], name: str) -> None:
        self.next_item = next_item
        self.handle = handle
        self.name = name
        self.owner: Any = None  # the greenlet running the loop
        self.busy: Any = None  # the greenlet inside ``handle``, while it is
        self.stopped = False
        self.takeovers = 0  # how often a blocked handler made another greenlet take over
        self._greenlets: list[Any] = []

    def start(self) -> None:
        _watch(self)
        self._spawn()

    def stop(self) -> None:
        self.stopped = True
        _unwatch(self)
        gevent.killall([g for g in self._greenlets if not g.dead], block=False)
        self._greenlets = []

    def _spawn(self, takeover: bool = False) -> None:
        g = gevent.spawn(self._run, takeover)
        self.owner = g
        self._greenlets = [x for x in self._greenlets if not x.dead]
        self._greenlets.append(g)

    def _run(self, takeover: bool = False) -> None:
        me = getcurrent()
        if takeover:
            for hook in TAKEOVER_HOOKS:
                try:
                    hook()
                except Exception:  # noqa: BLE001 - the lane must go on
                    log.exception("%s: takeover hook %r failed", self.name, hook)
        next_item, handle = self.next_item, self.handle
        count = 0
        while self.owner is me and not self.stopped:
            item = next_item()
            if item is None:
                continue
            self.busy = me
            try:
                handle(item)
            except Exception:  # a bug in one item must not stop the lane
                log.exception("%s: error handling %r", self.name, item)
            if self.owner is not me:
                return  # blocked in there and replaced meanwhile: the new owner goes on
            self.busy = None
            count += 1
            if count >= FAIRNESS:
                count = 0
                gevent.sleep(YIELD)


class Handle:
    """A wheel timer made by :meth:`TimerWheel.call_later`; ``cancel()`` it if not needed."""

    __slots__ = ("fn", "args", "cancelled", "slot", "wheel")

    def __init__(self, wheel: TimerWheel, fn: Callable[..., Any], args: tuple) -> None:
        self.wheel = wheel
        self.fn = fn
        self.args = args
        self.cancelled = False
        self.slot = 0

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self.wheel.remove(self.slot, self)

    def __call__(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self.fn(*self.args)


class TimerWheel:
    """Coarse timers in ``tick``-second buckets, fired by one :class:`Lane`.

    ``add(delay, entry)`` files ``entry`` (any hashable object) and returns its slot;
    ``remove(slot, entry)`` takes it out again; a due entry is passed to ``fire(entry)``.
    :meth:`call_later` wraps a function call in a :class:`Handle`."""

    def __init__(self, fire: Callable[[Any], None], tick: float = 0.05,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.tick = tick
        self.clock = clock
        self.fire = fire
        self.buckets: dict[int, dict[Any, None]] = {}
        self._done = int(clock() / tick)  # every slot up to this one has been taken out
        self._due: deque[Any] = deque()
        self.lane = Lane(self._next, fire, "timer wheel")

    def __len__(self) -> int:
        return sum(len(b) for b in self.buckets.values()) + len(self._due)

    def start(self) -> None:
        self._done = int(self.clock() / self.tick)
        self.lane.start()

    def stop(self) -> None:
        self.lane.stop()

    def add(self, delay: float, entry: Any) -> int:
        """File ``entry`` to fire ``delay`` seconds from now (never earlier)."""
        slot = int((self.clock() + delay) / self.tick) + 1
        if slot <= self._done:
            slot = self._done + 1
        bucket = self.buckets.get(slot)
        if bucket is None:
            bucket = self.buckets[slot] = {}
        bucket[entry] = None
        return slot

    def remove(self, slot: int, entry: Any) -> None:
        bucket = self.buckets.get(slot)
        if bucket is not None:
            bucket.pop(entry, None)
            if not bucket:
                del self.buckets[slot]

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Handle:
        """Call ``fn(*args)`` in the wheel's lane after ``delay`` seconds (about)."""
        handle = Handle(self, fn, args)
        handle.slot = self.add(delay, handle)
        return handle

    def _next(self) -> Any:
        due = self._due
        if due:
            return due.popleft()
        now = int(self.clock() / self.tick)
        buckets = self.buckets
        while self._done < now:
            self._done += 1
            bucket = buckets.pop(self._done, None)
            if bucket:
                due.extend(bucket)
        if due:
            return due.popleft()
        gevent.sleep(max(0.001, (self._done + 1) * self.tick - self.clock()))
        return None
