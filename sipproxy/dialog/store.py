"""Dialog state of established calls, in the shared ``dialogs`` table (RFC 3261 section 12).

The proxy records every call that a 2xx to an INVITE established and forgets it on BYE.
The row lives in SQL rather than in the proxy's memory because call control (cut-off of a
prepaid call, a media timeout, an operator ending a call) needs to find the call from any
proxy process, and a restarted proxy must still know what is up.  A dialog is identified by
Call-ID and the caller's From tag (unique in the table); a BYE may come from either side, so
removal matches the Call-ID and either tag.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, insert, or_, select
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
from sipproxy.dialog.state import DialogInfo

log = logging.getLogger("sipproxy.dialog")

__all__ = ["DialogStore"]


_T = Dialog.__table__
# Core statements, compiled once per dialect (ngnpro.models.Compiled: parameters picked out
# without processors, the datetimes are converted once per batch) and run as bulk executemany
_REPLACE = delete(_T).where(_T.c.call_id == bindparam("c"), _T.c.from_tag == bindparam("f"))
_INSERT = insert(_T)
_INSERT_KEYS = tuple(c.key for c in _T.c if c.key != "id")
_ENDED = delete(_T).where(
    _T.c.call_id == bindparam("c"),
    or_(_T.c.from_tag == bindparam("a"), _T.c.from_tag == bindparam("b"),
        _T.c.to_tag == bindparam("a"), _T.c.to_tag == bindparam("b")))


#: errors that mean "the database cannot answer now": the writes wait for it
_UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)
#: most writes kept while the database is away (the oldest are dropped beyond)
MAX_KEPT = 100_000


def _clip(value: str, n: int) -> str:
    return value[:n]


def _engine_of(session_factory: Any) -> Engine:
    if isinstance(session_factory, Engine):
        return session_factory
    bind = getattr(session_factory, "kw", {}).get("bind")
    if isinstance(bind, Engine):
        return bind
    with session_factory() as s:
        return s.get_bind()


class DialogStore:
    """Writes and removes rows of ``dialogs``; database errors are logged, never raised
    (a call must not fail because its bookkeeping did).

    Once :meth:`start` ran, writes are queued and a greenlet applies them in order, many
    per SQL transaction, on a connection it keeps: a commit per call event would cap the
    proxy at the database's commit rate and block the gevent hub on every one, and a
    session and a pool check-out per batch cost more than the batch itself.  Without
    :meth:`start` every write is immediate (and takes a connection for just that write).
    """

    def __init__(self, session_factory: Callable[[], Session], flush_interval: float = 0.05) -> None:
        self._session_factory = session_factory
        self._engine = _engine_of(session_factory)
        dialect = self._engine.dialect
        self._replace = Compiled(_REPLACE, dialect, process=False)
        self._insert = Compiled(_INSERT, dialect, _INSERT_KEYS, process=False)
        self._ended = Compiled(_ENDED, dialect, process=False)
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

    # -- the two events ----------------------------------------------------------------

    def confirmed(self, info: DialogInfo) -> None:
        """A 2xx to an INVITE: the call is established."""
        self._submit(("confirmed", info))

    def ended(self, call_id: str, tag_a: str, tag_b: str = "") -> None:
        """A BYE (from either side): the call is over."""
        if tag_a or tag_b:
            self._submit(("ended", (call_id, tag_a, tag_b)))

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

    def _apply(self, conn: Connection, items: list[tuple[str, object]], optimistic: bool) -> None:
        """``optimistic``: insert the established dialogs without first deleting a row of
        the same call (there almost never is one: the IntegrityError says when there was)."""
        now = utcnow()
        if self._dt_in is not None:
            now = self._dt_in(now)
        rows, ended = [], []
        for kind, data in items:
            if kind == "confirmed":
                info: DialogInfo = data  # type: ignore[assignment]
                rows.append({
                    "call_id": _clip(info.call_id, 255), "from_tag": _clip(info.from_tag, 128),
                    "to_tag": _clip(info.to_tag, 128), "caller": _clip(info.caller, 255),
                    "callee": _clip(info.callee, 255), "billing_party": _clip(info.billing_party or info.caller, 255),
                    "state": "confirmed", "caller_contact": info.caller_contact,
                    "callee_contact": info.callee_contact, "caller_cseq": info.caller_cseq,
                    "callee_cseq": 0, "route_set": info.route_set,
                    "caller_source": _clip(info.caller_source, 128),
                    "callee_source": _clip(info.callee_source, 128), "proxy": _clip(info.proxy, 128),
                    "media_relay": _clip(info.media_relay, 128), "start_time": now,
                    "connect_time": now, "deadline": None,
                    "c": _clip(info.call_id, 255), "f": _clip(info.from_tag, 128),
                })
            else:
                call_id, tag_a, tag_b = data  # type: ignore[misc]
                ended.append({"c": _clip(call_id, 255), "a": tag_a or tag_b, "b": tag_b or tag_a})
        if rows:
            if not optimistic:
                conn.exec_driver_sql(self._replace.sql, self._replace.bind_many(rows))
            conn.exec_driver_sql(self._insert.sql, self._insert.bind_many(rows))
        if ended:
            conn.exec_driver_sql(self._ended.sql, self._ended.bind_many(ended))

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

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None
        self.flush()
        if self._conn is not None:
            self._release(self._conn, failed=True)  # closes it

    def find(self, call_id: str) -> list[Dialog | DialogInfo]:
        """The established dialogs of ``call_id``: the table's rows, and those whose write
        is still queued (a call answered in the last ``flush_interval``; call control may
        have to end it already, e.g. when its media relay dies)."""
        with self._session_factory() as s:
            rows: list[Dialog | DialogInfo] = list(
                s.scalars(select(Dialog).where(Dialog.call_id == _clip(call_id, 255))))
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
