"""Paged queries (API.md 2.1): ``filter`` + ``orderBy`` + ``range`` -> ``(total, rows)``.

Every ``get<Things>(query)`` method works the same way: string filters are SQL LIKE
patterns (``%``/``_`` wildcards; ``''`` = no filter), integer filters compare equal
(``0`` = no filter), ``orderBy`` names an attribute (unknown ones are ignored because the UI
sends stale attributes from other lists), and ``range`` slices the result after ``total``
was counted.  The caller's scope is applied before counting, so ``total`` honours both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .context import Scope
from .faults import INVALID_VALUE, NGNProError

#: largest page a caller may ask for (the UI uses up to 5000)
MAX_COUNT = 100000

Filter = Any  # a column, or a callable (stmt, value) -> stmt


def _member(obj: Any, name: str) -> Any:
    return getattr(obj, name, None) if obj is not None else None


def like(column: Any, pattern: str) -> Any:
    """``column LIKE pattern`` with ``%`` and ``_`` as the only metacharacters on every
    backend: PostgreSQL and MariaDB treat a backslash as an escape by default, SQLite does
    not, so an explicit escape character (``/``, doubled when literal) keeps them equal."""
    return column.like(pattern.replace("/", "//"), escape="/")


def apply_filters(stmt: Any, flt: Any, filters: Mapping[str, Filter]) -> Any:
    """Add one WHERE per non-empty filter member named in ``filters``."""
    for name, target in filters.items():
        value = _member(flt, name)
        if value is None or value == "" or (isinstance(value, bool) is False and value == 0 and not isinstance(value, str)):
            continue
        if isinstance(value, list):
            value = [v for v in value if v not in (None, "")]
            if not value:
                continue
        if callable(target) and not hasattr(target, "like"):
            stmt = target(stmt, value)
        elif isinstance(value, str):
            stmt = stmt.where(like(target, value))
        elif isinstance(value, list):
            stmt = stmt.where(target.in_(value))
        else:
            stmt = stmt.where(target == value)
    return stmt


def run_query(
    session: Session,
    stmt: Any,
    query: Any,
    filters: Mapping[str, Filter] | None = None,
    orders: Mapping[str, Any] | None = None,
    scope: Scope | None = None,
    model: Any = None,
    default_order: Any = None,
) -> tuple[int, list[Any]]:
    """Run ``stmt`` (a ``select(Model)``) with the query's filter, order and range."""
    if scope is not None and model is not None:
        stmt = scope.apply(stmt, model)
    stmt = apply_filters(stmt, _member(query, "filter"), filters or {})
    total = session.execute(select(func.count()).select_from(stmt.order_by(None).subquery())).scalar_one()

    order = _member(query, "orderBy")
    attribute = _member(order, "attribute")
    column: Callable | Any = (orders or {}).get(attribute) if isinstance(attribute, str) else None
    if column is not None:
        direction = (_member(order, "direction") or "ASC").strip().upper()
        stmt = stmt.order_by(column.desc() if direction == "DESC" else column.asc())
    if default_order is not None:
        stmt = stmt.order_by(default_order)
    elif model is not None and hasattr(model, "id"):
        stmt = stmt.order_by(model.id)

    rng = _member(query, "range")
    start = _member(rng, "start") or 0
    count = _member(rng, "count")
    if start < 0 or (count is not None and count < 0):
        raise NGNProError(INVALID_VALUE, "range: start and count must not be negative")
    if start:
        stmt = stmt.offset(start)
    if count:
        stmt = stmt.limit(min(count, MAX_COUNT))
    result = session.execute(stmt)
    rows = result.scalars().all() if len(stmt.column_descriptions) == 1 else result.all()
    return total, list(rows)
