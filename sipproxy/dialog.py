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
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, insert, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ngnpro.models import Dialog
from ngnpro.models.base import utcnow

log = logging.getLogger("sipproxy.dialog")

__all__ = ["DialogInfo", "DialogStore"]


@dataclass(frozen=True)
class DialogInfo:
    """What the proxy knows of a call when the callee answered."""

    call_id: str
    from_tag: str
    to_tag: str
    caller: str
    callee: str
    caller_contact: str = ""
    callee_contact: str = ""
    caller_cseq: int = 0
    route_set: str = ""
    caller_source: str = ""
    callee_source: str = ""
    proxy: str = ""
    media_relay: str = ""


_T = Dialog.__table__
# Core statements: bulk (executemany) writes, compiled once
_REPLACE = delete(_T).where(_T.c.call_id == bindparam("c"), _T.c.from_tag == bindparam("f"))
_INSERT = insert(_T)
_ENDED = delete(_T).where(
    _T.c.call_id == bindparam("c"),
    or_(_T.c.from_tag == bindparam("a"), _T.c.from_tag == bindparam("b"),
        _T.c.to_tag == bindparam("a"), _T.c.to_tag == bindparam("b")))


def _clip(value: str, n: int) -> str:
    return value[:n]


class DialogStore:
    """Writes and removes rows of ``dialogs``; database errors are logged, never raised
    (a call must not fail because its bookkeeping did).

    Once :meth:`start` ran, writes are queued and a greenlet applies them in order, many
    per SQL transaction: a commit per call event would cap the proxy at the database's
    commit rate and block the gevent hub on every one.  Without :meth:`start` every write
    is immediate.
    """

    def __init__(self, session_factory: Callable[[], Session], flush_interval: float = 0.05) -> None:
        self._session_factory = session_factory
        self.flush_interval = flush_interval
        self._queue: list[tuple[str, object]] = []
        self._greenlet = None
        self._wakeup = None

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

    def flush(self) -> None:
        """Apply every queued write in one transaction, as three bulk statements (replace
        established dialogs, insert them, delete ended ones); row by row on error."""
        items, self._queue = self._queue, []
        if not items:
            return
        try:
            with self._session_factory() as s, s.begin():
                self._apply(s, items)
        except SQLAlchemyError:
            for item in items:  # one bad row must not lose the others
                try:
                    with self._session_factory() as s, s.begin():
                        self._apply(s, [item])
                except SQLAlchemyError as exc:
                    log.error("dialog %s not written: %s", item[0], str(exc).splitlines()[0])

    @staticmethod
    def _apply(s: Session, items: list[tuple[str, object]]) -> None:
        now = utcnow()
        rows, ended = [], []
        for kind, data in items:
            if kind == "confirmed":
                info: DialogInfo = data  # type: ignore[assignment]
                rows.append({
                    "call_id": _clip(info.call_id, 255), "from_tag": _clip(info.from_tag, 128),
                    "to_tag": _clip(info.to_tag, 128), "caller": _clip(info.caller, 255),
                    "callee": _clip(info.callee, 255), "billing_party": _clip(info.caller, 255),
                    "state": "confirmed", "caller_contact": info.caller_contact,
                    "callee_contact": info.callee_contact, "caller_cseq": info.caller_cseq,
                    "callee_cseq": 0, "route_set": info.route_set,
                    "caller_source": _clip(info.caller_source, 128),
                    "callee_source": _clip(info.callee_source, 128), "proxy": _clip(info.proxy, 128),
                    "media_relay": _clip(info.media_relay, 128), "start_time": now,
                    "connect_time": now, "deadline": None,
                })
            else:
                call_id, tag_a, tag_b = data  # type: ignore[misc]
                ended.append({"c": _clip(call_id, 255), "a": tag_a or tag_b, "b": tag_b or tag_a})
        conn = s.connection()
        if rows:
            conn.execute(_REPLACE, [{"c": r["call_id"], "f": r["from_tag"]} for r in rows])
            conn.execute(_INSERT, rows)
        if ended:
            conn.execute(_ENDED, ended)

    def start(self) -> None:
        import gevent
        from gevent.event import Event

        self._wakeup = Event()

        def loop() -> None:
            while True:
                self._wakeup.wait()
                self._wakeup.clear()
                gevent.sleep(self.flush_interval)  # let a burst accumulate
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

    def find(self, call_id: str) -> list[Dialog]:
        with self._session_factory() as s:
            return list(s.scalars(select(Dialog).where(Dialog.call_id == _clip(call_id, 255))))
