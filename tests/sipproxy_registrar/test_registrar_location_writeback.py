"""Location write-back: pure REGISTER refreshes answered from memory, written in one
transaction per interval, never over a later write by another worker or proxy."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from ngnpro.models import Location, open_database
from ngnpro.models.config import ConfigError, validate
from sipproxy.registrar import locationsql
from sipproxy.registrar.location import Binding, LocationStore, OutOfOrder

from .support import Clock

DOMAIN = "example.com"



@pytest.fixture
def setup(db_url: str):  # noqa: ANN201 - (engine, factory, clock)
    engine, factory = open_database(db_url)
    yield engine, factory, Clock()
    engine.dispose()


def deferring(factory, clock: Clock, interval: float = 1.0) -> LocationStore:  # noqa: ANN001
    """A store with write-back on, flushed by the test (no greenlet)."""
    store = LocationStore(factory, clock=clock, write_back=interval)
    store.deferring = True
    return store


def table(engine, username: str) -> dict[str, tuple[float, str, int]]:  # noqa: ANN001
    """contact -> (expiry in epoch seconds, call_id, cseq), as the table holds them now."""
    t = Location.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.contact, t.c.expires, t.c.call_id, t.c.cseq)
                            .where(t.c.username == username)).all()
    return {r.contact: (round(locationsql.to_epoch(r.expires), 3), r.call_id, r.cseq) for r in rows}


def register(store: LocationStore, user: str, contact: str, expires: float, call_id: str, cseq: int,
             **kw) -> list[Binding]:  # noqa: ANN003
    b = Binding(contact, expires, call_id=call_id, cseq=cseq, user_agent=kw.pop("user_agent", "phone/1"), **kw)
    return store.update(user, DOMAIN, save=[b], call_id=call_id, cseq=cseq)


def test_refresh_answered_at_once_written_back_on_flush(setup) -> None:  # noqa: ANN001
    engine, factory, clock = setup
    store = deferring(factory, clock)
    t0 = clock.t
    a, b = "sip:amy@192.0.2.1", "sip:amy@192.0.2.2"
    register(store, "amy", a, t0 + 600, "c1", 1)
    register(store, "amy", b, t0 + 600, "c2", 1, q=0.5)
    assert store.refreshes == 0  # new contacts: written through
    commits = store.commits
    clock.t += 30
    got = register(store, "amy", a, clock.t + 600, "c3", 1, user_agent="phone/2")
    # the answer carries the new expiry and still lists the other binding, best first
    assert [(x.contact, x.expires, x.call_id, x.user_agent) for x in got] == [
        (a, t0 + 630, "c3", "phone/2"), (b, t0 + 600, "c2", "phone/1")]
    assert (store.refreshes, store.commits) == (1, commits)
    # the table (what other workers and proxies read) keeps the old values until the flush
    assert table(engine, "amy")[a] == (t0 + 600, "c1", 1)
    other = LocationStore(factory, clock=clock)
    assert {x.contact: x.expires for x in other.lookup("amy", DOMAIN)}[a] == t0 + 600
    # this store reads its own pending values
    mine = store.lookup("amy", DOMAIN)
    assert [(x.contact, x.expires, x.user_agent) for x in mine] == [(a, t0 + 630, "phone/2"), (b, t0 + 600, "phone/1")]
    assert store.flush() == 1
    assert store.commits == commits + 1 and store._pending == {}
    assert table(engine, "amy") == {a: (t0 + 630, "c3", 1), b: (t0 + 600, "c2", 1)}
    assert {x.contact: (x.expires, x.user_agent) for x in other.lookup("amy", DOMAIN)}[a] == (t0 + 630, "phone/2")
    assert store.flush() == 0  # nothing left
    other.close()
    store.close()


def test_flush_never_overwrites_a_later_write_by_another_proxy(setup) -> None:  # noqa: ANN001
    engine, factory, clock = setup
    store = deferring(factory, clock)
    other = LocationStore(factory, clock=clock)  # the other proxy, writing through
    c = "sip:ben@192.0.2.3"
    register(store, "ben", c, clock.t + 600, "c1", 1)
    clock.t += 10
    register(store, "ben", c, clock.t + 600, "c2", 1)  # pending, older
    clock.t += 10
    register(other, "ben", c, clock.t + 900, "c3", 1)  # committed, later
    assert store.flush() == 1  # sent, but it matched no row
    assert table(engine, "ben") == {c: (clock.t + 900, "c3", 1)}
    # and our own reads no longer prefer the older pending values either
    assert [(x.expires, x.call_id) for x in store.lookup("ben", DOMAIN)] == [(clock.t + 900, "c3")]
    # the same for a pending refresh overtaken before the flush: the table's row wins at once
    clock.t += 10
    register(store, "ben", c, clock.t + 600, "c4", 1)
    clock.t += 10
    register(other, "ben", c, clock.t + 900, "c5", 1)
    assert [x.call_id for x in store.lookup("ben", DOMAIN)] == ["c5"]
    assert store._pending == {}
    other.close()
    store.close()


def test_write_through_commits_the_aors_pending_refreshes(setup) -> None:  # noqa: ANN001
    engine, factory, clock = setup
    store = deferring(factory, clock)
    a, b = "sip:cat@192.0.2.4", "sip:cat@192.0.2.5"
    register(store, "cat", a, clock.t + 600, "c1", 1)
    register(store, "dan", "sip:dan@192.0.2.6", clock.t + 600, "d1", 1)
    clock.t += 5
    register(store, "cat", a, clock.t + 600, "c2", 1)
    register(store, "dan", "sip:dan@192.0.2.6", clock.t + 600, "d2", 1)
    assert store.refreshes == 2
    clock.t += 5
    got = register(store, "cat", b, clock.t + 600, "c3", 1)  # a new contact: written through
    assert [(x.contact, x.call_id) for x in got] == [(b, "c3"), (a, "c2")]
    assert table(engine, "cat") == {a: (clock.t - 5 + 600, "c2", 1), b: (clock.t + 600, "c3", 1)}
    # only that AOR's pending values went with it
    assert list(store._pending) == [("dan", DOMAIN)]
    assert table(engine, "dan")["sip:dan@192.0.2.6"][1] == "d1"
    store.close()


def test_out_of_order_refresh_raises_and_changes_nothing(setup) -> None:  # noqa: ANN001
    engine, factory, clock = setup
    store = deferring(factory, clock)
    c = "sip:eve@192.0.2.7"
    register(store, "eve", c, clock.t + 600, "x", 5)
    commits = store.commits
    # against the table's row
    with pytest.raises(OutOfOrder):
        register(store, "eve", c, clock.t + 900, "x", 5)
    assert store._pending == {} and store.commits == commits
    # against our own pending values
    clock.t += 1
    register(store, "eve", c, clock.t + 700, "x", 6)
    with pytest.raises(OutOfOrder):
        register(store, "eve", c, clock.t + 900, "x", 6)
    assert [(x.expires, x.cseq) for x in store.lookup("eve", DOMAIN)] == [(clock.t + 700, 6)]
    assert table(engine, "eve") == {c: (clock.t - 1 + 600, "x", 5)}
    assert store.commits == commits and store.refreshes == 1
    store.close()


def test_near_expiry_and_changed_routes_are_written_through(setup) -> None:  # noqa: ANN001
    """A refresh of a row whose stored expiry is within 2 * interval + 5 s (7 s here) could
    be purged before the flush; one that changes where calls go must be seen by every
    worker at once: both are committed before update() returns."""
    engine, factory, clock = setup
    store = deferring(factory, clock)
    c = "sip:fay@192.0.2.8"
    register(store, "fay", c, clock.t + 60, "f1", 1)
    clock.t += 52  # 8 s left: deferred
    register(store, "fay", c, clock.t + 60, "f2", 1)
    assert store.refreshes == 1 and table(engine, "fay")[c][1] == "f1"
    clock.t += 1  # the stored row has 7 s left now: written through, with the pending one
    register(store, "fay", c, clock.t + 60, "f3", 1)
    assert store.refreshes == 1 and store._pending == {}
    assert table(engine, "fay") == {c: (clock.t + 60, "f3", 1)}
    # same contact, new source address (NAT rebinding): written through
    register(store, "fay", c, clock.t + 60, "f4", 1, received="udp:198.51.100.1:4000")
    assert store.refreshes == 1 and table(engine, "fay")[c][1] == "f4"
    store.close()


def test_stop_flushes_and_a_failed_flush_keeps_the_values(setup, monkeypatch, caplog) -> None:  # noqa: ANN001
    import gevent

    engine, factory, clock = setup
    store = LocationStore(factory, clock=clock, write_back=0.05)
    c = "sip:gus@192.0.2.9"
    register(store, "gus", c, clock.t + 3600, "g1", 1)
    store.start()
    try:
        real = locationsql.RawConnection.execute_many
        error = engine.dialect.loaded_dbapi.OperationalError
        calls = []

        def failing(self, stmt, rows):  # noqa: ANN001, ANN202
            calls.append(len(rows))
            raise error("database is locked (simulated)")

        monkeypatch.setattr(locationsql.RawConnection, "execute_many", failing)
        clock.t += 5
        register(store, "gus", c, clock.t + 3600, "g2", 1)
        with pytest.raises(DBAPIError):
            store.flush()
        with caplog.at_level(logging.WARNING, logger="sipproxy.location"):
            gevent.sleep(0.2)  # the greenlet tries, fails, keeps going
        assert len(calls) >= 2 and "write-back of 1 refreshes failed" in caplog.text
        assert table(engine, "gus")[c][1] == "g1"
        assert store.lookup("gus", DOMAIN)[0].call_id == "g2"
        monkeypatch.setattr(locationsql.RawConnection, "execute_many", real)
        gevent.sleep(0.2)
        assert table(engine, "gus")[c][1] == "g2" and store._pending == {}
        # stop() writes back what is still pending (no greenlet would now; the rows' stored
        # expiry is still more than 2 * 600 + 5 s away)
        store.write_back = 600.0
        clock.t += 5
        register(store, "gus", c, clock.t + 3600, "g3", 1)
        assert table(engine, "gus")[c][1] == "g2"
    finally:
        store.stop()
    assert table(engine, "gus")[c] == (clock.t + 3600, "g3", 1)


def test_group_commit_queue_carries_writes_not_refreshes(setup) -> None:  # noqa: ANN001
    import gevent

    engine, factory, clock = setup
    store = LocationStore(factory, clock=clock, group_commit=True, write_back=600.0)
    c = "sip:hal@192.0.2.10"
    store.start()
    try:
        gevent.spawn(register, store, "hal", c, clock.t + 3600, "h1", 1).get()
        assert store.jobs == 1
        clock.t += 5
        got = gevent.spawn(register, store, "hal", c, clock.t + 3600, "h2", 1).get()
        assert got[0].call_id == "h2" and store.jobs == 1 and store.refreshes == 1
        got = gevent.spawn(register, store, "hal", "sip:hal@192.0.2.11", clock.t + 3600, "h3", 1).get()
        assert store.jobs == 2 and len(got) == 2
        assert {v[1] for v in table(engine, "hal").values()} == {"h2", "h3"}
    finally:
        store.stop()


@pytest.mark.parametrize("interval, started", [(0.0, True), (1.0, False)])
def test_off_or_not_started_writes_through(setup, interval: float, started: bool) -> None:  # noqa: ANN001
    engine, factory, clock = setup
    store = LocationStore(factory, clock=clock, write_back=interval)
    c = "sip:ida@192.0.2.12"
    if started:
        store.start()
    try:
        register(store, "ida", c, clock.t + 600, "i1", 1)
        clock.t += 5
        register(store, "ida", c, clock.t + 600, "i2", 1)
        assert store.refreshes == 0 and not store.deferring
        assert table(engine, "ida") == {c: (clock.t + 600, "i2", 1)}
    finally:
        store.stop()


def test_config_key() -> None:
    assert validate({})["sipproxy"]["location_write_back"] == 1.0
    assert validate({"sipproxy": {"location_write_back": 0}})["sipproxy"]["location_write_back"] == 0.0
    with pytest.raises(ConfigError, match="location_write_back"):
        validate({"sipproxy": {"location_write_back": -1}})
