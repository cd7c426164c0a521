"""EnumPort (``urn:AGProjects:NGNPro:Enum``, API.md 3.2): ENUM ranges and numbers.

A range (``prefix`` under a ``tld`` such as ``e164.arpa``) is what enumdns serves as one
zone; a number lives in the range with the longest matching prefix of its tld and must
have between ``minDigits`` and ``maxDigits`` digits in total (0 = no bound).  Every change
bumps the range's SOA serial and logs a change so enumdns drops its cached answers.

The functions below are the logic (Session + Scope + wire values, raising NGNProError);
:class:`EnumPort` at the end only adapts them to spyne.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session, selectinload

from ngnpro.dns_types import (
    change_owner,
    date_text,
    domain_name,
    flush_unique,
    nameserver_list,
    new_owner,
    next_serial,
    plain_text,
    ttl_value,
    u16,
)
from ngnpro.enum_types import (
    EnumId,
    EnumMapping,
    EnumNumber,
    EnumNumberList,
    EnumNumberQuery,
    EnumRange,
    EnumRangeId,
    EnumRangeList,
    EnumRangeQuery,
    digit_bound,
    e164_digits,
    enum_service,
    mapping_uri,
)
from ngnpro.models import e164
from ngnpro.models.base import utcnow
from ngnpro.models.changes import TOPIC_ENUM_NUMBER, TOPIC_ENUM_RANGE, record_change
from ngnpro.soap import NS_ENUM, PortService, call_context, rpc
from ngnpro.soap.context import Scope
from ngnpro.soap.faults import (
    ENUM_NUMBER_EXISTS,
    ENUM_NUMBER_NOT_FOUND,
    ENUM_OUTSIDE_RANGE,
    ENUM_RANGE_EXISTS,
    ENUM_RANGE_NOT_FOUND,
    INVALID_VALUE,
    PERMISSION_DENIED,
    NGNProError,
)
from ngnpro.soap.query import run_query

DEFAULT_TTL = 3600


# -- helpers --------------------------------------------------------------------------------


def _range_key(prefix: Any, tld: Any) -> tuple[str, str]:
    return e164_digits(prefix, "prefix"), domain_name(tld or "e164.arpa", "tld")


def _number_key(number: Any, tld: Any) -> tuple[str, str]:
    return e164_digits(number, "number"), domain_name(tld or "e164.arpa", "tld")


def _touch_range(session: Session, rng: e164.EnumRange) -> None:
    rng.serial = next_serial(rng.serial)
    record_change(session, TOPIC_ENUM_RANGE, f"{rng.prefix}@{rng.tld}")


def _find_range(session: Session, scope: Scope, prefix: Any, tld: Any) -> e164.EnumRange:
    prefix, tld = _range_key(prefix, tld)
    rng = session.execute(
        select(e164.EnumRange).where(e164.EnumRange.prefix == prefix, e164.EnumRange.tld == tld)
    ).scalar_one_or_none()
    if rng is None:
        raise NGNProError(ENUM_RANGE_NOT_FOUND, f"ENUM range +{prefix} in {tld} does not exist")
    scope.check(rng)
    return rng


def _covering_ranges(session: Session, number: str, tld: str) -> list[e164.EnumRange]:
    """Ranges of ``tld`` whose prefix starts ``number``, longest prefix first."""
    heads = [number[:i] for i in range(1, len(number) + 1)]
    rows = session.execute(
        select(e164.EnumRange).where(e164.EnumRange.tld == tld, e164.EnumRange.prefix.in_(heads))
    ).scalars()
    return sorted(rows, key=lambda r: len(r.prefix), reverse=True)


def _fits(rng: e164.EnumRange, number: str) -> bool:
    return (not rng.min_digits or len(number) >= rng.min_digits) and (
        not rng.max_digits or len(number) <= rng.max_digits
    )


def _may_use_range(scope: Scope, rng: e164.EnumRange) -> bool:
    """A number may go into a range the caller sees, or (a plain customer) into a range of
    its own reseller."""
    if scope.allows(rng):
        return True
    return scope.customer_id is not None and bool(scope.parent_reseller) and rng.reseller == scope.parent_reseller


def _find_number(session: Session, scope: Scope, enum_id: Any) -> e164.EnumNumber:
    number, tld = _number_key(getattr(enum_id, "number", None), getattr(enum_id, "tld", None))
    row = session.execute(
        select(e164.EnumNumber)
        .where(e164.EnumNumber.number == number, e164.EnumNumber.tld == tld)
        .options(selectinload(e164.EnumNumber.mappings))
    ).scalar_one_or_none()
    if row is None:
        raise NGNProError(ENUM_NUMBER_NOT_FOUND, f"ENUM number +{number} in {tld} does not exist")
    scope.check(row)
    return row


def _mapping_values(m: Any) -> dict[str, Any]:
    return {
        "type": enum_service(getattr(m, "type", None)),
        "mapto": mapping_uri(getattr(m, "mapto", None)),
        "ttl": ttl_value(getattr(m, "ttl", None), DEFAULT_TTL, "mapping ttl"),
        "priority": u16(getattr(m, "priority", None), "mapping priority", 10),
    }


def _set_mappings(row: e164.EnumNumber, mappings: list[Any] | None) -> None:
    """Replace the number's mappings by ``mappings``: items whose ``id`` is one of this
    number's mappings update it, the others (id 0 or absent) are new; the rest go."""
    wanted = [(getattr(m, "id", None) or 0, _mapping_values(m)) for m in mappings or [] if m is not None]
    if len(wanted) > 100:
        raise NGNProError(INVALID_VALUE, "a number may have at most 100 mappings")
    current = {m.id: m for m in row.mappings}
    keep: list[e164.EnumMapping] = []
    for mid, values in wanted:
        existing = current.pop(mid, None) if mid else None
        if existing is None:
            keep.append(e164.EnumMapping(**values))
        else:
            for key, val in values.items():
                setattr(existing, key, val)
            keep.append(existing)
    row.mappings = keep


# -- ranges ---------------------------------------------------------------------------------


def add_range(session: Session, scope: Scope, data: EnumRange) -> None:
    scope.require_reseller_or_admin()
    rid = data.id or EnumRangeId()
    prefix, tld = _range_key(rid.prefix, rid.tld)
    min_d, max_d = digit_bound(data.minDigits, "minDigits"), digit_bound(data.maxDigits, "maxDigits")
    if max_d and (min_d > max_d or len(prefix) > max_d):
        raise NGNProError(INVALID_VALUE, f"maxDigits {max_d} is below minDigits or the prefix length")
    exists_row = session.execute(
        select(e164.EnumRange.id).where(e164.EnumRange.prefix == prefix, e164.EnumRange.tld == tld)
    ).first()
    if exists_row is not None:
        raise NGNProError(ENUM_RANGE_EXISTS, f"ENUM range +{prefix} in {tld} already exists")
    # a range nested in (or around) someone else's range would take numbers from it
    others = session.execute(
        select(e164.EnumRange).where(
            e164.EnumRange.tld == tld,
            (e164.EnumRange.prefix.in_([prefix[:i] for i in range(1, len(prefix))]))
            | e164.EnumRange.prefix.like(prefix + "%"),
        )
    ).scalars()
    for other in others:
        if not scope.allows(other):
            raise NGNProError(
                PERMISSION_DENIED, f"ENUM range +{prefix} overlaps range +{other.prefix} of another customer"
            )
    customer, reseller = new_owner(session, scope, data.customer, data.reseller)
    rng = e164.EnumRange(
        prefix=prefix, tld=tld, customer=customer, reseller=reseller,
        ttl=ttl_value(data.ttl, DEFAULT_TTL), info=plain_text(data.info, "info"),
        min_digits=min_d, max_digits=max_d, size=max(0, int(data.size or 0)),
        nameservers=nameserver_list(data.nameservers), serial=next_serial(0),
    )
    session.add(rng)
    flush_unique(session, ENUM_RANGE_EXISTS, f"ENUM range +{prefix} in {tld} already exists")
    _adopt_numbers(session, rng)
    record_change(session, TOPIC_ENUM_RANGE, f"{prefix}@{tld}")


def _adopt_numbers(session: Session, rng: e164.EnumRange) -> None:
    """Numbers of a shorter (enclosing) range that the new range matches move into it."""
    rows = session.execute(
        select(e164.EnumNumber)
        .join(e164.EnumRange, e164.EnumNumber.range_id == e164.EnumRange.id)
        .where(
            e164.EnumNumber.tld == rng.tld,
            e164.EnumNumber.number.like(rng.prefix + "%"),
            func.length(e164.EnumRange.prefix) < len(rng.prefix),
        )
    ).scalars().all()
    for num in rows:
        if not _fits(rng, num.number):
            raise NGNProError(
                INVALID_VALUE, f"existing number +{num.number} does not fit the digits bounds of the new range"
            )
        if num.range is not None:
            _touch_range(session, num.range)
        num.range_id = rng.id
        record_change(session, TOPIC_ENUM_NUMBER, f"{num.number}@{num.tld}")


def update_range(session: Session, scope: Scope, data: EnumRange) -> None:
    scope.require_reseller_or_admin()
    rid = data.id or EnumRangeId()
    rng = _find_range(session, scope, rid.prefix, rid.tld)
    if data.ttl is not None:
        rng.ttl = ttl_value(data.ttl, DEFAULT_TTL)
    if data.info is not None:
        rng.info = plain_text(data.info, "info")
    if data.size is not None:
        rng.size = max(0, int(data.size))
    if data.nameservers is not None:
        rng.nameservers = nameserver_list(data.nameservers)
    if data.minDigits is not None:
        rng.min_digits = digit_bound(data.minDigits, "minDigits")
    if data.maxDigits is not None:
        rng.max_digits = digit_bound(data.maxDigits, "maxDigits")
    if rng.max_digits and (rng.min_digits > rng.max_digits or len(rng.prefix) > rng.max_digits):
        raise NGNProError(INVALID_VALUE, f"maxDigits {rng.max_digits} is below minDigits or the prefix length")
    length = func.length(e164.EnumNumber.number)
    bad = select(e164.EnumNumber.number).where(e164.EnumNumber.range_id == rng.id)
    if rng.min_digits or rng.max_digits:
        bad = bad.where((length < (rng.min_digits or 0)) | (length > (rng.max_digits or 99)))
        offender = session.execute(bad.limit(1)).scalar()
        if offender is not None:
            raise NGNProError(INVALID_VALUE, f"number +{offender} of the range does not fit minDigits/maxDigits")
    change_owner(session, scope, rng, data.customer, data.reseller)
    _touch_range(session, rng)


def delete_range(session: Session, scope: Scope, rid: EnumRangeId | None) -> None:
    """Delete a range and the numbers in it."""
    scope.require_reseller_or_admin()
    rid = rid or EnumRangeId()
    rng = _find_range(session, scope, rid.prefix, rid.tld)
    numbers = session.execute(
        select(e164.EnumNumber.number).where(e164.EnumNumber.range_id == rng.id)
    ).scalars()
    for number in numbers:
        record_change(session, TOPIC_ENUM_NUMBER, f"{number}@{rng.tld}")
    record_change(session, TOPIC_ENUM_RANGE, f"{rng.prefix}@{rng.tld}")
    session.delete(rng)


def range_out(rng: e164.EnumRange, used: int) -> EnumRange:
    return EnumRange(
        id=EnumRangeId(prefix=rng.prefix, tld=rng.tld), ttl=rng.ttl, info=rng.info,
        minDigits=rng.min_digits, maxDigits=rng.max_digits, size=rng.size,
        customer=rng.customer, reseller=rng.reseller, serial=rng.serial, used=used,
        nameservers=rng.nameservers.split() if rng.nameservers else [],
        changeDate=date_text(rng.change_date),
    )


def get_ranges(session: Session, scope: Scope, query: EnumRangeQuery | None) -> EnumRangeList:
    R = e164.EnumRange
    total, rows = run_query(
        session, select(R), query,
        filters={"prefix": R.prefix, "tld": R.tld, "info": R.info, "customer": R.customer, "reseller": R.reseller},
        orders={"changeDate": R.change_date, "prefix": R.prefix, "tld": R.tld},
        scope=scope, model=R,
    )
    used: dict[int, int] = {}
    if rows:
        used = dict(
            session.execute(
                select(e164.EnumNumber.range_id, func.count())
                .where(e164.EnumNumber.range_id.in_([r.id for r in rows]))
                .group_by(e164.EnumNumber.range_id)
            ).all()
        )
    return EnumRangeList(total=total, ranges=[range_out(r, used.get(r.id, 0)) for r in rows])


# -- numbers --------------------------------------------------------------------------------


def add_number(session: Session, scope: Scope, data: EnumNumber) -> None:
    eid = data.id or EnumId()
    number, tld = _number_key(eid.number, eid.tld)
    if session.execute(
        select(e164.EnumNumber.id).where(e164.EnumNumber.number == number, e164.EnumNumber.tld == tld)
    ).first():
        raise NGNProError(ENUM_NUMBER_EXISTS, f"ENUM number +{number} in {tld} already exists")
    ranges = _covering_ranges(session, number, tld)
    if not ranges:
        raise NGNProError(ENUM_OUTSIDE_RANGE, f"ENUM number +{number} is outside every range of {tld}")
    rng = ranges[0]
    if not _may_use_range(scope, rng):
        raise NGNProError(PERMISSION_DENIED, f"ENUM range +{rng.prefix} in {tld} belongs to another customer")
    if not _fits(rng, number):
        raise NGNProError(
            INVALID_VALUE,
            f"ENUM number +{number} must have {rng.min_digits or 1}..{rng.max_digits or 15} digits "
            f"in range +{rng.prefix}",
        )
    customer, reseller = new_owner(session, scope, data.customer, data.reseller)
    row = e164.EnumNumber(
        number=number, tld=tld, range_id=rng.id, customer=customer, reseller=reseller,
        owner=int(data.owner or 0), info=plain_text(data.info, "info"), mappings=[],
    )
    _set_mappings(row, data.mappings)
    session.add(row)
    flush_unique(session, ENUM_NUMBER_EXISTS, f"ENUM number +{number} in {tld} already exists")
    _touch_range(session, rng)
    record_change(session, TOPIC_ENUM_NUMBER, f"{number}@{tld}")


def update_number(session: Session, scope: Scope, data: EnumNumber) -> None:
    row = _find_number(session, scope, data.id)
    if data.owner is not None:
        row.owner = int(data.owner)
    if data.info is not None:
        row.info = plain_text(data.info, "info")
    if data.mappings is not None:
        _set_mappings(row, data.mappings)
    change_owner(session, scope, row, data.customer, data.reseller)
    row.change_date = utcnow()  # mapping edits alone do not touch the number's columns
    if row.range is not None:
        _touch_range(session, row.range)
    record_change(session, TOPIC_ENUM_NUMBER, f"{row.number}@{row.tld}")


def delete_number(session: Session, scope: Scope, enum_id: EnumId | None) -> None:
    row = _find_number(session, scope, enum_id)
    if row.range is not None:
        _touch_range(session, row.range)
    record_change(session, TOPIC_ENUM_NUMBER, f"{row.number}@{row.tld}")
    session.delete(row)


def number_out(row: e164.EnumNumber) -> EnumNumber:
    return EnumNumber(
        id=EnumId(number=row.number, tld=row.tld), owner=row.owner, info=row.info,
        mappings=[
            EnumMapping(id=m.id, type=m.type, mapto=m.mapto, ttl=m.ttl, priority=m.priority)
            for m in row.mappings
        ],
        customer=row.customer, reseller=row.reseller, changeDate=date_text(row.change_date),
    )


def get_number(session: Session, scope: Scope, enum_id: EnumId | None) -> EnumNumber:
    return number_out(_find_number(session, scope, enum_id))


def _mapping_filter(column: Any, substring: bool) -> Any:
    def apply(stmt: Any, value: str) -> Any:
        pattern = value if not substring or "%" in value or "_" in value else f"%{value}%"
        M = e164.EnumMapping
        return stmt.where(exists().where(M.number_id == e164.EnumNumber.id, column.like(pattern)))

    return apply


def get_numbers(session: Session, scope: Scope, query: EnumNumberQuery | None) -> EnumNumberList:
    N = e164.EnumNumber
    total, rows = run_query(
        session, select(N).options(selectinload(N.mappings)), query,
        filters={
            "number": N.number, "tld": N.tld, "owner": N.owner, "customer": N.customer,
            "reseller": N.reseller,
            "type": _mapping_filter(e164.EnumMapping.type, substring=False),
            "mapto": _mapping_filter(e164.EnumMapping.mapto, substring=True),
        },
        orders={"changeDate": N.change_date, "number": N.number, "tld": N.tld},
        scope=scope, model=N,
    )
    return EnumNumberList(total=total, numbers=[number_out(r) for r in rows])


# -- spyne adapter --------------------------------------------------------------------------


def _given(value: Any, name: str) -> Any:
    if value is None:
        raise NGNProError(INVALID_VALUE, f"parameter {name} is missing")
    return value


class EnumPort(PortService):
    """The nine EnumPort methods; each is one transaction (see :class:`PortService`)."""

    __port_namespace__ = NS_ENUM

    @rpc(EnumRange)
    def addRange(ctx, range):
        c = call_context(ctx)
        add_range(c.session, c.scope, _given(range, "range"))

    @rpc(EnumRange)
    def updateRange(ctx, range):
        c = call_context(ctx)
        update_range(c.session, c.scope, _given(range, "range"))

    @rpc(EnumRangeId)
    def deleteRange(ctx, range):
        c = call_context(ctx)
        delete_range(c.session, c.scope, _given(range, "range"))

    @rpc(EnumRangeQuery, _returns=EnumRangeList)
    def getRanges(ctx, query):
        c = call_context(ctx)
        return get_ranges(c.session, c.scope, query)

    @rpc(EnumNumber)
    def addNumber(ctx, number):
        c = call_context(ctx)
        add_number(c.session, c.scope, _given(number, "number"))

    @rpc(EnumNumber)
    def updateNumber(ctx, number):
        c = call_context(ctx)
        update_number(c.session, c.scope, _given(number, "number"))

    @rpc(EnumId)
    def deleteNumber(ctx, enumId):
        c = call_context(ctx)
        delete_number(c.session, c.scope, _given(enumId, "enumId"))

    @rpc(EnumId, _returns=EnumNumber)
    def getNumber(ctx, enumId):
        c = call_context(ctx)
        return get_number(c.session, c.scope, _given(enumId, "enumId"))

    @rpc(EnumNumberQuery, _returns=EnumNumberList)
    def getNumbers(ctx, query):
        c = call_context(ctx)
        return get_numbers(c.session, c.scope, query)
