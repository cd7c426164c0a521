"""The proxy's accounting: call events in, records queued, a greenlet sending them.

:class:`Accounting` is the object handed to ``Proxy(events=...)``; the proxy calls it where
a call changes (see :mod:`sipproxy.proxy.proxy` and :mod:`sipproxy.proxy.responses`):

* ``answered(info, ctx, branch, response)`` -- a 2xx to an initial INVITE (Start);
* ``ended(request, media)`` -- a BYE relayed, with the media relay's summary (Stop);
* ``ended_by_proxy(call_id, from_tag, to_tag, reason, media)`` -- the proxy ended the call
  itself (:class:`sipproxy.dialog.control.CallControl`, e.g. a media timeout) (Stop);
* ``failed(request, inbound, response, caller, callee, billing_party, target)`` -- a final
  failure (>= 300) of an initial INVITE: a missed call (Failed).

Each event is one SQLite transaction on the local queue (:mod:`.radius`); the sending
happens in the background (worker 0), so a slow or absent RADIUS server never holds a call.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sipproxy.accounting import events as ev
from sipproxy.accounting.radius import RadiusClient, RecordQueue
from sipproxy.sip.uri import ParseError

log = logging.getLogger("sipproxy.accounting")

__all__ = ["Accounting"]


def _reason_text(request: Any) -> str:
    """The text of a BYE's ``Reason`` header (RFC 3326), else "BYE"."""
    value = request.headers.get("reason") or ""
    if 'text="' in value:
        return value.split('text="', 1)[1].split('"', 1)[0] or "BYE"
    return value.strip() or "BYE"


class Accounting:
    """Call events -> queued records -> RADIUS and the ``accounting`` table."""

    def __init__(self, queue: RecordQueue, client: RadiusClient | None, store: Any = None, *,
                 interim_interval: float = 0.0, nas_identifier: str = "", drain: bool = True,
                 poll_interval: float = 0.5, retry_wait: float = 1.0) -> None:
        self.queue = queue
        self.client = client
        self.store = store
        self.interim_interval = interim_interval
        self.nas = {"nas_identifier": nas_identifier}
        self.drain = drain
        self.poll_interval = poll_interval
        self.retry_wait = retry_wait
        self._greenlet: Any = None
        self._wakeup: Any = None
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
                proxy_port=ctx.inbound.listener.port, status=response.status, reason=response.reason)
        except ParseError:
            return
        nxt = now + self.interim_interval if self.interim_interval > 0 else None
        record = (ev.record_id(call.call_id, call.from_tag, ev.START), now, ev.start_attributes(call, self.nas))
        self._submit(lambda: self.queue.add([record], call=call, next_interim=nxt))

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
            return [(rid, now, ev.stop_attributes(call, end, self.nas))], [(rid, ev.stop_row(call, end))]

        def write() -> None:
            if self.queue.end_call(call_id, tag_a, tag_b, make) is None:
                log.debug("call-id %s ended, but no answered call of it is known", call_id)

        self._submit(write)

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
        self._submit(lambda: self.queue.add([(rid, now, ev.failed_attributes(call, self.nas))],
                                            [(rid, ev.failed_row(call))]))

    def _submit(self, write: Any) -> None:
        try:
            write()
        except Exception:
            log.exception("accounting record not queued")
            return
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
        if not self.drain:
            return
        import gevent
        from gevent.event import Event

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
        """Stop sending; what is not sent yet stays queued for the next start.  The queue
        stays open: an event still coming in while the process stops is queued too."""
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None
