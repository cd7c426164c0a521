"""End to end: call diversion (the routing guide's "Call Diversion", RFC 5806) and page-mode
instant messages (RFC 3428) through ``python -m sipproxy``, with sipp on every side.

One platform serves the module (on SQLite), provisioned through ngnpro's
own logic functions -- the domain, the accounts (passwords, groups, ring ``timeout``), an
alias, each account's CallDiversions (``setCallDiversions``) and the LCR carrier, gateway
and route -- then the proxy started on it.  Every phone registers with sipp from a port of
its own, kept for the module (a second registration replaces the first binding), and a sipp
UAS on that port plays the phone:

=============  =========================================  ==================================
account        diversion                                  its phone
=============  =========================================  ==================================
anna           none (the caller)                          --
target         none                                       answers (e2e_uas.xml)
uncond         FUNC -> target                             never registered
offline        FNOL -> target                             never registered
busy           FBUS -> target                             486
noanswer       FNOA -> target (ring timeout 3 s)          rings until cancelled
unavail        FUNV -> target                             480 or 503
topstn         FBUS -> sip:0201234567@example.com         486 (free-pstn: may divert there)
nopstn         FBUS -> sip:0201234567@example.com         486 (no PSTN access: not diverted)
broke          FBUS -> sip:0201234567@example.com         486 (prepaid, no credit: not diverted)
barred         FBUS -> sip:0900123456@example.com         486 (free-pstn, +31900 barred: not diverted)
31208005170    FUNC -> sip:71@example.com (quick dial          never registered
               prefix 312080051: 31208005171)
31208005171    none                                       answers
relay          FUNV -> chain                              480
chain          FBUS -> target                             486
=============  =========================================  ==================================

The PSTN: carrier "gw", its gateway a sipp at 127.0.0.11, the route 0031.  ``msg-alias`` is
an alias of target.
"""
from __future__ import annotations

import pytest

from ngnpro import sip_pstn as pstn
from ngnpro import sip_types as t
from ngnpro.models.database import open_database
from ngnpro.pstn_types import Carrier, Gateway, Route
from ngnpro.sip_accounts import add_account
from ngnpro.sip_aliases import add_alias
from ngnpro.sip_domains import add_domain
from ngnpro.sip_settings import set_barring_prefixes, set_call_diversions
from tests.conftest import module_database
from tests.helpers import free_port
from tests.sipproxy_e2e.flows_support import (
    DOMAIN,
    Platform,
    Sipp,
    _do,
    _header,
    _ok,
    _received,
    _ruri,
    _uas,
)
from tests.sipproxy_e2e.sipp_support import SCENARIOS, ProxyProcess, auth_row

GATEWAY = "127.0.0.11"
NUMBER = "0201234567"  # national: +31201234567, 0031201234567 towards the gateway
TO_TARGET = f"sip:target@{DOMAIN}"
TO_NUMBER = f"sip:{NUMBER}@{DOMAIN}"

#: account -> (groups, ring timeout, diversions); ``broke`` is prepaid (balance 0),
#: 31208005170 has the quick dial prefix 312080051
ACCOUNTS: dict[str, tuple[list[str], int | None, dict[str, str]]] = {
    "anna": ([], None, {}),
    "target": ([], None, {}),
    "uncond": ([], None, {"FUNC": TO_TARGET}),
    "offline": ([], None, {"FNOL": TO_TARGET}),
    "busy": ([], None, {"FBUS": TO_TARGET}),
    "noanswer": ([], 3, {"FNOA": TO_TARGET}),
    "unavail": ([], None, {"FUNV": TO_TARGET}),
    "topstn": (["free-pstn"], None, {"FBUS": TO_NUMBER}),
    "nopstn": ([], None, {"FBUS": TO_NUMBER}),
    "broke": ([], None, {"FBUS": TO_NUMBER}),
    "barred": (["free-pstn"], None, {"FBUS": f"sip:0900123456@{DOMAIN}"}),
    "31208005170": ([], None, {"FUNC": f"sip:71@{DOMAIN}"}),
    "31208005171": ([], None, {}),
    "relay": ([], None, {"FUNV": f"sip:chain@{DOMAIN}"}),
    "chain": ([], None, {"FBUS": TO_TARGET}),
}
PHONES = ("target", "busy", "noanswer", "unavail", "topstn", "nopstn", "broke", "barred", "relay", "chain",
          "31208005171")


def _password(user: str) -> str:
    return f"pw-{user}"


def provision(url: str, gateway_port: int) -> None:
    engine, sessions = open_database(url)
    try:
        _do(sessions, add_domain, t.SipDomain(domain=DOMAIN))
        for user, (groups, timeout, diversions) in ACCOUNTS.items():
            sip_id = t.SipId(username=user, domain=DOMAIN)
            _do(sessions, add_account, t.SipAccount(id=sip_id, password=_password(user), groups=groups,
                                                    timeout=timeout, prepaid=int(user == "broke"),
                                                    quickdialPrefix="312080051" if user == "31208005170" else None))
            if diversions:
                _do(sessions, set_call_diversions, sip_id, t.CallDiversions(**diversions))
        _do(sessions, set_barring_prefixes, t.SipId(username="barred", domain=DOMAIN), ["+31900"])
        _do(sessions, add_alias, t.SipAlias(id=t.SipId(username="msg-alias", domain=DOMAIN),
                                            target=t.SipId(username="target", domain=DOMAIN)))
        _do(sessions, pstn.add_carrier, Carrier(name="gw"))
        (carrier,) = _do(sessions, pstn.get_carriers, None).carriers
        _do(sessions, pstn.add_gateway, Gateway(name="gw-1", carrier_id=carrier.id, ip=GATEWAY, port=gateway_port))
        _do(sessions, pstn.add_routes, [Route(carrier_id=carrier.id, prefix="0031", priority=10)])
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    # SQLite only: what diversion reads and writes (the account's CallDiversions, the
    # accounting and prepaid rows) is the same SQL the flows, calls and prepaid tests run on
    # every backend; three backends here cost 38 s of the suite's 15 minutes
    tmp = tmp_path_factory.mktemp("diversion")
    with module_database("sqlite", tmp) as url:
        ports = {"gw": free_port(host=GATEWAY), **{user: free_port() for user in PHONES}}
        provision(url, ports["gw"])
        proxy = ProxyProcess(tmp, url, country_code="31", outgoing_timeout=20.0)
        yield Platform(proxy, None, ports, url)  # type: ignore[arg-type]  # no enumdns here
        proxy.stop()


@pytest.fixture
def net(platform):
    platform.mark = len(platform.proxy.output())
    return platform


def _phone(tmp, net: Platform, user: str, scenario: str = "e2e_uas.xml") -> Sipp:
    """``user`` registers from its port, then a sipp UAS there plays its phone."""
    reg = Sipp(tmp, f"reg-{user}", "e2e_register.xml", net.port, port=net.ports[user],
               rows=[auth_row(user, _password(user))])
    _ok(reg, net=net)
    return Sipp(tmp, user, scenario, net.port, port=net.ports[user], server=True, timeout=20)


def _failing(tmp, net: Platform, user: str, status: int, reason: str) -> Sipp:
    """``user``'s phone, answering ``status`` ``reason`` (a copy of the template scenario)."""
    scenario = tmp / f"uas-{user}-{status}.xml"
    scenario.write_text((SCENARIOS / "div_uas_fail.xml").read_text().replace("STATUS REASON", f"{status} {reason}"))
    return _phone(tmp, net, user, str(scenario))


def _call(tmp, net: Platform, to_user: str, scenario: str = "flow_uac.xml") -> Sipp:
    """anna calls ``to_user``."""
    row = f"anna;{DOMAIN};[authentication username=anna password={_password('anna')}];"
    if scenario == "flow_uac.xml":
        row += f"sip:{to_user}@{DOMAIN};X-Test: diversion"
    else:
        row += f"{to_user};{DOMAIN}"
    return Sipp(tmp, "anna", scenario, net.port, rows=[row])


def _diverted_to_target(tmp, net: Platform, diverting: str, reason: str, *phones: Sipp, via: str = "") -> str:
    """anna's call to ``diverting`` is answered by target's phone, whose INVITE carries the
    Diversion header of ``diverting`` with ``reason`` (``via``: diverted again by that
    account, its header on top); target's INVITE block is answered."""
    target = _phone(tmp, net, "target")
    uac = _call(tmp, net, diverting)
    _ok(uac, target, *phones, net=net)
    assert uac.finals() == {("1 INVITE", 407), ("2 INVITE", 200), ("3 BYE", 200)}, uac.report()
    (invite,) = _received(target)
    assert _ruri(invite).startswith(f"sip:target@127.0.0.1:{net.ports['target']}")
    if not via:
        assert _header(invite, "Diversion") == [f"<sip:{diverting}@{DOMAIN}>;reason={reason};counter=1"]
        assert f"diverted ({reason}) to sip:target@{DOMAIN}" in net.since()
    return invite


# -- before the fork ---------------------------------------------------------------------------


def test_unconditional_diversion(net, tmp_path):
    """FUNC: every call goes to the target at once (uncond's phone is never tried)."""
    _diverted_to_target(tmp_path, net, "uncond", "unconditional")


def test_not_online_diversion(net, tmp_path):
    """FNOL: offline has no registered contact: the call goes to the target, not 480."""
    _diverted_to_target(tmp_path, net, "offline", "unavailable")


# -- after the fork ----------------------------------------------------------------------------


def test_busy_diversion(net, tmp_path):
    """FBUS: busy's phone answers 486; the call goes on to the target."""
    busy = _failing(tmp_path, net, "busy", 486, "Busy Here")
    _diverted_to_target(tmp_path, net, "busy", "user-busy", busy)
    (tried,) = _received(busy)
    assert _ruri(tried).startswith(f"sip:busy@127.0.0.1:{net.ports['busy']}")
    assert not _header(tried, "Diversion")


def test_no_answer_diversion(net, tmp_path):
    """FNOA: noanswer's phone rings; after its account's ring timeout (3 s) the proxy cancels
    it (the phone answers 487) and the call goes on to the target."""
    ringing = _phone(tmp_path, net, "noanswer", "e2e_uas_ring.xml")
    _diverted_to_target(tmp_path, net, "noanswer", "no-answer", ringing)
    assert len(_received(ringing, "CANCEL")) == 1
    assert "SIP/2.0 487 " in (tmp_path / "noanswer.msg").read_text(errors="replace")


@pytest.mark.parametrize(("status", "reason"), [(480, "Temporarily Unavailable"), (503, "Service Unavailable")])
def test_unavailable_diversion(net, tmp_path, status, reason):
    """FUNV: unavail's phone answers 480 or 503; the call goes on to the target."""
    phone = _failing(tmp_path, net, "unavail", status, reason)
    _diverted_to_target(tmp_path, net, "unavail", "unavailable", phone)
    assert len(_received(phone)) == 1


# -- to the PSTN ---------------------------------------------------------------------------------


def test_busy_diversion_to_a_pstn_number_through_lcr(net, tmp_path):
    """topstn (free-pstn) is busy: the call goes to its number target through LCR, to the
    gateway with the number in 00+E.164 form and the Diversion header."""
    busy = _failing(tmp_path, net, "topstn", 486, "Busy Here")
    gw = _uas(tmp_path, net, "gw", GATEWAY, net.ports["gw"])
    uac = _call(tmp_path, net, "topstn")
    _ok(uac, busy, gw, net=net)
    assert uac.finals() == {("1 INVITE", 407), ("2 INVITE", 200), ("3 BYE", 200)}
    (invite,) = _received(gw)
    assert _ruri(invite) == f"sip:0031201234567@{GATEWAY}:{net.ports['gw']}"
    assert _header(invite, "Diversion") == [f"<sip:topstn@{DOMAIN}>;reason=user-busy;counter=1"]


@pytest.mark.parametrize(("user", "why"), [("nopstn", "no PSTN access"), ("broke", "Insufficient Credit"),
                                         ("barred", "Destination Barred")])
def test_diversion_to_a_pstn_number_the_account_may_not_call_is_refused(net, tmp_path, user, why):
    """nopstn has no PSTN access, broke is prepaid without credit, barred may not call
    +31900: no diversion to their number target, the caller gets the phone's 486 and no
    gateway is tried."""
    busy = _failing(tmp_path, net, user, 486, "Busy Here")
    uac = _call(tmp_path, net, user, "e2e_uac_busy.xml")
    _ok(uac, busy, net=net)
    assert ("2 INVITE", 486) in uac.finals()
    assert f"to {user}@{DOMAIN}: FBUS, not diverted ({why})" in net.since()
    assert f"{GATEWAY}:{net.ports['gw']}" not in net.since()


# -- instant messages (RFC 3428 page mode) -----------------------------------------------------


@pytest.mark.parametrize("to_user", ["target", "msg-alias"])
def test_message_to_a_registered_user(net, tmp_path, to_user):
    """anna's MESSAGE to target (or to its alias) reaches target's phone; anna gets 200."""
    phone = _phone(tmp_path, net, "target", "msg_uas.xml")
    uac = Sipp(tmp_path, "anna", "msg_uac.xml", net.port,
               rows=[f"anna;{DOMAIN};[authentication username=anna password={_password('anna')}];"
                     f"{to_user};{DOMAIN}"])
    _ok(uac, phone, net=net)
    assert uac.finals() == {("1 MESSAGE", 407), ("2 MESSAGE", 200)}
    (message,) = _received(phone, "MESSAGE")
    assert _ruri(message).startswith(f"sip:target@127.0.0.1:{net.ports['target']}")
    assert _header(message, "From")[0].startswith(f"<sip:anna@{DOMAIN}>")
    assert "Hello from anna" in (tmp_path / "target.msg").read_text(errors="replace")


def test_caller_cancels_while_the_diverted_call_rings(net, tmp_path):
    """busy's phone answers 486, target's rings: the caller's CANCEL reaches target's phone
    (not busy's, already done) and the caller gets 487."""
    busy = _failing(tmp_path, net, "busy", 486, "Busy Here")
    target = _phone(tmp_path, net, "target", "e2e_uas_ring.xml")
    uac = _call(tmp_path, net, "busy", "e2e_uac_cancel.xml")
    _ok(uac, busy, target, net=net)
    assert ("2 INVITE", 487) in uac.finals()
    (invite,) = _received(target)
    assert _header(invite, "Diversion") == [f"<sip:busy@{DOMAIN}>;reason=user-busy;counter=1"]
    assert len(_received(target, "CANCEL")) == 1 and not _received(busy, "CANCEL")


def test_diversion_of_a_diverted_call(net, tmp_path):
    """relay's phone answers 480 (FUNV -> chain), chain's 486 (FBUS -> target): chain's
    condition is its own fork's (busy), and target's INVITE has both Diversion headers,
    the newest on top."""
    relay = _failing(tmp_path, net, "relay", 480, "Temporarily Unavailable")
    chain = _failing(tmp_path, net, "chain", 486, "Busy Here")
    invite = _diverted_to_target(tmp_path, net, "relay", "unavailable", relay, chain, via="chain")
    assert _header(invite, "Diversion") == [f"<sip:chain@{DOMAIN}>;reason=user-busy;counter=1",
                                            f"<sip:relay@{DOMAIN}>;reason=unavailable;counter=1"]
    (to_chain,) = _received(chain)
    assert _header(to_chain, "Diversion") == [f"<sip:relay@{DOMAIN}>;reason=unavailable;counter=1"]


def test_diversion_to_a_quick_dial_number_of_the_diverting_account(net, tmp_path):
    """31208005170's FUNC target 71 is a quick-dial number of its range: the call reaches
    31208005171's phone."""
    phone = _phone(tmp_path, net, "31208005171")
    uac = _call(tmp_path, net, "31208005170")
    _ok(uac, phone, net=net)
    (invite,) = _received(phone)
    assert _ruri(invite).startswith(f"sip:31208005171@127.0.0.1:{net.ports['31208005171']}")
    assert _header(invite, "Diversion") == [f"<sip:31208005170@{DOMAIN}>;reason=unconditional;counter=1"]
