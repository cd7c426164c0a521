"""SipPort PSTN wire types (API.md 4.1): trusted peers and least-cost routing objects.

Trusted peers are matched by source IP in sipproxy; carriers, gateways, gateway rules and
routes form the LCR chain route (prefix) -> carrier -> gateways -> rules.
"""

from __future__ import annotations

import ipaddress
import re

from spyne.model.complex import Array, ComplexModel
from spyne.model.primitive import Boolean, Integer, Unicode

from ngnpro.soap.faults import NGNProError
from ngnpro.soap.types import OrderBy, Range

NS = "urn:AGProjects:NGNPro"
INVALID = 1040
TRANSPORTS = ("udp", "tcp", "tls")

_DIAL = re.compile(r"^\+?[0-9*#]{0,32}$")


def ip_address(value: object, field: str = "ip") -> str:
    """An IPv4 or IPv6 address in its canonical text form."""
    text = ("" if value is None else str(value)).strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise NGNProError(INVALID, f"{field} {text!r} is not an IP address") from None


def dial_digits(value: object, field: str) -> str:
    """Digits as dialled (prefixes, digits to prepend): ``0-9 * #`` with an optional
    leading ``+``, at most 32; empty allowed (no prefix / nothing to add)."""
    text = ("" if value is None else str(value)).strip()
    if not _DIAL.match(text):
        raise NGNProError(INVALID, f"{field} {text!r} must be digits (0-9, *, #, leading +)")
    return text


def bounded_int(value: int | None, field: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    if not low <= value <= high:
        raise NGNProError(INVALID, f"{field} {value} is outside {low}..{high}")
    return int(value)


class TrustedPeer(ComplexModel):
    __namespace__ = NS
    __type_name__ = "TrustedPeer"
    _type_info = [
        ("ip", Unicode),
        ("description", Unicode),
        ("tenant", Unicode),
        ("carrierName", Unicode),
        ("originator", Unicode),
        ("prefix", Unicode),
        ("strip", Integer),
        ("tags", Unicode),
        ("billingId", Unicode),
        ("authToken", Unicode),
        ("callLimit", Integer),
        ("blocked", Boolean),
        ("msteams", Boolean),
        ("prepaid", Boolean),
        ("enumLookup", Boolean),
        ("transit", Boolean),
        ("owner", Integer),
        ("customer", Integer),
        ("reseller", Integer),
        ("changeDate", Unicode),
    ]


class TrustedPeerFilter(ComplexModel):
    __namespace__ = NS
    __type_name__ = "TrustedPeerFilter"
    _type_info = [
        ("ip", Unicode),
        ("description", Unicode),
        ("tenant", Unicode),
        ("billingId", Unicode),
        ("tags", Unicode),
        ("msteams", Boolean),
        ("customer", Integer),
        ("reseller", Integer),
    ]


class Carrier(ComplexModel):
    __namespace__ = NS
    __type_name__ = "Carrier"
    _type_info = [
        ("id", Integer),
        ("name", Unicode),
        ("customer", Integer),
        ("reseller", Integer),
        ("changeDate", Unicode),
    ]


class CarrierFilter(ComplexModel):
    __namespace__ = NS
    __type_name__ = "CarrierFilter"
    _type_info = [
        ("id", Integer),
        ("name", Unicode),
        ("customer", Integer),
        ("reseller", Integer),
    ]


class Gateway(ComplexModel):
    __namespace__ = NS
    __type_name__ = "Gateway"
    _type_info = [
        ("id", Integer),
        ("name", Unicode),
        ("carrier_id", Integer),
        ("carrier", Unicode),
        ("transport", Unicode),
        ("ip", Unicode),
        ("port", Integer),
        ("customer", Integer),
        ("reseller", Integer),
        ("changeDate", Unicode),
    ]


class GatewayFilter(ComplexModel):
    __namespace__ = NS
    __type_name__ = "GatewayFilter"
    _type_info = [
        ("id", Integer),
        ("carrier_id", Integer),
        ("name", Unicode),
        ("customer", Integer),
        ("reseller", Integer),
    ]


class GatewayRule(ComplexModel):
    __namespace__ = NS
    __type_name__ = "GatewayRule"
    _type_info = [
        ("id", Integer),
        ("gateway_id", Integer),
        ("gateway", Unicode),
        ("carrier_id", Integer),
        ("carrier", Unicode),
        ("prefix", Unicode),
        ("strip", Integer),
        ("prepend", Unicode),
        ("minLength", Integer),
        ("maxLength", Integer),
        ("customer", Integer),
        ("reseller", Integer),
        ("changeDate", Unicode),
    ]


class GatewayRuleFilter(ComplexModel):
    __namespace__ = NS
    __type_name__ = "GatewayRuleFilter"
    _type_info = [
        ("id", Integer),
        ("gateway_id", Integer),
        ("carrier_id", Integer),
        ("prefix", Unicode),
        ("customer", Integer),
        ("reseller", Integer),
    ]


class Route(ComplexModel):
    __namespace__ = NS
    __type_name__ = "Route"
    _type_info = [
        ("id", Integer),
        ("carrier_id", Integer),
        ("carrier", Unicode),
        ("prefix", Unicode),
        ("originator", Unicode),
        ("priority", Integer),
        ("customer", Integer),
        ("reseller", Integer),
        ("changeDate", Unicode),
    ]


class RouteFilter(ComplexModel):
    __namespace__ = NS
    __type_name__ = "RouteFilter"
    _type_info = [
        ("id", Integer),
        ("carrier_id", Integer),
        ("prefix", Unicode),
        ("customer", Integer),
        ("reseller", Integer),
    ]


class TrustedPeerQuery(ComplexModel):
    __namespace__ = NS
    __type_name__ = "TrustedPeerQuery"
    _type_info = [("filter", TrustedPeerFilter), ("orderBy", OrderBy), ("range", Range)]


class TrustedPeerList(ComplexModel):
    __namespace__ = NS
    __type_name__ = "TrustedPeerList"
    _type_info = [("total", Integer), ("peers", Array(TrustedPeer))]


class CarrierQuery(ComplexModel):
    __namespace__ = NS
    __type_name__ = "CarrierQuery"
    _type_info = [("filter", CarrierFilter), ("orderBy", OrderBy), ("range", Range)]


class CarrierList(ComplexModel):
    __namespace__ = NS
    __type_name__ = "CarrierList"
    _type_info = [("total", Integer), ("carriers", Array(Carrier))]


class GatewayQuery(ComplexModel):
    __namespace__ = NS
    __type_name__ = "GatewayQuery"
    _type_info = [("filter", GatewayFilter), ("orderBy", OrderBy), ("range", Range)]


class GatewayList(ComplexModel):
    __namespace__ = NS
    __type_name__ = "GatewayList"
    _type_info = [("total", Integer), ("gateways", Array(Gateway))]


class GatewayRuleQuery(ComplexModel):
    __namespace__ = NS
    __type_name__ = "GatewayRuleQuery"
    _type_info = [("filter", GatewayRuleFilter), ("orderBy", OrderBy), ("range", Range)]


class GatewayRuleList(ComplexModel):
    __namespace__ = NS
    __type_name__ = "GatewayRuleList"
    _type_info = [("total", Integer), ("gateway_rules", Array(GatewayRule))]


class RouteQuery(ComplexModel):
    __namespace__ = NS
    __type_name__ = "RouteQuery"
    _type_info = [("filter", RouteFilter), ("orderBy", OrderBy), ("range", Range)]


class RouteList(ComplexModel):
    __namespace__ = NS
    __type_name__ = "RouteList"
    _type_info = [("total", Integer), ("routes", Array(Route))]


#: ``addRoutes``/``updateRoutes``/``deleteRoutes`` take a list of Route (``RouteArray``).
RouteArray = Array(Route)
