"""The SQLite write lock of hot write paths (ngnpro.soap.writelock)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import create_engine

from ngnpro.soap.writelock import WriteLock


def test_second_writer_waits_until_the_first_lets_go(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    first, second = WriteLock(engine), WriteLock(engine)  # two workers: two open files
    assert first.path == tmp_path / "db.sqlite.write-lock"
    first.acquire()
    first.acquire()  # a call taking it twice holds it once
    got = threading.Event()

    def take() -> None:
        second.acquire()
        got.set()
        second.release()

    waiter = threading.Thread(target=take)
    waiter.start()
    time.sleep(0.2)
    assert not got.is_set()
    first.release()
    assert got.wait(5)
    waiter.join(5)
    first.release()  # releasing what is not held is harmless


def test_no_lock_for_servers_and_memory() -> None:
    assert WriteLock(create_engine("sqlite://")).path is None
    assert WriteLock(None).path is None
    lock = WriteLock(None)
    lock.acquire()
    lock.release()
