"""The presence store's batch reads and writes (every backend under test): the CSeq numbers
of a state change's NOTIFYs taken at once, and the aliases of many watchers in two reads.
Each must agree with its one-at-a-time form."""

from __future__ import annotations

from ngnpro.models import SipAlias
from sipproxy.presence.subscription import Subscription


def _sub(n: int, cseq: int = 0, event_id: str = "") -> Subscription:
    return Subscription(call_id=f"c{n}@test", from_tag=f"f{n}", to_tag=f"pa-{n}", event="presence",
                        event_id=event_id, presentity="bob@example.com", watcher=f"w{n}@example.com",
                        watcher_uri=f"<sip:w{n}@example.com>", presentity_uri="<sip:bob@example.com>",
                        remote_target=f"sip:w{n}@192.0.2.9", route_set="", contact="<sip:bob@127.0.0.1>",
                        local_cseq=cseq, state="active", expires_at=2_000_000_000)


def test_next_cseqs_takes_one_number_per_dialog(world):
    agent, _, _, _ = world
    store = agent.store
    subs = [_sub(1, 4), _sub(2, 0), _sub(3, 10), _sub(3, 7, event_id="x")]  # the last: same dialog, other id
    for sub in subs:
        store.add(sub)
    assert store.next_cseqs(subs) == [5, 1, 11, 8]
    assert store.next_cseqs(subs[1:3]) == [2, 12]
    assert store.next_cseq(subs[0]) == 6  # the one-at-a-time form goes on from the same counter
    gone = _sub(9, 41)  # no row (ended meanwhile): from what it holds
    assert store.next_cseqs([gone, subs[0]]) == [42, 7]
    assert store.next_cseqs([]) == []


def test_next_cseq_with_save_writes_the_changes_in_the_same_update(world):
    agent, _, _, _ = world
    store = agent.store
    sub = _sub(1)
    store.add(sub)
    sub.state, sub.version = "terminated", 3
    assert store.next_cseq(sub, save=True) == 1
    again = store.subscription(sub.call_id, sub.to_tag)
    assert (again.state, again.version, again.local_cseq) == ("terminated", 3, 1)


def test_aliases_of_many_accounts_agrees_with_one_at_a_time(world):
    agent, _, sessions, _ = world
    store = agent.store
    with sessions() as s, s.begin():  # robert -> bob exists; a second level and a second account
        s.add(SipAlias(username="bobby", domain="example.com", target_username="robert", target_domain="example.com"))
        s.add(SipAlias(username="b", domain="other.example", target_username="bob", target_domain="example.com"))
        s.add(SipAlias(username="cc", domain="example.com", target_username="carol", target_domain="example.com"))
        s.add(SipAlias(username="x", domain="example.com", target_username="carol", target_domain="other.example"))
    accounts = ["bob@example.com", "carol@example.com", "nobody@example.com"]
    many = store.aliases_of(accounts)
    assert sorted(many["bob@example.com"]) == ["b@other.example", "bobby@example.com", "robert@example.com"]
    assert many["carol@example.com"] == ["cc@example.com"]  # not carol@other.example's
    assert many["nobody@example.com"] == []
    for account in accounts:
        assert sorted(store.aliases(account)) == sorted(many[account])
    assert store.aliases_of([]) == {}
