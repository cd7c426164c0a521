"""Prepared statements for the hottest calls: a Core statement compiled once per database
dialect and run on the DBAPI cursor of the call's own connection (so inside its
transaction).

SQLAlchemy's execution path (execution context, result metadata, row objects) costs about
three times what a warm SQLite look-up of one indexed row does; getAccount and addAccount
are what operators' scripts call by the thousand, so their statements skip it.  Everything
else about the statement stays SQLAlchemy's: the SQL text, the parameter style and order,
and the column types' bind and result processors (SQLite's DATETIME text becomes a
``datetime``, a Numeric a ``Decimal``), so a row reads the same as a SQLAlchemy row.  Every
other method uses SQLAlchemy as usual.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError


class _Compiled:
    """One statement's SQL for one dialect, and how to bind and read it."""

    def __init__(self, stmt: Any, dialect: Dialect) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql = compiled.string
        self.positional = dialect.positional
        self.names = list(compiled.positiontup or ()) if dialect.positional else list(compiled.binds)
        binds = {}
        for name in self.names:
            bind = compiled.binds[name]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            binds[name] = (bind.key, processor)
        self.binds = [binds[name] for name in self.names]
        self.dialect = dialect
        self.columns = list(stmt.exported_columns)  # a select's columns, or what an INSERT returns
        #: the columns' result processors, once the first result told the driver's types
        self.processors: list[Any] | None = None
        self.row = namedtuple("Row", [c.key for c in self.columns], rename=True) if self.columns else None  # noqa: PYI024

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

    def parameters(self, params: Mapping[str, Any]) -> Any:
        values = []
        for key, processor in self.binds:
            value = params[key]
            values.append(processor(value) if processor is not None and value is not None else value)
        if self.positional:
            return tuple(values)
        return dict(zip(self.names, values, strict=True))


class Prepared:
    """A Core statement to run often: ``rows()`` for a select, ``run()`` / ``run_many()``
    for writes, ``returning()`` for an INSERT ... RETURNING of one row."""

    def __init__(self, stmt: Any) -> None:
        self.stmt = stmt
        self._by_dialect: dict[str, _Compiled] = {}

    def _compiled(self, conn: Connection) -> _Compiled:
        dialect = conn.dialect
        compiled = self._by_dialect.get(dialect.name)
        if compiled is None:
            compiled = self._by_dialect[dialect.name] = _Compiled(self.stmt, dialect)
        return compiled

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        """The result rows as named tuples (columns by their key)."""
        c = self._compiled(conn)
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            cursor.execute(c.sql, c.parameters(params))
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
            cursor.execute(c.sql, c.parameters(params))
            return getattr(cursor, "lastrowid", None)  # psycopg has none: it answers RETURNING
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(conn, c, params, exc, cursor) from exc
        finally:
            _close(cursor)

    def run_many(self, conn: Connection, params: Iterable[Mapping[str, Any]]) -> None:
        c = self._compiled(conn)
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            cursor.executemany(c.sql, [c.parameters(p) for p in params])
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


def _wrapped(conn: Connection, c: _Compiled, params: Any, exc: Exception, cursor: Any) -> DBAPIError:
    """The driver's error as SQLAlchemy would raise it (``IntegrityError`` for a duplicate
    key...), the connection invalidated when the database went away, as SQLAlchemy does."""
    dbapi_connection = conn.connection.dbapi_connection
    invalidated = conn.dialect.is_disconnect(exc, dbapi_connection, cursor)
    if invalidated:
        conn.invalidate(exc)
    return DBAPIError.instance(c.sql, params, exc, conn.dialect.loaded_dbapi.Error,
                               connection_invalidated=invalidated, dialect=conn.dialect)


def _rows(c: _Compiled, processors: list[Any], raw: list[Any]) -> list[Any]:
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
