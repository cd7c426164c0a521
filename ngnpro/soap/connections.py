"""The database connections of a worker's calls, kept between calls.

Each call is one transaction on a connection of its own.  Checking one out of SQLAlchemy's
pool and back in costs about a tenth of a whole getAccount call (the pool's bookkeeping, a
reset rollback on return, a ping per checkout on server databases), so a worker keeps the
connections its calls used and hands them to its next calls instead.  A connection left
unused for ``idle`` seconds goes back to the pool (which pings server databases on checkout,
so a database restarted during a quiet spell costs no call), and one whose call ended in a
database error is closed rather than kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Connection, Engine

#: connections kept at most (more at once only under a burst of concurrent calls)
KEEP = 16
#: a connection unused this long goes back to the pool
IDLE = 5.0


class ConnectionCache:
    """``take()`` a connection for a call, ``give()`` it back after commit or rollback."""

    def __init__(self, engine: Engine, keep: int = KEEP, idle: float = IDLE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.keep = keep
        self.idle = idle
        self.clock = clock
        self._free: list[tuple[Connection, float]] = []  # most recently used last

    def take(self) -> Connection:
        now = self.clock()
        while self._free:
            conn, since = self._free.pop()
            if now - since <= self.idle and not conn.invalidated and not conn.closed:
                return conn
            self._close(conn)
            self._drop_older(now)
        return self.engine.connect()

    def give(self, conn: Connection, reusable: bool) -> None:
        """Keep ``conn`` for a later call when its call ended cleanly (``reusable``: committed
        or rolled back without a database error), else close it."""
        keep = reusable and len(self._free) < self.keep
        if keep and not conn.invalidated and not conn.closed and not conn.in_transaction():
            self._free.append((conn, self.clock()))
        else:
            self._close(conn)

    def close(self) -> None:
        """Return every kept connection to the pool (at worker exit)."""
        while self._free:
            self._close(self._free.pop()[0])

    def _drop_older(self, now: float) -> None:
        # the list is ordered by last use: once one is stale, so are those before it
        stale = [c for c, since in self._free if now - since > self.idle]
        if stale:
            self._free = [(c, since) for c, since in self._free if now - since <= self.idle]
            for conn in stale:
                self._close(conn)

    @staticmethod
    def _close(conn: Any) -> None:
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - a broken connection: the pool discards it
            pass
