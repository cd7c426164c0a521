"""End to end: ``python -m sipproxy`` between real sipp user agents, on a fresh database.

Two subscribers (alice, bob @ example.com) are provisioned as ngnpro would (HA1 only).  Each
callee registers with digest auth from the port its sipp UAS then listens on.
"""

from __future__ import annotations

import socket
import time

import pytest
from sqlalchemy import create_engine, func, select

from ngnpro.models import Dialog
from tests.helpers import free_port

from .sipp_support import ProxyProcess, Sipp, auth_row, call_row, provision


@pytest.fixture
def proxy(db_url, tmp_path):
    provision(db_url)
    p = ProxyProcess(tmp_path, db_url)
    yield p
    p.stop()


def _ok(sipp: Sipp, proxy: ProxyProcess, rc: int | None = None) -> None:
    rc = sipp.wait() if rc is None else rc
    assert rc == 0, f"sipp {sipp.name} exited {rc}\n{sipp.report()}\n--- proxy\n{proxy.output()[-6000:]}"


def _register(tmp, proxy, name="reg", user="bob", password="secret-b", transport="u1", port=None):
    reg = Sipp(tmp, name, "e2e_register.xml", proxy.port, rows=[auth_row(user, password)],
               transport=transport, port=port)
    _ok(reg, proxy)
    return reg.port


def _call(tmp, proxy, transport="u1", caller_extra=()):
    port = _register(tmp, proxy, transport=transport)
    uas = Sipp(tmp, "uas", "e2e_uas.xml", proxy.port, port=port, server=True, transport=transport)
    uac = Sipp(tmp, "uac", "e2e_uac.xml", proxy.port, transport=transport,
               rows=[call_row("alice", "secret-a", "bob")], extra=caller_extra)
    return uac, uas


def _dialogs(db_url: str) -> int:
    engine = create_engine(db_url)
    try:
        with engine.connect() as c:
            return c.execute(select(func.count()).select_from(Dialog)).scalar_one()
    finally:
        engine.dispose()


def test_call_over_udp_keeps_dialog_state(proxy, tmp_path, db_url):
    uac, uas = _call(tmp_path, proxy, caller_extra=("-d", "1500"))
    deadline = time.monotonic() + 10
    while _dialogs(db_url) == 0 and uac.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _dialogs(db_url) == 1  # established: the call is in the dialogs table
    _ok(uac, proxy)
    _ok(uas, proxy)
    time.sleep(0.3)
    assert _dialogs(db_url) == 0  # BYE removed it
    assert "call alice@example.com -> bob@example.com: 200 OK" in proxy.output()


def test_call_over_tcp(proxy, tmp_path):
    uac, uas = _call(tmp_path, proxy, transport="t1")
    _ok(uac, proxy)
    _ok(uas, proxy)


def test_cancel_before_answer_gives_487(proxy, tmp_path):
    port = _register(tmp_path, proxy)
    uas = Sipp(tmp_path, "uas", "e2e_uas_ring.xml", proxy.port, port=port, server=True)
    uac = Sipp(tmp_path, "uac", "e2e_uac_cancel.xml", proxy.port,
               rows=[call_row("alice", "secret-a", "bob")])
    _ok(uac, proxy)
    _ok(uas, proxy)
    assert "call alice@example.com -> bob@example.com: 487" in proxy.output()


def test_forking_to_two_contacts(proxy, tmp_path):
    p1 = _register(tmp_path, proxy, name="reg1")
    p2 = _register(tmp_path, proxy, name="reg2")
    answering = Sipp(tmp_path, "uas1", "e2e_uas.xml", proxy.port, port=p1, server=True)
    ringing = Sipp(tmp_path, "uas2", "e2e_uas_ring.xml", proxy.port, port=p2, server=True)
    uac = Sipp(tmp_path, "uac", "e2e_uac.xml", proxy.port, rows=[call_row("alice", "secret-a", "bob")])
    _ok(uac, proxy)
    _ok(answering, proxy)
    _ok(ringing, proxy)  # got the INVITE, was cancelled when the other contact answered
    assert "(2 branches" in proxy.output()


def test_wrong_password_is_rejected(proxy, tmp_path):
    reg = Sipp(tmp_path, "reg", "e2e_register_reject.xml", proxy.port,
               rows=[auth_row("bob", "not-the-password")])
    _ok(reg, proxy)
    uac = Sipp(tmp_path, "uac", "e2e_uac.xml", proxy.port, rows=[call_row("alice", "wrong", "bob")],
               timeout=5)
    assert uac.wait() != 0  # never gets a 200


def test_from_and_credentials_mismatch_gets_403(proxy, tmp_path):
    _register(tmp_path, proxy)
    row = "bob;example.com;[authentication username=alice password=secret-a];bob;example.com"
    uac = Sipp(tmp_path, "uac", "e2e_uac_reject.xml", proxy.port, rows=[row])
    _ok(uac, proxy)


def test_unauthenticated_invite_to_outside_domain_407_then_403(proxy, tmp_path):
    row = call_row("mallory", "guess", "carol", from_domain="elsewhere.example",
                   to_domain=f"127.0.0.1:{free_port()}")
    uac = Sipp(tmp_path, "uac", "e2e_uac_reject.xml", proxy.port, rows=[row])
    _ok(uac, proxy)
    assert "ICT Calling" not in proxy.output()  # nothing was relayed


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
