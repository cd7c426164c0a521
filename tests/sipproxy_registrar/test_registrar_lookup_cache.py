"""The location look-up cache: the sans-I/O cache itself, and the LocationStore using it --
hits issue no SQL, every write of the store forgets the address-of-record, a write that
changes where calls go is announced (``on_change``) through the change counters the workers
share, another proxy's write is seen after the TTL.  Store tests run on every database
under test (``db_url``)."""

from __future__ import annotations

import copy
import os

import pytest

from ngnpro.models import open_database
from ngnpro.models.config import ConfigError, validate
from sipproxy.registrar.cache import ChangeCounters, LookupCache, routes_differ
from sipproxy.registrar.location import Binding, LocationStore, OutOfOrder

from .support import Clock, add_accounts

DOMAIN = "example.com"
T0 = 1_800_000_000.0


def b(contact: str, expires: float, **kw) -> Binding:  # noqa: ANN003
    return Binding(contact, expires, **kw)


# -- the cache alone --------------------------------------------------------------------------


def test_entry_lives_for_the_ttl_only() -> None:
    cache = LookupCache(1.0)
    cache.put("amy", [b("sip:a@h", T0 + 100)], T0)
    assert cache.get("amy", T0 + 0.99) == [b("sip:a@h", T0 + 100)]
    assert cache.get("amy", T0 + 1.0) is None  # stale: dropped
    assert len(cache) == 0
    assert (cache.hits, cache.misses) == (1, 1)
    # a clock set back does not make an entry young again
    cache.put("amy", [b("sip:a@h", T0 + 100)], T0)
    assert cache.get("amy", T0 - 30) is None


def test_answers_are_copies() -> None:
    cache = LookupCache(5.0)
    cache.put("amy", [b("sip:a@h", T0 + 100)], T0)
    got = cache.get("amy", T0)
    got.clear()
    assert cache.get("amy", T0) == [b("sip:a@h", T0 + 100)]


def test_empty_answer_never_cached() -> None:
    cache = LookupCache(5.0)
    cache.put("amy", [], T0)
    assert cache.get("amy", T0) is None and len(cache) == 0
    # ttl 0: nothing is kept at all
    off = LookupCache(0.0)
    off.put("amy", [b("sip:a@h", T0 + 100)], T0)
    assert off.get("amy", T0) is None


def test_a_binding_expired_since_it_was_read_makes_a_miss() -> None:
    """Not the bindings left: another worker may have refreshed the expired one (refreshes
    are not announced), so the caller must read the table again."""
    cache = LookupCache(60.0)
    short, long_ = b("sip:a@h1", T0 + 5), b("sip:a@h2", T0 + 100)
    cache.put("amy", [short, long_], T0)
    assert cache.get("amy", T0 + 4.9) == [short, long_]
    assert cache.get("amy", T0 + 5.0) is None  # expires <= now: expired
    assert len(cache) == 0


def test_size_is_bounded_oldest_dropped() -> None:
    cache = LookupCache(60.0, size=3)
    for n in range(3):
        cache.put(n, [b(f"sip:{n}@h", T0 + 100)], T0)
    cache.put(0, [b("sip:0@h", T0 + 100)], T0)  # put again: the newest now
    cache.put(3, [b("sip:3@h", T0 + 100)], T0)
    assert len(cache) == 3
    assert cache.get(1, T0) is None  # the oldest went
    assert [cache.get(n, T0) is not None for n in (0, 2, 3)] == [True, True, True]


def test_invalidate_and_answers_read_before_it() -> None:
    cache = LookupCache(60.0, size=2)
    cache.put("amy", [b("sip:a@h", T0 + 100)], T0)
    cache.invalidate("amy")
    assert cache.get("amy", T0) is None
    # a look-up started reading, then amy's bindings changed: what it read is not kept
    since = cache.mark()
    cache.invalidate("amy")
    cache.put("amy", [b("sip:old@h", T0 + 100)], T0, since)
    assert cache.get("amy", T0) is None
    cache.put("bob", [b("sip:b@h", T0 + 100)], T0, since)  # someone else's: kept
    assert cache.get("bob", T0) is not None
    # read after the invalidation: kept
    cache.put("amy", [b("sip:new@h", T0 + 100)], T0, cache.mark())
    assert cache.get("amy", T0) == [b("sip:new@h", T0 + 100)]
    # more invalidations than it remembers: the forgotten ones still void older reads
    since = cache.mark()
    for aor in ("amy", "x", "y"):
        cache.invalidate(aor)
    cache.put("amy", [b("sip:old@h", T0 + 100)], T0, since)
    assert cache.get("amy", T0) is None
    cache.clear()
    assert len(cache) == 0


def _sibling(counters: ChangeCounters, worker: int) -> ChangeCounters:
    """Worker ``worker``'s view of the same shared counters (as a fork has it)."""
    view = copy.copy(counters)
    view.worker = worker
    return view


def test_a_siblings_change_voids_the_cached_entry() -> None:
    counters = ChangeCounters(2)
    other = _sibling(counters, 1)
    cache = LookupCache(60.0, shared=counters)
    bob, amy = ("bob", "example.com"), ("amy", "example.com")
    assert hash(bob) % counters.buckets != hash(amy) % counters.buckets
    cache.put(bob, [b("sip:b@h", T0 + 100)], T0, cache.mark(), cache.stamp(bob))
    cache.put(amy, [b("sip:a@h", T0 + 100)], T0, cache.mark(), cache.stamp(amy))
    assert cache.get(bob, T0) is not None
    other.bump("bob", "EXAMPLE.com")  # worker 1 changed bob's contacts
    assert cache.get(bob, T0) is None and cache.get(amy, T0) is not None
    assert counters.stamp(bob) == [0, 1]
    # a look-up reading while worker 1 changes bob: what it read is not kept
    stamp = cache.stamp(bob)
    other.bump("bob", "example.com")
    cache.put(bob, [b("sip:old@h", T0 + 100)], T0, cache.mark(), stamp)
    assert cache.get(bob, T0) is None
    cache.put(bob, [b("sip:new@h", T0 + 100)], T0, cache.mark(), cache.stamp(bob))
    assert cache.get(bob, T0) == [b("sip:new@h", T0 + 100)]


def test_change_counters_are_shared_with_forked_workers() -> None:
    counters = ChangeCounters(3)
    pid = os.fork()
    if pid == 0:  # the "worker 2" process
        try:
            counters.worker = 2
            counters.bump("bob", "example.com")
            counters.bump("bob", "example.com")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert counters.stamp(("bob", "example.com")) == [0, 0, 2]
    with pytest.raises(ValueError):
        ChangeCounters(0)


def test_routes_differ_ignores_refreshes_only() -> None:
    one = [b("sip:a@h1", T0 + 100, call_id="c1", cseq=1, user_agent="p/1", modified=T0)]
    refreshed = [b("sip:a@h1", T0 + 700, call_id="c2", cseq=2, user_agent="p/2", modified=T0 + 600)]
    assert not routes_differ(one, refreshed)
    assert routes_differ(one, one + [b("sip:a@h2", T0 + 100)])
    assert routes_differ(one, [])
    assert routes_differ(one, [one[0]._replace(q=0.5)])
    assert routes_differ(one, [one[0]._replace(received="udp:192.0.2.9:5060")])
    assert routes_differ(one, [one[0]._replace(path=("<sip:edge;lr>",))])


def test_config_key() -> None:
    assert validate({})["sipproxy"]["location_cache"] == 1.0
    assert validate({"sipproxy": {"location_cache": 0}})["sipproxy"]["location_cache"] == 0.0
    with pytest.raises(ConfigError):
        validate({"sipproxy": {"location_cache": -1}})


# -- the store with a cache -------------------------------------------------------------------



@pytest.fixture
def setup(db_url: str):  # noqa: ANN201 - (factory, clock)
    engine, factory = open_database(db_url)
    yield factory, Clock()
    engine.dispose()


def cached(factory, clock: Clock, ttl: float = 1.0) -> tuple[LocationStore, list, list]:  # noqa: ANN001
    """A store with a cache; the statements it reads with, and its ``on_change`` calls."""
    store = LocationStore(factory, clock=clock, cache=LookupCache(ttl))
    reads: list = []
    changes: list = []
    read = store._read
    store._read = lambda stmt, values: reads.append(stmt) or read(stmt, values)  # type: ignore[method-assign]
    store.on_change = lambda username, domain: changes.append((username, domain))
    return store, reads, changes


def register(store: LocationStore, user: str, contact: str, expires: float, call_id: str, cseq: int,
             **kw) -> list[Binding]:  # noqa: ANN003
    binding = Binding(contact, expires, call_id=call_id, cseq=cseq, **kw)
    return store.update(user, DOMAIN, save=[binding], call_id=call_id, cseq=cseq)


def contacts(bindings: list[Binding]) -> list[str]:
    return [x.contact for x in bindings]


def test_lookup_within_ttl_issues_no_sql(setup) -> None:  # noqa: ANN001
    factory, clock = setup
    store, reads, _ = cached(factory, clock)
    register(store, "amy", "sip:amy@192.0.2.1", T0 + 600, "c1", 1)
    first = store.lookup("amy", DOMAIN)
    assert contacts(first) == ["sip:amy@192.0.2.1"] and len(reads) == 1
    clock.t += 0.5
    assert store.lookup("amy", "EXAMPLE.com") == first  # the domain is case-insensitive
    assert len(reads) == 1
    clock.t += 0.5  # TTL over
    assert store.lookup("amy", DOMAIN) == first
    assert len(reads) == 2
    # nobody registered: nothing cached, every look-up reads
    assert store.lookup("bob", DOMAIN) == [] and store.lookup("bob", DOMAIN) == []
    assert len(reads) == 4
    # without a cache every look-up reads
    plain = LocationStore(factory, clock=clock)
    plain_reads: list = []
    read = plain._read
    plain._read = lambda stmt, values: plain_reads.append(stmt) or read(stmt, values)  # type: ignore[method-assign]
    plain.lookup("amy", DOMAIN)
    plain.lookup("amy", DOMAIN)
    assert len(plain_reads) == 2


def test_write_through_by_the_same_store_is_seen_at_once(setup) -> None:  # noqa: ANN001
    factory, clock = setup
    store, reads, changes = cached(factory, clock, ttl=60.0)
    register(store, "amy", "sip:amy@192.0.2.1", T0 + 600, "c1", 1)
    assert changes == [("amy", DOMAIN)]  # a new contact
    store.lookup("amy", DOMAIN)
    register(store, "amy", "sip:amy@192.0.2.2", T0 + 600, "c2", 1, q=0.5)
    assert contacts(store.lookup("amy", DOMAIN)) == ["sip:amy@192.0.2.1", "sip:amy@192.0.2.2"]
    assert len(reads) == 2
    assert changes == [("amy", DOMAIN)] * 2
    # a removal
    store.update("amy", DOMAIN, remove=["sip:amy@192.0.2.1"], call_id="c1", cseq=2)
    assert contacts(store.lookup("amy", DOMAIN)) == ["sip:amy@192.0.2.2"]
    assert changes == [("amy", DOMAIN)] * 3
    # the account goes
    assert store.remove_aor("amy", DOMAIN) == 1
    assert store.lookup("amy", DOMAIN) == []
    assert changes == [("amy", DOMAIN)] * 4
    assert len(reads) == 4


def test_pure_refresh_is_not_announced_but_forgotten_here(setup) -> None:  # noqa: ANN001
    factory, clock = setup
    store, reads, changes = cached(factory, clock, ttl=60.0)
    register(store, "amy", "sip:amy@192.0.2.1", T0 + 600, "c1", 1, user_agent="p/1")
    changes.clear()
    assert store.lookup("amy", DOMAIN)[0].expires == T0 + 600
    # written through (no write-back here): the same contact, later expiry, new User-Agent
    clock.t += 30
    register(store, "amy", "sip:amy@192.0.2.1", T0 + 630, "c1", 2, user_agent="p/2")
    assert changes == []
    got = store.lookup("amy", DOMAIN)
    assert (got[0].expires, got[0].user_agent, len(reads)) == (T0 + 630, "p/2", 2)
    # deferred (write-back): answered from memory, forgotten by the cache too
    store.deferring = True
    store.write_back = 1.0
    clock.t += 30
    register(store, "amy", "sip:amy@192.0.2.1", T0 + 660, "c1", 3)
    assert store.refreshes == 1 and changes == []
    assert store.lookup("amy", DOMAIN)[0].expires == T0 + 660
    assert store.flush() == 1
    assert store.lookup("amy", DOMAIN)[0].expires == T0 + 660
    # a refused REGISTER changes nothing and is not announced
    with pytest.raises(OutOfOrder):
        register(store, "amy", "sip:amy@192.0.2.1", T0 + 660, "c1", 1)
    assert changes == []
    # but a refresh that changes a route is
    store.deferring = False
    register(store, "amy", "sip:amy@192.0.2.1", T0 + 660, "c1", 4, received="udp:198.51.100.7:5060",
             behind_nat=True)
    assert changes == [("amy", DOMAIN)]
    assert store.lookup("amy", DOMAIN)[0].received == "udp:198.51.100.7:5060"


def test_another_proxy_is_seen_after_the_ttl(setup) -> None:  # noqa: ANN001
    factory, clock = setup
    store, reads, _ = cached(factory, clock, ttl=1.0)
    other = LocationStore(factory, clock=clock)  # a second proxy on the same database
    register(other, "amy", "sip:amy@192.0.2.1", T0 + 600, "c1", 1)
    assert contacts(store.lookup("amy", DOMAIN)) == ["sip:amy@192.0.2.1"]
    register(other, "amy", "sip:amy@192.0.2.2", T0 + 600, "c2", 1, q=0.5)
    clock.t += 0.9
    assert contacts(store.lookup("amy", DOMAIN)) == ["sip:amy@192.0.2.1"]  # cached
    clock.t += 0.1
    assert contacts(store.lookup("amy", DOMAIN)) == ["sip:amy@192.0.2.1", "sip:amy@192.0.2.2"]
    other.update("amy", DOMAIN, remove_all=True, call_id="c3", cseq=1)
    assert len(store.lookup("amy", DOMAIN)) == 2  # cached
    clock.t += 1.0
    assert store.lookup("amy", DOMAIN) == []
    assert len(reads) == 3


def test_binding_refreshed_elsewhere_is_not_lost_when_its_cached_expiry_passes(setup) -> None:  # noqa: ANN001
    factory, clock = setup
    store, reads, _ = cached(factory, clock, ttl=60.0)
    other = LocationStore(factory, clock=clock)  # another worker: refreshes are not announced
    register(other, "amy", "sip:amy@192.0.2.1", T0 + 100, "c1", 1)
    register(other, "amy", "sip:amy@192.0.2.2", T0 + 3600, "c2", 1, q=0.5)
    clock.t = T0 + 99
    assert len(store.lookup("amy", DOMAIN)) == 2
    register(other, "amy", "sip:amy@192.0.2.1", T0 + 700, "c1", 2)
    clock.t = T0 + 100.5  # the cached expiry of the first has passed: read again
    got = store.lookup("amy", DOMAIN)
    assert [(x.contact, x.expires) for x in got] == [("sip:amy@192.0.2.1", T0 + 700),
                                                      ("sip:amy@192.0.2.2", T0 + 3600)]
    assert len(reads) == 2


def test_lookup_racing_a_write_does_not_cache_what_it_read(setup) -> None:  # noqa: ANN001
    """A look-up that read the table before a write of this store committed (on a database
    server the read yields to other greenlets) must not keep the old answer."""
    factory, clock = setup
    store, reads, _ = cached(factory, clock, ttl=60.0)
    register(store, "amy", "sip:amy@192.0.2.1", T0 + 600, "c1", 1)
    read = store._read
    raced = []

    def slow_read(stmt, values):  # noqa: ANN001, ANN202
        rows = read(stmt, values)
        if not raced:  # meanwhile, another REGISTER of amy is applied
            raced.append(True)
            register(store, "amy", "sip:amy@192.0.2.2", T0 + 600, "c2", 1, q=0.5)
        return rows

    store._read = slow_read  # type: ignore[method-assign]
    assert contacts(store.lookup("amy", DOMAIN)) == ["sip:amy@192.0.2.1"]  # read before the write
    assert contacts(store.lookup("amy", DOMAIN)) == ["sip:amy@192.0.2.1", "sip:amy@192.0.2.2"]
    assert contacts(store.lookup("amy", DOMAIN)) == ["sip:amy@192.0.2.1", "sip:amy@192.0.2.2"]
    assert len(reads) == 2  # the third was a hit


def test_purge_forgets(setup) -> None:  # noqa: ANN001
    factory, clock = setup
    add_accounts(factory, {"amy": "pw", "bob": "pw"})
    store, reads, _ = cached(factory, clock, ttl=600.0)
    register(store, "amy", "sip:amy@192.0.2.1", T0 + 600, "c1", 1)
    register(store, "bob", "sip:bob@192.0.2.3", T0 + 60, "c3", 1)
    store.lookup("amy", DOMAIN)
    store.lookup("amy", DOMAIN)
    assert len(reads) == 1
    clock.t += 61
    assert store.expire() == 1
    store.lookup("amy", DOMAIN)
    assert len(reads) == 2


def test_a_write_through_another_worker_is_seen_at_once(setup) -> None:  # noqa: ANN001
    """Two workers' stores on one database and one set of change counters: worker 1 adds a
    contact, worker 0's next look-up -- within its TTL -- reads the table again."""
    factory, clock = setup
    counters = ChangeCounters(2)
    w0 = LocationStore(factory, clock=clock, cache=LookupCache(60.0, shared=counters))
    w1 = LocationStore(factory, clock=clock, cache=LookupCache(60.0, shared=_sibling(counters, 1)))
    w1.on_change = _sibling(counters, 1).bump
    try:
        register(w1, "amy", "sip:amy@192.0.2.1", T0 + 600, "c1", 1)
        assert contacts(w0.lookup("amy", DOMAIN)) == ["sip:amy@192.0.2.1"]
        assert w0.cache.hits == 0 and contacts(w0.lookup("amy", DOMAIN)) == ["sip:amy@192.0.2.1"]
        assert w0.cache.hits == 1
        register(w1, "amy", "sip:amy@192.0.2.2", T0 + 600, "c2", 1)
        assert sorted(contacts(w0.lookup("amy", DOMAIN))) == ["sip:amy@192.0.2.1", "sip:amy@192.0.2.2"]
        register(w1, "amy", "sip:amy@192.0.2.2", T0 + 900, "c2", 2)  # a refresh: not announced
        assert w0.cache.hits == 1 and len(w0.lookup("amy", DOMAIN)) == 2 and w0.cache.hits == 2
    finally:
        w0.close()
        w1.close()
