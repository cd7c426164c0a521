"""The location service: registrar bindings in the shared ``location`` table.

The table is the authority (a restarted proxy, or a second proxy on the same database, sees
every binding), so every change is one short SQL transaction per REGISTER: read the
address-of-record's rows, then insert / update / delete.  Rows are matched by the contact
URI's fixed-width hash (``contact_key``), unique per address-of-record, so two proxies racing
on the same contact cannot create a duplicate (the loser retries once).

Times: the table keeps naive UTC datetimes; this module speaks epoch seconds (``float``) so
the registrar's arithmetic stays simple and testable with a fake clock.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

from sqlalchemy import Connection, Engine, bindparam, delete, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ngnpro.models import Location, contact_key

log = logging.getLogger("sipproxy.location")

_T = Location.__table__
_EPOCH = _dt.datetime(1970, 1, 1)

# Statements built once: SQLAlchemy memoizes a statement object's cache key, so the hot
# path (one REGISTER = one SELECT, one UPDATE or INSERT, one COMMIT) skips statement
# construction and compilation entirely.
_SELECT_AOR = select(_T).where(_T.c.username == bindparam("u"), _T.c.domain == bindparam("d"))
_SELECT_LIVE = _SELECT_AOR.where(_T.c.expires > bindparam("now"))
_UPDATE_ROW = update(_T).where(_T.c.id == bindparam("row_id"))
_INSERT_ROW = _T.insert()
_DELETE_HASHES = delete(_T).where(
    _T.c.username == bindparam("u"), _T.c.domain == bindparam("d"),
    _T.c.contact_hash.in_(bindparam("hashes", expanding=True)),
)
_DELETE_AOR = delete(_T).where(_T.c.username == bindparam("u"), _T.c.domain == bindparam("d"))
_DELETE_EXPIRED = delete(_T).where(_T.c.expires <= bindparam("now"))


def _to_dt(ts: float) -> _dt.datetime:
    return _EPOCH + _dt.timedelta(seconds=ts)


def _to_ts(value: _dt.datetime) -> float:
    return (value - _EPOCH).total_seconds()


@dataclass(frozen=True)
class Binding:
    """One contact of an address-of-record (RFC 3261 10.2.1), with what routing needs."""

    contact: str
    expires: float  # absolute, epoch seconds
    q: float = 1.0
    received: str = ""  # transport:ip:port the REGISTER came from (NAT)
    socket: str = ""  # transport:ip:port of our socket it arrived on
    path: tuple[str, ...] = ()  # RFC 3327 Path values, in order
    call_id: str = ""
    cseq: int = 0
    user_agent: str = ""
    instance: str = ""  # RFC 5626 +sip.instance
    reg_id: int = 0
    behind_nat: bool = False
    modified: float = 0.0

    def remaining(self, now: float) -> int:
        """Seconds left, rounded down, never negative (what a 200 OK lists as expires)."""
        return max(0, int(self.expires - now))


class OutOfOrder(Exception):
    """A REGISTER older than the binding it would change (same Call-ID, CSeq not higher)."""


def _row_to_binding(row) -> Binding:  # noqa: ANN001 - a Row of the location table
    return Binding(
        contact=row.contact, expires=_to_ts(row.expires), q=row.q, received=row.received,
        socket=row.socket, path=tuple(p for p in row.path.split("\n") if p) if row.path else (),
        call_id=row.call_id, cseq=row.cseq, user_agent=row.user_agent, instance=row.instance,
        reg_id=row.reg_id, behind_nat=bool(row.behind_nat), modified=_to_ts(row.last_modified),
    )


def _values(b: Binding, now: float) -> dict:
    return {
        "contact": b.contact, "expires": _to_dt(b.expires), "q": b.q, "received": b.received[:128],
        "socket": b.socket[:128], "path": "\n".join(b.path), "call_id": b.call_id[:255],
        "cseq": b.cseq, "user_agent": b.user_agent[:255], "instance": b.instance[:255],
        "reg_id": b.reg_id, "behind_nat": b.behind_nat, "last_modified": _to_dt(now),
    }


def _order(bindings: Iterable[Binding]) -> list[Binding]:
    """Highest q first, then the most recently refreshed (RFC 3261 16.6 target order)."""
    return sorted(bindings, key=lambda b: (-b.q, -b.modified, b.contact))


class LocationStore:
    """Bindings of addresses-of-record, read and written through the shared database."""

    def __init__(self, session_factory: Callable[[], Session] | Engine, clock: Callable[[], float] = time.time) -> None:
        # Core connections, not ORM sessions: this is the registrar's hot path.
        if isinstance(session_factory, Engine):
            self._engine = session_factory
        elif isinstance(session_factory, sessionmaker) and session_factory.kw.get("bind") is not None:
            self._engine = session_factory.kw["bind"]
        else:
            with session_factory() as s:
                self._engine = s.get_bind()
        self._clock = clock
        self._greenlet = None
        #: connections kept checked out between uses (see ``_connection``)
        self._idle: list[Connection] = []

    #: most connections kept between uses (one per concurrently served REGISTER/call)
    KEEP = 8

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """A connection of our own, kept between uses.  A pool checkout with its liveness
        ping cost more than the statements of a REGISTER; a connection that fails is
        dropped instead of kept (the callers retry once on a fresh one, which is what the
        ping was for).  Each greenlet gets its own, so cooperative drivers never share one."""
        conn = self._idle.pop() if self._idle else self._engine.connect()
        try:
            yield conn
        except DBAPIError:
            conn.close()
            raise
        except Exception:  # OutOfOrder and the like: the connection is fine
            self._release(conn)
            raise
        except BaseException:  # killed mid-statement: its protocol state is unknown
            conn.close()
            raise
        self._release(conn)

    def _release(self, conn: Connection) -> None:
        try:
            if conn.in_transaction():  # a read: end it, so SQLite does not pin a snapshot
                conn.rollback()
        except DBAPIError:
            conn.close()
            return
        if len(self._idle) < self.KEEP and not conn.invalidated:
            self._idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        """Give back the kept connections."""
        while self._idle:
            self._idle.pop().close()

    def lookup(self, username: str, domain: str) -> list[Binding]:
        """The live bindings of ``username@domain``, best first (q, then most recent)."""
        now = self._clock()
        params = {"u": username, "d": domain.lower(), "now": _to_dt(now)}
        for attempt in (1, 2):
            try:
                with self._connection() as conn:
                    rows = conn.execute(_SELECT_LIVE, params).all()
                break
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        return _order(_row_to_binding(r) for r in rows)

    def update(
        self,
        username: str,
        domain: str,
        *,
        save: Sequence[Binding] = (),
        remove: Sequence[str] = (),
        remove_all: bool = False,
        call_id: str = "",
        cseq: int = 0,
        max_contacts: int = 0,
    ) -> list[Binding]:
        """Apply one REGISTER atomically; return the live bindings afterwards.

        ``save`` adds or refreshes bindings (matched by contact, or by instance + reg-id);
        ``remove`` drops contacts; ``remove_all`` drops every binding (``Contact: *``).
        RFC 3261 10.3 step 7: a binding last set by the same Call-ID with a CSeq not lower
        than ``cseq`` makes the whole request fail with :class:`OutOfOrder` and change
        nothing.  With ``max_contacts``, a request that would leave more bindings than that
        raises :class:`TooManyContacts` and changes nothing."""
        for attempt in (1, 2):
            try:
                return self._update_once(username, domain.lower(), save, remove, remove_all,
                                         call_id, cseq, max_contacts)
            except IntegrityError:
                if attempt == 2:
                    raise
                log.debug("location: concurrent insert for %s@%s, retrying", username, domain)
            except DBAPIError as exc:  # a kept connection the server has closed meanwhile
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")

    def _update_once(self, username: str, domain: str, save: Sequence[Binding], remove: Sequence[str],
                     remove_all: bool, call_id: str, cseq: int, max_contacts: int) -> list[Binding]:
        now = self._clock()
        with self._connection() as conn, conn.begin():
            s = conn
            rows = s.execute(_SELECT_AOR, {"u": username, "d": domain}).all()
            by_hash = {r.contact_hash: r for r in rows}
            live = {r.contact_hash: _row_to_binding(r) for r in rows if _to_ts(r.expires) > now}
            touched = list(remove) + [b.contact for b in save]
            if remove_all:
                touched += [r.contact for r in rows]
            for contact in touched:
                row = by_hash.get(contact_key(contact))
                if row is not None and call_id and row.call_id == call_id and row.cseq >= cseq:
                    raise OutOfOrder(contact)
            doomed: set[str] = set()
            if remove_all:
                doomed.update(by_hash)
            doomed.update(contact_key(c) for c in remove)
            for b in save:
                if b.instance:  # RFC 5626: one binding per instance and reg-id
                    doomed.update(
                        h for h, r in by_hash.items()
                        if r.instance == b.instance and r.reg_id == b.reg_id and r.contact != b.contact
                    )
            # expired rows go too: they are dead, and their hash slot is reused below
            doomed.update(h for h, r in by_hash.items() if _to_ts(r.expires) <= now)
            saved = {contact_key(b.contact): replace(b, modified=now) for b in save}
            doomed -= saved.keys()
            after = {h: b for h, b in live.items() if h not in doomed}
            after.update(saved)
            if max_contacts and len(after) > max_contacts and len(after) > len(live):
                raise TooManyContacts(len(after))
            if doomed:
                s.execute(_DELETE_HASHES, {"u": username, "d": domain, "hashes": sorted(doomed)})
            for h, b in saved.items():
                values = _values(b, now)
                if h in by_hash:
                    s.execute(_UPDATE_ROW, {"row_id": by_hash[h].id, **values})
                else:
                    s.execute(_INSERT_ROW, {"username": username, "domain": domain, "contact_hash": h, **values})
        return _order(after.values())

    def remove_aor(self, username: str, domain: str) -> int:
        """Drop every binding of ``username@domain`` (e.g. when the account is deleted)."""
        with self._engine.begin() as conn:
            res = conn.execute(_DELETE_AOR, {"u": username, "d": domain.lower()})
        return res.rowcount or 0

    def expire(self) -> int:
        """Delete expired bindings; returns how many.  Look-ups ignore them anyway."""
        with self._engine.begin() as conn:
            res = conn.execute(_DELETE_EXPIRED, {"now": _to_dt(self._clock())})
        return res.rowcount or 0

    def start(self, interval: float = 60.0) -> None:
        """Purge expired bindings every ``interval`` seconds in a gevent greenlet."""
        import gevent

        def loop() -> None:
            while True:
                gevent.sleep(interval)
                try:
                    n = self.expire()
                    if n:
                        log.info("location: %d expired bindings removed", n)
                except Exception as exc:  # noqa: BLE001 - keep purging after a DB hiccup
                    log.warning("location: purge failed: %s", exc)

        if self._greenlet is None:
            self._greenlet = gevent.spawn(loop)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None
        self.close()


class TooManyContacts(Exception):
    """The REGISTER would leave more bindings than the configured maximum."""
