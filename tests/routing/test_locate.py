"""RFC 3263 server location decisions (sipproxy.routing.locate), on a table of records."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from sipproxy.routing.locate import locate, order_srv, sip_naptrs, srv_name
from sipproxy.routing.resolver import Naptr, Srv
from sipproxy.sip.addressing import Peer
from sipproxy.sip.uri import parse_uri


class FakeDns:
    """A DnsLookup from dicts; remembers what was asked."""

    def __init__(self, naptr=None, srv=None, address=None):
        self.naptrs = naptr or {}
        self.srvs = srv or {}
        self.addresses = address or {}
        self.asked: list[tuple[str, str]] = []

    def naptr(self, name):
        self.asked.append(("NAPTR", name))
        return self.naptrs.get(name, [])

    def srv(self, name):
        self.asked.append(("SRV", name))
        return self.srvs.get(name, [])

    def address(self, host):
        self.asked.append(("A", host))
        return self.addresses.get(host, [])


def loc(uri, dns, seed=1, **kw):
    return locate(parse_uri(uri), dns, random.Random(seed), **kw)


def s_naptr(order, pref, service, replacement, flags="s", regexp=""):
    return Naptr(order, pref, flags, service, regexp, replacement)


ADDR = {"sip1.example.com": ["192.0.2.1"], "sip2.example.com": ["192.0.2.2"],
        "tls.example.com": ["192.0.2.3"], "example.com": ["192.0.2.99"],
        "dual.example.com": ["192.0.2.4", "2001:db8::4"]}


# -- no DNS: an IP address, an explicit port ----------------------------------------------

@pytest.mark.parametrize("uri, peer", [
    ("sip:alice@192.0.2.7", Peer("udp", "192.0.2.7", 5060)),
    ("sip:alice@192.0.2.7:5070", Peer("udp", "192.0.2.7", 5070)),
    ("sip:alice@192.0.2.7;transport=tcp", Peer("tcp", "192.0.2.7", 5060)),
    ("sip:alice@192.0.2.7;transport=TLS", Peer("tls", "192.0.2.7", 5061)),
    ("sips:alice@192.0.2.7", Peer("tls", "192.0.2.7", 5061)),
    ("sips:alice@192.0.2.7;transport=tcp", Peer("tls", "192.0.2.7", 5061)),
    ("sip:alice@[2001:db8::1]:5080", Peer("udp", "2001:db8::1", 5080)),
    ("sip:alice@example.com;maddr=192.0.2.8", Peer("udp", "192.0.2.8", 5060)),
])
def test_ip_target_needs_no_dns(uri, peer):
    dns = FakeDns()
    assert loc(uri, dns) == [peer]
    assert dns.asked == []


def test_explicit_port_skips_naptr_and_srv():
    dns = FakeDns(naptr={"example.com": [s_naptr(10, 10, "SIP+D2T", "_sip._tcp.example.com")]},
                  srv={"_sip._udp.example.com": [Srv(10, 10, 5060, "sip1.example.com")]},
                  address={"example.com": ["192.0.2.99", "192.0.2.98"]})
    assert loc("sip:alice@example.com:5090", dns) == [Peer("udp", "192.0.2.99", 5090),
                                                       Peer("udp", "192.0.2.98", 5090)]
    assert dns.asked == [("A", "example.com")]
    assert loc("sips:alice@example.com:5091", dns) == [Peer("tls", "192.0.2.99", 5091),
                                                        Peer("tls", "192.0.2.98", 5091)]


# -- transport parameter ------------------------------------------------------------------

def test_transport_param_uses_its_srv():
    dns = FakeDns(srv={"_sip._tcp.example.com": [Srv(10, 0, 5070, "sip2.example.com")]}, address=ADDR)
    assert loc("sip:alice@example.com;transport=tcp", dns) == [Peer("tcp", "192.0.2.2", 5070)]
    assert ("NAPTR", "example.com") not in dns.asked


def test_transport_param_without_srv_uses_the_address():
    dns = FakeDns(address=ADDR)
    assert loc("sip:alice@example.com;transport=tls", dns) == [Peer("tls", "192.0.2.99", 5061)]
    assert dns.asked == [("SRV", "_sips._tcp.example.com"), ("A", "example.com")]


@pytest.mark.parametrize("uri", [
    "sip:alice@example.com;transport=sctp", "sips:alice@example.com;transport=udp",
    "sip:alice@192.0.2.1;transport=ws",
])
def test_transports_we_cannot_speak(uri):
    assert loc(uri, FakeDns(address=ADDR)) == []


def test_transport_param_we_do_not_listen_on():
    assert loc("sip:alice@example.com;transport=tls", FakeDns(address=ADDR), transports={"udp"}) == []


# -- NAPTR --------------------------------------------------------------------------------

def test_naptr_order_then_preference_chooses_the_transport():
    dns = FakeDns(
        naptr={"example.com": [
            s_naptr(20, 10, "SIP+D2U", "_sip._udp.example.com"),
            s_naptr(10, 20, "SIP+D2T", "_sip._tcp.example.com"),
            s_naptr(10, 10, "SIPS+D2T", "_sips._tcp.example.com"),
        ]},
        srv={"_sips._tcp.example.com": [Srv(0, 0, 5061, "tls.example.com")],
             "_sip._tcp.example.com": [Srv(0, 0, 5060, "sip2.example.com")],
             "_sip._udp.example.com": [Srv(0, 0, 5060, "sip1.example.com")]},
        address=ADDR)
    assert loc("sip:alice@example.com", dns) == [Peer("tls", "192.0.2.3", 5061)]
    # without a TLS listener the next NAPTR (order 10, preference 20) wins
    assert loc("sip:alice@example.com", dns, transports={"udp", "tcp"}) == [Peer("tcp", "192.0.2.2", 5060)]
    assert loc("sip:alice@example.com", dns, transports={"udp"}) == [Peer("udp", "192.0.2.1", 5060)]


def test_naptr_whose_srv_is_empty_falls_to_the_next():
    dns = FakeDns(
        naptr={"example.com": [s_naptr(10, 10, "SIP+D2T", "_sip._tcp.example.com."),
                               s_naptr(20, 10, "SIP+D2U", "_sip._udp.example.com.")]},
        srv={"_sip._udp.example.com": [Srv(0, 0, 5062, "sip1.example.com")]}, address=ADDR)
    assert loc("sip:alice@example.com", dns) == [Peer("udp", "192.0.2.1", 5062)]


def test_sips_uses_only_sips_naptr():
    dns = FakeDns(
        naptr={"example.com": [s_naptr(10, 10, "SIP+D2U", "_sip._udp.example.com"),
                               s_naptr(20, 10, "SIPS+D2T", "_sips._tcp.example.com")]},
        srv={"_sip._udp.example.com": [Srv(0, 0, 5060, "sip1.example.com")],
             "_sips._tcp.example.com": [Srv(0, 0, 5061, "tls.example.com")]}, address=ADDR)
    assert loc("sips:alice@example.com", dns) == [Peer("tls", "192.0.2.3", 5061)]


def test_sip_naptrs_filters_the_unusable():
    records = [
        s_naptr(10, 10, "SIP+D2S", "_sip._sctp.example.com"),          # SCTP: not ours
        s_naptr(10, 10, "SIP+D2U", "_sip._udp.example.com", flags="a"),  # not an SRV step
        s_naptr(10, 10, "SIP+D2U", "_sip._udp.example.com", regexp="!x!y!"),
        s_naptr(10, 10, "SIP+D2U", ""),
        s_naptr(10, 10, "SIP+D2U", "."),
        s_naptr(10, 10, "E2U+sip", "_sip._udp.example.com"),
        "junk", None,
        s_naptr(30, 5, "sip+d2t", "_sip._tcp.example.com", flags="S"),
        s_naptr(30, 1, "SIP+D2U", "_sip._udp.example.com."),
    ]
    assert sip_naptrs(records) == [("udp", "_sip._udp.example.com"), ("tcp", "_sip._tcp.example.com")]
    assert sip_naptrs(records, secure=True) == []


# -- SRV without NAPTR --------------------------------------------------------------------

def test_srv_in_transport_order_without_naptr():
    dns = FakeDns(srv={"_sip._tcp.example.com": [Srv(10, 0, 5060, "sip2.example.com")],
                       "_sips._tcp.example.com": [Srv(10, 0, 5061, "tls.example.com")]}, address=ADDR)
    assert loc("sip:alice@example.com", dns) == [Peer("tcp", "192.0.2.2", 5060)]
    assert dns.asked[:3] == [("NAPTR", "example.com"), ("SRV", "_sip._udp.example.com"),
                             ("SRV", "_sip._tcp.example.com")]
    assert loc("sips:alice@example.com", dns) == [Peer("tls", "192.0.2.3", 5061)]


def test_srv_priority_order_and_failover_list():
    dns = FakeDns(srv={"_sip._udp.example.com": [
        Srv(20, 0, 5060, "sip2.example.com"), Srv(10, 0, 5060, "sip1.example.com"),
        Srv(30, 0, 5060, "dual.example.com"), Srv(40, 0, 5060, "nowhere.example.com")]}, address=ADDR)
    assert loc("sip:alice@example.com", dns) == [
        Peer("udp", "192.0.2.1", 5060), Peer("udp", "192.0.2.2", 5060),
        Peer("udp", "192.0.2.4", 5060), Peer("udp", "2001:db8::4", 5060)]


def test_srv_duplicates_once():
    dns = FakeDns(srv={"_sip._udp.example.com": [
        Srv(10, 0, 5060, "sip1.example.com"), Srv(20, 0, 5060, "sip1.example.com.")]}, address=ADDR)
    assert loc("sip:alice@example.com", dns) == [Peer("udp", "192.0.2.1", 5060)]


def test_srv_dot_target_means_not_available():
    dns = FakeDns(srv={"_sip._udp.example.com": [Srv(0, 0, 0, "")]}, address=ADDR)
    assert loc("sip:alice@example.com", dns) == []


def test_no_naptr_no_srv_uses_the_address():
    dns = FakeDns(address=ADDR)
    assert loc("sip:alice@example.com", dns) == [Peer("udp", "192.0.2.99", 5060)]
    assert loc("sips:alice@Example.COM.", dns) == [Peer("tls", "192.0.2.99", 5061)]
    assert loc("sip:alice@example.com", dns, transports={"tcp"}) == [Peer("tcp", "192.0.2.99", 5060)]
    assert loc("sip:alice@unknown.example", dns) == []


@pytest.mark.parametrize("uri", ["tel:+31201234567", "mailto:a@example.com", "http://example.com/"])
def test_not_sip(uri):
    assert loc(uri, FakeDns(address=ADDR)) == []


def test_srv_name():
    assert srv_name("udp", "example.com") == "_sip._udp.example.com"
    assert srv_name("tcp", "example.com") == "_sip._tcp.example.com"
    assert srv_name("tls", "example.com") == "_sips._tcp.example.com"


# -- RFC 2782 ordering --------------------------------------------------------------------

def test_order_srv_priority_first_and_seedable():
    records = [Srv(20, 100, 5060, "c"), Srv(10, 1, 5060, "a"), Srv(10, 1, 5060, "b"), Srv(30, 0, 5060, "d")]
    first = order_srv(records, random.Random(7))
    assert [r.priority for r in first] == [10, 10, 20, 30]
    assert first == order_srv(records, random.Random(7))  # the same seed, the same order


def test_order_srv_weights_are_proportional():
    records = [Srv(10, 60, 5060, "heavy"), Srv(10, 30, 5060, "medium"), Srv(10, 10, 5060, "light")]
    rng = random.Random(42)
    firsts = Counter(order_srv(records, rng)[0].target for _ in range(6000))
    assert 3300 < firsts["heavy"] < 3900
    assert 1500 < firsts["medium"] < 2100
    assert 400 < firsts["light"] < 800


def test_order_srv_zero_weight_is_rarely_first():
    records = [Srv(10, 0, 5060, "zero"), Srv(10, 50, 5060, "a"), Srv(10, 50, 5060, "b")]
    rng = random.Random(3)
    orders = [order_srv(records, rng) for _ in range(2000)]
    assert all(len(o) == 3 for o in orders)
    firsts = Counter(o[0].target for o in orders)
    assert firsts["zero"] < 60  # picked first only when the draw is 0 (1 in 101)
    all_zero = [Srv(10, 0, 5060, "x"), Srv(10, 0, 5060, "y")]
    assert [r.target for r in order_srv(all_zero, rng)] == ["x", "y"]


def test_order_srv_leaves_out_unusable():
    records = [Srv(10, 0, 5060, ""), Srv(10, 0, 5060, "."), Srv(10, 0, 0, "a"), Srv(10, 0, 70000, "b"),
               Srv(20, 0, 5060, "ok")]
    assert [r.target for r in order_srv(records, random.Random(1))] == ["ok"]
