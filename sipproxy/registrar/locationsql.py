"""The location table's statements, compiled once per dialect and run on DBAPI connections.

Why not ``Connection.execute``: per statement, SQLAlchemy's execution context (cache key,
parameter processing, result metadata) cost several times what SQLite itself spends on a
REGISTER's SELECT and UPDATE.  The statements are still SQLAlchemy Core, compiled by the
engine's dialect (so quoting, placeholders and PostgreSQL's casts are the dialect's own) by
:class:`ngnpro.models.prepared.Compiled`; their parameters are bound without processors
(one ``itemgetter`` call): the only conversion the location table needs, datetimes in and
out (SQLite keeping them as text), is done here once per value with the dialect's own
processors.

Connections are taken from the engine's pool once, detached from it (they are ours to
keep) and put in autocommit mode: a look-up is one statement without a transaction around
it, a write is an explicit ``BEGIN`` (SQLite: ``BEGIN IMMEDIATE``, so the read-modify-write
of a REGISTER is atomic against other processes) .. ``COMMIT``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import Engine, bindparam, delete, exists, or_, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

from ngnpro.models import Compiled, Location, SipAccount, datetime_bind

_T = Location.__table__
#: column name -> index in a row of ``select_aor`` / ``select_live``
COL = {c.key: i for i, c in enumerate(_T.c)}
_WRITTEN = tuple(c.key for c in _T.c if c.key != "id")
_UPDATED = tuple(k for k in _WRITTEN if k not in ("username", "domain", "contact_hash"))
#: what a pure REGISTER refresh changes (the write-back of sipproxy.registrar.location)
REFRESHED = ("expires", "call_id", "cseq", "user_agent", "last_modified")

_EPOCH = _dt.datetime(1970, 1, 1)

Row = tuple  # one row of the location table, columns in table order (``COL``)

# Core statements, built once; compiled per dialect by LocationSQL.
_SELECT_AOR = select(*_T.c).where(_T.c.username == bindparam("u"), _T.c.domain == bindparam("d"))
_SELECT_LIVE = _SELECT_AOR.where(_T.c.expires > bindparam("now"))
_UPDATE_ROW = update(_T).where(_T.c.id == bindparam("row_id"))
# A written-back refresh: never over a row another worker or proxy wrote later ("modified"
# is the refresh's own time, the same value as "last_modified"); a row deleted meanwhile
# matches nothing.
_REFRESH_ROW = update(_T).where(_T.c.id == bindparam("row_id"), _T.c.last_modified <= bindparam("modified"))
_INSERT_ROW = _T.insert().inline()
_DELETE_ID = delete(_T).where(_T.c.id == bindparam("row_id"))
_DELETE_AOR = delete(_T).where(_T.c.username == bindparam("u"), _T.c.domain == bindparam("d"))
_A = SipAccount.__table__
# The purge: expired bindings, and those of an account deleted since (matched exactly as the
# directory looks accounts up, so no binding a call could still use goes)
_DELETE_EXPIRED = delete(_T).where(or_(
    _T.c.expires <= bindparam("now"),
    ~exists().where(_A.c.username == _T.c.username, _A.c.domain == _T.c.domain),
))


def to_datetime(ts: float) -> _dt.datetime:
    """Epoch seconds -> the naive UTC datetime the table keeps."""
    return _EPOCH + _dt.timedelta(seconds=ts)


def to_epoch(value: _dt.datetime) -> float:
    return (value - _EPOCH).total_seconds()


class RawConnection:
    """A DBAPI connection of the location store's own, in autocommit mode."""

    __slots__ = ("dbapi", "cursor", "closed", "_sql")

    def __init__(self, dbapi_connection: Any, sql: LocationSQL) -> None:
        self.dbapi = dbapi_connection
        self.cursor = dbapi_connection.cursor()
        self.closed = False
        self._sql = sql

    def query(self, stmt: Compiled, values: Mapping[str, Any]) -> list[Row]:
        cur = self.cursor
        cur.execute(stmt.sql, stmt.bind(values))
        return cur.fetchall()

    def execute(self, stmt: Compiled, values: Mapping[str, Any]) -> None:
        self.cursor.execute(stmt.sql, stmt.bind(values))

    def execute_many(self, stmt: Compiled, rows: Iterable[Mapping[str, Any]]) -> None:
        self.cursor.executemany(stmt.sql, stmt.bind_many(rows))

    def begin(self) -> None:
        self.cursor.execute(self._sql.begin_sql)

    def commit(self) -> None:
        self.cursor.execute("COMMIT")

    def abort(self, exc: BaseException) -> bool:
        """After ``exc`` inside a transaction: roll back, or close the connection when it is
        lost or in an unknown state (killed mid-statement).  True if it was lost."""
        lost = self._sql.is_disconnect(exc, self)
        if not lost and isinstance(exc, Exception):
            try:
                self.cursor.execute("ROLLBACK")
                return False
            except Exception:  # noqa: BLE001 - then it is not worth keeping
                pass
        self.close()
        return lost

    def failed(self, exc: BaseException) -> bool:
        """After ``exc`` outside a transaction: close (a rare event, so no state to guess
        about); True if the connection was lost, so one retry on a fresh one is worth it."""
        lost = self._sql.is_disconnect(exc, self)
        self.close()
        return lost

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.dbapi.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass


class LocationSQL:
    """The location statements compiled for one dialect, plus its value conversions."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.select_aor = Compiled(_SELECT_AOR, dialect, process=False)
        self.select_live = Compiled(_SELECT_LIVE, dialect, process=False)
        self.update_row = Compiled(_UPDATE_ROW, dialect, _UPDATED, process=False)
        self.refresh_row = Compiled(_REFRESH_ROW, dialect, REFRESHED, process=False)
        self.insert_row = Compiled(_INSERT_ROW, dialect, _WRITTEN, process=False)
        self.delete_id = Compiled(_DELETE_ID, dialect, process=False)
        # not on the hot path: run through SQLAlchemy as usual
        self.core_delete_aor = _DELETE_AOR
        self.core_delete_expired = _DELETE_EXPIRED
        self.begin_sql = "BEGIN IMMEDIATE" if dialect.name == "sqlite" else "BEGIN"
        self._dt_in: Callable[[Any], Any] | None = datetime_bind(_T.c.expires.type, dialect)
        self._dt_out: Callable[[Any], Any] | None = _T.c.expires.type.dialect_impl(dialect).result_processor(
            dialect, None)
        dbapi = dialect.loaded_dbapi
        self._errors: tuple[type[BaseException], ...] = (dbapi.Error,)
        self._integrity: type[BaseException] = dbapi.IntegrityError

    # -- values -------------------------------------------------------------------------------

    @staticmethod
    def datetime(ts: float) -> _dt.datetime:
        return to_datetime(ts)

    def time_in(self, ts: float) -> Any:
        """Epoch seconds -> a parameter value for a datetime column."""
        value = _EPOCH + _dt.timedelta(seconds=ts)
        return self._dt_in(value) if self._dt_in is not None else value

    def time_out(self, value: Any) -> float:
        """A datetime column's value as read -> epoch seconds."""
        if self._dt_out is not None:
            value = self._dt_out(value)
        return (value - _EPOCH).total_seconds()

    # -- connections and errors -----------------------------------------------------------

    def connect(self, engine: Engine) -> RawConnection:
        """A new connection from ``engine`` (its connect hooks run: SQLite pragmas), ours
        from now on, in autocommit mode."""
        try:
            pooled = engine.raw_connection()
            pooled.detach()
            dbapi_conn = pooled.dbapi_connection
            try:
                dbapi_conn.rollback()  # whatever the pool's set-up left open
            except Exception:  # noqa: BLE001 - nothing was open
                pass
            self.dialect.set_isolation_level(dbapi_conn, "AUTOCOMMIT")
        except self._errors as exc:
            raise self.wrap(exc) from exc
        return RawConnection(dbapi_conn, self)

    def is_disconnect(self, exc: BaseException, conn: RawConnection) -> bool:
        if not isinstance(exc, self._errors):
            return False
        try:
            return bool(self.dialect.is_disconnect(exc, conn.dbapi, conn.cursor))
        except Exception:  # noqa: BLE001 - when in doubt, not a disconnect
            return False

    def wrap(self, exc: BaseException, lost: bool = False) -> BaseException:
        """A driver exception as the SQLAlchemy one (``IntegrityError`` ...), as the rest of
        the proxy sees database errors; anything else unchanged."""
        if not isinstance(exc, self._errors):
            return exc
        return DBAPIError.instance(None, None, exc, self._errors[0], connection_invalidated=lost,
                                   dialect=self.dialect)

    def retryable(self, exc: BaseException) -> bool:
        """Worth one more try: a concurrent insert of the same contact by another proxy, or
        a kept connection the server had closed."""
        from sqlalchemy.exc import IntegrityError

        if isinstance(exc, IntegrityError) or isinstance(exc, self._integrity):
            return True
        return isinstance(exc, DBAPIError) and exc.connection_invalidated
