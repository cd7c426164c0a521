"""Dialog state of established calls, in the shared ``dialogs`` table (RFC 3261 section 12).

The proxy records every call that a 2xx to an INVITE established and forgets it on BYE.
The row lives in SQL rather than in the proxy's memory because call control (cut-off of a
prepaid call, a media timeout, an operator ending a call) needs to find the call from any
proxy process, and a restarted proxy must still know what is up.  A dialog is identified by
Call-ID and the caller's From tag (unique in the table); a BYE may come from either side, so
removal matches the Call-ID and either tag.
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
    bindparam,
    delete,
    insert,
    literal_column,
    null,
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
from sipproxy.dialog.prepaid import PrepaidCalls
from sipproxy.dialog.state import DialogInfo
from sipproxy.directory.feed import engine_of

log = logging.getLogger("sipproxy.dialog")

__all__ = ["DialogStore"]


_T = Dialog.__table__
# Core statements, compiled once per dialect (ngnpro.models.Compiled: parameters picked out
# without processors, the datetimes are converted once per batch) and run as bulk executemany
_REPLACE = delete(_T).where(_T.c.call_id == bindparam("c"), _T.c.from_tag == bindparam("f"))
_INSERT = insert(_T)
_INSERT_KEYS = tuple(c.key for c in _T.c if c.key != "id")
# (the constants are written into the SQL: Compiled binds only the named parameters)
_TERMINATED, _CONFIRMED = literal_column("'terminated'"), literal_column("'confirmed'")
_OF_CALL = and_(_T.c.call_id == bindparam("c"),
                or_(_T.c.from_tag == bindparam("a"), _T.c.from_tag == bindparam("b"),
                    _T.c.to_tag == bindparam("a"), _T.c.to_tag == bindparam("b")))
#: a BYE: the call is over (the row stays until the BYE is answered)
_ENDED = update(_T).where(_OF_CALL, _T.c.state != _TERMINATED).values(
    state=_TERMINATED, end_time=bindparam("t"), deadline=null())
#: the BYE was answered (or timed out): the row goes
_REMOVED = delete(_T).where(_OF_CALL, _T.c.state == _TERMINATED)
#: a target refresh (RFC 3261 12.2): a Contact becomes that party's remote target.  The
#: party is known by the refresh's sender tag: the caller's (the row's from_tag) or the
#: callee's (its to_tag); the sender's Contact is its own, the answer's the other party's.
_TARGETS = [  # (statement, the Contact it writes: 2 the sender's, 3 the answer's)
    (update(_T).where(_T.c.call_id == bindparam("c"), _T.c[tag] == bindparam("s"), _T.c.state == _CONFIRMED)
     .values({column: bindparam("sc")}), pick)
    for column, tag, pick in (("caller_contact", "from_tag", 2), ("callee_contact", "to_tag", 2),
                              ("callee_contact", "from_tag", 3), ("caller_contact", "to_tag", 3))
]
_SESSION_REFRESH = update(_T).where(
    _T.c.call_id == bindparam("c"), or_(_T.c.from_tag == bindparam("s"), _T.c.to_tag == bindparam("s")),
    _T.c.state == _CONFIRMED).values(session_interval=bindparam("i"), expires=bindparam("e"))
_PREPAID_OF = select(_T.c.call_id).where(_T.c.call_id.in_(bindparam("calls", expanding=True)),
                                         _T.c.state == "confirmed", _T.c.tariff != "")


#: seconds a ``terminated`` row waits for its BYE's answer (64*T1, a non-INVITE transaction's
#: lifetime) before the cut-off sweep drops it: a proxy that stopped meanwhile never will
STALE_TERMINATED = 32.0
#: seconds between two looks for calls past their deadline (a cut-off is at most this late)
CUTOFF_INTERVAL = 0.25

#: errors that mean "the database cannot answer now": the writes wait for it
_UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)
#: most writes kept while the database is away (the oldest are dropped beyond)
MAX_KEPT = 100_000


def _groups(items: list[tuple[str, object]]) -> list[tuple[str, list[object]]]:
    """``items`` as runs of one kind, in order (see DialogStore._apply)."""
    out: list[tuple[str, list[object]]] = []
    for kind, data in items:
        if out and out[-1][0] == kind:
            out[-1][1].append(data)
        else:
            out.append((kind, [data]))
    return out


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
        self._replace = Compiled(_REPLACE, dialect, process=False)
        self._insert = Compiled(_INSERT, dialect, _INSERT_KEYS, process=False)
        self._ended = Compiled(_ENDED, dialect, process=False)
        self._removed = Compiled(_REMOVED, dialect, process=False)
        self._targets = [(Compiled(stmt, dialect, process=False), pick) for stmt, pick in _TARGETS]
        self._session = Compiled(_SESSION_REFRESH, dialect, process=False)
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
        self._next_sweep = 0.0  # when stale terminated rows are dropped next (monotonic)

    # -- the events ---------------------------------------------------------------------

    def confirmed(self, info: DialogInfo) -> None:
        """A 2xx to an INVITE: the call is established.  A prepaid call is written at once,
        with its deadline (its balance is shared with the payer's other calls)."""
        if info.tariff and self.prepaid is not None:
            row = self._row(info, utcnow(), driver=False)
            del row["c"], row["f"]
            try:
                self.prepaid.answered(row)
                return
            except SQLAlchemyError as exc:
                log.error("prepaid call %s: not written at answer (%s); kept for the next batch",
                          info.call_id, str(exc).splitlines()[0])
        self._submit(("confirmed", info))

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
                    self._apply(conn, items, optimistic=True)
            except IntegrityError:  # a dialog written before (rolled back): replace it
                with conn.begin():
                    self._apply(conn, items, optimistic=False)
        except BaseException:
            self._release(conn, failed=True)
            raise
        self._release(conn)

    def flush(self) -> None:
        """Apply every queued write in one transaction, as three bulk statements (replace
        established dialogs, insert them, delete ended ones); row by row on error."""
        items, self._queue = self._queue, []
        if not items:
            return
        self._writing = items
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
                return
            for item in items:  # one bad row must not lose the others
                try:
                    self._write([item])
                except SQLAlchemyError as err:
                    log.error("dialog %s not written: %s", item[0], str(err).splitlines()[0])
        finally:
            self._writing = []

    def _keep(self, items: list[tuple[str, object]], exc: BaseException) -> None:
        """The database is away: keep the writes, in order, for the next try (a BYE's delete
        lost now would leave the call's row for good)."""
        self._queue[:0] = items
        if len(self._queue) > MAX_KEPT:
            dropped = len(self._queue) - MAX_KEPT
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

    def _row(self, info: DialogInfo, now: Any, driver: bool = True) -> dict[str, Any]:
        """The ``dialogs`` values of an established call (``c``/``f``: the replace keys), with
        times as the driver takes them (``driver`` False: datetimes)."""
        deadline = self._stamp_in(self.max_duration, driver)
        return {
            "call_id": _clip(info.call_id, 255), "from_tag": _clip(info.from_tag, 128),
            "to_tag": _clip(info.to_tag, 128), "caller": _clip(info.caller, 255),
            "callee": _clip(info.callee, 255), "billing_party": _clip(info.billing_party or info.caller, 255),
            "state": "confirmed", "caller_contact": info.caller_contact,
            "callee_contact": info.callee_contact, "caller_cseq": info.caller_cseq,
            "callee_cseq": 0, "route_set": info.route_set,
            "caller_source": _clip(info.caller_source, 128),
            "callee_source": _clip(info.callee_source, 128), "proxy": _clip(info.proxy, 128),
            "media_relay": _clip(info.media_relay, 128), "start_time": now,
            "connect_time": now, "deadline": deadline, "tariff": info.tariff, "end_time": None,
            "session_interval": info.session_interval, "expires": self._stamp_in(info.session_interval, driver),
            "c": _clip(info.call_id, 255), "f": _clip(info.from_tag, 128),
        }

    def _apply(self, conn: Connection, items: list[tuple[str, object]], optimistic: bool) -> None:
        """``optimistic``: insert the established dialogs without first deleting a row of
        the same call (there almost never is one: the IntegrityError says when there was).
        Consecutive events of one kind are one bulk statement, and the statements run in
        the order the events came, so an event never overtakes the one it follows (an end
        its call's answer, a removal its end)."""
        now = utcnow()
        stamp = self._dt_in(now) if self._dt_in is not None else now
        for kind, group in _groups(items):
            if kind == "confirmed":
                rows = [self._row(info, stamp) for info in group]  # type: ignore[arg-type]
                if not optimistic:
                    conn.exec_driver_sql(self._replace.sql, self._replace.bind_many(rows))
                conn.exec_driver_sql(self._insert.sql, self._insert.bind_many(rows))
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

    def _debit(self, conn: Connection, ends: list[tuple[str, str, str]]) -> None:
        """Debit the prepaid calls among ``ends`` (one query finds them) before they are
        marked terminated."""
        calls = sorted({_clip(c, 255) for c, _, _ in ends})
        prepaid = set(conn.execute(_PREPAID_OF, {"calls": calls}).scalars())
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
        sharing the database exactly one ends each call.  Also drops ``terminated`` rows
        whose BYE was never answered (``STALE_TERMINATED`` seconds after their end), once
        per ``STALE_TERMINATED`` seconds (a write: not at every look)."""
        now = utcnow()
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + STALE_TERMINATED
            with self._engine.begin() as conn:
                conn.execute(delete(_T).where(_T.c.state == "terminated",
                                              _T.c.end_time < now - _dt.timedelta(seconds=STALE_TERMINATED)))
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

    def find(self, call_id: str) -> list[Dialog | DialogInfo]:
        """The established dialogs of ``call_id``: the table's rows, and those whose write
        is still queued (a call answered in the last ``flush_interval``; call control may
        have to end it already, e.g. when its media relay dies)."""
        with self._session_factory() as s:
            rows: list[Dialog | DialogInfo] = list(s.scalars(select(Dialog).where(
                Dialog.call_id == _clip(call_id, 255), Dialog.state != "terminated")))
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
