"""Declarative base and column conventions shared by every table.

Constraint names follow one convention so that Alembic migrations name them identically
on SQLite, MariaDB and PostgreSQL (batch migrations on SQLite need named constraints).
Strings that are part of an index are bounded so a MariaDB utf8mb4 key stays under its
3072-byte limit.
"""

from __future__ import annotations

import datetime as _dt
from decimal import Decimal

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, Numeric, String, func
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Lengths used by indexed string columns.
USERNAME = 64
DOMAIN = 190
URI = 255
IP = 64

#: A money column: 4 decimals, enough for per-second tariffs.
Money = Numeric(14, 4)

#: Auto-increment primary keys: BIGINT on servers, INTEGER on SQLite (which only
#: auto-increments an INTEGER PRIMARY KEY).
BigId = BigInteger().with_variant(Integer(), "sqlite")

#: Timestamps keep microseconds on every backend (MariaDB's DATETIME drops them by default).
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def utcnow() -> _dt.datetime:
    """Naive UTC now: every timestamp in the database is UTC without a zone."""
    return _dt.datetime.now(_dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        str: String(255),
        Decimal: Money,
        _dt.datetime: Timestamp,
    }


class Stamped:
    """Create and change dates, as the API's ``createDate``/``changeDate`` show them."""

    create_date: Mapped[_dt.datetime] = mapped_column(default=utcnow, server_default=func.now())
    change_date: Mapped[_dt.datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now()
    )


class Owned:
    """Ownership of API section 2.2: customer and reseller (0 = unset), indexed for scoping."""

    customer: Mapped[int] = mapped_column(default=0, server_default="0", index=True)
    reseller: Mapped[int] = mapped_column(default=0, server_default="0", index=True)
