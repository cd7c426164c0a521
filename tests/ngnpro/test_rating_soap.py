"""RatingPort end to end: set/get/delete entity profiles through PHP's SoapClient (non-WSDL
and WSDL mode), zeep and a raw PEAR-shaped envelope; faults name the field and change
nothing; resellers reach only their own entities; the proxy's loader sees the result."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from ngnpro.models.customer import Customer
from ngnpro.models.rating import RatingEntityProfile, RatingRate, entity_keys, load_rating, rate_for
from tests.ngnpro.harness import (
    ADMIN,
    SoapFaultError,
    envelope,
    fault_code,
    php_call,
    php_wsdl_call,
    raw_call,
    zeep_auth,
    zeep_client,
    zeep_fault,
    zeep_port,
)

ALICE = {"username": "alice", "domain": "example.com"}
RESELLER1 = {"username": "reseller1", "password": "pw-1", "admin": False}
RESELLER2 = {"username": "reseller2", "password": "pw-2", "admin": False}
MONDAY = dt.datetime(2026, 12, 7, 12, 0)


def rating(url, method, args=None, auth=ADMIN):
    return php_call(url, "Rating", method, args, auth=auth)


def fault(url, method, args=None, auth=ADMIN) -> SoapFaultError:
    with pytest.raises(SoapFaultError) as info:
        rating(url, method, args, auth)
    return info.value


def profiles(entity, weekday="cheap", **more):
    return {"profiles": {"entity": entity, "profileWeekday": weekday, **more}}


@pytest.fixture
def server(ngnpro_server):
    """example.com of reseller 101 with alice; other.org of reseller 102; three profiles."""
    with ngnpro_server.sessionmaker()() as s:
        s.add_all([Customer(id=101, username="reseller1", password="pw-1", reseller_active=True),
                   Customer(id=102, username="reseller2", password="pw-2", reseller_active=True),
                   Customer(id=103, username="cust3", password="pw-3", reseller=101)])
        s.add_all([RatingRate(profile=p, prefix=x, price_per_minute=Decimal(v), increment=1)
                   for p, x, v in (("default", "", "1"), ("cheap", "31", "0.01"), ("full", "44", "0.05"))])
        s.commit()
    url = ngnpro_server.url
    php_call(url, "Sip", "addDomain", {"domain": {"domain": "example.com", "customer": 101, "reseller": 101}})
    php_call(url, "Sip", "addDomain", {"domain": {"domain": "other.org", "customer": 102, "reseller": 102}})
    php_call(url, "Sip", "addAccount", {"account": {"id": ALICE, "password": "pw"}})
    return ngnpro_server


def _rows(server):
    with server.sessionmaker()() as s:
        return {r.entity: (r.profile_weekday, r.profile_weekday_alt, r.profile_weekend, r.profile_weekend_alt,
                           r.timezone, r.customer, r.reseller)
                for r in s.scalars(select(RatingEntityProfile))}


def test_set_get_replace_and_delete(server):
    url = server.url
    assert rating(url, "setEntityProfiles", profiles("subscriber://Alice@Example.com", "cheap", profileWeekdayAlt="full",
                                                     profileWeekend="full", timezone="Europe/Amsterdam")) in (None, "")
    got = rating(url, "getEntityProfiles", {"entity": "subscriber://alice@example.com"})
    assert got == {"entity": "subscriber://alice@example.com", "profileWeekday": "cheap",
                   "profileWeekdayAlt": "full", "profileWeekend": "full", "profileWeekendAlt": "",
                   "timezone": "Europe/Amsterdam"}
    assert _rows(server)["subscriber://alice@example.com"][5:] == (101, 101)
    # set again replaces every member (an omitted one is cleared)
    rating(url, "setEntityProfiles", profiles("subscriber://alice@example.com", "full"))
    got = rating(url, "getEntityProfiles", {"entity": "subscriber://alice@example.com"})
    assert (got["profileWeekday"], got["profileWeekdayAlt"], got["timezone"]) == ("full", "", "")
    rating(url, "setEntityProfiles", profiles("domain://example.com", "cheap"))
    rating(url, "setEntityProfiles", profiles("customer://103", "cheap"))
    assert _rows(server)["customer://103"][5:] == (103, 101)
    assert len(_rows(server)) == 3
    rating(url, "deleteEntityProfiles", {"entity": "subscriber://alice@example.com"})
    assert fault(url, "getEntityProfiles", {"entity": "subscriber://alice@example.com"}).code == 4001
    assert fault(url, "deleteEntityProfiles", {"entity": "subscriber://alice@example.com"}).code == 4001
    assert set(_rows(server)) == {"domain://example.com", "customer://103"}


def test_the_proxy_loader_sees_what_was_set(server):
    rating(server.url, "setEntityProfiles", profiles("domain://example.com", "cheap", profileWeekdayAlt="full"))
    keys = entity_keys("alice", "example.com", 101, 101)
    with server.sessionmaker()() as s:
        data = load_rating(s, keys)
    assert rate_for(data, keys, "+31201234567", MONDAY).profile == "cheap"
    assert rate_for(data, keys, "+442079460000", MONDAY).profile == "full"
    assert rate_for(data, keys, "+15551234567", MONDAY).profile == "default"


@pytest.mark.parametrize("args, code, words", [
    (profiles("alice@example.com"), 1040, "profiles.entity"),
    (profiles("reseller://101"), 1040, "profiles.entity"),
    (profiles("customer://abc"), 1040, "profiles.entity"),
    (profiles("domain://example.com", "nosuch"), 1040, "profiles.profileWeekday: rating profile 'nosuch'"),
    (profiles("domain://example.com", "cheap", profileWeekendAlt="bad name"), 1040, "profiles.profileWeekendAlt"),
    (profiles("domain://example.com", ""), 1040, "profiles.profileWeekday: missing"),
    (profiles("domain://example.com", "cheap", timezone="Mars/Olympus"), 1040, "profiles.timezone"),
    (profiles("subscriber://bob@example.com"), 1010, "bob@example.com"),
    (profiles("domain://nowhere.net"), 1002, "nowhere.net"),
    (profiles("customer://999"), 5002, "999"),
])
def test_bad_input_is_a_fault_naming_the_field_and_changes_nothing(server, args, code, words):
    url = server.url
    rating(url, "setEntityProfiles", profiles("domain://example.com", "full"))
    before = _rows(server)
    exc = fault(url, "setEntityProfiles", args)
    assert exc.code == code and words in exc.message, exc
    assert _rows(server) == before


def test_empty_entity_is_a_clean_fault(server):
    # API.md 7: getEntityProfiles is once called with an empty untyped <entity/>
    status, root = raw_call(server.url, envelope("Rating", "getEntityProfiles", "<entity/>"))
    assert status == 500 and fault_code(root) == 1040
    assert fault(server.url, "deleteEntityProfiles", {"entity": ""}).code == 1040


def test_resellers_reach_their_own_entities_only(server):
    url = server.url
    rating(url, "setEntityProfiles", profiles("subscriber://alice@example.com", "cheap"), auth=RESELLER1)
    rating(url, "setEntityProfiles", profiles("customer://103", "full"), auth=RESELLER1)
    assert rating(url, "getEntityProfiles", {"entity": "customer://103"}, auth=RESELLER1)["profileWeekday"] == "full"
    rating(url, "setEntityProfiles", profiles("domain://other.org", "full"), auth=RESELLER2)
    before = _rows(server)
    assert fault(url, "setEntityProfiles", profiles("domain://example.com"), auth=RESELLER2).code == 9002
    assert fault(url, "setEntityProfiles", profiles("subscriber://alice@example.com"), auth=RESELLER2).code == 9002
    assert fault(url, "setEntityProfiles", profiles("customer://103"), auth=RESELLER2).code == 5002
    assert fault(url, "getEntityProfiles", {"entity": "customer://103"}, auth=RESELLER2).code == 9002
    assert fault(url, "deleteEntityProfiles", {"entity": "subscriber://alice@example.com"}, auth=RESELLER2).code == 9002
    assert _rows(server) == before
    # the engine admin impersonating reseller 102 is reseller 102
    impersonating = dict(ADMIN, impersonate=102)
    assert fault(url, "getEntityProfiles", {"entity": "customer://103"}, auth=impersonating).code == 9002
    assert rating(url, "getEntityProfiles", {"entity": "domain://other.org"}, auth=impersonating)["profileWeekday"] == "full"


def test_zeep_and_php_wsdl_mode(server):
    url = server.url
    port = zeep_port(zeep_client(url), "Rating")
    hdr = zeep_auth(server.admin["username"], server.admin["password"])
    port.setEntityProfiles(profiles={"entity": "domain://example.com", "profileWeekday": "cheap",
                                     "profileWeekend": "full", "timezone": "UTC"}, _soapheaders=hdr)
    got = port.getEntityProfiles(entity="domain://example.com", _soapheaders=hdr)
    assert (got.entity, got.profileWeekday, got.profileWeekend, got.timezone) == (
        "domain://example.com", "cheap", "full", "UTC")
    with pytest.raises(Exception) as info:
        port.getEntityProfiles(entity="customer://103", _soapheaders=hdr)
    assert zeep_fault(info.value) == 4001
    php_wsdl_call(url, "Rating", "setEntityProfiles", profiles("customer://103", "full"))
    assert php_wsdl_call(url, "Rating", "getEntityProfiles", {"entity": "customer://103"})["profileWeekday"] == "full"
    php_wsdl_call(url, "Rating", "deleteEntityProfiles", {"entity": "customer://103"})
    with server.sessionmaker()() as s:
        assert s.scalar(select(func.count()).select_from(RatingEntityProfile)) == 1


def test_deleting_what_an_entity_names_deletes_its_profiles(server):
    url = server.url
    php_call(url, "Sip", "addAccount", {"account": {"id": {"username": "bob", "domain": "other.org"},
                                                    "password": "pw"}})
    for entity in ("subscriber://alice@example.com", "domain://example.com", "subscriber://bob@other.org",
                   "domain://other.org", "customer://103"):
        rating(url, "setEntityProfiles", profiles(entity))
    php_call(url, "Sip", "deleteAccount", {"sipId": ALICE})
    assert "subscriber://alice@example.com" not in _rows(server)
    php_call(url, "Sip", "addAccount", {"account": {"id": ALICE, "password": "pw"}})
    assert fault(url, "getEntityProfiles", {"entity": "subscriber://alice@example.com"}).code == 4001
    rating(url, "setEntityProfiles", profiles("subscriber://alice@example.com"))
    php_call(url, "Sip", "deleteDomain", {"domain": "other.org"})
    assert set(_rows(server)) == {"subscriber://alice@example.com", "domain://example.com", "customer://103"}
    php_call(url, "Customer", "deleteAccount", {"id": 103})
    assert set(_rows(server)) == {"subscriber://alice@example.com", "domain://example.com"}
