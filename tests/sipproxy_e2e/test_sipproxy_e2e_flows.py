"""End to end: the routing guide's call flows through ``python -m sipproxy``, with sipp on
every side and our own ``python -m enumdns`` answering ENUM and the other domains' DNS.

One platform serves the module (on each database under test): provisioned through ngnpro's
own logic functions (LCR carriers, gateways, rules and routes, trusted peers, ENUM range
and numbers, DNS zones and records; accounts and emergency mappings, which no NGNPro method
writes, through the ORM), then enumdns and the proxy started on it.  Peers that the proxy
knows by their source address are sipp processes bound to their own loopback address
(``-i 127.0.0.x``):

==============  ===================  ==================================================
127.0.0.1       subscribers          alice (free-pstn, rpid, region north), bob (no PSTN,
                                     region south), erin (region east: the default
                                     mapping), callees, quick-dial ranges; strangers
127.0.0.11      carrier "first"      PSTN gateway for 0031, no rule: answers 503
127.0.0.12      carrier "second"     PSTN gateway for 0031, rule 0031: strip 2, prepend 99
127.0.0.13      carrier "incoming"   PSTN gateway with no route: incoming calls only
127.0.0.14      carrier "named"      gw.carrier.test (A record in our DNS): 0049, and 0044
                                     for originator pbx-t only
127.0.0.15      carrier "incoming"   PSTN gateway that is a trusted peer too
127.0.0.21      PBX A                trusted peer (ENUM look-ups, no transit)
127.0.0.22      PBX B                pbx-b.test (SRV + A in our DNS), not trusted
127.0.0.23      PBX T                trusted peer allowed transit, originator pbx-t
127.0.0.31/32   far.test             SRV priority 10 and 20: the first answers 503
127.0.0.33      tcp.test             NAPTR SIP+D2T -> SRV _sip._tcp
127.0.0.1       emergency centres    112 of region north and of region south; the
                                     default region's 112 is a national number (PSTN)
==============  ===================  ==================================================
"""
from __future__ import annotations

import pytest

from tests.conftest import DB_IDS, DB_PARAMS, module_database
from tests.helpers import Service, free_port, write_config
from tests.sipproxy_e2e.flows_support import (
    ACCOUNTS,
    DOMAIN,
    FAR_1,
    FAR_2,
    GW_FIRST,
    GW_INCOMING,
    GW_NAMED,
    GW_PEER,
    GW_SECOND,
    NATIONAL,
    NOBODY,
    PBX_A,
    PBX_B,
    PBX_T,
    TCP_SERVER,
    TO_CAROL,
    TO_DAVE,
    TO_GINA_NATIONAL,
    TO_PBX_B,
    Platform,
    Sipp,
    _header,
    _ok,
    _plain_call,
    _received,
    _refused,
    _register,
    _ruri,
    _subscriber_call,
    _subscriber_refused,
    _uas,
    provision,
)

from .sipp_support import ProxyProcess


@pytest.fixture(scope="module", params=DB_PARAMS, ids=DB_IDS)
def platform(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("flows")
    with module_database(request.param, tmp) as url:
        ports = {
            "dns": free_port(),
            "gw-first": free_port(host=GW_FIRST), "gw-second": free_port(host=GW_SECOND),
            "pbx-b": free_port(host=PBX_B), "far-1": free_port(host=FAR_1), "far-2": free_port(host=FAR_2),
            "tcp": free_port(host=TCP_SERVER), "gw-named": free_port(host=GW_NAMED),
            "sos-north": free_port(), "sos-south": free_port(),
        }
        provision(url, ports)
        dns_addr = f"127.0.0.1:{ports['dns']}"
        dns_cfg = write_config(tmp / "enumdns.toml", {"database": {"url": url, "poll_interval": 0.1},
                                                      "enumdns": {"listen": dns_addr}})
        dns = Service("enumdns", dns_cfg).wait_tcp("127.0.0.1", ports["dns"])
        try:
            # enum_servers left empty: the [enumdns] listen address
            proxy = ProxyProcess(tmp, url, sections={"enumdns": {"listen": dns_addr}},
                                 dns_servers=[dns_addr], country_code="31", emergency_numbers=["112", "911"],
                                 caller_id_header="pai", outgoing_timeout=20.0)
        except Exception:
            dns.stop()
            raise
        yield Platform(proxy, dns, ports, url)
        proxy.stop()
        dns.stop()


@pytest.fixture
def net(platform):
    platform.mark = len(platform.proxy.output())
    return platform



# -- the flows ----------------------------------------------------------------------------


def test_subscriber_to_pstn_fails_over_to_the_second_carrier(net, tmp_path):
    """alice (free-pstn) dials a national number: E.164 +31201234567, the 0031 route's first
    carrier answers 503, the second carrier's gateway gets the number its rule makes
    (0031201234567: strip 2, prepend 99) and alice's rpid as P-Asserted-Identity (the one
    she sent herself is removed); the call completes."""
    first = _uas(tmp_path, net, "gw1", GW_FIRST, net.ports["gw-first"], "flow_uas_503.xml")
    second = _uas(tmp_path, net, "gw2", GW_SECOND, net.ports["gw-second"])
    uac = _subscriber_call(tmp_path, net, "alice", NATIONAL, extra="P-Asserted-Identity: <sip:boss@forged.example>")
    _ok(uac, first, second, net=net)
    assert uac.finals() == {("1 INVITE", 407), ("2 INVITE", 200), ("3 BYE", 200)}
    (tried,) = _received(first)
    assert _ruri(tried) == f"sip:0031201234567@{GW_FIRST}:{net.ports['gw-first']}"
    (invite,) = _received(second)
    assert _ruri(invite) == f"sip:9931201234567@{GW_SECOND}:{net.ports['gw-second']}"
    assert _header(invite, "P-Asserted-Identity") == ["<sip:+31201110001@example.com>"]
    assert not _header(invite, "Proxy-Authorization")
    assert len(_received(second, "BYE")) == 1


def test_subscriber_without_pstn_access_gets_403(net, tmp_path):
    assert _subscriber_refused(tmp_path, net, "bob", NATIONAL) == "403 No PSTN Access"
    assert "ICT Calling" not in net.since()  # no gateway was tried


# -- 2. PSTN to end-point -----------------------------------------------------------------


def test_pstn_gateway_reaches_a_local_user_through_enum(net, tmp_path):
    """A call from the incoming gateway's address to +E164@<the proxy> is not challenged;
    ENUM maps the number to carol, registered: her phone gets the call, the gateway's
    caller id kept."""
    port = _register(tmp_path, net, "carol")
    phone = _uas(tmp_path, net, "carol", "127.0.0.1", port)
    uac = _plain_call(tmp_path, net, "flow_uac_trusted.xml", "+31612345678@gw.carrier.test",
                      f"{TO_CAROL}@127.0.0.1:{net.port}", ip=GW_INCOMING,
                      extra="P-Asserted-Identity: <sip:+31612345678@gw.carrier.test>")
    _ok(uac, phone, net=net)
    assert uac.finals() == {("1 INVITE", 200), ("2 BYE", 200)}  # no 407
    (invite,) = _received(phone)
    assert _ruri(invite).startswith(f"sip:carol@127.0.0.1:{port}")
    assert _header(invite, "P-Asserted-Identity") == ["<sip:+31612345678@gw.carrier.test>"]


def test_pstn_gateway_unknown_number_404_and_non_local_result_403(net, tmp_path):
    """The guide's handle-incoming-pstn: ENUM finds nothing -> 404 User Not Found; a result
    that is not local -> 403 Invalid Destination (not relayed out)."""
    assert _refused(tmp_path, net, "+31612345678@gw.carrier.test", f"{NOBODY}@127.0.0.1:{net.port}",
                    ip=GW_INCOMING, name="unknown") == {"404 User Not Found"}
    assert _refused(tmp_path, net, "+31612345678@gw.carrier.test", f"{TO_PBX_B}@127.0.0.1:{net.port}",
                    ip=GW_INCOMING, name="not-local") == {"403 Invalid Destination"}
    assert "ICT Calling" not in net.since()


def test_pstn_gateway_that_is_a_trusted_peer_reaches_a_pbx(net, tmp_path):
    """PSTN to PBX: a gateway also provisioned as a trusted peer may reach a number whose
    ENUM result is PBX B's domain; the gateway's caller id passes."""
    pbx_b = _uas(tmp_path, net, "pbx-b", PBX_B, net.ports["pbx-b"])
    uac = _plain_call(tmp_path, net, "flow_uac_trusted.xml", "+31612345678@gw.carrier.test",
                      f"{TO_PBX_B}@127.0.0.1:{net.port}", ip=GW_PEER,
                      extra="P-Asserted-Identity: <sip:+31612345678@gw.carrier.test>")
    _ok(uac, pbx_b, net=net)
    assert uac.finals() == {("1 INVITE", 200), ("2 BYE", 200)}
    (invite,) = _received(pbx_b)
    assert _ruri(invite) == "sip:sales@pbx-b.test"
    assert _header(invite, "P-Asserted-Identity") == ["<sip:+31612345678@gw.carrier.test>"]


def test_pstn_gateway_call_to_a_user_not_registered_gets_480(net, tmp_path):
    """A national number from the gateway: ENUM finds gina, who has no phone registered."""
    assert _refused(tmp_path, net, "+31612345678@gw.carrier.test", f"{TO_GINA_NATIONAL}@127.0.0.1:{net.port}",
                    ip=GW_INCOMING) == {"480 Temporarily Unavailable"}


# -- 3. PBX to PBX ---------------------------------------------------------------------------


def test_trusted_pbx_reaches_another_pbx_through_enum_and_srv(net, tmp_path):
    """PBX A (a trusted peer, by its address) calls a number whose ENUM result is PBX B's
    domain; PBX B is found by its SRV record in our DNS.  No challenge; PBX A's caller id
    passes."""
    pbx_b = _uas(tmp_path, net, "pbx-b", PBX_B, net.ports["pbx-b"])
    uac = _plain_call(tmp_path, net, "flow_uac_trusted.xml", "1000@pbx-a.test", f"{TO_PBX_B}@{DOMAIN}",
                      ip=PBX_A, extra="P-Asserted-Identity: <sip:+31401112222@pbx-a.test>")
    _ok(uac, pbx_b, net=net)
    assert uac.finals() == {("1 INVITE", 200), ("2 BYE", 200)}
    (invite,) = _received(pbx_b)
    assert _ruri(invite) == "sip:sales@pbx-b.test"
    assert _header(invite, "P-Asserted-Identity") == ["<sip:+31401112222@pbx-a.test>"]


# -- 4. emergency ----------------------------------------------------------------------------


def test_emergency_number_reaches_the_callers_region(net, tmp_path):
    north = _uas(tmp_path, net, "sos-north", "127.0.0.1", net.ports["sos-north"])
    south = _uas(tmp_path, net, "sos-south", "127.0.0.1", net.ports["sos-south"])
    _ok(_subscriber_call(tmp_path, net, "alice", "112", name="uac-alice"), north, net=net)
    _ok(_subscriber_call(tmp_path, net, "bob", "112", name="uac-bob"), south, net=net)  # no PSTN access needed
    (to_north,) = _received(north)
    assert _ruri(to_north) == f"sip:sos-north@127.0.0.1:{net.ports['sos-north']}"
    assert _header(to_north, "P-Asserted-Identity") == ["<sip:+31201110001@example.com>"]
    (to_south,) = _received(south)
    assert _ruri(to_south) == f"sip:sos-south@127.0.0.1:{net.ports['sos-south']}"
    assert _header(to_south, "P-Asserted-Identity") == ["<sip:bob@example.com>"]  # no rpid: the SipId


def test_emergency_number_from_a_non_subscriber_is_refused(net, tmp_path):
    assert _refused(tmp_path, net, "stranger@elsewhere.example", f"112@{DOMAIN}") == {
        "403 Emergency Calls Only From Local Subscribers"}
    assert "ICT Calling" not in net.since()


# -- 5. another domain by RFC 3263, with failover -------------------------------------------


def test_foreign_domain_by_srv_fails_over_to_the_second_server(net, tmp_path):
    first = _uas(tmp_path, net, "far-1", FAR_1, net.ports["far-1"], "flow_uas_503.xml")
    second = _uas(tmp_path, net, "far-2", FAR_2, net.ports["far-2"])
    uac = _subscriber_call(tmp_path, net, "alice", "dave", "far.test")
    _ok(uac, first, second, net=net)
    assert uac.finals() == {("1 INVITE", 407), ("2 INVITE", 200), ("3 BYE", 200)}
    assert [_ruri(b) for b in _received(first)] == ["sip:dave@far.test"]
    (invite,) = _received(second)
    assert _ruri(invite) == "sip:dave@far.test"
    assert _header(invite, "P-Asserted-Identity") == ["<sip:+31201110001@example.com>"]


# -- 6. who may not --------------------------------------------------------------------------


def test_untrusted_source_dialling_a_pstn_number_gets_404(net, tmp_path):
    assert _refused(tmp_path, net, "stranger@elsewhere.example", f"{NATIONAL}@{DOMAIN}") == {"404 User Not Found"}
    assert "ICT Calling" not in net.since()


def test_local_from_at_a_trusted_peers_address_is_challenged(net, tmp_path):
    """A subscriber's From sent from PBX A's address is challenged like any subscriber's."""
    answers = _refused(tmp_path, net, f"alice@{DOMAIN}", f"{TO_PBX_B}@{DOMAIN}", ip=PBX_A)
    assert [a.split()[0] for a in answers] == ["407"]
    assert "ICT Calling" not in net.since()


# -- 7. quick dial ---------------------------------------------------------------------------


def test_quick_dial_completes_a_short_number(net, tmp_path):
    port = _register(tmp_path, net, "31208005160")
    phone = _uas(tmp_path, net, "phone", "127.0.0.1", port)
    uac = _subscriber_call(tmp_path, net, "31208005169", "60")
    _ok(uac, phone, net=net)
    (invite,) = _received(phone)
    assert _ruri(invite).startswith(f"sip:31208005160@127.0.0.1:{port}")
    assert "call 31208005169@example.com -> 31208005160@example.com: 200" in net.since()


# -- more of the guide's flows ----------------------------------------------------------------


def test_subscriber_to_pbx_through_enum_asserts_the_caller_id(net, tmp_path):
    """End-Point to PBX: a national number whose ENUM result is PBX B's domain."""
    pbx_b = _uas(tmp_path, net, "pbx-b", PBX_B, net.ports["pbx-b"])
    uac = _subscriber_call(tmp_path, net, "alice", "0301234567")
    _ok(uac, pbx_b, net=net)
    (invite,) = _received(pbx_b)
    assert _ruri(invite) == "sip:sales@pbx-b.test"
    assert _header(invite, "P-Asserted-Identity") == ["<sip:+31201110001@example.com>"]


def test_subscriber_to_subscriber_through_enum(net, tmp_path):
    """End-Point to End-Point by ENUM: bob (no PSTN access) dials dave's number."""
    port = _register(tmp_path, net, "dave")
    phone = _uas(tmp_path, net, "dave", "127.0.0.1", port)
    uac = _subscriber_call(tmp_path, net, "bob", TO_DAVE)
    _ok(uac, phone, net=net)
    (invite,) = _received(phone)
    assert _ruri(invite).startswith(f"sip:dave@127.0.0.1:{port}")


def test_emergency_number_mapped_to_a_pstn_number(net, tmp_path):
    """erin's region has no mapping: the default region's, a national number, goes to the
    PSTN through LCR (no PSTN access needed)."""
    first = _uas(tmp_path, net, "gw1", GW_FIRST, net.ports["gw-first"], "flow_uas_503.xml")
    second = _uas(tmp_path, net, "gw2", GW_SECOND, net.ports["gw-second"])
    uac = _subscriber_call(tmp_path, net, "erin", "112")
    _ok(uac, first, second, net=net)
    (invite,) = _received(second)
    assert _ruri(invite) == f"sip:9931201112112@{GW_SECOND}:{net.ports['gw-second']}"


def test_trusted_pbx_without_transit_is_refused_the_pstn_and_other_domains(net, tmp_path):
    assert _refused(tmp_path, net, "1000@pbx-a.test", f"{NATIONAL}@{DOMAIN}", ip=PBX_A,
                    name="pstn") == {"403 PSTN Transit Not Allowed"}
    assert _refused(tmp_path, net, "1000@pbx-a.test", "dave@far.test", ip=PBX_A,
                    name="relay") == {"403 Relaying Denied"}
    assert "ICT Calling" not in net.since()


def test_trusted_pbx_with_transit_reaches_the_pstn_with_its_caller_id(net, tmp_path):
    """PBX to PSTN: a number ENUM does not know, from a peer allowed transit, goes through
    LCR; the peer's caller id is kept, none is asserted for it."""
    first = _uas(tmp_path, net, "gw1", GW_FIRST, net.ports["gw-first"], "flow_uas_503.xml")
    second = _uas(tmp_path, net, "gw2", GW_SECOND, net.ports["gw-second"])
    uac = _plain_call(tmp_path, net, "flow_uac_trusted.xml", "2000@pbx-t.test", f"0031201234567@{DOMAIN}",
                      ip=PBX_T, extra="P-Asserted-Identity: <sip:+31402223333@pbx-t.test>")
    _ok(uac, first, second, net=net)
    (invite,) = _received(second)
    assert _ruri(invite) == f"sip:9931201234567@{GW_SECOND}:{net.ports['gw-second']}"
    assert _header(invite, "P-Asserted-Identity") == ["<sip:+31402223333@pbx-t.test>"]


def test_subscriber_dials_a_tel_uri(net, tmp_path):
    """INVITE tel:0201234567: the number goes the same way as a SIP URI's."""
    first = _uas(tmp_path, net, "gw1", GW_FIRST, net.ports["gw-first"], "flow_uas_503.xml")
    second = _uas(tmp_path, net, "gw2", GW_SECOND, net.ports["gw-second"])
    uac = _subscriber_call(tmp_path, net, "alice", "", uri=f"tel:{NATIONAL}")
    _ok(uac, first, second, net=net)
    (invite,) = _received(second)
    assert _ruri(invite) == f"sip:9931201234567@{GW_SECOND}:{net.ports['gw-second']}"
    assert _header(invite, "P-Asserted-Identity") == ["<sip:+31201110001@example.com>"]


def test_foreign_domain_naptr_chooses_tcp(net, tmp_path):
    """RFC 3263 4.1: tcp.test's NAPTR record offers SIP over TCP only: the call goes over TCP
    to its SRV target (the caller on UDP)."""
    server = _uas(tmp_path, net, "tcp-server", TCP_SERVER, net.ports["tcp"], transport="t1")
    uac = _subscriber_call(tmp_path, net, "alice", "erik", "tcp.test")
    _ok(uac, server, net=net)
    (invite,) = _received(server)
    assert _ruri(invite) == "sip:erik@tcp.test"
    assert _header(invite, "Via")[0].startswith("SIP/2.0/TCP ")


def test_pstn_gateway_provisioned_by_host_name(net, tmp_path):
    """0049 goes to carrier "named", whose gateway is a host name: its address from DNS."""
    gw = _uas(tmp_path, net, "gw-named", GW_NAMED, net.ports["gw-named"])
    uac = _subscriber_call(tmp_path, net, "alice", "0049301234567")
    _ok(uac, gw, net=net)
    (invite,) = _received(gw)
    assert _ruri(invite) == f"sip:0049301234567@gw.carrier.test:{net.ports['gw-named']}"


def test_trusted_pbx_routes_of_its_originator(net, tmp_path):
    """PBX T's originator has a route of its own for 0044 (the default routes have none)."""
    gw = _uas(tmp_path, net, "gw-named", GW_NAMED, net.ports["gw-named"])
    uac = _plain_call(tmp_path, net, "flow_uac_trusted.xml", "2000@pbx-t.test", f"+442071234567@{DOMAIN}",
                      ip=PBX_T)
    _ok(uac, gw, net=net)
    (invite,) = _received(gw)
    assert _ruri(invite) == f"sip:00442071234567@gw.carrier.test:{net.ports['gw-named']}"
    # the default routes have none: a subscriber's call to 0044 finds no gateway
    assert _subscriber_refused(tmp_path, net, "alice", "00442071234567") == "404 No Route To Destination"


def test_caller_id_a_subscriber_sends_is_removed_towards_a_local_user(net, tmp_path):
    port = _register(tmp_path, net, "frank")
    phone = _uas(tmp_path, net, "frank", "127.0.0.1", port)
    uac = _subscriber_call(tmp_path, net, "bob", "frank", extra="P-Asserted-Identity: <sip:boss@example.com>")
    _ok(uac, phone, net=net)
    (invite,) = _received(phone)
    assert not _header(invite, "P-Asserted-Identity")


def test_quick_dial_does_not_take_an_emergency_number(net, tmp_path):
    """31208005170 (quick dial prefix 31208005) dials 112 while 31208005112 is an account:
    the emergency call still goes to the region's emergency destination."""
    north = _uas(tmp_path, net, "sos-north", "127.0.0.1", net.ports["sos-north"])
    _ok(_subscriber_call(tmp_path, net, "31208005170", "112"), north, net=net)
    (invite,) = _received(north)
    assert _ruri(invite) == f"sip:sos-north@127.0.0.1:{net.ports['sos-north']}"


def test_caller_cancels_while_the_second_gateway_rings(net, tmp_path):
    """The serial fork is cancelled on the gateway it has reached: the caller's CANCEL goes
    to the second gateway (the first already failed), the caller gets 487."""
    first = _uas(tmp_path, net, "gw1", GW_FIRST, net.ports["gw-first"], "flow_uas_503.xml")
    second = _uas(tmp_path, net, "gw2", GW_SECOND, net.ports["gw-second"], "e2e_uas_ring.xml")
    row = f"alice;{DOMAIN};[authentication username=alice password={ACCOUNTS['alice'][0]}];{NATIONAL};{DOMAIN}"
    uac = Sipp(tmp_path, "uac", "e2e_uac_cancel.xml", net.port, rows=[row])
    _ok(uac, first, second, net=net)
    assert ("2 INVITE", 487) in uac.finals()
    assert len(_received(second, "CANCEL")) == 1 and not _received(first, "CANCEL")


def test_caller_id_as_remote_party_id(platform, tmp_path):
    """``caller_id_header = "rpid"``: a second proxy on the same platform asserts the
    caller id in Remote-Party-ID instead."""
    dns_addr = f"127.0.0.1:{platform.ports['dns']}"
    proxy = ProxyProcess(tmp_path, platform.db_url, sections={"enumdns": {"listen": dns_addr}},
                         dns_servers=[dns_addr], caller_id_header="rpid")
    try:
        net = Platform(proxy, platform.dns, platform.ports, platform.db_url)
        pbx_b = _uas(tmp_path, net, "pbx-b", PBX_B, net.ports["pbx-b"])
        uac = _subscriber_call(tmp_path, net, "alice", "0301234567",
                               extra="Remote-Party-ID: <sip:boss@forged.example>;party=calling")
        _ok(uac, pbx_b, net=net)
        (invite,) = _received(pbx_b)
        assert _header(invite, "Remote-Party-ID") == [
            "<sip:+31201110001@example.com>;party=calling;screen=yes;privacy=off"]
        assert not _header(invite, "P-Asserted-Identity")
    finally:
        proxy.stop()


def test_foreign_domain_nobody_serves_gets_404(net, tmp_path):
    assert _subscriber_refused(tmp_path, net, "alice", "dave", "nowhere.test") == "404 Destination Not Found"
