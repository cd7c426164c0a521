"""enumdns as a process, queried with the real ``dig`` over UDP and TCP.

Data is written the way ngnpro writes it: models plus ``record_change`` in the same
transaction; the running server must pick changes up through the change log.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

import pytest

from ngnpro.models import DnsRecord, DnsZone, EnumMapping, EnumNumber, EnumRange, open_database
from ngnpro.models.changes import TOPIC_DNS_ZONE, TOPIC_ENUM_NUMBER, record_change
from tests.helpers import Service, free_port, require_tool, write_config

NUMBER = "31201234567"
NAME = "7.6.5.4.3.2.1.0.2.1.3.e164.arpa"
BIG = "3120555"  # 30 mappings: does not fit 512 or 1232 bytes
BIG_NAME = "5.5.5.0.2.1.3.e164.arpa"


def seed(factory) -> None:
    with factory() as s:
        rng = EnumRange(prefix="3120", tld="e164.arpa", ttl=600, serial=7,
                        nameservers="ns1.example.com ns2.example.com")
        s.add(rng)
        s.flush()
        num = EnumNumber(number=NUMBER, tld="e164.arpa", range_id=rng.id)
        num.mappings = [
            EnumMapping(type="sip", mapto="sip:alice@example.com", ttl=300, priority=10),
            EnumMapping(type="mailto", mapto="mailto:alice@example.com", ttl=300, priority=20),
            EnumMapping(type="web:http", mapto="http://example.com/alice", ttl=300, priority=30),
        ]
        s.add(num)
        s.add(EnumNumber(number="31209999999", tld="e164.arpa", range_id=rng.id))
        big = EnumNumber(number=BIG, tld="e164.arpa", range_id=rng.id)
        big.mappings = [EnumMapping(type="sip", mapto=f"sip:user{i}-{'x' * 40}@example.com", ttl=60, priority=i)
                        for i in range(30)]
        s.add(big)
        zone = DnsZone(name="example.com", serial=5, nameservers="ns1.example.com", email="hostmaster@example.com")
        s.add(zone)
        s.flush()
        s.add_all([
            DnsRecord(zone_id=zone.id, name="_sip._udp", type="SRV", value="100 5060 sip.example.com", priority=10),
            DnsRecord(zone_id=zone.id, name="_sip._tcp", type="SRV", value="100 5060 sip.example.com", priority=20),
            DnsRecord(zone_id=zone.id, name="sip", type="A", value="192.0.2.10"),
            DnsRecord(zone_id=zone.id, name="", type="NAPTR", value='20 100 "s" "SIP+D2U" "" _sip._udp', priority=100),
        ])
        s.commit()


class Dig:
    """Runs dig against the server and parses what it prints."""

    def __init__(self, port: int) -> None:
        self.exe = require_tool("dig")
        self.port = port

    def __call__(self, name: str, rtype: str, *opts: str) -> dict:
        out = subprocess.run(
            [self.exe, "@127.0.0.1", "-p", str(self.port), "+norec", "+time=2", "+tries=1", *opts, name, rtype],
            capture_output=True, text=True, timeout=20,
        ).stdout
        status = re.search(r"status: (\w+)", out)
        flags = re.search(r";; flags: ([\w ]*);", out)
        sections: dict[str, list[list[str]]] = {}
        current = None
        for line in out.splitlines():
            m = re.match(r";; (\w+) SECTION:", line)
            if m:
                current = sections.setdefault(m.group(1).lower(), [])
            elif not line.strip():
                current = None
            elif current is not None and not line.startswith(";"):
                current.append(line.split(None, 4))
        return {
            "status": status.group(1) if status else None,
            "flags": set(flags.group(1).split()) if flags else set(),
            "answer": sections.get("answer", []),
            "authority": sections.get("authority", []),
            "additional": sections.get("additional", []),
            "tcp": "(TCP)" in out,
            "raw": out,
        }


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("enumdns")
    url = f"sqlite:///{tmp / 'msp.sqlite'}"
    engine, factory = open_database(url)
    seed(factory)
    port = free_port()
    cfg = write_config(tmp / "msp.toml", {
        "database": {"url": url, "poll_interval": 0.1},
        "enumdns": {"listen": f"127.0.0.1:{port}", "soa_email": "dns-admin@example.net"},
        "logging": {"level": "debug"},
    })
    svc = Service("enumdns", cfg).wait_tcp("127.0.0.1", port)
    yield {"port": port, "factory": factory, "svc": svc, "dig": Dig(port)}
    svc.stop()
    engine.dispose()


def naptrs(result: dict) -> list[str]:
    return sorted(r[4] for r in result["answer"] if r[3] == "NAPTR")


EXPECTED = sorted([
    '10 10 "u" "E2U+sip" "!^.*$!sip:alice@example.com!" .',
    '20 20 "u" "E2U+email:mailto" "!^.*$!mailto:alice@example.com!" .',
    '30 30 "u" "E2U+web:http" "!^.*$!http://example.com/alice!" .',
])


def test_naptr_over_udp_and_tcp(server):
    dig = server["dig"]
    udp = dig(NAME, "NAPTR")
    assert udp["status"] == "NOERROR" and "aa" in udp["flags"] and "ra" not in udp["flags"]
    assert naptrs(udp) == EXPECTED and not udp["tcp"]
    assert {r[1] for r in udp["answer"]} == {"300"}
    tcp = dig(NAME, "NAPTR", "+tcp")
    assert tcp["tcp"] and naptrs(tcp) == EXPECTED and "aa" in tcp["flags"]


def test_nxdomain_and_nodata_carry_the_soa(server):
    dig = server["dig"]
    nx = dig("8.6.5.4.3.2.1.0.2.1.3.e164.arpa", "NAPTR")
    assert nx["status"] == "NXDOMAIN" and "aa" in nx["flags"] and not nx["answer"]
    soa = nx["authority"][0]
    assert soa[0] == "0.2.1.3.e164.arpa." and soa[3] == "SOA"
    assert soa[4].split() == ["ns1.example.com.", "dns-admin.example.net.", "7", "10800", "3600", "1209600", "600"]
    for name, rtype in (("9.9.9.9.9.9.9.0.2.1.3.e164.arpa", "NAPTR"), (NAME, "TXT")):
        nodata = dig(name, rtype)
        assert nodata["status"] == "NOERROR" and not nodata["answer"] and nodata["authority"][0][3] == "SOA"
    apex = dig("0.2.1.3.e164.arpa", "NS")
    assert sorted(r[4] for r in apex["answer"]) == ["ns1.example.com.", "ns2.example.com."]


def test_refused_outside_our_zones(server):
    dig = server["dig"]
    for name in ("example.org", "1.2.3.4.in-addr.arpa"):
        r = dig(name, "A")
        assert r["status"] == "REFUSED" and "aa" not in r["flags"] and not r["answer"]


def test_case_is_preserved(server):
    r = server["dig"](NAME.upper().replace("E164.ARPA", "e164.ArPa"), "NAPTR")
    assert r["answer"] and all(row[0] == "7.6.5.4.3.2.1.0.2.1.3.e164.ArPa." for row in r["answer"])


def test_sip_srv_and_naptr_from_a_dns_zone(server):
    dig = server["dig"]
    srv = dig("_sip._udp.example.com", "SRV")
    assert srv["status"] == "NOERROR" and "aa" in srv["flags"]
    assert srv["answer"][0][4] == "10 100 5060 sip.example.com."
    assert ["sip.example.com.", "3600", "IN", "A", "192.0.2.10"] in srv["additional"]
    naptr = dig("example.com", "NAPTR")
    assert naptr["answer"][0][4] == '20 100 "s" "SIP+D2U" "" _sip._udp.example.com.'
    soa = dig("example.com", "SOA")
    assert soa["answer"][0][4].split()[:3] == ["ns1.example.com.", "hostmaster.example.com.", "5"]


def test_truncation_then_tcp_and_edns_buffer(server):
    dig = server["dig"]
    small = dig(BIG_NAME, "NAPTR", "+ignore", "+noedns")
    assert "tc" in small["flags"] and not small["answer"]
    edns = dig(BIG_NAME, "NAPTR", "+ignore", "+bufsize=1232")
    assert "tc" in edns["flags"]
    big = dig(BIG_NAME, "NAPTR", "+ignore", "+bufsize=4096")
    assert "tc" not in big["flags"] and len(big["answer"]) == 30 and not big["tcp"]
    retried = dig(BIG_NAME, "NAPTR", "+bufsize=512")  # dig retries over TCP by itself
    assert retried["tcp"] and len(retried["answer"]) == 30 and "tc" not in retried["flags"]


def test_any_is_minimal(server):
    r = server["dig"](NAME, "ANY")
    assert r["status"] == "NOERROR" and len({row[3] for row in r["answer"]}) == 1


def raw_query(port: int, payload: bytes, tcp: bool = False) -> bytes | None:
    if tcp:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(len(payload).to_bytes(2, "big") + payload)
            head = s.recv(2)
            if len(head) < 2:
                return None
            want, data = int.from_bytes(head, "big"), b""
            while len(data) < want:
                chunk = s.recv(want - len(data))
                if not chunk:
                    break
                data += chunk
            return data
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        s.sendto(payload, ("127.0.0.1", port))
        try:
            return s.recv(65535)
        except TimeoutError:
            return None


def test_garbage_gets_formerr_and_the_server_survives(server):
    port = server["port"]
    junk = [b"", b"\x00", b"\xde\xad\xbe\xef", b"\x13\x37" + b"\xff" * 40,
            b"\x13\x37\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x3fabc",  # label longer than the packet
            b"\x13\x37\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01"]  # pointer loop
    for payload in junk:
        reply = raw_query(port, payload)
        if len(payload) >= 12 and not payload[2] & 0x80:
            assert reply is not None and reply[:2] == payload[:2] and reply[3] & 0x0F == 1  # FORMERR
    assert raw_query(port, b"\x13\x37\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03abc", tcp=True)[3] & 0x0F == 1
    # a notify (opcode 4) is not implemented
    reply = raw_query(port, b"\x13\x38\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00")
    assert reply[3] & 0x0F == 4
    assert naptrs(server["dig"](NAME, "NAPTR")) == EXPECTED
    assert server["svc"].proc.poll() is None


def test_a_tcp_answer_is_not_reused_over_udp(server):
    """The packet cache must not hand a UDP client the (untruncated) answer built for TCP."""
    import dns.message

    query = dns.message.make_query(BIG_NAME.replace("e164", "E164"), "NAPTR", use_edns=False).to_wire()
    full = dns.message.from_wire(raw_query(server["port"], query, tcp=True))
    assert len(full.answer[0]) == 30
    for _ in range(2):
        reply = raw_query(server["port"], query)
        assert len(reply) <= 512 and dns.message.from_wire(reply).flags & 0x0200  # TC


def test_several_queries_on_one_tcp_connection(server):
    """RFC 7766 6.2.1: pipelined queries on one connection each get their answer."""
    import dns.message

    queries = [dns.message.make_query(name, "NAPTR") for name in (NAME, BIG_NAME, "9.9.9.e164.arpa")]
    with socket.create_connection(("127.0.0.1", server["port"]), timeout=5) as s:
        s.sendall(b"".join(len(w).to_bytes(2, "big") + w for w in (q.to_wire() for q in queries)))
        stream = s.makefile("rb")
        replies = []
        for _ in queries:
            length = int.from_bytes(stream.read(2), "big")
            replies.append(dns.message.from_wire(stream.read(length)))
    assert [r.id for r in replies] == [q.id for q in queries]
    assert [len(r.answer[0]) if r.answer else r.rcode() for r in replies] == [3, 30, 3]  # 3 = NXDOMAIN


def wait_for(check, timeout: float = 1.0) -> float:
    """Seconds until ``check()`` holds; fails after ``timeout`` (the one-second promise)."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            pytest.fail(f"change not visible within {timeout}s")
        time.sleep(0.02)


def test_add_change_delete_seen_within_a_second(server):
    dig, factory = server["dig"], server["factory"]
    name = "1.1.1.1.1.1.1.0.2.1.3.e164.arpa"
    assert dig(name, "NAPTR")["status"] == "NXDOMAIN"
    with factory() as s:
        rng = s.query(EnumRange).filter_by(prefix="3120").one()
        num = EnumNumber(number="31201111111", tld="e164.arpa", range_id=rng.id)
        num.mappings = [EnumMapping(type="sip", mapto="sip:new@example.com", ttl=60, priority=5)]
        s.add(num)
        rng.serial += 1
        record_change(s, TOPIC_ENUM_NUMBER, "31201111111@e164.arpa")
        s.commit()
    wait_for(lambda: naptrs(dig(name, "NAPTR")) == ['5 5 "u" "E2U+sip" "!^.*$!sip:new@example.com!" .'])
    assert dig(name + ".", "NAPTR")["answer"]
    nx = dig("2.1.1.1.1.1.1.0.2.1.3.e164.arpa", "NAPTR")
    assert nx["authority"][0][4].split()[2] == "8"  # the range's new serial
    with factory() as s:
        num = s.query(EnumNumber).filter_by(number="31201111111").one()
        num.mappings[0].mapto = "sip:changed@example.com"
        record_change(s, TOPIC_ENUM_NUMBER, "31201111111@e164.arpa")
        s.commit()
    wait_for(lambda: "sip:changed@example.com" in dig(name, "NAPTR")["raw"])
    with factory() as s:
        s.delete(s.query(EnumNumber).filter_by(number="31201111111").one())
        record_change(s, TOPIC_ENUM_NUMBER, "31201111111@e164.arpa")
        s.commit()
    wait_for(lambda: dig(name, "NAPTR")["status"] == "NXDOMAIN")
    with factory() as s:
        zone = s.query(DnsZone).filter_by(name="example.com").one()
        s.add(DnsRecord(zone_id=zone.id, name="_sips._tcp", type="SRV", value="0 5061 sip.example.com", priority=1))
        zone.serial += 1
        record_change(s, TOPIC_DNS_ZONE, "example.com")
        s.commit()
    wait_for(lambda: bool(dig("_sips._tcp.example.com", "SRV")["answer"]))
    assert dig("example.com", "SOA")["answer"][0][4].split()[2] == "6"


def test_several_workers_all_see_changes(tmp_path, db_url):
    engine, factory = open_database(db_url)
    seed(factory)
    port = free_port()
    cfg = write_config(tmp_path / "msp.toml", {
        "database": {"url": db_url, "poll_interval": 0.1},
        "enumdns": {"listen": f"127.0.0.1:{port}", "workers": 2},
    })
    svc = Service("enumdns", cfg).wait_tcp("127.0.0.1", port)
    try:
        dig = Dig(port)
        assert naptrs(dig(NAME, "NAPTR")) == EXPECTED
        with factory() as s:
            s.delete(s.query(EnumNumber).filter_by(number=NUMBER).one())
            record_change(s, TOPIC_ENUM_NUMBER, f"{NUMBER}@e164.arpa")
            s.commit()
        time.sleep(1.0)
        # many fresh sockets: the kernel spreads them over both workers
        assert {dig(NAME, "NAPTR")["status"] for _ in range(8)} == {"NXDOMAIN"}
        assert naptrs(dig(NAME, "NAPTR", "+tcp")) == []
        assert len(re.findall(r"worker \d ready", svc.output())) == 2
    finally:
        svc.stop()
        engine.dispose()


def test_bad_config_is_one_line_and_non_zero(tmp_path):
    cfg = write_config(tmp_path / "bad.toml", {"enumdns": {"listen": "127.0.0.1:notaport"}})
    proc = subprocess.run([sys.executable, "-m", "enumdns", "--config", str(cfg)], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == ["enumdns: configuration error: enumdns.listen: port 'notaport' is not a number"]
