"""SipPort PSTN methods (``urn:AGProjects:NGNPro:Sip``, API.md 3.1): trusted peers and the
least-cost routing chain route -> carrier -> gateways -> gateway rules.

Only the engine admin and resellers (``resellerActive``) manage these objects (API.md 5.3).
A gateway takes its owner from its carrier, a rule from its gateway and a route from its
carrier, so a reseller sees the whole chain it built and nothing of another's.  Every
write logs a change (``trusted_peer`` keyed by IP, ``lcr`` for the routing tables) so that
sipproxy reloads within a second.

The functions are the logic (Session + Scope + wire values, raising NGNProError);
:class:`SipPstnService` at the end adapts them to spyne.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ngnpro.dns_types import (
    change_owner,
    date_text,
    domain_name,
    flush_unique,
    new_owner,
    plain_text,
)
from ngnpro.models import lcr
from ngnpro.models.changes import TOPIC_LCR, TOPIC_TRUSTED_PEER, record_change
from ngnpro.models.sip import TrustedPeer as PeerRow
from ngnpro.pstn_types import (
    TRANSPORTS,
    Carrier,
    CarrierList,
    CarrierQuery,
    Gateway,
    GatewayList,
    GatewayQuery,
    GatewayRule,
    GatewayRuleList,
    GatewayRuleQuery,
    Route,
    RouteArray,
    RouteList,
    RouteQuery,
    TrustedPeer,
    TrustedPeerList,
    TrustedPeerQuery,
    bounded_int,
    dial_digits,
    ip_address,
)
from ngnpro.soap import NS_SIP, PortService, call_context, rpc
from ngnpro.soap.context import Scope
from ngnpro.soap.faults import (
    INVALID_VALUE,
    LCR_NOT_FOUND,
    TRUSTED_PEER_EXISTS,
    TRUSTED_PEER_NOT_FOUND,
    NGNProError,
)
from ngnpro.soap.query import run_query
from ngnpro.soap.types import Integer, Unicode

MAX_ROUTES = 1000

# -- trusted peers --------------------------------------------------------------------------

#: wire member -> (ORM attribute, checker)
_PEER_TEXT = {
    "description": ("description", 255), "tenant": ("tenant", 128), "carrierName": ("carrier_name", 128),
    "originator": ("originator", 64), "tags": ("tags", 255), "billingId": ("billing_id", 128),
    "authToken": ("auth_token", 128),
}
_PEER_FLAGS = {"blocked": "blocked", "msteams": "msteams", "prepaid": "prepaid",
               "enumLookup": "enum_lookup", "transit": "transit"}


def _peer_fields(row: PeerRow, data: TrustedPeer) -> None:
    """Copy the members present in ``data`` onto ``row`` (absent members keep their value)."""
    for member, (attr, limit) in _PEER_TEXT.items():
        value = getattr(data, member)
        if value is not None:
            setattr(row, attr, plain_text(value, member, limit))
    for member, attr in _PEER_FLAGS.items():
        value = getattr(data, member)
        if value is not None:
            setattr(row, attr, bool(value))
    if data.prefix is not None:
        row.prefix = dial_digits(data.prefix, "prefix")
    row.strip = bounded_int(data.strip, "strip", row.strip or 0, 0, 32)
    row.call_limit = bounded_int(data.callLimit, "callLimit", row.call_limit or 0, 0, 1_000_000)
    if data.owner is not None:
        row.owner = int(data.owner)


def _find_peer(session: Session, scope: Scope, ip: Any) -> PeerRow:
    addr = ip_address(ip)
    row = session.execute(select(PeerRow).where(PeerRow.ip == addr)).scalar_one_or_none()
    if row is None:
        raise NGNProError(TRUSTED_PEER_NOT_FOUND, f"trusted peer {addr} does not exist")
    scope.check(row)
    return row


def add_peer(session: Session, scope: Scope, data: TrustedPeer) -> None:
    scope.require_reseller_or_admin()
    addr = ip_address(data.ip)
    if session.execute(select(PeerRow.id).where(PeerRow.ip == addr)).first():
        raise NGNProError(TRUSTED_PEER_EXISTS, f"trusted peer {addr} already exists")
    customer, reseller = new_owner(session, scope, data.customer, data.reseller)
    row = PeerRow(ip=addr, customer=customer, reseller=reseller, strip=0, call_limit=0, owner=0,
                  blocked=False, msteams=False, prepaid=False, enum_lookup=True, transit=False)
    _peer_fields(row, data)
    session.add(row)
    flush_unique(session, TRUSTED_PEER_EXISTS, f"trusted peer {addr} already exists")
    record_change(session, TOPIC_TRUSTED_PEER, addr)


def update_peer(session: Session, scope: Scope, data: TrustedPeer) -> None:
    scope.require_reseller_or_admin()
    row = _find_peer(session, scope, data.ip)
    _peer_fields(row, data)
    change_owner(session, scope, row, data.customer, data.reseller)
    record_change(session, TOPIC_TRUSTED_PEER, row.ip)


def delete_peer(session: Session, scope: Scope, ip: Any) -> None:
    scope.require_reseller_or_admin()
    row = _find_peer(session, scope, ip)
    record_change(session, TOPIC_TRUSTED_PEER, row.ip)
    session.delete(row)


def peer_out(row: PeerRow) -> TrustedPeer:
    return TrustedPeer(
        ip=row.ip, description=row.description, tenant=row.tenant, carrierName=row.carrier_name,
        originator=row.originator, prefix=row.prefix, strip=row.strip, tags=row.tags,
        billingId=row.billing_id, authToken=row.auth_token, callLimit=row.call_limit,
        blocked=row.blocked, msteams=row.msteams, prepaid=row.prepaid, enumLookup=row.enum_lookup,
        transit=row.transit, owner=row.owner, customer=row.customer, reseller=row.reseller,
        changeDate=date_text(row.change_date),
    )


def get_peers(session: Session, scope: Scope, query: TrustedPeerQuery | None) -> TrustedPeerList:
    scope.require_reseller_or_admin()
    P = PeerRow
    total, rows = run_query(
        session, select(P), query,
        filters={
            "ip": P.ip, "description": P.description, "tenant": P.tenant, "billingId": P.billing_id,
            "tags": P.tags, "customer": P.customer, "reseller": P.reseller,
            # only a ticked box filters: false is what the UI sends for "any"
            "msteams": lambda stmt, value: stmt.where(P.msteams.is_(True)) if value is True else stmt,
        },
        orders={"changeDate": P.change_date, "description": P.description, "ip": P.ip},
        scope=scope, model=P,
    )
    return TrustedPeerList(total=total, peers=[peer_out(r) for r in rows])


# -- LCR: carriers, gateways, rules, routes --------------------------------------------------


def _lcr_changed(session: Session, what: str) -> None:
    record_change(session, TOPIC_LCR, what)


def _find(session: Session, scope: Scope, model: type, ident: Any, what: str) -> Any:
    try:
        key = int(ident)
    except (TypeError, ValueError):
        raise NGNProError(INVALID_VALUE, f"{what} id {ident!r} is not a number") from None
    row = session.get(model, key) if key > 0 else None
    if row is None:
        raise NGNProError(LCR_NOT_FOUND, f"{what} {key} does not exist")
    scope.check(row)
    return row


def _name(value: Any, what: str) -> str:
    text = plain_text(value, f"{what} name", 128).strip()
    if not text:
        raise NGNProError(INVALID_VALUE, f"{what} name is empty")
    return text


def add_carrier(session: Session, scope: Scope, data: Carrier) -> None:
    scope.require_reseller_or_admin()
    customer, reseller = new_owner(session, scope, data.customer, data.reseller)
    session.add(lcr.Carrier(name=_name(data.name, "carrier"), customer=customer, reseller=reseller))
    _lcr_changed(session, "carrier")


def update_carrier(session: Session, scope: Scope, data: Carrier) -> None:
    scope.require_reseller_or_admin()
    row = _find(session, scope, lcr.Carrier, data.id, "carrier")
    if data.name is not None:
        row.name = _name(data.name, "carrier")
    change_owner(session, scope, row, data.customer, data.reseller)
    for child in (*row.gateways, *row.routes):
        child.customer, child.reseller = row.customer, row.reseller
        for rule in getattr(child, "rules", ()):
            rule.customer, rule.reseller = row.customer, row.reseller
    _lcr_changed(session, "carrier")


def delete_carrier(session: Session, scope: Scope, ident: Any) -> None:
    """Delete a carrier with its gateways, their rules and its routes."""
    scope.require_reseller_or_admin()
    session.delete(_find(session, scope, lcr.Carrier, ident, "carrier"))
    _lcr_changed(session, "carrier")


def carrier_out(row: lcr.Carrier) -> Carrier:
    return Carrier(id=row.id, name=row.name, customer=row.customer, reseller=row.reseller,
                   changeDate=date_text(row.change_date))


def get_carriers(session: Session, scope: Scope, query: CarrierQuery | None) -> CarrierList:
    scope.require_reseller_or_admin()
    C = lcr.Carrier
    total, rows = run_query(
        session, select(C), query,
        filters={"id": C.id, "name": C.name, "customer": C.customer, "reseller": C.reseller},
        orders={"changeDate": C.change_date, "name": C.name},
        scope=scope, model=C,
    )
    return CarrierList(total=total, carriers=[carrier_out(r) for r in rows])


def _gateway_fields(session: Session, scope: Scope, row: lcr.Gateway, data: Gateway) -> None:
    if data.carrier_id is not None or row.carrier_id is None:
        carrier = _find(session, scope, lcr.Carrier, data.carrier_id, "carrier")
        row.carrier = carrier
        row.customer, row.reseller = carrier.customer, carrier.reseller
        for rule in row.rules:
            rule.customer, rule.reseller = carrier.customer, carrier.reseller
    if data.name is not None or not row.name:
        row.name = _name(data.name, "gateway")
    if data.transport is not None:
        transport = str(data.transport).strip().lower() or "udp"
        if transport not in TRANSPORTS:
            raise NGNProError(INVALID_VALUE, f"transport {data.transport!r} is not one of {', '.join(TRANSPORTS)}")
        row.transport = transport
    if data.ip is not None or not row.ip:
        text = plain_text(data.ip, "ip").strip()
        try:
            row.ip = ip_address(text)
        except NGNProError:
            row.ip = domain_name(text, "ip (address or host name)", hostname=True)
    row.port = bounded_int(data.port or None, "port", row.port or 5060, 1, 65535)


def add_gateway(session: Session, scope: Scope, data: Gateway) -> None:
    scope.require_reseller_or_admin()
    row = lcr.Gateway(transport="udp", port=5060, rules=[])
    _gateway_fields(session, scope, row, data)
    session.add(row)
    _lcr_changed(session, "gateway")


def update_gateway(session: Session, scope: Scope, data: Gateway) -> None:
    scope.require_reseller_or_admin()
    row = _find(session, scope, lcr.Gateway, data.id, "gateway")
    _gateway_fields(session, scope, row, data)
    _lcr_changed(session, "gateway")


def delete_gateway(session: Session, scope: Scope, ident: Any) -> None:
    scope.require_reseller_or_admin()
    session.delete(_find(session, scope, lcr.Gateway, ident, "gateway"))
    _lcr_changed(session, "gateway")


def gateway_out(row: lcr.Gateway) -> Gateway:
    return Gateway(id=row.id, name=row.name, carrier_id=row.carrier_id, carrier=row.carrier.name,
                   transport=row.transport, ip=row.ip, port=row.port, customer=row.customer,
                   reseller=row.reseller, changeDate=date_text(row.change_date))


def get_gateways(session: Session, scope: Scope, query: GatewayQuery | None) -> GatewayList:
    scope.require_reseller_or_admin()
    G = lcr.Gateway
    total, rows = run_query(
        session, select(G).options(selectinload(G.carrier)), query,
        filters={"id": G.id, "carrier_id": G.carrier_id, "name": G.name, "customer": G.customer,
                 "reseller": G.reseller},
        orders={"changeDate": G.change_date, "name": G.name, "carrier_id": G.carrier_id, "ip": G.ip},
        scope=scope, model=G,
    )
    return GatewayList(total=total, gateways=[gateway_out(r) for r in rows])


def _rule_fields(session: Session, scope: Scope, row: lcr.GatewayRule, data: GatewayRule) -> None:
    if data.gateway_id is not None or row.gateway_id is None:
        gateway = _find(session, scope, lcr.Gateway, data.gateway_id, "gateway")
        row.gateway = gateway
        row.customer, row.reseller = gateway.customer, gateway.reseller
    if data.prefix is not None:
        row.prefix = dial_digits(data.prefix, "prefix")
    if data.prepend is not None:
        row.prepend = dial_digits(data.prepend, "prepend")
    row.strip = bounded_int(data.strip, "strip", row.strip or 0, 0, 32)
    row.min_length = bounded_int(data.minLength, "minLength", row.min_length or 0, 0, 32)
    row.max_length = bounded_int(data.maxLength, "maxLength", row.max_length or 0, 0, 32)
    if row.max_length and row.min_length > row.max_length:
        raise NGNProError(INVALID_VALUE, f"minLength {row.min_length} is above maxLength {row.max_length}")


def add_rule(session: Session, scope: Scope, data: GatewayRule) -> None:
    scope.require_reseller_or_admin()
    row = lcr.GatewayRule(prefix="", prepend="", strip=0, min_length=0, max_length=0)
    _rule_fields(session, scope, row, data)
    session.add(row)
    _lcr_changed(session, "gateway_rule")


def update_rule(session: Session, scope: Scope, data: GatewayRule) -> None:
    scope.require_reseller_or_admin()
    row = _find(session, scope, lcr.GatewayRule, data.id, "gateway rule")
    _rule_fields(session, scope, row, data)
    _lcr_changed(session, "gateway_rule")


def delete_rule(session: Session, scope: Scope, ident: Any) -> None:
    scope.require_reseller_or_admin()
    session.delete(_find(session, scope, lcr.GatewayRule, ident, "gateway rule"))
    _lcr_changed(session, "gateway_rule")


def rule_out(row: lcr.GatewayRule) -> GatewayRule:
    gw = row.gateway
    return GatewayRule(
        id=row.id, gateway_id=row.gateway_id, gateway=gw.name, carrier_id=gw.carrier_id,
        carrier=gw.carrier.name, prefix=row.prefix, strip=row.strip, prepend=row.prepend,
        minLength=row.min_length, maxLength=row.max_length, customer=row.customer,
        reseller=row.reseller, changeDate=date_text(row.change_date),
    )


def get_rules(session: Session, scope: Scope, query: GatewayRuleQuery | None) -> GatewayRuleList:
    scope.require_reseller_or_admin()
    GR, G, C = lcr.GatewayRule, lcr.Gateway, lcr.Carrier
    stmt = (
        select(GR).join(G, GR.gateway_id == G.id).join(C, G.carrier_id == C.id)
        .options(selectinload(GR.gateway).selectinload(G.carrier))
    )
    total, rows = run_query(
        session, stmt, query,
        filters={"id": GR.id, "gateway_id": GR.gateway_id, "carrier_id": G.carrier_id,
                 "prefix": GR.prefix, "customer": GR.customer, "reseller": GR.reseller},
        orders={"changeDate": GR.change_date, "gateway": G.name, "carrier": C.name, "prefix": GR.prefix},
        scope=scope, model=GR,
    )
    return GatewayRuleList(total=total, gateway_rules=[rule_out(r) for r in rows])


def _route_list(routes: list[Any] | None) -> list[Any]:
    items = [r for r in routes or [] if r is not None]
    if not items:
        raise NGNProError(INVALID_VALUE, "routes is empty")
    if len(items) > MAX_ROUTES:
        raise NGNProError(INVALID_VALUE, f"at most {MAX_ROUTES} routes per call")
    return items


def _route_fields(session: Session, scope: Scope, row: lcr.Route, data: Route) -> None:
    if data.carrier_id is not None or row.carrier_id is None:
        carrier = _find(session, scope, lcr.Carrier, data.carrier_id, "carrier")
        row.carrier = carrier
        row.customer, row.reseller = carrier.customer, carrier.reseller
    if data.prefix is not None:
        row.prefix = dial_digits(data.prefix, "prefix")
    if data.originator is not None:
        row.originator = plain_text(data.originator, "originator", 64).strip()
    row.priority = bounded_int(data.priority, "priority", row.priority if row.priority is not None else 10, 0, 65535)


def add_routes(session: Session, scope: Scope, routes: list[Route] | None) -> None:
    scope.require_reseller_or_admin()
    for data in _route_list(routes):
        row = lcr.Route(prefix="", originator="")
        _route_fields(session, scope, row, data)
        session.add(row)
    _lcr_changed(session, "route")


def update_routes(session: Session, scope: Scope, routes: list[Route] | None) -> None:
    scope.require_reseller_or_admin()
    for data in _route_list(routes):
        _route_fields(session, scope, _find(session, scope, lcr.Route, data.id, "route"), data)
    _lcr_changed(session, "route")


def delete_routes(session: Session, scope: Scope, routes: list[Route] | None) -> None:
    scope.require_reseller_or_admin()
    for data in _route_list(routes):
        session.delete(_find(session, scope, lcr.Route, data.id, "route"))
        session.flush()  # the same id twice in one list is "not found" the second time
    _lcr_changed(session, "route")


def route_out(row: lcr.Route) -> Route:
    return Route(id=row.id, carrier_id=row.carrier_id, carrier=row.carrier.name, prefix=row.prefix,
                 originator=row.originator, priority=row.priority, customer=row.customer,
                 reseller=row.reseller, changeDate=date_text(row.change_date))


def get_routes(session: Session, scope: Scope, query: RouteQuery | None) -> RouteList:
    scope.require_reseller_or_admin()
    RT = lcr.Route
    total, rows = run_query(
        session, select(RT).options(selectinload(RT.carrier)), query,
        filters={"id": RT.id, "carrier_id": RT.carrier_id, "prefix": RT.prefix,
                 "customer": RT.customer, "reseller": RT.reseller},
        orders={"changeDate": RT.change_date, "prefix": RT.prefix, "priority": RT.priority},
        scope=scope, model=RT,
    )
    return RouteList(total=total, routes=[route_out(r) for r in rows])


# -- spyne adapter --------------------------------------------------------------------------


def _given(value: Any, name: str) -> Any:
    if value is None:
        raise NGNProError(INVALID_VALUE, f"parameter {name} is missing")
    return value


class SipPstnService(PortService):
    """SipPort's PSTN methods; B1's classes serve the subscriber methods of the same port.
    add/update/delete answer an empty wrapper, never a list (API.md 1.8)."""

    __port_namespace__ = NS_SIP

    @rpc(TrustedPeer)
    def addTrustedPeer(ctx, peer):
        c = call_context(ctx)
        add_peer(c.session, c.scope, _given(peer, "peer"))

    @rpc(TrustedPeer)
    def updateTrustedPeer(ctx, peer):
        c = call_context(ctx)
        update_peer(c.session, c.scope, _given(peer, "peer"))

    @rpc(Unicode)
    def deleteTrustedPeer(ctx, ip):
        c = call_context(ctx)
        delete_peer(c.session, c.scope, ip)

    @rpc(TrustedPeerQuery, _returns=TrustedPeerList)
    def getTrustedPeers(ctx, query):
        c = call_context(ctx)
        return get_peers(c.session, c.scope, query)

    @rpc(Carrier)
    def addCarrier(ctx, carrier):
        c = call_context(ctx)
        add_carrier(c.session, c.scope, _given(carrier, "carrier"))

    @rpc(Carrier)
    def updateCarrier(ctx, carrier):
        c = call_context(ctx)
        update_carrier(c.session, c.scope, _given(carrier, "carrier"))

    @rpc(Integer)
    def deleteCarrier(ctx, id):  # noqa: A002
        c = call_context(ctx)
        delete_carrier(c.session, c.scope, id)

    @rpc(CarrierQuery, _returns=CarrierList)
    def getCarriers(ctx, query):
        c = call_context(ctx)
        return get_carriers(c.session, c.scope, query)

    @rpc(Gateway)
    def addGateway(ctx, gateway):
        c = call_context(ctx)
        add_gateway(c.session, c.scope, _given(gateway, "gateway"))

    @rpc(Gateway)
    def updateGateway(ctx, gateway):
        c = call_context(ctx)
        update_gateway(c.session, c.scope, _given(gateway, "gateway"))

    @rpc(Integer)
    def deleteGateway(ctx, id):  # noqa: A002
        c = call_context(ctx)
        delete_gateway(c.session, c.scope, id)

    @rpc(GatewayQuery, _returns=GatewayList)
    def getGateways(ctx, query):
        c = call_context(ctx)
        return get_gateways(c.session, c.scope, query)

    @rpc(GatewayRule)
    def addGatewayRule(ctx, rule):
        c = call_context(ctx)
        add_rule(c.session, c.scope, _given(rule, "rule"))

    @rpc(GatewayRule)
    def updateGatewayRule(ctx, rule):
        c = call_context(ctx)
        update_rule(c.session, c.scope, _given(rule, "rule"))

    @rpc(Integer)
    def deleteGatewayRule(ctx, id):  # noqa: A002
        c = call_context(ctx)
        delete_rule(c.session, c.scope, id)

    @rpc(GatewayRuleQuery, _returns=GatewayRuleList)
    def getGatewayRules(ctx, query):
        c = call_context(ctx)
        return get_rules(c.session, c.scope, query)

    @rpc(RouteArray)
    def addRoutes(ctx, routes):
        c = call_context(ctx)
        add_routes(c.session, c.scope, _given(routes, "routes"))

    @rpc(RouteArray)
    def updateRoutes(ctx, routes):
        c = call_context(ctx)
        update_routes(c.session, c.scope, _given(routes, "routes"))

    @rpc(RouteArray)
    def deleteRoutes(ctx, routes):
        c = call_context(ctx)
        delete_routes(c.session, c.scope, _given(routes, "routes"))

    @rpc(RouteQuery, _returns=RouteList)
    def getRoutes(ctx, query):
        c = call_context(ctx)
        return get_routes(c.session, c.scope, query)
