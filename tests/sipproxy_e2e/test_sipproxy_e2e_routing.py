"""Route processing (RFC 3261 16.4, 16.6 step 6) and response selection (16.7), without sockets."""

from __future__ import annotations

from types import SimpleNamespace

from sipproxy.proxy.context import best_response
from sipproxy.proxy.nat import sender_behind_nat
from sipproxy.proxy.proxy import Proxy
from sipproxy.routing.pipeline import Router
from sipproxy.runtime.edge import Core
from sipproxy.sip.parser import Response, parse_message
from sipproxy.sip.routeset import apply_route_set


class Directory:
    def is_local_domain(self, domain: str) -> bool:
        return domain.lower() == "example.com"


def _wire(core: Core, dialogs: object = None) -> Proxy:
    """A proxy on ``core`` as sipproxy.app wires one (no registrar, no location)."""
    proxy = Proxy(core, Directory(), SimpleNamespace(authenticator=None), dialogs,
                  Router(Directory(), None, core))
    core.tu = proxy
    return proxy


def _proxy() -> Proxy:
    return _wire(Core(["udp:127.0.0.1:5070", "tcp:127.0.0.1:5070"]))


def _req(uri: str, routes: list[str], to_tag: str = ";tag=b", body: str = "") -> object:
    route_lines = "".join(f"Route: {r}\r\n" for r in routes)
    return parse_message((
        f"BYE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx\r\n"
        f"From: <sip:a@example.com>;tag=a\r\nTo: <sip:b@example.com>{to_tag}\r\nCall-ID: c\r\n"
        f"CSeq: 2 BYE\r\n{route_lines}Max-Forwards: 70\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    ).encode())


def test_our_routes_are_removed_double_record_route_too():
    p = _proxy()
    req = _req("sip:b@192.0.2.9", ["<sip:127.0.0.1:5070;transport=tcp;lr>", "<sip:127.0.0.1:5070;lr>",
                                   "<sip:next.example;lr>"])
    assert p._preprocess_routes(req)
    assert req.headers.getall("route") == ["<sip:next.example;lr>"]


def test_request_uri_from_a_strict_router_is_restored():
    p = _proxy()
    req = _req("sip:127.0.0.1:5070", ["<sip:hop.example;lr>", "<sip:b@192.0.2.9:5062>"])
    assert p._preprocess_routes(req)
    assert str(req.uri) == "sip:b@192.0.2.9:5062"
    assert req.headers.getall("route") == ["<sip:hop.example;lr>"]


def test_sending_to_a_strict_router():
    req = _req("sip:b@192.0.2.9", ["<sip:strict.example>", "<sip:after.example;lr>"])
    first = apply_route_set(req)
    assert str(first) == "sip:strict.example" and str(req.uri) == "sip:strict.example"
    assert req.headers.getall("route") == ["<sip:after.example;lr>", "<sip:b@192.0.2.9>"]


def test_loose_next_hop_keeps_request_uri():
    req = _req("sip:b@192.0.2.9", ["<sip:loose.example;lr>"])
    assert str(apply_route_set(req)) == "sip:loose.example;lr"
    assert str(req.uri) == "sip:b@192.0.2.9"
    assert req.headers.getall("route") == ["<sip:loose.example;lr>"]


def test_best_response():
    def r(status: int, auth: str = "") -> Response:
        resp = Response(status)
        if auth:
            resp.headers.add("Proxy-Authenticate", auth)
        return resp

    assert best_response([r(486), r(603), r(404)]).status == 603  # a 6xx wins
    assert best_response([r(503), r(486)]).status == 486  # lowest class
    assert best_response([r(503), r(504)]).status == 500  # 503 is never forwarded as such
    merged = best_response([r(407, 'Digest realm="a"'), r(407, 'Digest realm="b"'), r(480)])
    assert merged.status == 407 and len(merged.headers.getall("proxy-authenticate")) == 2


def test_nat_test_of_the_media_policy():
    plain = _req("sip:b@example.com", [], to_tag="")
    assert not sender_behind_nat(plain)
    natted = _req("sip:b@example.com", [], to_tag="")
    natted.headers.replace_first("via", "SIP/2.0/UDP 192.168.1.2:5060;branch=z9hG4bKx;received=198.51.100.7;rport=40000")
    assert sender_behind_nat(natted)
    private_sdp = _req("sip:b@example.com", [], to_tag="", body="v=0\r\nc=IN IP4 10.1.2.3\r\n")
    assert sender_behind_nat(private_sdp)


def test_finished_transactions_unlink_context_and_branches():
    """A proxied request's server transaction, context, branches and client transactions
    point at each other; once the transactions are over the links are cut, so the call's
    messages are freed by reference counting instead of waiting for the cyclic GC."""
    from sipproxy.sip.addressing import Inbound, Peer
    from sipproxy.sip.transaction import Timers

    core = Core(["udp:127.0.0.1:5070"], timers=Timers(t1=0.01, t2=0.04, t4=0.05, d=0.05))
    sent = []
    core.transports.send = lambda data, dest, connection=None, listener=None: sent.append((data, dest)) or True
    p = _wire(core, SimpleNamespace(ended=lambda *args, **kw: None, removed=lambda *args: None, refreshed=lambda *args: None))
    lst = core.transports.listeners[0]
    try:
        core.on_inbound(Inbound(_req("sip:b@192.0.2.9", ["<sip:127.0.0.1:5070;lr>"]).to_bytes(),
                                Peer("udp", "192.0.2.1", 5060), lst))
        (server,) = core.layer.server.values()
        (client,) = core.layer.client.values()
        ctx, branch = server.user_data, client.user_data
        assert ctx.branches == [branch] and branch.ctx is ctx and branch.txn is client
        fwd = parse_message(sent[-1][0])
        vias = "".join(f"Via: {v}\r\n" for v in fwd.headers.getall("via"))
        core.on_inbound(Inbound((
            f"SIP/2.0 200 OK\r\n{vias}From: <sip:a@example.com>;tag=a\r\nTo: <sip:b@example.com>;tag=b\r\n"
            "Call-ID: c\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n").encode(),
            Peer("udp", "192.0.2.9", 5060), lst))
        assert parse_message(sent[-1][0]).status == 200 and sent[-1][1] == Peer("udp", "192.0.2.1", 5060)
        # answered and every branch final: let go at once, though both linger for Timer J/K
        assert server.state == client.state == "Completed"
        assert server.user_data is None and client.user_data is None and ctx.branches == []
        assert server.request is None and server.last_response is None and client.request is None
        for txn in (server, client):  # Timers J and K: both transactions end
            for timer in list(txn.timers.values()):
                core.execute(core.layer.timer_fired(timer))
        assert server.terminated and client.terminated and not len(core.layer)
        assert server.user_data is None and client.user_data is None
        assert ctx.branches == [] and branch.ctx is None and branch.txn is None
        assert p is core.tu
    finally:
        core.stop()


def test_2xx_retransmission_after_the_context_is_let_go_still_reaches_the_caller():
    """A re-INVITE's 200 settles its context at once; the callee's retransmitted 200
    (RFC 6026: the client transaction lingers in Accepted) is relayed along the Via."""
    from sipproxy.sip.addressing import Inbound, Peer

    core = Core(["udp:127.0.0.1:5070"])
    sent = []
    core.transports.send = lambda data, dest, connection=None, listener=None: sent.append((data, dest)) or True
    p = _wire(core, SimpleNamespace(ended=lambda *args, **kw: None, removed=lambda *args: None, refreshed=lambda *args: None))
    lst = core.transports.listeners[0]
    reinvite = _req("sip:b@192.0.2.9", ["<sip:127.0.0.1:5070;lr>"]).to_bytes()
    reinvite = reinvite.replace(b"BYE sip:", b"INVITE sip:").replace(b"2 BYE", b"2 INVITE")
    core.on_inbound(Inbound(reinvite, Peer("udp", "192.0.2.1", 5060), lst))
    (server,) = core.layer.server.values()
    (client,) = core.layer.client.values()
    (fwd, dest), = [(parse_message(d), to) for d, to in sent if d.startswith(b"INVITE ")]
    assert dest == Peer("udp", "192.0.2.9", 5060)
    vias = "".join(f"Via: {v}\r\n" for v in fwd.headers.getall("via"))
    ok = (f"SIP/2.0 200 OK\r\n{vias}From: <sip:a@example.com>;tag=a\r\nTo: <sip:b@example.com>;tag=b\r\n"
          "Call-ID: c\r\nCSeq: 2 INVITE\r\nContact: <sip:b@192.0.2.9>\r\nContent-Length: 0\r\n\r\n").encode()
    core.on_inbound(Inbound(ok, Peer("udp", "192.0.2.9", 5060), lst))
    assert server.state == client.state == "Accepted" and p.responses is not None
    assert server.user_data is None and client.user_data is None
    before = len(sent)
    core.on_inbound(Inbound(ok, Peer("udp", "192.0.2.9", 5060), lst))  # retransmitted
    assert len(sent) == before + 1
    again = parse_message(sent[-1][0])
    assert again.status == 200 and sent[-1][1] == Peer("udp", "192.0.2.1", 5060)
    assert len(again.vias) == 1 and again.vias[0].branch == "z9hG4bKx"


def _serial_proxy(targets):
    """A proxy whose routing answers ``targets`` as a serial fork (gateways of LCR)."""
    from sipproxy.routing.pipeline import Targets

    core = Core(["udp:127.0.0.1:5070"])
    sent = []
    core.transports.send = lambda data, dest, connection=None, listener=None: sent.append((data, dest)) or True
    router = SimpleNamespace(preprocess_request=lambda call: None, trusted_source=lambda ip: (None, False),
                             is_local=lambda uri: uri.host == "example.com",
                             route=lambda call: Targets(targets, "gw", serial=True))
    proxy = Proxy(core, Directory(), SimpleNamespace(authenticator=None), None, router)
    core.tu = proxy
    return core, sent


def _invite_from_outside() -> bytes:
    return (b"INVITE sip:+31201234567@example.com SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKserial1\r\n"
            b"From: <sip:carol@elsewhere.example>;tag=c\r\nTo: <sip:+31201234567@example.com>\r\n"
            b"Call-ID: serial@x\r\nCSeq: 1 INVITE\r\nContact: <sip:carol@192.0.2.1>\r\n"
            b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")


def _answer(request: bytes, status: int, reason: str) -> bytes:
    fwd = parse_message(request)
    vias = "".join(f"Via: {v}\r\n" for v in fwd.headers.getall("via"))
    return (f"SIP/2.0 {status} {reason}\r\n{vias}From: {fwd.headers.get('from')}\r\n"
            f"To: {fwd.headers.get('to')};tag=gw\r\nCall-ID: serial@x\r\nCSeq: 1 INVITE\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def test_serial_fork_fails_over_on_5xx_and_stops_at_the_first_answer():
    from sipproxy.routing.pipeline import Target
    from sipproxy.sip.addressing import Inbound, Peer
    from sipproxy.sip.uri import parse_uri

    gw1, gw2, gw3 = (Peer("udp", f"192.0.2.{n}", 5060) for n in (11, 12, 13))
    targets = [Target(parse_uri(f"sip:0031201234567@{gw.host}"), gw, ()) for gw in (gw1, gw2, gw3)]
    core, sent = _serial_proxy(targets)
    lst = core.transports.listeners[0]
    caller = Peer("udp", "192.0.2.1", 5060)
    try:
        core.on_inbound(Inbound(_invite_from_outside(), caller, lst))
        invites = [(d, to) for d, to in sent if d.startswith(b"INVITE ")]
        assert [to for _, to in invites] == [gw1]  # one at a time
        core.on_inbound(Inbound(_answer(invites[0][0], 503, "Service Unavailable"), gw1, lst))
        invites = [(d, to) for d, to in sent if d.startswith(b"INVITE ")]
        assert [to for _, to in invites] == [gw1, gw2]  # the 503 made it try the next
        assert not any(parse_message(d).status == 503 for d, to in sent if to == caller and d.startswith(b"SIP/"))
        core.on_inbound(Inbound(_answer(invites[1][0], 486, "Busy Here"), gw2, lst))
        invites = [to for d, to in sent if d.startswith(b"INVITE ")]
        assert invites == [gw1, gw2]  # a 486 is an answer, not a failure: gw3 is not tried
        finals = [parse_message(d).status for d, to in sent if to == caller and d.startswith(b"SIP/")
                  and parse_message(d).status >= 200]
        assert finals == [486]
    finally:
        core.stop()


def test_serial_fork_answers_the_best_failure_when_every_target_failed():
    from sipproxy.routing.pipeline import Target
    from sipproxy.sip.addressing import Inbound, Peer
    from sipproxy.sip.uri import parse_uri

    gw1, gw2 = Peer("udp", "192.0.2.11", 5060), Peer("udp", "192.0.2.12", 5060)
    core, sent = _serial_proxy([Target(parse_uri(f"sip:1@{gw.host}"), gw, ()) for gw in (gw1, gw2)])
    lst = core.transports.listeners[0]
    caller = Peer("udp", "192.0.2.1", 5060)
    try:
        core.on_inbound(Inbound(_invite_from_outside(), caller, lst))
        for gw, status, reason in ((gw1, 500, "Server Error"), (gw2, 503, "Service Unavailable")):
            last = [d for d, to in sent if d.startswith(b"INVITE ") and to == gw][-1]
            core.on_inbound(Inbound(_answer(last, status, reason), gw, lst))
        finals = [parse_message(d).status for d, to in sent if to == caller and d.startswith(b"SIP/")
                  and parse_message(d).status >= 200]
        assert finals == [500]  # both failed: the best of them (16.7 step 6)
    finally:
        core.stop()


def test_a_busy_callee_diverts_after_the_fork_and_the_call_completes_there():
    """Call diversion on busy (routing's ``after``): alice's phone answers 486, the proxy
    forwards the same call to bob with a Diversion header, and bob's 200 reaches the caller."""
    from sipproxy.routing.pipeline import Router
    from sipproxy.sip.addressing import Inbound, Peer
    from tests.routing.test_pipeline import Data, Location
    from tests.routing.test_pipeline import Directory as Accounts

    core = Core(["udp:127.0.0.1:5070"])
    sent = []
    core.transports.send = lambda data, dest, connection=None, listener=None: sent.append((data, dest)) or True
    router = Router(Accounts(), Location(), core, data=Data())
    dialogs = SimpleNamespace(confirmed=lambda info: None, ended=lambda *args, **kw: None, removed=lambda *args: None,
                              refreshed=lambda *args: None, early=lambda *args: None, ringing=lambda *args: None,
                              failed=lambda *args: None, answered=lambda *args: None)
    core.tu = Proxy(core, Accounts(), SimpleNamespace(authenticator=None), dialogs, router)
    lst = core.transports.listeners[0]
    caller, phone = Peer("udp", "192.0.2.1", 5060), Peer("udp", "192.0.2.50", 5062)
    invite = _invite_from_outside().replace(b"sip:+31201234567@example.com", b"sip:alice@example.com")
    try:
        core.on_inbound(Inbound(invite, caller, lst))
        (first,) = [d for d, to in sent if d.startswith(b"INVITE ") and to == phone]
        assert first.startswith(b"INVITE sip:alice@192.0.2.50:5062 ")
        core.on_inbound(Inbound(_answer(first, 486, "Busy Here"), phone, lst))
        invites = [parse_message(d) for d, to in sent if d.startswith(b"INVITE ") and to == phone]
        assert len(invites) == 2 and str(invites[1].uri) == "sip:bob@192.0.2.50:5062"
        assert invites[1].headers.getall("diversion") == ["<sip:alice@example.com>;reason=user-busy;counter=1"]
        core.on_inbound(Inbound(_answer(invites[1].to_bytes(), 200, "OK"), phone, lst))
        finals = [parse_message(d).status for d, to in sent if to == caller and d.startswith(b"SIP/")
                  and parse_message(d).status >= 200]
        assert finals == [200]  # the 486 was not passed on
    finally:
        core.stop()


def test_message_follows_the_invite_routing_to_aliases_and_enum():
    """SIP MESSAGE (page mode, RFC 3428) takes the same routing as INVITE: an alias and an
    E.164 number (ENUM) both reach alice's registered contact; no Record-Route (no dialog)."""
    from sipproxy.routing.pipeline import Router
    from sipproxy.sip.addressing import Inbound, Peer
    from tests.routing.test_pipeline import Data, Location, Resolver
    from tests.routing.test_pipeline import Directory as Accounts

    core = Core(["udp:127.0.0.1:5070"])
    sent = []
    core.transports.send = lambda data, dest, connection=None, listener=None: sent.append((data, dest)) or True
    router = Router(Accounts(), Location(), core, data=Data(), resolver=Resolver())
    core.tu = Proxy(core, Accounts(), SimpleNamespace(authenticator=None), None, router)
    lst = core.transports.listeners[0]
    phone = Peer("udp", "192.0.2.50", 5062)
    try:
        for n, uri in enumerate(("sip:sales@example.com", "sip:0201234567@example.com")):
            message = (f"MESSAGE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKm{n}\r\n"
                       f"From: <sip:carol@elsewhere.example>;tag=m\r\nTo: <{uri}>\r\n"
                       f"Call-ID: message{n}@x\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n"
                       "Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi").encode()
            core.on_inbound(Inbound(message, Peer("udp", "192.0.2.1", 5060), lst))
            forwarded = [parse_message(d) for d, to in sent if d.startswith(b"MESSAGE ") and to == phone]
            assert len(forwarded) == n + 1
            assert str(forwarded[-1].uri) == "sip:alice@192.0.2.50:5062" and forwarded[-1].body == b"hi"
            assert not forwarded[-1].headers.getall("record-route")
    finally:
        core.stop()


def test_a_silent_serial_target_is_given_up_after_the_failover_timeout():
    """A gateway that sends nothing at all (not even 100) is counted as a 408 after
    ``failover_timeout`` and the next one is tried at once; a 180 it sends later is CANCELled."""
    from sipproxy.routing.pipeline import Target
    from sipproxy.sip.addressing import Inbound, Peer
    from sipproxy.sip.uri import parse_uri

    gw1, gw2 = Peer("udp", "192.0.2.11", 5060), Peer("udp", "192.0.2.12", 5060)
    core, sent = _serial_proxy([Target(parse_uri(f"sip:1@{gw.host}"), gw, ()) for gw in (gw1, gw2)])
    timers = []
    core.call_later = lambda delay, fn, *args: timers.append((delay, fn, args))
    core.tu.failover_timeout = 5.0
    lst = core.transports.listeners[0]
    try:
        core.on_inbound(Inbound(_invite_from_outside(), Peer("udp", "192.0.2.1", 5060), lst))
        assert [to for d, to in sent if d.startswith(b"INVITE ")] == [gw1]
        delay, fn, args = next(t for t in timers if t[0] == 5.0)
        fn(*args)  # the failover timeout fires: gw1 never answered
        assert [to for d, to in sent if d.startswith(b"INVITE ")] == [gw1, gw2]
        first = [d for d, to in sent if d.startswith(b"INVITE ") and to == gw1][0]
        core.on_inbound(Inbound(_answer(first, 180, "Ringing"), gw1, lst))
        assert any(d.startswith(b"CANCEL ") and to == gw1 for d, to in sent)  # too late: cancelled
    finally:
        core.stop()


def test_serial_fork_does_not_fail_over_on_a_5xx_about_the_request_itself():
    """501 Not Implemented and 505 say the request is what failed: the next gateway would
    answer the same, so it is not tried (only 408, 500, 502, 503, 504 fail over)."""
    from sipproxy.routing.pipeline import Target
    from sipproxy.sip.addressing import Inbound, Peer
    from sipproxy.sip.uri import parse_uri

    gw1, gw2 = Peer("udp", "192.0.2.11", 5060), Peer("udp", "192.0.2.12", 5060)
    core, sent = _serial_proxy([Target(parse_uri(f"sip:1@{gw.host}"), gw, ()) for gw in (gw1, gw2)])
    lst = core.transports.listeners[0]
    caller = Peer("udp", "192.0.2.1", 5060)
    try:
        core.on_inbound(Inbound(_invite_from_outside(), caller, lst))
        first = [d for d, to in sent if d.startswith(b"INVITE ")][0]
        core.on_inbound(Inbound(_answer(first, 501, "Not Implemented"), gw1, lst))
        assert [to for d, to in sent if d.startswith(b"INVITE ")] == [gw1]
        finals = [parse_message(d).status for d, to in sent if to == caller and d.startswith(b"SIP/")
                  and parse_message(d).status >= 200]
        assert finals == [501]
    finally:
        core.stop()
