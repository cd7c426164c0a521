"""Provision through ngnpro's SOAP ports (zeep), answer from enumdns (dig): the whole path.

ngnpro and enumdns run as separate processes on one SQLite database; every change made
through SOAP must be in the DNS answer within one second (measured from the SOAP call's
return with an in-process UDP query, then checked in full with the real dig).
"""

from __future__ import annotations

import time

import dns.message
import dns.query
import dns.rcode
import pytest
from lxml import etree

from tests.enumdns.test_enumdns_dig import Dig, naptrs
from tests.helpers import Service, free_port, require_php_soap, write_config

pytest.importorskip("zeep")
harness = pytest.importorskip("tests.ngnpro.harness")
ngnpro_conftest = pytest.importorskip("tests.ngnpro.conftest")

NAME = "7.6.5.4.3.2.1.0.2.1.3.e164.arpa"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("soap")
    url = f"sqlite:///{tmp / 'msp.sqlite'}"
    ngnpro = ngnpro_conftest.start_ngnpro(tmp, url)
    port = free_port()
    cfg = write_config(tmp / "enumdns.toml", {
        "database": {"url": url},
        "enumdns": {"listen": f"127.0.0.1:{port}", "workers": 2, "nameservers": ["ns.example.net"]},
    })
    enumdns = Service("enumdns", cfg)
    try:
        enumdns.wait_tcp("127.0.0.1", port)
        client = harness.zeep_client(ngnpro.url)
        yield {
            "enum": harness.zeep_port(client, "Enum"),
            "dns": harness.zeep_port(client, "Dns"),
            "hdr": harness.zeep_auth(ngnpro.admin["username"], ngnpro.admin["password"]),
            "port": port,
            "dig": Dig(port),
        }
    finally:
        enumdns.stop()
        ngnpro.service.stop()
        ngnpro.close()


def mapping(mtype: str, mapto: str, priority: int, ttl: int = 300):
    # zeep writes SOAP-ENC:Array members only from ready-made <item> elements
    item = etree.Element("item")
    for key, value in (("type", mtype), ("mapto", mapto), ("ttl", ttl), ("priority", priority)):
        etree.SubElement(item, key).text = str(value)
    return item


def seen_within(port: int, name: str, rtype: str, check, limit: float = 1.0) -> float:
    """Seconds until the answer satisfies ``check``; fails past ``limit``.  With several
    workers the first answer may come from the one that polled first: wait out the rest of
    ``limit`` so that every worker is held to it by the queries that follow."""
    start = time.monotonic()
    while True:
        reply = dns.query.udp(dns.message.make_query(name, rtype), "127.0.0.1", port=port, timeout=1)
        if check(reply):
            elapsed = time.monotonic() - start
            time.sleep(max(0.0, limit - elapsed))
            for _ in range(4):
                reply = dns.query.udp(dns.message.make_query(name, rtype), "127.0.0.1", port=port, timeout=1)
                assert check(reply), f"{name} {rtype}: a worker still answers the old data after {limit}s"
            return elapsed
        if time.monotonic() - start > limit:
            pytest.fail(f"{name} {rtype}: change not answered within {limit}s: {reply}")
        time.sleep(0.02)


def regexps(reply) -> list[str]:
    return sorted(r.regexp.decode() for rrset in reply.answer for r in rrset)


def test_number_add_change_delete_through_soap(platform):
    enum, hdr, port, dig = platform["enum"], platform["hdr"], platform["port"], platform["dig"]
    enum.addRange(range={"id": {"prefix": "3120", "tld": "e164.arpa"}, "ttl": 600}, _soapheaders=hdr)
    assert dig(NAME, "NAPTR")["status"] == "NXDOMAIN"

    enum.addNumber(number={"id": {"number": "31201234567", "tld": "e164.arpa"}, "mappings": [
        mapping("sip", "sip:alice@example.com", 10), mapping("mailto", "mailto:alice@example.com", 20)]},
        _soapheaders=hdr)
    seen_within(port, NAME, "NAPTR", lambda r: len(regexps(r)) == 2)
    assert naptrs(dig(NAME, "NAPTR")) == [
        '10 10 "u" "E2U+sip" "!^.*$!sip:alice@example.com!" .',
        '20 20 "u" "E2U+email:mailto" "!^.*$!mailto:alice@example.com!" .',
    ]
    assert naptrs(dig(NAME, "NAPTR", "+tcp")) == naptrs(dig(NAME, "NAPTR"))

    enum.updateNumber(number={"id": {"number": "31201234567", "tld": "e164.arpa"}, "mappings": [
        mapping("sip", "sip:bob@example.com", 5, ttl=120)]}, _soapheaders=hdr)
    seen_within(port, NAME, "NAPTR", lambda r: regexps(r) == ["!^.*$!sip:bob@example.com!"])
    got = dig(NAME, "NAPTR")
    assert naptrs(got) == ['5 5 "u" "E2U+sip" "!^.*$!sip:bob@example.com!" .'] and got["answer"][0][1] == "120"

    enum.deleteNumber(enumId={"number": "31201234567", "tld": "e164.arpa"}, _soapheaders=hdr)
    seen_within(port, NAME, "NAPTR", lambda r: r.rcode() == dns.rcode.NXDOMAIN)
    nx = dig(NAME, "NAPTR")
    assert nx["status"] == "NXDOMAIN" and nx["authority"][0][0] == "0.2.1.3.e164.arpa."
    assert nx["authority"][0][4].split()[0] == "ns.example.net."

    enum.deleteRange(range={"prefix": "3120", "tld": "e164.arpa"}, _soapheaders=hdr)
    seen_within(port, "0.2.1.3.e164.arpa", "SOA", lambda r: r.rcode() == dns.rcode.NXDOMAIN)


def test_sip_srv_through_the_dns_port(platform):
    dnsport, hdr, port, dig = platform["dns"], platform["hdr"], platform["port"], platform["dig"]
    dnsport.addZone(zone={"name": "example.net", "ttl": 600}, _soapheaders=hdr)
    dnsport.addRecord(record={"zone": "example.net", "name": "sip", "type": "A", "value": "192.0.2.7"},
                      _soapheaders=hdr)
    dnsport.addRecord(record={"zone": "example.net", "name": "_sip._udp", "type": "SRV",
                              "value": "50 5060 sip.example.net", "priority": 10}, _soapheaders=hdr)
    seen_within(port, "_sip._udp.example.net", "SRV", lambda r: bool(r.answer))
    srv = dig("_sip._udp.example.net", "SRV")
    assert srv["answer"][0][4] == "10 50 5060 sip.example.net." and "aa" in srv["flags"]
    assert ["sip.example.net.", "600", "IN", "A", "192.0.2.7"] in srv["additional"]
    serial = int(dig("example.net", "SOA")["answer"][0][4].split()[2])
    dnsport.deleteZone(zone="example.net", _soapheaders=hdr)
    seen_within(port, "_sip._udp.example.net", "SRV", lambda r: r.rcode() == dns.rcode.REFUSED)
    assert serial > 0


def test_php_client_also_reaches_dns(platform):
    """The real client of the API (PHP SoapClient, rpc/encoded) through the same path."""
    require_php_soap()
    url = platform["enum"]._binding_options["address"]
    harness.php_call(url, "Enum", "addRange", {"range": {"id": {"prefix": "4930", "tld": "e164.arpa"}}})
    harness.php_call(url, "Enum", "addNumber", {"number": {"id": {"number": "4930555", "tld": "e164.arpa"},
                                                           "mappings": [{"type": "h323", "mapto": "h323:x@example.de",
                                                                         "priority": 1}]}})
    seen_within(platform["port"], "5.5.5.0.3.9.4.e164.arpa", "NAPTR",
                lambda r: regexps(r) == ["!^.*$!h323:x@example.de!"])
    assert naptrs(platform["dig"]("5.5.5.0.3.9.4.e164.arpa", "NAPTR"))[0].startswith('1 1 "u" "E2U+h323"')
