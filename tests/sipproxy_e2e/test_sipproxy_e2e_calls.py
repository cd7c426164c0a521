"""End to end: ``python -m sipproxy`` between real sipp user agents, on a fresh database.

Subscribers (alice, bob and a pool of callees @ example.com) are provisioned as ngnpro
would (HA1 only).  Each callee registers with digest auth from the port its sipp UAS then
listens on.  One proxy serves the tests of this module (each test calls a callee of its own,
so bindings never mix); the tests about restarts, workers and the media relay start their own.
"""

from __future__ import annotations

import itertools
import socket
import time

import pytest
from sqlalchemy import create_engine, func, select

from ngnpro.models import Dialog
from sipproxy.sip.parser import parse_message
from tests.conftest import DB_IDS, DB_PARAMS, module_database
from tests.helpers import free_port

from .sipp_support import USERS, ProxyProcess, Sipp, auth_row, call_row, provision

POOL = {f"callee{n}": f"pw-{n}" for n in range(12)}
_next_callee = itertools.count()


@pytest.fixture(scope="module", params=DB_PARAMS, ids=DB_IDS)
def shared(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shared")
    with module_database(request.param, tmp) as url:
        provision(url, users={**USERS, **POOL})
        p = ProxyProcess(tmp, url)
        p.db_url = url
        yield p
        p.stop()


@pytest.fixture
def proxy(shared):
    shared.mark = len(shared.output())
    return shared


@pytest.fixture
def callee():
    name = f"callee{next(_next_callee) % len(POOL)}"
    return name, POOL[name]


def _since(proxy) -> str:
    """The proxy's log written during this test."""
    return proxy.output()[proxy.mark:]


def _ok(sipp: Sipp, proxy: ProxyProcess, rc: int | None = None) -> None:
    rc = sipp.wait() if rc is None else rc
    assert rc == 0, f"sipp {sipp.name} exited {rc}\n{sipp.report()}\n--- proxy\n{proxy.output()[-6000:]}"


def _register(tmp, proxy, name="reg", user="bob", password="secret-b", transport="u1", port=None):
    reg = Sipp(tmp, name, "e2e_register.xml", proxy.port, rows=[auth_row(user, password)],
               transport=transport, port=port)
    _ok(reg, proxy)
    return reg.port


def _call(tmp, proxy, callee=("bob", "secret-b"), transport="u1", caller_extra=()):
    port = _register(tmp, proxy, user=callee[0], password=callee[1], transport=transport)
    uas = Sipp(tmp, "uas", "e2e_uas.xml", proxy.port, port=port, server=True, transport=transport)
    uac = Sipp(tmp, "uac", "e2e_uac.xml", proxy.port, transport=transport,
               rows=[call_row("alice", "secret-a", callee[0])], extra=caller_extra)
    return uac, uas


def _dialogs(db_url: str, callee: str) -> int:
    engine = create_engine(db_url)
    try:
        with engine.connect() as c:
            return c.execute(select(func.count()).select_from(Dialog)
                             .where(Dialog.callee == f"{callee}@example.com")).scalar_one()
    finally:
        engine.dispose()


def test_call_over_udp_keeps_dialog_state(proxy, tmp_path, callee):
    uac, uas = _call(tmp_path, proxy, callee, caller_extra=("-d", "1500"))
    deadline = time.monotonic() + 10
    while not _dialogs(proxy.db_url, callee[0]) and uac.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _dialogs(proxy.db_url, callee[0]) == 1  # established: the call is in the dialogs table
    _ok(uac, proxy)
    _ok(uas, proxy)
    time.sleep(0.3)
    assert _dialogs(proxy.db_url, callee[0]) == 0  # BYE removed it
    assert f"call alice@example.com -> {callee[0]}@example.com: 200 OK" in _since(proxy)


def test_call_over_tcp(proxy, tmp_path, callee):
    uac, uas = _call(tmp_path, proxy, callee, transport="t1")
    _ok(uac, proxy)
    _ok(uas, proxy)


def test_cancel_before_answer_gives_487(proxy, tmp_path, callee):
    port = _register(tmp_path, proxy, user=callee[0], password=callee[1])
    uas = Sipp(tmp_path, "uas", "e2e_uas_ring.xml", proxy.port, port=port, server=True)
    uac = Sipp(tmp_path, "uac", "e2e_uac_cancel.xml", proxy.port,
               rows=[call_row("alice", "secret-a", callee[0])])
    _ok(uac, proxy)
    _ok(uas, proxy)
    assert f"call alice@example.com -> {callee[0]}@example.com: 487" in _since(proxy)


def test_forking_to_two_contacts(proxy, tmp_path, callee):
    p1 = _register(tmp_path, proxy, name="reg1", user=callee[0], password=callee[1])
    p2 = _register(tmp_path, proxy, name="reg2", user=callee[0], password=callee[1])
    answering = Sipp(tmp_path, "uas1", "e2e_uas.xml", proxy.port, port=p1, server=True)
    ringing = Sipp(tmp_path, "uas2", "e2e_uas_ring.xml", proxy.port, port=p2, server=True)
    uac = Sipp(tmp_path, "uac", "e2e_uac.xml", proxy.port, rows=[call_row("alice", "secret-a", callee[0])])
    _ok(uac, proxy)
    _ok(answering, proxy)
    _ok(ringing, proxy)  # got the INVITE, was cancelled when the other contact answered
    assert f"{callee[0]}@example.com: 200 OK (2 branches" in _since(proxy)


def test_wrong_password_is_rejected(proxy, tmp_path):
    reg = Sipp(tmp_path, "reg", "e2e_register_reject.xml", proxy.port,
               rows=[auth_row("bob", "not-the-password")])
    _ok(reg, proxy)
    # alice's INVITE with a wrong password: challenged again (a fresh 407, not stale) and
    # relayed nowhere; the scenario succeeds only on that second 407
    uac = Sipp(tmp_path, "uac", "e2e_uac_wrong_password.xml", proxy.port,
               rows=[call_row("alice", "wrong", "bob")], timeout=3)
    _ok(uac, proxy)
    trace = (tmp_path / "uac.msg").read_text()
    assert uac.finals() == {("1 INVITE", 407), ("2 INVITE", 407)}, trace
    second = trace[trace.rindex("SIP/2.0 407"):]
    challenge = next(line for line in second.splitlines() if line.startswith("Proxy-Authenticate:"))
    assert "stale" not in challenge.lower(), challenge  # stale=true: right password, old nonce
    assert "ICT Calling" not in _since(proxy)  # nothing was relayed


def test_from_and_credentials_mismatch_gets_403(proxy, tmp_path):
    row = "bob;example.com;[authentication username=alice password=secret-a];alice;example.com"
    uac = Sipp(tmp_path, "uac", "e2e_uac_reject.xml", proxy.port, rows=[row])
    _ok(uac, proxy)


def test_unauthenticated_invite_to_outside_domain_407_then_403(proxy, tmp_path):
    row = call_row("mallory", "guess", "carol", from_domain="elsewhere.example",
                   to_domain=f"127.0.0.1:{free_port()}")
    uac = Sipp(tmp_path, "uac", "e2e_uac_reject.xml", proxy.port, rows=[row])
    _ok(uac, proxy)
    assert "ICT Calling" not in _since(proxy)  # nothing was relayed


def test_restarted_proxy_routes_to_binding_made_before(db_url, tmp_path):
    provision(db_url)
    first = ProxyProcess(tmp_path, db_url)
    try:
        port = _register(tmp_path, first)
    finally:
        first.stop()
    second = ProxyProcess(tmp_path, db_url, port=first.port)
    try:
        uas = Sipp(tmp_path, "uas", "e2e_uas.xml", second.port, port=port, server=True)
        uac = Sipp(tmp_path, "uac", "e2e_uac.xml", second.port,
                   rows=[call_row("alice", "secret-a", "bob")])
        _ok(uac, second)
        _ok(uas, second)
    finally:
        second.stop()


def _udp(port: int, data: bytes, timeout: float = 3.0) -> bytes:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(data, ("127.0.0.1", port))
        return s.recv(65535)
    finally:
        s.close()


def _options(port: int, uri: str, extra: str = "") -> bytes:
    return (f"OPTIONS {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bK{time.time_ns()}\r\n"
            f"From: <sip:mon@monitor.example>;tag=1\r\nTo: <{uri}>\r\nCall-ID: {time.time_ns()}\r\n"
            f"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n").encode()


def test_options_to_proxy_and_malformed_input(proxy):
    reply = _udp(proxy.port, _options(proxy.port, f"sip:127.0.0.1:{proxy.port}"))
    assert reply.startswith(b"SIP/2.0 200 ")
    assert b";rport=" in reply and b"received=127.0.0.1" in reply  # RFC 3581
    # garbage is dropped, a malformed request gets a 400, and the proxy keeps serving
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"\x00\xff garbage\r\n\r\n", ("127.0.0.1", proxy.port))
    s.close()
    bad = _options(proxy.port, f"sip:127.0.0.1:{proxy.port}").replace(b"CSeq: 1 OPTIONS", b"CSeq: x")
    assert _udp(proxy.port, bad).startswith(b"SIP/2.0 400 ")
    hops = _options(proxy.port, "sip:bob@example.com").replace(b"Max-Forwards: 70", b"Max-Forwards: 0")
    assert _udp(proxy.port, hops).startswith(b"SIP/2.0 483 ")
    assert _udp(proxy.port, _options(proxy.port, f"sip:127.0.0.1:{proxy.port}")).startswith(b"SIP/2.0 200 ")


def test_transport_switch_double_record_route(proxy, tmp_path, callee):
    """Caller on UDP, callee registered over TCP: two Record-Route values (RFC 5658)."""
    port = _register(tmp_path, proxy, user=callee[0], password=callee[1], transport="t1")
    uas = Sipp(tmp_path, "uas", "e2e_uas.xml", proxy.port, port=port, server=True, transport="t1")
    uac = Sipp(tmp_path, "uac", "e2e_uac.xml", proxy.port, rows=[call_row("alice", "secret-a", callee[0])])
    _ok(uac, proxy)
    _ok(uas, proxy)
    trace = (tmp_path / "uas.msg").read_text()
    invite = trace[trace.index("INVITE sip:"):]
    invite = invite[:invite.index("\n\n")]
    assert f"Record-Route: <sip:127.0.0.1:{proxy.port};transport=tcp;lr>" in invite
    assert f"Record-Route: <sip:127.0.0.1:{proxy.port};lr>" in invite


def _read_message(sock: socket.socket, buf: bytearray) -> str:
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65535)
        assert chunk, "connection closed"
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith((b"content-length:", b"l:")):
            length = int(line.split(b":", 1)[1])
    while len(rest) < length:
        rest += sock.recv(65535)
    del buf[:len(head) + 4 + length]
    return head.decode() + "\r\n\r\n" + rest[:length].decode()


def test_request_reuses_registered_tcp_connection(proxy, tmp_path, callee):
    """A phone behind NAT registers over TCP: calls to it go over that very connection
    (its Contact, a port nobody listens on, is never tried)."""
    from sipproxy.sip.digest import compute_response, ha1, parse_auth_params

    user, password = callee
    closed = free_port()
    phone = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    buf = bytearray()

    def register(cseq: int, auth: str = "") -> str:
        phone.sendall((
            f"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.7:5060;rport;branch=z9hG4bKr{cseq}\r\n"
            f"From: <sip:{user}@example.com>;tag=nat1\r\nTo: <sip:{user}@example.com>\r\nCall-ID: nat-reg\r\n"
            f"CSeq: {cseq} REGISTER\r\nContact: <sip:{user}@127.0.0.1:{closed};transport=tcp>\r\n"
            f"{auth}Expires: 600\r\nContent-Length: 0\r\n\r\n").encode())
        return _read_message(phone, buf)

    first = register(1)
    assert first.startswith("SIP/2.0 401")
    challenge = next(line for line in first.split("\r\n") if line.startswith("WWW-Authenticate"))
    nonce = parse_auth_params(challenge.split(":", 1)[1])[1]["nonce"]
    resp = compute_response("MD5", ha1(user, "example.com", password), nonce=nonce,
                            method="REGISTER", uri="sip:example.com", qop="auth", nc="00000001",
                            cnonce="c0ffee")
    auth = (f'Authorization: Digest username="{user}", realm="example.com", nonce="{nonce}", '
            f'uri="sip:example.com", response="{resp}", qop=auth, nc=00000001, cnonce="c0ffee", '
            f"algorithm=MD5\r\n")
    assert register(2, auth).startswith("SIP/2.0 200")

    uac = Sipp(tmp_path, "uac", "e2e_uac_busy.xml", proxy.port, rows=[call_row("alice", "secret-a", user)])
    invite = _read_message(phone, buf)
    assert invite.startswith(f"INVITE sip:{user}@127.0.0.1:{closed};transport=tcp SIP/2.0")
    lines = invite.split("\r\n")
    keep = [ln for ln in lines if ln.split(":", 1)[0].lower() in ("via", "from", "call-id", "cseq")]
    to = next(ln for ln in lines if ln.lower().startswith("to:"))
    phone.sendall(("SIP/2.0 486 Busy Here\r\n" + "\r\n".join(keep) + f"\r\n{to};tag=busy\r\n"
                   "Content-Length: 0\r\n\r\n").encode())
    ack = _read_message(phone, buf)  # the proxy's hop-by-hop ACK, same connection
    assert ack.startswith("ACK ")
    _ok(uac, proxy)
    phone.close()


def test_challenges_are_stateless(proxy):
    """RFC 3261 8.2.7 / 26.1.5: a 407 or 401 leaves no transaction behind -- it is never
    retransmitted (a stateful 407 over UDP would be, after T1 = 0.5 s), and a retransmitted
    request is answered anew: the same To tag, a fresh nonce."""
    branch = f"z9hG4bK{time.time_ns()}"
    invite = (f"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;rport;branch={branch}\r\n"
              f"From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\nCall-ID: {branch}\r\n"
              "CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContact: <sip:alice@127.0.0.1:9>\r\n"
              "Content-Length: 0\r\n\r\n").encode()
    register = (f"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;rport;branch={branch}r\r\n"
                f"From: <sip:bob@example.com>;tag=b1\r\nTo: <sip:bob@example.com>\r\nCall-ID: r{branch}\r\n"
                "CSeq: 1 REGISTER\r\nMax-Forwards: 70\r\nContact: <sip:bob@127.0.0.1:9>\r\n"
                "Content-Length: 0\r\n\r\n").encode()
    for request, status, field in ((invite, b"407", "proxy-authenticate"), (register, b"401", "www-authenticate")):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(3)
        try:
            s.sendto(request, ("127.0.0.1", proxy.port))
            first = parse_message(s.recv(65535))
            assert first.status == int(status)
            s.settimeout(1.2)
            with pytest.raises(socket.timeout):
                s.recv(65535)  # no retransmission of the challenge
            s.settimeout(3)
            s.sendto(request, ("127.0.0.1", proxy.port))
            again = parse_message(s.recv(65535))
            assert again.status == int(status) and again.to.tag == first.to.tag
            assert again.headers.get(field) != first.headers.get(field)  # a new nonce
        finally:
            s.close()


def test_loop_is_detected(proxy):
    from sipproxy.proxy.validation import loop_hash
    from sipproxy.sip.parser import parse_message

    msg = _options(proxy.port, "sip:bob@example.com")
    looped = parse_message(msg)
    mark = "z9hG4bK" + loop_hash(looped) + ".abc"
    ours = f"Via: SIP/2.0/UDP 127.0.0.1:{proxy.port};branch={mark}\r\n".encode()
    msg = msg.replace(b"From:", ours + b"From:")
    assert _udp(proxy.port, msg).startswith(b"SIP/2.0 482 ")


def test_worker_processes_share_the_port(sqlite_url, tmp_path):  # SQLite: the kernel's port sharing, no backend's
    """``workers = 2``: both workers serve the same address; responses that the kernel hands
    to the other worker still reach the transaction that waits for them."""
    users = {"alice": "secret-a", **{f"user{n}": f"pw{n}" for n in range(4)}}
    provision(sqlite_url, users=users)
    proxy = ProxyProcess(tmp_path, sqlite_url, workers=2)
    try:
        for n in range(4):
            port = _register(tmp_path, proxy, name=f"reg{n}", user=f"user{n}", password=f"pw{n}")
            uas = Sipp(tmp_path, f"uas{n}", "e2e_uas.xml", proxy.port, port=port, server=True)
            uac = Sipp(tmp_path, f"uac{n}", "e2e_uac.xml", proxy.port,
                       rows=[call_row("alice", "secret-a", f"user{n}")])
            _ok(uac, proxy)
            _ok(uas, proxy)
        out = proxy.output()
        assert " [0] " in out and " [1] " in out
    finally:
        proxy.stop()


def test_media_relay_engaged_for_the_call(sqlite_url, tmp_path):  # SQLite: the SDP rewrite, no backend's
    """``media_relay = "always"``: both SDPs are rewritten to the relay (a real
    ``python -m mediaproxy``), and the relay session ends with the BYE."""
    from tests.helpers import Service, write_config

    provision(sqlite_url)
    control = free_port()
    low = free_port(socket.SOCK_DGRAM) & ~1
    media = {"control": f"127.0.0.1:{control}", "relay_ip": "127.0.0.1", "port_range": [low, low + 40]}
    relay_cfg = write_config(tmp_path / "relay.toml", {"database": {"url": sqlite_url}, "mediaproxy": media})
    relay = Service("mediaproxy", relay_cfg).wait_tcp("127.0.0.1", control)
    proxy = ProxyProcess(tmp_path, sqlite_url, sections={"mediaproxy": media}, media_relay="always")
    try:
        uac, uas = _call(tmp_path, proxy)
        _ok(uac, proxy)
        _ok(uas, proxy)
        callee_saw = (tmp_path / "uas.msg").read_text()
        caller_saw = (tmp_path / "uac.msg").read_text()
        ports = [int(line.split()[1]) for text in (callee_saw, caller_saw)
                 for line in text.splitlines() if line.startswith("m=audio")]
        relayed = [p for p in ports if low <= p <= low + 40]
        assert len(relayed) >= 2, ports  # the INVITE's offer and the 200's answer
        deadline = time.monotonic() + 5
        while "ended (bye)" not in relay.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "ended (bye)" in relay.output()
    finally:
        proxy.stop()
        relay.stop()


def test_no_relay_through_a_preloaded_route_or_register(proxy):
    """A stranger cannot bounce requests off us with a Route header, and REGISTER is never
    relayed whatever its Route says."""
    victim = free_port()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", victim))
    sink.settimeout(0.5)
    try:
        route = f"Route: <sip:127.0.0.1:{victim};lr>\r\n"
        msg = _options(proxy.port, "sip:bob@example.com", extra=route)
        assert _udp(proxy.port, msg).startswith(b"SIP/2.0 403 ")
        reg = (_options(proxy.port, "sip:example.com", extra=route)
               .replace(b"OPTIONS", b"REGISTER").replace(b"<sip:example.com>", b"<sip:bob@example.com>"))
        assert _udp(proxy.port, reg).startswith(b"SIP/2.0 401 ")
        try:
            sink.recv(65535)
            raise AssertionError("the proxy relayed a request to the Route target")
        except TimeoutError:
            pass
    finally:
        sink.close()


def _digest_register(send, recv, user: str, password: str, make) -> None:
    """REGISTER, answer the 401, expect 200 (``make(cseq, auth_header)`` builds the bytes)."""
    from sipproxy.sip.digest import compute_response, ha1, parse_auth_params

    send(make(1, ""))
    first = recv()
    assert first.startswith("SIP/2.0 401"), first
    challenge = next(line for line in first.split("\r\n") if line.startswith("WWW-Authenticate"))
    nonce = parse_auth_params(challenge.split(":", 1)[1])[1]["nonce"]
    resp = compute_response("MD5", ha1(user, "example.com", password), nonce=nonce,
                            method="REGISTER", uri="sip:example.com", qop="auth", nc="00000001",
                            cnonce="c0ffee")
    send(make(2, f'Authorization: Digest username="{user}", realm="example.com", nonce="{nonce}", '
                 f'uri="sip:example.com", response="{resp}", qop=auth, nc=00000001, cnonce="c0ffee", '
                 f"algorithm=MD5\r\n"))
    ok = recv()
    assert ok.startswith("SIP/2.0 200"), ok


def test_udp_phone_behind_nat_is_reached_at_its_public_address(proxy, tmp_path, callee):
    """A phone whose Contact names its private address (127.0.0.2 here, where nothing
    listens) registers over UDP: the INVITE goes to where its REGISTER came from, and its
    200's Contact is rewritten so the caller's ACK and BYE reach it too."""
    user, password = callee
    phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    phone.bind(("127.0.0.1", 0))
    phone.settimeout(10)
    private = f"127.0.0.2:{free_port()}"

    def make(cseq: int, auth: str) -> bytes:
        return (f"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP {private};rport;branch=z9hG4bKn{cseq}\r\n"
                f"From: <sip:{user}@example.com>;tag=n1\r\nTo: <sip:{user}@example.com>\r\n"
                f"Call-ID: nat-udp-{user}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{private}>\r\n"
                f"{auth}Expires: 600\r\nContent-Length: 0\r\n\r\n").encode()

    def recv() -> str:
        return phone.recv(65535).decode()

    _digest_register(lambda b: phone.sendto(b, ("127.0.0.1", proxy.port)), recv, user, password, make)
    uac = Sipp(tmp_path, "uac", "e2e_uac.xml", proxy.port, rows=[call_row("alice", "secret-a", user)])

    def answer(msg: str, status: str, extra: str = "") -> None:
        lines = msg.split("\r\n")
        keep = [ln for ln in lines if ln.split(":", 1)[0].lower() in ("via", "from", "call-id", "cseq", "record-route")]
        to = next(ln for ln in lines if ln.lower().startswith("to:"))
        tag = "" if ";tag=" in to else ";tag=natB"
        phone.sendto((f"SIP/2.0 {status}\r\n" + "\r\n".join(keep) + f"\r\n{to}{tag}\r\n{extra}"
                      "Content-Length: 0\r\n\r\n").encode(), ("127.0.0.1", proxy.port))

    invite = recv()
    while not invite.startswith("INVITE "):
        invite = recv()
    answer(invite, "200 OK", f"Contact: <sip:{user}@{private}>\r\n")
    methods = []
    while "BYE" not in methods:
        msg = recv()
        if msg.startswith("SIP/2.0"):
            continue
        methods.append(msg.split(" ", 1)[0])
        if msg.startswith("BYE "):
            answer(msg, "200 OK")
    assert methods[-2:] == ["ACK", "BYE"] or methods == ["ACK", "BYE"], methods
    _ok(uac, proxy)
    phone.close()


def test_in_dialog_request_not_routed_through_us_is_refused(proxy):
    victim = free_port()
    msg = _options(proxy.port, f"sip:x@127.0.0.1:{victim}", extra=f"Route: <sip:127.0.0.1:{victim};lr>\r\n")
    msg = msg.replace(b"To: <", b"To: <").replace(b">\r\nCall-ID", b">;tag=forged\r\nCall-ID", 1)
    assert b";tag=forged" in msg
    assert _udp(proxy.port, msg).startswith(b"SIP/2.0 404 ")
