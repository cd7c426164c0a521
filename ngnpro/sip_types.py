"""SipPort subscriber types (API.md section 4.1) and the value rules they obey.

The classes are spyne models in ``urn:AGProjects:NGNPro`` named exactly as the API names
them, every member optional because the PHP client omits members freely and echoes back
read-only ones.  The wire forms of stored rows (``account_to_soap``...) and the validators
below are shared by the subscriber modules
(``sip_accounts``, ``sip_settings``, ``sip_prepaid``): a bad value becomes fault 1040 with a
message naming the field, before anything is written.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import math
import re
from typing import Any

from spyne import Array, ComplexModel, Double, Integer, Unicode

from ngnpro.models import sip as m
from ngnpro.soap.encoding import new_instance
from ngnpro.soap.faults import NGNProError
from ngnpro.soap.types import OrderBy, Range, StringArray

NS = "urn:AGProjects:NGNPro"
INVALID = 1040


class _Model(ComplexModel):
    __namespace__ = NS


# --- identifiers and accounts ------------------------------------------------------------


class SipId(_Model):
    __type_name__ = "SipId"
    username = Unicode
    domain = Unicode


SipIdArray = Array(SipId)


class AclEntry(_Model):
    __type_name__ = "AclEntry"
    ip = Unicode
    mask = Integer
    tag = Unicode


#: one array type for the account's and the domain's ACL (one ``ArrayOfAclEntry`` in the WSDL)
AclList = Array(AclEntry)


class SipAccountProperty(_Model):
    __type_name__ = "SipAccountProperty"
    name = Unicode
    value = Unicode
    category = Unicode
    permission = Unicode


class SipAccount(_Model):
    __type_name__ = "SipAccount"
    id = SipId
    firstName = Unicode
    lastName = Unicode
    password = Unicode
    ha1 = Unicode
    email = Unicode
    timezone = Unicode
    rpid = Unicode
    owner = Integer
    customer = Integer
    reseller = Integer
    groups = StringArray
    prepaid = Integer
    quota = Integer
    callLimit = Integer
    timeout = Integer
    acl = AclList
    properties = Array(SipAccountProperty)
    quickdialPrefix = Unicode
    region = Unicode
    createDate = Unicode
    changeDate = Unicode


class SipFilter(_Model):
    __type_name__ = "SipFilter"
    username = Unicode
    domain = Unicode
    firstName = Unicode
    lastName = Unicode
    email = Unicode
    owner = Integer
    customer = Integer
    reseller = Integer
    groups = StringArray


class SipQuery(_Model):
    __type_name__ = "SipQuery"
    filter = SipFilter
    orderBy = OrderBy
    range = Range


class SipAccountList(_Model):
    __type_name__ = "SipAccountList"
    total = Integer
    accounts = Array(SipAccount)


# --- domains ------------------------------------------------------------------------------


class SipDomain(_Model):
    __type_name__ = "SipDomain"
    domain = Unicode
    customer = Integer
    reseller = Integer
    certificate = Unicode
    private_key = Unicode
    match_ip_address = Unicode
    match_sip_domain = Unicode
    verify_cert = Integer
    require_cert = Integer
    createDate = Unicode
    changeDate = Unicode
    #: an extension beyond CDRTool's SipDomain, last so the members CDRTool knows keep their
    #: places: the domain's IP access list, the same shape and rules as SipAccount.acl
    acl = AclList


class SipDomainFilter(_Model):
    __type_name__ = "SipDomainFilter"
    domain = Unicode
    customer = Integer
    reseller = Integer


class SipDomainQuery(_Model):
    __type_name__ = "SipDomainQuery"
    filter = SipDomainFilter
    orderBy = OrderBy
    range = Range


class SipDomainList(_Model):
    __type_name__ = "SipDomainList"
    total = Integer
    domains = Array(SipDomain)


# --- aliases ------------------------------------------------------------------------------


class SipAlias(_Model):
    __type_name__ = "SipAlias"
    id = SipId
    target = SipId
    owner = Integer
    customer = Integer
    reseller = Integer
    createDate = Unicode
    changeDate = Unicode


class AliasFilter(_Model):
    __type_name__ = "AliasFilter"
    aliasUsername = Unicode
    aliasDomain = Unicode
    targetUsername = Unicode
    targetDomain = Unicode
    owner = Integer
    customer = Integer
    reseller = Integer


class AliasQuery(_Model):
    __type_name__ = "AliasQuery"
    filter = AliasFilter
    orderBy = OrderBy
    range = Range


class SipAliasList(_Model):
    __type_name__ = "SipAliasList"
    total = Integer
    aliases = Array(SipAlias)


# --- settings -----------------------------------------------------------------------------


class CallDiversions(_Model):
    """Absent member = no diversion; ``nocondition`` is the client's "clear all" sentinel."""

    __type_name__ = "CallDiversions"
    FUNC = Unicode
    FNOL = Unicode
    FBUS = Unicode
    FNOA = Unicode
    FUNV = Unicode
    nocondition = Unicode


class PersistentAcceptRule(_Model):
    __type_name__ = "PersistentAcceptRule"
    start = Unicode
    stop = Unicode
    groups = StringArray
    days = Integer


class TemporaryAcceptRule(_Model):
    __type_name__ = "TemporaryAcceptRule"
    groups = StringArray
    duration = Integer


class AcceptRules(_Model):
    __type_name__ = "AcceptRules"
    persistent = Array(PersistentAcceptRule)
    temporary = TemporaryAcceptRule


class AcceptRulesInfo(_Model):
    __type_name__ = "AcceptRulesInfo"
    rules = AcceptRules
    nonEmptyGroups = StringArray


class PhonebookEntry(_Model):
    __type_name__ = "PhonebookEntry"
    uri = Unicode
    name = Unicode
    group = Unicode


class PhonebookEntryList(_Model):
    __type_name__ = "PhonebookEntryList"
    entries = Array(PhonebookEntry)


class Location(_Model):
    __type_name__ = "Location"
    address = Unicode
    port = Integer
    publicAddress = Unicode
    publicPort = Integer
    transport = Unicode
    userAgent = Unicode
    expires = Integer
    contact = Unicode


class SipDeviceLocations(_Model):
    __type_name__ = "SipDeviceLocations"
    id = SipId
    locations = Array(Location)


# --- prepaid ------------------------------------------------------------------------------


class PrepaidCard(_Model):
    __type_name__ = "PrepaidCard"
    id = Integer
    number = Unicode


class BalanceChange(_Model):
    __type_name__ = "BalanceChange"
    old_balance = Double
    new_balance = Double


class PrepaidStatus(_Model):
    __type_name__ = "PrepaidStatus"
    id = SipId
    balance = Double
    prepaid = Integer


class CreditEntry(_Model):
    __type_name__ = "CreditEntry"
    date = Unicode
    action = Unicode
    description = Unicode
    value = Double
    balance = Double
    session = Unicode


class CreditHistory(_Model):
    __type_name__ = "CreditHistory"
    entries = Array(CreditEntry)


# --- wire forms of the stored rows ---------------------------------------------------------


def make(cls: Any, **values: Any) -> Any:
    """An instance of model ``cls`` without spyne's constructor, which walks every member
    for defaults and costs more than the rest of a getAccount call (none of these models
    declares defaults)."""
    inst = new_instance(cls)
    inst.__dict__.update(values)
    return inst


def fmt_date(value: _dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def domain_to_soap(row: m.SipDomain) -> SipDomain:
    """The wire form of a domain row; ``row.acl`` should be loaded with it (getDomains
    loads every listed domain's ACL in one query)."""
    return make(
        SipDomain,
        domain=row.domain, customer=row.customer, reseller=row.reseller,
        certificate=row.certificate or "", private_key=row.private_key or "",
        match_ip_address=row.match_ip_address or "", match_sip_domain=row.match_sip_domain or "",
        verify_cert=int(bool(row.verify_cert)), require_cert=int(bool(row.require_cert)),
        acl=[make(AclEntry, ip=a.ip, mask=a.mask, tag=a.tag) for a in row.acl],
        createDate=fmt_date(row.create_date), changeDate=fmt_date(row.change_date),
    )


def account_to_soap(
    row: Any, groups: list[str], acl: list[tuple[str, int, str]], properties: list[tuple[str, str, str, str]]
) -> SipAccount:
    """The wire form of an account row (ORM object or Core row) and its lists; ``password``
    is the clear text when kept, else the HA1 pair, so that a round-tripped account sends
    back something that changes nothing."""
    password = row.password or (f"{row.ha1}:{row.ha1b}" if row.ha1 and row.ha1b else "")
    return make(
        SipAccount,
        id=make(SipId, username=row.username, domain=row.domain),
        firstName=row.first_name, lastName=row.last_name, password=password, ha1=row.ha1,
        email=row.email, timezone=row.timezone, rpid=row.rpid, owner=row.owner,
        customer=row.customer, reseller=row.reseller, groups=sorted(groups),
        prepaid=int(bool(row.prepaid)), quota=row.quota, callLimit=row.call_limit, timeout=row.timeout,
        acl=[make(AclEntry, ip=ip, mask=mask, tag=tag) for ip, mask, tag in acl],
        properties=[
            make(SipAccountProperty, name=n, value=v, category=c, permission=p) for n, v, c, p in properties
        ],
        quickdialPrefix=row.quickdial_prefix, region=row.region,
        createDate=fmt_date(row.create_date), changeDate=fmt_date(row.change_date),
    )


def alias_to_soap(row: m.SipAlias) -> SipAlias:
    return make(
        SipAlias,
        id=make(SipId, username=row.username, domain=row.domain),
        target=make(SipId, username=row.target_username, domain=row.target_domain),
        owner=row.owner, customer=row.customer, reseller=row.reseller,
        createDate=fmt_date(row.create_date), changeDate=fmt_date(row.change_date),
    )


# --- value rules --------------------------------------------------------------------------

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_USERNAME = re.compile(r"^[a-z0-9_+][a-z0-9_.+\-]{0,63}$")
_TARGET_USER = re.compile(r"^[a-z0-9_.+\-*#]{1,64}$")
_GROUP = re.compile(r"^[a-z0-9_][a-z0-9_.\-]{0,63}$")
_EMAIL = re.compile(r"^[a-z0-9.!#$%&'*+/=?^_`{|}~\-]{1,64}@[a-z0-9.\-]{1,190}$")
_E164 = re.compile(r"^\+?[0-9]{1,32}$")
_TZ = re.compile(r"^[A-Za-z0-9_/+\-]{0,64}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def invalid(field: str, message: str) -> NGNProError:
    return NGNProError(INVALID, f"Invalid {field}: {message}")


def text(value: str | None, field: str, limit: int = 255, default: str = "") -> str:
    """Free text: stored literally (quotes, ``%``, ``;`` are data), but bounded and without
    control characters that would corrupt logs or the proxy's headers."""
    if value is None:
        return default
    if not isinstance(value, str):
        value = str(value)
    if len(value) > limit:
        raise invalid(field, f"longer than {limit} characters")
    if _CONTROL.search(value):
        raise invalid(field, "contains control characters")
    return value


def domain_name(value: str | None, field: str = "domain") -> str:
    """A DNS host name (RFC 1035 letters, digits, hyphens), lower-cased, trailing dot cut."""
    name = (value or "").strip().lower().rstrip(".")
    if not name:
        raise invalid(field, "missing")
    if len(name) > 190 or not all(_LABEL.match(label) for label in name.split(".")):
        raise invalid(field, f"{name!r} is not a domain name")
    return name


def host(value: str | None, field: str) -> str:
    """A domain name or an IP address (alias targets may live on a foreign host)."""
    raw = (value or "").strip().lower()
    try:
        return str(ipaddress.ip_address(raw.strip("[]")))
    except ValueError:
        return domain_name(raw, field)


def username(value: str | None, field: str = "username") -> str:
    name = (value or "").strip().lower()
    if not name:
        raise invalid(field, "missing")
    if not _USERNAME.match(name):
        raise invalid(field, f"{name!r} may only hold letters, digits and . _ + - (64 at most)")
    return name


def target_username(value: str | None, field: str) -> str:
    name = (value or "").strip().lower()
    if not _TARGET_USER.match(name):
        raise invalid(field, f"{name!r} is not a SIP user part")
    return name


def sip_id(value: SipId | None, field: str = "sipId") -> tuple[str, str]:
    """(username, domain) of a SipId, both lower-cased as the client sends them."""
    if value is None:
        raise invalid(field, "missing")
    return username(value.username, f"{field}.username"), domain_name(value.domain, f"{field}.domain")


def email(value: str | None, field: str = "email") -> str:
    addr = (value or "").strip().lower()
    if addr and not _EMAIL.match(addr):
        raise invalid(field, f"{addr!r} is not an e-mail address")
    return addr


def e164(value: str | None, field: str, plus: bool = False) -> str:
    """Digits with an optional leading ``+`` (``plus`` forces one on the stored value)."""
    number = (value or "").strip().replace(" ", "")
    if not number:
        return ""
    if not _E164.match(number):
        raise invalid(field, f"{number!r} is not an E.164 number")
    if plus and not number.startswith("+"):
        number = "+" + number
    return number


def group_name(value: str | None, field: str = "group") -> str:
    name = (value or "").strip().lower()
    if not _GROUP.match(name):
        raise invalid(field, f"{name!r} may only hold letters, digits and . _ -")
    return name


def timezone(value: str | None, field: str = "timezone") -> str:
    tz = (value or "").strip()
    if not _TZ.match(tz):
        raise invalid(field, f"{tz!r} is not a time zone name")
    return tz


def integer(value: int | None, field: str, lo: int = 0, hi: int = 2**31 - 1, default: int = 0) -> int:
    if value is None:
        return default
    if isinstance(value, bool):
        value = int(value)
    if not isinstance(value, int):
        try:
            value = int(str(value).strip())
        except ValueError:
            raise invalid(field, f"{value!r} is not a number") from None
    if not lo <= value <= hi:
        raise invalid(field, f"{value} out of range {lo}-{hi}")
    return value


def flag(value: int | None, field: str) -> bool | None:
    """0/1 (or a boolean) -> bool; None stays None (member absent)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = {"true": 1, "false": 0}.get(value.strip().lower(), value)
    return bool(integer(value, field, 0, 1))


def money(value: float | None, field: str) -> float:
    if value is None:
        raise invalid(field, "missing")
    try:
        amount = float(value)
    except (TypeError, ValueError):
        raise invalid(field, f"{value!r} is not a number") from None
    if not math.isfinite(amount) or abs(amount) >= 1e9:
        raise invalid(field, f"{value!r} is out of range")
    return amount


def acl_entry(entry: AclEntry, field: str) -> tuple[str, int, str]:
    """(network address, prefix length, tag): ``ip`` may be an address or a CIDR network."""
    raw = (entry.ip or "").strip()
    try:
        if "/" in raw:
            net = ipaddress.ip_network(raw, strict=False)
            ip, default_mask = net.network_address, net.prefixlen
        else:
            ip = ipaddress.ip_address(raw)
            default_mask = ip.max_prefixlen
    except ValueError:
        raise invalid(f"{field}.ip", f"{raw!r} is not an IP address") from None
    mask = integer(entry.mask, f"{field}.mask", 0, ip.max_prefixlen, default_mask)
    return str(ip), mask, text(entry.tag, f"{field}.tag", 64)


def string_list(values: list[str] | None) -> list[str] | None:
    """A received string list with nulls and empty strings dropped (the UI sends ``['']``)."""
    if values is None:
        return None
    return [v for v in values if v is not None and str(v).strip() != ""]


def pem(value: str | None, field: str, marker: str) -> str | None:
    """PEM text (certificate or key) carrying ``marker``; None stays None (member absent)."""
    if value is None:
        return None
    body = text(value, field, 65536).strip()
    if body and ("-----BEGIN" not in body or marker not in body):
        raise invalid(field, "not a PEM " + marker.lower())
    return body


def ip_list(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    tokens = text(value, field, 4096).replace(",", " ").split()
    for token in tokens:
        try:
            ipaddress.ip_network(token, strict=False)
        except ValueError:
            raise invalid(field, f"{token!r} is not an IP address or network") from None
    return " ".join(tokens)


def domain_list(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    tokens = text(value, field, 4096).replace(",", " ").split()
    return " ".join(domain_name(token, field) for token in tokens)
