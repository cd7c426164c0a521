"""Dialog state of calls, in the shared ``dialogs`` table (RFC 3261 section 12).

A call's row is ``early`` from the initial INVITE the proxy forwards, ``confirmed`` from its
2xx, ``terminated`` at its BYE, and removed when that BYE is answered; a call that fails
(a final non-2xx answer, CANCEL, Timer C) loses its early row.  The row lives in SQL rather
than in the proxy's memory because the call limit counts a caller's calls on every worker
and proxy, call control (cut-off of a prepaid call, a media timeout) needs to find the call
from any proxy process, and a restarted proxy must still know what is up.

A row is one call, not one branch: it is keyed by Call-ID and the caller's From tag (the
table's unique constraint).  The To tag is only known at the answer -- each fork branch
may have its own -- so the early row has none and the 2xx writes it.  A BYE may come from
either side, so its end matches the Call-ID and either tag.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    delete,
    or_,
    select,
    update,
)
from sqlalchemy.exc import (
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from ngnpro.models import Compiled, Dialog, datetime_bind
from ngnpro.models.base import utcnow
from sipproxy.dialog import sql
from sipproxy.dialog.batching import groups
from sipproxy.dialog.pending import Unflushed
from sipproxy.dialog.prepaid import PrepaidCalls
from sipproxy.dialog.state import DialogInfo
from sipproxy.directory.feed import engine_of

log = logging.getLogger("sipproxy.dialog")

__all__ = ["DialogStore"]

_T = sql.T


#: seconds a ``terminated`` row waits for its BYE's answer (64*T1, a non-INVITE transaction's
#: lifetime) before the cut-off sweep drops it: a proxy that stopped meanwhile never will;
#: also how often that sweep runs (it drops stale early rows too: past their ``deadline``,
#: sipproxy.dialog.state.early_bound)
STALE_TERMINATED = 32.0
#: seconds an early row written without a bound (not by the proxy) may stay
UNBOUNDED_EARLY = 3600.0
#: seconds between two looks for calls past their deadline (a cut-off is at most this late)
CUTOFF_INTERVAL = 0.25

#: errors that mean "the database cannot answer now": the writes wait for it
_UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)
#: most writes kept while the database is away (the oldest are dropped beyond)
MAX_KEPT = 100_000


def _clip(value: str, n: int) -> str:
    return value[:n]


class DialogStore:
    """Writes and removes rows of ``dialogs``; database errors are logged, never raised
    (a call must not fail because its bookkeeping did).

    Once :meth:`start` ran, writes are queued and a greenlet applies them in order, many
    per SQL transaction, on a connection it keeps: a commit per call event would cap the
    proxy at the database's commit rate and block the gevent hub on every one, and a
    session and a pool check-out per batch cost more than the batch itself.  Without
    :meth:`start` every write is immediate (and takes a connection for just that write).
    """

    def __init__(self, session_factory: Callable[[], Session], flush_interval: float = 0.05, *,
                 prepaid: PrepaidCalls | None = None, max_duration: float = 0.0) -> None:
        self._session_factory = session_factory
        #: prepaid calls' deadlines and debits (None: no call is debited)
        self.prepaid = prepaid
        #: the longest call allowed, seconds (0: no limit): every call's deadline
        self.max_duration = max_duration
        self._engine = engine_of(session_factory)
        dialect = self._engine.dialect
        self._confirm = Compiled(sql.CONFIRM, dialect, sql.CONFIRM_KEYS, process=False)
        self._insert_new = Compiled(sql.insert_new(dialect), dialect, sql.INSERT_KEYS, process=False)
        self._failed = Compiled(sql.FAILED, dialect, process=False)
        self._ringing = Compiled(sql.RINGING, dialect, process=False)
        self._answered = Compiled(sql.ANSWERED, dialect, process=False)
        self._ended = Compiled(sql.ENDED, dialect, process=False)
        self._removed = Compiled(sql.REMOVED, dialect, process=False)
        self._targets = [(Compiled(stmt, dialect, process=False), pick) for stmt, pick in sql.TARGETS]
        self._session = Compiled(sql.SESSION_REFRESH, dialect, process=False)
        self._dt_in = datetime_bind(_T.c.start_time.type, dialect)  # SQLite keeps datetimes as text
        self.flush_interval = flush_interval
        self._queue: list[tuple[str, object]] = []
        self._writing: list[tuple[str, object]] = []  # the batch being written
        #: the database could not answer since (monotonic seconds): writes are kept queued
        #: and retried every ``retry_interval`` (the writer greenlet only)
        self.unavailable_since: float | None = None
        self.retry_interval = 1.0
        self._greenlet = None
        self._wakeup = None
        self._conn: Connection | None = None  # kept while started
        #: batches written (for tests and benchmarks)
        self.batches = 0
        #: called with each ``dialogs`` row whose deadline passed (CallControl.on_deadline);
        #: None: no cut-off loop
        self.on_deadline: Callable[[Any], Any] | None = None
        self._cutoff = None
        self._next_sweep = 0.0  # when stale terminated and early rows are dropped next (monotonic)
        #: this process's early-row writes not in the database yet, per caller (the call
        #: limit adds them to the rows it counts, see :meth:`unflushed`)
        self.pending = Unflushed()

    # -- the events ---------------------------------------------------------------------

    def early(self, info: DialogInfo, bound: float) -> None:
        """An initial INVITE is forwarded: the call rings (``info``: the caller's side, no
        To tag).  Its row is ``early`` until the answer, and stale ``bound`` seconds from
        now (:func:`sipproxy.dialog.state.early_bound`) if nothing removed it by then."""
        self.pending.add(info.caller)
        self._submit(("early", (info, bound)))

    def ringing(self, call_id: str, from_tag: str, bound: float) -> None:
        """The ringing call is forwarded again (a call diversion): its early row is stale
        ``bound`` seconds from now instead."""
        self._submit(("ringing", (call_id, from_tag, bound)))

    def failed(self, call_id: str, from_tag: str, cseq: int, caller: str = "") -> None:
        """The call (its INVITE's CSeq number ``cseq``) got a final non-2xx answer (a
        failure, CANCEL, Timer C): its early row goes (a row the call's 2xx confirmed
        meanwhile stays).  ``caller``: the call's early row was queued here (counted in
        :meth:`unflushed` until this lands); empty for a call of a previous process."""
        if caller:
            self.pending.add(caller, -1)
        self._submit(("failed", (call_id, from_tag, cseq, caller)))

    def answered(self, call_id: str, from_tag: str, cseq: int, to_tag: str, callee_contact: str,
                 route_set: str, callee_source: str, session_interval: int = 0) -> None:
        """A 2xx to an INVITE (CSeq number ``cseq``) that matched no transaction of this
        process: if the call rang through this proxy before it restarted (responses
        follow the Via, which names the proxy's address), its early row is there and
        becomes ``confirmed`` with what the 2xx tells (the caller's side was written at
        the INVITE); anything else (a late retransmission) changes nothing."""
        if to_tag:
            self._submit(("answered", (call_id, from_tag, cseq, to_tag, callee_contact, route_set, callee_source,
                                       session_interval)))

    def unflushed(self, caller: str) -> int:
        """How many of ``caller``'s calls the ``dialogs`` rows do not show yet: early rows
        queued here minus early rows whose removal is queued here (see
        :mod:`sipproxy.dialog.pending`)."""
        return self.pending.count(caller)

    def confirmed(self, info: DialogInfo) -> None:
        """A 2xx to an INVITE: the call is established (its early row becomes the
        confirmed one).  A prepaid call is written at once, with its deadline (its balance
        is shared with the payer's other calls)."""
        if info.tariff and self.prepaid is not None:
            self._unqueue_early(info.call_id, info.from_tag)
            row = self._row(info, utcnow(), driver=False)
            del row["c"], row["f"]
            for attempt in (1, 2):
                try:
                    self.prepaid.answered(row)
                    return
                except IntegrityError:
                    # the early row was being written by another connection (the batch in
                    # flight) while this one replaced it: it is there now, replace it again
                    if attempt == 2:
                        log.error("prepaid call %s: not written at answer (duplicate); kept for the next batch",
                                  info.call_id)
                except SQLAlchemyError as exc:
                    log.error("prepaid call %s: not written at answer (%s); kept for the next batch",
                              info.call_id, str(exc).splitlines()[0])
                    break
        self._submit(("confirmed", info))

    def _unqueue_early(self, call_id: str, from_tag: str) -> None:
        """A prepaid call's row is written at answer, at once: its early row, if still
        queued, is not written after all (and no longer counted as unflushed)."""
        for n, (kind, data) in enumerate(self._queue):
            if kind == "early" and data[0].call_id == call_id and data[0].from_tag == from_tag:  # type: ignore[index]
                del self._queue[n]
                self.pending.add(data[0].caller, -1)  # type: ignore[index]
                return

    def ended(self, call_id: str, tag_a: str, tag_b: str = "", *, remove: bool = False) -> None:
        """A BYE (from either side): the call is over; a prepaid call is debited.  The row
        stays until the BYE is answered (:meth:`removed`), or at once with ``remove`` (the
        proxy ended the call itself)."""
        if tag_a or tag_b:
            self._submit(("ended", (call_id, tag_a, tag_b)))
            if remove:
                self._submit(("removed", (call_id, tag_a, tag_b)))

    def removed(self, call_id: str, tag_a: str, tag_b: str = "") -> None:
        """The BYE was answered (any final response, or none in time): the row goes."""
        if tag_a or tag_b:
            self._submit(("removed", (call_id, tag_a, tag_b)))

    def refreshed(self, call_id: str, sender_tag: str, contact: str, answer_contact: str = "",
                  session_interval: int = 0) -> None:
        """A target refresh (re-INVITE, UPDATE) was answered 2xx: the sender's Contact is its
        new remote target; the answer's Contact the other party's.  It is also a session
        refresh (RFC 4028 section 10): the session now expires ``session_interval`` seconds
        (the 2xx's Session-Expires) from now; 0: no session timer any more."""
        if sender_tag:
            self._submit(("refreshed", (call_id, sender_tag, contact, answer_contact, session_interval)))

    def _submit(self, item: tuple[str, object]) -> None:
        self._queue.append(item)
        if self._greenlet is None:
            self.flush()
        elif self._wakeup is not None:
            self._wakeup.set()

    # -- writing -----------------------------------------------------------------------

    def _connection(self) -> Connection:
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            conn = self._engine.connect()
            if self._greenlet is not None:
                self._conn = conn
        return conn

    def _release(self, conn: Connection, failed: bool = False) -> None:
        if conn is self._conn and not failed:
            return  # kept for the next batch
        if conn is self._conn:
            self._conn = None
        try:
            conn.close()
        except SQLAlchemyError:
            pass

    def _write(self, items: list[tuple[str, object]]) -> None:
        conn = self._connection()
        try:
            try:
                with conn.begin():
                    self._apply(conn, items)
            except IntegrityError:  # another connection wrote a row of the call meanwhile: again
                with conn.begin():
                    self._apply(conn, items)
        except BaseException:
            self._release(conn, failed=True)
            raise
        self._release(conn)

    def flush(self) -> None:
        """Apply every queued write in one transaction, a bulk statement per group of one
        kind (:func:`.batching.groups`); row by row on error."""
        items, self._queue = self._queue, []
        if not items:
            return
        self._writing = items
        kept = False
        try:
            self._write(items)
            self.batches += 1
            if self.unavailable_since is not None:
                log.warning("dialogs: database answering again after %.1f s; %d kept writes applied",
                            time.monotonic() - self.unavailable_since, len(items))
                self.unavailable_since = None
        except SQLAlchemyError as exc:
            if isinstance(exc, _UNAVAILABLE) and self._greenlet is not None:
                self._keep(items, exc)
                kept = True
                return
            for item in items:  # one bad row must not lose the others
                try:
                    self._write([item])
                except SQLAlchemyError as err:
                    log.error("dialog %s not written: %s", item[0], str(err).splitlines()[0])
        finally:
            self._writing = []
            if not kept:
                self._settle(items)

    def _settle(self, items: list[tuple[str, object]]) -> None:
        """``items`` are in the database now (or lost for good): the call limit's tally of
        unflushed early rows no longer adds them (the rows count from now on)."""
        pending = self.pending
        for kind, data in items:
            if kind == "early":
                pending.add(data[0].caller, -1)  # type: ignore[index]
            elif kind == "failed" and data[3]:  # type: ignore[index]
                pending.add(data[3], 1)  # type: ignore[index]

    def _keep(self, items: list[tuple[str, object]], exc: BaseException) -> None:
        """The database is away: keep the writes, in order, for the next try (a BYE's delete
        lost now would leave the call's row for good)."""
        self._queue[:0] = items
        if len(self._queue) > MAX_KEPT:
            dropped = len(self._queue) - MAX_KEPT
            self._settle(self._queue[:dropped])
            del self._queue[:dropped]
            log.error("dialogs: %d writes dropped (more than %d kept while the database is away)",
                      dropped, MAX_KEPT)
        if self.unavailable_since is None:
            self.unavailable_since = time.monotonic()
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            log.warning("dialogs: database unavailable (%s); keeping the writes, retrying every %gs",
                        first, self.retry_interval)

    def _stamp_in(self, seconds: float, driver: bool = True) -> Any:
        """``seconds`` from now, as the driver takes it (``driver`` False: a datetime for
        SQLAlchemy's statements); None for 0: no such time."""
        if seconds <= 0:
            return None
        when = utcnow() + _dt.timedelta(seconds=seconds)
        return self._dt_in(when) if driver and self._dt_in is not None else when

    def _row(self, info: DialogInfo, now: Any, driver: bool = True, early_until: Any = None) -> dict[str, Any]:
        """The ``dialogs`` values of a call (``c``/``f``: its key, for the UPDATE of the
        answer), with times as the driver takes them (``driver`` False: datetimes): established, or with
        ``early_until`` (when the row is stale) ringing."""
        early = early_until is not None
        return {
            "call_id": _clip(info.call_id, 255), "from_tag": _clip(info.from_tag, 128),
            "to_tag": _clip(info.to_tag, 128), "caller": _clip(info.caller, 255),
            "callee": _clip(info.callee, 255), "billing_party": _clip(info.billing_party or info.caller, 255),
            "state": "early" if early else "confirmed", "caller_contact": info.caller_contact,
            "callee_contact": info.callee_contact, "caller_cseq": info.caller_cseq,
            "callee_cseq": 0, "route_set": info.route_set,
            "caller_source": _clip(info.caller_source, 128),
            "callee_source": _clip(info.callee_source, 128), "proxy": _clip(info.proxy, 128),
            "media_relay": _clip(info.media_relay, 128), "start_time": now,
            "connect_time": None if early else now,
            "deadline": early_until if early else self._stamp_in(self.max_duration, driver),
            "tariff": info.tariff, "end_time": None, "session_interval": info.session_interval,
            "expires": None if early else self._stamp_in(info.session_interval, driver),
            "c": _clip(info.call_id, 255), "f": _clip(info.from_tag, 128),
        }

    def _apply(self, conn: Connection, items: list[tuple[str, object]]) -> None:
        """A bulk statement per group of events of one kind (:func:`.batching.groups`):
        each call's events run in the order they came, so an event never overtakes the one
        it follows (an end its call's answer, a removal its end)."""
        now = utcnow()
        stamp = self._dt_in(now) if self._dt_in is not None else now
        for kind, group in groups(items):
            if kind == "early":
                rows = [self._row(info, stamp, early_until=self._at(now, bound))  # type: ignore[misc]
                        for info, bound in group]  # type: ignore[misc]
                conn.exec_driver_sql(self._insert_new.sql, self._insert_new.bind_many(rows))
            elif kind == "confirmed":  # the call's early row becomes the confirmed one
                rows = [self._row(info, stamp) for info in group]  # type: ignore[arg-type]
                changed = conn.exec_driver_sql(self._confirm.sql, self._confirm.bind_many(rows)).rowcount
                if changed != len(rows):  # a call without a row (its early row failed or went stale)
                    conn.exec_driver_sql(self._insert_new.sql, self._insert_new.bind_many(rows))
            elif kind == "failed":
                keys = [{"c": _clip(c, 255), "f": _clip(f, 128), "q": q} for c, f, q, _ in group]  # type: ignore[misc]
                conn.exec_driver_sql(self._failed.sql, self._failed.bind_many(keys))
            elif kind == "ringing":
                rows = [{"c": _clip(c, 255), "f": _clip(f, 128), "d": self._at(now, bound)}
                        for c, f, bound in group]  # type: ignore[misc]
                conn.exec_driver_sql(self._ringing.sql, self._ringing.bind_many(rows))
            elif kind == "answered":
                self._apply_answered(conn, group, stamp)  # type: ignore[arg-type]
            elif kind == "refreshed":
                rows = [{"c": _clip(d[0], 255), "s": _clip(d[1], 128), "i": d[4],  # type: ignore[index]
                         "e": self._stamp_in(d[4])} for d in group]  # type: ignore[index]
                conn.exec_driver_sql(self._session.sql, self._session.bind_many(rows))
                for stmt, pick in self._targets:
                    rows = [{"c": _clip(d[0], 255), "s": _clip(d[1], 128), "sc": d[pick]}  # type: ignore[index]
                            for d in group if d[pick]]  # type: ignore[index]
                    if rows:
                        conn.exec_driver_sql(stmt.sql, stmt.bind_many(rows))
            else:
                keys = [{"c": _clip(c, 255), "a": a or b, "b": b or a, "t": stamp}
                        for c, a, b in group]  # type: ignore[misc]
                if kind == "ended":
                    if self.prepaid is not None:
                        self._debit(conn, group)  # type: ignore[arg-type]
                    conn.exec_driver_sql(self._ended.sql, self._ended.bind_many(keys))
                else:
                    conn.exec_driver_sql(self._removed.sql, self._removed.bind_many(keys))

    def _at(self, now: _dt.datetime, seconds: float) -> Any:
        """``seconds`` after ``now``, as the driver takes it."""
        when = now + _dt.timedelta(seconds=seconds)
        return self._dt_in(when) if self._dt_in is not None else when

    def _apply_answered(self, conn: Connection, group: list[tuple], stamp: Any) -> None:
        """Early rows confirmed by a 2xx this process had no transaction for (it restarted
        while the call rang).  A prepaid one gets its payer's deadlines worked out again,
        as at any answer."""
        rows = [{"c": _clip(d[0], 255), "f": _clip(d[1], 128), "q": d[2], "t": _clip(d[3], 128), "cc": d[4],
                 "rs": d[5], "cs": _clip(d[6], 128), "n": stamp, "d": self._stamp_in(self.max_duration), "i": d[7],
                 "e": self._stamp_in(d[7])} for d in group]
        prepaid: list[tuple[str, str, str]] = []  # (call, tag, payer)
        if self.prepaid is not None:  # (rare: looked up row by row, before they change)
            for r in rows:
                prepaid.extend((r["c"], r["f"], payer) for payer in conn.execute(
                    sql.EARLY_PREPAID, {"c": r["c"], "f": r["f"], "q": r["q"]}).scalars())
        conn.exec_driver_sql(self._answered.sql, self._answered.bind_many(rows))
        for call_id, from_tag, payer in prepaid:
            self.prepaid.confirmed_in(conn, call_id, from_tag, payer)  # type: ignore[union-attr]

    def _debit(self, conn: Connection, ends: list[tuple[str, str, str]]) -> None:
        """Debit the prepaid calls among ``ends`` (one query finds them) before they are
        marked terminated."""
        calls = sorted({_clip(c, 255) for c, _, _ in ends})
        prepaid = set(conn.execute(sql.PREPAID_OF, {"calls": calls}).scalars())
        for call_id, a, b in ends:
            if call_id in prepaid:
                self.prepaid.debit_in(conn, call_id, {a, b} - {""})  # type: ignore[union-attr]

    def start(self) -> None:
        import gevent
        from gevent.event import Event

        self._wakeup = Event()

        def loop() -> None:
            while True:
                self._wakeup.wait()
                self._wakeup.clear()
                gevent.sleep(self.flush_interval)  # let a burst accumulate
                if self.unavailable_since is not None:  # once per retry_interval meanwhile
                    gevent.sleep(self.retry_interval)
                    self._wakeup.set()  # what is kept is tried again even with nothing new
                try:
                    self.flush()
                except Exception:
                    log.exception("dialog writer failed")

        self._greenlet = gevent.spawn(loop)
        if self.on_deadline is not None:
            self._cutoff = gevent.spawn(self._cutoff_loop)

    def _cutoff_loop(self) -> None:
        import gevent

        while True:
            gevent.sleep(CUTOFF_INTERVAL)
            try:
                rows = self.due()
            except SQLAlchemyError as exc:
                log.warning("dialogs: cannot look for calls to cut off: %s", str(exc).splitlines()[0])
                gevent.sleep(self.retry_interval)
                continue
            for row in rows:
                try:
                    self.on_deadline(row)  # type: ignore[misc]
                except Exception:
                    log.exception("call %s: cut-off failed", row.call_id)

    def stop(self) -> None:
        if self._cutoff is not None:
            self._cutoff.kill()
            self._cutoff = None
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None
        self.flush()
        if self._conn is not None:
            self._release(self._conn, failed=True)  # closes it

    # -- cut-off ----------------------------------------------------------------------

    def due(self, limit: int = 200) -> list[Any]:
        """Established calls whose deadline has passed, each claimed for this process (its
        deadline cleared by a conditional update), so of all the workers and proxies
        sharing the database exactly one ends each call.  Also runs :meth:`sweep` once per
        ``STALE_TERMINATED`` seconds (a write: not at every look)."""
        now = utcnow()
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + STALE_TERMINATED
            self.sweep(now)
        passed = or_(_T.c.deadline <= now, _T.c.expires <= now)  # (NULL compares to nothing)
        with self._engine.connect() as conn:
            rows = conn.execute(select(_T).where(_T.c.state == "confirmed", passed).limit(limit)).all()
        claimed = []
        for row in rows:
            with self._engine.begin() as conn:  # still due (not refreshed meanwhile), and ours
                won = conn.execute(update(_T).where(_T.c.id == row.id, _T.c.state == "confirmed", passed)
                                   .values(deadline=None, expires=None)).rowcount
            if won == 1:
                claimed.append(row)
        return claimed

    def sweep(self, now: _dt.datetime | None = None) -> int:
        """Drop the rows whose proxy will never remove them (it stopped, or a callee never
        answered its CANCEL): ``terminated`` rows whose BYE was not answered within
        ``STALE_TERMINATED`` seconds, and ``early`` rows past their ``deadline`` (the
        call's ring time and a margin, :func:`sipproxy.dialog.state.early_bound`; a row
        without one ``UNBOUNDED_EARLY`` seconds after its start).  Answers how many went."""
        now = now or utcnow()
        with self._engine.begin() as conn:
            n = conn.execute(delete(_T).where(_T.c.state == "terminated",
                                              _T.c.end_time < now - _dt.timedelta(seconds=STALE_TERMINATED))).rowcount
            n += conn.execute(delete(_T).where(_T.c.state == "early", or_(
                _T.c.deadline < now, and_(_T.c.deadline.is_(None),
                                          _T.c.start_time < now - _dt.timedelta(seconds=UNBOUNDED_EARLY))))).rowcount
        return n

    def find(self, call_id: str) -> list[Dialog | DialogInfo]:
        """The established dialogs of ``call_id``: the table's confirmed rows, and those
        whose write is still queued (a call answered in the last ``flush_interval``; call
        control may have to end it already, e.g. when its media relay dies).  A call still
        ringing is not established: there is no dialog to send BYE in yet."""
        with self._session_factory() as s:
            rows: list[Dialog | DialogInfo] = list(s.scalars(select(Dialog).where(
                Dialog.call_id == _clip(call_id, 255), Dialog.state == "confirmed")))
        queued: dict[str, DialogInfo] = {}
        for kind, data in (*self._writing, *self._queue):
            if kind == "confirmed" and data.call_id == call_id:  # type: ignore[attr-defined]
                queued[data.from_tag] = data  # type: ignore[attr-defined]
            elif kind == "ended" and data[0] == call_id:  # type: ignore[index]
                tags = {data[1], data[2]} - {""}  # type: ignore[index]
                for tag, info in list(queued.items()):
                    if tags & {info.from_tag, info.to_tag}:
                        del queued[tag]
        known = {r.from_tag for r in rows}
        return rows + [info for tag, info in queued.items() if tag not in known]
