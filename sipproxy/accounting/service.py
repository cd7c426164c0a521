"""The proxy's accounting: call events in, records queued, a greenlet sending them.

:class:`Accounting` is the object handed to ``Proxy(events=...)``; the proxy calls it where
a call changes (see :mod:`sipproxy.proxy.proxy` and :mod:`sipproxy.proxy.responses`):

* ``answered(info, ctx, branch, response)`` -- a 2xx to an initial INVITE (Start);
* ``ended(request, media)`` -- a BYE relayed, with the media relay's summary (Stop);
* ``ended_by_proxy(call_id, from_tag, to_tag, reason, media)`` -- the proxy ended the call
  itself (:class:`sipproxy.dialog.control.CallControl`, e.g. a media timeout) (Stop);
* ``failed(request, inbound, response, caller, callee, billing_party, target)`` -- a final
  failure (>= 300) of an initial INVITE: a missed call (Failed).

Worker 0 (the one that sends) also announces the proxy's accounting itself: an
``Accounting-On`` record at :meth:`Accounting.start` and an ``Accounting-Off`` at
:meth:`Accounting.stop` (RFC 2866 7 and 8), through the same queue -- an Off given while no
server answers goes out after the next start, before that start's On -- and at a stop the
queue is given :data:`STOP_SEND` seconds to drain, so the Off and the last calls' Stops
usually leave with the process rather than at its next start.

Each event becomes an operation on the local queue (:mod:`.radius`); a greenlet of each
worker commits the operations of ``FLUSH_INTERVAL`` seconds in one SQLite transaction (a
commit per event cost more than the proxy's own work on the call), and the sending happens
in the background (worker 0), so a slow or absent RADIUS server never holds a call.  A
graceful stop commits what is pending; a crash of the process loses at most the events of
the last ``FLUSH_INTERVAL``.  Without :meth:`Accounting.start` (tests) every event is
committed at once.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ngnpro.models.tariff import call_price
from sipproxy.accounting import events as ev
from sipproxy.accounting.radius import RadiusClient, RecordQueue
from sipproxy.dialog.prepaid import decode_tariff
from sipproxy.sip.uri import ParseError

log = logging.getLogger("sipproxy.accounting")

__all__ = ["Accounting", "FLUSH_INTERVAL", "END_WAIT", "STOP_SEND"]

#: seconds of call events committed together
FLUSH_INTERVAL = 0.02
#: seconds a call's end is retried when its call is not found: its Start may still be in
#: another worker's next commit (a BYE handled by another worker than the 2xx)
END_WAIT = 2.0
#: seconds between those retries
END_RETRY = 0.25
#: seconds a stopping worker 0 keeps sending what is queued (the Accounting-Off among it);
#: what is left waits for the next start (the worker's stop has STOP_GRACE in all)
STOP_SEND = 2.0


def _reason_text(request: Any) -> str:
    """The text of a BYE's ``Reason`` header (RFC 3326), else "BYE"."""
    value = request.headers.get("reason") or ""
    if 'text="' in value:
        return value.split('text="', 1)[1].split('"', 1)[0] or "BYE"
    return value.strip() or "BYE"


def _price(call: ev.Call) -> Callable[[int], Decimal] | None:
    """The price of ``call`` by its rating (None: not rated)."""
    if not call.tariff:
        return None
    try:
        rate, _ = decode_tariff(call.tariff)
    except (ValueError, KeyError, TypeError):
        log.warning("call %s: its rating cannot be read; no price", call.call_id)
        return None
    return lambda seconds: call_price(rate, seconds)


class Accounting:
    """Call events -> queued records -> RADIUS and the ``accounting`` table."""

    def __init__(self, queue: RecordQueue, client: RadiusClient | None, store: Any = None, *,
                 interim_interval: float = 0.0, nas_identifier: str = "", nas_ip: str = "",
                 drain: bool = True, poll_interval: float = 0.5, retry_wait: float = 1.0) -> None:
        self.queue = queue
        self.client = client
        self.store = store
        self.interim_interval = interim_interval
        #: how the records name the NAS (``nas_ip``: Accounting-On/Off's NAS-IP-Address; a
        #: call's records carry the address of the listener the call came in on)
        self.nas = {"nas_identifier": nas_identifier, "nas_ip": nas_ip}
        #: the Acct-Session-Id of this run's Accounting-On and -Off
        self.run_id = ""
        self.drain = drain
        self.poll_interval = poll_interval
        self.retry_wait = retry_wait
        self._greenlet: Any = None
        self._wakeup: Any = None
        self._flusher: Any = None
        self._flush_wakeup: Any = None
        #: (op, is an end, first tried, next try) waiting for the next commit
        self._pending: list[tuple[Any, bool, float, float]] = []
        #: records acknowledged by a server (for tests and logs)
        self.sent = 0

    # -- the proxy's events -----------------------------------------------------------------

    def answered(self, info: Any, ctx: Any, branch: Any, response: Any) -> None:
        req = ctx.request
        now = time.time()
        try:
            call = ev.answered(
                info, when=now, billing_party=getattr(ctx, "billing_party", "") or ctx.caller,
                source_ip=ctx.inbound.source.host, source_port=ctx.inbound.source.port,
                user_agent=req.headers.get("user-agent") or "",
                from_uri=str(req.from_.uri), to_uri=str(req.to.uri),
                translated_uri=str(branch.request.uri),
                callee_user_agent=response.headers.get("user-agent") or response.headers.get("server") or "",
                from_header=req.headers.get("from") or "", proxy_ip=ctx.inbound.listener.host,
                proxy_port=ctx.inbound.listener.port, status=response.status, reason=response.reason,
                tariff=getattr(ctx, "tariff", "") or "")
        except ParseError:
            return
        if self.client is None:  # the accounting table only: the call is kept for its Stop's row
            self._submit(lambda db: self.queue.add_in(db, [], call=call))
            return
        nxt = now + self.interim_interval if self.interim_interval > 0 else None
        record = (ev.record_id(call.call_id, call.from_tag, ev.START), now, ev.start_attributes(call, self.nas))
        self._submit(lambda db: self.queue.add_in(db, [record], call=call, next_interim=nxt))

    def ended(self, request: Any, media: dict | None = None) -> None:
        try:
            tag_a, tag_b = request.from_.tag or "", request.to.tag or ""
        except ParseError:
            return
        self._end(request.call_id or "", tag_a, tag_b, None, _reason_text(request), media)

    def ended_by_proxy(self, call_id: str, from_tag: str, to_tag: str, reason: str,
                       media: dict | None = None) -> None:
        self._end(call_id, from_tag, to_tag, "proxy", reason, media)

    def _end(self, call_id: str, tag_a: str, tag_b: str, party: str | None, reason: str,
             media: dict | None) -> None:
        now = time.time()
        totals = ev.media_totals(media)

        def make(call: ev.Call) -> tuple[list, list]:
            who = party or ("caller" if tag_a == call.from_tag else "callee")
            end = ev.CallEnd(now, who, reason, totals)
            rid = ev.record_id(call.call_id, call.from_tag, ev.STOP)
            row = [(rid, ev.stop_row(call, end, _price(call)))]
            return ([] if self.client is None else [(rid, now, ev.stop_attributes(call, end, self.nas))]), row

        self._submit(lambda db: self.queue.end_call_in(db, call_id, tag_a, tag_b, make), end=True)

    def failed(self, request: Any, inbound: Any, response: Any, caller: str, callee: str,
               billing_party: str = "", target: str = "") -> None:
        """``target``: the Request-URI the call was last sent to (none: refused before)."""
        now = time.time()
        try:
            call = ev.Call(
                call_id=request.call_id or "", from_tag=request.from_.tag or "",
                to_tag=response.to.tag or "", caller=caller, callee=callee,
                from_uri=str(request.from_.uri), to_uri=str(request.to.uri),
                translated_uri=target or str(request.uri), billing_party=billing_party or caller,
                source_ip=inbound.source.host, source_port=inbound.source.port,
                user_agent=request.headers.get("user-agent") or "",
                from_header=request.headers.get("from") or "", proxy_ip=inbound.listener.host,
                proxy_port=inbound.listener.port, cseq=request.cseq[0], answer_time=now,
                status=response.status, reason=response.reason)
        except ParseError:
            return
        rid = ev.record_id(call.call_id, call.from_tag, ev.FAILED, call.status)
        records = [] if self.client is None else [(rid, now, ev.failed_attributes(call, self.nas))]
        self._submit(lambda db: self.queue.add_in(db, records, [(rid, ev.failed_row(call))]))

    def announce(self, kind: str) -> None:
        """Queue an ``Accounting-On`` or ``-Off`` record (``kind``) -- by the worker that
        sends (one per proxy, not one per worker) and only to RADIUS servers: the
        ``accounting`` table has no row for it.  An On names a new run (its
        ``Acct-Session-Id``), the Off after it the same one."""
        if self.client is None or not self.drain:
            return
        now = time.time()
        if kind == ev.ACCOUNTING_ON or not self.run_id:
            self.run_id = f"{self.nas['nas_identifier'] or 'sipproxy'}-{int(now * 1000):x}-{os.getpid():x}"
        run = self.run_id
        record = (ev.record_id(run, "", kind), now, ev.nas_attributes(kind, run, now, self.nas))
        self._submit(lambda db: self.queue.add_in(db, [record]))
        log.info("accounting: %s (%s) queued", kind, run)

    # -- committing the events ----------------------------------------------------------------

    def _submit(self, op: Any, end: bool = False) -> None:
        now = time.monotonic()
        self._pending.append((op, end, now, now))
        if self._flusher is None:
            self.flush()
        else:
            self._flush_wakeup.set()

    def flush(self, final: bool = False) -> None:
        """Commit the pending events due now in one transaction (``final``: all, and give
        up on ends whose call is not known)."""
        now = time.monotonic()
        due = [p for p in self._pending if final or p[3] <= now]
        if not due:
            return
        later = [p for p in self._pending if not (final or p[3] <= now)]
        self._pending = later
        try:
            results = self.queue.batch([op for op, *_ in due])
        except Exception:
            log.exception("accounting: %d event(s) not queued yet; retrying", len(due))
            if not final:
                self._pending = [(op, end, t0, now + 1.0) for op, end, t0, _ in due] + self._pending
            return
        for (op, end, t0, _), result in zip(due, results, strict=True):
            if end and result is None:
                if not final and now - t0 < END_WAIT:
                    self._pending.append((op, end, t0, now + END_RETRY))
                else:
                    log.debug("a call ended, but no answered call of it is known")
        if self._wakeup is not None:
            self._wakeup.set()

    # -- the background sender --------------------------------------------------------------

    def _interim(self, call: ev.Call, seq: int) -> list:
        now = time.time()
        return [(ev.record_id(call.call_id, call.from_tag, ev.INTERIM, seq), now,
                 ev.interim_attributes(call, now, seq, self.nas))]

    def run_once(self) -> bool:
        """One round: due Interim-Updates, table rows, records; False when no server
        answered (the records wait)."""
        if self.interim_interval > 0:
            self.queue.interims(time.time(), self.interim_interval, self._interim)
        if self.store is not None:
            rows = self.queue.pending_rows()
            if rows:
                try:
                    self.store.write([row for _, row in rows])
                except Exception as exc:  # the database is away: the rows wait
                    log.error("accounting rows not written (%d waiting): %s", len(rows),
                              str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                else:
                    self.queue.rows_written([rid for rid, _ in rows])
        if self.client is None:
            return True
        while True:
            records = self.queue.pending()
            if not records:
                return True
            for rid, created, attrs in records:
                server = self.client.send(attrs, created)
                if server is None:
                    log.warning("no RADIUS server answered; %d record(s) wait in %s",
                                self.queue.counts()["records"], self.queue.path)
                    return False
                self.queue.sent(rid)
                self.sent += 1
                log.debug("accounting record %s acknowledged by %s", rid, server)

    def start(self) -> None:
        import gevent
        from gevent.event import Event

        self._flush_wakeup = Event()

        def flusher() -> None:
            while True:
                self._flush_wakeup.wait(END_RETRY if self._pending else None)
                self._flush_wakeup.clear()
                gevent.sleep(FLUSH_INTERVAL)  # let a burst accumulate
                try:
                    self.flush()
                except Exception:
                    log.exception("accounting writer failed")

        self._flusher = gevent.spawn(flusher)
        if not self.drain:
            return
        self.announce(ev.ACCOUNTING_ON)
        self._wakeup = Event()

        def loop() -> None:
            while True:
                try:
                    ok = self.run_once()
                except Exception:
                    log.exception("accounting sender failed")
                    ok = False
                self._wakeup.clear()
                if ok:
                    self._wakeup.wait(self.poll_interval)
                else:
                    gevent.sleep(self.retry_wait)

        self._greenlet = gevent.spawn(loop)

    def stop(self) -> None:
        """Commit the pending events, queue the Accounting-Off after them (worker 0), send
        what the queue holds for up to :data:`STOP_SEND` seconds, and stop sending; what is
        not sent yet stays queued for the next start.  The queue stays open: an event
        still coming in while the process stops is committed at once."""
        sending = self._greenlet is not None
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None
        if self._flusher is not None:
            self._flusher.kill()
            self._flusher = None
        self.flush(final=True)
        if not sending:
            return
        self.announce(ev.ACCOUNTING_OFF)
        import gevent

        # a record cut off mid-exchange stays queued (deleted only once acknowledged): at
        # worst it is sent again, identical, after the next start
        with gevent.Timeout(STOP_SEND, False):
            try:
                self.run_once()
            except Exception:
                log.exception("accounting: sending at stop failed; the records wait for the next start")
