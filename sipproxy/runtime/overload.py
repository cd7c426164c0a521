"""Overload control (RFC 6357): shed new work early and cheaply, so admitted calls complete.

Why: a UDP SIP server past its capacity does not saturate, it collapses.  Requests wait
longer and longer in the socket's receive queue; once the wait nears T1 (500 ms) the
senders' retransmission timers (A, E) fire and every call sends its INVITE again, the
proxy's own Timer A resends to the callee, and the extra load makes the wait longer still,
until almost every call fails (RFC 6357 section 3).  The cure is to refuse *new* work
before the queue gets that long -- a stateless 503 with Retry-After costs a small part of
what an admitted call costs -- and keep serving what finishes work already admitted.

**Signal: how long the datagram at the head of the receive queue has waited.**  The core
turns on kernel receive timestamps (``SO_TIMESTAMPNS``) on its UDP sockets (and its
hand-over mailbox) and, every :data:`TICK`, peeks at the head of each queue: ``now - kernel
arrival time`` is the queueing delay the next request will have had when the proxy reads
it -- the very delay that, near T1, makes senders retransmit.  It costs nothing per message
(one peek per socket per tick).  Why not the event loop's lag (a timer firing late): a
lane lets the hub run every 64 messages, so the loop lags a few milliseconds however long
the queue in front of it has grown (and while lanes yielded with ``sleep(0)`` it lagged up
to a second with the queue empty: see ``sipproxy.runtime.lanes.YIELD``).  Why not the queue's byte count: bytes say nothing about time until divided
by a service rate that changes with the traffic mix.  TCP and TLS are not measured (no
per-message stamps); a worker they overload is seen only through its UDP queue.

**Controller: a rejection fraction with hysteresis** (the loss-based idea of RFC 7339
applied at the server).  The delay decided on is the *smallest* measured over the last
:data:`SPAN` (0.1 s) and at least the last two measurements, as CoDel does: a burst, or a
stall of the worker, that drains within it is not a standing queue.
Above the threshold the fraction of new requests refused grows (by :data:`STEP_UP`, more
when far above), but only while the delay is not already falling, and at most once per
queue delay (the head of the queue shows what arrived one delay ago: raising again before
that only overshoots); below half the threshold it shrinks by :data:`STEP_DOWN` per SPAN;
in between it holds.  So it neither flaps between all and nothing nor refuses everything
at 1.5 times the capacity: it settles on the fraction the worker can carry.  Refusals are
spread evenly (an accumulator, not a random draw).

**What is shed** (:func:`sheddable`): only new out-of-dialog requests -- no To tag, not ACK
or CANCEL, not an OPTIONS to the proxy itself (no user part: monitoring keeps an answer),
and not matching a server transaction (a retransmission is absorbed by its transaction
as always).  In-dialog requests, ACK, CANCEL and responses finish calls already admitted
and are never shed.  A request carrying credentials (the answer to our own 401/407) is
shed only when everything new is (fraction 1): its call has already cost a challenge.

Sans-I/O: the core feeds :meth:`Overload.sample` from a libev timer and asks
:meth:`Overload.refuse` about each request while the fraction is above zero (while it is
zero the hot path pays one attribute test).  Logs: one info line when a worker enters
overload and one when it leaves (with the delay), one every :data:`REPORT_EVERY` seconds
in between with the counts; never one per refused request.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Container
from typing import Any

from sipproxy.sip.parser import ParseError, Request, Response, make_response
from sipproxy.sip.transaction import server_key, stateless_tag

log = logging.getLogger("sipproxy.overload")

__all__ = ["Overload", "sheddable", "rejection", "TICK", "SPAN"]

#: seconds between two measurements (the core's libev timer)
TICK = 0.02
#: seconds of measurements whose smallest is the delay decided on (a burst or pause that
#: drains within it is not a standing queue), and never fewer than two: after a stall (the
#: worker did not run its timer: busy in a long step, starting, collecting), the one late
#: measurement shows a queue the next one may already see drained -- a worker that is
#: really behind still is at the next tick, 20 ms later
SPAN = 0.1
#: fraction of new requests refused more per raise above the threshold (times how many
#: thresholds above, up to 4), and less per SPAN below half of it
STEP_UP = 0.1
STEP_DOWN = 0.05
#: the fraction is back to 0 (overload over) below half the threshold
LOW = 0.5
#: longest wait (seconds) between two raises of the fraction
MAX_WAIT = 0.5
#: seconds between two info lines while overloaded
REPORT_EVERY = 10.0


class Overload:
    """One worker's overload controller (see the module docstring).

    ``threshold``: seconds of queueing delay above which new requests start being refused;
    ``retry_after``: seconds put in the 503's Retry-After."""

    def __init__(self, threshold: float, retry_after: int = 5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if threshold <= 0:
            raise ValueError("overload threshold must be positive (leave the controller out to turn it off)")
        self.threshold = threshold
        self.retry_after = retry_after
        self.clock = clock
        #: fraction of new out-of-dialog requests refused now (0: none, the usual state)
        self.reject = 0.0
        #: the last window's delay (seconds)
        self.delay = 0.0
        #: counters since start: overload episodes, new requests refused with 503, new
        #: requests admitted while overloaded
        self.episodes = 0
        self.refused = 0
        self.admitted = 0
        #: seconds spent overloaded (episodes over)
        self.overloaded_time = 0.0
        self._recent: deque[tuple[float, float]] = deque()  # (time, delay) of the last SPAN
        self._debt = 0.0
        self._next_up = 0.0  # no raise of the fraction before this time
        self._next_down = 0.0  # no lowering before this time
        self._since = 0.0  # when this episode began
        self._reported = 0.0  # when the last report line went out
        self._counts = (0, 0)  # refused, admitted at that report
        self._started = (0, 0)  # refused, admitted when this episode began

    # -- measurements -----------------------------------------------------------------------

    def sample(self, delay: float) -> None:
        """One tick's measurement: seconds the worker is behind (the largest queue head age)."""
        now = self.clock()
        recent = self._recent
        if recent and now - recent[-1][0] < TICK / 2:
            # libev fires an overdue repeating timer twice back to back after a stall: both
            # see the same queue head, so they are one measurement, not the two that decide
            recent[-1] = (now, delay)
        else:
            recent.append((now, delay))
        while len(recent) > 2 and recent[0][0] < now - SPAN:
            recent.popleft()
        self._decide(min(d for _t, d in recent), now)

    def _decide(self, delay: float, now: float) -> None:
        previous, self.delay = self.delay, delay
        threshold = self.threshold
        before = self.reject
        if delay > threshold:
            # more refused only when the queue is not draining yet, and not again before the
            # last change can show: the head of the queue shows what arrived one delay ago
            if before == 0.0 or (delay >= previous and now >= self._next_up):
                self.reject = min(1.0, before + STEP_UP * min(4.0, delay / threshold))
                self._next_up = now + min(delay, MAX_WAIT)
                if before == 0.0:
                    self._enter(delay)
        elif delay < threshold * LOW and before > 0.0 and now >= self._next_down:
            self._next_down = now + SPAN
            lower = before - STEP_DOWN
            self.reject = lower if lower > 1e-9 else 0.0  # not a float's leftover above 0
            if self.reject == 0.0:
                self._leave(delay)
        if self.reject > 0.0 and now - self._reported >= REPORT_EVERY:
            self._report()

    def _enter(self, delay: float) -> None:
        self.episodes += 1
        self._since = self._reported = self.clock()
        self._counts = self._started = (self.refused, self.admitted)
        self._debt = 0.0
        log.info("overload: %.0f ms behind (threshold %.0f ms): answering part of the new requests "
                 "503 (Retry-After %d)", delay * 1e3, self.threshold * 1e3, self.retry_after)

    def _leave(self, delay: float) -> None:
        lasted = self.clock() - self._since
        self.overloaded_time += lasted
        refused, admitted = self._started
        log.info("overload over after %.1f s: %d new requests refused (503), %d admitted meanwhile; "
                 "%.0f ms behind now", lasted, self.refused - refused,
                 self.admitted - admitted, delay * 1e3)

    def _report(self) -> None:
        now = self.clock()
        refused, admitted = self._counts
        log.info("overload: %.0f ms behind, refusing %.0f%% of new requests; %d refused (503), "
                 "%d admitted in the last %.0f s", self.delay * 1e3, self.reject * 100,
                 self.refused - refused, self.admitted - admitted, now - self._reported)
        self._reported = now
        self._counts = (self.refused, self.admitted)

    # -- decisions ---------------------------------------------------------------------------

    def refuse(self, request: Request, via: Any, server: Container) -> bytes | None:
        """The 503 to send instead of handling ``request``, or None to handle it.  Only asked
        while :attr:`reject` is above 0; ``via`` is the request's parsed (and stamped) top
        Via, ``server`` the live server transactions by key."""
        try:
            if not sheddable(request, via, server):
                return None
            keys = request.headers._keys
            credentials = "proxy-authorization" in keys or "authorization" in keys
        except ParseError:  # let the normal path answer what is wrong with it
            return None
        reject = self.reject
        if credentials and reject < 1.0:
            self.admitted += 1
            return None
        self._debt += reject
        if self._debt < 1.0:
            self.admitted += 1
            return None
        self._debt -= 1.0
        self.refused += 1
        return rejection(request, self.retry_after).to_bytes()

    def summary(self) -> str:
        """The counters, for the stop line."""
        return (f"{self.episodes} overload episodes ({self.overloaded_time:.1f} s), "
                f"{self.refused} new requests refused with 503, {self.admitted} admitted while overloaded")


def sheddable(request: Request, via: Any, server: Container) -> bool:
    """May ``request`` be refused to shed load?  Only a new out-of-dialog request: not ACK
    or CANCEL, no To tag, not an OPTIONS to the proxy itself (no user part), and no server
    transaction of its own yet (else it is a retransmission, absorbed by that transaction).
    Raises ParseError for a request too broken to tell."""
    method = request.method
    if method == "ACK" or method == "CANCEL":
        return False
    if request.to.tag is not None:
        return False
    if method == "OPTIONS" and not request.uri.user:
        return False
    return server_key(request, None, via) not in server


def rejection(request: Request, retry_after: int) -> Response:
    """The stateless 503 Service Unavailable with Retry-After (RFC 3261 21.5.4, 20.33).  Its
    To tag is the request's `stateless_tag`: a retransmission gets the same one (RFC 3261
    8.2.7), and the transaction layer absorbs the ACK for it, like the ACK for a 407."""
    return make_response(request, 503, "Service Unavailable", to_tag=stateless_tag(request),
                         headers=[("Retry-After", str(retry_after))])
