"""Prepared statements for the hottest calls: a Core statement compiled once per database
dialect and run on a DBAPI cursor, with the column types' bind and result processors.

Used by ngnpro's getAccount / addAccount (:class:`Prepared`, on the cursor of the call's own
connection, so inside its transaction) and by the SIP proxy's location table and dialog
writer (:class:`Compiled` on connections of their own), so it lives in the shared layer.

SQLAlchemy's execution path (execution context, result metadata, row objects) costs about
three times what a warm SQLite look-up of one indexed row does, so these statements skip
it.  Everything else about the statement stays SQLAlchemy's: the SQL text, the parameter
style and order, and the column types' bind and result processors (SQLite's DATETIME text
becomes a ``datetime``, a Numeric a ``Decimal``), so a row reads the same as a SQLAlchemy
row.  Every other statement uses SQLAlchemy as usual."""

from __future__ import annotations

import datetime as _dt
import operator
from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError


class Compiled:
    """One statement's SQL for one dialect, how to bind its parameters and read its rows.

    ``bind`` turns a mapping of values into the DBAPI parameters (a tuple for the ``?`` /
    ``%s`` styles, a dict for named ones) and is chosen once here: with no bind processor
    to run (or ``process=False``: the caller passes values as the driver takes them, e.g.
    SQLite datetimes already as text) it is one ``operator.itemgetter`` call.
    ``column_keys``: the columns an INSERT / UPDATE sets (SQLAlchemy's ``column_keys``)."""

    __slots__ = ("sql", "positional", "names", "keys", "bind", "dialect", "columns", "processors", "row")

    def __init__(self, stmt: Any, dialect: Dialect, column_keys: Iterable[str] | None = None,
                 *, process: bool = True) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=list(column_keys) if column_keys else None)
        self.sql: str = compiled.string
        self.positional = bool(compiled.positional)
        #: the compiled parameter names, in placeholder order when positional (a name used
        #: twice is there twice)
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ()) if self.positional else tuple(compiled.binds)
        binds = [compiled.binds[name] for name in self.names]
        #: the keys of the values mapping each parameter is taken from
        self.keys: tuple[str, ...] = tuple(b.key for b in binds)
        procs = [b.type.dialect_impl(dialect).bind_processor(dialect) if process else None for b in binds]
        self.bind: Callable[[Mapping[str, Any]], Any] = _binder(self.names, self.keys, procs, self.positional)
        self.dialect = dialect
        self.columns = list(stmt.exported_columns)  # a select's columns, or what an INSERT returns
        #: the columns' result processors, once the first result told the driver's types
        self.processors: list[Any] | None = None
        self.row = namedtuple("Row", [c.key for c in self.columns], rename=True) if self.columns else None  # noqa: PYI024

    def bind_many(self, rows: Iterable[Mapping[str, Any]]) -> list[Any]:
        """The parameters of an ``executemany``."""
        return list(map(self.bind, rows))

    def learn_processors(self, description: Any) -> list[Any]:
        """Result processors for the driver's column types (some depend on them, e.g. a
        PostgreSQL numeric), as SQLAlchemy picks them for its own results."""
        dialect = self.dialect
        processors = [
            column.type.dialect_impl(dialect).result_processor(dialect, d[1])
            for column, d in zip(self.columns, description or (), strict=False)
        ]
        self.processors = processors if any(processors) else []
        return self.processors


def _binder(names: tuple[str, ...], keys: tuple[str, ...], procs: list[Any],
            positional: bool) -> Callable[[Mapping[str, Any]], Any]:
    """values -> DBAPI parameters, with as little Python per call as the statement allows."""
    if any(procs):
        pairs = tuple(zip(keys, procs, strict=True))

        def processed(values: Mapping[str, Any]) -> list[Any]:
            out = []
            for key, processor in pairs:
                value = values[key]
                out.append(processor(value) if processor is not None and value is not None else value)
            return out

        if positional:
            return lambda values: tuple(processed(values))
        return lambda values: dict(zip(names, processed(values), strict=True))
    if not positional:
        if names == keys:
            return lambda values: {n: values[n] for n in names}
        named = tuple(zip(names, keys, strict=True))
        return lambda values: {n: values[k] for n, k in named}
    if not keys:
        return lambda values: ()
    if len(keys) == 1:
        key = keys[0]
        return lambda values: (values[key],)
    return operator.itemgetter(*keys)


def datetime_bind(type_: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    """The bind processor of a DateTime column for ``dialect`` (None when the driver takes
    ``datetime`` objects).  SQLite keeps datetimes as text; when the dialect's format is ISO
    8601 with microseconds (the default), ``isoformat`` writes the same text a lot faster."""
    processor = type_.dialect_impl(dialect).bind_processor(dialect)
    if processor is not None:
        sample = _dt.datetime(2026, 1, 2, 3, 4, 5, 0)
        if all(processor(d) == _isoformat(d) for d in (sample, sample.replace(microsecond=7))):
            return _isoformat
    return processor


def _isoformat(value: _dt.datetime) -> str:
    return value.isoformat(" ", "microseconds")


class Prepared:
    """A Core statement to run often: ``rows()`` for a select, ``run()`` / ``run_many()``
    for writes, ``returning()`` for an INSERT ... RETURNING of one row."""

    def __init__(self, stmt: Any, column_keys: Iterable[str] | None = None) -> None:
        self.stmt = stmt
        self.column_keys = tuple(column_keys) if column_keys else None
        self._by_dialect: dict[str, Compiled] = {}

    def _compiled(self, conn: Connection) -> Compiled:
        dialect = conn.dialect
        compiled = self._by_dialect.get(dialect.name)
        if compiled is None:
            compiled = self._by_dialect[dialect.name] = Compiled(self.stmt, dialect, self.column_keys)
        return compiled

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        """The result rows as named tuples (columns by their key)."""
        c = self._compiled(conn)
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            cursor.execute(c.sql, c.bind(params))
            raw = cursor.fetchall()
            processors = c.processors if c.processors is not None else c.learn_processors(cursor.description)
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(conn, c, params, exc, cursor) from exc
        finally:
            _close(cursor)
        return _rows(c, processors, raw)

    def run(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """Execute once; the cursor's ``lastrowid`` (the new key of an INSERT on databases
        without RETURNING)."""
        c = self._compiled(conn)
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            cursor.execute(c.sql, c.bind(params))
            return getattr(cursor, "lastrowid", None)  # psycopg has none: it answers RETURNING
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(conn, c, params, exc, cursor) from exc
        finally:
            _close(cursor)

    def run_many(self, conn: Connection, params: Iterable[Mapping[str, Any]]) -> None:
        c = self._compiled(conn)
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            cursor.executemany(c.sql, c.bind_many(params))
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(conn, c, params, exc, cursor) from exc
        finally:
            _close(cursor)

    def returning(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """The one row an INSERT ... RETURNING gives back."""
        rows = self.rows(conn, params)
        return rows[0]


def _close(cursor: Any) -> None:
    try:
        cursor.close()
    except Exception:  # noqa: BLE001 - a cursor of a connection that just failed; its error is the one raised
        pass


def _wrapped(conn: Connection, c: Compiled, params: Any, exc: Exception, cursor: Any) -> DBAPIError:
    """The driver's error as SQLAlchemy would raise it (``IntegrityError`` for a duplicate
    key...), the connection invalidated when the database went away, as SQLAlchemy does."""
    dbapi_connection = conn.connection.dbapi_connection
    invalidated = conn.dialect.is_disconnect(exc, dbapi_connection, cursor)
    if invalidated:
        conn.invalidate(exc)
    return DBAPIError.instance(c.sql, params, exc, conn.dialect.loaded_dbapi.Error,
                               connection_invalidated=invalidated, dialect=conn.dialect)


def _rows(c: Compiled, processors: list[Any], raw: list[Any]) -> list[Any]:
    make: Callable[[Any], Any] = c.row._make  # type: ignore[union-attr]
    if not processors:
        return [make(r) for r in raw]
    out = []
    for r in raw:
        out.append(make([v if p is None or v is None else p(v) for p, v in zip(processors, r, strict=True)]))
    return out


def supports_returning(conn: Connection) -> bool:
    """Whether the database answers ``INSERT ... RETURNING`` (SQLite 3.35+, PostgreSQL,
    MariaDB 10.5+); the others report the new key as the cursor's ``lastrowid``."""
    return bool(getattr(conn.dialect, "insert_returning", False))
