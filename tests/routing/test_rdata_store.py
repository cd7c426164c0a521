"""The routing data store (sipproxy.directory.routing): provisioned through ngnpro's own
write paths (the SipPort logic the SOAP methods run), cached, and seen within a second."""

from __future__ import annotations

import time

from sqlalchemy import delete, update

from ngnpro import sip_pstn as sp
from ngnpro import sip_settings
from ngnpro import sip_types as st
from ngnpro.models import EmergencyMapping, SipAccount, SipDomain, record_change
from ngnpro.models.changes import TOPIC_EMERGENCY, TOPIC_SIP_ACCOUNT, TOPIC_SIP_DOMAIN
from ngnpro.pstn_types import Carrier, Gateway, GatewayRule, Route, TrustedPeer
from sipproxy.directory.routing import RoutingData
from sipproxy.directory.routingdata import Diversion
from sipproxy.directory.store import Directory
from sipproxy.routing.lcr import attempts
from tests.ngnpro.logic import ADMIN, call
from tests.sipproxy_registrar.support import DOMAIN, provision


def _wait_for(predicate, timeout: float = 1.0) -> float:  # noqa: ANN001
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not seen within {timeout}s")
        time.sleep(0.02)


def _lcr(factory) -> tuple[int, int]:  # noqa: ANN001
    """Carrier A (two gateways, a rule on the first) and B (one TCP gateway), routes:
    0031 -> A (10) and B (20), 003120 -> B, default -> A; pbx1's 0049 -> B."""
    call(factory, sp.add_carrier, ADMIN, Carrier(name="A"))
    call(factory, sp.add_carrier, ADMIN, Carrier(name="B"))
    ids = {c.name: c.id for c in call(factory, sp.get_carriers, ADMIN, None).carriers}
    a, b = ids["A"], ids["B"]
    call(factory, sp.add_gateway, ADMIN, Gateway(name="a1", carrier_id=a, ip="192.0.2.11"))
    call(factory, sp.add_gateway, ADMIN, Gateway(name="a2", carrier_id=a, ip="192.0.2.12", port=5070))
    call(factory, sp.add_gateway, ADMIN, Gateway(name="b1", carrier_id=b, ip="GW.B.example", transport="tcp"))
    gws = {g.name: g.id for g in call(factory, sp.get_gateways, ADMIN, None).gateways}
    call(factory, sp.add_rule, ADMIN, GatewayRule(gateway_id=gws["a1"], prefix="0031", strip=4, prepend="0"))
    call(factory, sp.add_rule, ADMIN, GatewayRule(gateway_id=gws["a1"], prefix="00", strip=2, prepend="+"))
    for prefix, carrier, priority, originator in [("0031", a, 10, ""), ("0031", b, 20, ""), ("003120", b, 10, ""),
                                                  ("", a, 10, ""), ("0049", b, 10, "pbx1")]:
        call(factory, sp.add_routes, ADMIN, [Route(carrier_id=carrier, prefix=prefix, priority=priority,
                                                   originator=originator)])
    return a, b


def test_lcr_table_from_provisioning(db_url: str) -> None:
    engine, factory = provision(db_url, {})
    a, b = _lcr(factory)
    rd = RoutingData(factory, refresh_interval=0.05)
    table = rd.lcr()
    assert rd.lcr() is table and rd.loads == 1  # cached
    got = [(x.gateway.name, x.number, x.carrier.name) for x in attempts(table, "+31101234567")]
    assert got == [("a1", "0101234567", "A"), ("a2", "0031101234567", "A"), ("b1", "0031101234567", "B")]
    assert [x.uri for x in attempts(table, "+31201234567")] == ["sip:0031201234567@gw.b.example:5060;transport=tcp"]
    assert [x.number for x in attempts(table, "+4930123")] == ["+4930123", "004930123"]  # default route, rule 00
    assert [x.gateway.name for x in attempts(table, "+4930123", "pbx1")] == ["b1"]
    assert [r.prefix for r in rd.routes("pbx1")] == ["0049"] and len(rd.routes()) == 4
    gateway_a1 = next(g for g in table.routes[0].carrier.gateways if g.name == "a1")
    assert [r.prefix for r in gateway_a1.rules] == ["0031", "00"]  # most specific first
    engine.dispose()


def test_lcr_changes_seen_within_a_second(db_url: str) -> None:
    engine, factory = provision(db_url, {})
    a, b = _lcr(factory)
    rd = RoutingData(factory, refresh_interval=0.1)
    before = rd.lcr()
    call(factory, sp.add_routes, ADMIN, [Route(carrier_id=b, prefix="+3110", priority=1)])
    _wait_for(lambda: [x.gateway.name for x in attempts(rd.lcr(), "+31101234567")] == ["b1"])
    assert [x.gateway.name for x in attempts(before, "+31101234567")][0] == "a1"  # a snapshot stays as it was
    gw = next(g for g in call(factory, sp.get_gateways, ADMIN, None).gateways if g.name == "b1")
    call(factory, sp.delete_gateway, ADMIN, gw.id)
    _wait_for(lambda: attempts(rd.lcr(), "+31101234567") == [])
    call(factory, sp.delete_carrier, ADMIN, a)  # its routes and gateways go with it
    _wait_for(lambda: all(r.carrier.id == b for r in rd.lcr().routes))
    engine.dispose()


def test_trusted_peers(db_url: str) -> None:
    engine, factory = provision(db_url, {})
    call(factory, sp.add_peer, ADMIN, TrustedPeer(ip="192.0.2.7", description="PBX", originator="pbx1",
                                                  prefix="0031", strip=1, transit=True))
    call(factory, sp.add_peer, ADMIN, TrustedPeer(ip="2001:DB8::7"))
    rd = RoutingData(factory, refresh_interval=0.1)
    peer = rd.trusted_peer("192.0.2.7")
    assert (peer.originator, peer.prefix, peer.strip, peer.transit, peer.enum_lookup, peer.blocked) == (
        "pbx1", "0031", 1, True, True, False)
    assert rd.trusted_peer("2001:db8:0::7").ip == "2001:db8::7"
    assert rd.trusted_peer("::ffff:192.0.2.7") == peer
    loads = rd.loads
    assert rd.trusted_peer("192.0.2.8") is None and rd.trusted_peer("not-an-ip") is None
    assert rd.loads == loads  # the whole table answers "no" too
    call(factory, sp.update_peer, ADMIN, TrustedPeer(ip="192.0.2.7", blocked=True))
    call(factory, sp.add_peer, ADMIN, TrustedPeer(ip="192.0.2.8"))
    _wait_for(lambda: rd.trusted_peer("192.0.2.8") is not None)
    assert rd.trusted_peer("192.0.2.7").blocked
    call(factory, sp.delete_peer, ADMIN, "192.0.2.7")
    _wait_for(lambda: rd.trusted_peer("192.0.2.7") is None)
    engine.dispose()


def _set_diversions(factory, user: str, **targets: str) -> None:  # noqa: ANN001
    call(factory, sip_settings.set_call_diversions, ADMIN, st.SipId(username=user, domain=DOMAIN),
         st.CallDiversions(**targets))


def test_diversions(db_url: str) -> None:
    engine, factory = provision(db_url, {"alice": "a", "bob": "b"})
    _set_diversions(factory, "alice", FUNC="bob@example.com", FNOA="<voice-mailbox>")
    rd = RoutingData(factory, refresh_interval=0.1)
    assert set(rd.diversions("alice", "EXAMPLE.com")) == {
        Diversion("FUNC", "sip:bob@example.com"), Diversion("FNOA", "<voice-mailbox>")}
    assert rd.diversions("bob", DOMAIN) == () and rd.diversions("nobody", DOMAIN) == ()
    loads = rd.loads
    assert rd.diversions("bob", DOMAIN) == () and rd.diversions("alice", DOMAIN)
    assert rd.loads == loads  # negative answers are cached too
    _set_diversions(factory, "bob", FBUS="sip:alice@example.com")
    _set_diversions(factory, "alice")  # cleared
    _wait_for(lambda: rd.diversions("bob", DOMAIN) == (Diversion("FBUS", "sip:alice@example.com"),))
    assert rd.diversions("alice", DOMAIN) == ()
    # a deleted domain takes its accounts' diversions along
    with factory() as s, s.begin():
        s.execute(delete(SipDomain).where(SipDomain.domain == DOMAIN))
        record_change(s, TOPIC_SIP_DOMAIN, DOMAIN)
    _wait_for(lambda: rd.diversions("bob", DOMAIN) == ())
    engine.dispose()


def test_emergency_mappings(db_url: str) -> None:
    engine, factory = provision(db_url, {})
    with factory() as s, s.begin():
        s.add_all([EmergencyMapping(region="ams", number="112", destination="sip:112@psap-ams.example"),
                   EmergencyMapping(region="", number="112", destination="+31800112")])
        record_change(s, TOPIC_EMERGENCY, "ams")
    rd = RoutingData(factory, refresh_interval=0.1)
    assert rd.emergency("ams", "112") == "sip:112@psap-ams.example"
    assert rd.emergency("", "112") == "+31800112"
    assert rd.emergency("rtm", "112") is None and rd.emergency("ams", "911") is None
    assert len(rd.emergency_mappings()) == 2
    with factory() as s, s.begin():
        s.add(EmergencyMapping(region="rtm", number="112", destination="sip:112@psap-rtm.example"))
        s.execute(update(EmergencyMapping).where(EmergencyMapping.region == "ams").values(destination="sip:x@y"))
        record_change(s, TOPIC_EMERGENCY, "")
    _wait_for(lambda: rd.emergency("rtm", "112") is not None)
    assert rd.emergency("ams", "112") == "sip:x@y"
    engine.dispose()


def test_account_carries_quickdial_prefix_and_pstn_access(db_url: str) -> None:
    engine, factory = provision(db_url, {"31208005169": "x"})
    d = Directory(factory, refresh_interval=0.1)
    a = d.account("31208005169", DOMAIN)
    assert a.quickdial_prefix == "" and not a.pstn_access
    with factory() as s, s.begin():
        s.execute(update(SipAccount).where(SipAccount.username == "31208005169")
                  .values(quickdial_prefix="312080051", prepaid=True))
        record_change(s, TOPIC_SIP_ACCOUNT, f"31208005169@{DOMAIN}")
    _wait_for(lambda: d.account("31208005169", DOMAIN).quickdial_prefix == "312080051")
    assert d.account("31208005169", DOMAIN).pstn_access
    engine.dispose()


def test_refresher_greenlet_and_warm(db_url: str) -> None:
    import gevent

    engine, factory = provision(db_url, {})
    call(factory, sp.add_peer, ADMIN, TrustedPeer(ip="192.0.2.7"))
    rd = RoutingData(factory, refresh_interval=0.05)
    rd.start()
    try:
        gevent.sleep(0.1)
        loads = rd.loads
        assert loads == 3  # peers, LCR and emergency preloaded
        assert rd.trusted_peer("192.0.2.7") is not None and rd.loads == loads
        call(factory, sp.delete_peer, ADMIN, "192.0.2.7")
        deadline = time.monotonic() + 1.0
        while rd.trusted_peer("192.0.2.7") is not None:
            assert time.monotonic() < deadline, "change not seen within 1 s"
            gevent.sleep(0.02)
    finally:
        rd.stop()
    engine.dispose()


def test_a_failing_poll_keeps_the_cache(db_url: str) -> None:
    engine, factory = provision(db_url, {})
    call(factory, sp.add_peer, ADMIN, TrustedPeer(ip="192.0.2.7"))
    now = [0.0]
    rd = RoutingData(factory, refresh_interval=0.1, clock=lambda: now[0])
    assert rd.trusted_peer("192.0.2.7") is not None

    def broken() -> list:
        raise RuntimeError("database away")

    rd._feed.poll = broken  # type: ignore[method-assign]
    now[0] = 1.0
    assert rd.trusted_peer("192.0.2.7") is not None  # the poll failed, the answer stands
    engine.dispose()


def test_emergency_rows_without_a_change_entry_are_seen_after_max_age(db_url: str) -> None:
    engine, factory = provision(db_url, {})
    now = [0.0]
    rd = RoutingData(factory, refresh_interval=1000.0, clock=lambda: now[0], emergency_max_age=60.0)
    assert rd.emergency("ams", "112") is None
    with factory() as s, s.begin():  # an operator's insert, no record_change
        s.add(EmergencyMapping(region="ams", number="112", destination="sip:112@psap.example"))
    now[0] = 59.0
    assert rd.emergency("ams", "112") is None  # cached
    now[0] = 61.0
    assert rd.emergency("ams", "112") == "sip:112@psap.example"
    engine.dispose()
