"""The location service: registrar bindings in the shared ``location`` table.

The table is the authority (a restarted proxy, or a second proxy on the same database, sees
every binding): every REGISTER is applied in a SQL transaction -- read the address-of-record's
rows, then update / insert / delete -- and committed before its 200 OK is built, and every
look-up reads the table (or a short-lived cache, ``cache``: see :mod:`sipproxy.registrar.cache`).
Rows are matched by the contact URI's fixed-width hash (``contact_key``), unique per
address-of-record, so two proxies racing on the same contact cannot create a duplicate (the
loser retries once).

Cost: this is the registrar's hot path, so it skips SQLAlchemy's per-execution machinery.
The statements are SQLAlchemy Core, compiled once per dialect (:mod:`sipproxy.registrar.locationsql`),
and run on DBAPI connections the store keeps (autocommit mode: a look-up is one statement,
a write is BEGIN .. COMMIT).  When :meth:`LocationStore.start` runs (the server), writes
are *group-committed* (on database servers; SQLite applies each in line, see
``group_commit``): the REGISTERs that arrive together in one worker queue their jobs,
and one greenlet applies them in order in one transaction; each REGISTER still gets its
answer only after that transaction committed, so nothing is acknowledged before it is in
the table.  A job that would break a rule (out of order, too many contacts) fails alone,
before it wrote anything; a database error in a batch rolls it back and re-runs each job in
a transaction of its own.

Write-back (``write_back`` seconds, ``[sipproxy] location_write_back``; on once
:meth:`LocationStore.start` ran): almost every REGISTER is a *refresh* -- the same contacts
again, only their expiry, Call-ID, CSeq, User-Agent and modification time change -- and its
transaction (a write lock, an UPDATE, a COMMIT) was most of the location's CPU.  Like
Kamailio's usrloc write-back mode, a pure refresh is decided on one plain read of the
address-of-record's rows and its new values wait in memory (``pending``, by row id) to be
written by one greenlet every ``write_back`` seconds, in one transaction, never over a row
another worker or proxy wrote later.  Pure means: nothing removed, every contact already
has a live row whose stored expiry is more than ``2 * write_back + 5`` seconds away (so the
row is still in the table when its new values arrive), nothing a route depends on changes
(received, socket, path, q, instance ...), and no RFC 5626 instance replaces another row;
anything else is written through as before, after applying the address-of-record's
pending values in its own transaction.  This store reads its own pending values (look-ups,
the next REGISTER's checks); other workers and proxies see the previous expiry until the
flush -- a binding they still consider alive, so nothing they route changes.  A crash loses
at most ``write_back`` seconds of refreshes: those bindings keep their previous, shorter
expiry in the table (the phone refreshes again before it), none is lost.  A failed flush
keeps the values for the next one; :meth:`LocationStore.stop` flushes what is pending.

Times: the table keeps naive UTC datetimes; this module speaks epoch seconds (``float``) so
the registrar's arithmetic stays simple and testable with a fake clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from ngnpro.models import Compiled, contact_key
from sipproxy.registrar.binding import Binding, OutOfOrder, TooManyContacts
from sipproxy.registrar.cache import CachedLookups, LookupCache, routes_differ
from sipproxy.registrar.locationsql import COL, LocationSQL, RawConnection, Row

log = logging.getLogger("sipproxy.location")

_ID, _CONTACT, _HASH = COL["id"], COL["contact"], COL["contact_hash"]
_EXPIRES, _CALL_ID, _CSEQ = COL["expires"], COL["call_id"], COL["cseq"]
_INSTANCE, _REG_ID = COL["instance"], COL["reg_id"]
_Q, _RECEIVED, _SOCKET, _PATH = COL["q"], COL["received"], COL["socket"], COL["path"]
_USER_AGENT, _BEHIND_NAT, _MODIFIED = COL["user_agent"], COL["behind_nat"], COL["last_modified"]


def _binding(sql: LocationSQL, r: Row) -> Binding:
    path = r[_PATH]
    return Binding(
        contact=r[_CONTACT], expires=sql.time_out(r[_EXPIRES]), q=r[_Q], received=r[_RECEIVED],
        socket=r[_SOCKET], path=tuple(p for p in path.split("\n") if p) if path else (),
        call_id=r[_CALL_ID], cseq=r[_CSEQ], user_agent=r[_USER_AGENT], instance=r[_INSTANCE],
        reg_id=r[_REG_ID], behind_nat=bool(r[_BEHIND_NAT]), modified=sql.time_out(r[_MODIFIED]),
    )


def _values(b: Binding, now_db: object) -> dict:
    """Column values of a saved binding (``now_db``: the modification time, converted)."""
    return {
        "contact": b.contact, "expires": None, "q": b.q, "received": b.received[:128],
        "socket": b.socket[:128], "path": "\n".join(b.path), "call_id": b.call_id[:255],
        "cseq": b.cseq, "user_agent": b.user_agent[:255], "instance": b.instance[:255],
        "reg_id": b.reg_id, "behind_nat": b.behind_nat, "last_modified": now_db,
    }


def _order(bindings: Iterable[Binding]) -> list[Binding]:
    """Highest q first, then the most recently refreshed (RFC 3261 16.6 target order).
    (Most addresses-of-record have one binding: nothing to sort, no key to build.)"""
    out = list(bindings)
    if len(out) > 1:
        out.sort(key=lambda b: (-b.q, -b.modified, b.contact))
    return out


@dataclass
class _Job:
    """One REGISTER's change to one address-of-record, waiting to be applied."""

    username: str
    domain: str
    save: Sequence[Binding]
    remove: Sequence[str]
    remove_all: bool
    call_id: str
    cseq: int
    max_contacts: int
    result: list[Binding] | None = None
    error: BaseException | None = None
    changed: bool = False  # the live contacts or a route changed (other caches must forget)
    done: object = None  # a gevent Event while queued


class LocationStore(CachedLookups[Binding]):
    """Bindings of addresses-of-record, read and written through the shared database."""

    #: most connections kept between uses (one per concurrently served look-up)
    KEEP = 8
    #: most REGISTERs applied in one transaction (bounds how long the write lock is held)
    BATCH = 64

    def __init__(self, session_factory: Callable[[], Session] | Engine, clock: Callable[[], float] = time.time,
                 *, group_commit: bool | None = None, write_back: float = 0.0, cache: LookupCache | None = None) -> None:
        if isinstance(session_factory, Engine):
            self._engine = session_factory
        elif isinstance(session_factory, sessionmaker) and session_factory.kw.get("bind") is not None:
            self._engine = session_factory.kw["bind"]
        else:
            with session_factory() as s:
                self._engine = s.get_bind()
        self._sql = LocationSQL(self._engine.dialect)
        # Group commit pays where a commit is a round trip (and a flush) to a server, and the
        # REGISTER's greenlet waits for the database anyway.  SQLite runs in the process and
        # never yields: a REGISTER applied in line costs less than handing it to a greenlet.
        self.group_commit = self._engine.dialect.name != "sqlite" if group_commit is None else group_commit
        self._clock = clock
        self._greenlet = None
        self._committer = None
        #: connections kept between uses (a pool checkout costs more than a look-up)
        self._idle: list[RawConnection] = []
        self._queue: list[_Job] = []
        self._wake = None  # gevent Event, set when the queue is not empty
        #: seconds between write-backs of pending refreshes (0: every REGISTER written through)
        self.write_back = write_back
        #: refreshes go to ``_pending`` (set by start() if write_back > 0; a test may set it)
        self.deferring = False
        self._flusher = None
        #: (username, domain) -> row id -> the new values of a pending refresh (bind
        #: parameters of ``refresh_row``, plus ``at``: the refresh's time in epoch seconds)
        self._pending: dict[tuple[str, str], dict[int, dict]] = {}
        #: (username, domain) -> write-through jobs queued or running for it; how many started
        self._busy: dict[tuple[str, str], int] = {}
        self._writes = 0
        self.cache = cache  # and ``on_change``: see CachedLookups
        #: counters for tests and benchmarks: transactions committed, jobs applied,
        #: refreshes deferred, refreshes written back
        self.commits = 0
        self.jobs = 0
        self.refreshes = 0
        self.written_back = 0

    # -- connections ------------------------------------------------------------------------

    def _checkout(self) -> RawConnection:
        return self._idle.pop() if self._idle else self._sql.connect(self._engine)

    def _checkin(self, conn: RawConnection) -> None:
        if len(self._idle) < self.KEEP and not conn.closed:
            self._idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        """Close the kept connections."""
        while self._idle:
            self._idle.pop().close()

    # -- reads ------------------------------------------------------------------------------

    def _lookup(self, aor: tuple[str, str], now: float) -> list[Binding]:  # lookup(): CachedLookups
        sql = self._sql
        if aor not in self._pending:
            rows = self._read(sql.select_live, {"u": aor[0], "d": aor[1], "now": sql.time_in(now)})
            return _order(_binding(sql, r) for r in rows)
        # our own refreshes not written yet: they decide which rows are alive
        rows = self._overlay(aor, self._read(sql.select_aor, {"u": aor[0], "d": aor[1]}))
        time_out = sql.time_out
        return _order(_binding(sql, r) for r in rows if time_out(r[_EXPIRES]) > now)

    def _read(self, stmt: Compiled, values: dict) -> list[Row]:
        """One statement outside a transaction, retried once on a fresh connection when the
        kept one was lost (a database server restart, an idle timeout)."""
        sql = self._sql
        for attempt in (1, 2):
            conn = self._checkout()
            try:
                rows = conn.query(stmt, values)
            except BaseException as exc:
                lost = conn.failed(exc)
                if lost and attempt == 1:
                    continue
                wrapped = sql.wrap(exc, lost)
                if wrapped is exc:
                    raise
                raise wrapped from exc
            self._checkin(conn)
            return rows
        raise AssertionError("unreachable")

    def _overlay(self, aor: tuple[str, str], rows: list[Row]) -> list[Row]:
        """``rows`` of ``aor`` with this store's pending refreshes in place of the columns
        they change -- unless the table has a later write (another worker's or proxy's),
        which then wins here as it will in the flush."""
        pending = self._pending.get(aor)
        if not pending:
            return rows
        time_out = self._sql.time_out
        out = []
        for r in rows:
            p = pending.get(r[_ID])
            if p is not None:
                if time_out(r[_MODIFIED]) > p["at"]:
                    del pending[r[_ID]]
                else:
                    r = list(r)
                    r[_EXPIRES], r[_CALL_ID], r[_CSEQ] = p["expires"], p["call_id"], p["cseq"]
                    r[_USER_AGENT], r[_MODIFIED] = p["user_agent"], p["last_modified"]
            out.append(r)
        if not pending:
            del self._pending[aor]
        return out

    # -- writes -----------------------------------------------------------------------------

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
        """Apply one REGISTER atomically; return the live bindings afterwards (committed).

        ``save`` adds or refreshes bindings (matched by contact, or by instance + reg-id);
        ``remove`` drops contacts; ``remove_all`` drops every binding (``Contact: *``).
        RFC 3261 10.3 step 7: a binding last set by the same Call-ID with a CSeq not lower
        than ``cseq`` makes the whole request fail with :class:`OutOfOrder` and change
        nothing.  With ``max_contacts``, a request that would leave more bindings than that
        raises :class:`TooManyContacts` and changes nothing."""
        job = _Job(username, domain.lower(), save, remove, remove_all, call_id, cseq, max_contacts)
        if self.deferring and save and not remove and not remove_all:
            refreshed = self._refresh(job)
            if refreshed is not None:
                return refreshed
        aor = (job.username, job.domain)
        busy = self._busy
        busy[aor] = busy.get(aor, 0) + 1
        self._writes += 1
        try:
            if self._committer is not None and not self._committer.dead:
                import gevent.event

                job.done = gevent.event.Event()
                self._queue.append(job)
                self._wake.set()  # type: ignore[union-attr]
                job.done.wait()  # type: ignore[attr-defined]
            else:
                self._apply([job])
        finally:
            busy[aor] -= 1
            if not busy[aor]:
                del busy[aor]
        self._changed(aor, job.changed and job.error is None)  # before the 200 OK goes
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]

    def _apply(self, jobs: list[_Job]) -> None:
        """Apply ``jobs`` in one transaction; on a database error, each in its own (twice:
        a concurrent insert by another proxy, or a kept connection the server closed)."""
        if len(jobs) > 1:
            try:
                self._transaction(jobs)
                return
            except Exception as exc:  # noqa: BLE001 - retried one by one below
                log.debug("location: batch of %d failed (%s), applying one by one", len(jobs), exc)
        for job in jobs:
            for attempt in (1, 2):
                job.result = job.error = None
                try:
                    self._transaction([job])
                    break
                except Exception as exc:  # noqa: BLE001 - handed to the REGISTER's greenlet
                    job.error = exc
                    if attempt == 1 and self._sql.retryable(exc):
                        log.debug("location: retrying %s@%s (%s)", job.username, job.domain, exc)
                        continue
                    break

    def _transaction(self, jobs: list[_Job]) -> None:
        sql = self._sql
        written: dict[tuple[str, str], list[dict]] = {}  # pending refreshes applied first

        def work(conn: RawConnection) -> None:
            for job in jobs:
                job.result = job.error = None
                aor = (job.username, job.domain)
                pending = self._pending.get(aor)
                if pending and aor not in written:  # so that the rows read below are current
                    written[aor] = list(pending.values())
                    conn.execute_many(sql.refresh_row, written[aor])
                try:
                    job.result = self._apply_one(conn, job)
                except (OutOfOrder, TooManyContacts) as exc:  # refused before any write
                    job.error = exc

        self._committed(work)
        self._forget(written)
        self.jobs += len(jobs)

    def _committed(self, work: Callable[[RawConnection], None]) -> None:
        """Run ``work`` in one transaction on a kept connection and commit; a failure rolls
        back (a lost connection is dropped) and reaches the caller as SQLAlchemy's error."""
        conn = self._checkout()
        try:
            conn.begin()
            work(conn)
            conn.commit()
        except BaseException as exc:
            lost = conn.abort(exc)
            wrapped = self._sql.wrap(exc, lost)
            if wrapped is exc:
                raise
            raise wrapped from exc
        self._checkin(conn)
        self.commits += 1

    def _apply_one(self, conn: RawConnection, job: _Job) -> list[Binding]:
        sql = self._sql
        now = self._clock()
        username, domain = job.username, job.domain
        rows: list[Row] = conn.query(sql.select_aor, {"u": username, "d": domain})
        by_hash = {r[_HASH]: r for r in rows}
        time_out = sql.time_out
        dead = {h for h, r in by_hash.items() if time_out(r[_EXPIRES]) <= now}
        saved = {contact_key(b.contact): b._replace(modified=now) for b in job.save}
        removed = {contact_key(c) for c in job.remove}
        doomed: set[str] = set(dead)  # expired rows go: their hash slot is reused below
        if job.remove_all:
            doomed.update(by_hash)
        doomed |= removed
        if job.call_id:
            for h in (by_hash.keys() if job.remove_all else saved.keys() | removed):
                row = by_hash.get(h)
                if row is not None and row[_CALL_ID] == job.call_id and row[_CSEQ] >= job.cseq:
                    raise OutOfOrder(row[_CONTACT])
        for b in job.save:
            if b.instance:  # RFC 5626: one binding per instance and reg-id
                doomed.update(
                    h for h, r in by_hash.items()
                    if r[_INSTANCE] == b.instance and r[_REG_ID] == b.reg_id and r[_CONTACT] != b.contact
                )
        doomed -= saved.keys()
        live = len(by_hash) - len(dead)
        after = {h: _binding(sql, r) for h, r in by_hash.items() if h not in doomed and h not in saved}
        after.update(saved)
        if job.max_contacts and len(after) > job.max_contacts and len(after) > live:
            raise TooManyContacts(len(after))
        now_db = sql.time_in(now)
        for h in doomed:
            if h in by_hash:
                conn.execute(sql.delete_id, {"row_id": by_hash[h][_ID]})
        for h, b in saved.items():
            values = _values(b, now_db)
            values["expires"] = sql.time_in(b.expires)
            row = by_hash.get(h)
            if row is not None:
                values["row_id"] = row[_ID]
                conn.execute(sql.update_row, values)
            else:
                values.update(username=username, domain=domain, contact_hash=h)
                conn.execute(sql.insert_row, values)
        job.changed = self.on_change is not None and routes_differ(  # the rows it touched, before and after
            [_binding(sql, r) for h, r in by_hash.items() if h not in dead and (h in doomed or h in saved)], saved.values())
        return _order(after.values())

    # -- write-back -----------------------------------------------------------------------------

    def _refresh(self, job: _Job) -> list[Binding] | None:
        """A pure refresh (see the module docstring) read on a kept connection, its values
        left pending; its bindings afterwards, best first.  None: write it through."""
        aor = (job.username, job.domain)
        writes = self._writes
        if aor in self._busy:
            return None  # after the REGISTER queued before it
        sql = self._sql
        rows = self._read(sql.select_aor, {"u": aor[0], "d": aor[1]})
        if self._writes != writes or not self.deferring:
            return None  # a write-through started while we read (server databases yield)
        now = self._clock()
        time_out = sql.time_out
        floor = now + 2 * self.write_back + 5  # the stored expiry outlives the next flushes
        keys = [contact_key(b.contact) for b in job.save]
        stored = {r[_HASH]: r for r in rows}
        for h in keys:
            r = stored.get(h)
            if r is None or time_out(r[_EXPIRES]) <= floor:
                return None  # a new contact, or a row the purge may delete before the flush
        overlaid = self._overlay(aor, rows)
        current = stored if overlaid is rows else {r[_HASH]: r for r in overlaid}
        saved: dict[str, Binding] = {}
        for h, b in zip(keys, job.save, strict=True):
            r = current[h]
            if (r[_CONTACT] != b.contact or (r is not stored[h] and time_out(r[_EXPIRES]) <= now)
                    or r[_Q] != b.q or r[_RECEIVED] != b.received[:128] or r[_SOCKET] != b.socket[:128]
                    or r[_PATH] != "\n".join(b.path) or r[_INSTANCE] != b.instance[:255]
                    or r[_REG_ID] != b.reg_id or bool(r[_BEHIND_NAT]) != b.behind_nat):
                return None  # a dead binding, or a change a route depends on
            if b.instance and any(o[_INSTANCE] == b.instance and o[_REG_ID] == b.reg_id
                                  and o[_CONTACT] != b.contact for o in current.values()):
                return None  # RFC 5626: replaces another row
            if job.call_id and r[_CALL_ID] == job.call_id and r[_CSEQ] >= job.cseq:
                raise OutOfOrder(r[_CONTACT])
            saved[h] = Binding._make((*b[:-1], now))  # modified: now
        now_db = sql.time_in(now)
        pending = self._pending.setdefault(aor, {})
        for h, b in saved.items():
            row_id = current[h][_ID]
            pending[row_id] = {
                "row_id": row_id, "expires": sql.time_in(b.expires), "call_id": b.call_id[:255],
                "cseq": b.cseq, "user_agent": b.user_agent[:255], "last_modified": now_db,
                "modified": now_db, "at": now,
            }
        self.refreshes += 1
        self._changed(aor, False)
        after = {h: _binding(sql, r) for h, r in current.items() if h not in saved and time_out(r[_EXPIRES]) > now}
        after.update(saved)
        return _order(after.values())

    def flush(self) -> int:
        """Write the pending refreshes in one transaction; how many.  On a database error
        they stay pending (for the next flush) and the error is raised."""
        if not self._pending:
            return 0
        written = {aor: list(pending.values()) for aor, pending in self._pending.items()}
        values = sorted((p for ps in written.values() for p in ps), key=itemgetter("row_id"))  # one lock order
        self._committed(lambda conn: conn.execute_many(self._sql.refresh_row, values))
        self._forget(written)
        self.written_back += len(values)
        return len(values)

    def _forget(self, written: dict[tuple[str, str], list[dict]]) -> None:
        """Drop committed pending values -- those not replaced by a later refresh meanwhile."""
        for aor, values in written.items():
            pending = self._pending.get(aor)
            if pending is None:
                continue
            for p in values:
                if pending.get(p["row_id"]) is p:
                    del pending[p["row_id"]]
            if not pending:
                del self._pending[aor]

    def _flush_loop(self) -> None:
        import gevent

        failing = 0  # flushes failed in a row (logged when it starts and when it ends)
        while True:
            gevent.sleep(self.write_back)
            try:
                n = self.flush()
            except Exception as exc:  # noqa: BLE001 - kept for the next flush
                if not failing:
                    log.warning("location: write-back of %d refreshes failed, retrying every %gs: %s",
                                sum(map(len, self._pending.values())), self.write_back,
                                (str(exc).strip().splitlines() or [type(exc).__name__])[0])
                failing += 1
                continue
            if failing:
                log.warning("location: write-back working again after %d failed tries; %d refreshes written",
                            failing, n)
                failing = 0

    def _commit_loop(self) -> None:
        """Group commit: apply what queued while the previous batch ran, in one transaction."""
        wake = self._wake
        while True:
            wake.wait()  # type: ignore[union-attr]
            wake.clear()  # type: ignore[union-attr]
            while self._queue:
                jobs, self._queue = self._queue[:self.BATCH], self._queue[self.BATCH:]
                try:
                    self._apply(jobs)
                except BaseException as exc:  # killed, or a bug: no REGISTER may hang
                    for job in jobs:
                        if job.result is None and job.error is None:
                            job.error = exc if isinstance(exc, Exception) else RuntimeError("location store stopped")
                    raise
                finally:
                    for job in jobs:
                        job.done.set()  # type: ignore[attr-defined]

    # -- maintenance --------------------------------------------------------------------------

    def remove_aor(self, username: str, domain: str) -> int:
        """Drop every binding of ``username@domain`` (e.g. when the account is deleted)."""
        with self._engine.begin() as conn:
            res = conn.execute(self._sql.core_delete_aor, {"u": username, "d": domain.lower()})
        self._pending.pop((username, domain.lower()), None)
        self._changed((username, domain.lower()), True)
        return res.rowcount or 0

    def expire(self) -> int:
        """Delete expired bindings, and those of deleted accounts; returns how many."""
        with self._engine.begin() as conn:
            res = conn.execute(self._sql.core_delete_expired, {"now": self._sql.datetime(self._clock())})
        self._purged()
        return res.rowcount or 0

    def start(self, interval: float = 60.0) -> None:
        """Group-commit REGISTERs in a greenlet (if ``group_commit``), write refreshes back
        every ``write_back`` seconds in another (if > 0), and purge expired bindings every
        ``interval`` seconds in a third."""
        import gevent
        import gevent.event

        def purge() -> None:
            while True:
                gevent.sleep(interval)
                try:
                    n = self.expire()
                    if n:
                        log.info("location: %d bindings removed (expired, or of deleted accounts)", n)
                except Exception as exc:  # noqa: BLE001 - keep purging after a DB hiccup
                    log.warning("location: purge failed: %s", exc)

        if self._greenlet is None:
            self._greenlet = gevent.spawn(purge)
        if self._committer is None and self.group_commit:
            self._wake = gevent.event.Event()
            self._committer = gevent.spawn(self._commit_loop)
        if self._flusher is None and self.write_back > 0:
            self.deferring = True
            self._flusher = gevent.spawn(self._flush_loop)

    def stop(self) -> None:
        """Stop the greenlets, write back what is pending, close the connections."""
        self.deferring = False
        if self._flusher is not None:
            self._flusher.kill()
            self._flusher = None
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None
        if self._committer is not None:
            self._committer.kill()
            self._committer = None
            for job in self._queue:  # never started: fail them rather than leave them waiting
                job.error = RuntimeError("location store stopped")
                job.done.set()  # type: ignore[attr-defined]
            self._queue = []
        for attempt in (1, 2):  # once more on a fresh connection (the kept one may be lost)
            try:
                self.flush()
                break
            except Exception as exc:  # noqa: BLE001 - stopping: say what is lost
                if attempt == 2:
                    log.warning("location: %d refreshes not written back (%s): those bindings keep their "
                                "previous expiry", sum(map(len, self._pending.values())), exc)
        self.close()


__all__ = ["Binding", "LocationStore", "OutOfOrder", "TooManyContacts"]
