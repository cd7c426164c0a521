"""MSRP over WebSocket (RFC 7977) through the relay: a web client AUTHs over WebSocket and
talks with a client on TCP; a large chunked message crosses between the two framings."""

from __future__ import annotations

import hashlib
import os
import socket

import pytest

from mediaproxy.msrp.uri import MsrpUri

from .client import MsrpClient
from .conftest import Relay
from .test_relay_im import authed
from .wsclient import WebSocketClientSocket


def ws_client(relay: Relay) -> MsrpClient:
    c = MsrpClient("127.0.0.1", relay.ws, sock=WebSocketClientSocket("127.0.0.1", relay.ws))  # type: ignore[arg-type]
    c.uri = MsrpUri("msrp", "web.invalid", 2855, os.urandom(6).hex(), "ws")
    return c


def test_websocket_client_talks_with_a_tcp_client(relay: Relay) -> None:
    web = ws_client(relay)
    bob = authed(relay, "bob", "bob-pw")
    try:
        assert web.sock.subprotocol == "msrp"
        final = web.auth(relay.uri("example.com", relay.ws), "alice", "alice-pw", "SHA-256")
        assert final.code == 200
        assert web.use_path[0].port == relay.ws and web.use_path[0].transport == "ws"
        mid, responses = web.send([web.use_path[0], *bob.use_path, bob.uri], b"from the browser")
        assert responses[0].code == 200
        assert bytes(bob.wait_message(mid).body) == b"from the browser"
        # and back, 3 MB in 1 MB chunks: each chunk one WebSocket message, however forwarded
        data = os.urandom(3 << 20)
        mid, responses = bob.send([bob.use_path[0], *web.use_path, web.uri], data, chunk_size=1 << 20)
        assert [r.code for r in responses] == [200] * 3
        got = web.wait_message(mid)
        assert hashlib.sha256(bytes(got.body)).digest() == hashlib.sha256(data).digest()
    finally:
        web.close()
        bob.close()


def test_websocket_without_the_msrp_subprotocol_is_refused(relay: Relay) -> None:
    with pytest.raises(ConnectionRefusedError):
        WebSocketClientSocket("127.0.0.1", relay.ws, subprotocol="sip")


def test_plain_http_on_the_websocket_port_is_closed(relay: Relay) -> None:
    with socket.create_connection(("127.0.0.1", relay.ws)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        data = s.recv(4096)
        while data and s.recv(4096):
            pass
        assert not data or data.startswith(b"HTTP/1.1 4")


def test_secure_websocket_with_a_verified_certificate(relay: Relay) -> None:
    sock = WebSocketClientSocket("127.0.0.1", relay.wss, tls=True, cafile=str(relay.ca))
    web = MsrpClient("127.0.0.1", relay.wss, sock=sock)  # type: ignore[arg-type]
    web.uri = MsrpUri("msrps", "web.invalid", 2855, os.urandom(6).hex(), "ws")
    bob = authed(relay, "bob", "bob-pw")
    try:
        assert web.auth(relay.uri("example.com", relay.wss, "msrps"), "alice", "alice-pw").code == 200
        assert (web.use_path[0].scheme, web.use_path[0].transport) == ("msrps", "ws")
        mid, responses = web.send([web.use_path[0], *bob.use_path, bob.uri], b"over wss")
        assert responses[0].code == 200
        assert bytes(bob.wait_message(mid).body) == b"over wss"
    finally:
        web.close()
        bob.close()
