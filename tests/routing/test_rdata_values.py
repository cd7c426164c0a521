"""The routing values (sipproxy.directory.routingdata) and Account's routing attributes."""

from __future__ import annotations

import dataclasses

import pytest

from ngnpro.models import sip as models
from ngnpro.sip_settings import CONDITIONS as NGNPRO_CONDITIONS
from ngnpro.sip_settings import VOICEMAILBOX as NGNPRO_VOICEMAILBOX
from sipproxy.directory import account as account_module
from sipproxy.directory.account import Account
from sipproxy.directory.routingdata import (
    CONDITIONS,
    VOICEMAILBOX,
    Rule,
    TrustedPeer,
    normalise_ip,
    rule_order,
)


def test_group_names_match_ngnpro():
    assert account_module.GROUP_BLOCKED == models.GROUP_BLOCKED
    assert account_module.GROUP_PSTN == models.GROUP_PSTN
    assert account_module.GROUP_QUOTA == models.GROUP_QUOTA


def test_diversion_conditions_match_ngnpro():
    assert set(CONDITIONS) == set(NGNPRO_CONDITIONS) and VOICEMAILBOX == NGNPRO_VOICEMAILBOX


@pytest.mark.parametrize("groups, prepaid, access", [
    ((), False, False), (("free-pstn",), False, True), ((), True, True),
    (("free-pstn", "blocked"), False, False), (("free-pstn", "quota"), False, False), (("quota",), True, False),
    (("prepaid",), False, False),  # the group alone is not the prepaid flag
])
def test_pstn_access(groups, prepaid, access):
    assert Account(1, "a", "b", "", "", "", groups=frozenset(groups), prepaid=prepaid).pstn_access is access


def test_account_has_quickdial_prefix_and_stays_immutable():
    a = Account(1, "31208005169", "example.com", "", "", "", quickdial_prefix="312080051")
    assert a.quickdial_prefix == "312080051" and Account(1, "a", "b", "", "", "").quickdial_prefix == ""
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.quickdial_prefix = "1"  # type: ignore[misc]


@pytest.mark.parametrize("ip, norm", [
    ("192.0.2.7", "192.0.2.7"), (" 192.0.2.7 ", "192.0.2.7"), ("2001:DB8:0::2", "2001:db8::2"),
    ("[2001:db8::2]", "2001:db8::2"), ("::ffff:192.0.2.7", "192.0.2.7"), ("host.example", None), ("", None),
])
def test_normalise_ip(ip, norm):
    assert normalise_ip(ip) == norm


def test_rule_order_most_specific_first():
    rules = [Rule(3, "00"), Rule(1, ""), Rule(2, "0031"), Rule(4, "0031")]
    assert [r.id for r in sorted(rules, key=rule_order)] == [2, 4, 3, 1]


def test_values_are_immutable():
    peer = TrustedPeer(ip="192.0.2.7")
    with pytest.raises(AttributeError):
        peer.blocked = True  # type: ignore[misc]
    assert peer.enum_lookup and not peer.transit and hash(peer)
