"""The relay's decisions without I/O: reservations and routes (RFC 4976 section 7.3), AUTH
answers (section 5), transactions and failure REPORTs, the ACM's routes (RFC 6135)."""

from __future__ import annotations

import hashlib
import json

from mediaproxy.msrp.acm import AcmSessions
from mediaproxy.msrp.auth import Authenticator
from mediaproxy.msrp.forwarding import Forward, Refuse, Reservations
from mediaproxy.msrp.message import Message, make_response
from mediaproxy.msrp.transactions import (
    Pending,
    RecentIds,
    TransactionTable,
    answers_ok,
    failure_report,
)
from mediaproxy.msrp.uri import MsrpUri, parse_uri
from mediaproxy.store import summary_row
from ngnpro.models.digest import DigestAuth, compute_response, parse_auth_params
from sipproxy.accounting.events import media_totals

ALICE = parse_uri("msrps://alice.invalid:7000/a1;tcp")
BOB = parse_uri("msrps://bob.invalid:7001/b1;tcp")
RELAY = parse_uri("msrps://relay.example.com:2855;tcp")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def send(to: list[MsrpUri], frm: list[MsrpUri], **headers: str) -> Message:
    h = [("To-Path", " ".join(map(str, to))), ("From-Path", " ".join(map(str, frm))), ("Message-ID", "m1"),
         ("Byte-Range", "1-3/3")] + [(k.replace("_", "-"), v) for k, v in headers.items()]
    return Message("t0000001", method="SEND", headers=h, body=b"abc")


def test_routes_of_two_clients_on_one_relay() -> None:
    res = Reservations({2855}, {"relay.example.com"})
    a = res.reserve("conn-a", RELAY, ALICE, "alice@example.com", 600)
    b = res.reserve("conn-b", RELAY, BOB, "bob@example.com", 600)
    # alice -> her relay URI -> bob's relay URI -> bob: handled inside, delivered on bob's connection
    route = res.route("conn-a", send([a.uri, b.uri, BOB], [ALICE]))
    assert isinstance(route, Forward) and route.connection == "conn-b" and route.via == a.uri
    assert route.message.get("To-Path") == str(BOB)
    assert route.message.get("From-Path") == f"{b.uri} {a.uri} {ALICE}"
    assert route.message.transaction_id != "t0000001"
    # alice -> her relay URI -> a peer elsewhere: a connection to open
    peer = parse_uri("msrp://192.0.2.7:9000/p;tcp")
    route = res.route("conn-a", send([a.uri, peer], [ALICE]))
    assert isinstance(route, Forward) and route.connection is None and route.next_hop == peer


def test_no_open_relay() -> None:
    res = Reservations({2855}, {"relay.example.com"})
    a = res.reserve("conn-a", RELAY, ALICE, "alice@example.com", 600)
    victim = parse_uri("msrp://192.0.2.66:25/x;tcp")
    assert res.route("stranger", send([a.uri, victim], [BOB])) == \
        Refuse(403, "this relay URI leads only to the client that reserved it")
    unknown = MsrpUri("msrps", "relay.example.com", 2855, "f" * 24, "tcp")
    assert res.route("conn-a", send([unknown, victim], [ALICE])).code == 481
    assert res.route("conn-a", send([RELAY, victim], [ALICE])).code == 481
    elsewhere = parse_uri("msrps://other.example:2856/s;tcp")
    assert res.route("conn-a", send([elsewhere, victim], [ALICE])).code == 403
    # on this relay's port any name may be this relay's: there, only the session counts
    assert res.route("conn-a", send([parse_uri("msrps://other.example:2855/s;tcp"), victim], [ALICE])).code == 481
    # a reservation of this relay that is gone is not looked for elsewhere
    gone = MsrpUri("msrps", "relay.example.com", 2855, "e" * 24, "tcp")
    assert res.route("conn-a", send([a.uri, gone, BOB], [ALICE])).code == 481


def test_reservations_expire_and_end_with_the_connection() -> None:
    clock = Clock()
    res = Reservations({2855}, clock=clock)
    a = res.reserve("conn-a", RELAY, ALICE, "alice@example.com", 60)
    b = res.reserve("conn-b", RELAY, BOB, "bob@example.com", 600)
    clock.now += 61
    assert res.route("conn-b", send([a.uri, ALICE], [BOB])).code == 481
    assert [r.uri for r in res.drop_owner("conn-b")] == [b.uri]
    assert res.route("conn-a", send([b.uri, BOB], [ALICE])).code == 481


def _authenticator(secure_realm: str = "example.com") -> tuple[Authenticator, Reservations]:
    res = Reservations({2855}, {"relay.example.com"})
    ha1 = {("alice", "example.com", "MD5"): hashlib.md5(b"alice:example.com:pw").hexdigest(),
           ("alice", "example.com", "SHA-256"): hashlib.sha256(b"alice:example.com:pw").hexdigest()}
    domains = {"example.com"}
    auth = Authenticator(DigestAuth(), res, lambda u, r, a: ha1.get((u, r, a)),
                         lambda host: next((d for d in domains if host == d or host.endswith("." + d)), None),
                         max_expires=900)
    return auth, res


def _auth(to: MsrpUri = RELAY, extra: list[tuple[str, str]] = ()) -> Message:
    return Message("auth0001", method="AUTH", headers=[("To-Path", str(to)), ("From-Path", str(ALICE)), *extra])


def test_auth_needs_tls_and_a_known_domain() -> None:
    auth, _ = _authenticator()
    assert auth.handle(_auth(), "c", secure=False).code == 403
    assert auth.handle(_auth(parse_uri("msrps://relay.example.org:2855;tcp")), "c", secure=True).code == 403
    assert auth.handle(_auth(parse_uri("msrps://relay.example.com:9999;tcp")), "c", secure=True).code == 403


def test_auth_challenge_and_answer() -> None:
    auth, res = _authenticator()
    first = auth.handle(_auth(), "c", secure=True)
    assert first.code == 401
    for algorithm in ("SHA-256", "MD5"):
        value = next(v for v in first.get_all("WWW-Authenticate") if f"algorithm={algorithm}" in v)
        params = parse_auth_params(value)[1]
        assert params["realm"] == "example.com"
        ha1 = hashlib.new("sha256" if algorithm == "SHA-256" else "md5", b"alice:example.com:pw").hexdigest()
        nc = "00000001" if algorithm == "SHA-256" else "00000002"
        resp = compute_response(algorithm, ha1, nonce=params["nonce"], method="AUTH", uri=str(RELAY), qop="auth",
                                nc=nc, cnonce="c0ffee")
        cred = (f'Digest username="alice", realm="example.com", nonce="{params["nonce"]}", uri="{RELAY}", '
                f'response="{resp}", algorithm={algorithm}, qop=auth, nc={nc}, cnonce="c0ffee"')
        ok = auth.handle(_auth(extra=[("Authorization", cred)]), "conn", secure=True, kind="wss")
        assert ok.code == 200 and ok.get("Expires") == "900"
        use = parse_uri(ok.get("Use-Path"))
        assert (use.scheme, use.transport, use.host) == ("msrps", "ws", "relay.example.com")
        assert res.by_session[use.session_id].owner == "conn"
        # the same nonce-count again is a replay
        assert auth.handle(_auth(extra=[("Authorization", cred)]), "conn", secure=True).code == 401
    wrong = cred.replace(resp, "0" * 32)
    assert auth.handle(_auth(extra=[("Authorization", wrong)]), "conn", secure=True).code == 401
    assert auth.handle(_auth(extra=[("Authorization", "Digest garbage")]), "conn", secure=True).code == 400
    assert auth.handle(_auth(extra=[("Expires", "5")]), "c", secure=True).get("Min-Expires") == "60"


def test_transactions_and_failure_reports() -> None:
    clock = Clock()
    table = TransactionTable(timeout=30, clock=clock)
    req = send([BOB], [parse_uri("msrps://relay.example.com:2855/r;tcp"), ALICE])
    table.add("out", "x1", req, "back", "msrps://relay.example.com:2855/r;tcp")
    table.add("out", "x2", req, "back", "msrps://relay.example.com:2855/r;tcp")
    table.add("other", "x3", req, "out", "v")
    ok = make_response(Message("x1", method="SEND", headers=req.headers), 200)
    assert table.answer("out", ok).back == "back"
    assert table.answer("out", ok) is None  # answered once
    lost = table.drop("out")
    assert len(lost) == 1 and not table.table  # x3 came from "out": no one to report to
    report = failure_report(lost[0], 481)
    assert report.get("To-Path") == req.get("From-Path") and report.get("Status") == "000 481 Session Does Not Exist"
    assert report.get("From-Path") == "msrps://relay.example.com:2855/r;tcp"
    table.add("out", "x4", req, "back", "v")
    clock.now += 31
    assert len(table.expired()) == 1
    quiet = Pending(send([BOB], [ALICE], Failure_Report="no"), "back", "v", 0)
    assert failure_report(quiet, 481) is None
    assert answers_ok(req) and not answers_ok(send([BOB], [ALICE], Failure_Report="partial"))
    ids = RecentIds(size=2)
    assert not ids.seen("a") and ids.seen("a") and not ids.seen("b") and not ids.seen("c") and not ids.seen("a")


def test_acm_routes() -> None:
    acm = AcmSessions({"msrp": ("192.0.2.1", 2855)})
    to_bob = acm.offer("call", "tag", [ALICE])
    to_alice = acm.answer("call", "tag", [parse_uri("msrps://relay.example.com:2855/rb;tcp"), BOB])
    assert to_bob.host == "192.0.2.1" and to_bob != to_alice
    # alice speaks first: bob's path starts with his relay, the ACM connects to it
    route = acm.route("conn-a", send([to_alice], [ALICE]))
    assert isinstance(route, Forward) and route.next_hop.host == "relay.example.com"
    assert route.message.get("To-Path") == f"msrps://relay.example.com:2855/rb;tcp {BOB}"
    assert route.message.get("From-Path") == str(to_bob)
    # bob's answer comes from his relay's connection; it goes to alice's connection
    route = acm.route("conn-relay", send([to_bob], [parse_uri("msrps://relay.example.com:2855/rb;tcp"), BOB]))
    assert isinstance(route, Forward) and route.connection == "conn-a"
    assert acm.route("conn-x", send([to_alice], [BOB])).code == 403
    assert acm.route("conn-a", send([to_alice, BOB], [ALICE])).code == 403
    ended: list[dict] = []
    acm.on_end = ended.append
    summary = acm.remove("call", "tag", "bye")
    assert summary["messages"] == 2 and summary["bytes"] == 6 and ended == [summary]
    # the summary reads as a media summary for the call's accounting record, and as a
    # media_sessions row
    totals = media_totals(summary)
    assert (totals.applications, totals.codecs) == ("message", "MSRP")
    assert (totals.caller_bytes, totals.caller_packets, totals.callee_bytes, totals.callee_packets) == (3, 1, 3, 1)
    assert acm.route("conn-a", send([to_alice], [ALICE])).code == 481
    row = summary_row(summary)
    assert (row.call_id, row.from_tag, row.reason, row.relay) == ("call", "tag", "bye", "msrp-acm")
    assert json.loads(row.streams)[0]["media_type"] == "message"


def test_expiry_and_bounds() -> None:
    clock = Clock()
    res = Reservations({2855}, clock=clock)
    res.reserve("c", RELAY, ALICE, "alice@example.com", 60)
    res.reserve("c", RELAY, ALICE, "alice@example.com", 600)
    clock.now += 100
    assert len(res.purge()) == 1 and res.owned_by("c") == 1
    acm = AcmSessions({"msrp": ("192.0.2.1", 2855)}, idle_timeout=60, clock=clock)
    to_bob = acm.offer("c1", "t", [ALICE])
    acm.answer("c1", "t", [BOB])
    acm.offer("c2", "t", [ALICE])
    clock.now += 50
    assert isinstance(acm.route("conn-b", send([to_bob], [BOB])), Refuse)  # used: c1 stays
    clock.now += 20
    assert [s["call_id"] for s in acm.expire()] == ["c2"] and list(acm.sessions) == [("c1", "t")]


def test_reservations_per_connection_are_bounded() -> None:
    auth, res = _authenticator()
    auth.max_per_connection = 2
    for i in range(3):
        first = auth.handle(_auth(), "conn", secure=True)
        params = parse_auth_params(first.get("WWW-Authenticate"))[1]
        ha1 = hashlib.sha256(b"alice:example.com:pw").hexdigest()
        resp = compute_response("SHA-256", ha1, nonce=params["nonce"], method="AUTH", uri=str(RELAY), qop="auth",
                                nc="00000001", cnonce="c")
        cred = (f'Digest username="alice", realm="example.com", nonce="{params["nonce"]}", uri="{RELAY}", '
                f'response="{resp}", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="c"')
        answer = auth.handle(_auth(extra=[("Authorization", cred)]), "conn", secure=True)
        assert answer.code == (200 if i < 2 else 403)
    assert res.owned_by("conn") == 2
