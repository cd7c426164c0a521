"""DnsPort end to end: PHP's SoapClient (non-WSDL rpc/encoded and WSDL mode), zeep and
PEAR-shaped raw envelopes against a running ``python -m ngnpro``."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ngnpro.models.changes import ChangeLogEntry
from ngnpro.models.customer import Customer
from ngnpro.models.zones import DnsRecord as RecordRow
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


def dns_(server, method, args=None, auth=None):
    return php_call(server.url, "Dns", method, args, **({"auth": auth} if auth else {}))


def fault(server, method, args=None, auth=None) -> int:
    with pytest.raises(SoapFaultError) as info:
        dns_(server, method, args, auth)
    return info.value.code


ZONE = {"name": "example.com", "ttl": 3600, "info": "main", "customer": 0, "reseller": 0,
        "nameservers": ["ns1.example.com", "ns2.example.net"]}


def record(name, rtype, value, priority=0, zone="example.com", **extra):
    return {"record": {"name": name, "zone": zone, "type": rtype, "value": value, "owner": 0, "ttl": 3600,
                       "priority": priority, **extra}}


def stored(server):
    with server.sessionmaker()() as s:
        return sorted(s.execute(select(RecordRow.name, RecordRow.type, RecordRow.value, RecordRow.priority)).all())


def test_php_zones_import_flow(ngnpro_server):
    srv = ngnpro_server
    dns_(srv, "addZone", {"zone": ZONE})
    # import: addZone faults 7001 -> updateZone with the same object
    assert fault(srv, "addZone", {"zone": {**ZONE, "info": "imported"}}) == 7001
    dns_(srv, "updateZone", {"zone": {**ZONE, "info": "imported"}})
    z = dns_(srv, "getZone", {"zone": "example.com"})
    assert (z["name"], z["info"], z["nameservers"]) == ("example.com", "imported", ["ns1.example.com", "ns2.example.net"])
    serial = z["serial"]
    z["email"], z["retry"] = "hostmaster@example.com", 900  # round trip of the received object
    dns_(srv, "updateZone", {"zone": z})
    z2 = dns_(srv, "getZone", {"zone": "example.com"})
    assert (z2["email"], z2["retry"]) == ("hostmaster@example.com", 900) and z2["serial"] > serial
    zones = dns_(srv, "getZones", {"query": {"filter": {"name": "example%"}, "orderBy": {"attribute": "name", "direction": "ASC"},
                                            "range": {"start": 0, "count": 20}}})
    assert zones["total"] == 1 and zones["zones"][0]["name"] == "example.com"
    assert php_call_is_list(srv.url, "Dns", "getZones", {"query": {}}, member="zones")
    assert fault(srv, "getZone", {"zone": "missing.org"}) == 7002
    assert fault(srv, "addZone", {"zone": {**ZONE, "name": "bad zone.com"}}) == 1040
    dns_(srv, "deleteZone", {"zone": "example.com"})
    assert dns_(srv, "getZones", {"query": {}}) == {"total": 0, "zones": []}
    assert fault(srv, "deleteZone", {"zone": "example.com"}) == 7002
    with srv.sessionmaker()() as s:
        assert ("dns_zone", "example.com") in s.execute(select(ChangeLogEntry.topic, ChangeLogEntry.key)).all()


def test_php_records(ngnpro_server):
    srv = ngnpro_server
    dns_(srv, "addZone", {"zone": ZONE})
    dns_(srv, "addRecord", record("www", "A", "192.0.2.10"))
    dns_(srv, "addRecord", record("", "MX", "mail.example.com", 10))
    dns_(srv, "addRecord", record("_sip._udp", "SRV", "100 5060 sip.example.com", 5))
    # the UI's NAPTR template, priority sent beside the full rdata
    dns_(srv, "addRecord", record("", "NAPTR", '20 100 "s" "SIP+D2T" "" _sip._tcp', 100))
    dns_(srv, "addRecord", record("", "TXT", "v=spf1 mx -all"))
    assert stored(srv) == sorted([
        ("www", "A", "192.0.2.10", 0), ("", "MX", "mail.example.com", 10),
        ("_sip._udp", "SRV", "100 5060 sip.example.com", 5),
        ("", "NAPTR", '20 100 "s" "SIP+D2T" "" _sip._tcp', 0), ("", "TXT", '"v=spf1 mx -all"', 0)])
    # import: addRecord faults 7003 -> updateRecord
    assert fault(srv, "addRecord", record("www", "A", "192.0.2.10")) == 7003
    assert fault(srv, "addRecord", record("www", "A", "192.0.2.999")) == 1040
    assert fault(srv, "addRecord", record("www", "AAAA", "192.0.2.1")) == 1040
    assert fault(srv, "addRecord", record("x", "A", "192.0.2.1", zone="missing.org")) == 7002
    recs = dns_(srv, "getRecords", {"query": {"filter": {"zone": "example.com", "name": "www%"},
                                             "orderBy": {"attribute": "type", "direction": "ASC"}}})
    assert recs["total"] == 1 and php_call_is_list(srv.url, "Dns", "getRecords", {"query": {}}, member="records")
    www = recs["records"][0]
    assert (www["zone"], www["name"], www["type"], www["value"]) == ("example.com", "www", "A", "192.0.2.10")
    www["value"] = "192.0.2.11"
    dns_(srv, "updateRecord", {"record": www})
    assert dns_(srv, "getRecord", {"recordId": www["id"]})["value"] == "192.0.2.11"
    assert dns_(srv, "getRecords", {"query": {"filter": {"type": "MX"}}})["records"][0]["priority"] == 10
    assert fault(srv, "getRecord", {"recordId": 99999}) == 7004
    # deleteRecord with the id as a numeric string (some UI paths)
    dns_(srv, "deleteRecord", {"recordId": str(www["id"])})
    assert fault(srv, "deleteRecord", {"recordId": www["id"]}) == 7004
    assert dns_(srv, "getRecords", {"query": {}})["total"] == 4


def test_php_fancy_records(ngnpro_server):
    srv = ngnpro_server
    dns_(srv, "addZone", {"zone": ZONE})
    dns_(srv, "addFancyRecord", record("alice@example.com", "MBOXFW", "alice@elsewhere.net"))
    dns_(srv, "addFancyRecord", record("go", "URL", "https://example.org/landing"))
    assert fault(srv, "addFancyRecord", record("x", "A", "192.0.2.1")) == 1040
    assert fault(srv, "addFancyRecord", record("bob@other.org", "MBOXFW", "b@x.net")) == 1040
    fancy = dns_(srv, "getFancyRecords", {"query": {"filter": {"type": "MBOXFW"}}})
    assert fancy["total"] == 1 and fancy["records"][0]["name"] == "alice@example.com"
    assert dns_(srv, "getRecords", {"query": {}}) == {"total": 0, "records": []}
    fid = fancy["records"][0]["id"]
    got = dns_(srv, "getFancyRecord", {"recordId": fid})
    got["value"] = "alice@new.example"
    dns_(srv, "updateFancyRecord", {"record": got})
    assert dns_(srv, "getFancyRecord", {"recordId": fid})["value"] == "alice@new.example"
    dns_(srv, "deleteFancyRecord", {"recordId": fid})
    assert fault(srv, "getFancyRecord", {"recordId": fid}) == 7004
    assert dns_(srv, "getFancyRecords", {"query": {}})["total"] == 1


def test_wsdl_mode_and_zeep(ngnpro_server):
    srv = ngnpro_server
    php_wsdl_call(srv.url, "Dns", "addZone", {"zone": {"name": "wsdl.example", "ttl": 600}})
    php_wsdl_call(srv.url, "Dns", "addRecord", record("a", "A", "198.51.100.1", zone="wsdl.example"))
    got = php_wsdl_call(srv.url, "Dns", "getRecords", {"query": {"filter": {"zone": "wsdl.example"}}})
    assert got["total"] == 1 and got["records"][0]["value"] == "198.51.100.1"
    port = zeep_port(zeep_client(srv.url), "Dns")
    hdr = zeep_auth(srv.admin["username"], srv.admin["password"])
    port.addRecord(record={"zone": "wsdl.example", "name": "b", "type": "AAAA", "value": "2001:db8::b"}, _soapheaders=hdr)
    zone = port.getZone(zone="wsdl.example", _soapheaders=hdr)
    assert zone.name == "wsdl.example" and zone.ttl == 600
    recs = port.getRecords(query={"filter": {"type": "AAAA"}}, _soapheaders=hdr)
    assert recs.total == 1 and recs.records[0].value == "2001:db8::b"


def test_raw_envelopes(ngnpro_server):
    srv = ngnpro_server
    dns_(srv, "addZone", {"zone": {"name": "raw.example"}})
    params = ('<record xsi:type="ns4:DnsRecord">\r\n<name xsi:type="xsd:string">_sip._tcp</name>'
              '<zone xsi:type="xsd:string">raw.example</zone><type xsi:type="xsd:string">SRV</type>'
              '<value xsi:type="xsd:string">10 5060 sip.raw.example</value><owner/>'
              '<ttl xsi:type="xsd:string">120</ttl><priority xsi:type="xsd:string">1</priority></record>')
    status, root = raw_call(srv.url, envelope("Dns", "addRecord", params))
    assert status == 200 and result_element(root) is None
    status, root = raw_call(srv.url, envelope("Dns", "getRecords", '<query xsi:type="ns4:DnsRecordQuery"><filter>'
                                                                   '<zone xsi:type="xsd:string">raw.example</zone></filter></query>'))
    rec = result_element(root).find("records")[0]
    assert (rec.findtext("type"), rec.findtext("value"), rec.findtext("priority"), rec.findtext("ttl")) == (
        "SRV", "10 5060 sip.raw.example", "1", "120")
    rid = rec.findtext("id")
    status, root = raw_call(srv.url, envelope("Dns", "deleteRecord", f'<recordId xsi:type="xsd:string">{rid}</recordId>'))
    assert status == 200
    status, root = raw_call(srv.url, envelope("Dns", "deleteRecord", '<recordId xsi:type="xsd:string">12x</recordId>'))
    assert status == 500 and fault_code(root) in (1040, 9003)
    status, root = raw_call(srv.url, envelope("Dns", "getZone", '<zone xsi:type="xsd:string">raw.example</zone>',
                                              auth={"username": "admin", "password": "nope", "admin": True}))
    assert status == 500 and fault_code(root) == 9001


def test_scoping_between_resellers(ngnpro_server):
    srv = ngnpro_server
    with srv.sessionmaker()() as s:
        s.add_all([Customer(id=10, username="res10", password="pw10", reseller_active=True),
                   Customer(id=20, username="res20", password="pw20", reseller_active=True)])
        s.commit()
    r10 = {"username": "res10", "password": "pw10", "admin": False}
    r20 = {"username": "res20", "password": "pw20", "admin": False}
    dns_(srv, "addZone", {"zone": {"name": "ten.example"}}, auth=r10)
    dns_(srv, "addRecord", record("www", "A", "192.0.2.1", zone="ten.example"), auth=r10)
    dns_(srv, "addZone", {"zone": {"name": "twenty.example"}}, auth=r20)
    assert [z["name"] for z in dns_(srv, "getZones", {"query": {}}, auth=r20)["zones"]] == ["twenty.example"]
    assert dns_(srv, "getRecords", {"query": {}}, auth=r20) == {"total": 0, "records": []}
    assert fault(srv, "getZone", {"zone": "ten.example"}, auth=r20) == 9002
    assert fault(srv, "updateZone", {"zone": {"name": "ten.example", "info": "mine"}}, auth=r20) == 9002
    assert fault(srv, "deleteZone", {"zone": "ten.example"}, auth=r20) == 9002
    assert fault(srv, "addRecord", record("evil", "A", "192.0.2.66", zone="ten.example"), auth=r20) == 9002
    assert fault(srv, "addZone", {"zone": {"name": "sub.ten.example"}}, auth=r20) == 9002
    rid = dns_(srv, "getRecords", {"query": {}}, auth=r10)["records"][0]["id"]
    assert fault(srv, "deleteRecord", {"recordId": rid}, auth=r20) == 9002
    assert fault(srv, "getRecord", {"recordId": rid}, auth=r20) == 9002
    assert dns_(srv, "getZone", {"zone": "ten.example"}, auth={**srv.admin, "impersonate": 10})["reseller"] == 10
    assert dns_(srv, "getZones", {"query": {}})["total"] == 2
    assert stored(srv) == [("www", "A", "192.0.2.1", 0)]
