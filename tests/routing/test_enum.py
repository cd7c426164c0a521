"""ENUM (RFC 6116 / 3761) domains and NAPTR processing (RFC 3402 / 3403), sans-I/O."""

from __future__ import annotations

import pytest

from sipproxy.routing.enum import apply_regexp, enum_domain, enum_domains, is_sip_service, sip_uris
from sipproxy.routing.resolver import Naptr

AUS = "+31201234567"


def naptr(order=10, pref=10, flags="u", service="E2U+sip", regexp="!^.*$!sip:alice@example.com!",
          replacement=""):
    return Naptr(order, pref, flags, service, regexp, replacement)


def test_enum_domain():
    assert enum_domain("+31201234") == "4.3.2.1.0.2.1.3.e164.arpa"
    assert enum_domain("31201234", "e164.arpa.") == "4.3.2.1.0.2.1.3.e164.arpa"
    assert enum_domain("+4412", "e164.org") == "2.1.4.4.e164.org"
    assert enum_domain("+1", "") == "1"
    assert enum_domains("+3120", ["e164.arpa", "nrenum.net"]) == ["0.2.1.3.e164.arpa", "0.2.1.3.nrenum.net"]
    for bad in ("", "+", "+31-20", "abc", "+" + "1" * 16, "++31"):
        with pytest.raises(ValueError):
            enum_domain(bad)


@pytest.mark.parametrize("service, sip", [
    ("E2U+sip", True), ("E2U+SIP", True), ("e2u+sip", True), ("sip+E2U", True), ("SIP+E2U", True),
    ("E2U+sip+h323", True), ("E2U+email:mailto", False), ("E2U+web:http", False), ("E2U", False),
    ("SIP+D2U", False), ("sips+E2U", False), ("", False), ("E2U+sips", False), ("h323+E2U", False),
])
def test_sip_services(service, sip):
    assert is_sip_service(service) is sip


@pytest.mark.parametrize("regexp, result", [
    ("!^.*$!sip:alice@example.com!", "sip:alice@example.com"),
    (r"!^\+31(.*)$!sip:\1@example.com!", "sip:201234567@example.com"),
    (r"!^\+(31)(20)(.*)$!sip:\3@\2.\1.example.com!", "sip:1234567@20.31.example.com"),
    (r"/^\+([[:digit:]]+)$/sip:\1@example.org/", "sip:31201234567@example.org"),
    (r"!^\+31(20)?(.*)$!sip:0\2@example.com!", "sip:01234567@example.com"),
    (r"!^\+31(99)?(.*)$!sip:x\1@example.com!", "sip:x@example.com"),  # a group that took no part
    ("!^\\+31!sip:prefix@example.com!", "sip:prefix@example.com"),  # unanchored ERE: the replacement only
    ("!^.*$!sip:ALICE@EXAMPLE.COM!i", "sip:ALICE@EXAMPLE.COM"),
    ("#^.*$#sip:a@b.c#", "sip:a@b.c"),
    (r"!^\+31\!?(.*)$!sip:\1@x.y!", "sip:201234567@x.y"),  # an escaped delimiter
    (r"!^.*$!sip:a\\b@x.y!", "sip:a\\b@x.y"),
])
def test_apply_regexp(regexp, result):
    assert apply_regexp(regexp, AUS) == result


@pytest.mark.parametrize("regexp", [
    "", "!", "!!", "!^.*$", "!^.*$!sip:a@b.c", "!^.*$!sip:a@b.c!x", "!^.*$!sip:a@b.c!ii",
    "1^.*$1sip:a@b.c1", "\\^.*$\\sip:a@b.c\\", "i^.*$isip:a@b.ci",  # bad delimiters
    "!^(.*$!sip:a@b.c!", "!*!sip:a@b.c!", "!^.*$!sip:\\1@b.c!", "!^(.)(.)$!sip:\\3@b.c!",
    "!^\\+44!sip:a@b.c!",  # does not match the number
])
def test_malformed_or_unmatched_regexps_give_none(regexp):
    assert apply_regexp(regexp, AUS) is None


def test_sip_uris_order_then_preference():
    records = [
        naptr(10, 20, regexp="!^.*$!sip:second@example.com!"),
        naptr(10, 10, regexp="!^.*$!sip:first@example.com!"),
        naptr(5, 50, service="E2U+email:mailto", regexp="!^.*$!mailto:a@example.com!"),
        naptr(20, 1, regexp="!^.*$!sip:later@example.com!"),
    ]
    assert sip_uris(records, AUS) == ["sip:first@example.com", "sip:second@example.com"]


def test_sip_uris_lowest_order_that_gives_a_result():
    records = [
        naptr(10, 10, regexp="!^\\+44(.*)$!sip:\\1@uk.example!"),  # does not match +31
        naptr(10, 20, regexp="broken"),
        naptr(20, 10, regexp="!^.*$!sip:fallback@example.com!"),
        naptr(30, 10, regexp="!^.*$!sip:never@example.com!"),
    ]
    assert sip_uris(records, AUS) == ["sip:fallback@example.com"]


def test_sip_uris_legacy_spellings_and_case():
    records = [
        naptr(10, 10, flags="U", service="sip+E2U", regexp="!^.*$!sip:old@example.com!"),
        naptr(10, 20, service="E2U+SIP", regexp="!^.*$!sips:new@example.com!"),
    ]
    assert sip_uris(records, AUS) == ["sip:old@example.com", "sips:new@example.com"]


def test_sip_uris_skip_the_unusable():
    records = [
        naptr(flags="", regexp="", replacement="other.e164.arpa"),  # non-terminal: not followed
        naptr(flags="s", regexp="!^.*$!sip:s@example.com!"),
        naptr(flags="u", replacement="other.example", regexp="!^.*$!sip:r@example.com!"),
        naptr(regexp="!^.*$!mailto:a@example.com!"),  # E2U+sip to a non-SIP URI
        naptr(regexp="!^.*$!sip:!"),                   # not a URI
        naptr(regexp="!^.*$!sip:a b@example.com!"),    # not a URI
        naptr(regexp="!^.*$!sip:user@!"),
        naptr(regexp=""),
        naptr(service="E2U+email:mailto"),
        "not a record", None, (1, 2),
    ]
    assert sip_uris(records, AUS) == []
    assert sip_uris(records + [naptr(99, 99)], AUS) == ["sip:alice@example.com"]


def test_sip_uris_duplicates_once():
    records = [naptr(10, 10), naptr(10, 20), naptr(10, 30, regexp="!^.*$!sip:bob@example.com!")]
    assert sip_uris(records, AUS) == ["sip:alice@example.com", "sip:bob@example.com"]


def test_sip_uris_empty():
    assert sip_uris([], AUS) == []
