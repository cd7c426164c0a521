"""DnsPort (``urn:AGProjects:NGNPro:Dns``, API.md 3.3): zones, records and fancy records.

enumdns serves the zones authoritatively, straight from these rows, so every value is
checked and normalised here (see :mod:`ngnpro.dns_types` for the stored form).  Records
take their ``customer``/``reseller`` from their zone: whoever may see a zone sees all of its
records.  Any change of a zone or its records bumps the zone's SOA serial and logs a
``dns_zone`` change keyed by the zone name.

Fancy records (``MBOXFW`` mail forwards, ``URL`` redirects) share the records table and are
kept apart by type: getRecords never lists them and getFancyRecords lists only them.
"""

from __future__ import annotations

from typing import Any

from spyne.model.primitive import Integer, Unicode
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ngnpro.dns_types import (
    EMAIL_LOCAL,
    FANCY_TYPES,
    MAX_TTL,
    RECORD_TYPES,
    DnsFancyRecord,
    DnsFancyRecordList,
    DnsFancyRecordQuery,
    DnsRecord,
    DnsRecordList,
    DnsRecordQuery,
    DnsZone,
    DnsZoneList,
    DnsZoneQuery,
    change_owner,
    date_text,
    domain_name,
    email_address,
    fancy_value,
    flush_unique,
    nameserver_list,
    new_owner,
    next_serial,
    plain_text,
    record_type,
    record_value,
    relative_name,
    ttl_value,
)
from ngnpro.models import zones
from ngnpro.models.changes import TOPIC_DNS_ZONE, record_change
from ngnpro.soap import NS_DNS, PortService, call_context, rpc
from ngnpro.soap.context import Scope
from ngnpro.soap.faults import (
    INVALID_VALUE,
    PERMISSION_DENIED,
    RECORD_EXISTS,
    RECORD_NOT_FOUND,
    ZONE_EXISTS,
    ZONE_NOT_FOUND,
    NGNProError,
)
from ngnpro.soap.query import run_query

Z = zones.DnsZone
R = zones.DnsRecord
DEFAULT_TTL = 3600


# -- zones ----------------------------------------------------------------------------------


def _touch(session: Session, zone: zones.DnsZone) -> None:
    zone.serial = next_serial(zone.serial)
    record_change(session, TOPIC_DNS_ZONE, zone.name)


def _find_zone(session: Session, scope: Scope, name: Any) -> zones.DnsZone:
    zname = domain_name(name, "zone")
    zone = session.execute(select(Z).where(Z.name == zname)).scalar_one_or_none()
    if zone is None:
        raise NGNProError(ZONE_NOT_FOUND, f"DNS zone {zname} does not exist")
    scope.check(zone)
    return zone


def _soa_contact(value: Any) -> str:
    text = "" if value is None else str(value).strip()
    if not text:
        return ""
    return email_address(text, "email") if "@" in text else domain_name(text, "email")


def _seconds(value: Any, field: str, current: int) -> int:
    if value is None or value == 0:
        return current
    if not 0 < value <= MAX_TTL:
        raise NGNProError(INVALID_VALUE, f"{field} {value} is outside 1..{MAX_TTL}")
    return int(value)


def _apply_zone_fields(zone: zones.DnsZone, data: DnsZone) -> None:
    zone.ttl = _seconds(data.ttl, "ttl", zone.ttl or DEFAULT_TTL)
    if data.info is not None:
        zone.info = plain_text(data.info, "info")
    if data.email is not None:
        zone.email = _soa_contact(data.email)
    for attr in ("refresh", "retry", "expire", "minimum"):
        setattr(zone, attr, _seconds(getattr(data, attr), attr, getattr(zone, attr)))
    if data.nameservers is not None:
        zone.nameservers = nameserver_list(data.nameservers)


def add_zone(session: Session, scope: Scope, data: DnsZone) -> None:
    name = domain_name(data.name, "zone name")
    if session.execute(select(Z.id).where(Z.name == name)).first():
        raise NGNProError(ZONE_EXISTS, f"DNS zone {name} already exists")
    # a zone inside (or around) another customer's zone would take over its names
    labels = name.split(".")
    parents = [".".join(labels[i:]) for i in range(1, len(labels))]
    for other in session.execute(select(Z).where(Z.name.in_(parents) | Z.name.like("%." + name))).scalars():
        if not scope.allows(other):
            raise NGNProError(PERMISSION_DENIED, f"DNS zone {name} overlaps zone {other.name} of another customer")
    customer, reseller = new_owner(session, scope, data.customer, data.reseller)
    zone = Z(name=name, customer=customer, reseller=reseller, serial=next_serial(0),
             refresh=10800, retry=3600, expire=1209600, minimum=3600, ttl=DEFAULT_TTL)
    _apply_zone_fields(zone, data)
    session.add(zone)
    flush_unique(session, ZONE_EXISTS, f"DNS zone {name} already exists")
    record_change(session, TOPIC_DNS_ZONE, name)


def update_zone(session: Session, scope: Scope, data: DnsZone) -> None:
    zone = _find_zone(session, scope, data.name)
    _apply_zone_fields(zone, data)
    before = (zone.customer, zone.reseller)
    change_owner(session, scope, zone, data.customer, data.reseller)
    if (zone.customer, zone.reseller) != before:
        for rec in zone.records:
            rec.customer, rec.reseller = zone.customer, zone.reseller
    _touch(session, zone)


def delete_zone(session: Session, scope: Scope, name: Any) -> None:
    zone = _find_zone(session, scope, name)
    record_change(session, TOPIC_DNS_ZONE, zone.name)
    session.delete(zone)


def zone_out(zone: zones.DnsZone) -> DnsZone:
    return DnsZone(
        name=zone.name, ttl=zone.ttl, info=zone.info, customer=zone.customer, reseller=zone.reseller,
        nameservers=zone.nameservers.split() if zone.nameservers else [], serial=zone.serial,
        email=zone.email, refresh=zone.refresh, retry=zone.retry, expire=zone.expire,
        minimum=zone.minimum, changeDate=date_text(zone.change_date),
    )


def get_zone(session: Session, scope: Scope, name: Any) -> DnsZone:
    return zone_out(_find_zone(session, scope, name))


def get_zones(session: Session, scope: Scope, query: DnsZoneQuery | None) -> DnsZoneList:
    total, rows = run_query(
        session, select(Z), query,
        filters={"name": Z.name, "info": Z.info, "customer": Z.customer, "reseller": Z.reseller},
        orders={"changeDate": Z.change_date, "name": Z.name},
        scope=scope, model=Z,
    )
    return DnsZoneList(total=total, zones=[zone_out(z) for z in rows])


# -- records --------------------------------------------------------------------------------


def _fancy_name(rtype: str, value: Any, zone: str) -> str:
    """MBOXFW names are the full address ``local@zone`` (a bare local part gets the zone);
    URL names are host labels like ordinary records."""
    if rtype != "MBOXFW":
        return relative_name(value, zone)
    text = ("" if value is None else str(value)).strip().lower()
    local, at, domain = text.rpartition("@")
    if not at:
        local, domain = text, zone
    if domain.rstrip(".") != zone or not EMAIL_LOCAL.match(local):
        raise NGNProError(INVALID_VALUE, f"MBOXFW name {text!r} must be an address local@{zone}")
    return f"{local}@{zone}"


def _record_values(zone: zones.DnsZone, data: Any, fancy: bool, current: zones.DnsRecord | None) -> dict:
    """The stored columns for ``data`` (members left out keep ``current``'s values)."""
    def pick(member: str, attr: str) -> Any:
        value = getattr(data, member, None)
        return getattr(current, attr) if value is None and current is not None else value

    rtype = record_type(pick("type", "type"), FANCY_TYPES if fancy else RECORD_TYPES)
    raw_name = pick("name", "name")
    name = _fancy_name(rtype, raw_name, zone.name) if fancy else relative_name(raw_name, zone.name)
    value, priority = pick("value", "value"), pick("priority", "priority")
    if fancy:
        value, priority = fancy_value(rtype, value), 0
    else:
        value, priority = record_value(rtype, value, priority)
    return {
        "name": name, "type": rtype, "value": value, "priority": priority,
        "ttl": ttl_value(getattr(data, "ttl", None), current.ttl if current is not None else zone.ttl),
        "owner": int(pick("owner", "owner") or 0),
    }


def _check_conflicts(session: Session, zone: zones.DnsZone, values: dict, self_id: int | None) -> None:
    """Refuse duplicates (7003) and CNAMEs sharing a name with other data (RFC 1034 3.6.2)."""
    same_name = session.execute(
        select(R).where(R.zone_id == zone.id, R.name == values["name"], R.type.not_in(FANCY_TYPES))
    ).scalars().all()
    others = [r for r in same_name if r.id != self_id]
    for r in session.execute(
        select(R).where(R.zone_id == zone.id, R.name == values["name"], R.type == values["type"])
    ).scalars():
        if r.id != self_id and r.value == values["value"] and r.priority == values["priority"]:
            label = values["name"] or "@"
            raise NGNProError(RECORD_EXISTS, f"{values['type']} record {label} {values['value']} already exists in {zone.name}")
    if values["type"] in FANCY_TYPES:
        return
    if values["type"] == "CNAME" and (others or values["name"] == ""):
        raise NGNProError(INVALID_VALUE, f"a CNAME at {values['name'] or '@'} cannot coexist with other records")
    if values["type"] != "CNAME" and any(r.type == "CNAME" for r in others):
        raise NGNProError(INVALID_VALUE, f"{values['name'] or '@'} already has a CNAME record")


def _find_record(session: Session, scope: Scope, record_id: Any, fancy: bool) -> zones.DnsRecord:
    try:
        rid = int(record_id)
    except (TypeError, ValueError):
        raise NGNProError(INVALID_VALUE, f"record id {record_id!r} is not a number") from None
    row = session.get(R, rid)
    if row is None or (row.type in FANCY_TYPES) != fancy:
        raise NGNProError(RECORD_NOT_FOUND, f"DNS record {rid} does not exist")
    scope.check(row)
    return row


def add_record(session: Session, scope: Scope, data: Any, fancy: bool = False) -> int:
    """Add a record (or a fancy record); returns its id."""
    zone = _find_zone(session, scope, data.zone)
    values = _record_values(zone, data, fancy, None)
    _check_conflicts(session, zone, values, None)
    row = R(zone_id=zone.id, customer=zone.customer, reseller=zone.reseller, **values)
    session.add(row)
    _touch(session, zone)
    session.flush()
    return row.id


def update_record(session: Session, scope: Scope, data: Any, fancy: bool = False) -> None:
    row = _find_record(session, scope, data.id, fancy)
    zone = row.zone
    if data.zone not in (None, "") and domain_name(data.zone, "zone") != zone.name:
        raise NGNProError(INVALID_VALUE, f"DNS record {row.id} belongs to zone {zone.name}; it cannot move")
    values = _record_values(zone, data, fancy, row)
    _check_conflicts(session, zone, values, row.id)
    for key, val in values.items():
        setattr(row, key, val)
    _touch(session, zone)


def delete_record(session: Session, scope: Scope, record_id: Any, fancy: bool = False) -> None:
    row = _find_record(session, scope, record_id, fancy)
    _touch(session, row.zone)
    session.delete(row)


def record_out(row: zones.DnsRecord, fancy: bool = False) -> DnsRecord | DnsFancyRecord:
    cls = DnsFancyRecord if fancy else DnsRecord
    return cls(
        id=row.id, name=row.name, zone=row.zone.name, type=row.type, value=row.value,
        owner=row.owner, ttl=row.ttl, priority=row.priority, customer=row.customer,
        reseller=row.reseller, changeDate=date_text(row.change_date),
    )


def get_record(session: Session, scope: Scope, record_id: Any, fancy: bool = False) -> Any:
    return record_out(_find_record(session, scope, record_id, fancy), fancy)


def get_records(session: Session, scope: Scope, query: DnsRecordQuery | None, fancy: bool = False) -> Any:
    stmt = (
        select(R).join(Z, R.zone_id == Z.id)
        .where(R.type.in_(FANCY_TYPES) if fancy else R.type.not_in(FANCY_TYPES))
        .options(selectinload(R.zone))
    )
    total, rows = run_query(
        session, stmt, query,
        filters={"id": R.id, "zone": Z.name, "name": R.name, "type": R.type, "value": R.value,
                 "owner": R.owner, "customer": R.customer, "reseller": R.reseller},
        orders={"changeDate": R.change_date, "type": R.type, "name": R.name, "zone": Z.name},
        scope=scope, model=R,
    )
    records = [record_out(r, fancy) for r in rows]
    return DnsFancyRecordList(total=total, records=records) if fancy else DnsRecordList(total=total, records=records)


# -- spyne adapter --------------------------------------------------------------------------


def _given(value: Any, name: str) -> Any:
    if value is None:
        raise NGNProError(INVALID_VALUE, f"parameter {name} is missing")
    return value


class DnsPort(PortService):
    """The fifteen DnsPort methods; each is one transaction (see :class:`PortService`)."""

    __port_namespace__ = NS_DNS

    @rpc(DnsZone)
    def addZone(ctx, zone):
        c = call_context(ctx)
        add_zone(c.session, c.scope, _given(zone, "zone"))

    @rpc(DnsZone)
    def updateZone(ctx, zone):
        c = call_context(ctx)
        update_zone(c.session, c.scope, _given(zone, "zone"))

    @rpc(Unicode)
    def deleteZone(ctx, zone):
        c = call_context(ctx)
        delete_zone(c.session, c.scope, zone)

    @rpc(Unicode, _returns=DnsZone)
    def getZone(ctx, zone):
        c = call_context(ctx)
        return get_zone(c.session, c.scope, zone)

    @rpc(DnsZoneQuery, _returns=DnsZoneList)
    def getZones(ctx, query):
        c = call_context(ctx)
        return get_zones(c.session, c.scope, query)

    @rpc(DnsRecord)
    def addRecord(ctx, record):
        c = call_context(ctx)
        add_record(c.session, c.scope, _given(record, "record"))

    @rpc(DnsRecord)
    def updateRecord(ctx, record):
        c = call_context(ctx)
        update_record(c.session, c.scope, _given(record, "record"))

    @rpc(Integer)
    def deleteRecord(ctx, recordId):
        c = call_context(ctx)
        delete_record(c.session, c.scope, recordId)

    @rpc(Integer, _returns=DnsRecord)
    def getRecord(ctx, recordId):
        c = call_context(ctx)
        return get_record(c.session, c.scope, recordId)

    @rpc(DnsRecordQuery, _returns=DnsRecordList)
    def getRecords(ctx, query):
        c = call_context(ctx)
        return get_records(c.session, c.scope, query)

    @rpc(DnsFancyRecord)
    def addFancyRecord(ctx, record):
        c = call_context(ctx)
        add_record(c.session, c.scope, _given(record, "record"), fancy=True)

    @rpc(DnsFancyRecord)
    def updateFancyRecord(ctx, record):
        c = call_context(ctx)
        update_record(c.session, c.scope, _given(record, "record"), fancy=True)

    @rpc(Integer)
    def deleteFancyRecord(ctx, recordId):
        c = call_context(ctx)
        delete_record(c.session, c.scope, recordId, fancy=True)

    @rpc(Integer, _returns=DnsFancyRecord)
    def getFancyRecord(ctx, recordId):
        c = call_context(ctx)
        return get_record(c.session, c.scope, recordId, fancy=True)

    @rpc(DnsFancyRecordQuery, _returns=DnsFancyRecordList)
    def getFancyRecords(ctx, query):
        c = call_context(ctx)
        return get_records(c.session, c.scope, query, fancy=True)
