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

from sqlalchemy import Connection, Engine, String, bindparam, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

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
#: XCAP documents (ngnpro.xcap); key ``auid/xui/filename``, xui empty for the global tree
TOPIC_XCAP = "xcap"
#: presence publications written by another writer than the presence agent (ngnpro's
#: PresencePort); key ``user@domain``: the agent notifies that presentity's watchers
TOPIC_PRESENCE = "presence"


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


_LOG = ChangeLogEntry.__table__
# The reader's statements, built once: a statement built per poll cost its construction and
# its cache key every time (an idle worker polls four times a second, forever).
_SELECT_NEWER = (select(_LOG.c.id, _LOG.c.topic, _LOG.c.key)
                 .where(_LOG.c.id > bindparam("low")).order_by(_LOG.c.id))
_SELECT_TOP = select(func.max(_LOG.c.id))


class ChangeFeed:
    """Reader side: ``poll()`` returns the changes committed since the last poll.

    It runs Core statements on a pooled connection of the session factory's engine, no ORM
    session: a poll almost always finds nothing, and a session around that nothing cost
    more than the query."""

    def __init__(
        self,
        session_factory: Callable[[], Session],
        gap_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = _engine_of(session_factory)
        self._gap_timeout = gap_timeout
        self._clock = clock
        self._low = 0  # every id <= low has been seen (or given up on)
        self._seen: set[int] = set()  # ids > low already delivered
        self._gaps: dict[int, float] = {}  # missing id -> when first noticed
        with self._engine.connect() as conn:
            self._low = conn.execute(_SELECT_TOP).scalar() or 0

    @property
    def position(self) -> int:
        return self._low

    def poll(self) -> list[Change]:
        with self._engine.connect() as conn:  # a transaction of its own: sees every commit
            rows = conn.execute(_SELECT_NEWER, {"low": self._low}).all()
        if not rows and not self._seen:
            return []  # nothing new, nothing pending (no gaps either): the mark stays
        seen = self._seen
        fresh = [Change(i, topic, key) for i, topic, key in rows if i not in seen]
        seen.update(c.id for c in fresh)
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


def _engine_of(session_factory: Callable[[], Session]) -> Engine:
    """The engine behind a session factory (a ``sessionmaker`` names it; else ask a session)."""
    bind = session_factory.kw.get("bind") if isinstance(session_factory, sessionmaker) else None
    if bind is None:
        with session_factory() as session:
            bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine
