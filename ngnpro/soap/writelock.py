"""One writer at a time on a SQLite database file, across a server's worker processes.

SQLite lets one transaction write at a time; a second writer retries in SQLite's busy
handler, which sleeps 1, 2, 5, 10... ms between attempts, in C, with the worker's whole
event loop stopped.  With several workers adding accounts, those sleeps cost more than the
writes.  A hot write path instead takes this lock (an ``flock`` on a file beside the
database) just before its first write statement; the framework releases it after the
commit or rollback.  The kernel wakes the next writer the moment the lock is free.  Writes
not taking it still work as before (SQLite arbitrates); server databases need no lock.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sqlalchemy.engine import Engine


class WriteLock:
    """``acquire()`` before a call's first write, ``release()`` after its commit/rollback."""

    def __init__(self, engine: Engine | None) -> None:
        self.path: Path | None = None
        if engine is not None and engine.url.get_backend_name() == "sqlite":
            db = engine.url.database or ""
            if db and db != ":memory:" and not db.startswith("file:"):
                resolved = Path(db).expanduser().resolve()
                self.path = resolved.with_name(resolved.name + ".write-lock")
        self._fd: int | None = None
        self.held = False

    def acquire(self) -> None:
        if self.path is None or self.held:
            return
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self.held = True

    def release(self) -> None:
        if self.held and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self.held = False
