"""EnumPort end to end: PHP's SoapClient (non-WSDL rpc/encoded and WSDL mode), zeep and
PEAR-shaped raw envelopes against a running ``python -m ngnpro``."""

from __future__ import annotations

import pytest
from lxml import etree
from sqlalchemy import select

from ngnpro.models.changes import ChangeLogEntry
from ngnpro.models.customer import Customer
from ngnpro.models.e164 import EnumNumber as NumberRow
from tests.ngnpro.harness import (
    SoapFaultError,
    envelope,
    fault_code,
    php_call,
    php_call_is_list,
    php_wsdl_call,
    raw_call,
    result_element,
    zeep_auth,
    zeep_client,
    zeep_port,
)

ENC = "{http://schemas.xmlsoap.org/soap/encoding/}"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"


def enum(server, method, args=None, auth=None):
    return php_call(server.url, "Enum", method, args, **({"auth": auth} if auth else {}))


def fault(server, method, args=None, auth=None) -> int:
    with pytest.raises(SoapFaultError) as info:
        enum(server, method, args, auth)
    return info.value.code


def add_logins(server) -> None:
    with server.sessionmaker()() as s:
        s.add_all([
            Customer(id=10, username="res10", password="pw10", reseller_active=True),
            Customer(id=11, username="cust11", password="pw11", reseller=10),
            Customer(id=20, username="res20", password="pw20", reseller_active=True),
        ])
        s.commit()


def login(name: str, pw: str) -> dict:
    return {"username": name, "password": pw, "admin": False}


RANGE = {"id": {"prefix": "3120", "tld": "e164.arpa"}, "ttl": 3600, "info": "Amsterdam", "minDigits": 11,
         "maxDigits": 11, "size": 10000, "customer": 0, "reseller": 0, "nameservers": ["ns1.example.com"]}


def number(n: str, *maps: tuple[str, str], **extra) -> dict:
    return {"number": {"id": {"number": n, "tld": "e164.arpa"}, "owner": 0, "info": extra.pop("info", ""),
                       "mappings": [{"id": 0, "type": t, "mapto": m, "ttl": 3600, "priority": 10} for t, m in maps],
                       **extra}}


def test_php_ranges(ngnpro_server):
    srv = ngnpro_server
    assert enum(srv, "addRange", {"range": RANGE}) in (None, "")
    assert fault(srv, "addRange", {"range": RANGE}) == 3001
    got = enum(srv, "getRanges", {"query": {"filter": {"prefix": "31%"}, "orderBy": {"attribute": "prefix", "direction": "ASC"},
                                           "range": {"start": 0, "count": 20}}})
    assert got["total"] == 1
    r = got["ranges"][0]
    assert (r["id"], r["minDigits"], r["nameservers"], r["used"]) == (
        {"prefix": "3120", "tld": "e164.arpa"}, 11, ["ns1.example.com"], 0)
    assert php_call_is_list(srv.url, "Enum", "getRanges", {"query": {}}, member="ranges")
    assert php_call_is_list(srv.url, "Enum", "getRanges", {"query": {}}, member="ranges[0]->nameservers")
    r["info"] = "Amsterdam centre"  # round trip with read-only members (serial, used, changeDate)
    enum(srv, "updateRange", {"range": r})
    again = enum(srv, "getRanges", {"query": {}})["ranges"][0]
    assert again["info"] == "Amsterdam centre" and again["serial"] > r["serial"]
    assert fault(srv, "updateRange", {"range": {**RANGE, "id": {"prefix": "3199", "tld": "e164.arpa"}}}) == 3004
    assert fault(srv, "addRange", {"range": {**RANGE, "id": {"prefix": "31x", "tld": "e164.arpa"}}}) == 1040
    enum(srv, "deleteRange", {"range": {"prefix": "3120", "tld": "e164.arpa"}})
    assert enum(srv, "getRanges", {"query": {}}) == {"total": 0, "ranges": []}
    assert fault(srv, "deleteRange", {"range": {"prefix": "3120", "tld": "e164.arpa"}}) == 3004


def test_php_numbers_the_ui_flow(ngnpro_server):
    srv = ngnpro_server
    enum(srv, "addRange", {"range": RANGE})
    eid = {"enumId": {"number": "31201234567", "tld": "e164.arpa"}}
    # the UI: getNumber, fault 3002 -> addNumber
    assert fault(srv, "getNumber", eid) == 3002
    enum(srv, "addNumber", number("31201234567", ("sip", "sip:alice@example.com"), info="Alice"))
    assert fault(srv, "addNumber", number("31201234567")) == 3003
    assert fault(srv, "addNumber", number("4420123456")) == 3005
    assert fault(srv, "addNumber", number("3120123")) == 1040
    assert fault(srv, "addNumber", number("31201234568", ("sip", "no uri here"))) == 1040
    got = enum(srv, "getNumber", eid)
    assert got["id"] == {"number": "31201234567", "tld": "e164.arpa"} and got["info"] == "Alice"
    assert [(m["type"], m["mapto"]) for m in got["mappings"]] == [("sip", "sip:alice@example.com")]
    assert php_call_is_list(srv.url, "Enum", "getNumber", eid, member="mappings")
    # updateNumber with the received object: mappings replaced (kept one by id, one new)
    got["mappings"][0]["mapto"] = "sip:alice@example.org"
    got["mappings"].append({"id": 0, "type": "mailto", "mapto": "mailto:alice@example.org", "ttl": 60, "priority": 20})
    enum(srv, "updateNumber", {"number": got})
    again = enum(srv, "getNumber", eid)
    assert [(m["type"], m["mapto"]) for m in again["mappings"]] == [
        ("sip", "sip:alice@example.org"), ("mailto", "mailto:alice@example.org")]
    assert again["mappings"][0]["id"] == got["mappings"][0]["id"]
    # the SIP settings page: mapto "user@domain" without sip:, type sip
    found = enum(srv, "getNumbers", {"query": {"filter": {"mapto": "alice@example.org", "type": "sip"},
                                               "range": {"start": 0, "count": 1}}})
    assert found["total"] == 1 and found["numbers"][0]["id"]["number"] == "31201234567"
    assert enum(srv, "getNumbers", {"query": {"filter": {"mapto": "bob@example.org"}}}) == {"total": 0, "numbers": []}
    assert fault(srv, "updateNumber", number("31209999999")) == 3002
    enum(srv, "deleteNumber", eid)
    assert fault(srv, "deleteNumber", eid) == 3002
    with srv.sessionmaker()() as s:
        changes = s.execute(select(ChangeLogEntry.topic, ChangeLogEntry.key)).all()
    assert ("enum_number", "31201234567@e164.arpa") in changes and ("enum_range", "3120@e164.arpa") in changes


def test_php_wsdl_mode(ngnpro_server):
    srv = ngnpro_server
    php_wsdl_call(srv.url, "Enum", "addRange", {"range": RANGE})
    php_wsdl_call(srv.url, "Enum", "addNumber", number("31201234567", ("sip", "sip:a@example.com")))
    got = php_wsdl_call(srv.url, "Enum", "getNumbers", {"query": {"filter": {"number": "3120%"}}})
    assert got["total"] == 1 and got["numbers"][0]["mappings"][0]["mapto"] == "sip:a@example.com"


def test_zeep(ngnpro_server):
    port = zeep_port(zeep_client(ngnpro_server.url), "Enum")
    # zeep writes SOAP-ENC:Array members only from ready-made <item> elements
    item = etree.Element("item")
    etree.SubElement(item, "type").text = "sip"
    etree.SubElement(item, "mapto").text = "sip:b@example.de"
    hdr = zeep_auth(ngnpro_server.admin["username"], ngnpro_server.admin["password"])
    port.addRange(range={"id": {"prefix": "4930", "tld": "e164.arpa"}, "ttl": 600}, _soapheaders=hdr)
    port.addNumber(number={"id": {"number": "4930123", "tld": "e164.arpa"},
                           "mappings": [item]}, _soapheaders=hdr)
    got = port.getNumber(enumId={"number": "4930123", "tld": "e164.arpa"}, _soapheaders=hdr)
    assert got.id.number == "4930123"
    assert [m.mapto for m in got.mappings] == ["sip:b@example.de"]
    ranges = port.getRanges(query={"filter": {"tld": "e164.arpa"}}, _soapheaders=hdr)
    assert ranges.total == 1


def test_raw_pear_envelopes(ngnpro_server):
    srv = ngnpro_server
    enum(srv, "addRange", {"range": {"id": {"prefix": "3120", "tld": "e164.arpa"}}})
    params = (
        '<number xsi:type="ns4:EnumNumber">\r\n'
        '<id><number xsi:type="xsd:string">3120555</number><tld xsi:type="xsd:string">e164.arpa</tld></id>\r\n'
        '<owner xsi:type="xsd:string">7</owner><info/>\r\n'
        '<mappings xsi:type="SOAP-ENC:Array" SOAP-ENC:arrayType="Struct[2]" SOAP-ENC:offset="[0]">'
        '<item><id xsi:type="xsd:int">0</id><type xsi:type="xsd:string">sip</type>'
        '<mapto xsi:type="xsd:string">sip:c@example.com</mapto><ttl xsi:type="xsd:string">300</ttl>'
        '<priority xsi:type="xsd:int">5</priority></item>'
        '<item><type xsi:type="xsd:string">web:http</type><mapto xsi:type="xsd:string">http://example.com/&#039;x</mapto></item>'
        "</mappings><changeDate xsi:type=\"xsd:string\">2020-01-01 00:00:00</changeDate></number>"
    )
    status, root = raw_call(srv.url, envelope("Enum", "addNumber", params))
    assert status == 200 and result_element(root) is None
    status, root = raw_call(srv.url, envelope("Enum", "getNumbers", '<query xsi:type="ns4:EnumNumberQuery"><filter>'
                                                                    '<owner xsi:type="xsd:int">7</owner></filter></query>'))
    ret = result_element(root)
    numbers = ret.find("numbers")
    assert numbers.get(ENC + "arrayType").endswith("[1]") and numbers.get(ENC + "offset") is None
    assert numbers.get(XSI_TYPE).endswith(":Array")
    maps = numbers[0].find("mappings")
    assert [m.findtext("mapto") for m in maps] == ["sip:c@example.com", "http://example.com/'x"]
    assert maps[0].findtext("ttl") == "300"
    status, root = raw_call(srv.url, envelope("Enum", "getNumber", '<enumId xsi:type="ns4:EnumId"><number xsi:type="xsd:int">999</number>'
                                                                   '<tld xsi:type="xsd:string">e164.arpa</tld></enumId>'))
    assert status == 500 and fault_code(root) == 3002


def test_scoping_between_resellers(ngnpro_server):
    srv = ngnpro_server
    add_logins(srv)
    r10, r20, c11 = login("res10", "pw10"), login("res20", "pw20"), login("cust11", "pw11")
    enum(srv, "addRange", {"range": {"id": {"prefix": "3120", "tld": "e164.arpa"}}}, auth=r10)
    enum(srv, "addRange", {"range": {"id": {"prefix": "4420", "tld": "e164.arpa"}}}, auth=r20)
    enum(srv, "addNumber", number("3120111", ("sip", "sip:x@ten.example")), auth=r10)
    enum(srv, "addNumber", number("3120222", ("sip", "sip:y@ten.example")), auth=c11)
    # reseller 20 sees nothing of reseller 10 and cannot touch it
    assert enum(srv, "getNumbers", {"query": {}}, auth=r20) == {"total": 0, "numbers": []}
    assert [r["id"]["prefix"] for r in enum(srv, "getRanges", {"query": {}}, auth=r20)["ranges"]] == ["4420"]
    assert fault(srv, "getNumber", {"enumId": {"number": "3120111", "tld": "e164.arpa"}}, auth=r20) == 9002
    assert fault(srv, "deleteNumber", {"enumId": {"number": "3120111", "tld": "e164.arpa"}}, auth=r20) == 9002
    assert fault(srv, "addNumber", number("3120333"), auth=r20) == 9002
    assert fault(srv, "deleteRange", {"range": {"prefix": "3120", "tld": "e164.arpa"}}, auth=r20) == 9002
    # the admin impersonating reseller 20 gets the same view
    imp = {**srv.admin, "impersonate": 20}
    assert enum(srv, "getNumbers", {"query": {}}, auth=imp)["total"] == 0
    # customer 11 sees its own number only; reseller 10 sees both
    assert [n["id"]["number"] for n in enum(srv, "getNumbers", {"query": {}}, auth=c11)["numbers"]] == ["3120222"]
    assert enum(srv, "getNumbers", {"query": {}}, auth=r10)["total"] == 2
    assert fault(srv, "getRanges", {"query": {}}, auth=login("res10", "wrong")) == 9001
    with srv.sessionmaker()() as s:
        assert s.execute(select(NumberRow.number).order_by(NumberRow.number)).scalars().all() == ["3120111", "3120222"]
