"""Quick dial (sipproxy.routing.quickdial): the routing guide's example and its limits."""

from __future__ import annotations

from sipproxy.directory.account import Account
from sipproxy.routing.quickdial import QuickDial, applies, complete

DOMAIN = "ag-projects.com"


def account(username: str = "31208005169", prefix: str = "312080051", domain: str = DOMAIN) -> Account:
    return Account(1, username, domain, "", "", "", quickdial_prefix=prefix)


def lookup(*existing: str):
    have = set(existing)
    asked: list[str] = []

    def exists(user: str, domain: str) -> bool:
        asked.append(f"{user}@{domain}")
        return f"{user}@{domain}" in have

    exists.asked = asked  # type: ignore[attr-defined]
    return exists


def test_guide_example():
    exists = lookup(f"31208005160@{DOMAIN}")
    assert complete(account(), "60", DOMAIN, exists) == QuickDial("31208005160", DOMAIN)
    assert exists.asked == [f"60@{DOMAIN}", f"31208005160@{DOMAIN}"]


def test_completed_address_must_exist():
    assert complete(account(), "61", DOMAIN, lookup(f"31208005160@{DOMAIN}")) is None


def test_a_real_short_user_wins():
    assert complete(account(), "60", DOMAIN, lookup(f"60@{DOMAIN}", f"31208005160@{DOMAIN}")) is None


def test_uses_the_dialled_domain():
    exists = lookup("31208005160@other.example")
    assert complete(account(), "60", "other.example", exists) == QuickDial("31208005160", "other.example")


def test_not_applicable():
    a = account()
    assert not applies(None, "60")
    assert not applies(account(prefix=""), "60")
    assert not applies(account(prefix="31a"), "60")
    assert not applies(a, "")
    assert not applies(a, "+60")
    assert not applies(a, "6a")
    assert not applies(a, "31208005160")  # as long as a full number
    assert not applies(a, "312080051601")  # longer
    assert applies(a, "6") and applies(a, "60") and applies(a, "123456")  # 9 + 6 = 15 digits
    assert not applies(a, "1234567")  # 9 + 7 > 15, though shorter than the username
    assert not applies(account(prefix="1234567890123"), "123")  # over 15 digits in all
    assert complete(None, "60", DOMAIN, lookup(f"31208005160@{DOMAIN}")) is None
    assert complete(account(prefix=""), "60", DOMAIN, lookup(f"60@{DOMAIN}")) is None


def test_non_numeric_username_is_bounded_by_e164_only():
    a = account(username="alice", prefix="3120800")
    assert applies(a, "5160") and not applies(a, "123456789")  # 7 + 9 > 15
    assert complete(a, "5160", DOMAIN, lookup(f"31208005160@{DOMAIN}")) == QuickDial("31208005160", DOMAIN)


def test_prefix_whitespace_is_ignored():
    a = account(prefix=" 312080051 ")
    assert complete(a, "60", DOMAIN, lookup(f"31208005160@{DOMAIN}")) == QuickDial("31208005160", DOMAIN)


def test_no_lookup_when_not_applicable():
    exists = lookup()
    assert complete(account(), "+3120", DOMAIN, exists) is None and exists.asked == []
