"""Change propagation: a committed provisioning change reaches a reader within a second,
and only committed changes, each exactly once, even when ids commit out of order."""

from __future__ import annotations

import threading
import time

import pytest

from ngnpro import models as m
from ngnpro.models.changes import ChangeFeed, prune_changes, record_change
from ngnpro.models.database import open_database


@pytest.fixture
def db(db_url):
    engine, Session = open_database(db_url)
    yield Session
    engine.dispose()


def test_reader_sees_a_commit_within_one_second(db):
    feed = ChangeFeed(db)
    assert feed.poll() == []
    seen: list[tuple[str, str, float]] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            for change in feed.poll():
                seen.append((change.topic, change.key, time.monotonic()))
            time.sleep(0.05)

    t = threading.Thread(target=reader)
    t.start()
    try:
        with db() as s:
            s.add(m.SipDomain(domain="example.com"))
            s.add(m.SipAccount(username="alice", domain="example.com"))
            record_change(s, "sip_account", "Alice@Example.com")
            s.commit()
            committed = time.monotonic()
        deadline = committed + 1.0
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        t.join()
    assert [(topic, key) for topic, key, _ in seen] == [("sip_account", "alice@example.com")]
    assert seen[0][2] - committed < 1.0


def test_rolled_back_changes_are_never_seen(db):
    feed = ChangeFeed(db)
    with db() as s:
        record_change(s, "dns_zone", "example.com")
        s.rollback()
    assert feed.poll() == []


def test_a_fresh_reader_starts_at_the_present(db):
    with db() as s:
        record_change(s, "dns_zone", "old.example")
        s.commit()
    feed = ChangeFeed(db)
    assert feed.poll() == []


def test_out_of_order_commits_are_delivered_once(db):
    feed = ChangeFeed(db, gap_timeout=3600)
    base = feed.position
    with db() as s:  # id base+2 commits before base+1 (as two concurrent writers can)
        s.add(m.ChangeLogEntry(id=base + 2, topic="enum_number", key="2"))
        s.commit()
    assert [c.key for c in feed.poll()] == ["2"]
    assert feed.position == base  # waiting for base+1
    with db() as s:
        s.add(m.ChangeLogEntry(id=base + 1, topic="enum_number", key="1"))
        s.commit()
    assert [c.key for c in feed.poll()] == ["1"]
    assert feed.position == base + 2
    assert feed.poll() == []


def test_a_gap_that_never_fills_is_given_up(db):
    now = [0.0]
    feed = ChangeFeed(db, gap_timeout=10, clock=lambda: now[0])
    base = feed.position
    with db() as s:
        s.add(m.ChangeLogEntry(id=base + 2, topic="lcr", key=""))
        s.commit()
    assert len(feed.poll()) == 1
    now[0] = 5.0
    assert feed.poll() == [] and feed.position == base
    now[0] = 11.0
    assert feed.poll() == [] and feed.position == base + 2


def test_prune_keeps_recent_rows(db):
    with db() as s:
        record_change(s, "customer", "1")
        s.commit()
        assert prune_changes(s, older_than=3600) == 0
        s.commit()
        assert prune_changes(s, older_than=-1) == 1
        s.commit()
