"""RatingPort (``urn:AGProjects:NGNPro:Rating``): which rating profiles an entity -- a
subscriber, a domain or a customer -- is rated with (NGNPro's RatingEntityProfiles).

The rates themselves are loaded from CSV (``python -m ngnpro.rating``); the proxy prices a
call with the profiles of the most specific entity that has some (see
:mod:`ngnpro.models.tariff`).  An entity is scoped by what it names: a reseller may set the
profiles of its own subscribers, domains and customers only, and the row keeps their
``customer``/``reseller`` so that reading and deleting are scoped the same way.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from spyne import Unicode, rpc
from sqlalchemy import select
from sqlalchemy.orm import Session

from ngnpro import sip_types as t
from ngnpro.models.changes import record_change
from ngnpro.models.customer import Customer
from ngnpro.models.rating import (
    PROFILE,
    TOPIC_RATING,
    RatingEntityProfile,
    RatingRate,
    parse_entity,
)
from ngnpro.rating import check_profile
from ngnpro.sip_accounts import find_account, get_domain
from ngnpro.soap import NS_RATING, NS_TYPES, PortService, call_context
from ngnpro.soap.context import Scope
from ngnpro.soap.faults import CUSTOMER_NOT_FOUND, RATING_NOT_FOUND, NGNProError
from ngnpro.soap.types import ComplexModel

#: wire member -> column, in wire order
PROFILE_FIELDS = (
    ("profileWeekday", "profile_weekday"), ("profileWeekdayAlt", "profile_weekday_alt"),
    ("profileWeekend", "profile_weekend"), ("profileWeekendAlt", "profile_weekend_alt"),
)


class RatingEntityProfiles(ComplexModel):
    __namespace__ = NS_TYPES
    __type_name__ = "RatingEntityProfiles"
    _type_info = [
        ("entity", Unicode), ("profileWeekday", Unicode), ("profileWeekdayAlt", Unicode),
        ("profileWeekend", Unicode), ("profileWeekendAlt", Unicode), ("timezone", Unicode),
    ]


def entity_name(value: str | None, field: str = "entity") -> str:
    """The entity string as stored (lower-case), or fault 1040 naming ``field``."""
    if not (value or "").strip():
        raise t.invalid(field, "missing")
    try:
        scheme, rest = parse_entity(t.text(value, field))
    except ValueError as exc:
        raise t.invalid(field, str(exc)) from None
    return f"{scheme}://{rest}"


def entity_owner(session: Session, scope: Scope, entity: str, field: str = "entity") -> tuple[int, int]:
    """``(customer, reseller)`` of what ``entity`` names, after checking it exists and lies
    in the caller's scope (the same faults as the SipPort/CustomerPort look-ups)."""
    scheme, _, rest = entity.partition("://")
    if scheme == "subscriber":
        user, _, domain = rest.partition("@")
        account = find_account(session, scope, t.SipId(username=user, domain=domain))
        return account.customer, account.reseller
    if scheme == "domain":
        row = get_domain(session, scope, rest, field)
        return row.customer, row.reseller
    customer = session.get(Customer, int(rest))
    if customer is None or not scope.allows(customer):
        raise NGNProError(CUSTOMER_NOT_FOUND, f"Customer {rest} does not exist")
    return customer.id, customer.reseller or customer.id


def _profile(session: Session, value: str | None, field: str) -> str:
    name = t.text(value, field, PROFILE).strip()
    if not name:
        return ""
    try:
        check_profile(name)
    except ValueError as exc:
        raise t.invalid(field, str(exc)) from None
    if session.scalar(select(RatingRate.id).where(RatingRate.profile == name).limit(1)) is None:
        raise t.invalid(field, f"rating profile {name!r} has no rates (import them with python -m ngnpro.rating)")
    return name


def _timezone(value: str | None, field: str) -> str:
    zone = t.timezone(value, field)
    if zone:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise t.invalid(field, f"{zone!r} is not a known time zone") from None
    return zone


def _find(session: Session, scope: Scope, entity: str) -> RatingEntityProfile:
    row = session.scalar(select(RatingEntityProfile).where(RatingEntityProfile.entity == entity))
    if row is None:
        raise NGNProError(RATING_NOT_FOUND, f"No rating profiles are defined for {entity}")
    scope.check(row)
    return row


def set_entity_profiles(session: Session, scope: Scope, profiles: RatingEntityProfiles | None) -> None:
    """Create or replace the profiles of ``profiles.entity`` (``profileWeekday`` required;
    every named profile must have rates, so a typo cannot silently rate calls by default)."""
    if profiles is None:
        raise t.invalid("profiles", "missing")
    entity = entity_name(profiles.entity, "profiles.entity")
    values = {column: _profile(session, getattr(profiles, wire), f"profiles.{wire}") for wire, column in PROFILE_FIELDS}
    if not values["profile_weekday"]:
        raise t.invalid("profiles.profileWeekday", "missing")
    values["timezone"] = _timezone(profiles.timezone, "profiles.timezone")
    customer, reseller = entity_owner(session, scope, entity, "profiles.entity")
    row = session.scalar(select(RatingEntityProfile).where(RatingEntityProfile.entity == entity).with_for_update())
    if row is None:
        row = RatingEntityProfile(entity=entity)
        session.add(row)
    else:
        scope.check(row)
    for column, value in values.items():
        setattr(row, column, value)
    row.customer, row.reseller = customer, reseller
    record_change(session, TOPIC_RATING, entity)
    session.flush()


def get_entity_profiles(session: Session, scope: Scope, entity: str | None) -> RatingEntityProfiles:
    row = _find(session, scope, entity_name(entity))
    return RatingEntityProfiles(
        entity=row.entity, profileWeekday=row.profile_weekday, profileWeekdayAlt=row.profile_weekday_alt,
        profileWeekend=row.profile_weekend, profileWeekendAlt=row.profile_weekend_alt, timezone=row.timezone,
    )


def delete_entity_profiles(session: Session, scope: Scope, entity: str | None) -> None:
    row = _find(session, scope, entity_name(entity))
    session.delete(row)
    record_change(session, TOPIC_RATING, row.entity)
    session.flush()


class RatingPort(PortService):
    """RatingPort: entity profiles (API.md 3.6; fault 4001 = none defined)."""

    __port_namespace__ = NS_RATING

    @rpc(RatingEntityProfiles)
    def setEntityProfiles(ctx, profiles):  # noqa: N802, N805 - wire names
        c = call_context(ctx)
        set_entity_profiles(c.session, c.scope, profiles)

    @rpc(Unicode)
    def deleteEntityProfiles(ctx, entity):  # noqa: N802, N805
        c = call_context(ctx)
        delete_entity_profiles(c.session, c.scope, entity)

    @rpc(Unicode, _returns=RatingEntityProfiles)
    def getEntityProfiles(ctx, entity):  # noqa: N802, N805
        c = call_context(ctx)
        return get_entity_profiles(c.session, c.scope, entity)
