"""SipPort settings and prepaid methods end to end: call diversions, accept rules (with the
DND quirks of API.md 7), reject members, barring, phonebook, device locations, balance,
vouchers, prepaid status and credit history -- through PHP's SoapClient and raw envelopes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select

from ngnpro.models import sip as m
from ngnpro.models.customer import Customer
from ngnpro.models.runtime import Location, contact_key
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

ALICE = {"username": "alice", "domain": "example.com"}
SIPID_XML = ('<sipId xsi:type="ns4:SipId"><username xsi:type="xsd:string">alice</username>'
             '<domain xsi:type="xsd:string">example.com</domain></sipId>')


def sip(url: str, method: str, args: dict | str | None = None, auth: dict | None = ADMIN):
    return php_call(url, "Sip", method, args, auth=auth)


def fault(url: str, method: str, args: dict | str | None = None, auth: dict | None = ADMIN) -> int:
    with pytest.raises(SoapFaultError) as info:
        sip(url, method, args, auth)
    return info.value.code


@pytest.fixture
def alice(ngnpro_server):
    """A server with example.com (owned by reseller 101) and alice@example.com."""
    with ngnpro_server.sessionmaker()() as s:
        s.add_all([Customer(id=101, username="reseller1", password="pw-1", reseller_active=True),
                   Customer(id=102, username="reseller2", password="pw-2", reseller_active=True)])
        s.commit()
    url = ngnpro_server.url
    sip(url, "addDomain", {"domain": {"domain": "example.com", "customer": 101, "reseller": 101}})
    sip(url, "addAccount", {"account": {"id": ALICE, "password": "pw"}})
    return ngnpro_server


def empty(value) -> bool:
    return value in (None, "")


def test_call_diversions(alice):
    url = alice.url
    sip(url, "setCallDiversions", {"sipId": ALICE, "diversions": {
        "FUNC": "", "FBUS": "sip:bob@example.com", "FNOA": "<voice-mailbox>", "FUNV": "voice-mailbox"}})
    got = sip(url, "getCallDiversions", {"sipId": ALICE})
    assert got["FBUS"] == "sip:bob@example.com" and got["FNOA"] == got["FUNV"] == "<voice-mailbox>"
    assert empty(got.get("FUNC")) and empty(got.get("FNOL"))
    assert fault(url, "setCallDiversions", {"sipId": ALICE, "diversions": {"FUNC": "no uri here"}}) == 1040
    assert sip(url, "getCallDiversions", {"sipId": ALICE})["FBUS"] == "sip:bob@example.com"
    # the "clear all" sentinel
    sip(url, "setCallDiversions", {"sipId": ALICE, "diversions": {"nocondition": "empty"}})
    assert all(empty(v) for v in sip(url, "getCallDiversions", {"sipId": ALICE}).values())
    # ... and the empty typed struct of the other code path, raw
    sip(url, "setCallDiversions", {"sipId": ALICE, "diversions": {"FUNC": "sip:x@example.org"}})
    status, root = raw_call(url, envelope("Sip", "setCallDiversions",
                                          SIPID_XML + '<diversions xsi:type="ns4:CallDiversions"/>'))
    assert status == 200
    assert all(empty(v) for v in sip(url, "getCallDiversions", {"sipId": ALICE}).values())
    assert fault(url, "getCallDiversions", {"sipId": ALICE},
                 auth={"username": "reseller2", "password": "pw-2", "admin": False}) == 9002


DND_TOGGLE = """<rules xsi:type="ns4:AcceptRules">
<persistent xsi:type="SOAP-ENC:Array" SOAP-ENC:arrayType="Struct[1]" SOAP-ENC:offset="[0]"><item>
<start xsi:type="xsd:string">09:00</start><stop xsi:type="xsd:string">17:00</stop>
<groups xsi:type="SOAP-ENC:Array" SOAP-ENC:arrayType="xsd:string[1]" SOAP-ENC:offset="[0]"><item xsi:type="xsd:string">everybody</item></groups>
</item></persistent>
<temporary><groups xsi:type="SOAP-ENC:Array" SOAP-ENC:arrayType="xsd:string[1]" SOAP-ENC:offset="[0]"><item xsi:type="xsd:string">nobody</item></groups>
<duration xsi:type="xsd:int">60</duration></temporary>
<groups xsi:type="SOAP-ENC:Array" SOAP-ENC:arrayType="xsd:anyType[0]"/>
</rules>"""


def test_accept_rules_and_the_dnd_toggle(alice):
    url = alice.url
    sip(url, "addPhonebookEntry", {"sipId": ALICE, "entry": {"uri": "sip:boss@example.com", "name": "Boss",
                                                              "group": "vip"}})
    sip(url, "setAcceptRules", {"sipId": ALICE, "rules": {
        "persistent": [{"start": "08:00", "stop": "18:00", "groups": ["vip"], "days": 31}],
        "temporary": {"groups": [], "duration": 0}}})
    got = sip(url, "getAcceptRules", {"sipId": ALICE})
    assert got["rules"]["persistent"] == [{"start": "08:00", "stop": "18:00", "groups": ["vip"], "days": 31}]
    assert got["nonEmptyGroups"] == ["vip"] and got["rules"]["temporary"]["groups"] == []
    assert php_call_is_list(url, "Sip", "getAcceptRules", {"sipId": ALICE}, member="nonEmptyGroups")
    # the AJAX toggle: persistent items without days plus an extra groups member
    status, _ = raw_call(url, envelope("Sip", "setAcceptRules", SIPID_XML + DND_TOGGLE))
    assert status == 200
    got = sip(url, "getAcceptRules", {"sipId": ALICE})
    assert [r["days"] for r in got["rules"]["persistent"]] == [31]
    assert got["rules"]["temporary"]["groups"] == ["nobody"] and 59 <= got["rules"]["temporary"]["duration"] <= 60
    bad = {"persistent": [{"start": "8am", "stop": "18:00", "groups": [], "days": 1}]}
    assert fault(url, "setAcceptRules", {"sipId": ALICE, "rules": bad}) == 1040
    assert len(sip(url, "getAcceptRules", {"sipId": ALICE})["rules"]["persistent"]) == 1


def test_reject_members_and_barring_prefixes(alice):
    url = alice.url
    sip(url, "setRejectMembers", {"sipId": ALICE, "members": ["sip:spam@example.net"]})
    assert sip(url, "getRejectMembers", {"sipId": ALICE}) == ["sip:spam@example.net"]
    assert php_call_is_list(url, "Sip", "getRejectMembers", {"sipId": ALICE})
    assert fault(url, "setRejectMembers", {"sipId": ALICE, "members": ["sip:a b@c"]}) == 1040
    sip(url, "setRejectMembers", {"sipId": ALICE, "members": []})
    assert sip(url, "getRejectMembers", {"sipId": ALICE}) == []
    sip(url, "setBarringPrefixes", {"sipId": ALICE, "prefixes": ["+31900", "+44"]})
    assert sip(url, "getBarringPrefixes", {"sipId": ALICE}) == ["+31900", "+44"]
    assert fault(url, "setBarringPrefixes", {"sipId": ALICE, "prefixes": ["+31'--"]}) == 1040
    assert sip(url, "getBarringPrefixes", {"sipId": ALICE}) == ["+31900", "+44"]
    sip(url, "setBarringPrefixes", {"sipId": ALICE, "prefixes": ["+1"]})
    assert php_call_is_list(url, "Sip", "getBarringPrefixes", {"sipId": ALICE})


def test_phonebook(alice):
    url = alice.url
    assert sip(url, "getPhonebookEntries", {"sipId": ALICE, "match": {"uri": "%", "name": "%"},
                                            "range": {"start": 0, "count": 20}}) == {"entries": []}
    for uri, name, group in (("sip:bob@example.com", "Bob O'Neil", "friends"), ("sip:carol@example.com", "Carol", "")):
        sip(url, "addPhonebookEntry", {"sipId": ALICE, "entry": {"uri": uri, "name": name, "group": group}})
    assert fault(url, "addPhonebookEntry", {"sipId": ALICE, "entry": {"uri": "sip:bob@example.com"}}) == 1040
    sip(url, "updatePhonebookEntry", {"sipId": ALICE, "entry": {"uri": "sip:carol@example.com", "name": "Caroline",
                                                                 "group": "family"}})
    got = sip(url, "getPhonebookEntries", {"sipId": ALICE, "match": {"name": "%o%"},
                                           "range": {"start": 0, "count": 1}})
    assert got == {"entries": [{"uri": "sip:bob@example.com", "name": "Bob O'Neil", "group": "friends"}]}
    assert php_call_is_list(url, "Sip", "getPhonebookEntries",
                            {"sipId": ALICE, "match": {"group": "family"}, "range": {"start": 0, "count": 5}},
                            member="entries")
    sip(url, "deletePhonebookEntry", {"sipId": ALICE, "uri": "sip:bob@example.com"})
    assert fault(url, "deletePhonebookEntry", {"sipId": ALICE, "uri": "sip:bob@example.com"}) == 2000
    assert fault(url, "updatePhonebookEntry", {"sipId": ALICE, "entry": {"uri": "sip:zz@example.com"}}) == 2000
    left = sip(url, "getPhonebookEntries", {"sipId": ALICE, "match": {}, "range": {"start": 0, "count": 20}})
    assert [e["name"] for e in left["entries"]] == ["Caroline"]


def test_sip_device_locations(alice):
    url = alice.url
    sip(url, "addAccount", {"account": {"id": {"username": "bob", "domain": "example.com"}, "password": "pw"}})
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with alice.sessionmaker()() as s:
        contact = "sip:alice@10.0.0.5:5062;transport=tcp"
        s.add(Location(username="alice", domain="example.com", contact=contact, contact_hash=contact_key(contact),
                       received="tcp:198.51.100.7:40000", user_agent="Phone/1.0",
                       expires=now + dt.timedelta(seconds=600)))
        s.commit()
    ids = ('<sipIds xsi:type="SOAP-ENC:Array" SOAP-ENC:arrayType="Struct[2]" SOAP-ENC:offset="[0]">'
           "<item><username xsi:type=\"xsd:string\">bob</username><domain xsi:type=\"xsd:string\">example.com"
           "</domain></item><item><username xsi:type=\"xsd:string\">alice</username>"
           "<domain xsi:type=\"xsd:string\">example.com</domain></item></sipIds>")
    status, root = raw_call(url, envelope("Sip", "getSipDeviceLocations", ids))
    assert status == 200
    items = list(result_element(root))
    assert [i.findtext("id/username") for i in items] == ["bob", "alice"]
    assert len(items[0].find("locations")) == 0
    res = sip(url, "getSipDeviceLocations", {"sipIds": [ALICE]})
    [loc] = res[0]["locations"]
    assert (loc["address"], loc["port"], loc["publicAddress"], loc["publicPort"], loc["transport"],
            loc["userAgent"]) == ("10.0.0.5", 5062, "198.51.100.7", 40000, "tcp", "Phone/1.0")
    assert 500 < loc["expires"] <= 600
    assert php_call_is_list(url, "Sip", "getSipDeviceLocations", {"sipIds": [ALICE]})
    assert fault(url, "getSipDeviceLocations", {"sipIds": [{"username": "x", "domain": "example.com"}]}) == 1010


def test_balance_vouchers_status_and_history(alice):
    url = alice.url
    with alice.sessionmaker()() as s:
        s.add(m.PrepaidCard(id=7, number="123456789", value=Decimal("20")))
        s.commit()
    res = sip(url, "addBalance", {"sipId": ALICE, "value": 10.5, "description": "CC transaction 99"})
    assert res == {"old_balance": 0.0, "new_balance": 10.5}
    res = sip(url, "addBalanceFromVoucher", {"sipId": ALICE, "card": {"id": 7, "number": "123456789"}})
    assert res == {"old_balance": 10.5, "new_balance": 30.5}
    assert fault(url, "addBalanceFromVoucher", {"sipId": ALICE, "card": {"id": 7, "number": "123456789"}}) == 2001
    assert fault(url, "addBalanceFromVoucher", {"sipId": ALICE, "card": {"id": 8, "number": "000"}}) == 2000
    assert fault(url, "addBalance", {"sipId": ALICE, "value": "lots", "description": ""}) in (1040, 9003)
    # the raw PEAR form: untyped float in exponent form, string description
    status, root = raw_call(url, envelope("Sip", "addBalance", SIPID_XML + '<value xsi:type="xsd:float">1.0E-1</value>'
                                          '<description xsi:type="xsd:string">tip</description>'))
    assert status == 200 and result_element(root).findtext("new_balance") in ("30.6", "30.599999999999998")
    status, root = raw_call(url, envelope("Sip", "getPrepaidStatus",
                                          '<sipIds xsi:type="SOAP-ENC:Array" SOAP-ENC:arrayType="Struct[1]" '
                                          'SOAP-ENC:offset="[0]"><item><username xsi:type="xsd:string">alice</username>'
                                          '<domain xsi:type="xsd:string">example.com</domain></item></sipIds>'))
    assert status == 200 and float(result_element(root)[0].findtext("balance")) == pytest.approx(30.6)
    status_php = sip(url, "getPrepaidStatus", {"sipIds": [ALICE]})
    assert isinstance(status_php, list) and status_php[0]["balance"] == pytest.approx(30.6)
    history = sip(url, "getCreditHistory", {"sipId": ALICE, "count": 200})["entries"]
    assert [e["description"] for e in history] == ["tip", "Prepaid card 123456789", "CC transaction 99"]
    assert history[0]["date"][:4].isdigit() and history[2]["value"] == 10.5
    assert php_call_is_list(url, "Sip", "getCreditHistory", {"sipId": ALICE, "count": 1}, member="entries")
    # another reseller's login sees nothing of it and cannot top it up
    r2 = {"username": "reseller2", "password": "pw-2", "admin": False}
    assert fault(url, "addBalance", {"sipId": ALICE, "value": 5.0, "description": "x"}, auth=r2) == 9002
    assert fault(url, "getCreditHistory", {"sipId": ALICE, "count": 5}, auth=r2) == 9002
    with alice.sessionmaker()() as s:
        row = s.execute(select(m.SipAccount).where(m.SipAccount.username == "alice")).scalar_one()
        assert row.balance == Decimal("30.6")
    status, root = raw_call(url, envelope("Sip", "getCreditHistory", SIPID_XML + "<count>1</count>",
                                          auth=dict(ADMIN, password="wrong")))
    assert status == 500 and fault_code(root) == 9001
