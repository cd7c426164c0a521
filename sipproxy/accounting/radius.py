"""RADIUS accounting under gevent: the local persistent queue and the client draining it.

Every record first goes into a local SQLite file (``[radius] queue``), in the same
transaction as the call state it belongs to; a background greenlet sends the records in
the order they were queued to the RADIUS servers and deletes each one only once a server
answered it with an Accounting-Response.  So:

* nothing is lost: while no server answers, records wait in the file (a proxy restart,
  or a crash, finds them there) and go out, oldest first, when one answers again;
* nothing is counted twice by us: a record's id (:func:`sipproxy.accounting.events.record_id`,
  sent as ``MSP-Record-Id``) is the file's primary key, so the same call event queued twice
  is kept once, and a retransmission to one server repeats the very same packet (same
  Identifier and authenticator), which a server recognises as a duplicate (RFC 5080 2.2.2).
  The one case left is a server that logged a record but whose answer never came (or the
  proxy stopping between the answer and the delete): the record is sent again, identical
  -- same ``MSP-Record-Id``, ``Event-Timestamp`` and ``Acct-Session-Id`` -- so the
  accounting database's unique key keeps it once.

Servers are tried in the configured order: a server that does not answer within
``timeout`` seconds after ``retries`` retransmissions is skipped, the record goes to the
next one, and the skipped server is tried again first after ``RETRY_DOWN`` seconds.

The file is shared by the proxy's worker processes (SQLite locks it; WAL journal); worker 0
drains it and sends the Interim-Updates, the others only add to it.

Also in the file: the calls that are up (what their Stop needs -- a BYE may reach another
worker than the 2xx did, and a restarted proxy still ends calls answered before) and the
rows for the shared ``accounting`` table, written by the same greenlet
(:mod:`sipproxy.accounting.store`) and deleted once committed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

from pyrad import packet as radpacket
from pyrad.dictionary import Dictionary

from sipproxy.accounting.events import Call

log = logging.getLogger("sipproxy.accounting")

__all__ = ["RecordQueue", "RadiusClient", "DICTIONARY", "RETRY_DOWN"]

#: the client's dictionary (standard attributes + dictionary.msp)
DICTIONARY = os.path.join(os.path.dirname(__file__), "dictionary")

#: seconds a server that did not answer is tried after the others
RETRY_DOWN = 30.0

Record = tuple[str, float, list[tuple[str, Any]]]  # (id, created, attributes)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    call_id TEXT NOT NULL, from_tag TEXT NOT NULL, to_tag TEXT NOT NULL,
    data TEXT NOT NULL, next_interim REAL, seq INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (call_id, from_tag));
CREATE INDEX IF NOT EXISTS calls_interim ON calls (next_interim);
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY, created REAL NOT NULL, attributes TEXT NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS rows (id TEXT PRIMARY KEY, created REAL NOT NULL, data TEXT NOT NULL);
"""


class RecordQueue:
    """The local persistent queue: a SQLite file (see the module docstring)."""

    def __init__(self, path: str) -> None:
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        self.path = path
        if path not in ("", ":memory:"):
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.db = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash of the process loses nothing
        self.db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @staticmethod
    def _put(db: sqlite3.Connection, records: list[Record], rows: list[tuple[str, dict]]) -> None:
        db.executemany("INSERT OR IGNORE INTO records (id, created, attributes) VALUES (?, ?, ?)",
                       [(rid, created, json.dumps(attrs)) for rid, created, attrs in records])
        db.executemany("INSERT OR IGNORE INTO rows (id, created, data) VALUES (?, ?, ?)",
                       [(rid, time.time(), json.dumps(row, default=str)) for rid, row in rows])

    def add(self, records: list[Record], rows: list[tuple[str, dict]] = (),  # type: ignore[assignment]
            call: Call | None = None, next_interim: float | None = None) -> None:
        """Queue ``records`` (and accounting table ``rows``); ``call``: a call now up."""
        with self._transaction() as db:
            self.add_in(db, records, rows, call, next_interim)

    def add_in(self, db: sqlite3.Connection, records: list[Record], rows: list[tuple[str, dict]] = (),  # type: ignore[assignment]
               call: Call | None = None, next_interim: float | None = None) -> bool:
        """:meth:`add` within a transaction of :meth:`batch`."""
        if call is not None:
            db.execute("INSERT OR REPLACE INTO calls (call_id, from_tag, to_tag, data, next_interim, seq) "
                       "VALUES (?, ?, ?, ?, ?, 0)",
                       (call.call_id, call.from_tag, call.to_tag, json.dumps(call.to_dict()), next_interim))
        self._put(db, records, rows)
        return True

    def end_call(self, call_id: str, tag_a: str, tag_b: str,
                 make: Callable[[Call], tuple[list[Record], list[tuple[str, dict]]]]) -> Call | None:
        """The call ``call_id`` with either tag is over: forget it and queue what ``make``
        builds of it, in one transaction (so another worker ending it too finds nothing).
        None when no such call is up."""
        with self._transaction() as db:
            return self.end_call_in(db, call_id, tag_a, tag_b, make)

    def end_call_in(self, db: sqlite3.Connection, call_id: str, tag_a: str, tag_b: str,
                    make: Callable[[Call], tuple[list[Record], list[tuple[str, dict]]]]) -> Call | None:
        """:meth:`end_call` within a transaction of :meth:`batch`."""
        tags = [t for t in (tag_a, tag_b) if t] or [""]
        marks = ",".join("?" * len(tags))
        row = db.execute(f"SELECT from_tag, data FROM calls WHERE call_id = ? AND "  # noqa: S608
                         f"(from_tag IN ({marks}) OR to_tag IN ({marks})) LIMIT 1",
                         (call_id, *tags, *tags)).fetchone()
        if row is None:
            return None
        db.execute("DELETE FROM calls WHERE call_id = ? AND from_tag = ?", (call_id, row[0]))
        call = Call.from_dict(json.loads(row[1]))
        records, rows = make(call)
        self._put(db, records, rows)
        return call

    def batch(self, ops: list[Callable[[sqlite3.Connection], Any]]) -> list[Any]:
        """Run ``ops`` (each ``op(db)``: :meth:`add_in`, :meth:`end_call_in` ...) in one
        transaction, in order; their results."""
        with self._transaction() as db:
            return [op(db) for op in ops]

    def interims(self, now: float, interval: float,
                 make: Callable[[Call, int], list[Record]], limit: int = 500) -> int:
        """Queue the Interim-Updates due at ``now``; how many."""
        with self._transaction() as db:
            due = db.execute("SELECT call_id, from_tag, data, seq, next_interim FROM calls "
                             "WHERE next_interim IS NOT NULL AND next_interim <= ? LIMIT ?",
                             (now, limit)).fetchall()
            for call_id, from_tag, data, seq, at in due:
                nxt = at + interval
                while nxt <= now:  # the proxy was down: one update now, not one per missed interval
                    nxt += interval
                db.execute("UPDATE calls SET seq = ?, next_interim = ? WHERE call_id = ? AND from_tag = ?",
                           (seq + 1, nxt, call_id, from_tag))
                self._put(db, make(Call.from_dict(json.loads(data)), seq + 1), [])
        return len(due)

    def pending(self, limit: int = 50) -> list[Record]:
        """The records not yet acknowledged, first queued first (a call's Stop is queued after
        its Start, whichever worker queued each)."""
        cur = self.db.execute("SELECT id, created, attributes FROM records ORDER BY rowid LIMIT ?", (limit,))
        return [(rid, created, [tuple(a) for a in json.loads(attrs)]) for rid, created, attrs in cur]

    def sent(self, record_id: str) -> None:
        """A server acknowledged the record: drop it."""
        self.db.execute("DELETE FROM records WHERE id = ?", (record_id,))

    def pending_rows(self, limit: int = 200) -> list[tuple[str, dict]]:
        cur = self.db.execute("SELECT id, data FROM rows ORDER BY rowid LIMIT ?", (limit,))
        return [(rid, json.loads(data)) for rid, data in cur]

    def rows_written(self, ids: list[str]) -> None:
        with self._transaction() as db:
            db.executemany("DELETE FROM rows WHERE id = ?", [(i,) for i in ids])

    def counts(self) -> dict[str, int]:
        return {t: self.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608
                for t in ("calls", "records", "rows")}

    def close(self) -> None:
        self.db.close()


class _Server:
    __slots__ = ("host", "port", "down_until", "address")

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.down_until = 0.0
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class RadiusClient:
    """Accounting-Requests to the servers in order, failing over on timeout (gevent UDP)."""

    def __init__(self, servers: list[tuple[str, int]], secret: str | bytes, *, timeout: float = 2.0,
                 retries: int = 2, dictionary: str = DICTIONARY) -> None:
        if not servers:
            raise ValueError("no RADIUS servers")
        self.servers = [_Server(h, p) for h, p in servers]
        self.secret = secret.encode() if isinstance(secret, str) else secret
        self.timeout = timeout
        self.retries = retries
        self.dictionary = Dictionary(dictionary)
        self._id = random.randrange(256)

    def _order(self) -> list[_Server]:
        now = time.monotonic()
        return [s for s in self.servers if s.down_until <= now] + \
               [s for s in self.servers if s.down_until > now]

    def encode(self, attributes: list[tuple[str, Any]], delay: int = 0) -> radpacket.AcctPacket:
        """The Accounting-Request of ``attributes`` (a new Identifier)."""
        self._id = (self._id + 1) % 256
        pkt = radpacket.AcctPacket(id=self._id, secret=self.secret, dict=self.dictionary)
        for name, value in attributes:
            pkt.AddAttribute(name, value)
        if delay > 0:
            pkt.AddAttribute("Acct-Delay-Time", min(delay, 2**32 - 1))
        return pkt

    def send(self, attributes: list[tuple[str, Any]], created: float | None = None) -> str | None:
        """Send one record; the address of the server that acknowledged it, or None when
        none did.  ``created``: when the record was made (for ``Acct-Delay-Time``)."""
        for server in self._order():
            delay = int(time.time() - created) if created else 0
            pkt = self.encode(attributes, delay)
            if self._exchange(server, pkt):
                server.down_until = 0.0
                return server.address
            if server.down_until <= time.monotonic():
                log.warning("RADIUS server %s did not answer; trying the next", server.address)
            server.down_until = time.monotonic() + RETRY_DOWN
        return None

    def _exchange(self, server: _Server, pkt: radpacket.AcctPacket) -> bool:
        from gevent import socket

        raw = pkt.RequestPacket()
        try:
            infos = socket.getaddrinfo(server.host, server.port, 0, socket.SOCK_DGRAM)
        except OSError as exc:
            log.warning("RADIUS server %s: %s", server.address, exc)
            return False
        family, _, _, _, sockaddr = infos[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            for _attempt in range(self.retries + 1):
                try:
                    sock.sendto(raw, sockaddr)  # a retransmission: the very same packet
                except OSError:
                    return False
                deadline = time.monotonic() + self.timeout
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    sock.settimeout(left)
                    try:
                        data = sock.recv(4096)
                    except TimeoutError:
                        break
                    except OSError:  # e.g. an ICMP error reported: retransmit (or give up)
                        break
                    try:
                        reply = pkt.CreateReply(packet=data)
                    except radpacket.PacketError:
                        continue
                    if reply.code == radpacket.AccountingResponse and pkt.VerifyReply(reply, data):
                        return True
            return False
        finally:
            sock.close()
