"""SipPort PSTN methods end to end: PHP's SoapClient (non-WSDL rpc/encoded and WSDL mode),
zeep and PEAR-shaped raw envelopes against a running ``python -m ngnpro``."""

from __future__ import annotations

import pytest
from lxml import etree
from sqlalchemy import func, select

from ngnpro.models.changes import ChangeLogEntry
from ngnpro.models.customer import Customer
from ngnpro.models.lcr import Route as RouteRow
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


def sip(server, method, args=None, auth=None):
    return php_call(server.url, "Sip", method, args, **({"auth": auth} if auth else {}))


def fault(server, method, args=None, auth=None) -> int:
    with pytest.raises(SoapFaultError) as info:
        sip(server, method, args, auth)
    return info.value.code


def changes(server, topic: str) -> int:
    with server.sessionmaker()() as s:
        return s.execute(select(func.count()).where(ChangeLogEntry.topic == topic)).scalar_one()


# the UI's add: msteams boolean, enumLookup/transit/blocked ints (API.md 4.1)
PEER = {"ip": "192.0.2.7", "description": "PBX Amsterdam", "tenant": "", "carrierName": "", "originator": "ams",
        "prefix": "0031", "strip": 1, "tags": "pbx", "billingId": "B-1", "authToken": "", "callLimit": 10,
        "blocked": 0, "msteams": False, "prepaid": 0, "enumLookup": 1, "transit": 0, "owner": 0,
        "customer": 0, "reseller": 0}


def test_php_trusted_peers(ngnpro_server):
    srv = ngnpro_server
    assert sip(srv, "addTrustedPeer", {"peer": PEER}) in (None, "")
    assert fault(srv, "addTrustedPeer", {"peer": PEER}) == 1020
    assert fault(srv, "addTrustedPeer", {"peer": {**PEER, "ip": "192.0.2.256"}}) == 1040
    got = sip(srv, "getTrustedPeers", {"query": {"filter": {"tags": "%pbx%"}, "orderBy": {"attribute": "ip", "direction": "ASC"},
                                                "range": {"start": 0, "count": 20}}})
    assert got["total"] == 1
    p = got["peers"][0]
    assert (p["ip"], p["prefix"], p["strip"], p["enumLookup"], p["transit"], p["callLimit"]) == (
        "192.0.2.7", "0031", 1, True, False, 10)
    assert php_call_is_list(srv.url, "Sip", "getTrustedPeers", {"query": {}}, member="peers")
    # the UI's update: a freshly built object with booleans
    sip(srv, "updateTrustedPeer", {"peer": {**PEER, "description": "PBX Utrecht", "blocked": True, "enumLookup": False,
                                            "transit": True}})
    p2 = sip(srv, "getTrustedPeers", {"query": {"filter": {"ip": "192.0.2.7"}}})["peers"][0]
    assert (p2["description"], p2["blocked"], p2["enumLookup"], p2["transit"]) == ("PBX Utrecht", True, False, True)
    assert fault(srv, "updateTrustedPeer", {"peer": {**PEER, "ip": "192.0.2.8"}}) == 1021
    sip(srv, "deleteTrustedPeer", {"ip": "192.0.2.7"})
    assert fault(srv, "deleteTrustedPeer", {"ip": "192.0.2.7"}) == 1021
    assert sip(srv, "getTrustedPeers", {"query": {}}) == {"total": 0, "peers": []}
    assert changes(srv, "trusted_peer") == 3


def test_php_lcr(ngnpro_server):
    srv = ngnpro_server
    sip(srv, "addCarrier", {"carrier": {"name": "Carrier A", "reseller": 0}})
    # the UI looks a carrier up with count = 1 and reads [0]
    carrier = sip(srv, "getCarriers", {"query": {"filter": {"name": "Carrier A"}, "range": {"start": 0, "count": 1}}})["carriers"][0]
    cid = carrier["id"]
    carrier["name"] = "Carrier A1"
    sip(srv, "updateCarrier", {"carrier": carrier})
    assert fault(srv, "updateCarrier", {"carrier": {**carrier, "id": cid + 100}}) == 1022
    assert fault(srv, "updateCarrier", {"carrier": {**carrier, "name": ""}}) == 1040
    assert sip(srv, "getCarriers", {"query": {}})["carriers"][0]["name"] == "Carrier A1"
    assert php_call_is_list(srv.url, "Sip", "getCarriers", {"query": {}}, member="carriers")
    sip(srv, "addGateway", {"gateway": {"name": "gw1", "carrier_id": cid, "transport": "udp", "ip": "192.0.2.50", "port": 5060}})
    assert fault(srv, "addGateway", {"gateway": {"name": "gw2", "carrier_id": cid + 100, "ip": "192.0.2.51"}}) == 1022
    gw = sip(srv, "getGateways", {"query": {"filter": {"carrier_id": cid}}})["gateways"][0]
    assert (gw["name"], gw["carrier"], gw["ip"], gw["port"]) == ("gw1", "Carrier A1", "192.0.2.50", 5060)
    gw["port"] = 5080
    sip(srv, "updateGateway", {"gateway": gw})
    sip(srv, "addGatewayRule", {"rule": {"gateway_id": gw["id"], "prefix": "0031", "strip": 2, "prepend": "+",
                                         "minLength": 10, "maxLength": 14}})
    rule = sip(srv, "getGatewayRules", {"query": {"filter": {"gateway_id": gw["id"]}}})["gateway_rules"][0]
    assert (rule["gateway"], rule["carrier"], rule["prefix"], rule["prepend"]) == ("gw1", "Carrier A1", "0031", "+")
    rule["strip"] = 4
    sip(srv, "updateGatewayRule", {"rule": rule})
    assert sip(srv, "getGatewayRules", {"query": {}})["gateway_rules"][0]["strip"] == 4
    assert fault(srv, "updateGatewayRule", {"rule": {**rule, "id": 9999}}) == 1022
    # routes: RouteArray of one element, answer is not a list
    assert sip(srv, "addRoutes", {"routes": [{"carrier_id": cid, "prefix": "0031", "originator": "", "priority": 5}]}) in (None, "")
    assert fault(srv, "addRoutes", {"routes": [{"carrier_id": cid, "prefix": "00x1"}]}) == 1040
    routes = sip(srv, "getRoutes", {"query": {"filter": {"prefix": "0031"}, "orderBy": {"attribute": "priority", "direction": "ASC"}}})
    assert routes["total"] == 1 and routes["routes"][0]["carrier"] == "Carrier A1"
    route = routes["routes"][0]
    route["priority"] = 1
    sip(srv, "updateRoutes", {"routes": [route]})
    assert sip(srv, "getRoutes", {"query": {}})["routes"][0]["priority"] == 1
    sip(srv, "deleteRoutes", {"routes": [{"id": route["id"]}]})
    assert fault(srv, "deleteRoutes", {"routes": [{"id": route["id"]}]}) == 1022
    sip(srv, "deleteGatewayRule", {"id": rule["id"]})
    sip(srv, "deleteGateway", {"id": gw["id"]})
    assert fault(srv, "deleteGateway", {"id": gw["id"]}) == 1022
    sip(srv, "deleteCarrier", {"id": cid})
    assert sip(srv, "getCarriers", {"query": {}}) == {"total": 0, "carriers": []}
    assert changes(srv, "lcr") == 12


def test_routes_all_or_nothing_raw(ngnpro_server):
    srv = ngnpro_server
    sip(srv, "addCarrier", {"carrier": {"name": "C"}})
    cid = sip(srv, "getCarriers", {"query": {}})["carriers"][0]["id"]
    items = (f'<item><carrier_id xsi:type="xsd:int">{cid}</carrier_id><prefix xsi:type="xsd:string">0044</prefix>'
             '<priority xsi:type="xsd:string">3</priority></item>'
             '<item><carrier_id xsi:type="xsd:string">999</carrier_id><prefix xsi:type="xsd:string">0049</prefix></item>')
    params = f'<routes xsi:type="SOAP-ENC:Array" SOAP-ENC:arrayType="Struct[2]" SOAP-ENC:offset="[0]">{items}</routes>'
    status, root = raw_call(srv.url, envelope("Sip", "addRoutes", params))
    assert status == 500 and fault_code(root) == 1022
    with srv.sessionmaker()() as s:
        assert s.execute(select(func.count()).select_from(RouteRow)).scalar_one() == 0  # nothing half-written
    status, root = raw_call(srv.url, envelope("Sip", "addRoutes", params.replace("999", str(cid))))
    assert status == 200 and result_element(root) is None
    status, root = raw_call(srv.url, envelope("Sip", "getRoutes", '<query xsi:type="ns4:RouteQuery"/>'))
    routes = result_element(root).find("routes")
    assert routes.get("{http://schemas.xmlsoap.org/soap/encoding/}arrayType").endswith("[2]")
    assert sorted(r.findtext("prefix") for r in routes) == ["0044", "0049"]


def test_wsdl_mode_and_zeep(ngnpro_server):
    srv = ngnpro_server
    php_wsdl_call(srv.url, "Sip", "addCarrier", {"carrier": {"name": "W"}})
    got = php_wsdl_call(srv.url, "Sip", "getCarriers", {"query": {"filter": {"name": "W"}}})
    assert got["total"] == 1
    cid = got["carriers"][0]["id"]
    port = zeep_port(zeep_client(srv.url), "Sip")
    hdr = zeep_auth(srv.admin["username"], srv.admin["password"])
    port.addTrustedPeer(peer={"ip": "2001:db8::7", "description": "v6 peer", "enumLookup": True}, _soapheaders=hdr)
    peers = port.getTrustedPeers(query={"filter": {"ip": "2001:db8::7"}}, _soapheaders=hdr)
    assert peers.total == 1 and peers.peers[0].description == "v6 peer"
    item = etree.Element("item")
    etree.SubElement(item, "carrier_id").text = str(cid)
    etree.SubElement(item, "prefix").text = "0032"
    port.addRoutes(routes=[item], _soapheaders=hdr)
    assert port.getRoutes(query={}, _soapheaders=hdr).routes[0].prefix == "0032"


def test_permissions_and_scoping(ngnpro_server):
    srv = ngnpro_server
    with srv.sessionmaker()() as s:
        s.add_all([Customer(id=10, username="res10", password="pw10", reseller_active=True),
                   Customer(id=11, username="cust11", password="pw11", reseller=10),
                   Customer(id=20, username="res20", password="pw20", reseller_active=True)])
        s.commit()
    r10 = {"username": "res10", "password": "pw10", "admin": False}
    r20 = {"username": "res20", "password": "pw20", "admin": False}
    c11 = {"username": "cust11", "password": "pw11", "admin": False}
    # plain customers manage no PSTN objects
    assert fault(srv, "addTrustedPeer", {"peer": PEER}, auth=c11) == 9002
    assert fault(srv, "getCarriers", {"query": {}}, auth=c11) == 9002
    assert fault(srv, "addRoutes", {"routes": [{"carrier_id": 1}]}, auth=c11) == 9002
    sip(srv, "addCarrier", {"carrier": {"name": "ten"}}, auth=r10)
    sip(srv, "addTrustedPeer", {"peer": PEER}, auth=r10)
    cid = sip(srv, "getCarriers", {"query": {}}, auth=r10)["carriers"][0]["id"]
    sip(srv, "addRoutes", {"routes": [{"carrier_id": cid, "prefix": "00"}]}, auth=r10)
    # reseller 20 neither sees nor changes reseller 10's objects
    assert sip(srv, "getCarriers", {"query": {}}, auth=r20) == {"total": 0, "carriers": []}
    assert sip(srv, "getTrustedPeers", {"query": {}}, auth=r20) == {"total": 0, "peers": []}
    assert sip(srv, "getRoutes", {"query": {}}, auth=r20) == {"total": 0, "routes": []}
    assert fault(srv, "deleteCarrier", {"id": cid}, auth=r20) == 9002
    assert fault(srv, "updateTrustedPeer", {"peer": {**PEER, "description": "taken"}}, auth=r20) == 9002
    assert fault(srv, "addRoutes", {"routes": [{"carrier_id": cid}]}, auth=r20) == 9002
    assert fault(srv, "addGateway", {"gateway": {"name": "g", "carrier_id": cid, "ip": "192.0.2.9"}}, auth=r20) == 9002
    # the admin impersonating reseller 10 sees its objects
    imp = {**srv.admin, "impersonate": 10}
    assert sip(srv, "getRoutes", {"query": {}}, auth=imp)["routes"][0]["reseller"] == 10
    assert sip(srv, "getTrustedPeers", {"query": {}})["peers"][0]["description"] == "PBX Amsterdam"
