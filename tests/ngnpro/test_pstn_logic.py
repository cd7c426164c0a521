"""PSTN logic of SipPort against a real database (no SOAP): trusted peers, carriers,
gateways, gateway rules and routes; validation, cascades, change log and scoping."""

from __future__ import annotations

from sqlalchemy import func, select

from ngnpro import sip_pstn as sp
from ngnpro.models.changes import ChangeLogEntry
from ngnpro.models.lcr import Gateway as GatewayRow
from ngnpro.models.lcr import GatewayRule as RuleRow
from ngnpro.models.lcr import Route as RouteRow
from ngnpro.pstn_types import (
    Carrier,
    Gateway,
    GatewayQuery,
    GatewayRule,
    GatewayRuleFilter,
    GatewayRuleQuery,
    Route,
    RouteFilter,
    RouteQuery,
    TrustedPeer,
    TrustedPeerFilter,
    TrustedPeerQuery,
)
from ngnpro.soap.context import Scope
from ngnpro.soap.types import OrderBy
from tests.ngnpro.logic import ADMIN, call, code_of, count, reseller

CUSTOMER = Scope(customer_id=11, visible_ids=frozenset({11}), login_id=11, parent_reseller=10)


def test_trusted_peers(db):
    call(db, sp.add_peer, ADMIN, TrustedPeer(ip="192.0.2.7", description="PBX one", prefix="0031", strip=1,
                                             enumLookup=True, transit=False, msteams=True, tags="pbx,nl"))
    assert code_of(db, sp.add_peer, ADMIN, TrustedPeer(ip="192.0.2.7")) == 1020
    for bad in [TrustedPeer(ip="192.0.2.300"), TrustedPeer(ip="host.example.com"), TrustedPeer(ip="2001:db8::1", prefix="12a"),
                TrustedPeer(ip="2001:db8::1", strip=-1), TrustedPeer(ip="2001:db8::1", description="x" * 300)]:
        assert code_of(db, sp.add_peer, ADMIN, bad) == 1040
    call(db, sp.add_peer, ADMIN, TrustedPeer(ip="2001:DB8:0::2", description="v6"))
    peers = call(db, sp.get_peers, ADMIN, TrustedPeerQuery(orderBy=OrderBy(attribute="ip", direction="DESC")))
    assert [p.ip for p in peers.peers] == ["2001:db8::2", "192.0.2.7"] and peers.total == 2
    p = peers.peers[1]
    assert (p.prefix, p.strip, p.enumLookup, p.transit, p.msteams, p.blocked) == ("0031", 1, True, False, True, False)
    assert call(db, sp.get_peers, ADMIN, TrustedPeerQuery(filter=TrustedPeerFilter(tags="%nl%"))).total == 1
    assert call(db, sp.get_peers, ADMIN, TrustedPeerQuery(filter=TrustedPeerFilter(msteams=True))).total == 1
    assert call(db, sp.get_peers, ADMIN, TrustedPeerQuery(filter=TrustedPeerFilter(msteams=False))).total == 2
    p.description, p.blocked = "renamed", True
    call(db, sp.update_peer, ADMIN, p)
    q = call(db, sp.get_peers, ADMIN, TrustedPeerQuery(filter=TrustedPeerFilter(ip="192.0.2.7"))).peers[0]
    assert (q.description, q.blocked, q.prefix) == ("renamed", True, "0031")
    assert code_of(db, sp.update_peer, ADMIN, TrustedPeer(ip="192.0.2.8")) == 1021
    call(db, sp.delete_peer, ADMIN, "192.0.2.7")
    assert code_of(db, sp.delete_peer, ADMIN, "192.0.2.7") == 1021
    with db() as s:
        keys = [k for (k,) in s.execute(select(ChangeLogEntry.key).where(ChangeLogEntry.topic == "trusted_peer"))]
    assert keys == ["192.0.2.7", "2001:db8::2", "192.0.2.7", "192.0.2.7"]


def test_lcr_chain_and_cascade(db):
    call(db, sp.add_carrier, ADMIN, Carrier(name="Carrier A"))
    cid = call(db, sp.get_carriers, ADMIN, None).carriers[0].id
    assert code_of(db, sp.add_carrier, ADMIN, Carrier(name="  ")) == 1040
    call(db, sp.add_gateway, ADMIN, Gateway(name="gw1", carrier_id=cid, ip="192.0.2.50", port=5080))
    call(db, sp.add_gateway, ADMIN, Gateway(name="gw2", carrier_id=cid, ip="GW.Example.NET", transport="TCP"))
    assert code_of(db, sp.add_gateway, ADMIN, Gateway(name="gw3", carrier_id=999, ip="192.0.2.1")) == 1022
    assert code_of(db, sp.add_gateway, ADMIN, Gateway(name="gw3", carrier_id=cid, ip="bad host")) == 1040
    assert code_of(db, sp.add_gateway, ADMIN, Gateway(name="gw3", carrier_id=cid, ip="192.0.2.1", port=70000)) == 1040
    assert code_of(db, sp.add_gateway, ADMIN, Gateway(name="gw3", carrier_id=cid, ip="192.0.2.1", transport="sctp")) == 1040
    gws = call(db, sp.get_gateways, ADMIN, GatewayQuery(orderBy=OrderBy(attribute="name")))
    assert [(g.name, g.carrier, g.ip, g.port, g.transport) for g in gws.gateways] == [
        ("gw1", "Carrier A", "192.0.2.50", 5080, "udp"), ("gw2", "Carrier A", "gw.example.net", 5060, "tcp")]
    gid = gws.gateways[0].id
    call(db, sp.add_rule, ADMIN, GatewayRule(gateway_id=gid, prefix="0031", strip=4, prepend="+31", minLength=8, maxLength=15))
    assert code_of(db, sp.add_rule, ADMIN, GatewayRule(gateway_id=gid, minLength=9, maxLength=3)) == 1040
    assert code_of(db, sp.add_rule, ADMIN, GatewayRule(gateway_id=4242)) == 1022
    rule = call(db, sp.get_rules, ADMIN, GatewayRuleQuery(filter=GatewayRuleFilter(carrier_id=cid))).gateway_rules[0]
    assert (rule.gateway, rule.carrier, rule.carrier_id, rule.prefix, rule.strip, rule.prepend) == (
        "gw1", "Carrier A", cid, "0031", 4, "+31")
    rule.prefix = "0032"
    call(db, sp.update_rule, ADMIN, rule)
    assert call(db, sp.get_rules, ADMIN, None).gateway_rules[0].prefix == "0032"

    call(db, sp.add_routes, ADMIN, [Route(carrier_id=cid, prefix="0031", priority=5), Route(carrier_id=cid, prefix="")])
    assert code_of(db, sp.add_routes, ADMIN, [Route(carrier_id=cid, prefix="0044"), Route(carrier_id=77)]) == 1022
    assert code_of(db, sp.add_routes, ADMIN, []) == 1040
    routes = call(db, sp.get_routes, ADMIN, RouteQuery(orderBy=OrderBy(attribute="priority")))
    assert [(r.prefix, r.priority, r.carrier) for r in routes.routes] == [("0031", 5, "Carrier A"), ("", 10, "Carrier A")]
    first = routes.routes[0]
    first.priority = 1
    call(db, sp.update_routes, ADMIN, [first])
    assert call(db, sp.get_routes, ADMIN, RouteQuery(filter=RouteFilter(prefix="0031"))).routes[0].priority == 1
    assert code_of(db, sp.update_routes, ADMIN, [Route(id=9999, priority=3)]) == 1022
    call(db, sp.delete_routes, ADMIN, [Route(id=first.id)])
    assert code_of(db, sp.delete_routes, ADMIN, [Route(id=first.id)]) == 1022
    assert count(db, RouteRow) == 1

    call(db, sp.delete_gateway, ADMIN, gid)
    assert count(db, RuleRow) == 0 and count(db, GatewayRow) == 1
    call(db, sp.delete_carrier, ADMIN, cid)
    assert count(db, GatewayRow) == 0 and count(db, RouteRow) == 0
    assert code_of(db, sp.delete_carrier, ADMIN, cid) == 1022
    assert code_of(db, sp.update_carrier, ADMIN, Carrier(id=cid, name="x")) == 1022
    with db() as s:
        assert s.execute(select(func.count()).where(ChangeLogEntry.topic == "lcr")).scalar_one() == 10  # one per successful write


def test_scoping(db):
    r10, r20 = reseller(10), reseller(20)
    assert code_of(db, sp.add_carrier, CUSTOMER, Carrier(name="mine")) == 9002
    assert code_of(db, sp.get_peers, CUSTOMER, None) == 9002
    assert code_of(db, sp.get_routes, CUSTOMER, None) == 9002
    call(db, sp.add_carrier, r10, Carrier(name="ten", reseller=20))  # reseller cannot choose another reseller
    call(db, sp.add_carrier, r20, Carrier(name="twenty"))
    ten = call(db, sp.get_carriers, r10, None)
    assert [(c.name, c.reseller) for c in ten.carriers] == [("ten", 10)]
    twenty_id = call(db, sp.get_carriers, r20, None).carriers[0].id
    assert code_of(db, sp.add_gateway, r10, Gateway(name="g", carrier_id=twenty_id, ip="192.0.2.1")) == 9002
    assert code_of(db, sp.add_routes, r10, [Route(carrier_id=twenty_id)]) == 9002
    assert code_of(db, sp.delete_carrier, r10, twenty_id) == 9002
    call(db, sp.add_gateway, r20, Gateway(name="g20", carrier_id=twenty_id, ip="192.0.2.2"))
    call(db, sp.add_peer, r20, TrustedPeer(ip="192.0.2.20"))
    assert call(db, sp.get_gateways, r10, None).total == 0
    assert call(db, sp.get_gateways, r20, None).gateways[0].reseller == 20
    assert call(db, sp.get_peers, r10, None).total == 0
    assert code_of(db, sp.delete_peer, r10, "192.0.2.20") == 9002
    assert code_of(db, sp.update_peer, r10, TrustedPeer(ip="192.0.2.20", description="x")) == 9002
    assert call(db, sp.get_carriers, ADMIN, None).total == 2
