"""SipPort subscriber logic against a real database (no SOAP): domains, accounts with both
password forms and ``<autoincrement>``, aliases, groups, scoping and change-log entries."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from ngnpro import sip_accounts as sa
from ngnpro import sip_aliases as sal
from ngnpro import sip_domains as sd
from ngnpro.models import sip as m
from ngnpro.models.changes import ChangeLogEntry
from ngnpro.sip_types import (
    AclEntry,
    AliasFilter,
    AliasQuery,
    SipAccount,
    SipAccountProperty,
    SipAlias,
    SipDomain,
    SipDomainFilter,
    SipDomainQuery,
    SipFilter,
    SipId,
    SipQuery,
)
from ngnpro.soap.types import OrderBy, Range
from tests.ngnpro.logic import ADMIN, call, code_of, count, customer, reseller


def sid(user: str, domain: str = "example.com") -> SipId:
    return SipId(username=user, domain=domain)


def changes(factory) -> list[tuple[str, str]]:
    with factory() as s:
        return [(c.topic, c.key) for c in s.execute(select(ChangeLogEntry).order_by(ChangeLogEntry.id)).scalars()]


@pytest.fixture
def domains(db):
    call(db, sd.add_domain, ADMIN, SipDomain(domain="Example.COM"))
    call(db, sd.add_domain, reseller(10), SipDomain(domain="r10.example"))
    call(db, sd.add_domain, reseller(20), SipDomain(domain="r20.example"))
    return db


def test_domains_add_get_update_delete(db):
    call(db, sd.add_domain, ADMIN, SipDomain(domain="example.com", verify_cert=1))
    assert code_of(db, sd.add_domain, ADMIN, SipDomain(domain="EXAMPLE.com.")) == 1001
    assert code_of(db, sd.add_domain, ADMIN, SipDomain(domain="bad_domain!")) == 1040
    assert code_of(db, sd.add_domain, ADMIN, SipDomain(domain="")) == 1040
    assert code_of(db, sd.add_domain, ADMIN, SipDomain(domain="x.example", certificate="junk")) == 1040
    call(db, sd.add_domain, reseller(10), SipDomain(domain="r10.example"))
    result = call(db, sd.get_domains, ADMIN, SipDomainQuery(orderBy=OrderBy(attribute="domain", direction="DESC")))
    assert result.total == 2 and [d.domain for d in result.domains] == ["r10.example", "example.com"]
    assert result.domains[1].verify_cert == 1 and result.domains[0].reseller == 10
    # the reseller sees its own domain only
    mine = call(db, sd.get_domains, reseller(10), SipDomainQuery(filter=SipDomainFilter(domain="%")))
    assert [d.domain for d in mine.domains] == ["r10.example"] and mine.total == 1
    call(db, sd.update_domain, ADMIN, SipDomain(domain="example.com", match_ip_address="10.0.0.1, 10.1.0.0/16"))
    assert call(db, sd.get_domains, ADMIN, None).domains[0].match_ip_address == "10.0.0.1 10.1.0.0/16"
    assert code_of(db, sd.update_domain, ADMIN, SipDomain(domain="example.com", match_ip_address="10.0.0.300")) == 1040
    assert code_of(db, sd.update_domain, ADMIN, SipDomain(domain="nowhere.example")) == 1002
    assert code_of(db, sd.update_domain, reseller(20), SipDomain(domain="r10.example", verify_cert=1)) == 9002
    assert code_of(db, sd.delete_domain, reseller(20), "r10.example") == 9002
    assert code_of(db, sd.delete_domain, ADMIN, "nowhere.example") == 1002
    call(db, sa.add_account, ADMIN, SipAccount(id=sid("alice"), password="pw"))
    call(db, sal.add_alias, ADMIN, SipAlias(id=sid("al"), target=sid("alice")))
    call(db, sd.delete_domain, ADMIN, "example.com")
    assert count(db, m.SipAccount) == 0 and count(db, m.SipAlias) == 0
    assert [d.domain for d in call(db, sd.get_domains, ADMIN, None).domains] == ["r10.example"]
    log = changes(db)
    assert ("sip_domain", "example.com") in log and ("sip_account", "alice@example.com") in log


def test_add_account_clear_password_hashes_and_defaults(domains):
    acc = call(domains, sa.add_account, ADMIN, SipAccount(id=sid("Alice"), password="s3cr'et", firstName="Alice"))
    assert acc.id.username == "alice" and acc.id.domain == "example.com"
    assert acc.email == "alice@example.com" and acc.timeout == 35
    with domains() as s:
        row = s.execute(select(m.SipAccount)).scalar_one()
        assert row.password == "s3cr'et"
        assert row.ha1 == hashlib.md5(b"alice:example.com:s3cr'et").hexdigest()
        assert row.ha1b == hashlib.md5(b"alice@example.com:example.com:s3cr'et").hexdigest()
        assert row.ha1_sha256 == hashlib.sha256(b"alice:example.com:s3cr'et").hexdigest()
    assert code_of(domains, sa.add_account, ADMIN, SipAccount(id=sid("alice"), password="x")) == 1011
    assert code_of(domains, sa.add_account, ADMIN, SipAccount(id=sid("bob", "nowhere.example"))) == 1002
    assert code_of(domains, sa.add_account, ADMIN, SipAccount(id=sid("bad user"))) == 1040
    assert code_of(domains, sa.add_account, ADMIN, SipAccount(id=sid("bob"), email="not-an-email")) == 1040
    assert code_of(domains, sa.add_account, ADMIN, SipAccount(id=sid("bob"), rpid="31-20")) == 1040
    assert code_of(domains, sa.add_account, ADMIN, SipAccount(id=sid("bob"), acl=[AclEntry(ip="1.2.3.999")])) == 1040
    assert code_of(domains, sa.add_account, ADMIN, SipAccount(id=sid("bob"), timeout=-1)) == 1040
    assert count(domains, m.SipAccount) == 1
    assert changes(domains)[-1] == ("sip_account", "alice@example.com")


def test_add_account_ha1_pair_and_no_clear_text(domains):
    ha1 = hashlib.md5(b"bob:example.com:pw").hexdigest()
    ha1b = hashlib.md5(b"bob@example.com:example.com:pw").hexdigest()
    acc = call(domains, sa.add_account, ADMIN, SipAccount(id=sid("bob"), password=f"{ha1}:{ha1b}".upper()))
    assert acc.password == f"{ha1}:{ha1b}" and acc.ha1 == ha1
    with domains() as s:
        row = s.execute(select(m.SipAccount)).scalar_one()
        assert (row.password, row.ha1, row.ha1b, row.ha1_sha256) == ("", ha1, ha1b, "")
    # store_clear_text_passwords off: hashes only, the pair comes back as the password
    acc = call(domains, sa.add_account, ADMIN, SipAccount(id=sid("carol"), password="pw"), store_clear=False)
    ha1c = hashlib.md5(b"carol:example.com:pw").hexdigest()
    assert acc.password.startswith(ha1c + ":")
    with domains() as s:
        row = s.execute(select(m.SipAccount).where(m.SipAccount.username == "carol")).scalar_one()
        assert row.password == "" and row.ha1_sha256 == hashlib.sha256(b"carol:example.com:pw").hexdigest()


def test_autoincrement_usernames(domains):
    first = call(domains, sa.add_account, ADMIN, SipAccount(id=sid("<autoincrement>"), password="a"))
    second = call(domains, sa.add_account, ADMIN, SipAccount(id=sid("<AUTOINCREMENT>"), password="b"))
    assert (first.id.username, second.id.username) == ("1000", "1001")
    call(domains, sa.add_account, ADMIN, SipAccount(id=sid("31999"), password="c"))
    call(domains, sa.add_account, ADMIN, SipAccount(id=sid("zed"), password="c"))
    third = call(domains, sa.add_account, ADMIN, SipAccount(id=sid("<autoincrement>"), password="d"))
    assert third.id.username == "32000" and third.email == "32000@example.com"
    other = call(domains, sa.add_account, ADMIN, SipAccount(id=sid("<autoincrement>", "r10.example")))
    assert other.id.username == "1000"


def test_update_account_round_trip(domains):
    call(domains, sa.add_account, ADMIN, SipAccount(
        id=sid("alice"), password="pw", groups=["free-pstn", "", "Free-PSTN"], prepaid=1,
        acl=[AclEntry(ip="10.0.0.0/8"), AclEntry(ip="192.0.2.1", mask=32, tag="office")],
        properties=[SipAccountProperty(name="language", value="en")],
    ))
    acc = call(domains, sa.get_account, ADMIN, sid("alice"))
    assert acc.groups == ["free-pstn", "prepaid"] and acc.prepaid == 1
    assert [(a.ip, a.mask, a.tag) for a in acc.acl] == [("10.0.0.0", 8, ""), ("192.0.2.1", 32, "office")]
    before = acc.password
    # round trip: read-only members garbage, password empty -> unchanged
    acc.password, acc.ha1, acc.changeDate, acc.createDate = "", "ffff", "junk", "junk"
    acc.firstName = "O'Brien; DROP TABLE sip_accounts;--"
    acc.properties.append(SipAccountProperty(name="timezone", value="Europe/Amsterdam"))
    acc.properties[0].value = "nl"
    acc.prepaid = 0
    call(domains, sa.update_account, ADMIN, acc)
    again = call(domains, sa.get_account, ADMIN, sid("alice"))
    assert again.password == before and again.firstName == "O'Brien; DROP TABLE sip_accounts;--"
    assert again.groups == ["free-pstn"] and again.prepaid == 0
    assert [(p.name, p.value) for p in again.properties] == [("language", "nl"), ("timezone", "Europe/Amsterdam")]
    call(domains, sa.update_account, ADMIN, SipAccount(id=sid("alice"), password="new"))
    with domains() as s:
        row = s.execute(select(m.SipAccount)).scalar_one()
        assert row.ha1 == hashlib.md5(b"alice:example.com:new").hexdigest()
    # a fault changes nothing
    assert code_of(domains, sa.update_account, ADMIN, SipAccount(
        id=sid("alice"), firstName="changed", acl=[AclEntry(ip="nonsense")])) == 1040
    assert call(domains, sa.get_account, ADMIN, sid("alice")).firstName.startswith("O'Brien")
    assert code_of(domains, sa.update_account, ADMIN, SipAccount(id=sid("nobody"))) == 1010


def test_delete_and_get_account(domains):
    call(domains, sa.add_account, ADMIN, SipAccount(id=sid("alice"), password="pw", groups=["blocked"]))
    call(domains, sa.delete_account, ADMIN, sid("alice"))
    assert code_of(domains, sa.get_account, ADMIN, sid("alice")) == 1010
    assert code_of(domains, sa.delete_account, ADMIN, sid("alice")) == 1010
    assert count(domains, m.SipAccountGroup) == 0


def test_get_accounts_filters_order_range(domains):
    for user in ("alice", "bob", "carol", "a_b"):
        call(domains, sa.add_account, ADMIN, SipAccount(id=sid(user), firstName=user.title(), password="x"))
    call(domains, sa.add_to_group, ADMIN, sid("bob"), "blocked")
    call(domains, sa.add_to_group, ADMIN, sid("carol"), "blocked")
    call(domains, sa.add_to_group, ADMIN, sid("carol"), "free-pstn")
    q = SipQuery(filter=SipFilter(username="%"), orderBy=OrderBy(attribute="username", direction="ASC"),
                 range=Range(start=1, count=2))
    res = call(domains, sa.get_accounts, ADMIN, q)
    assert res.total == 4 and [a.id.username for a in res.accounts] == ["alice", "bob"]
    res = call(domains, sa.get_accounts, ADMIN, SipQuery(filter=SipFilter(groups=["blocked"])))
    assert sorted(a.id.username for a in res.accounts) == ["bob", "carol"]
    res = call(domains, sa.get_accounts, ADMIN, SipQuery(filter=SipFilter(groups=["blocked", "free-pstn"])))
    assert [a.id.username for a in res.accounts] == ["carol"]
    res = call(domains, sa.get_accounts, ADMIN, SipQuery(filter=SipFilter(groups=[""], firstName="B%")))
    assert [a.id.username for a in res.accounts] == ["bob"]
    res = call(domains, sa.get_accounts, ADMIN, SipQuery(orderBy=OrderBy(attribute="stale", direction="DESC")))
    assert res.total == 4


def test_reseller_scoping(domains):
    call(domains, sa.add_account, reseller(10), SipAccount(id=sid("alice", "r10.example"), password="pw"))
    call(domains, sa.add_account, reseller(20), SipAccount(id=sid("bob", "r20.example"), password="pw"))
    # owner defaults from the caller, and from the domain for the unscoped admin
    assert call(domains, sa.get_account, ADMIN, sid("alice", "r10.example")).reseller == 10
    admin_made = call(domains, sa.add_account, ADMIN, SipAccount(id=sid("carol", "r10.example")))
    assert (admin_made.customer, admin_made.reseller) == (10, 10)
    r20 = reseller(20)
    assert code_of(domains, sa.get_account, r20, sid("alice", "r10.example")) == 9002
    assert code_of(domains, sa.update_account, r20, SipAccount(id=sid("alice", "r10.example"), firstName="x")) == 9002
    assert code_of(domains, sa.delete_account, r20, sid("alice", "r10.example")) == 9002
    assert code_of(domains, sa.add_account, r20, SipAccount(id=sid("eve", "r10.example"))) == 9002
    assert code_of(domains, sa.add_to_group, r20, sid("alice", "r10.example"), "blocked") == 9002
    assert code_of(domains, sa.update_account, reseller(10), SipAccount(id=sid("alice", "r10.example"), reseller=20)) == 9002
    assert code_of(domains, sa.update_account, reseller(10), SipAccount(id=sid("alice", "r10.example"), customer=20)) == 9002
    listing = call(domains, sa.get_accounts, r20, SipQuery())
    assert listing.total == 1 and listing.accounts[0].id.username == "bob"
    # a reseller hands an account to its sub-customer, who then sees it
    call(domains, sa.update_account, reseller(10, (11,)), SipAccount(id=sid("alice", "r10.example"), customer=11))
    assert call(domains, sa.get_account, customer(11, 10), sid("alice", "r10.example")).customer == 11
    assert code_of(domains, sa.get_account, customer(11, 10), sid("carol", "r10.example")) == 9002
    assert call(domains, sa.get_account, ADMIN, sid("alice", "r10.example")).firstName is not None


def test_aliases(domains):
    call(domains, sa.add_account, ADMIN, SipAccount(id=sid("alice"), password="pw"))
    call(domains, sal.add_alias, ADMIN, SipAlias(id=sid("Sales"), target=sid("alice"), owner=7))
    assert code_of(domains, sal.add_alias, ADMIN, SipAlias(id=sid("sales"), target=sid("bob"))) == 1012
    assert code_of(domains, sal.add_alias, ADMIN, SipAlias(id=sid("alice"), target=sid("bob"))) == 1011
    assert code_of(domains, sa.add_account, ADMIN, SipAccount(id=sid("sales"))) == 1012
    assert code_of(domains, sal.add_alias, ADMIN, SipAlias(id=sid("x"), target=sid("x"))) == 1040
    assert code_of(domains, sal.add_alias, ADMIN, SipAlias(id=sid("x", "nowhere.example"), target=sid("a"))) == 1002
    assert code_of(domains, sal.add_alias, ADMIN, SipAlias(id=sid("x"))) == 1040
    alias = call(domains, sal.get_alias, ADMIN, sid("sales"))
    assert (alias.target.username, alias.target.domain, alias.owner) == ("alice", "example.com", 7)
    call(domains, sal.update_alias, ADMIN, SipAlias(id=sid("sales"), target=sid("bob", "192.0.2.7")))
    assert call(domains, sal.get_alias, ADMIN, sid("sales")).target.domain == "192.0.2.7"
    call(domains, sal.add_alias, reseller(10), SipAlias(id=sid("help", "r10.example"), target=sid("x", "r10.example")))
    res = call(domains, sal.get_aliases, ADMIN, AliasQuery(filter=AliasFilter(targetUsername="b%")))
    assert [a.id.username for a in res.aliases] == ["sales"] and res.total == 1
    assert call(domains, sal.get_aliases, reseller(10), None).total == 1
    assert code_of(domains, sal.delete_alias, reseller(20), sid("help", "r10.example")) == 9002
    call(domains, sal.delete_alias, ADMIN, sid("sales"))
    assert code_of(domains, sal.get_alias, ADMIN, sid("sales")) == 1013
    assert code_of(domains, sal.update_alias, ADMIN, SipAlias(id=sid("sales"), target=sid("a"))) == 1013
    assert ("sip_alias", "sales@example.com") in changes(domains)


def test_groups(domains):
    call(domains, sa.add_account, ADMIN, SipAccount(id=sid("alice"), password="pw"))
    call(domains, sa.add_to_group, ADMIN, sid("alice"), "Blocked")
    call(domains, sa.add_to_group, ADMIN, sid("alice"), "blocked")  # idempotent
    call(domains, sa.add_to_group, ADMIN, sid("alice"), "prepaid")
    assert call(domains, sa.get_groups, ADMIN, sid("alice")) == ["blocked", "prepaid"]
    assert call(domains, sa.get_account, ADMIN, sid("alice")).prepaid == 1
    call(domains, sa.remove_from_group, ADMIN, sid("alice"), "blocked")
    assert code_of(domains, sa.remove_from_group, ADMIN, sid("alice"), "blocked") == 1031
    assert code_of(domains, sa.add_to_group, ADMIN, sid("nobody"), "blocked") == 1030
    assert code_of(domains, sa.remove_from_group, ADMIN, sid("nobody"), "blocked") == 1030
    assert code_of(domains, sa.add_to_group, ADMIN, sid("alice"), "bad group") == 1040
    assert call(domains, sa.get_groups, ADMIN, sid("alice")) == ["prepaid"]


def test_duplicate_that_slips_past_the_lookup_is_still_exists(domains, monkeypatch):
    """A concurrent call may insert the same key between look-up and insert: the unique
    constraint then answers the API's "exists" code, not a server error."""
    call(domains, sa.add_account, ADMIN, SipAccount(id=sid("alice"), password="pw"))
    call(domains, sal.add_alias, ADMIN, SipAlias(id=sid("sales"), target=sid("alice")))
    monkeypatch.setattr(sa, "address_taken", lambda *a: None)
    monkeypatch.setattr(sal, "address_taken", lambda *a: None)
    assert code_of(domains, sa.add_account, ADMIN, SipAccount(id=sid("alice"), password="pw")) == 1011
    assert code_of(domains, sal.add_alias, ADMIN, SipAlias(id=sid("sales"), target=sid("bob"))) == 1012
    assert count(domains, m.SipAccount) == 1 and count(domains, m.SipAlias) == 1


def test_e164_usernames_and_domain_delete_cascade(domains):
    acc = call(domains, sa.add_account, ADMIN, SipAccount(
        id=sid("+31201234567"), password="pw", groups=["blocked"], acl=[AclEntry(ip="192.0.2.1")],
        properties=[SipAccountProperty(name="language", value="en")]))
    assert acc.id.username == "+31201234567"
    from ngnpro import sip_settings as ss
    from ngnpro.sip_types import CallDiversions

    call(domains, ss.set_call_diversions, ADMIN, sid("+31201234567"), CallDiversions(FUNC="sip:x@example.org"))
    call(domains, sd.delete_domain, ADMIN, "example.com")
    for model in (m.SipAccount, m.SipAccountGroup, m.SipAccountAcl, m.SipAccountProperty, m.CallDiversion):
        assert count(domains, model) == 0, model
