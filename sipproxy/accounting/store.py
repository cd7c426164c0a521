"""The shared ``accounting`` table (``ngnpro.models.AccountingRecord``): one row per call.

A row is written when the call is over (its Stop) or failed (its Failed record): the
values come from :func:`sipproxy.accounting.events.stop_row` / ``failed_row`` through the
local queue (:class:`sipproxy.accounting.radius.RecordQueue`), so a database that is down
for a while delays the rows without losing them.  Writing is idempotent: a row already
there for the same call and start time is replaced, so a batch written again after a crash
between the commit and the queue's delete still leaves one row per call.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, delete, insert, or_
from sqlalchemy.orm import Session

from ngnpro.models import AccountingRecord

__all__ = ["AccountingStore"]

_T = AccountingRecord.__table__
_COLUMNS = {c.key for c in _T.c if c.key != "id"}


def _value(key: str, value: Any) -> Any:
    if key in ("start_time", "stop_time") and isinstance(value, str):
        return _dt.datetime.fromisoformat(value)
    if key == "price":
        return Decimal(value)
    return value


class AccountingStore:
    """Writes ``accounting`` rows in batches (one transaction each)."""

    def __init__(self, session_factory: Callable[[], Session]) -> None:
        self._session_factory = session_factory

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Insert ``rows`` (column values), replacing rows of the same calls and start
        times; raises SQLAlchemy's errors (the caller keeps the rows queued)."""
        if not rows:
            return
        clean = [{k: _value(k, v) for k, v in row.items() if k in _COLUMNS} for row in rows]
        same = or_(*(and_(_T.c.call_id == r["call_id"], _T.c.from_tag == r["from_tag"],
                          _T.c.start_time == r["start_time"]) for r in clean))
        with self._session_factory() as s, s.begin():
            s.execute(delete(_T).where(same))
            s.execute(insert(_T), clean)
