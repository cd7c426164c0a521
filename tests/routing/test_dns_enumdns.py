"""sipproxy.runtime.dns against our own ``python -m enumdns``: ENUM numbers and RFC 3263
records provisioned in the database, asked over the wire, answers cached for their TTL.

Queries go through a counting UDP relay in front of enumdns, so that "answered from the
cache" is seen from the outside (nothing reached the server), not only from the resolver's
own counter.  The resolver's clock is a test clock: TTLs expire without sleeping.
"""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from ngnpro.models import DnsRecord, DnsZone, EnumMapping, EnumNumber, EnumRange, open_database
from ngnpro.models.config import validate
from sipproxy.runtime.dns import DnsResolver, read_hosts
from sipproxy.sip.addressing import Peer
from sipproxy.sip.uri import parse_uri
from tests.helpers import ROOT, Service, free_port, write_config

NUMBER = "+31201234567"
ORG_NUMBER = "+31301234567"  # provisioned in the second ENUM tree only


def seed(factory) -> None:
    with factory() as s:
        arpa = EnumRange(prefix="3120", tld="e164.arpa", ttl=600, serial=1, nameservers="ns1.example.com")
        org = EnumRange(prefix="3130", tld="e164.org", ttl=600, serial=1, nameservers="ns1.example.com")
        s.add_all([arpa, org])
        s.flush()
        alice = EnumNumber(number=NUMBER[1:], tld="e164.arpa", range_id=arpa.id)
        alice.mappings = [
            EnumMapping(type="sip", mapto="sip:alice@example.com", ttl=300, priority=10),
            EnumMapping(type="sip", mapto="sip:alice-mobile@example.com", ttl=300, priority=20),
            EnumMapping(type="mailto", mapto="mailto:alice@example.com", ttl=300, priority=5),
        ]
        carol = EnumNumber(number=ORG_NUMBER[1:], tld="e164.org", range_id=org.id)
        carol.mappings = [EnumMapping(type="sip", mapto="sip:carol@pbx.example.com", ttl=300, priority=10)]
        s.add_all([alice, carol])
        zone = DnsZone(name="example.com", serial=1, ttl=300, minimum=30,
                       nameservers="ns1.example.com", email="hostmaster@example.com")
        other = DnsZone(name="other.test", serial=1, ttl=300, nameservers="ns1.other.test")
        s.add_all([zone, other])
        s.flush()
        s.add_all([
            # example.com: SRV only, two priorities (glue for both targets: same zone)
            DnsRecord(zone_id=zone.id, name="_sip._udp", type="SRV", value="0 5060 sip1.example.com",
                      priority=10, ttl=300),
            DnsRecord(zone_id=zone.id, name="_sip._udp", type="SRV", value="0 5070 sip2.example.com",
                      priority=20, ttl=300),
            DnsRecord(zone_id=zone.id, name="sip1", type="A", value="192.0.2.1", ttl=300),
            DnsRecord(zone_id=zone.id, name="sip2", type="A", value="192.0.2.2", ttl=300),
            # naptr.example.com: NAPTR to TCP (preferred) and UDP
            DnsRecord(zone_id=zone.id, name="naptr", type="NAPTR", priority=100, ttl=300,
                      value='10 10 "s" "SIP+D2T" "" _sip._tcp.naptr.example.com.'),
            DnsRecord(zone_id=zone.id, name="naptr", type="NAPTR", priority=100, ttl=300,
                      value='20 10 "s" "SIP+D2U" "" _sip._udp'),
            DnsRecord(zone_id=zone.id, name="_sip._tcp.naptr", type="SRV", value="0 5062 sip2.example.com",
                      priority=10, ttl=300),
            # other.test: an address only
            DnsRecord(zone_id=other.id, name="", type="A", value="198.51.100.7", ttl=120),
        ])
        s.commit()


class Relay:
    """A UDP relay that counts the queries reaching the DNS server behind it."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            try:
                data, client = self.sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            self.count += 1
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
                up.settimeout(3)
                try:
                    up.sendto(data, self.upstream)
                    answer, _ = up.recvfrom(65535)
                except OSError:
                    continue
            self.sock.sendto(answer, client)

    def close(self) -> None:
        self.running = False
        self.thread.join(2)
        self.sock.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def enumdns(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("routing-dns")
    url = f"sqlite:///{tmp / 'msp.sqlite'}"
    engine, factory = open_database(url)
    seed(factory)
    port = free_port()
    cfg = write_config(tmp / "msp.toml", {
        "database": {"url": url},
        "enumdns": {"listen": f"127.0.0.1:{port}", "enum_tlds": ["e164.arpa", "e164.org"]},
    })
    svc = Service("enumdns", cfg).wait_tcp("127.0.0.1", port)
    yield port
    svc.stop()
    engine.dispose()


@pytest.fixture
def relay(enumdns):
    r = Relay(("127.0.0.1", enumdns))
    yield r
    r.close()


def resolver(servers, clock=None, timeout=1.0, **kw):
    return DnsResolver(servers, servers, ["e164.arpa", "e164.org"], timeout=timeout, hosts={},
                       rng=random.Random(1), clock=clock or time.monotonic, **kw)


def test_enum_number_to_its_sip_uris(relay):
    dns = resolver([("127.0.0.1", relay.port)])
    # enumdns writes a mapping's priority as NAPTR ORDER and PREFERENCE: the lowest ORDER
    # that gives a SIP URI is the answer (RFC 3403), the mobile's (20) is not considered
    assert dns.enum(NUMBER) == ["sip:alice@example.com"]
    assert dns.enum(ORG_NUMBER) == ["sip:carol@pbx.example.com"]  # from the second tree
    assert dns.enum("+31209999999") == []
    assert dns.enum("0201234567") == [] and dns.enum("") == []  # not E.164: nothing asked
    assert relay.count == 1 + 2 + 2


def test_domain_with_srv_to_ordered_peers(relay):
    dns = resolver([("127.0.0.1", relay.port)])
    assert dns.locate(parse_uri("sip:bob@example.com")) == [
        Peer("udp", "192.0.2.1", 5060), Peer("udp", "192.0.2.2", 5070)]
    # NAPTR (none) and _sip._udp SRV; the targets' addresses came with the SRV answer
    assert relay.count == 2
    assert dns.locate(parse_uri("sip:bob@naptr.example.com")) == [Peer("tcp", "192.0.2.2", 5062)]
    assert dns.locate(parse_uri("sip:bob@other.test")) == [Peer("udp", "198.51.100.7", 5060)]
    assert dns.locate(parse_uri("sips:bob@other.test")) == [Peer("tls", "198.51.100.7", 5061)]
    assert dns.locate(parse_uri("sip:bob@other.test:5080;transport=tcp")) == [Peer("tcp", "198.51.100.7", 5080)]
    assert dns.locate(parse_uri("sip:bob@nowhere.example.com")) == []
    assert dns.address("sip1.example.com") == ["192.0.2.1"]
    assert dns.address("192.0.2.9") == ["192.0.2.9"]


def test_answers_are_cached_for_their_ttl(relay):
    clock = Clock()
    dns = resolver([("127.0.0.1", relay.port)], clock)

    def ask():
        return (dns.enum(NUMBER), dns.enum("+31209999999"), dns.locate(parse_uri("sip:bob@example.com")),
                dns.locate(parse_uri("sip:bob@other.test")))

    first = ask()
    assert first[0] and first[2] and first[3] and not first[1]
    sent, queries = relay.count, dns.queries
    # the look-ups answered "no such name / no data": the unknown number in both trees,
    # example.com NAPTR, other.test NAPTR and its three SRV
    negative = 2 + 1 + 1 + 3
    assert sent == queries > 0
    clock.now += 29
    assert ask() == first
    assert relay.count == sent and dns.queries == queries  # all from the cache, negative ones too

    clock.now += 2  # past the negative TTL of example.com (its SOA minimum, 30 s): its
    assert ask() == first  # NAPTR "no data" is asked again; the other negative answers
    assert relay.count == sent + 1  # (SOA TTL or minimum >= 300) are kept MAX_NEGATIVE_TTL

    clock.now += 30  # past MAX_NEGATIVE_TTL (60 s): every negative answer is asked again
    assert ask() == first
    assert relay.count == sent + 1 + negative

    clock.now += 300  # past every TTL (300 s for the records, 120 s for other.test's A)
    assert ask() == first
    assert relay.count == sent * 2 + 1 + negative


def test_failover_to_the_next_server_and_bounded_timeout(relay):
    black_hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never answers
    black_hole.bind(("127.0.0.1", 0))
    refused = free_port(socket.SOCK_DGRAM)  # nothing there: ICMP port unreachable
    try:
        dns = resolver([("127.0.0.1", refused), ("127.0.0.1", black_hole.getsockname()[1]),
                        ("127.0.0.1", relay.port)], timeout=0.3)
        start = time.monotonic()
        assert dns.enum(NUMBER) == ["sip:alice@example.com"]
        elapsed = time.monotonic() - start
        assert 0.25 < elapsed < 1.5
        assert relay.count == 1

        # the black hole timed out once: skipped for a while, the next look-up is quick
        start = time.monotonic()
        assert dns.locate(parse_uri("sip:bob@example.com")) == [
            Peer("udp", "192.0.2.1", 5060), Peer("udp", "192.0.2.2", 5070)]
        # one timeout (the RFC 3263 client's own) at most: one per query would be 0.6 s or more
        assert time.monotonic() - start < 0.9

        # a dead server costs one timeout per client, not one per query
        dead = resolver([("127.0.0.1", black_hole.getsockname()[1])], timeout=0.2)
        start = time.monotonic()
        assert dead.enum(NUMBER) == []  # two trees: one timeout, then the server is skipped
        assert dead.locate(parse_uri("sip:bob@example.com")) == []  # NAPTR, 3 SRV, A, AAAA
        assert time.monotonic() - start < 1.0
        assert dead.enum_client.failures == 2 and dead.dns_client.failures == 6
        assert dead.queries == 2
        before = dead.queries
        assert dead.enum(NUMBER) == []  # "no answer" is remembered for a moment
        assert dead.queries == before
    finally:
        black_hole.close()


def test_from_config():
    config = validate({"enumdns": {"listen": "0.0.0.0:5399", "enum_tlds": ["e164.arpa", "E164.ORG"]},
                       "sipproxy": {"dns_timeout": 0.5, "dns_cache_size": 500}})
    dns = DnsResolver.from_config(config)
    assert dns.enum_client.servers == [("127.0.0.1", 5399)]
    assert dns.enum_client.timeout == 0.5 and dns.cache.size == 500
    assert dns.enum_tlds == ["e164.arpa", "e164.org"]
    assert dns.dns_client.servers  # the system's (/etc/resolv.conf)
    assert dns.address("localhost") and dns.queries == 0  # /etc/hosts, no query
    config = validate({"sipproxy": {"enum_servers": ["127.0.0.1:5400"], "dns_servers": ["[::1]:5401", "127.0.0.2:53"]}})
    dns = DnsResolver.from_config(config, transports={"udp"})
    assert dns.enum_client.servers == [("127.0.0.1", 5400)]
    assert dns.dns_client.servers == [("::1", 5401), ("127.0.0.2", 53)]
    assert dns.hosts == {} and dns.transports == {"udp"}


def test_read_hosts(tmp_path):
    path = tmp_path / "hosts"
    path.write_text("127.0.0.1 localhost loopback\n::1 localhost ip6-localhost # v6\n"
                    "# comment\n\nbogus line\n192.0.2.5 Gateway.Example.\nfe80::1%eth0 linklocal\n")
    hosts = read_hosts(str(path))
    assert hosts["localhost"] == ["127.0.0.1", "::1"]
    assert hosts["gateway.example"] == ["192.0.2.5"] and hosts["linklocal"] == ["fe80::1"]
    assert read_hosts(str(tmp_path / "missing")) == {}


def test_under_gevent_lookups_cooperate_and_share_one_query(enumdns):
    """In a monkey-patched process (as python -m sipproxy runs): while one greenlet waits
    for a server that never answers, the others keep running; 20 greenlets asking the same
    question at once send one query and all get the answer."""
    script = textwrap.dedent(f"""
        import socket
        from gevent import monkey
        monkey.patch_all()
        import gevent
        from sipproxy.runtime.dns import DnsResolver
        hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        hole.bind(("127.0.0.1", 0))
        waiting = DnsResolver([hole.getsockname()], [], ["e164.arpa"], timeout=0.5, hosts={{}})
        ticks = []
        def ticker():
            while True:
                gevent.sleep(0.01)
                ticks.append(1)
        tick = gevent.spawn(ticker)
        gevent.spawn(waiting.enum, "{NUMBER}").join(5)
        tick.kill()
        dns = DnsResolver([("127.0.0.1", {enumdns})], [], ["e164.arpa"], hosts={{}})
        jobs = [gevent.spawn(dns.enum, "{NUMBER}") for _ in range(20)]
        gevent.joinall(jobs, timeout=10)
        print(len(ticks), dns.queries, sorted({{",".join(j.value) for j in jobs}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    ticks, queries, answers = out.stdout.split(maxsplit=2)
    assert int(ticks) >= 20  # the hub ran during the 0.5 s wait (50 ticks when idle)
    assert queries == "1"
    assert answers.strip() == "['sip:alice@example.com']"
