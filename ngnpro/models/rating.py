"""Rating tables: the rates of each rating profile, and which profiles an entity (a
subscriber, a domain, a customer) is rated with -- NGNPro's RatingEntityProfiles.

The arithmetic is pure and lives in :mod:`ngnpro.models.tariff` (re-exported here); this
module adds the two tables and :func:`load_rating`, the one query that reads what rating an
account's call needs, shared by ngnpro and sipproxy so both price a call the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from sqlalchemy import (
    CheckConstraint,
    Connection,
    Integer,
    String,
    UniqueConstraint,
    delete,
    or_,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from .base import Base, Owned, Stamped
from .changes import record_change
from .tariff import (
    DEFAULT_PROFILE,
    QUANTUM,
    EntityProfiles,
    Rate,
    RatingData,
    billed_seconds,
    call_price,
    charge,
    covers_first_increment,
    entity_keys,
    find_rate,
    first_increment_price,
    is_weekend,
    longest_prefix,
    max_duration,
    normalize_number,
    normalize_prefix,
    parse_entity,
    profiles_for,
    rate_for,
    resolve_profiles,
)

#: change_log topic of rating changes (key: the profile name, or the entity string).
TOPIC_RATING = "rating"
#: Lengths of the indexed strings.
PROFILE = 64
PREFIX = 32
ENTITY = 255

__all__ = [
    "DEFAULT_PROFILE", "QUANTUM", "TOPIC_RATING", "EntityProfiles", "Rate", "RatingData",
    "RatingEntityProfile", "RatingRate", "billed_seconds", "call_price", "charge",
    "covers_first_increment", "entity_keys", "find_rate", "first_increment_price",
    "forget_entities", "is_weekend", "load_rating", "longest_prefix", "max_duration",
    "normalize_number", "normalize_prefix", "parse_entity", "profiles_for", "rate_for",
    "resolve_profiles",
]


class RatingRate(Base):
    """One destination prefix's price in one rating profile (``default`` rates everyone
    without a profile of their own).  The longest matching prefix wins."""

    __tablename__ = "rating_rates"
    __table_args__ = (
        UniqueConstraint("profile", "prefix"),
        CheckConstraint("increment >= 1", name="increment"),
        CheckConstraint("min_duration >= 0", name="min_duration"),
        CheckConstraint("price_per_minute >= 0 AND connect_fee >= 0", name="prices"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    profile: Mapped[str] = mapped_column(String(PROFILE))
    #: E.164 digits without + or 00; "" matches every destination
    prefix: Mapped[str] = mapped_column(String(PREFIX), default="")
    name: Mapped[str] = mapped_column(String(255), default="")
    price_per_minute: Mapped[Decimal] = mapped_column(default=Decimal(0))
    connect_fee: Mapped[Decimal] = mapped_column(default=Decimal(0))
    #: seconds; every started increment is paid in full
    increment: Mapped[int] = mapped_column(Integer, default=60)
    #: seconds billed at least once answered
    min_duration: Mapped[int] = mapped_column(Integer, default=0)

    def as_rate(self) -> Rate:
        return Rate(
            prefix=self.prefix, price_per_minute=Decimal(self.price_per_minute),
            connect_fee=Decimal(self.connect_fee), increment=self.increment,
            min_duration=self.min_duration, profile=self.profile, name=self.name,
        )


class RatingEntityProfile(Owned, Stamped, Base):
    """RatingEntityProfiles of one entity: ``subscriber://user@domain``,
    ``domain://example.com`` or ``customer://ID``.  ``customer``/``reseller`` are the
    entity's owners, copied when it is set, so a reseller sees and changes only its own."""

    __tablename__ = "rating_entity_profiles"

    id: Mapped[int] = mapped_column(primary_key=True)
    entity: Mapped[str] = mapped_column(String(ENTITY), unique=True)
    profile_weekday: Mapped[str] = mapped_column(String(PROFILE), default="")
    profile_weekday_alt: Mapped[str] = mapped_column(String(PROFILE), default="")
    profile_weekend: Mapped[str] = mapped_column(String(PROFILE), default="")
    profile_weekend_alt: Mapped[str] = mapped_column(String(PROFILE), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="")

    def as_profiles(self) -> EntityProfiles:
        return EntityProfiles(
            entity=self.entity, weekday=self.profile_weekday, weekday_alt=self.profile_weekday_alt,
            weekend=self.profile_weekend, weekend_alt=self.profile_weekend_alt, timezone=self.timezone,
        )


_RATE_COLUMNS = (
    RatingRate.profile, RatingRate.prefix, RatingRate.name, RatingRate.price_per_minute,
    RatingRate.connect_fee, RatingRate.increment, RatingRate.min_duration,
)
_ENTITY_COLUMNS = (
    RatingEntityProfile.entity, RatingEntityProfile.profile_weekday, RatingEntityProfile.profile_weekday_alt,
    RatingEntityProfile.profile_weekend, RatingEntityProfile.profile_weekend_alt, RatingEntityProfile.timezone,
)


def load_rating(db: Session | Connection, keys: Iterable[str], number: str | None = None) -> RatingData:
    """Read what rating calls of the account with entity ``keys`` (see
    :func:`~ngnpro.models.tariff.entity_keys`) needs, in two indexed queries.

    With ``number``, only the rates whose prefix is a prefix of it are read: one call's
    decision needs a handful of rows, not the whole table.  Without, every rate of the
    account's profiles (and ``default``) is read, for a reader that caches them."""
    keys = list(keys)
    entities: dict[str, EntityProfiles] = {}
    if keys:
        for row in db.execute(select(*_ENTITY_COLUMNS).where(RatingEntityProfile.entity.in_(keys))):
            entities[row[0]] = EntityProfiles(*row)
    names = {DEFAULT_PROFILE}
    for profile in entities.values():
        names.update(n for n in (profile.weekday, profile.weekday_alt, profile.weekend, profile.weekend_alt) if n)
    stmt = select(*_RATE_COLUMNS).where(RatingRate.profile.in_(sorted(names)))
    if number is not None:
        digits = normalize_number(number)
        stmt = stmt.where(RatingRate.prefix.in_([digits[:i] for i in range(len(digits) + 1)]))
    rates: dict[str, list[Rate]] = {}
    for profile, prefix, name, ppm, fee, increment, minimum in db.execute(stmt):
        rates.setdefault(profile, []).append(Rate(
            prefix=prefix, price_per_minute=Decimal(ppm), connect_fee=Decimal(fee), increment=increment,
            min_duration=minimum, profile=profile, name=name,
        ))
    return RatingData(entities=entities, rates=rates)


def forget_entities(
    db: Session | Connection, *, subscriber: str = "", domain: str = "", customer: int = 0
) -> int:
    """Delete the entity profiles of a deleted subscriber (``user@domain``), of a deleted
    domain together with its subscribers', or of a deleted customer; returns how many.

    Called in the deleting transaction, so an account created later under the same name
    starts rated by its domain's profiles, not by the old subscriber's."""
    clauses = []
    if subscriber:
        clauses.append(RatingEntityProfile.entity == f"subscriber://{subscriber.lower()}")
    if domain:
        name = domain.lower()
        escaped = name.replace("/", "//").replace("%", "/%").replace("_", "/_")
        clauses.append(RatingEntityProfile.entity == f"domain://{name}")
        clauses.append(RatingEntityProfile.entity.like(f"subscriber://%@{escaped}", escape="/"))
    if customer:
        clauses.append(RatingEntityProfile.entity == f"customer://{int(customer)}")
    if not clauses:
        return 0
    removed = db.execute(
        delete(RatingEntityProfile).where(or_(*clauses)).execution_options(synchronize_session=False)
    ).rowcount or 0
    if removed:
        record_change(db, TOPIC_RATING, "")
    return removed
