"""ChangeFeed's Core poll: the engine found behind any session factory, and a gap above
which the rows were pruned is still given up (an empty poll does not freeze the mark)."""

from __future__ import annotations

import pytest
from sqlalchemy import delete

from ngnpro import models as m
from ngnpro.models.changes import ChangeFeed, record_change
from ngnpro.models.database import open_database


@pytest.fixture
def db(db_url):
    engine, Session = open_database(db_url)
    yield Session
    engine.dispose()


def test_a_plain_callable_session_factory_is_enough(db):
    feed = ChangeFeed(lambda: db())  # not a sessionmaker: the engine comes from a session
    with db() as s:
        record_change(s, "sip_domain", "Example.com")
        s.commit()
    assert [(c.topic, c.key) for c in feed.poll()] == [("sip_domain", "example.com")]
    assert feed.poll() == []


def test_a_gap_is_given_up_after_its_rows_were_pruned(db):
    now = [0.0]
    feed = ChangeFeed(db, gap_timeout=10, clock=lambda: now[0])
    base = feed.position
    with db() as s:
        s.add(m.ChangeLogEntry(id=base + 2, topic="lcr", key=""))
        s.commit()
    assert [c.id for c in feed.poll()] == [base + 2]
    with db() as s:  # pruned meanwhile: the next polls read no row at all
        s.execute(delete(m.ChangeLogEntry).where(m.ChangeLogEntry.id == base + 2))
        s.commit()
    assert feed.poll() == [] and feed.position == base
    now[0] = 11.0
    assert feed.poll() == [] and feed.position == base + 2
