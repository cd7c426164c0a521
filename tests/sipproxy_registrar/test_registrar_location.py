"""Location store: bindings in the shared table, seen by a restarted or second proxy."""

from __future__ import annotations

import pytest

from ngnpro.models import open_database
from sipproxy.location import Binding, LocationStore, OutOfOrder, TooManyContacts


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def test_save_lookup_order_and_persistence(db_url: str) -> None:
    engine, factory = open_database(db_url)
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
