"""Directory: cached look-ups that see a provisioning change within a second."""

from __future__ import annotations

import time

from sqlalchemy import delete, select, update

from ngnpro.models import SipAccount, SipAccountGroup, SipAlias, SipDomain, record_change
from ngnpro.models.changes import TOPIC_SIP_ACCOUNT, TOPIC_SIP_ALIAS, TOPIC_SIP_DOMAIN
from sipproxy.directory.store import Directory
from sipproxy.sip.digest import ha1

from .support import DOMAIN, provision


def test_lookups_and_negative_cache(db_url: str) -> None:
    engine, factory = provision(db_url, {"alice": "pw-a", "bob": "pw-b"}, blocked=("bob",))
    d = Directory(factory, config_domains=["Extra.Example"])
    assert d.is_local_domain(DOMAIN) and d.is_local_domain("EXAMPLE.COM")
    assert d.is_local_domain("extra.example") and not d.is_local_domain("other.org")
    alice = d.account("alice", DOMAIN)
    assert alice is not None and not alice.blocked and alice.ha1 == ha1("alice", DOMAIN, "pw-a")
    assert alice.digest_ha1("alice", "SHA-256") == ha1("alice", DOMAIN, "pw-a", "SHA-256")
    assert alice.digest_ha1(f"alice@{DOMAIN}", "MD5") == ha1(f"alice@{DOMAIN}", DOMAIN, "pw-a")
    assert alice.digest_ha1("mallory", "MD5") is None
    assert d.account("bob", DOMAIN).blocked
    assert d.account("Alice", DOMAIN) is None  # user part is case-sensitive
    assert d.account("nobody", DOMAIN) is None
    misses = d.misses
    assert d.account("nobody", DOMAIN) is None and d.account("alice", DOMAIN) is alice
    assert d.misses == misses  # both answered from the cache
    engine.dispose()


def _wait_for(predicate, timeout: float = 1.0) -> float:  # noqa: ANN001
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"not seen within {timeout}s")


def test_provisioning_changes_seen_within_a_second(db_url: str) -> None:
    engine, factory = provision(db_url, {"alice": "pw-a"})
    d = Directory(factory, refresh_interval=0.1)
    assert d.account("carol", DOMAIN) is None  # cached negative answer
    assert d.account("alice", DOMAIN).ha1 == ha1("alice", DOMAIN, "pw-a")
    assert d.alias("boss", DOMAIN) is None
    assert not d.is_local_domain("new.example")
    with factory() as s, s.begin():
        s.add(SipAccount(username="carol", domain=DOMAIN, ha1=ha1("carol", DOMAIN, "x")))
        record_change(s, TOPIC_SIP_ACCOUNT, f"carol@{DOMAIN}")
        s.execute(update(SipAccount).where(SipAccount.username == "alice").values(ha1=ha1("alice", DOMAIN, "new")))
        alice_id = s.scalar(select(SipAccount.id).where(SipAccount.username == "alice"))
        s.add(SipAccountGroup(account_id=alice_id, name="blocked"))
        record_change(s, TOPIC_SIP_ACCOUNT, f"Alice@{DOMAIN}")  # keys are case-folded
        s.add(SipAlias(username="boss", domain=DOMAIN, target_username="alice", target_domain=DOMAIN))
        record_change(s, TOPIC_SIP_ALIAS, f"boss@{DOMAIN}")
        s.add(SipDomain(domain="new.example"))
        record_change(s, TOPIC_SIP_DOMAIN, "new.example")
    _wait_for(lambda: d.account("carol", DOMAIN) is not None)
    alice = d.account("alice", DOMAIN)
    assert alice.ha1 == ha1("alice", DOMAIN, "new") and alice.blocked
    assert d.alias("boss", DOMAIN) == ("alice", DOMAIN)
    assert d.is_local_domain("new.example")
    # A deletion is seen too.
    with factory() as s, s.begin():
        s.execute(delete(SipAccount).where(SipAccount.username == "carol"))
        record_change(s, TOPIC_SIP_ACCOUNT, f"carol@{DOMAIN}")
    _wait_for(lambda: d.account("carol", DOMAIN) is None)
    engine.dispose()


def test_refresher_greenlet_and_bounded_cache(db_url: str) -> None:
    import gevent

    engine, factory = provision(db_url, {f"u{i}": "pw" for i in range(30)})
    d = Directory(factory, capacity=10, refresh_interval=0.05)
    for i in range(30):
        assert d.account(f"u{i}", DOMAIN) is not None
    assert d.cached_accounts == 10
    d.start()
    try:
        with factory() as s, s.begin():
            s.execute(update(SipAccount).where(SipAccount.username == "u29").values(ha1="0" * 32))
            record_change(s, TOPIC_SIP_ACCOUNT, f"u29@{DOMAIN}")
        deadline = time.monotonic() + 1.0
        while d.account("u29", DOMAIN).ha1 != "0" * 32:
            assert time.monotonic() < deadline, "change not seen within 1 s"
            gevent.sleep(0.02)
    finally:
        d.stop()
    engine.dispose()


def test_warm_preloads_accounts_with_groups(db_url: str) -> None:
    engine, factory = provision(db_url, {"alice": "a", "bob": "b", "eve": "e"}, blocked=("eve",))
    d = Directory(factory, capacity=2)
    assert d.warm() == 2 and d.cached_accounts == 2
    misses = d.misses
    assert d.account("alice", DOMAIN).ha1 == ha1("alice", DOMAIN, "a")
    assert d.account("bob", DOMAIN) is not None
    assert d.misses == misses  # both preloaded
    assert d.account("eve", DOMAIN).blocked and d.misses == misses + 1
    full = Directory(factory)
    full.warm()
    assert full.account("eve", DOMAIN).blocked and full.misses == 0
    engine.dispose()


def test_cache_drops_changed_keys_by_index() -> None:
    """A change names ``user@domain`` case-folded: every cached spelling of it goes, others
    stay, and evicted entries leave nothing behind in the index."""
    from sipproxy.directory.store import _LRU, _MISSING

    lru = _LRU(3)
    lru.put(("Alice", "example.com"), 1)
    lru.put(("alice", "example.com"), 2)
    lru.put(("bob", "example.com"), 3)
    assert lru.drop({"alice@example.com", "nobody@example.com"}) == 2
    assert lru.get(("Alice", "example.com")) is _MISSING and lru.get(("bob", "example.com")) == 3
    for i in range(5):  # evicts bob and two of these
        lru.put((f"u{i}", "example.com"), i)
    assert len(lru) == 3 and lru.drop({"bob@example.com", "u0@example.com"}) == 0
    assert lru.drop({"u4@example.com"}) == 1 and len(lru) == 2
    assert sorted(lru._by_aor) == ["u2@example.com", "u3@example.com"]
