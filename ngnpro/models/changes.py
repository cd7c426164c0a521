"""Change propagation from the provisioning writer to the data-plane readers.

Every provisioning transaction appends rows to ``change_log`` (topic + key) in the same
transaction as the change itself, so a change is visible exactly when it commits.
Readers (enumdns, sipproxy) keep caches and poll :class:`ChangeFeed` a few times a second:
one indexed range query that returns nothing almost always.  Because the rows name *what*
changed, a reader drops only those cache entries instead of re-reading whole tables.

Auto-increment ids can commit out of order (two writers on PostgreSQL or MariaDB), so a
reader cannot just remember the highest id it saw: the feed keeps a low-water mark below
which every id has been seen, and gives up on a gap after ``gap_timeout`` seconds (an id
consumed by a rolled-back transaction never appears).
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, String, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .base import Base, BigId, utcnow

#: Topics: one per family of data a reader caches.
TOPIC_SIP_DOMAIN = "sip_domain"
TOPIC_SIP_ACCOUNT = "sip_account"
TOPIC_SIP_ALIAS = "sip_alias"
TOPIC_TRUSTED_PEER = "trusted_peer"
TOPIC_LCR = "lcr"
TOPIC_ENUM_RANGE = "enum_range"
TOPIC_ENUM_NUMBER = "enum_number"
TOPIC_DNS_ZONE = "dns_zone"
TOPIC_CUSTOMER = "customer"
TOPIC_EMERGENCY = "emergency"


class ChangeLogEntry(Base):
    __tablename__ = "change_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    topic: Mapped[str] = mapped_column(String(32))
    #: What changed inside the topic: ``user@domain``, ``number@tld``, a zone name... ;
    #: empty means "anything in the topic".
    key: Mapped[str] = mapped_column(String(255), default="")
    at: Mapped[_dt.datetime] = mapped_column(default=utcnow, index=True)


_INSERT_CHANGE = ChangeLogEntry.__table__.insert()


def record_change(db: Session | Connection, topic: str, key: str = "") -> None:
    """Log a change in the transaction of ``db`` (a Session or a Core connection); readers
    see it when it commits.

    A Core insert rather than an ORM object: every provisioning write calls this, and an
    extra ORM flush per call costs more than the write it records.  The statement is built
    once; building it per call cost its cache key every time."""
    values = {"topic": topic, "key": key.lower(), "at": utcnow()}
    if isinstance(db, Session):
        with db.no_autoflush:  # the caller decides when its own rows are flushed
            db.execute(_INSERT_CHANGE, values)
    else:
        db.execute(_INSERT_CHANGE, values)


def prune_changes(session: Session, older_than: float = 3600.0) -> int:
    """Delete log rows older than ``older_than`` seconds; readers only need the recent tail."""
    limit = utcnow() - _dt.timedelta(seconds=older_than)
    result = session.execute(delete(ChangeLogEntry).where(ChangeLogEntry.at < limit))
    return result.rowcount or 0


@dataclass(frozen=True)
class Change:
    id: int
    topic: str
    key: str


class ChangeFeed:
    """Reader side: ``poll()`` returns the changes committed since the last poll."""

    def __init__(
        self,
        session_factory: Callable[[], Session],
        gap_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session_factory = session_factory
        self._gap_timeout = gap_timeout
        self._clock = clock
        self._low = 0  # every id <= low has been seen (or given up on)
        self._seen: set[int] = set()  # ids > low already delivered
        self._gaps: dict[int, float] = {}  # missing id -> when first noticed
        with session_factory() as session:
            self._low = session.execute(select(func.max(ChangeLogEntry.id))).scalar() or 0

    @property
    def position(self) -> int:
        return self._low

    def poll(self) -> list[Change]:
        with self._session_factory() as session:
            rows = session.execute(
                select(ChangeLogEntry.id, ChangeLogEntry.topic, ChangeLogEntry.key)
                .where(ChangeLogEntry.id > self._low)
                .order_by(ChangeLogEntry.id)
            ).all()
        fresh = [Change(r.id, r.topic, r.key) for r in rows if r.id not in self._seen]
        self._seen.update(c.id for c in fresh)
        self._advance()
        return fresh

    def _advance(self) -> None:
        now = self._clock()
        top = max([self._low, *self._seen])
        for missing in range(self._low + 1, top):
            if missing not in self._seen:
                self._gaps.setdefault(missing, now)
        while True:
            nxt = self._low + 1
            if nxt in self._seen:
                self._seen.discard(nxt)
                self._gaps.pop(nxt, None)
                self._low = nxt
            elif nxt in self._gaps and now - self._gaps[nxt] >= self._gap_timeout:
                del self._gaps[nxt]
                self._low = nxt
            else:
                break
