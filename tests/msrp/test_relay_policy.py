"""What the relay refuses (no open relay, AUTH without TLS) and the bad input it survives:
a malformed start line, an oversize header, a byte range past the end, a reused
transaction id, a flood of connections.  After each, the relay still serves others."""

from __future__ import annotations

import socket
import time

from mediaproxy.msrp.message import Message, new_transaction_id
from mediaproxy.msrp.uri import MsrpUri

from .conftest import Relay
from .test_relay_im import authed, connect


def still_serving(relay: Relay) -> None:
    """A fresh pair of clients can still authenticate and exchange a message."""
    alice = authed(relay, "alice", "alice-pw")
    bob = authed(relay, "bob", "bob-pw")
    try:
        mid, responses = alice.send([alice.use_path[0], *bob.use_path, bob.uri], b"still here")
        assert [r.code for r in responses] == [200]
        assert bytes(bob.wait_message(mid).body) == b"still here"
    finally:
        alice.close()
        bob.close()


def closed_by_relay(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """What the relay sent before closing ``sock`` (fails if it does not close)."""
    sock.settimeout(timeout)
    data = b""
    while True:
        piece = sock.recv(65536)
        if not piece:
            return data
        data += piece


def test_unreserved_path_is_refused(relay: Relay) -> None:
    alice = authed(relay, "alice", "alice-pw")
    bob = authed(relay, "bob", "bob-pw")
    victim = MsrpUri("msrp", "127.0.0.1", 9, "victim", "tcp")
    try:
        # a made-up session at this relay leads nowhere
        fake = MsrpUri("msrp", "example.com", relay.tcp, "0123456789abcdef01234567", "tcp")
        _, responses = alice.send([fake, victim], b"spam")
        assert responses[0].code == 481
        # the relay's own URI is not a way through it
        _, responses = alice.send([relay.uri(), victim], b"spam")
        assert responses[0].code == 481
        # bob's reservation leads to bob only: not to another host, from alice or a stranger
        _, responses = alice.send([*bob.use_path, victim], b"spam")
        assert responses[0].code == 403
        stranger = connect(relay)
        _, responses = stranger.send([*bob.use_path, victim], b"spam")
        assert responses[0].code == 403
        # nor can a stranger send out through alice's reservation (only alice's connection can)
        _, responses = stranger.send([*alice.use_path, victim], b"spam")
        assert responses[0].code == 403
        stranger.close()
        # a URI of another host (the relay is not a proxy for it)
        _, responses = alice.send([MsrpUri("msrp", "elsewhere.example", 2855, "abc", "tcp"), victim], b"spam")
        assert responses[0].code == 403
        assert not bob.received
    finally:
        alice.close()
        bob.close()


def test_failure_report_no_gets_no_response(relay: Relay) -> None:
    alice = authed(relay, "alice", "alice-pw")
    try:
        fake = MsrpUri("msrp", "example.com", relay.tcp, "00000000000000000000abcd", "tcp")
        _, __ = alice.send([fake, alice.uri], b"quiet", wait=False, Failure_Report="no")
        # the next request on the connection is answered; the one before was not
        mid, responses = alice.send([fake, alice.uri], b"loud")
        assert responses[0].code == 481
        time.sleep(0.2)
        assert len(alice.responses) == 2 + 1 + 1  # two AUTHs, "quiet" (never answered) and "loud"
        assert sum(q.qsize() for q in alice.responses.values()) == 0
    finally:
        alice.close()


def test_auth_over_plain_tcp_from_loopback_only_with_the_setting(relay: Relay) -> None:
    """Here the setting is on; the WebSocket listener is plain too.  (The refusal without
    the setting is a config error: see test_config_refuses_plain_tcp.)"""
    c = connect(relay)
    assert c.auth(relay.uri(), "alice", "alice-pw").code == 200
    c.close()


def test_malformed_start_line_closes_the_connection(relay: Relay) -> None:
    with socket.create_connection(("127.0.0.1", relay.tcp)) as s:
        s.sendall(b"HELLO world\r\n\r\n")
        assert closed_by_relay(s) == b""
    with socket.create_connection(("127.0.0.1", relay.tcp)) as s:
        s.sendall(b"MSRP x SEND\r\n")  # transaction id too short
        assert closed_by_relay(s) == b""
    still_serving(relay)


def test_oversize_header_gets_400_and_close(relay: Relay) -> None:
    with socket.create_connection(("127.0.0.1", relay.tcp)) as s:
        s.sendall(b"MSRP abcd1234 SEND\r\nTo-Path: msrp://a.example:1/x;tcp\r\nX-Big: " + b"a" * 40000)
        answer = closed_by_relay(s)
        assert answer.startswith(b"MSRP abcd1234 400 header too large\r\n")
    with socket.create_connection(("127.0.0.1", relay.tcp)) as s:
        s.sendall(b"MSRP abcd1234 SEND\r\n" + b"X-Many: 1\r\n" * 100)
        assert closed_by_relay(s).startswith(b"MSRP abcd1234 400 more than 40 header fields\r\n")
    still_serving(relay)


def test_byte_range_past_the_end_gets_400(relay: Relay) -> None:
    bob = authed(relay, "bob", "bob-pw")
    try:
        with socket.create_connection(("127.0.0.1", relay.tcp)) as s:
            msg = Message(new_transaction_id(), method="SEND", headers=[
                ("To-Path", f"{bob.use_path[0]} {bob.uri}"), ("From-Path", "msrp://x.invalid:1/y;tcp"),
                ("Message-ID", "m1"), ("Byte-Range", "1-100/50"), ("Content-Type", "text/plain")],
                body=b"z" * 100)
            s.sendall(msg.encode())
            answer = closed_by_relay(s)
            assert answer.startswith(f"MSRP {msg.transaction_id} 400 Byte-Range past the end".encode())
        assert not bob.received
    finally:
        bob.close()
    still_serving(relay)


def test_reused_transaction_id_is_refused(relay: Relay) -> None:
    alice = authed(relay, "alice", "alice-pw")
    bob = authed(relay, "bob", "bob-pw")
    try:
        headers = alice.path_headers([alice.use_path[0], *bob.use_path, bob.uri], Message_ID="r1",
                                     Byte_Range="1-3/3", Content_Type="text/plain")
        first = Message("reused0001", method="SEND", headers=headers, body=b"one")
        assert alice.request(first).code == 200
        again = Message("reused0001", method="SEND", headers=headers, body=b"two")
        assert alice.request(again).code == 400
        assert bytes(bob.wait_message("r1").body) == b"one"
    finally:
        alice.close()
        bob.close()


def test_connection_flood_from_one_address(relay: Relay) -> None:
    """One source opening far more connections than max_connections_per_ip (40 here): the
    surplus is closed at once, and clients from other addresses are served meanwhile."""
    _flood(relay, relay.tcp, "127.0.0.2", 120)


def test_tls_handshake_flood_counts_against_the_limit(relay: Relay) -> None:
    """Connections to the TLS port that never start their handshake hold their places: the
    per-address limit applies to them too (a flood cannot get round it by staying silent)."""
    _flood(relay, relay.tls, "127.0.0.3", 80)


def _flood(relay: Relay, port: int, source: str, count: int) -> None:
    """``count`` connections from ``source``: all but the per-address limit (40) are closed
    at once, and the relay still serves another client meanwhile."""
    flood = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((source, 0))
            s.connect(("127.0.0.1", port))
            flood.append(s)
        time.sleep(0.5)
        closed = 0
        for s in flood:
            s.settimeout(0.01)
            try:
                closed += s.recv(1) == b""
            except (TimeoutError, OSError):
                pass
        assert closed >= count - 40
        still_serving(relay)
    finally:
        for s in flood:
            s.close()


def test_unknown_method_gets_501(relay: Relay) -> None:
    c = connect(relay)
    try:
        msg = Message(new_transaction_id(), method="FETCH", headers=[("To-Path", str(relay.uri())),
                                                                      ("From-Path", str(c.uri))])
        assert c.request(msg).code == 501
    finally:
        c.close()


