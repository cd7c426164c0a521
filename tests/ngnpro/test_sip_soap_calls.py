"""SipPort getCalls and getCallStatistics, answered from the accounting table: through PHP's
SoapClient (non-WSDL and WSDL mode) and zeep; scoped to the caller; bad queries fault."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from ngnpro.models.customer import Customer
from ngnpro.models.runtime import AccountingRecord, MediaSession
from tests.ngnpro.harness import (
    ADMIN,
    SoapFaultError,
    php_call,
    php_call_is_list,
    php_wsdl_call,
    zeep_auth,
    zeep_client,
    zeep_fault,
    zeep_port,
)

ALICE = {"username": "alice", "domain": "example.com"}
RESELLER2 = {"username": "reseller2", "password": "pw-2", "admin": False}
T0 = dt.datetime(2026, 12, 1, 10, 0, 0)


def epoch(when: dt.datetime) -> int:
    return int(when.replace(tzinfo=dt.UTC).timestamp())


def sip(url, method, args=None, auth=ADMIN):
    return php_call(url, "Sip", method, args, auth=auth)


def fault(url, method, args=None, auth=ADMIN) -> SoapFaultError:
    with pytest.raises(SoapFaultError) as info:
        sip(url, method, args, auth)
    return info.value


@pytest.fixture
def calls(ngnpro_server):
    """alice@example.com (reseller 101) with three placed calls (the newest still running),
    one received call with audio and video, a MESSAGE (not a call), and bob's call that is
    none of hers."""
    with ngnpro_server.sessionmaker()() as s:
        s.add_all([Customer(id=101, username="reseller1", password="pw-1", reseller_active=True),
                   Customer(id=102, username="reseller2", password="pw-2", reseller_active=True)])
        s.commit()
    url = ngnpro_server.url
    sip(url, "addDomain", {"domain": {"domain": "example.com", "customer": 101, "reseller": 101}})
    sip(url, "addAccount", {"account": {"id": ALICE, "password": "pw"}})

    def record(call_id, caller, callee, minutes, duration, price, status=200, running=False, method="INVITE"):
        start = T0 + dt.timedelta(minutes=minutes)
        return AccountingRecord(
            method=method, call_id=call_id, from_tag=f"ft-{call_id}", to_tag=f"tt-{call_id}", status=status, caller=caller,
            callee=callee, from_uri=f"sip:{caller}", to_uri=f"sip:{callee}", start_time=start,
            stop_time=None if running else start + dt.timedelta(seconds=duration), duration=duration,
            price=Decimal(price), proxy="192.0.2.10")

    with ngnpro_server.sessionmaker()() as s:
        s.add_all([
            record("c1", "alice@example.com", "+31201234567", 0, 61, "0.1234"),
            record("c2", "alice@example.com", "bob@example.com", 60, 0, "0", status=486),
            record("c3", "alice@example.com", "+442079460000", 120, 0, "0", running=True),
            record("c4", "carol@example.org", "alice@example.com", 30, 300, "0.5000"),
            record("c5", "bob@example.com", "+31201234567", 10, 10, "9.0000"),
            record("m1", "alice@example.com", "bob@example.com", 5, 0, "0.0100", method="MESSAGE"),  # no call
            MediaSession(call_id="c4", from_tag="ft-c4", streams=json.dumps(
                [{"media_type": "audio"}, {"media_type": "video"}])),
        ])
        s.commit()
    return ngnpro_server


def test_get_calls_lists_each_direction_newest_first(calls):
    url = calls.url
    got = sip(url, "getCalls", {"sipId": ALICE, "query": {"placed": {"limit": 2}, "received": {"limit": 10}}})
    assert [c["sessionId"] for c in got["placed"]] == ["c3", "c2"]
    assert [c["sessionId"] for c in got["received"]] == ["c4"]
    running, busy = got["placed"]
    assert running["stopTime"] == 0 and running["startTime"] == epoch(T0 + dt.timedelta(minutes=120))
    assert busy["status"] == 486 and busy["toURI"] == "sip:bob@example.com"
    received = got["received"][0]
    assert received == {
        "fromURI": "sip:carol@example.org", "toURI": "sip:alice@example.com", "fromHeader": "sip:carol@example.org",
        "sessionId": "c4", "fromTag": "ft-c4", "toTag": "tt-c4", "applicationTypes": ["audio, video"],
        "startTime": epoch(T0 + dt.timedelta(minutes=30)), "stopTime": epoch(T0 + dt.timedelta(minutes=35)),
        "duration": 300, "status": 200, "price": 0.5, "proxyIP": "192.0.2.10",
    }
    assert busy["applicationTypes"] == ["audio"]  # no media summary: an audio call
    # a direction left out is an empty (typed) list; the default limit is 50
    got = sip(url, "getCalls", {"sipId": ALICE, "query": {"placed": {}}})
    assert [c["sessionId"] for c in got["placed"]] == ["c3", "c2", "c1"] and got["received"] == []
    assert php_call_is_list(url, "Sip", "getCalls", {"sipId": ALICE, "query": {"placed": {"limit": 1}}},
                            member="received")
    assert php_call_is_list(url, "Sip", "getCalls", {"sipId": ALICE, "query": {"placed": {"limit": 1}}},
                            member="placed")


def test_get_calls_and_statistics_honour_the_date_window(calls):
    url = calls.url
    window = {"fromDate": epoch(T0 + dt.timedelta(minutes=1)), "toDate": epoch(T0 + dt.timedelta(minutes=60))}
    got = sip(url, "getCalls", {"sipId": ALICE, "query": {"placed": window, "received": window}})
    assert [c["sessionId"] for c in got["placed"]] == ["c2"]
    assert [c["sessionId"] for c in got["received"]] == ["c4"]
    stats = sip(url, "getCallStatistics", {"sipId": ALICE, "query": {"placed": {"fromDate": epoch(T0)}}})
    assert stats["placed"] == {"calls": 3, "price": 0.1234}
    assert stats["received"] == {"calls": 0, "price": 0}


def test_statistics_as_the_client_asks_for_them(calls):
    # API.md 4.1: getCallStatistics in practice sends only {placed: {limit: 1}}
    stats = sip(calls.url, "getCallStatistics", {"sipId": ALICE, "query": {"placed": {"limit": 1}}})
    assert stats["placed"]["calls"] == 3 and stats["placed"]["price"] == pytest.approx(0.1234)
    stats = sip(calls.url, "getCallStatistics", {"sipId": ALICE, "query": {"placed": {}, "received": {}}})
    assert stats["received"] == {"calls": 1, "price": 0.5}


@pytest.mark.parametrize("query, code, words", [
    ({"placed": {"limit": 5001}}, 1040, "query.placed.limit"),
    ({"received": {"limit": -1}}, 1040, "query.received.limit"),
    ({"placed": {"fromDate": 200, "toDate": 100}}, 1040, "query.placed.toDate"),
    ({"placed": {"fromDate": "yesterday"}}, 1040, "query.placed.fromDate"),
])
def test_bad_queries_fault_naming_the_field(calls, query, code, words):
    for method in ("getCalls", "getCallStatistics"):
        exc = fault(calls.url, method, {"sipId": ALICE, "query": query})
        assert exc.code == code and words in exc.message, exc


def test_scoping_and_unknown_accounts(calls):
    url = calls.url
    args = {"sipId": ALICE, "query": {"placed": {}}}
    assert fault(url, "getCalls", args, auth=RESELLER2).code == 9002
    assert fault(url, "getCallStatistics", args, auth=RESELLER2).code == 9002
    reseller1 = {"username": "reseller1", "password": "pw-1", "admin": False}
    assert len(sip(url, "getCalls", args, auth=reseller1)["placed"]) == 3
    nobody = {"sipId": {"username": "nobody", "domain": "example.com"}, "query": {"placed": {}}}
    assert fault(url, "getCalls", nobody).code == 1010


def test_zeep_and_php_wsdl_mode(calls):
    url = calls.url
    port = zeep_port(zeep_client(url), "Sip")
    hdr = zeep_auth(calls.admin["username"], calls.admin["password"])
    got = port.getCalls(sipId=ALICE, query={"placed": {"limit": 5}, "received": {"limit": 5}}, _soapheaders=hdr)
    assert [c.sessionId for c in got.placed] == ["c3", "c2", "c1"]
    assert got.received[0].applicationTypes == ["audio, video"] and got.received[0].duration == 300
    stats = port.getCallStatistics(sipId=ALICE, query={"placed": {"limit": 1}}, _soapheaders=hdr)
    assert stats.placed.calls == 3 and stats.placed.price == pytest.approx(0.1234)
    with pytest.raises(Exception) as info:
        port.getCalls(sipId=ALICE, query={"placed": {"limit": 9999}}, _soapheaders=hdr)
    assert zeep_fault(info.value) == 1040
    got = php_wsdl_call(url, "Sip", "getCalls", {"sipId": ALICE, "query": {"received": {"limit": 5}}})
    assert [c["sessionId"] for c in got["received"]] == ["c4"] and got["received"][0]["price"] == 0.5
    stats = php_wsdl_call(url, "Sip", "getCallStatistics", {"sipId": ALICE, "query": {"placed": {"limit": 1}}})
    assert stats["placed"]["calls"] == 3
