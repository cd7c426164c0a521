"""The published WSDL (wsdl/ngnpro.wsdl and the served one) matches the served methods."""

from __future__ import annotations

import http.client
from pathlib import Path

import pytest
from lxml import etree

from tests.ngnpro.harness import zeep_auth, zeep_port

ROOT = Path(__file__).resolve().parents[2]
WSDL_FILE = ROOT / "wsdl" / "ngnpro.wsdl"
W = "{http://schemas.xmlsoap.org/wsdl/}"
S = "{http://schemas.xmlsoap.org/wsdl/soap/}"
REGENERATE = "regenerate it with: .venv/bin/python -m ngnpro.soap.wsdl"

#: Every method of API.md section 3, by port.
API_METHODS = {
    "Sip": """addAccount updateAccount deleteAccount getAccount getAccounts addAlias updateAlias deleteAlias
        getAlias getAliases addDomain updateDomain deleteDomain getDomains addTrustedPeer updateTrustedPeer
        deleteTrustedPeer getTrustedPeers addCarrier updateCarrier deleteCarrier getCarriers addGateway
        updateGateway deleteGateway getGateways addGatewayRule updateGatewayRule deleteGatewayRule
        getGatewayRules addRoutes updateRoutes deleteRoutes getRoutes addToGroup removeFromGroup getGroups
        addBalance addBalanceFromVoucher getPrepaidStatus getCreditHistory addPhonebookEntry
        updatePhonebookEntry deletePhonebookEntry getPhonebookEntries setRejectMembers getRejectMembers
        setAcceptRules getAcceptRules setBarringPrefixes getBarringPrefixes setCallDiversions
        getCallDiversions getCalls getCallStatistics getSipDeviceLocations getSipTrace getMediaTrace
        getMediaSummary getMediaSessions""",
    "Enum": "addRange updateRange deleteRange getRanges addNumber updateNumber deleteNumber getNumber getNumbers",
    "Dns": """addZone updateZone deleteZone getZone getZones addRecord updateRecord deleteRecord getRecord
        getRecords addFancyRecord updateFancyRecord deleteFancyRecord getFancyRecord getFancyRecords""",
    "Customer": "addAccount updateAccount deleteAccount getAccount getCustomers getResellers setProperties getProperties",
    "Voicemail": "addAccount updateAccount deleteAccount getAccount setAnnouncement",
    "Rating": "setEntityProfiles deleteEntityProfiles getEntityProfiles",
    "Network": "getStatus getStatistics",
}


def _ns(port: str) -> str:
    return f"urn:AGProjects:NGNPro:{port}"


def wsdl_operations(root: etree._Element) -> set[tuple[str, str]]:
    """(binding body namespace, operation) pairs, checking each is rpc/encoded."""
    ops = set()
    for binding in root.iter(W + "binding"):
        assert binding.find(S + "binding").get("style") == "rpc"
        for op in binding.findall(W + "operation"):
            body = op.find(f"{W}input/{S}body")
            assert body.get("use") == "encoded"
            assert body.get("encodingStyle") == "http://schemas.xmlsoap.org/soap/encoding/"
            assert op.find(f"{W}output/{S}body").get("use") == "encoded"
            ops.add((body.get("namespace"), op.get("name")))
    return ops


def served_methods() -> set[tuple[str, str]]:
    from ngnpro.ports import SERVICES
    from ngnpro.soap.application import Dispatcher, Runtime

    return Dispatcher(SERVICES, Runtime(config=None, sessionmaker=None)).methods()


def test_wsdl_file_operations_are_the_served_methods() -> None:
    assert WSDL_FILE.exists(), REGENERATE
    ops = wsdl_operations(etree.parse(str(WSDL_FILE)).getroot())
    served = served_methods()
    assert ops - served == set(), f"WSDL has operations the server does not serve; {REGENERATE}"
    assert served - ops == set(), f"server methods missing from wsdl/ngnpro.wsdl; {REGENERATE}"


def test_every_api_method_is_served() -> None:
    served = served_methods()
    expected = {(_ns(port), m) for port, names in API_METHODS.items() for m in names.split()}
    presence = "urn:AGProjects:SoapSIMPLEProxy:Presence"
    expected |= {(presence, m) for m in ("setPresenceInformation", "getPresenceInformation",
                                         "deletePresenceInformation", "getWatchers", "getPolicy", "setPolicy")}
    assert expected - served == set()


def test_wsdl_file_loads_in_zeep_without_network() -> None:
    from zeep import Client

    client = Client(str(WSDL_FILE))
    ports = {name for svc in client.wsdl.services.values() for name in svc.ports}
    assert {"SipPort", "CustomerPort", "EnumPort", "DnsPort"} <= ports


def _get(server, path: str) -> tuple[int, bytes, dict]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


@pytest.mark.parametrize("path", ["/ngnpro/wsdl", "/wsdl", "/ngnpro/?wsdl", "/?wsdl"])
def test_served_wsdl(ngnpro_server, path: str) -> None:
    status, body, headers = _get(ngnpro_server, path)
    assert status == 200
    assert headers["content-type"].startswith("text/xml")
    assert int(headers["content-length"]) == len(body)
    root = etree.fromstring(body)
    assert wsdl_operations(root) == served_methods()
    locations = {a.get("location") for a in root.iter(S + "address")}
    assert locations == {f"http://127.0.0.1:{ngnpro_server.port}/ngnpro/"}


def test_per_port_wsdl_has_one_port(ngnpro_server) -> None:
    status, body, _ = _get(ngnpro_server, "/ngnpro/wsdl/CustomerPort")
    assert status == 200
    ops = wsdl_operations(etree.fromstring(body))
    assert {ns for ns, _ in ops} == {_ns("Customer")}
    assert len(ops) == 8
    assert _get(ngnpro_server, "/ngnpro/wsdl/NoSuchPort")[0] == 404


def test_not_implemented_methods_fault_9999_through_zeep(ngnpro_server) -> None:
    from zeep.exceptions import Fault

    from tests.ngnpro.harness import zeep_client, zeep_fault

    client = zeep_client(ngnpro_server.url)
    auth = zeep_auth(ngnpro_server.admin["username"], ngnpro_server.admin["password"])
    with pytest.raises(Fault) as exc:
        zeep_port(client, "Network").getStatus(_soapheaders=auth)
    assert zeep_fault(exc.value) == 9999
    with pytest.raises(Fault) as exc:
        zeep_port(client, "Voicemail").getAccount(sipId={"username": "a", "domain": "example.com"},
                                                  _soapheaders=auth)
    assert zeep_fault(exc.value) == 9999
