"""Emergency numbers (sipproxy.routing.emergency): region mapping, default region, refusals."""

from __future__ import annotations

from ngnpro.models.config import DEFAULTS, ConfigError, validate
from sipproxy.directory.account import Account
from sipproxy.routing.emergency import (
    NUMBER,
    URI,
    EmergencyRefused,
    EmergencyRoute,
    decide,
    is_emergency,
)

NUMBERS = ["112", "911"]
MAPPINGS = {
    ("ams", "112"): "sip:112@psap-ams.example",
    ("ams", "911"): "+31201234567",
    ("rtm", "112"): "112@psap-rtm.example",
    ("", "112"): "tel:+31800112",
    ("nyc", "911"): "0031101234567",
}


def lookup(region: str, number: str) -> str | None:
    return MAPPINGS.get((region, number))


def acct(region: str = "ams") -> Account:
    return Account(1, "alice", "example.com", "", "", "", region=region)


def test_not_an_emergency_number():
    assert decide("113", acct(), NUMBERS, lookup) is None
    assert decide("", acct(), NUMBERS, lookup) is None
    assert decide("alice", None, NUMBERS, lookup) is None
    assert decide("112", acct(), [], lookup) is None
    assert not is_emergency("1120", NUMBERS) and is_emergency(" 112 ", NUMBERS)


def test_region_mapping_to_uri():
    assert decide("112", acct(), NUMBERS, lookup) == EmergencyRoute(
        "112", "ams", "sip:112@psap-ams.example", URI, "sip:112@psap-ams.example")


def test_region_mapping_to_number():
    d = decide("911", acct(), NUMBERS, lookup)
    assert (d.kind, d.target, d.region) == (NUMBER, "+31201234567", "ams")
    assert decide("911", acct("nyc"), NUMBERS, lookup).kind == NUMBER


def test_bare_address_gets_sip_scheme():
    d = decide("112", acct("rtm"), NUMBERS, lookup)
    assert (d.kind, d.target, d.destination) == (URI, "sip:112@psap-rtm.example", "112@psap-rtm.example")


def test_default_region_when_the_region_has_none():
    d = decide("112", acct("utrecht"), NUMBERS, lookup)
    assert (d.region, d.kind, d.target) == ("", URI, "tel:+31800112")
    d = decide("112", acct(""), NUMBERS, lookup)
    assert d.region == "" and d.target == "tel:+31800112"


def test_no_mapping_is_refused_with_404():
    d = decide("911", acct("utrecht"), NUMBERS, lookup)
    assert d == EmergencyRefused("911", 404, "No Emergency Route For Region")
    assert decide("911", acct(""), NUMBERS, lookup).status == 404
    assert decide("112", acct(), NUMBERS, lambda r, n: "  ").status == 404  # blank destination


def test_only_local_subscribers():
    d = decide("112", None, NUMBERS, lookup)
    assert isinstance(d, EmergencyRefused) and d.status == 403


def test_no_pstn_access_needed():
    blocked_from_pstn = Account(1, "bob", "example.com", "", "", "", region="ams")
    assert not blocked_from_pstn.pstn_access
    assert isinstance(decide("911", blocked_from_pstn, NUMBERS, lookup), EmergencyRoute)


def test_setting_defaults_and_validation():
    assert DEFAULTS["sipproxy"]["emergency_numbers"] == ["112", "911"]
    assert validate({"sipproxy": {"emergency_numbers": ["112", "*100#"]}})["sipproxy"]["emergency_numbers"] == [
        "112", "*100#"]
    for bad in (["11a"], [""], "112", [112]):
        try:
            validate({"sipproxy": {"emergency_numbers": bad}})
        except ConfigError as exc:
            assert "sipproxy.emergency_numbers" in str(exc)
        else:
            raise AssertionError(bad)
