"""The rpc/encoded framework end to end, driven by PHP's SoapClient, zeep and raw envelopes."""

from __future__ import annotations

import pytest

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

XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
ENC_ARRAY_TYPE = "{http://schemas.xmlsoap.org/soap/encoding/}arrayType"


def test_php_add_then_get_account(ngnpro_server) -> None:
    url = ngnpro_server.url
    added = php_call(url, "Customer", "addAccount", {"account": {
        "username": "acme", "password": "pw", "firstName": "Ann", "resellerActive": 1,
        "properties": [{"name": "pstn_access", "value": "1", "category": "sip", "permission": "admin"}],
    }})
    assert added["id"] > 0 and added["username"] == "acme"
    got = php_call(url, "Customer", "getAccount", {"id": added["id"]})
    assert got["firstName"] == "Ann"
    assert got["resellerActive"] is True
    assert got["properties"] == [{"name": "pstn_access", "value": "1", "category": "sip", "permission": "admin"}]


def test_php_decodes_one_item_list_as_list(ngnpro_server) -> None:
    url = ngnpro_server.url
    added = php_call(url, "Customer", "addAccount", {"account": {
        "username": "solo", "password": "pw",
        "properties": [{"name": "language", "value": "en"}]}})
    assert php_call_is_list(url, "Customer", "getProperties", {"customer": added["id"]})
    assert php_call_is_list(url, "Customer", "getCustomers", {"query": {"filter": {"username": "solo"}}},
                            member="accounts")
    assert php_call_is_list(url, "Customer", "getAccount", {"id": added["id"]}, member="properties")


def test_php_empty_list_is_a_countable_array(ngnpro_server) -> None:
    url = ngnpro_server.url
    res = php_call(url, "Customer", "getCustomers", {"query": {"filter": {"username": "nobody%"}}})
    assert res == {"total": 0, "accounts": []}


def test_fault_detail_carries_errorcode(ngnpro_server) -> None:
    with pytest.raises(SoapFaultError) as exc:
        php_call(ngnpro_server.url, "Customer", "getAccount", {"id": 4242})
    assert exc.value.code == 5002
    assert "4242" in exc.value.message


def test_wrong_credentials_fault_9001(ngnpro_server) -> None:
    with pytest.raises(SoapFaultError) as exc:
        php_call(ngnpro_server.url, "Customer", "getCustomers", {"query": {}},
                 auth={"username": "admin", "password": "wrong", "admin": True})
    assert exc.value.code == 9001


def test_raw_pear_envelope_and_response_shape(ngnpro_server) -> None:
    params = (
        '<account xsi:type="ns4:CustomerAccount">\r\n'
        '<username xsi:type="xsd:string">pear</username><password xsi:type="xsd:string">x</password>'
        '<resellerActive xsi:type="xsd:int">0</resellerActive>'
        '<properties xsi:type="SOAP-ENC:Array" SOAP-ENC:arrayType="Struct[1]" SOAP-ENC:offset="[0]">'
        '<item><name xsi:type="xsd:string">language</name><value xsi:type="xsd:string">nl</value></item>'
        "</properties></account>"
    )
    status, root = raw_call(ngnpro_server.url, envelope("Customer", "addAccount", params))
    assert status == 200, root
    ret = result_element(root)
    assert ret.get(XSI_TYPE).endswith(":CustomerAccount")
    props = ret.find("properties")
    assert props.get(XSI_TYPE) == "SOAP-ENC:Array"
    assert props.get(ENC_ARRAY_TYPE).endswith(":CustomerProperty[1]")
    assert props.get("{http://schemas.xmlsoap.org/soap/encoding/}offset") is None
    for leaf in ret.iter():
        if len(leaf) == 0 and leaf is not ret:
            assert leaf.get(XSI_TYPE), f"untyped scalar {leaf.tag}"
    # the same call again: duplicate username is fault 5001, HTTP 500
    status, root = raw_call(ngnpro_server.url, envelope("Customer", "addAccount", params))
    assert status == 500 and fault_code(root) == 5001


def test_zeep_client(ngnpro_server) -> None:
    client = zeep_client(ngnpro_server.url)
    svc = zeep_port(client, "Customer")
    added = svc.addAccount(account={"username": "zed", "password": "pw", "firstName": "Zed"},
                           _soapheaders=zeep_auth(**_creds(ngnpro_server)))
    assert added.id > 0
    got = svc.getAccount(id=added.id, _soapheaders=zeep_auth(**_creds(ngnpro_server)))
    assert got.username == "zed" and got.firstName == "Zed"


def test_php_wsdl_mode(ngnpro_server) -> None:
    url = ngnpro_server.url
    added = php_wsdl_call(url, "Customer", "addAccount", {"account": {"username": "wsdl1", "password": "pw"}})
    assert added["id"] > 0
    got = php_wsdl_call(url, "Customer", "getAccount", {"id": added["id"]})
    assert got["username"] == "wsdl1"


def _creds(server) -> dict:
    return {"username": server.admin["username"], "password": server.admin["password"]}


def test_lists_through_wsdl_clients(ngnpro_server) -> None:
    url = ngnpro_server.url
    acc = php_wsdl_call(url, "Customer", "addAccount", {"account": {
        "username": "listy", "password": "pw", "properties": [{"name": "a", "value": "1"}]}})
    res = php_wsdl_call(url, "Customer", "getCustomers", {"query": {"filter": {"username": "listy"}}})
    assert res["total"] == 1 and [a["username"] for a in res["accounts"]] == ["listy"]
    props = php_wsdl_call(url, "Customer", "getProperties", {"customer": acc["id"]})
    assert props == [{"name": "a", "value": "1", "category": "", "permission": ""}]
    svc = zeep_port(zeep_client(url), "Customer")
    auth = zeep_auth(**_creds(ngnpro_server))
    res = svc.getCustomers(query={"filter": {"username": "list%"}, "range": {"start": 0, "count": 10}},
                           _soapheaders=auth)
    assert res.total == 1
    props = svc.getProperties(customer=acc["id"], _soapheaders=auth)
    assert [p.name for p in props] == ["a"]


def test_iso_8859_1_request(ngnpro_server) -> None:
    body = envelope("Customer", "addAccount",
                    '<account><username xsi:type="xsd:string">latin</username>'
                    '<city xsi:type="xsd:string">M\u00fcnchen</city></account>')
    body = body.replace('encoding="UTF-8"', 'encoding="ISO-8859-1"').encode("iso-8859-1")
    status, root = raw_call(ngnpro_server.url, body)
    assert status == 200
    assert result_element(root).findtext("city") == "M\u00fcnchen"


def test_zeep_sends_lists(ngnpro_server) -> None:
    from tests.ngnpro.harness import zeep_list

    client = zeep_client(ngnpro_server.url)
    svc = zeep_port(client, "Customer")
    auth = zeep_auth(**_creds(ngnpro_server))
    acc = svc.addAccount(account={"username": "zlist", "properties": zeep_list(
        client, "CustomerProperty", [{"name": "a", "value": "1"}])}, _soapheaders=auth)
    svc.setProperties(customer=acc.id, properties=zeep_list(
        client, "CustomerProperty", [{"name": "b", "value": "2"}, {"name": "c", "value": "3"}]), _soapheaders=auth)
    props = svc.getProperties(customer=acc.id, _soapheaders=auth)
    assert [(p.name, p.value) for p in props] == [("a", "1"), ("b", "2"), ("c", "3")]


def test_multiref_parameters_through_the_server(ngnpro_server) -> None:
    """SOAP 1.1 5.2.1: a parameter may be a reference to an independent body entry."""
    added = php_call(ngnpro_server.url, "Customer", "addAccount", {"account": {"username": "mref"}})
    body = envelope("Customer", "getAccount", '<id href="#v1"/>').replace(
        "\r\n</SOAP-ENV:Body>", f'<value id="v1" xsi:type="xsd:int">{added["id"]}</value>\r\n</SOAP-ENV:Body>')
    status, root = raw_call(ngnpro_server.url, body)
    assert status == 200 and result_element(root).findtext("username") == "mref"


def test_positional_params_and_numbers_as_strings(ngnpro_server) -> None:
    added = php_call(ngnpro_server.url, "Customer", "addAccount", {"account": {"username": "pos"}})
    got = php_call(ngnpro_server.url, "Customer", "getAccount", f"[new SoapVar('{added['id']}', XSD_STRING)]")
    assert got["username"] == "pos"  # PHP named it <param0> and typed it xsd:string
