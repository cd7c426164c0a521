"""Rating as pure functions: which profile applies, which rate, what a call costs, how long
a balance lasts.

Plain data in, plain data out, and nothing but the standard library: the proxy decides at
call start (does the balance cover the first increment?) and at answer (how long may the
call last?) from data it loaded once, and its policy code may import no SQL (the
``sipproxy-core-no-io`` contract).  The tables and the loader live in
:mod:`ngnpro.models.rating`.

Money is :class:`~decimal.Decimal` throughout and every price is rounded the way balances
are stored (``Numeric(14, 4)``, :data:`ngnpro.models.base.Money`): four decimals, half to
even, as ``ngnpro.sip_prepaid`` rounds a balance change.  A float would make the cut-off
second depend on binary rounding; a balance must never go below zero.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: The profile every account falls back to.
DEFAULT_PROFILE = "default"
#: Four decimals: the precision of a stored balance and of a stored price.
QUANTUM = Decimal("0.0001")
#: Entity schemes of NGNPro's RatingEntityProfiles, most specific first.
SCHEMES = ("subscriber", "domain", "customer")
_ZERO = Decimal(0)
_SIXTY = Decimal(60)


@dataclass(frozen=True)
class Rate:
    """The price of calls to one destination prefix in one profile.

    ``prefix`` holds digits of the E.164 number without ``+`` or ``00`` (``"31"``,
    ``"3120"``); the empty prefix matches every number (a profile's catch-all)."""

    prefix: str
    price_per_minute: Decimal
    connect_fee: Decimal = _ZERO
    #: billing increment in seconds: every started increment is paid in full
    increment: int = 60
    #: seconds billed at least, once the call is answered
    min_duration: int = 0
    profile: str = DEFAULT_PROFILE
    #: what the destination is called ("Netherlands mobile"), for people
    name: str = ""

    def __post_init__(self) -> None:
        if self.increment < 1:
            raise ValueError("increment must be at least 1 second")
        if self.min_duration < 0:
            raise ValueError("min_duration must not be negative")
        if self.price_per_minute < 0 or self.connect_fee < 0:
            raise ValueError("prices must not be negative")


@dataclass(frozen=True)
class EntityProfiles:
    """NGNPro's RatingEntityProfiles: the profiles one entity (a subscriber, a domain or a
    customer) is rated with.  Empty names are unset."""

    entity: str
    weekday: str = ""
    weekday_alt: str = ""
    weekend: str = ""
    weekend_alt: str = ""
    #: the zone whose calendar says whether a call starts on a weekday or at the weekend
    timezone: str = ""


@dataclass(frozen=True)
class RatingData:
    """What rating one account's calls needs: the entity profiles found for the account
    (keyed by entity string) and the rates of every profile they name, plus ``default``,
    by profile.  :func:`ngnpro.models.rating.load_rating` reads it; tests build it by hand."""

    entities: Mapping[str, EntityProfiles] = field(default_factory=dict)
    rates: Mapping[str, Sequence[Rate]] = field(default_factory=dict)


# --- entities and profiles ---------------------------------------------------------------


def entity_keys(username: str, domain: str, customer: int = 0, reseller: int = 0) -> list[str]:
    """The entities whose profiles may rate ``username@domain``, most specific first: the
    subscriber, its domain, its customer, then its reseller (a reseller's profiles are the
    fallback of all its customers)."""
    keys = [f"subscriber://{username}@{domain}".lower(), f"domain://{domain}".lower()]
    for owner in (customer, reseller):
        key = f"customer://{int(owner)}"
        if owner and key not in keys:
            keys.append(key)
    return keys


def parse_entity(entity: str) -> tuple[str, str]:
    """Split and check an entity string: ``(scheme, rest)``, lower-cased.

    Raises ValueError naming what is wrong: the API takes the entity as free text, and a
    typo would otherwise store profiles no call ever finds."""
    text = (entity or "").strip().lower()
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in SCHEMES or not rest:
        raise ValueError("entity must be subscriber://user@domain, domain://name or customer://id")
    if scheme == "subscriber":
        user, at, dom = rest.partition("@")
        if not at or not user or not dom or "@" in dom:
            raise ValueError("a subscriber entity is subscriber://user@domain")
    elif scheme == "domain":
        if "@" in rest or "/" in rest:
            raise ValueError("a domain entity is domain://name")
    elif not rest.isdigit() or int(rest) <= 0:
        raise ValueError("a customer entity is customer://id with a positive id")
    return scheme, rest


def is_weekend(when: _dt.datetime, timezone: str = "") -> bool:
    """Saturday or Sunday in ``timezone`` (UTC when empty or unknown).

    A naive ``when`` is UTC, as every timestamp in the database is."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)
    zone: _dt.tzinfo = _dt.UTC
    if timezone:
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = _dt.UTC
    return when.astimezone(zone).weekday() >= 5


def profiles_for(entity: EntityProfiles, when: _dt.datetime, timezone: str = "") -> list[str]:
    """The entity's profiles to try at ``when``: the primary, then its Alt.

    Weekend names left empty fall back to the weekday ones, so an entity needs only
    ``profileWeekday`` to be rated all week.  ``timezone`` is used when the entity has none."""
    if is_weekend(when, entity.timezone or timezone) and (entity.weekend or entity.weekend_alt):
        names = [entity.weekend, entity.weekend_alt]
    else:
        names = [entity.weekday, entity.weekday_alt]
    return [n for n in names if n]


def resolve_profiles(
    entities: Mapping[str, EntityProfiles], keys: Iterable[str], when: _dt.datetime, timezone: str = ""
) -> list[str]:
    """The profiles to look a destination up in, in order: those of the first of ``keys``
    (see :func:`entity_keys`) that has entity profiles, then ``default``.

    Only the most specific entity counts: a subscriber's own profiles replace its domain's,
    as NGNPro's do.  ``default`` comes last so a destination missing from the entity's
    profiles is still priced rather than free."""
    out: list[str] = []
    for key in keys:
        entity = entities.get(key)
        if entity is not None:
            names = profiles_for(entity, when, timezone)
            if names:
                out.extend(names)
                break
    if DEFAULT_PROFILE not in out:
        out.append(DEFAULT_PROFILE)
    return list(dict.fromkeys(out))


# --- destinations and rates ---------------------------------------------------------------


def normalize_number(number: str, international_prefix: str = "00") -> str:
    """The digits rates are keyed by: ``sip:+31201234567@host`` -> ``31201234567``.

    Takes a URI or a bare number; drops the scheme, the host, parameters, visual separators
    and a leading ``+`` or international prefix.  Returns "" for a name that is no number
    (``sip:bob@example.com``), which only the catch-all prefix matches."""
    text = (number or "").strip()
    for scheme in ("sips:", "sip:", "tel:"):
        if text.lower().startswith(scheme):
            text = text[len(scheme):]
            break
    text = text.split("@", 1)[0].split(";", 1)[0]
    text = "".join(ch for ch in text if ch not in " -.()/")
    if text.startswith("+"):
        text = text[1:]
    elif international_prefix and text.startswith(international_prefix):
        text = text[len(international_prefix):]
    return text if text.isdigit() else ""


def normalize_prefix(prefix: str, international_prefix: str = "00") -> str:
    """A rate prefix as stored: digits, without ``+`` or ``00``; "" is the catch-all.

    Raises ValueError when it is not a number prefix."""
    text = (prefix or "").strip()
    if not text:
        return ""
    digits = normalize_number(text, international_prefix)
    if not digits and text not in ("+", international_prefix):
        raise ValueError(f"prefix {prefix!r} is not a number prefix (digits, optionally after + or 00)")
    return digits


def longest_prefix(rates: Iterable[Rate], digits: str) -> Rate | None:
    """The rate with the longest prefix of ``digits`` (the catch-all "" when nothing longer)."""
    best: Rate | None = None
    for rate in rates:
        if digits.startswith(rate.prefix) and (best is None or len(rate.prefix) > len(best.prefix)):
            best = rate
    return best


def find_rate(rates: Mapping[str, Sequence[Rate]], profiles: Sequence[str], number: str) -> Rate | None:
    """The rate for ``number`` (see :func:`normalize_number`): the longest prefix in the
    first of ``profiles`` that has one; None when no profile prices it."""
    digits = normalize_number(number)
    for name in profiles:
        rate = longest_prefix(rates.get(name, ()), digits)
        if rate is not None:
            return rate
    return None


def rate_for(
    data: RatingData, keys: Sequence[str], number: str, when: _dt.datetime, timezone: str = ""
) -> Rate | None:
    """The rate of a call from the account with entity ``keys`` to ``number`` starting at
    ``when``: :func:`resolve_profiles` then :func:`find_rate`."""
    return find_rate(data.rates, resolve_profiles(data.entities, keys, when, timezone), number)


# --- prices and durations -----------------------------------------------------------------


def billed_seconds(rate: Rate, seconds: int) -> int:
    """Seconds paid for a call of ``seconds``: at least ``min_duration``, rounded up to a
    whole number of increments.  An unanswered call (0 s) is paid nothing."""
    if seconds <= 0:
        return 0
    span = max(seconds, rate.min_duration)
    return -(-span // rate.increment) * rate.increment


def _round(amount: Decimal) -> Decimal:
    return amount.quantize(QUANTUM, rounding=ROUND_HALF_EVEN)


def _price_of_billed(rate: Rate, billed: int) -> Decimal:
    return _round(Decimal(rate.connect_fee) + Decimal(rate.price_per_minute) * billed / _SIXTY)


def call_price(rate: Rate, seconds: int) -> Decimal:
    """The price of a call of ``seconds``: the connect fee plus the per-minute price of
    every started increment (after the minimum duration), rounded to four decimals.

    0 for an unanswered call: the connect fee is due on answer."""
    billed = billed_seconds(rate, seconds)
    if billed == 0:
        return _ZERO.quantize(QUANTUM)
    return _price_of_billed(rate, billed)


def charge(rate: Rate, seconds: int, balance: Decimal) -> Decimal:
    """What to debit from a prepaid ``balance`` for a call of ``seconds``: its price, but
    never more than the balance holds (never less than zero), so a balance can reach zero
    and never go below it -- even when a call outlived its limit by a late BYE."""
    available = max(Decimal(balance).quantize(QUANTUM, rounding=ROUND_FLOOR), _ZERO)
    return min(call_price(rate, seconds), available)


def first_increment_price(rate: Rate) -> Decimal:
    """What the first moment of an answered call costs: the least a balance must hold."""
    return call_price(rate, 1)


def covers_first_increment(rate: Rate, balance: Decimal) -> bool:
    """Whether ``balance`` pays for the call's first increment (with the connect fee and
    the minimum duration): the proxy refuses the call at start otherwise."""
    return Decimal(balance) >= first_increment_price(rate)


def max_duration(rate: Rate, balance: Decimal) -> int | None:
    """The longest call ``balance`` pays for: the largest duration whose price does not
    exceed it, in seconds; 0 when it does not cover the first increment; None when calls
    at this rate cost nothing per minute (no limit).

    The answer is always a whole number of increments: the call may last to the end of
    its last paid increment, and one second more starts an increment it cannot pay.  It is
    worked out from the linear price and then checked against :func:`call_price` itself,
    so rounding can never let it exceed the balance."""
    budget = Decimal(balance).quantize(QUANTUM, rounding=ROUND_FLOOR)
    if budget < first_increment_price(rate):
        return 0
    ppm = Decimal(rate.price_per_minute)
    if ppm == 0:
        return None
    inc = rate.increment
    least = billed_seconds(rate, 1) // inc  # increments billed for the shortest answered call
    # highest n with connect_fee + ppm * n * inc / 60 below budget + half a quantum
    room = (budget + QUANTUM / 2 - Decimal(rate.connect_fee)) * _SIXTY / (ppm * inc)
    n = max(least, int(room.to_integral_value(rounding=ROUND_FLOOR)))
    while n > least and _price_of_billed(rate, n * inc) > budget:
        n -= 1
    while _price_of_billed(rate, (n + 1) * inc) <= budget:
        n += 1
    return n * inc
