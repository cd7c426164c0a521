"""SipPort domains, accounts, aliases and groups end to end: a real ``python -m ngnpro``
driven by PHP's SoapClient (non-WSDL rpc/encoded), raw PEAR-shaped envelopes (API.md 1.7)
and zeep."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from ngnpro.models import sip as m
from ngnpro.models.changes import ChangeLogEntry
from ngnpro.models.customer import Customer
from tests.ngnpro.harness import (
    ADMIN,
    SoapFaultError,
    envelope,
    fault_code,
    php_call,
    php_call_is_list,
    raw_call,
    result_element,
)

XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
ENC = "{http://schemas.xmlsoap.org/soap/encoding/}"
ALICE = {"username": "alice", "domain": "example.com"}
R1 = {"username": "reseller1", "password": "pw-1", "admin": False}
R2 = {"username": "reseller2", "password": "pw-2", "admin": False}


def sip(url: str, method: str, args: dict | str | None = None, auth: dict | None = ADMIN):
    return php_call(url, "Sip", method, args, auth=auth)


def fault(url: str, method: str, args: dict | str | None = None, auth: dict | None = ADMIN) -> int:
    with pytest.raises(SoapFaultError) as info:
        sip(url, method, args, auth)
    return info.value.code


def rows(server, model, *where):
    with server.sessionmaker()() as s:
        return s.execute(select(model).where(*where)).scalars().all()


def add_resellers(server) -> None:
    with server.sessionmaker()() as s:
        s.add_all([
            Customer(id=101, username="reseller1", password="pw-1", reseller_active=True),
            Customer(id=102, username="reseller2", password="pw-2", reseller_active=True),
        ])
        s.commit()


def test_domain_and_account_lifecycle_through_php(ngnpro_server):
    url = ngnpro_server.url
    assert sip(url, "addDomain", {"domain": {"domain": "example.com", "customer": 0, "reseller": 0}}) is None
    assert fault(url, "addDomain", {"domain": {"domain": "example.com"}}) == 1001
    assert fault(url, "addDomain", {"domain": {"domain": "-bad-.example"}}) == 1040
    doms = sip(url, "getDomains", {"query": {"filter": {"domain": "%"}, "range": {"start": 0, "count": 20}}})
    assert doms["total"] == 1 and doms["domains"][0]["domain"] == "example.com"
    assert php_call_is_list(url, "Sip", "getDomains", {"query": {}}, member="domains")
    # the updateDomain round trip: everything getDomains returned goes back
    dom = doms["domains"][0]
    dom["verify_cert"] = 1
    sip(url, "updateDomain", {"domain": dom})
    assert sip(url, "getDomains", {"query": {}})["domains"][0]["verify_cert"] == 1

    added = sip(url, "addAccount", {"account": {
        "id": ALICE, "password": "secret", "firstName": "Alice", "lastName": "Liddell",
        "groups": ["free-pstn"], "prepaid": 0, "quota": 0, "owner": 0, "rpid": "+31201234567",
        "acl": [], "properties": [{"name": "language", "value": "en"}],
    }})
    assert added["id"] == ALICE and added["email"] == "alice@example.com"
    assert fault(url, "addAccount", {"account": {"id": ALICE, "password": "x"}}) == 1011
    [row] = rows(ngnpro_server, m.SipAccount)
    assert row.ha1 == hashlib.md5(b"alice:example.com:secret").hexdigest()
    assert row.ha1b == hashlib.md5(b"alice@example.com:example.com:secret").hexdigest()
    assert row.ha1_sha256 == hashlib.sha256(b"alice:example.com:secret").hexdigest()

    # updateAccount with the round-tripped object: read-only members ignored, empty password kept
    acc = sip(url, "getAccount", {"sipId": ALICE})
    assert acc["groups"] == ["free-pstn"] and acc["properties"] == [
        {"name": "language", "value": "en", "category": "", "permission": ""}]
    acc.update(password="", ha1="0" * 32, changeDate="garbage", answerTimeout=120, firstName="Al")
    acc["acl"] = [{"ip": "192.0.2.0", "mask": 24, "tag": "office"}]
    sip(url, "updateAccount", {"account": acc})
    again = sip(url, "getAccount", {"sipId": ALICE})
    assert again["firstName"] == "Al" and again["password"] == "secret" and again["ha1"] == row.ha1
    assert again["acl"] == [{"ip": "192.0.2.0", "mask": 24, "tag": "office"}]
    assert fault(url, "getAccount", {"sipId": {"username": "bob", "domain": "example.com"}}) == 1010
    assert fault(url, "updateAccount", {"account": {"id": {"username": "bob", "domain": "example.com"}}}) == 1010

    sip(url, "deleteAccount", {"sipId": ALICE})
    assert fault(url, "deleteAccount", {"sipId": ALICE}) == 1010
    sip(url, "deleteDomain", {"domain": "example.com"})
    assert fault(url, "deleteDomain", {"domain": "example.com"}) == 1002
    log = [(c.topic, c.key) for c in rows(ngnpro_server, ChangeLogEntry)]
    assert ("sip_domain", "example.com") in log and log.count(("sip_account", "alice@example.com")) >= 3


def test_autoincrement_and_ha1_pair_passwords(ngnpro_server):
    url = ngnpro_server.url
    sip(url, "addDomain", {"domain": {"domain": "example.com"}})
    first = sip(url, "addAccount", {"account": {"id": {"username": "<autoincrement>", "domain": "example.com"},
                                                "password": "pw"}})
    second = sip(url, "addAccount", {"account": {"id": {"username": "<autoincrement>", "domain": "example.com"},
                                                 "password": "pw"}})
    assert (first["id"]["username"], second["id"]["username"]) == ("1000", "1001")
    assert second["email"] == "1001@example.com"
    ha1 = hashlib.md5(b"bob:example.com:pw").hexdigest()
    ha1b = hashlib.md5(b"bob@example.com:example.com:pw").hexdigest()
    sip(url, "addAccount", {"account": {"id": {"username": "bob", "domain": "example.com"},
                                        "password": f"{ha1}:{ha1b}"}})
    [bob] = rows(ngnpro_server, m.SipAccount, m.SipAccount.username == "bob")
    assert (bob.password, bob.ha1, bob.ha1b, bob.ha1_sha256) == ("", ha1, ha1b, "")
    got = sip(url, "getAccount", {"sipId": {"username": "bob", "domain": "example.com"}})
    assert got["ha1"] == ha1 and got["password"] == f"{ha1}:{ha1b}"


def test_get_accounts_query_and_one_item_lists(ngnpro_server):
    url = ngnpro_server.url
    sip(url, "addDomain", {"domain": {"domain": "example.com"}})
    for user in ("alice", "bob", "carol"):
        sip(url, "addAccount", {"account": {"id": {"username": user, "domain": "example.com"}, "password": "x",
                                            "firstName": user.title()}})
    sip(url, "addToGroup", {"sipId": {"username": "bob", "domain": "example.com"}, "group": "blocked"})
    res = sip(url, "getAccounts", {"query": {"filter": {"username": "%", "groups": [""]},
                                             "orderBy": {"attribute": "username", "direction": "DESC"},
                                             "range": {"start": 1, "count": 1}}})
    assert res["total"] == 3 and [a["id"]["username"] for a in res["accounts"]] == ["bob"]
    res = sip(url, "getAccounts", {"query": {"filter": {"groups": ["blocked"]}}})
    assert res["total"] == 1 and res["accounts"][0]["groups"] == ["blocked"]
    q = {"query": {"filter": {"groups": ["blocked"]}}}
    assert php_call_is_list(url, "Sip", "getAccounts", q, member="accounts")
    assert php_call_is_list(url, "Sip", "getAccount", {"sipId": {"username": "bob", "domain": "example.com"}},
                            member="groups")
    empty = sip(url, "getAccounts", {"query": {"filter": {"username": "nobody%"}}})
    assert empty == {"total": 0, "accounts": []}


def test_aliases_through_php(ngnpro_server):
    url = ngnpro_server.url
    sip(url, "addDomain", {"domain": {"domain": "example.com"}})
    sip(url, "addAccount", {"account": {"id": ALICE, "password": "pw"}})
    sales = {"username": "sales", "domain": "example.com"}
    sip(url, "addAlias", {"alias": {"id": sales, "target": ALICE, "owner": 3}})
    assert fault(url, "addAlias", {"alias": {"id": sales, "target": ALICE}}) == 1012
    assert fault(url, "addAlias", {"alias": {"id": {"username": "x", "domain": "nowhere.example"},
                                             "target": ALICE}}) == 1002
    got = sip(url, "getAlias", {"id": sales})
    assert got["target"] == ALICE and got["owner"] == 3
    got["target"] = {"username": "bob", "domain": "example.net"}
    sip(url, "updateAlias", {"alias": got})
    res = sip(url, "getAliases", {"query": {"filter": {"aliasUsername": "sal%", "targetDomain": ""},
                                            "orderBy": {"attribute": "aliasUsername", "direction": "ASC"}}})
    assert res["total"] == 1 and res["aliases"][0]["target"]["domain"] == "example.net"
    assert php_call_is_list(url, "Sip", "getAliases", {"query": {}}, member="aliases")
    sip(url, "deleteAlias", {"id": sales})
    assert fault(url, "getAlias", {"id": sales}) == 1013
    assert fault(url, "deleteAlias", {"id": sales}) == 1013
    assert ("sip_alias", "sales@example.com") in [(c.topic, c.key) for c in rows(ngnpro_server, ChangeLogEntry)]


def test_groups_through_php(ngnpro_server):
    url = ngnpro_server.url
    sip(url, "addDomain", {"domain": {"domain": "example.com"}})
    sip(url, "addAccount", {"account": {"id": ALICE, "password": "pw"}})
    sip(url, "addToGroup", {"sipId": ALICE, "group": "anonymous"})
    assert sip(url, "getGroups", {"sipId": ALICE}) == ["anonymous"]
    assert php_call_is_list(url, "Sip", "getGroups", {"sipId": ALICE})
    sip(url, "removeFromGroup", {"sipId": ALICE, "group": "anonymous"})
    assert sip(url, "getGroups", {"sipId": ALICE}) == []
    assert fault(url, "removeFromGroup", {"sipId": ALICE, "group": "anonymous"}) == 1031
    nobody = {"username": "nobody", "domain": "example.com"}
    assert fault(url, "addToGroup", {"sipId": nobody, "group": "quota"}) == 1030
    assert fault(url, "removeFromGroup", {"sipId": nobody, "group": "quota"}) == 1030


def test_reseller_cannot_touch_another_resellers_account(ngnpro_server):
    url = ngnpro_server.url
    add_resellers(ngnpro_server)
    imp1 = dict(ADMIN, impersonate=101)
    sip(url, "addDomain", {"domain": {"domain": "r1.example"}}, auth=imp1)
    sip(url, "addDomain", {"domain": {"domain": "r2.example"}}, auth=R2)
    r1_alice = {"username": "alice", "domain": "r1.example"}
    added = sip(url, "addAccount", {"account": {"id": r1_alice, "password": "pw", "firstName": "A"}}, auth=R1)
    assert (added["customer"], added["reseller"]) == (101, 101)
    sip(url, "addAccount", {"account": {"id": {"username": "bob", "domain": "r2.example"}, "password": "pw"}},
        auth=R2)
    # reseller 2 can neither read nor change reseller 1's account, domain or groups
    assert fault(url, "getAccount", {"sipId": r1_alice}, auth=R2) == 9002
    assert fault(url, "updateAccount", {"account": {"id": r1_alice, "firstName": "pwned"}}, auth=R2) == 9002
    assert fault(url, "deleteAccount", {"sipId": r1_alice}, auth=R2) == 9002
    assert fault(url, "addToGroup", {"sipId": r1_alice, "group": "blocked"}, auth=R2) == 9002
    assert fault(url, "addAccount", {"account": {"id": {"username": "eve", "domain": "r1.example"}}}, auth=R2) == 9002
    assert fault(url, "deleteDomain", {"domain": "r1.example"}, auth=R2) == 9002
    assert fault(url, "getAccount", {"sipId": r1_alice}, auth=dict(ADMIN, impersonate=102)) == 9002
    listing = sip(url, "getAccounts", {"query": {"filter": {"username": "%"}}}, auth=R2)
    assert listing["total"] == 1 and listing["accounts"][0]["id"]["username"] == "bob"
    assert [d["domain"] for d in sip(url, "getDomains", {"query": {}}, auth=R2)["domains"]] == ["r2.example"]
    assert sip(url, "getAccount", {"sipId": r1_alice}, auth=R1)["firstName"] == "A"
    assert sip(url, "getAccounts", {"query": {}})["total"] == 2  # the unscoped admin sees both
    # a wrong password is refused before anything runs
    assert fault(url, "getAccount", {"sipId": r1_alice}, auth=dict(R1, password="nope")) == 9001


def test_a_fault_changes_nothing(ngnpro_server):
    url = ngnpro_server.url
    sip(url, "addDomain", {"domain": {"domain": "example.com"}})
    bad = {"id": ALICE, "password": "pw", "groups": ["ok"], "acl": [{"ip": "300.1.2.3", "mask": 32}]}
    assert fault(url, "addAccount", {"account": bad}) == 1040
    assert rows(ngnpro_server, m.SipAccount) == [] and rows(ngnpro_server, m.SipAccountGroup) == []
    sip(url, "addAccount", {"account": {"id": ALICE, "password": "pw", "firstName": "Alice"}})
    before = len(rows(ngnpro_server, ChangeLogEntry))
    upd = {"id": ALICE, "firstName": "Changed", "password": "new", "email": "not an email"}
    assert fault(url, "updateAccount", {"account": upd}) == 1040
    [row] = rows(ngnpro_server, m.SipAccount)
    assert row.first_name == "Alice" and row.password == "pw"
    assert len(rows(ngnpro_server, ChangeLogEntry)) == before


def test_sql_metacharacters_are_stored_literally(ngnpro_server):
    url = ngnpro_server.url
    sip(url, "addDomain", {"domain": {"domain": "example.com"}})
    nasty = "Robert'); DROP TABLE sip_accounts;-- \"%_\\ <b>&amp;"
    sip(url, "addAccount", {"account": {"id": ALICE, "password": "p'w\";--", "firstName": nasty, "lastName": "%",
                                        "properties": [{"name": "x'; --", "value": nasty}]}})
    got = sip(url, "getAccount", {"sipId": ALICE})
    assert got["firstName"] == nasty and got["lastName"] == "%" and got["password"] == "p'w\";--"
    assert got["properties"][0] == {"name": "x'; --", "value": nasty, "category": "", "permission": ""}
    [row] = rows(ngnpro_server, m.SipAccount)
    assert row.ha1 == hashlib.md5(b"alice:example.com:p'w\";--").hexdigest()
    # the metacharacters in a filter are a LIKE pattern, never SQL
    res = sip(url, "getAccounts", {"query": {"filter": {"firstName": "Robert'); DROP%"}}})
    assert res["total"] == 1
    assert sip(url, "getAccounts", {"query": {"filter": {"username": "' OR '1'='1"}}})["total"] == 0


PEAR_ADD_ACCOUNT = """
<account xsi:type="ns4:SipAccount">
<id><username xsi:type="xsd:string">alice</username><domain xsi:type="xsd:string">example.com</domain></id>
<firstName xsi:type="xsd:string">Alice</firstName><lastName xsi:type="xsd:string">O&#039;Hara</lastName>
<password xsi:type="xsd:string">secret</password><rpid/><owner xsi:type="xsd:int">0</owner>
<groups xsi:type="SOAP-ENC:Array" SOAP-ENC:arrayType="xsd:string[1]" SOAP-ENC:offset="[0]"><item xsi:type="xsd:string">prepaid</item></groups>
<prepaid xsi:type="xsd:int">1</prepaid><quota xsi:type="xsd:int">0</quota>
<acl xsi:type="SOAP-ENC:Array" SOAP-ENC:arrayType="xsd:anyType[0]"/>
<properties xsi:type="SOAP-ENC:Array" SOAP-ENC:arrayType="Struct[1]" SOAP-ENC:offset="[0]"><item><name xsi:type="xsd:string">language</name><value xsi:type="xsd:string">en</value></item></properties>
</account>"""


def test_raw_pear_envelopes(ngnpro_server):
    url = ngnpro_server.url
    add_resellers(ngnpro_server)
    imp = dict(ADMIN, impersonate=101)
    status, root = raw_call(url, envelope("Sip", "addDomain",
                                          '<domain xsi:type="ns4:SipDomain"><domain xsi:type="xsd:string">example.com'
                                          '</domain><customer xsi:type="xsd:int">0</customer></domain>', auth=imp))
    assert status == 200 and result_element(root) is None
    status, root = raw_call(url, envelope("Sip", "addAccount", PEAR_ADD_ACCOUNT, auth=imp))
    assert status == 200
    ret = result_element(root)
    assert ret.findtext("id/username") == "alice" and ret.findtext("email") == "alice@example.com"
    [row] = rows(ngnpro_server, m.SipAccount)
    assert (row.last_name, row.prepaid, row.reseller) == ("O'Hara", True, 101)
    # the response flags every list as a SOAP array and never writes an offset
    status, root = raw_call(url, envelope("Sip", "getAccount",
                                          '<sipId xsi:type="ns4:SipId"><username xsi:type="xsd:string">alice'
                                          '</username><domain xsi:type="xsd:string">example.com</domain></sipId>'))
    ret = result_element(root)
    groups = ret.find("groups")
    assert groups.get(XSI_TYPE) == "SOAP-ENC:Array" and groups.get(ENC + "arrayType") == "xsd:string[1]"
    assert ret.find("acl").get(ENC + "arrayType").endswith("[0]") and b"offset" not in _bytes(root)
    assert ret.find("prepaid").get(XSI_TYPE) == "xsd:int"
    # a fault: HTTP 500 with detail/exception/errorcode
    status, root = raw_call(url, envelope("Sip", "addAccount", PEAR_ADD_ACCOUNT, auth=imp))
    assert status == 500 and fault_code(root) == 1011
    # the untyped scalar parameters of removeFromGroup
    status, root = raw_call(url, envelope("Sip", "removeFromGroup",
                                          "<sipId><username>alice</username><domain>example.com</domain></sipId>"
                                          "<group>prepaid</group>"))
    assert status == 200
    assert rows(ngnpro_server, m.SipAccount)[0].prepaid is False


def _bytes(root) -> bytes:
    from lxml import etree

    return etree.tostring(root)


def test_readers_see_each_write_in_the_change_feed(ngnpro_server):
    """What sipproxy and enumdns poll: every successful write names what changed, a fault
    names nothing."""
    from ngnpro.models.changes import ChangeFeed

    url = ngnpro_server.url
    sip(url, "addDomain", {"domain": {"domain": "example.com"}})
    feed = ChangeFeed(ngnpro_server.sessionmaker())
    sip(url, "addAccount", {"account": {"id": ALICE, "password": "pw"}})
    sip(url, "setCallDiversions", {"sipId": ALICE, "diversions": {"FUNC": "sip:bob@example.org"}})
    sip(url, "addAlias", {"alias": {"id": {"username": "al", "domain": "example.com"}, "target": ALICE}})
    sip(url, "addBalance", {"sipId": ALICE, "value": 1.0, "description": "x"})
    seen = [(c.topic, c.key) for c in feed.poll()]
    assert seen == [("sip_account", "alice@example.com"), ("sip_account", "alice@example.com"),
                    ("sip_alias", "al@example.com"), ("sip_account", "alice@example.com")]
    assert fault(url, "addToGroup", {"sipId": ALICE, "group": "not valid!"}) == 1040
    assert fault(url, "updateDomain", {"domain": {"domain": "example.com", "match_ip_address": "x"}}) == 1040
    assert feed.poll() == []
    sip(url, "updateDomain", {"domain": {"domain": "example.com", "verify_cert": 1}})
    assert [(c.topic, c.key) for c in feed.poll()] == [("sip_domain", "example.com")]
