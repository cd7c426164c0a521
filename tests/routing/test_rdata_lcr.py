"""LCR (sipproxy.routing.lcr): longest prefix, carriers by priority, gateways, rules."""

from __future__ import annotations

import pytest

from sipproxy.directory.routingdata import (
    Carrier,
    Gateway,
    LcrTable,
    Route,
    Rule,
    TrustedPeer,
    route_prefix_key,
)
from sipproxy.routing.lcr import (
    Attempt,
    apply_rules,
    attempts,
    e164_digits,
    peer_number,
    select_routes,
)


def gw(gid: int, carrier: int, host: str = "", *rules: Rule, transport: str = "udp", port: int = 5060) -> Gateway:
    return Gateway(gid, f"gw{gid}", carrier, transport, host or f"192.0.2.{gid}", port, tuple(rules))


def carrier(cid: int, *gateways: Gateway) -> Carrier:
    return Carrier(cid, f"carrier{cid}", tuple(gateways))


A = carrier(1, gw(11, 1), gw(12, 1))
B = carrier(2, gw(21, 2, "", Rule(1, "0031", 4, "0")))
C = carrier(3, gw(31, 3, "gw.example.net", transport="tcp", port=5080))
D = carrier(4)  # no gateways


def table(*routes: Route) -> LcrTable:
    return LcrTable.build(routes)


def test_e164_digits_accepts_the_usual_forms():
    assert e164_digits("+31201234567") == "31201234567"
    assert e164_digits("0031201234567") == "31201234567"
    assert e164_digits("31201234567") == "31201234567"
    assert e164_digits(" +31 (20) 123-45.67 ") == "31201234567"
    assert e164_digits("+1" + "2" * 14) == "1" + "2" * 14  # 15 digits
    for bad in ["", "+", "00", "0201234567", "+31abc", "+1" + "2" * 15, "sip:1", "*31#", "000031"]:
        assert e164_digits(bad) is None, bad


@pytest.mark.parametrize("prefix, key", [
    ("", ""), ("0031", "31"), ("+31", "31"), ("31", "31"), ("00", ""), ("+", ""),
    ("0", None), ("020", None), ("31*", None), ("#", None), (" 0049 ", "49"),
])
def test_route_prefixes_compare_as_e164_digits(prefix, key):
    assert route_prefix_key(prefix) == key


def test_longest_prefix_wins_over_priority():
    t = table(Route(1, "0031", "", 1, A), Route(2, "003120", "", 50, B), Route(3, "", "", 0, C))
    assert [r.id for r in select_routes(t, "31201234567")] == [2]
    assert [r.id for r in select_routes(t, "31101234567")] == [1]
    assert [r.id for r in select_routes(t, "4930123456")] == [3]  # empty prefix: every number


def test_same_prefix_routes_are_carriers_by_priority_then_age():
    t = table(Route(5, "0031", "", 20, B), Route(3, "+31", "", 10, A), Route(4, "31", "", 20, C),
              Route(9, "0031", "", 5, A))
    # one carrier named twice is tried once, at its best priority
    assert [(r.id, r.carrier.id) for r in select_routes(t, "31201234567")] == [(9, 1), (4, 3), (5, 2)]


def test_no_route():
    t = table(Route(1, "0031", "", 1, A))
    assert select_routes(t, "4930123456") == []
    assert attempts(t, "+4930123456") == []
    assert attempts(LcrTable.build([]), "+31201234567") == []
    assert attempts(LcrTable(), "+31201234567") == []


def test_national_prefix_never_matches():
    t = table(Route(1, "0", "", 1, A))
    assert attempts(t, "+31201234567") == [] and t.index == {}


def test_originator_routes_and_fallback():
    t = table(Route(1, "0031", "", 10, A), Route(2, "0031", "pbx1", 10, B), Route(3, "0049", "", 10, C))
    assert [r.id for r in select_routes(t, "31201234567", "pbx1")] == [2]
    assert [r.id for r in select_routes(t, "31201234567", "")] == [1]
    assert [r.id for r in select_routes(t, "31201234567", "other")] == [1]  # no routes of its own
    assert [r.id for r in select_routes(t, "4930123", "pbx1")] == [3]  # its routes do not take it
    assert select_routes(t, "4930123", "pbx1", fallback=False) == []
    # an originator's own shorter prefix still beats the default table's longer one
    t2 = table(Route(1, "003120", "", 10, A), Route(2, "", "pbx1", 10, B))
    assert [r.id for r in select_routes(t2, "31201234567", "pbx1")] == [2]


def test_attempts_walk_carriers_then_gateways_with_rules():
    t = table(Route(1, "0031", "", 10, A), Route(2, "0031", "", 20, B), Route(3, "0031", "", 30, D),
              Route(4, "0031", "", 40, C))
    got = attempts(t, "+31201234567")
    assert [(a.gateway.id, a.number, a.carrier.id, a.route.id) for a in got] == [
        (11, "0031201234567", 1, 1), (12, "0031201234567", 1, 1),
        (21, "0201234567", 2, 2),  # rule: strip 0031, prepend 0
        (31, "0031201234567", 3, 4),  # carrier 4 has no gateway: skipped
    ]
    assert got[0].uri == "sip:0031201234567@192.0.2.11:5060"
    assert got[3].uri == "sip:0031201234567@gw.example.net:5080;transport=tcp"
    assert isinstance(got[0], Attempt)
    assert len(attempts(t, "+31201234567", max_attempts=2)) == 2
    assert attempts(t, "0031201234567") == got == attempts(t, "31201234567")
    assert attempts(t, "not a number") == []


def test_rules_most_specific_prefix_then_lowest_id():
    rules = (
        Rule(1, "", 0, "9"),  # catch-all
        Rule(2, "0031", 4, "0"),
        Rule(3, "003120", 2, "+"),
        Rule(4, "003120", 0, "X"),  # same prefix, later id: never chosen
    )
    assert apply_rules(rules, "0031201234567") == "+31201234567"
    assert apply_rules(rules, "0031101234567") == "0101234567"
    assert apply_rules(rules, "0049301234") == "90049301234"
    assert apply_rules((), "0049301234") == "0049301234"
    assert apply_rules((Rule(5, "0044", 4, "0"),), "0031201234567") == "0031201234567"  # no match


def test_rule_length_bounds_count_the_00_form():
    rules = (Rule(1, "0031", 4, "0", min_length=13, max_length=13), Rule(2, "00", 2, "+"))
    assert apply_rules(rules, "0031201234567") == "0201234567"  # 13 characters
    assert apply_rules(rules, "003120123456") == "+3120123456"  # 12: too short for rule 1
    assert apply_rules(rules, "00312012345678") == "+312012345678"  # 14: too long
    assert apply_rules((Rule(3, "", 0, "p", min_length=5),), "0031") == "0031"
    assert apply_rules((Rule(3, "", 0, "p", max_length=5),), "0031") == "p0031"


def test_rule_prefix_in_plus_form_is_compared_as_00():
    assert apply_rules((Rule(1, "+31", 4, ""),), "0031201234567") == "201234567"


def test_strip_longer_than_number():
    assert apply_rules((Rule(1, "", 40, "112"),), "0031") == "112"


def test_ipv6_gateway_uri_and_tls():
    g = Gateway(1, "v6", 1, "tls", "2001:db8::5", 5061)
    assert g.uri("0031") == "sip:0031@[2001:db8::5]:5061;transport=tls"


def test_peer_number_strips_then_prefixes():
    peer = TrustedPeer(ip="192.0.2.7", prefix="0031", strip=1)
    assert peer_number(peer, "0201234567") == "0031201234567"
    assert peer_number(TrustedPeer(ip="x"), "0031201234567") == "0031201234567"


def test_table_is_a_snapshot():
    routes = [Route(1, "0031", "", 10, A)]
    t = LcrTable.build(routes)
    routes.append(Route(2, "0049", "", 10, B))
    assert [r.id for r in t.routes] == [1]
    assert t.for_originator("") == (t.routes[0],) and t.for_originator("x") == ()
    assert t.originators() == frozenset({""})
    with pytest.raises(TypeError):
        t.index[""]["31"] = ()  # type: ignore[index]
    with pytest.raises(AttributeError):
        t.routes = ()  # type: ignore[misc]
