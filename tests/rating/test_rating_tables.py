"""The rating tables on every backend: constraints, and load_rating reading what an account
needs (and only that) for the pure functions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError

from ngnpro import models as m
from ngnpro.models.database import open_database
from ngnpro.models.rating import (
    call_price,
    entity_keys,
    load_rating,
    max_duration,
    rate_for,
)

MONDAY = dt.datetime(2026, 12, 7, 12, 0)


@pytest.fixture
def db(db_url):
    engine, Session = open_database(db_url)
    yield Session
    engine.dispose()


def _rates(*rows):
    return [m.RatingRate(profile=p, prefix=x, price_per_minute=Decimal(ppm), connect_fee=Decimal(fee), increment=inc)
            for p, x, ppm, fee, inc in rows]


def test_profile_and_prefix_are_unique_and_checks_hold(db):
    with db() as s:
        s.add_all(_rates(("default", "31", "0.1", "0", 60)))
        s.commit()
        s.add_all(_rates(("default", "31", "0.2", "0", 60)))
        with pytest.raises(IntegrityError):
            s.flush()
        s.rollback()
        s.add_all(_rates(("default", "32", "0.2", "0", 0)))
        with pytest.raises(DBAPIError):  # MariaDB reports a failed CHECK as an OperationalError
            s.flush()
        s.rollback()
        s.add(m.RatingEntityProfile(entity="domain://example.com", profile_weekday="a"))
        s.commit()
        s.add(m.RatingEntityProfile(entity="domain://example.com", profile_weekday="b"))
        with pytest.raises(IntegrityError):
            s.flush()


def test_load_rating_reads_the_accounts_entities_and_the_prefixes_of_the_number(db):
    with db() as s:
        s.add_all(_rates(
            ("default", "", "1.0000", "0", 60), ("default", "31", "0.2000", "0", 60),
            ("cheap", "31", "0.0100", "0.0100", 1), ("cheap", "3120", "0.0050", "0", 1),
            ("cheap", "44", "0.0300", "0", 1), ("other", "31", "0.0001", "0", 1),
        ))
        s.add_all([
            m.RatingEntityProfile(entity="domain://example.com", profile_weekday="cheap", timezone="Europe/Amsterdam"),
            m.RatingEntityProfile(entity="domain://other.org", profile_weekday="other"),
        ])
        s.commit()
    keys = entity_keys("alice", "example.com", 7)
    with db() as s:
        data = load_rating(s, keys, "+31201234567")
    assert set(data.entities) == {"domain://example.com"}
    assert data.entities["domain://example.com"].timezone == "Europe/Amsterdam"
    assert {(r.profile, r.prefix) for rs in data.rates.values() for r in rs} == {
        ("default", ""), ("default", "31"), ("cheap", "31"), ("cheap", "3120")}
    chosen = rate_for(data, keys, "+31201234567", MONDAY)
    assert (chosen.profile, chosen.prefix, chosen.price_per_minute) == ("cheap", "3120", Decimal("0.0050"))
    assert call_price(chosen, 60) == Decimal("0.0050")
    assert max_duration(chosen, Decimal("0.0100")) == 120
    # without a number: every rate of the account's profiles, for a cache
    with db() as s:
        everything = load_rating(s.connection(), keys)
    assert len(everything.rates["cheap"]) == 3 and len(everything.rates["default"]) == 2
    assert "other" not in everything.rates
    # an account without entity profiles gets the default profile's rates
    with db() as s:
        plain = load_rating(s, entity_keys("bob", "nowhere.net"), "sip:+15551234@gw")
    assert plain.entities == {} and [r.prefix for r in plain.rates["default"]] == [""]
