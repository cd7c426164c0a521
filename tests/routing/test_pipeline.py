"""The routing pipeline's decisions (routing/pipeline.py, routing/outbound.py), without sockets:
who may go where, and where each kind of destination goes."""

from __future__ import annotations

from types import SimpleNamespace

from sipproxy.directory.account import GROUP_PSTN, Account
from sipproxy.directory.routingdata import (
    Carrier,
    Diversion,
    Gateway,
    LcrTable,
    Route,
    Rule,
    TrustedPeer,
)
from sipproxy.routing.decision import RouteRequest, Targets
from sipproxy.routing.pipeline import Router
from sipproxy.sip.addressing import Inbound, Listener, Peer
from sipproxy.sip.parser import Response, parse_message

DOMAIN = "example.com"


def _account(username: str, *, groups=(), rpid: str = "", region: str = "", quickdial: str = "") -> Account:
    return Account(id=1, username=username, domain=DOMAIN, ha1="", ha1b="", ha1_sha256="",
                   groups=frozenset(groups), rpid=rpid, region=region, quickdial_prefix=quickdial)


class Directory:
    accounts = {"alice", "bob", "31208005160", "psap-north", "offline", "loop1", "loop2"}

    def is_local_domain(self, domain: str) -> bool:
        return domain.lower() == DOMAIN

    aliases = {"sales": "alice", "desk": "sales", "loopa": "loopb", "loopb": "loopa"}

    def alias(self, user, domain):  # noqa: ANN001, ANN201
        target = self.aliases.get(user)
        return (target, DOMAIN) if target else None

    def account(self, user, domain):  # noqa: ANN001, ANN201
        return _account(user) if user in self.accounts and domain == DOMAIN else None


class Location:
    def lookup(self, user, domain):  # noqa: ANN001, ANN201
        if user == "offline":
            return []
        return [SimpleNamespace(contact=f"sip:{user}@192.0.2.50:5062", path=(), received="",
                                behind_nat=False)]


class Edge:
    def is_me(self, host, port):  # noqa: ANN001, ANN201
        return host == "127.0.0.1"

    def resolve(self, uri):  # noqa: ANN001, ANN201
        return Peer("udp", uri.host, uri.port or 5060)

    def connected(self, peer):  # noqa: ANN001, ANN201
        return False


class Resolver:
    """ENUM: +31201234567 -> alice here, +31207654321 -> a PBX elsewhere; RFC 3263: two servers."""

    def enum(self, e164: str) -> list[str]:
        return {"+31201234567": ["sip:alice@example.com"],
                "+31207654321": ["sip:info@pbx.example.net"]}.get(e164, [])

    def locate(self, uri):  # noqa: ANN001, ANN201
        return [Peer("udp", "198.51.100.1", 5060), Peer("tcp", "198.51.100.2", 5060)]

    def address(self, host: str) -> list[str]:
        return ["203.0.113.9"] if host == "gw.carrier.example" else []


GW1 = Gateway(1, "gw1", 1, "udp", "192.0.2.101", 5060, (Rule(1, "0031", strip=4, prepend="0"),))
GW2 = Gateway(2, "gw2", 1, "udp", "gw.carrier.example", 5070)
GW3 = Gateway(3, "gw3", 2, "tcp", "192.0.2.103", 5060)
LCR = LcrTable.build([
    Route(1, "0031", "", 10, Carrier(1, "first", (GW1, GW2))),
    Route(2, "0031", "", 20, Carrier(2, "second", (GW3,))),
])


class Data:
    peers = {"192.0.2.200": TrustedPeer("192.0.2.200", transit=True, originator=""),
             "192.0.2.201": TrustedPeer("192.0.2.201"),
             "192.0.2.202": TrustedPeer("192.0.2.202", blocked=True),
             "192.0.2.203": TrustedPeer("192.0.2.203", strip=2, prefix="+31")}

    def trusted_peer(self, ip):  # noqa: ANN001, ANN201
        return self.peers.get(ip)

    def lcr(self) -> LcrTable:
        return LCR

    divert = {("alice", DOMAIN): (Diversion("FBUS", "sip:bob@example.com"),),
              ("offline", DOMAIN): (Diversion("FNOL", "sip:0209999999@example.com"),),
              ("loop1", DOMAIN): (Diversion("FUNC", "sip:loop2@example.com"),),
              ("loop2", DOMAIN): (Diversion("FUNC", "sip:loop1@example.com"),)}

    def diversions(self, username, domain):  # noqa: ANN001, ANN201
        return self.divert.get((username, domain), ())

    def emergency(self, region, number):  # noqa: ANN001, ANN201
        return {("north", "112"): "sip:psap-north@example.com",
                ("south", "112"): "+31900112112"}.get((region, number))


def _router() -> Router:
    return Router(Directory(), Location(), Edge(), data=Data(), resolver=Resolver(),
                  emergency_numbers=("112", "911"), outgoing_timeout=45.0)


def _call(uri: str, *, account: Account | None = None, source: str = "198.51.100.7") -> RouteRequest:
    req = parse_message((f"INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {source};branch=z9hG4bKp1\r\n"
                         "From: <sip:x@elsewhere.example>;tag=f\r\nTo: <sip:y@example.com>\r\n"
                         "Call-ID: pipeline@x\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
                         "Content-Length: 0\r\n\r\n").encode())
    router = _router()
    call = RouteRequest(req, Inbound(b"", Peer("udp", source, 5060), Listener("udp", "127.0.0.1", 5060)),
                        account, True)
    call.trusted, call.gateway = router.trusted_source(source)
    return call


def _route(call: RouteRequest) -> Response | Targets:
    return _router().route(call)


def _status(out: Response | Targets) -> tuple[int, str]:
    assert isinstance(out, Response), out
    return out.status, out.reason


def test_trusted_sources_are_peers_gateways_or_nobody():
    router = _router()
    assert router.trusted_source("192.0.2.200")[0].transit and router.trusted_source("192.0.2.200")[1] is False
    assert router.trusted_source("192.0.2.101") == ("192.0.2.101", True)  # an LCR gateway
    assert router.trusted_source("203.0.113.9") == ("203.0.113.9", True)  # gw.carrier.example
    assert router.trusted_source("192.0.2.202") == (None, False)  # a blocked peer is nobody
    assert router.trusted_source("198.51.100.7") == (None, False)


def test_a_local_user_an_alias_and_quick_dial():
    out = _route(_call("sip:sales@example.com"))
    assert isinstance(out, Targets) and out.callee == "alice@example.com" and not out.serial
    caller = _account("31208005169", quickdial="312080051")
    call = _call("sip:60@example.com", account=caller)
    out = _route(call)
    assert isinstance(out, Targets) and out.callee == "31208005160@example.com"
    assert str(call.request.uri) == "sip:31208005160@example.com"


def test_a_number_nobody_has_goes_through_enum():
    for dialled in ("0201234567", "0031201234567", "%2B31201234567"):
        call = _call(f"sip:{dialled}@example.com")
        out = _route(call)
        assert isinstance(out, Targets) and out.callee == "alice@example.com", dialled


def test_a_non_local_enum_result_is_for_subscribers_and_peers_not_for_strangers():
    subscriber = _account("bob")
    out = _route(_call("sip:0207654321@example.com", account=subscriber))
    assert isinstance(out, Targets) and out.serial and out.callee == "info@pbx.example.net"
    assert [t.dest for t in out.targets] == Resolver().locate(None)
    pbx = _route(_call("sip:0207654321@example.com", source="192.0.2.201"))  # a PBX, no transit
    assert isinstance(pbx, Targets) and pbx.callee == "info@pbx.example.net"
    assert _status(_route(_call("sip:0207654321@example.com"))) == (403, "Relaying Denied")
    # from a PSTN gateway: only local results
    assert _status(_route(_call("sip:0207654321@example.com", source="192.0.2.101"))) == (403, "Invalid Destination")
    assert _status(_route(_call("sip:0209999999@example.com", source="192.0.2.101"))) == (404, "User Not Found")


def test_the_pstn_through_lcr_in_failover_order_with_the_callers_id():
    caller = _account("bob", groups=(GROUP_PSTN,), rpid="31201112222")
    out = _route(_call("sip:0209999999@example.com", account=caller))
    assert isinstance(out, Targets) and out.serial and out.callee == "+31209999999"
    assert [(t.dest, str(t.uri)) for t in out.targets] == [
        (Peer("udp", "192.0.2.101", 5060), "sip:0209999999@192.0.2.101:5060"),  # rule: 0031 -> 0
        (Peer("udp", "203.0.113.9", 5070), "sip:0031209999999@gw.carrier.example:5070"),
        (Peer("tcp", "192.0.2.103", 5060), "sip:0031209999999@192.0.2.103:5060;transport=tcp"),
    ]
    assert out.headers == (("P-Asserted-Identity", "<sip:31201112222@example.com>"),)
    assert out.ring_timeout == 45.0


def test_who_may_go_to_the_pstn():
    number = "sip:0209999999@example.com"
    assert _status(_route(_call(number, account=_account("bob")))) == (403, "No PSTN Access")
    assert _status(_route(_call(number))) == (404, "User Not Found")  # a stranger
    assert _status(_route(_call(number, source="192.0.2.201"))) == (403, "PSTN Transit Not Allowed")
    transit = _route(_call(number, source="192.0.2.200"))
    assert isinstance(transit, Targets) and transit.serial and transit.headers == ()
    assert _status(_route(_call("sip:0209999999@example.com", account=_account(
        "carol", groups=(GROUP_PSTN, "blocked"))))) == (403, "Account Blocked")


def test_emergency_numbers_by_region():
    north = _call("sip:112@example.com", account=_account("n", region="north"))
    out = _route(north)
    assert isinstance(out, Targets) and out.callee == "psap-north@example.com"
    south = _route(_call("sip:112@example.com", account=_account("s", region="south")))
    assert isinstance(south, Targets) and south.serial and south.callee == "+31900112112"  # via LCR
    # no PSTN access needed for an emergency call; a stranger is refused
    assert _status(_route(_call("sip:112@example.com"))) == (403, "Emergency Calls Only From Local Subscribers")
    assert _status(_route(_call("sip:911@example.com", account=_account("w", region="west"))))[0] == 404


def test_other_domains_for_subscribers_and_transit_peers_only():
    out = _route(_call("sip:carol@elsewhere.example", account=_account("bob")))
    assert isinstance(out, Targets) and out.serial and len(out.targets) == 2
    assert out.headers == (("P-Asserted-Identity", "<sip:bob@example.com>"),)
    assert _status(_route(_call("sip:carol@elsewhere.example"))) == (403, "Relaying Denied")
    assert _status(_route(_call("sip:carol@elsewhere.example", source="192.0.2.201")))[0] == 403
    assert isinstance(_route(_call("sip:carol@elsewhere.example", source="192.0.2.200")), Targets)


def test_caller_id_header_can_be_remote_party_id():
    router = Router(Directory(), Location(), Edge(), data=Data(), resolver=Resolver(), caller_id_header="rpid")
    out = router.route(_call("sip:carol@elsewhere.example", account=_account("bob")))
    assert out.headers == (("Remote-Party-ID", "<sip:bob@example.com>;party=calling;screen=yes;privacy=off"),)


def test_diversion_before_the_fork_unconditional_and_not_online():
    call = _call("sip:loop1@example.com")
    out = _route(call)  # loop1 -> loop2 -> (loop1 again: a loop, not diverted) loop2's phones
    assert isinstance(out, Targets) and out.callee == "loop2@example.com"
    assert call.request.headers.getall("diversion") == ["<sip:loop1@example.com>;reason=unconditional;counter=1"]
    # not online, to a number: the PSTN through LCR, paid by the diverting account -- which
    # has no PSTN access here, so no diversion and the caller gets 480
    assert _status(_route(_call("sip:offline@example.com"))) == (480, "Temporarily Unavailable")


def test_diversion_after_the_fork_when_busy():
    call = _call("sip:alice@example.com")
    out = _route(call)
    assert isinstance(out, Targets) and out.after is not None
    diverted = out.after([486], False)  # busy everywhere: diverted
    assert isinstance(diverted, Targets) and diverted.callee == "bob@example.com"
    assert diverted.billing_party == "alice@example.com"  # the diverting account pays
    assert str(call.request.uri) == "sip:bob@example.com"
    assert call.request.headers.getall("diversion") == ["<sip:alice@example.com>;reason=user-busy;counter=1"]
    other = _call("sip:alice@example.com")
    assert _route(other).after([603], False) is None  # declined: no diversion
    assert str(other.request.uri) == "sip:alice@example.com"


def test_a_trusted_peers_strip_and_prefix_make_its_numbers_routable():
    call = _call("sip:99201234567@example.com", source="192.0.2.203")  # the PBX's "99" + national
    out = _route(call)
    assert isinstance(out, Targets) and out.callee == "alice@example.com"  # +31201234567 by ENUM


def test_aliases_are_followed_through_any_depth_and_a_loop_is_refused():
    out = _route(_call("sip:desk@example.com"))  # desk -> sales -> alice
    assert isinstance(out, Targets) and out.callee == "alice@example.com"
    assert _status(_route(_call("sip:loopa@example.com"))) == (404, "Alias Loop")


def test_privacy_id_keeps_the_asserted_identity_inside_the_trust_domain():
    """RFC 3325: the PSTN gateways are ours and get the identity (they withhold it); another
    domain does not when the caller asked for Privacy: id."""
    caller = _account("bob", groups=(GROUP_PSTN,))
    pstn = _call("sip:0209999999@example.com", account=caller)
    pstn.request.headers.add("Privacy", "id")
    assert _route(pstn).headers == (("P-Asserted-Identity", "<sip:bob@example.com>"),)
    out = _call("sip:carol@elsewhere.example", account=caller)
    out.request.headers.add("Privacy", "id")
    assert _route(out).headers == ()


def test_the_result_names_the_guides_flow_and_the_billing_party():
    flows = {}
    for name, call in (
        ("endpoint-to-endpoint", _call("sip:alice@example.com", account=_account("bob"))),
        ("endpoint-to-pstn", _call("sip:0209999999@example.com", account=_account("bob", groups=(GROUP_PSTN,)))),
        ("endpoint-to-peer", _call("sip:0207654321@example.com", account=_account("bob"))),
        ("pstn-to-endpoint", _call("sip:0201234567@example.com", source="192.0.2.101")),
        ("pbx-to-pstn", _call("sip:0209999999@example.com", source="192.0.2.200")),
    ):
        router = _router()
        router.route(call)
        flows[name] = (call.flow, call.billing_party)
    assert flows == {
        "endpoint-to-endpoint": ("endpoint-to-endpoint", "bob@example.com"),
        "endpoint-to-pstn": ("endpoint-to-pstn", "bob@example.com"),
        "endpoint-to-peer": ("endpoint-to-peer", "bob@example.com"),
        "pstn-to-endpoint": ("pstn-to-endpoint", "192.0.2.101"),
        "pbx-to-pstn": ("pbx-to-pstn", "192.0.2.200"),
    }
