"""What DnsPort and EnumPort store is what enumdns serves: provision through PHP's SoapClient,
then ask a running ``python -m enumdns`` on the same database with the real ``dig``.

This pins the stored-value contract between the two services (names relative to the zone,
MX/SRV numbers in ``priority``, full NAPTR rdata in ``value``, SOA serials).
"""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.helpers import Service, free_port, require_tool, write_config
from tests.ngnpro.harness import php_call


@pytest.fixture
def enumdns(ngnpro_server, tmp_path):
    port = free_port()
    cfg = write_config(tmp_path / "enumdns.toml", {
        "database": {"url": ngnpro_server.db_url},
        "enumdns": {"listen": f"127.0.0.1:{port}", "nameservers": ["ns.test.invalid"]},
    })
    svc = Service("enumdns", cfg)
    try:
        svc.wait_tcp("127.0.0.1", port)
        yield port
    finally:
        svc.stop()


def dig(port: int, name: str, rtype: str) -> list[str]:
    out = subprocess.run(
        [require_tool("dig"), "@127.0.0.1", "-p", str(port), "+norec", "+short", "+time=2", "+tries=1", name, rtype],
        capture_output=True, text=True, timeout=20,
    ).stdout
    return sorted(line.strip() for line in out.splitlines() if line.strip())


def dig_until(port: int, name: str, rtype: str, expected: list[str], timeout: float = 6.0) -> list[str]:
    """The answer once it equals ``expected`` (changes reach enumdns within about a second)."""
    deadline = time.monotonic() + timeout
    got = dig(port, name, rtype)
    while got != sorted(expected) and time.monotonic() < deadline:
        time.sleep(0.2)
        got = dig(port, name, rtype)
    return got


def soap(server, port, method, args):
    return php_call(server.url, port, method, args)


def test_provisioned_zone_is_served(ngnpro_server, enumdns):
    srv = ngnpro_server
    soap(srv, "Dns", "addZone", {"zone": {"name": "example.org", "ttl": 300, "nameservers": ["ns1.example.org"],
                                          "email": "hostmaster@example.org"}})
    for name, rtype, value, prio in [
        ("sip", "A", "192.0.2.10", 0),
        ("", "MX", "mail.example.org", 10),
        ("_sip._udp", "SRV", "100 5060 sip.example.org", 5),
        ("", "NAPTR", '20 100 "s" "SIP+D2U" "" _sip._udp', 100),
        ("", "TXT", "v=spf1 mx -all", 0),
        ("www", "CNAME", "sip.example.org.", 0),
    ]:
        soap(srv, "Dns", "addRecord", {"record": {"zone": "example.org", "name": name, "type": rtype, "value": value,
                                                  "priority": prio}})
    # Wait for the record added last: each addRecord commits on its own, so enumdns may
    # pick up the first ones one poll before the last.
    assert dig_until(enumdns, "www.example.org", "CNAME", ["sip.example.org."]) == ["sip.example.org."]
    assert dig(enumdns, "sip.example.org", "A") == ["192.0.2.10"]
    assert dig(enumdns, "example.org", "MX") == ["10 mail.example.org."]
    assert dig(enumdns, "_sip._udp.example.org", "SRV") == ["5 100 5060 sip.example.org."]
    assert dig(enumdns, "example.org", "NAPTR") == ['20 100 "s" "SIP+D2U" "" _sip._udp.example.org.']
    assert dig(enumdns, "example.org", "TXT") == ['"v=spf1 mx -all"']
    assert dig(enumdns, "www.example.org", "CNAME") == ["sip.example.org."]
    serial = soap(srv, "Dns", "getZone", {"zone": "example.org"})["serial"]
    soa = dig(enumdns, "example.org", "SOA")
    assert soa and soa[0].split()[2] == str(serial)

    # a change through SOAP reaches the DNS answer, with a higher SOA serial
    rec = soap(srv, "Dns", "getRecords", {"query": {"filter": {"name": "sip", "type": "A"}}})["records"][0]
    rec["value"] = "192.0.2.20"
    soap(srv, "Dns", "updateRecord", {"record": rec})
    assert dig_until(enumdns, "sip.example.org", "A", ["192.0.2.20"]) == ["192.0.2.20"]
    assert int(dig(enumdns, "example.org", "SOA")[0].split()[2]) > serial


def test_provisioned_number_is_served(ngnpro_server, enumdns):
    srv = ngnpro_server
    soap(srv, "Enum", "addRange", {"range": {"id": {"prefix": "3120", "tld": "e164.arpa"}, "ttl": 600,
                                             "nameservers": ["ns1.example.com"]}})
    soap(srv, "Enum", "addNumber", {"number": {"id": {"number": "31201234567", "tld": "e164.arpa"}, "mappings": [
        {"type": "sip", "mapto": "sip:alice@example.com", "ttl": 300, "priority": 10}]}})
    name = "7.6.5.4.3.2.1.0.2.1.3.e164.arpa"
    got = dig_until(enumdns, name, "NAPTR", ['10 10 "u" "E2U+sip" "!^.*$!sip:alice@example.com!" .'])
    assert len(got) == 1 and "E2U+sip" in got[0] and "sip:alice@example.com" in got[0]
    soap(srv, "Enum", "deleteNumber", {"enumId": {"number": "31201234567", "tld": "e164.arpa"}})
    assert dig_until(enumdns, name, "NAPTR", []) == []
