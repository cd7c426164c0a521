"""The pure rating functions (ngnpro.models.tariff): profiles, rates, prices, durations.

No database: the proxy calls these with data it loaded, so they are tested with data built
by hand, and their promises (price monotonic in duration; the longest duration a balance
allows is paid by it and one second more is not) with hypothesis."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ngnpro.models.tariff import (
    DEFAULT_PROFILE,
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
    max_duration,
    normalize_number,
    normalize_prefix,
    parse_entity,
    rate_for,
    resolve_profiles,
)

D = Decimal
# Monday 2026-12-07 12:00 UTC and Saturday 2026-12-12 12:00 UTC
MONDAY = dt.datetime(2026, 12, 7, 12, 0)
SATURDAY = dt.datetime(2026, 12, 12, 12, 0)


def rate(ppm="0.1200", fee="0", inc=60, minimum=0, prefix="31", profile=DEFAULT_PROFILE):
    return Rate(prefix=prefix, price_per_minute=D(ppm), connect_fee=D(fee), increment=inc,
                min_duration=minimum, profile=profile)


# --- entities and profiles ------------------------------------------------------------------


def test_entity_keys_go_from_subscriber_to_domain_to_customer_to_reseller():
    assert entity_keys("Alice", "Example.com", 7, 3) == [
        "subscriber://alice@example.com", "domain://example.com", "customer://7", "customer://3"]
    assert entity_keys("alice", "example.com") == ["subscriber://alice@example.com", "domain://example.com"]
    assert entity_keys("alice", "example.com", 7, 7)[-1] == "customer://7"


@pytest.mark.parametrize("entity, parsed", [
    ("subscriber://Alice@Example.com", ("subscriber", "alice@example.com")),
    ("domain://example.com", ("domain", "example.com")),
    (" customer://17 ", ("customer", "17")),
])
def test_parse_entity_accepts_the_three_schemes(entity, parsed):
    assert parse_entity(entity) == parsed


@pytest.mark.parametrize("entity", [
    "", "alice@example.com", "subscriber://alice", "subscriber://@example.com", "domain://a@b",
    "customer://x", "customer://0", "reseller://3", "customer://",
])
def test_parse_entity_rejects_anything_else(entity):
    with pytest.raises(ValueError):
        parse_entity(entity)


def test_weekend_is_judged_in_the_entitys_timezone():
    # Friday 23:30 UTC is already Saturday in Amsterdam; Monday 00:30 in Tokyo is Sunday in UTC
    friday_night = dt.datetime(2026, 12, 11, 23, 30)
    assert not is_weekend(friday_night)
    assert is_weekend(friday_night, "Europe/Amsterdam")
    sunday_utc = dt.datetime(2026, 12, 13, 16, 30)
    assert is_weekend(sunday_utc)
    assert not is_weekend(sunday_utc, "Asia/Tokyo")
    assert is_weekend(SATURDAY, "No/Such_Zone")  # an unknown zone is UTC


def test_resolve_profiles_takes_the_most_specific_entity_then_default():
    entities = {
        "domain://example.com": EntityProfiles("domain://example.com", weekday="dom", weekday_alt="dom-alt"),
        "customer://7": EntityProfiles("customer://7", weekday="cust"),
    }
    keys = entity_keys("alice", "example.com", 7)
    assert resolve_profiles(entities, keys, MONDAY) == ["dom", "dom-alt", DEFAULT_PROFILE]
    entities["subscriber://alice@example.com"] = EntityProfiles("subscriber://alice@example.com", weekday="own")
    assert resolve_profiles(entities, keys, MONDAY) == ["own", DEFAULT_PROFILE]
    assert resolve_profiles(entities, entity_keys("bob", "other.org", 7), MONDAY) == ["cust", DEFAULT_PROFILE]
    assert resolve_profiles({}, keys, MONDAY) == [DEFAULT_PROFILE]


def test_weekend_profiles_apply_at_the_weekend_and_fall_back_to_weekday_ones():
    both = EntityProfiles("customer://7", weekday="wd", weekday_alt="wd-alt", weekend="we", weekend_alt="we-alt",
                          timezone="Europe/Amsterdam")
    only_weekday = EntityProfiles("customer://8", weekday="wd")
    assert resolve_profiles({"customer://7": both}, ["customer://7"], SATURDAY) == ["we", "we-alt", "default"]
    assert resolve_profiles({"customer://7": both}, ["customer://7"], MONDAY) == ["wd", "wd-alt", "default"]
    assert resolve_profiles({"customer://8": only_weekday}, ["customer://8"], SATURDAY) == ["wd", "default"]


def test_an_entity_with_only_empty_names_does_not_hide_the_next_one():
    entities = {"subscriber://a@x": EntityProfiles("subscriber://a@x"), "domain://x": EntityProfiles("domain://x", weekday="d")}
    assert resolve_profiles(entities, ["subscriber://a@x", "domain://x"], MONDAY) == ["d", "default"]


# --- numbers and rates ----------------------------------------------------------------------


@pytest.mark.parametrize("number, digits", [
    ("+31201234567", "31201234567"), ("0031201234567", "31201234567"), ("31201234567", "31201234567"),
    ("sip:+31 20-123.4567@gw.example.com;user=phone", "31201234567"), ("tel:+31(20)1234567", "31201234567"),
    ("sip:bob@example.com", ""), ("", ""),
])
def test_normalize_number(number, digits):
    assert normalize_number(number) == digits


def test_normalize_prefix_stores_digits_and_rejects_words():
    assert normalize_prefix("+31") == "31" and normalize_prefix("0031") == "31" and normalize_prefix("") == ""
    assert normalize_prefix("+") == ""
    with pytest.raises(ValueError, match="abc"):
        normalize_prefix("abc")


def test_longest_prefix_wins_and_the_empty_prefix_catches_the_rest():
    rates = {DEFAULT_PROFILE: [rate(prefix="", ppm="1"), rate(prefix="31", ppm="0.10"), rate(prefix="316", ppm="0.30")]}
    assert find_rate(rates, [DEFAULT_PROFILE], "+31612345678").price_per_minute == D("0.30")
    assert find_rate(rates, [DEFAULT_PROFILE], "+31201234567").price_per_minute == D("0.10")
    assert find_rate(rates, [DEFAULT_PROFILE], "+441234567").price_per_minute == D("1")
    assert find_rate({}, [DEFAULT_PROFILE], "+31") is None


def test_alt_profile_is_used_when_the_primary_has_no_matching_prefix():
    data = RatingData(
        entities={"customer://7": EntityProfiles("customer://7", weekday="cheap", weekday_alt="full")},
        rates={
            "cheap": [rate(prefix="31", ppm="0.01", profile="cheap")],
            "full": [rate(prefix="44", ppm="0.05", profile="full"), rate(prefix="4420", ppm="0.04", profile="full")],
            DEFAULT_PROFILE: [rate(prefix="", ppm="0.90")],
        },
    )
    keys = entity_keys("alice", "example.com", 7)
    assert rate_for(data, keys, "+31201234567", MONDAY).profile == "cheap"
    assert rate_for(data, keys, "+442079460000", MONDAY).prefix == "4420"
    assert rate_for(data, keys, "+15551234567", MONDAY).profile == DEFAULT_PROFILE
    # the primary's shorter prefix beats the Alt's longer one: profiles are tried in order
    data.rates["cheap"].append(rate(prefix="4", ppm="0.02", profile="cheap"))
    assert rate_for(data, keys, "+442079460000", MONDAY).profile == "cheap"


# --- prices -----------------------------------------------------------------------------------


def test_price_is_connect_fee_plus_every_started_increment():
    r = rate(ppm="0.1200", fee="0.0500", inc=60)
    assert call_price(r, 0) == D("0")  # unanswered: nothing, not even the connect fee
    assert call_price(r, 1) == D("0.1700")
    assert call_price(r, 60) == D("0.1700")
    assert call_price(r, 61) == D("0.2900")
    r = rate(ppm="0.1200", inc=1)
    assert call_price(r, 1) == D("0.0020") and call_price(r, 90) == D("0.1800")


def test_minimum_duration_is_billed_then_increments_after_it():
    r = rate(ppm="0.6000", inc=6, minimum=30)
    assert billed_seconds(r, 1) == 30 and billed_seconds(r, 30) == 30 and billed_seconds(r, 31) == 36
    assert call_price(r, 5) == D("0.3000")
    assert call_price(r, 31) == D("0.3600")
    r = rate(ppm="0.6000", inc=60, minimum=90)  # a minimum not a multiple of the increment
    assert billed_seconds(r, 1) == 120


def test_prices_are_rounded_half_even_to_four_decimals_like_the_balance():
    # 0.0001 per minute, per second: 1 s costs 0.00000166.. -> 0.0000; 30 s = 0.00005 -> 0.0000 (even)
    r = rate(ppm="0.0001", inc=1)
    assert call_price(r, 1) == D("0.0000")
    assert call_price(r, 30) == D("0.0000")
    assert call_price(r, 90) == D("0.0002")  # 0.00015 -> 0.0002 (even)
    assert call_price(r, 31).as_tuple().exponent == -4


def test_first_increment_and_balance_coverage():
    r = rate(ppm="0.1200", fee="0.0500", inc=60)
    assert first_increment_price(r) == D("0.1700")
    assert covers_first_increment(r, D("0.1700"))
    assert not covers_first_increment(r, D("0.1699"))
    assert covers_first_increment(rate(ppm="0"), D("0"))


def test_max_duration_examples():
    r = rate(ppm="0.1200", fee="0.0500", inc=60)
    assert max_duration(r, D("0.1699")) == 0
    assert max_duration(r, D("0.1700")) == 60
    assert max_duration(r, D("0.2899")) == 60
    assert max_duration(r, D("0.2900")) == 120
    assert max_duration(rate(ppm="0.6000", inc=1), D("0.0500")) == 5
    assert max_duration(rate(ppm="0.6000", inc=1, minimum=30), D("0.2999")) == 0
    assert max_duration(rate(ppm="0"), D("1")) is None  # free: no limit
    assert max_duration(rate(ppm="0", fee="1"), D("0.5")) == 0
    assert max_duration(r, D("-5")) == 0


def test_charge_never_takes_the_balance_below_zero():
    r = rate(ppm="0.6000", fee="0.0100", inc=1)
    assert charge(r, 10, D("5")) == D("0.1100")
    assert charge(r, 10, D("0.0500")) == D("0.0500")  # a call that outlived its limit
    assert charge(r, 10, D("-1")) == D("0") and charge(r, 0, D("5")) == D("0")


def test_rate_rejects_nonsense():
    with pytest.raises(ValueError):
        rate(inc=0)
    with pytest.raises(ValueError):
        rate(minimum=-1)
    with pytest.raises(ValueError):
        rate(ppm="-0.1")


# --- properties ------------------------------------------------------------------------------

money = st.decimals(min_value=0, max_value=50, places=4, allow_nan=False, allow_infinity=False)
rates = st.builds(
    rate,
    ppm=money.map(str), fee=st.decimals(min_value=0, max_value=2, places=4).map(str),
    inc=st.sampled_from([1, 6, 10, 30, 60, 7, 90]), minimum=st.integers(0, 200),
)


@settings(max_examples=300, deadline=None)
@given(rates, st.integers(0, 100_000), st.integers(0, 100_000))
def test_price_is_monotonic_in_duration(r, a, b):
    short, long_ = sorted((a, b))
    assert call_price(r, short) <= call_price(r, long_)


@settings(max_examples=300, deadline=None)
@given(rates, st.decimals(min_value=-1, max_value=1000, places=6, allow_nan=False, allow_infinity=False))
def test_max_duration_is_paid_by_the_balance_and_one_second_more_is_not(r, balance):
    longest = max_duration(r, balance)
    if balance < 0:  # a balance below zero pays for nothing, even a free call
        assert longest == 0
        return
    if longest is None:
        assert r.price_per_minute == 0 and r.connect_fee <= balance
        return
    assert call_price(r, longest) <= balance
    assert balance < call_price(r, longest + 1)
    assert longest % r.increment == 0
    assert (longest > 0) == covers_first_increment(r, balance)
    assert charge(r, longest, balance) == call_price(r, longest)  # the longest call is paid in full
