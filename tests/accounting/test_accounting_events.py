"""The records' contents, from call events (sipproxy.accounting.events: pure, no I/O)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from pyrad.dictionary import Dictionary
from pyrad.packet import AcctPacket

from sipproxy.accounting import events as ev
from sipproxy.accounting.radius import DICTIONARY
from sipproxy.dialog.state import DialogInfo

T0 = 1_800_000_000.25

INFO = DialogInfo(call_id="c1@host", from_tag="ft1", to_tag="tt1", caller="alice@example.com",
                  callee="bob@example.com", caller_cseq=2)


def _call(**kw) -> ev.Call:
    args = dict(when=T0, billing_party="acme@example.com", source_ip="192.0.2.7", source_port=5062,
                user_agent="phone/1", from_uri="sip:alice@example.com", to_uri="sip:0201234567@example.com",
                translated_uri="sip:bob@192.0.2.9:5060", callee_user_agent="pbx/2",
                from_header="<sip:alice@example.com>;tag=ft1", proxy_ip="198.51.100.1", proxy_port=5060)
    args.update(kw)
    return ev.answered(INFO, **args)


SUMMARY = {"call_id": "c1@host", "reason": "bye", "streams": [
    {"media_type": "audio", "codec": "PCMU", "bytes_caller_to_callee": 1000, "packets_caller_to_callee": 10,
     "bytes_callee_to_caller": 800, "packets_callee_to_caller": 8},
    {"media_type": "video", "codec": "H264", "bytes_caller_to_callee": 5000, "packets_caller_to_callee": 5,
     "bytes_callee_to_caller": 0, "packets_callee_to_caller": 0},
]}


def test_start_carries_the_call_and_who_pays():
    attrs = dict(ev.start_attributes(_call(), {"nas_identifier": "msp-1"}))
    assert attrs["Acct-Status-Type"] == "Start"
    assert attrs["Acct-Session-Id"] == "c1@host"
    assert (attrs["Sip-From-Tag"], attrs["Sip-To-Tag"]) == ("ft1", "tt1")
    assert attrs["Sip-Method"] == "Invite" and attrs["Sip-Response-Code"] == 200
    assert attrs["Calling-Station-Id"] == "sip:alice@example.com"
    assert attrs["Called-Station-Id"] == "sip:0201234567@example.com"
    assert attrs["Canonical-URI"] == "sip:bob@example.com"
    assert attrs["Sip-Translated-Request-URI"] == "sip:bob@192.0.2.9:5060"
    assert attrs["User-Name"] == attrs["Billing-Party"] == "acme@example.com"
    assert (attrs["Source-IP"], attrs["Source-Port"]) == ("192.0.2.7", "5062")
    assert attrs["User-Agent"] == "phone/1"
    assert attrs["Event-Timestamp"] == int(T0) and attrs["Acct-Session-Time"] == 0
    assert attrs["NAS-IP-Address"] == "198.51.100.1" and attrs["NAS-Port"] == 5060
    assert attrs["NAS-Identifier"] == "msp-1" and attrs["Service-Type"] == "Sip-Session"
    assert attrs["MSP-Record-Id"] == ev.record_id("c1@host", "ft1", ev.START)


def test_billing_party_defaults_to_the_caller():
    assert dict(ev.start_attributes(_call(billing_party="")))["Billing-Party"] == "alice@example.com"


def test_stop_carries_duration_who_ended_and_the_media():
    call = _call()
    end = ev.CallEnd(T0 + 61.6, "callee", "BYE", ev.media_totals(SUMMARY))
    attrs = dict(ev.stop_attributes(call, end))
    assert attrs["Acct-Status-Type"] == "Stop" and attrs["Sip-Method"] == "Bye"
    assert attrs["Acct-Session-Time"] == attrs["Sip-Call-Duration"] == 62  # rounded
    assert attrs["Sip-Call-MSDuration"] == 61600
    assert attrs["Acct-Terminate-Cause"] == "User-Request"
    assert (attrs["MSP-Disconnect-Party"], attrs["MSP-Disconnect-Reason"]) == ("callee", "BYE")
    assert (attrs["Acct-Input-Octets"], attrs["Acct-Output-Octets"]) == (6000, 800)
    assert (attrs["Acct-Input-Packets"], attrs["Acct-Output-Packets"]) == (15, 8)
    assert attrs["Media-Codecs"] == "PCMU,H264" and attrs["Sip-Applications"] == "audio,video"
    assert attrs["Sip-User-Agents"] == "phone/1+pbx/2"
    assert "Media-Info" not in attrs  # no timeout
    assert attrs["Event-Timestamp"] == int(T0 + 61.6)
    # the Stop and the Start of a call are told apart, the Stop is always the same
    assert attrs["MSP-Record-Id"] == ev.record_id("c1@host", "ft1", ev.STOP) != ev.record_id("c1@host", "ft1", ev.START)


def test_media_timeout_stop():
    end = ev.CallEnd(T0 + 30, "proxy", "Media timeout", ev.media_totals({**SUMMARY, "reason": "media timeout"}))
    attrs = dict(ev.stop_attributes(_call(), end))
    assert attrs["Acct-Terminate-Cause"] == "Idle-Timeout"
    assert attrs["Media-Info"] == "timeout"
    assert attrs["MSP-Disconnect-Party"] == "proxy"


def test_stop_without_media_relay_has_zero_counts():
    attrs = dict(ev.stop_attributes(_call(), ev.CallEnd(T0 + 5, "caller", "BYE")))
    assert attrs["Acct-Input-Octets"] == attrs["Acct-Output-Octets"] == 0
    assert "Media-Codecs" not in attrs


def test_interim_update_counts_time_so_far():
    attrs = dict(ev.interim_attributes(_call(), T0 + 300, 1))
    assert attrs["Acct-Status-Type"] == "Interim-Update"
    assert attrs["Acct-Session-Time"] == 300
    assert attrs["MSP-Record-Id"] == ev.record_id("c1@host", "ft1", ev.INTERIM, 1)
    assert attrs["MSP-Record-Id"] != dict(ev.interim_attributes(_call(), T0 + 600, 2))["MSP-Record-Id"]


def test_failed_invite_is_a_missed_call():
    call = ev.failed(replace(_call(), to_tag="busy"), when=T0 + 3, status=486, reason="Busy Here")
    attrs = dict(ev.failed_attributes(call))
    assert attrs["Acct-Status-Type"] == "Failed"
    assert attrs["Sip-Method"] == "Invite" and attrs["Sip-Response-Code"] == 486
    assert attrs["Acct-Session-Time"] == 0 and attrs["Event-Timestamp"] == int(T0 + 3)
    assert attrs["MSP-Disconnect-Reason"] == "486 Busy Here" and attrs["Sip-To-Tag"] == "busy"
    row = ev.failed_row(call)
    assert (row["status"], row["duration"], row["reason"]) == (486, 0, "Busy Here")


def test_rows_for_the_accounting_table():
    call = _call()
    row = ev.stop_row(call, ev.CallEnd(T0 + 10, "caller", "BYE"))
    assert row["start_time"] == dt.datetime(2027, 1, 15, 8, 0, 0, 250000)
    assert row["stop_time"] - row["start_time"] == dt.timedelta(seconds=10)
    assert (row["duration"], row["status"], row["reason"]) == (10, 200, "caller: BYE")
    assert (row["billing_party"], row["source_ip"], row["user_agent"]) == ("acme@example.com", "192.0.2.7", "phone/1")
    assert row["destination"] == "sip:bob@192.0.2.9:5060"


def test_media_totals_tolerate_junk():
    assert ev.media_totals(None) == ev.MediaTotals()
    assert ev.media_totals({"streams": "x"}) == ev.MediaTotals()
    odd = ev.media_totals({"streams": [None, {"codec": "PCMA", "bytes_caller_to_callee": "12"},
                                       {"bytes_callee_to_caller": "n/a", "packets_caller_to_callee": -5}]})
    assert (odd.codecs, odd.caller_bytes, odd.callee_bytes, odd.caller_packets) == ("PCMA", 12, 0, 0)


def test_empty_values_are_left_out_and_long_ones_clipped():
    call = _call(user_agent="", from_header="x" * 400 + "é")
    attrs = dict(ev.start_attributes(call))
    assert "User-Agent" not in attrs
    assert len(attrs["From-Header"].encode()) == 253


@pytest.mark.parametrize("make", [
    lambda: ev.start_attributes(_call(), {"nas_identifier": "msp"}),
    lambda: ev.interim_attributes(_call(), T0 + 60, 1),
    lambda: ev.stop_attributes(_call(), ev.CallEnd(T0 + 9, "caller", "BYE", ev.media_totals(SUMMARY))),
    lambda: ev.failed_attributes(ev.failed(_call(), when=T0, status=404, reason="Not Found")),
])
def test_every_attribute_is_in_the_shipped_dictionary_and_encodes(make):
    dictionary = Dictionary(DICTIONARY)
    pkt = AcctPacket(id=1, secret=b"s", dict=dictionary)
    for name, value in make():
        assert name in dictionary.attributes, name
        pkt.AddAttribute(name, value)
    decoded = AcctPacket(secret=b"s", dict=dictionary, packet=pkt.RequestPacket())
    assert decoded["Acct-Session-Id"] == ["c1@host"]


def test_non_ipv4_proxy_address_is_not_a_nas_ip_address():
    attrs = dict(ev.start_attributes(_call(proxy_ip="2001:db8::1")))
    assert "NAS-IP-Address" not in attrs and attrs["SIP-Proxy-IP"] == "2001:db8::1"


def test_every_attribute_of_the_dictionary_is_documented():
    from tests.helpers import ROOT

    doc = (ROOT / "docs" / "accounting.md").read_text()
    readme = (ROOT / "README.md").read_text()
    for name in Dictionary(DICTIONARY).attributes.keys():
        assert f"`{name}`" in doc, f"{name} is not in docs/accounting.md"
        assert f"`{name}`" in readme, f"{name} is not in README.md"


@pytest.mark.parametrize("kind, code", [(ev.ACCOUNTING_ON, 7), (ev.ACCOUNTING_OFF, 8)])
def test_accounting_on_and_off_name_the_nas_and_encode_as_rfc_2866_says(kind, code):
    """Acct-Status-Type 7 / 8 on the wire, the NAS named as in the call records, the run's
    session id, and an id of its own for each of On and Off."""
    nas = {"nas_identifier": "msp-1", "nas_ip": "198.51.100.1"}
    attrs = ev.nas_attributes(kind, "msp-1-run", T0, nas)
    named = dict(attrs)
    assert named["Acct-Status-Type"] == kind and named["Acct-Session-Id"] == "msp-1-run"
    assert named["NAS-IP-Address"] == "198.51.100.1" and named["NAS-Identifier"] == "msp-1"
    assert named["Event-Timestamp"] == int(T0)
    assert named["MSP-Record-Id"] == ev.record_id("msp-1-run", "", kind)
    assert "User-Name" not in named and "Acct-Session-Time" not in named  # no call, no user
    dictionary = Dictionary(DICTIONARY)
    pkt = AcctPacket(id=1, secret=b"s", dict=dictionary)
    for name, value in attrs:
        pkt.AddAttribute(name, value)
    raw = pkt.RequestPacket()
    decoded = AcctPacket(secret=b"s", dict=dictionary, packet=raw)
    assert decoded["Acct-Status-Type"] == [kind]
    assert bytes([40, 6, 0, 0, 0, code]) in raw  # attribute 40, length 6, the integer


def test_a_wildcard_or_ipv6_listener_is_no_nas_ip_address():
    for ip in ("0.0.0.0", "2001:db8::1", "", "not-an-address"):
        named = dict(ev.nas_attributes(ev.ACCOUNTING_ON, "run", T0, {"nas_identifier": "msp", "nas_ip": ip}))
        assert "NAS-IP-Address" not in named and named["NAS-Identifier"] == "msp"
