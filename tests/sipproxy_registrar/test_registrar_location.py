"""Location store: bindings in the shared table, seen by a restarted or second proxy."""

from __future__ import annotations

import pytest

from ngnpro.models import open_database
from sipproxy.registrar.location import Binding, LocationStore, OutOfOrder, TooManyContacts

from .support import Clock, add_accounts


def test_save_lookup_order_and_persistence(db_url: str) -> None:
    engine, factory = open_database(db_url)
    add_accounts(factory, {"alice": "pw"}, domain="example.com")
    clock = Clock()
    store = LocationStore(factory, clock=clock)
    now = clock.t
    b1 = Binding("sip:a@192.0.2.1:5060", now + 600, q=0.5, received="udp:198.51.100.7:40000",
                 socket="udp:127.0.0.1:5060", path=("<sip:edge.example;lr>",), call_id="c1", cseq=1,
                 user_agent="phone/1", behind_nat=True)
    b2 = Binding("sip:a@192.0.2.2:5060;transport=tcp", now + 300, q=1.0, call_id="c2", cseq=1)
    store.update("alice", "Example.COM", save=[b1], call_id="c1", cseq=1)
    clock.t += 1
    current = store.update("alice", "example.com", save=[b2], call_id="c2", cseq=1)
    assert [b.contact for b in current] == [b2.contact, b1.contact]  # q=1.0 first
    engine.dispose()

    # A restarted proxy (new engine, new store) -- or a second one -- finds them.
    engine2, factory2 = open_database(db_url)
    other = LocationStore(factory2, clock=clock)
    found = other.lookup("alice", "example.com")
    assert [b.contact for b in found] == [b2.contact, b1.contact]
    got = found[1]
    assert (got.received, got.socket, got.path, got.user_agent, got.behind_nat, got.q) == (
        "udp:198.51.100.7:40000", "udp:127.0.0.1:5060", ("<sip:edge.example;lr>",), "phone/1", True, 0.5)
    assert got.remaining(clock.t) == 599
    # Expiry: after 300 s b2 is gone from look-ups, then purged.
    clock.t += 300
    assert [b.contact for b in other.lookup("alice", "example.com")] == [b1.contact]
    assert other.expire() == 1
    engine2.dispose()


def test_refresh_remove_out_of_order_and_limits(db_url: str) -> None:
    engine, factory = open_database(db_url)
    clock = Clock()
    store = LocationStore(factory, clock=clock)
    c = "sip:bob@192.0.2.9"
    store.update("bob", "example.com", save=[Binding(c, clock.t + 100, call_id="x", cseq=5)], call_id="x", cseq=5)
    # Same Call-ID, CSeq not higher: refused, nothing changes.
    with pytest.raises(OutOfOrder):
        store.update("bob", "example.com", save=[Binding(c, clock.t + 900, call_id="x", cseq=5)],
                     call_id="x", cseq=5)
    assert store.lookup("bob", "example.com")[0].remaining(clock.t) == 100
    # Refresh with a higher CSeq updates in place (still one row).
    got = store.update("bob", "example.com", save=[Binding(c, clock.t + 900, call_id="x", cseq=6)],
                       call_id="x", cseq=6)
    assert len(got) == 1 and got[0].remaining(clock.t) == 900
    # Limit: a third contact over max_contacts=2 is refused, the first two stay.
    store.update("bob", "example.com", save=[Binding("sip:bob@192.0.2.10", clock.t + 60)], call_id="y", cseq=1,
                 max_contacts=2)
    with pytest.raises(TooManyContacts):
        store.update("bob", "example.com", save=[Binding("sip:bob@192.0.2.11", clock.t + 60)], call_id="z",
                     cseq=1, max_contacts=2)
    assert len(store.lookup("bob", "example.com")) == 2
    # Remove one, then all.
    assert len(store.update("bob", "example.com", remove=[c], call_id="x", cseq=7)) == 1
    assert store.update("bob", "example.com", remove_all=True, call_id="w", cseq=1) == []
    assert store.lookup("bob", "example.com") == []
    engine.dispose()


def test_instance_replaces_old_contact(db_url: str) -> None:
    engine, factory = open_database(db_url)
    clock = Clock()
    store = LocationStore(factory, clock=clock)
    inst = "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"
    store.update("carol", "example.com", save=[Binding("sip:carol@192.0.2.1:5060", clock.t + 60, instance=inst,
                                                        reg_id=1)], call_id="a", cseq=1)
    # The same device re-registers from a new address (new NAT binding): the old contact goes.
    got = store.update("carol", "example.com", save=[Binding("sip:carol@192.0.2.1:6000", clock.t + 60,
                                                              instance=inst, reg_id=1)], call_id="a", cseq=2)
    assert [b.contact for b in got] == ["sip:carol@192.0.2.1:6000"]
    assert len(store.lookup("carol", "example.com")) == 1
    engine.dispose()


def test_group_commit_applies_concurrent_registers_together(db_url: str) -> None:
    """With the store started (the server), REGISTERs that arrive together share one
    transaction; each gets its own answer, committed before update() returns, and a rule
    broken by one (out of order) fails that one alone."""
    import gevent

    engine, factory = open_database(db_url)
    clock = Clock()
    store = LocationStore(factory, clock=clock, group_commit=True)
    store.update("dave", "example.com", save=[Binding("sip:dave@192.0.2.5", clock.t + 60, call_id="d", cseq=9)],
                 call_id="d", cseq=9)
    store.start()
    try:
        def register(n: int) -> list[Binding]:
            contact = f"sip:user{n}@192.0.2.{n}"
            return store.update(f"user{n}", "example.com", save=[Binding(contact, clock.t + 60, call_id=f"c{n}", cseq=1)],
                                call_id=f"c{n}", cseq=1)

        def stale() -> list[Binding]:
            return store.update("dave", "example.com", save=[Binding("sip:dave@192.0.2.5", clock.t + 900, call_id="d",
                                                                      cseq=8)], call_id="d", cseq=8)

        commits = store.commits
        greenlets = [gevent.spawn(register, n) for n in range(1, 6)] + [gevent.spawn(stale)]
        gevent.joinall(greenlets)
        assert [[b.contact for b in g.value] for g in greenlets[:5]] == [
            [f"sip:user{n}@192.0.2.{n}"] for n in range(1, 6)]
        assert isinstance(greenlets[5].exception, OutOfOrder)
        assert store.commits - commits < 6  # shared transactions
        # committed: a second proxy on the same database sees them all at once
        other = LocationStore(factory, clock=clock)
        assert [len(other.lookup(f"user{n}", "example.com")) for n in range(1, 6)] == [1] * 5
        assert other.lookup("dave", "example.com")[0].remaining(clock.t) == 60
        other.close()
    finally:
        store.stop()
    engine.dispose()


def test_group_commit_database_error_reapplies_one_by_one(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database error inside a batch (say, another proxy inserted the same contact first)
    rolls the batch back and applies each REGISTER in a transaction of its own."""
    import gevent

    from sipproxy.registrar import locationsql

    engine, factory = open_database(db_url)
    clock = Clock()
    store = LocationStore(factory, clock=clock, group_commit=True)
    integrity = engine.dialect.loaded_dbapi.IntegrityError
    failures = []
    real_execute = locationsql.RawConnection.execute

    def flaky(self, stmt, values):  # noqa: ANN001, ANN202
        if stmt is store._sql.insert_row and values["username"] == "user2" and not failures:
            failures.append(values["contact"])
            raise integrity("duplicate contact (simulated race)")
        return real_execute(self, stmt, values)

    monkeypatch.setattr(locationsql.RawConnection, "execute", flaky)
    store.start()
    try:
        def register(n: int) -> list[Binding]:
            contact = f"sip:user{n}@192.0.2.{n}"
            return store.update(f"user{n}", "example.com", save=[Binding(contact, clock.t + 60)], call_id=f"c{n}",
                                cseq=1)

        greenlets = [gevent.spawn(register, n) for n in range(1, 4)]
        gevent.joinall(greenlets)
        assert [g.exception for g in greenlets] == [None] * 3
        assert failures == ["sip:user2@192.0.2.2"]
        for n in range(1, 4):
            assert [b.contact for b in store.lookup(f"user{n}", "example.com")] == [f"sip:user{n}@192.0.2.{n}"]
    finally:
        store.stop()
    engine.dispose()


def test_kept_connection_killed_by_the_server_is_replaced(db_url: str) -> None:
    """A database server restart (or an idle timeout) closes the connections the store keeps:
    the next look-up and REGISTER retry once on a fresh connection instead of failing."""
    from sqlalchemy import text

    engine, factory = open_database(db_url)
    backend = engine.dialect.name
    if backend == "sqlite":
        engine.dispose()
        pytest.skip("no server to close the connection")
    clock = Clock()
    store = LocationStore(factory, clock=clock)
    store.update("erin", "example.com", save=[Binding("sip:erin@192.0.2.7", clock.t + 60)], call_id="e", cseq=1)
    for write in (False, True):
        (kept,) = store._idle
        cur = kept.dbapi.cursor()
        cur.execute("SELECT pg_backend_pid()" if backend == "postgresql" else "SELECT CONNECTION_ID()")
        (pid,) = cur.fetchone()
        with engine.connect() as admin:
            admin.execute(text(f"SELECT pg_terminate_backend({pid})" if backend == "postgresql" else f"KILL {pid}"))
            admin.commit()
        if write:
            got = store.update("erin", "example.com", save=[Binding("sip:erin@192.0.2.7", clock.t + 120)], call_id="e",
                               cseq=2)
            assert got[0].remaining(clock.t) == 120
        else:
            assert [b.contact for b in store.lookup("erin", "example.com")] == ["sip:erin@192.0.2.7"]
        assert store._idle and store._idle[0] is not kept
    store.close()
    engine.dispose()


def test_purge_removes_the_bindings_of_deleted_accounts(db_url: str) -> None:
    """Deleting an account (ngnpro) leaves its rows; the purge takes them with the expired
    ones, and only them."""
    from ngnpro.models import SipAccount

    engine, factory = open_database(db_url)
    add_accounts(factory, {"alice": "pw", "bob": "pw"}, domain="example.com")
    clock = Clock()
    store = LocationStore(factory, clock=clock)
    for user in ("alice", "bob"):
        store.update(user, "example.com", save=[Binding(f"sip:{user}@192.0.2.1", clock.t + 600)],
                     call_id=user, cseq=1)
    assert store.expire() == 0
    with factory() as s, s.begin():
        s.delete(s.query(SipAccount).filter_by(username="bob").one())
    assert store.expire() == 1
    assert store.lookup("bob", "example.com") == []
    assert [b.contact for b in store.lookup("alice", "example.com")] == ["sip:alice@192.0.2.1"]
    engine.dispose()
