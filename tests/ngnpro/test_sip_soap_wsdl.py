"""SipPort subscriber methods through the published WSDL: zeep and PHP's SoapClient in WSDL
mode, plus the not-found faults of the update/get methods the other files leave out."""

from __future__ import annotations

import pytest
from lxml import etree

from tests.ngnpro.harness import (
    ADMIN,
    SoapFaultError,
    php_call,
    php_wsdl_call,
    zeep_auth,
    zeep_fault,
    zeep_port,
)

ALICE = {"username": "alice", "domain": "example.com"}


def item(text: str | None = None, **members: str) -> etree._Element:
    """An ``<item>``: zeep writes SOAP-ENC:Array members only from ready-made elements."""
    el = etree.Element("item")
    el.text = text
    for name, value in members.items():
        etree.SubElement(el, name).text = value
    return el


def patient_zeep_client(url: str):
    """``zeep_client`` with timeouts that survive a machine shared by many test runs."""
    from zeep import Client, Settings
    from zeep.transports import Transport

    return Client(url.rstrip("/") + "/wsdl", settings=Settings(strict=False, xml_huge_tree=False),
                  transport=Transport(timeout=60, operation_timeout=60))


def test_zeep_accounts_settings_and_prepaid(ngnpro_server):
    port = zeep_port(patient_zeep_client(ngnpro_server.url), "Sip")
    hdr = zeep_auth(ngnpro_server.admin["username"], ngnpro_server.admin["password"])
    port.addDomain(domain={"domain": "example.com"}, _soapheaders=hdr)
    added = port.addAccount(account={"id": ALICE, "password": "pw", "firstName": "Alice",
                                     "groups": [item("free-pstn")]}, _soapheaders=hdr)
    assert added.id.username == "alice" and added.email == "alice@example.com"
    got = port.getAccount(sipId=ALICE, _soapheaders=hdr)
    assert got.groups == ["free-pstn"] and got.firstName == "Alice" and got.timeout == 35
    listing = port.getAccounts(query={"filter": {"username": "al%"}, "range": {"start": 0, "count": 10}},
                               _soapheaders=hdr)
    assert listing.total == 1 and listing.accounts[0].id.domain == "example.com"
    port.setCallDiversions(sipId=ALICE, diversions={"FUNC": "sip:bob@example.com"}, _soapheaders=hdr)
    assert port.getCallDiversions(sipId=ALICE, _soapheaders=hdr).FUNC == "sip:bob@example.com"
    port.setBarringPrefixes(sipId=ALICE, prefixes=[item("+31900")], _soapheaders=hdr)
    assert port.getBarringPrefixes(sipId=ALICE, _soapheaders=hdr) == ["+31900"]
    res = port.addBalance(sipId=ALICE, value=4.25, description="zeep", _soapheaders=hdr)
    assert (res.old_balance, res.new_balance) == (0, 4.25)
    status = port.getPrepaidStatus(sipIds=[item(username="alice", domain="example.com")], _soapheaders=hdr)
    assert [s.balance for s in status] == [4.25]
    with pytest.raises(Exception) as info:
        port.addAccount(account={"id": ALICE, "password": "pw"}, _soapheaders=hdr)
    assert zeep_fault(info.value) == 1011
    with pytest.raises(Exception) as info:
        port.getAccount(sipId={"username": "nobody", "domain": "example.com"}, _soapheaders=hdr)
    assert zeep_fault(info.value) == 1010


def test_php_wsdl_mode(ngnpro_server):
    url = ngnpro_server.url
    php_wsdl_call(url, "Sip", "addDomain", {"domain": {"domain": "example.com", "verify_cert": 0}})
    added = php_wsdl_call(url, "Sip", "addAccount", {"account": {"id": ALICE, "password": "pw",
                                                                 "groups": ["blocked"], "prepaid": 1}})
    assert added["email"] == "alice@example.com" and sorted(added["groups"]) == ["blocked", "prepaid"]
    got = php_wsdl_call(url, "Sip", "getAccount", {"sipId": ALICE})
    got["firstName"] = "Alice"
    php_wsdl_call(url, "Sip", "updateAccount", {"account": got})
    assert php_wsdl_call(url, "Sip", "getAccounts", {"query": {"filter": {"firstName": "Ali%"}}})["total"] == 1
    php_wsdl_call(url, "Sip", "setRejectMembers", {"sipId": ALICE, "members": ["sip:spam@example.net"]})
    assert php_wsdl_call(url, "Sip", "getRejectMembers", {"sipId": ALICE}) == ["sip:spam@example.net"]
    php_wsdl_call(url, "Sip", "addAlias", {"alias": {"id": {"username": "al", "domain": "example.com"},
                                                     "target": ALICE}})
    assert php_wsdl_call(url, "Sip", "getAliases", {"query": {}})["aliases"][0]["target"] == ALICE
    assert php_wsdl_call(url, "Sip", "getGroups", {"sipId": ALICE}) == ["blocked", "prepaid"]
    with pytest.raises(SoapFaultError) as info:
        php_wsdl_call(url, "Sip", "removeFromGroup", {"sipId": ALICE, "group": "anonymous"})
    assert info.value.code == 1031


@pytest.mark.parametrize(("method", "args", "code"), [
    ("updateDomain", {"domain": {"domain": "nowhere.example", "verify_cert": 1}}, 1002),
    ("updateAlias", {"alias": {"id": {"username": "ghost", "domain": "example.com"}, "target": ALICE}}, 1013),
    ("getGroups", {"sipId": {"username": "ghost", "domain": "example.com"}}, 1030),
    ("getPrepaidStatus", {"sipIds": [{"username": "ghost", "domain": "example.com"}]}, 1010),
    ("getPhonebookEntries", {"sipId": {"username": "ghost", "domain": "example.com"}, "match": {},
                             "range": {"start": 0, "count": 5}}, 1010),
    ("getAcceptRules", {"sipId": {"username": "ghost", "domain": "example.com"}}, 1010),
    ("setAcceptRules", {"sipId": {"username": "ghost", "domain": "example.com"}, "rules": {}}, 1010),
    ("getAccount", {"sipId": {"username": "bad user", "domain": "example.com"}}, 1040),
    ("getDomains", {"query": {"range": {"start": -1, "count": 5}}}, 1040),
])
def test_not_found_and_invalid_faults(ngnpro_server, method, args, code):
    php_call(ngnpro_server.url, "Sip", "addDomain", {"domain": {"domain": "example.com"}})
    with pytest.raises(SoapFaultError) as info:
        php_call(ngnpro_server.url, "Sip", method, args, auth=ADMIN)
    assert info.value.code == code and info.value.message


def test_php_wsdl_mode_settings_and_prepaid(ngnpro_server):
    url = ngnpro_server.url

    def w(method: str, args: dict):
        return php_wsdl_call(url, "Sip", method, args)

    w("addDomain", {"domain": {"domain": "example.com"}})
    w("addAccount", {"account": {"id": ALICE, "password": "pw"}})
    rules = {"persistent": [{"start": "08:00", "stop": "09:00", "groups": ["vip"], "days": 3}],
             "temporary": {"groups": ["nobody"], "duration": 10}}
    w("setAcceptRules", {"sipId": ALICE, "rules": rules})
    got = w("getAcceptRules", {"sipId": ALICE})
    assert got["rules"]["persistent"] == rules["persistent"]
    assert got["rules"]["temporary"]["groups"] == ["nobody"] and got["nonEmptyGroups"] == []
    w("addPhonebookEntry", {"sipId": ALICE, "entry": {"uri": "sip:b@example.org", "name": "B", "group": "vip"}})
    assert w("getPhonebookEntries", {"sipId": ALICE, "match": {"name": "%"}, "range": {"start": 0, "count": 5}}) == {
        "entries": [{"uri": "sip:b@example.org", "name": "B", "group": "vip"}]}
    assert w("getSipDeviceLocations", {"sipIds": [ALICE]}) == [{"id": ALICE, "locations": []}]
    assert w("addBalance", {"sipId": ALICE, "value": 3.5, "description": "d"}) == {"old_balance": 0, "new_balance": 3.5}
    [entry] = w("getCreditHistory", {"sipId": ALICE, "count": 10})["entries"]
    assert (entry["description"], entry["value"], entry["balance"]) == ("d", 3.5, 3.5)
    with pytest.raises(SoapFaultError) as info:
        w("addBalanceFromVoucher", {"sipId": ALICE, "card": {"id": 1, "number": "1"}})
    assert info.value.code == 2000
