"""E.164 normalisation by the routing guide's settings (sipproxy.routing.numbers)."""

from __future__ import annotations

import pytest

from ngnpro.models.config import ConfigError, validate
from sipproxy.routing.numbers import NumberPlan, is_e164, uri_number
from sipproxy.sip.uri import parse_uri

PLAN = NumberPlan()  # the defaults: country code 31, international prefix 00


@pytest.mark.parametrize("text, e164, form", [
    ("0201234567", "+31201234567", "national"),
    ("0031201234567", "+31201234567", "international"),
    ("+31201234567", "+31201234567", "e164"),
    ("31201234567", "+31201234567", "country"),
    ("004930123456", "+4930123456", "international"),
    ("+14155550123", "+14155550123", "e164"),
    ("0612345678", "+31612345678", "national"),
    ("+31-20-123-4567", "+31201234567", "e164"),
    ("(020) 123.4567".replace(" ", ""), "+31201234567", "national"),
    ("%2B31201234567", "+31201234567", "e164"),
    ("0201234567;isub=12", "+31201234567", "national"),
    ("+31201234567;npdi", "+31201234567", "e164"),
])
def test_numbers_normalise(text, e164, form):
    number = PLAN.classify(text)
    assert number is not None and number.e164 == e164 and number.form == form
    assert PLAN.normalise(text) == e164


@pytest.mark.parametrize("text", [
    None, "", "alice", "bob.smith", "1234", "112", "911",  # names, extensions, short codes
    "+", "+123456", "+0201234567", "+3120123456789012",     # too short, leading 0, 16 digits
    "00", "0031", "000201234567", "0020123",                 # prefixes only, 0 after 00
    "01234", "0", "00 31 20", "+31 20", "31-", "٠٢٠١٢٣٤٥٦٧",  # too short, spaces, Arabic-Indic digits
    "0201234567x", "+31201234567a", "+31+201234567", "0x1F", "9" * 40,
])
def test_non_numbers_are_none(text):
    assert PLAN.classify(text) is None
    assert PLAN.normalise(text) is None


@pytest.mark.parametrize("uri, e164", [
    ("sip:0201234567@example.com", "+31201234567"),
    ("sip:0031201234567@example.com", "+31201234567"),
    ("sip:+31201234567@example.com", "+31201234567"),
    ("sip:+31201234567@example.com;user=phone", "+31201234567"),
    ("sips:0201234567@example.com:5061", "+31201234567"),
    ("tel:+31201234567", "+31201234567"),
    ("tel:+31-20-123-4567", "+31201234567"),
    ("tel:0201234567;phone-context=+31", "+31201234567"),
    ("sip:alice@example.com", None),
    ("sip:example.com", None),
    ("mailto:0201234567@example.com", None),
    ("tel:1234;phone-context=example.com", None),
])
def test_request_uris(uri, e164):
    assert PLAN.normalise_uri(parse_uri(uri)) == e164


def test_uri_number():
    assert uri_number(parse_uri("tel:+3120")) == "+3120"
    assert uri_number(parse_uri("sip:0201@x")) == "0201"
    assert uri_number(parse_uri("sip:x")) is None
    assert uri_number(parse_uri("http://x")) is None


def test_other_country_and_prefix():
    """A US-style plan: country code 1, international prefix 011, national trunk prefix 1."""
    plan = NumberPlan("1", "011", r"011[2-9][0-9]{6,}", r"1[2-9][0-9]{9}")
    assert plan.normalise("01131201234567") == "+31201234567"
    assert plan.normalise("14155550123") == "+14155550123"
    assert plan.classify("14155550123").form == "national"
    assert plan.normalise("0031201234567") is None  # not this plan's international prefix
    assert plan.normalise("+14155550123") == "+14155550123"


def test_pstn_regexp_not_starting_with_the_prefix_is_no_match():
    plan = NumberPlan(pstn_regexp=r"9[0-9]{8,}")  # matches, but 00 is not in front
    assert plan.normalise("9201234567") is None


def test_regexps_match_the_whole_number():
    plan = NumberPlan(local_pstn_regexp="0[1-9]")  # would match a prefix only
    assert plan.normalise("0201234567") is None
    assert plan.normalise("02") is None  # matches, but +312 is no E.164 number


def test_bad_plans_are_refused():
    with pytest.raises(ValueError, match="country_code"):
        NumberPlan(country_code="031")
    with pytest.raises(ValueError, match="international_prefix"):
        NumberPlan(international_prefix="+")


def test_is_e164():
    assert is_e164("+31201234567") and is_e164("+1234567") and is_e164("+123456789012345")
    assert not is_e164("31201234567") and not is_e164("+123456") and not is_e164("+1234567890123456")
    assert not is_e164("+0123456789")


def test_from_config_defaults_and_errors():
    config = validate({})
    plan = NumberPlan.from_config(config["sipproxy"])
    assert (plan.country_code, plan.international_prefix) == ("31", "00")
    assert (plan.pstn_regexp, plan.local_pstn_regexp) == ("00[1-9][0-9]{6,}", "0[1-9][0-9]{4,}")
    plan = NumberPlan.from_config(validate({"sipproxy": {"country_code": "49"}})["sipproxy"])
    assert plan.normalise("0301234567") == "+49301234567"
    for section, message in [
        ({"country_code": "+31"}, "sipproxy.country_code: expected 1 to 3 digits"),
        ({"country_code": 31}, "sipproxy.country_code: expected a string"),
        ({"international_prefix": "00x"}, "sipproxy.international_prefix: expected 1 to 4 digits"),
        ({"pstn_regexp": "00[1-9"}, "sipproxy.pstn_regexp: '00[1-9' is not a regular expression"),
        ({"local_pstn_regexp": ""}, "sipproxy.local_pstn_regexp: expected a regular expression"),
        ({"dns_timeout": 0}, "sipproxy.dns_timeout: 0 out of range"),
        ({"dns_timeout": "1"}, "sipproxy.dns_timeout: expected a number of seconds"),
        ({"dns_cache_size": 5}, "sipproxy.dns_cache_size: 5 out of range"),
    ]:
        with pytest.raises(ConfigError) as err:
            validate({"sipproxy": section})
        assert message in str(err.value)
