"""sipproxy.runtime.dns without enumdns: the cache, and servers that answer badly (small
DNS servers made with dnspython in a thread)."""

from __future__ import annotations

import socket
import threading

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from sipproxy.runtime.dns import DnsCache, DnsClient, DnsResolver
from sipproxy.sip.uri import parse_uri


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


class FakeServer:
    """A UDP DNS server answering ``handler(query) -> bytes | None`` (None: silence)."""

    def __init__(self, handler) -> None:
        self.handler = handler
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.address = self.sock.getsockname()
        self.count = 0
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            try:
                data, client = self.sock.recvfrom(65535)
            except OSError:
                continue
            self.count += 1
            answer = self.handler(dns.message.from_wire(data))
            if answer is not None:
                self.sock.sendto(answer, client)

    def close(self) -> None:
        self.running = False
        self.thread.join(2)
        self.sock.close()


def answering(rdtype_text: str, *values: str, ttl: int = 300):
    def handler(query):
        response = dns.message.make_response(query)
        q = query.question[0]
        if dns.rdatatype.to_text(q.rdtype) == rdtype_text:
            response.answer.append(dns.rrset.from_text(q.name, ttl, "IN", rdtype_text, *values))
        return response.to_wire()
    return handler


@pytest.fixture
def servers():
    made = []

    def make(handler):
        server = FakeServer(handler)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


def test_cache_expiry_and_bound():
    clock = Clock()
    cache = DnsCache(3, clock)
    cache.put("a", [1], 10)
    cache.put("b", [2], 20)
    cache.put("zero", [0], 0)  # a TTL of 0 is not kept
    assert cache.get("a") == [1] and not isinstance(cache.get("zero"), list) and len(cache) == 2
    clock.now += 10
    assert not isinstance(cache.get("a"), list) and cache.get("b") == [2]
    assert len(cache) == 1  # the expired one is gone
    cache.put("c", [3], 60)
    cache.put("d", [4], 60)
    cache.get("b")  # used: "c" is now the least recently used
    cache.put("e", [5], 60)
    assert len(cache) == 3
    assert [cache.get(k) for k in ("b", "d", "e")] == [[2], [4], [5]]
    assert not isinstance(cache.get("c"), list)


def test_cached_answers_are_copies(servers):
    server = servers(answering("A", "192.0.2.1"))
    client = DnsClient([server.address], 0.5)
    first = client.lookup("host.example", dns.rdatatype.A)
    first.clear()
    assert [rd.address for rd in client.lookup("HOST.example.", dns.rdatatype.A)] == ["192.0.2.1"]
    assert server.count == 1 and client.queries == 1


@pytest.mark.parametrize("bad", [
    lambda q: b"garbage",
    lambda q: dns.message.make_response(q).to_wire()[:5],
    lambda q: _rcode(q, dns.rcode.SERVFAIL),
    lambda q: _rcode(q, dns.rcode.REFUSED),
    lambda q: _wrong_id(q),
])
def test_a_bad_answer_moves_to_the_next_server(servers, bad):
    broken = servers(bad)
    good = servers(answering("SRV", "10 0 5060 sip.example.com."))
    resolver = DnsResolver([], [broken.address, good.address], timeout=0.3, hosts={})
    assert resolver.srv("_sip._udp.example.com") == [(10, 0, 5060, "sip.example.com")]
    assert broken.count >= 1 and good.count == 1


def test_records_that_are_no_sip_give_nothing(servers):
    server = servers(answering("NAPTR", '10 10 "u" "E2U+sip" "!^.*$!mailto:x@example.com!" .',
                                '10 20 "u" "E2U+sip" "broken" .', '10 30 "" "" "" next.example.'))
    resolver = DnsResolver([server.address], [server.address], ["e164.arpa"], timeout=0.3, hosts={})
    assert resolver.enum("+31201234567") == []
    assert resolver.locate(parse_uri("sip:a@example.com")) == []  # NAPTR but no SIP+D2x, no SRV, no A


def _rcode(query, rcode):
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    return response.to_wire()


def _wrong_id(query):
    response = dns.message.make_response(query)
    response.id = (query.id + 1) % 65536
    return response.to_wire()
