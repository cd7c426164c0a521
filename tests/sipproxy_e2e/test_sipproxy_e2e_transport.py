"""Transport layer with raw bytes: UDP, TCP framing, CRLF keepalive, connection reuse, TLS."""

from __future__ import annotations

import subprocess

import gevent
import pytest
from gevent import socket

from sipproxy.runtime.transport import Transports
from sipproxy.sip.addressing import Peer
from sipproxy.sip.framing import PING, FramingError, StreamFramer
from tests.helpers import free_port

MSG = b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h\r\nContent-Length: 4\r\n\r\nbody"


def test_framer_splits_and_joins():
    f = StreamFramer()
    assert f.feed(MSG[:10]) == []
    assert f.feed(MSG[10:] + b"\r\n" + MSG + MSG[:5]) == [MSG, MSG]
    assert f.feed(MSG[5:]) == [MSG]


def test_framer_ping_and_compact_length():
    f = StreamFramer()
    compact = b"INFO sip:x SIP/2.0\r\nl : 2\r\n\r\nhi"
    assert f.feed(b"\r\n\r\n" + compact + b"\r\n") == [PING, compact]
    assert f.feed(b"\r\n") == [PING]  # "\r\n" + "\r\n" across two reads is one ping


def test_framer_rejects_bad_length_and_oversize():
    with pytest.raises(FramingError):
        StreamFramer().feed(b"INFO sip:x SIP/2.0\r\nContent-Length: -1\r\n\r\n")
    with pytest.raises(FramingError):
        StreamFramer(max_size=100).feed(b"INFO sip:x SIP/2.0\r\nContent-Length: 500\r\n\r\n")
    with pytest.raises(FramingError):
        StreamFramer(max_size=100).feed(b"A" * 200)


def test_peer_roundtrip():
    for text in ("udp:1.2.3.4:5060", "tls:[::1]:5061"):
        assert str(Peer.parse(text)) == text
    with pytest.raises(ValueError):
        Peer.parse("sctp:1.2.3.4:5")


@pytest.fixture
def transports():
    port = free_port()
    got = []
    t = Transports([f"udp:127.0.0.1:{port}", f"tcp:127.0.0.1:{port}"], got.append)
    t.start()
    yield t, port, got
    t.stop()


def _wait(cond, timeout=3.0):
    with gevent.Timeout(timeout):
        while not cond():
            gevent.sleep(0.01)


def test_udp_receive_and_send(transports):
    t, port, got = transports
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.bind(("127.0.0.1", 0))
    c.sendto(b"\r\n\r\n", ("127.0.0.1", port))  # keepalive datagram is ignored
    c.sendto(MSG, ("127.0.0.1", port))
    _wait(lambda: got)
    assert got[0].data == MSG and got[0].source == Peer("udp", "127.0.0.1", c.getsockname()[1])
    assert len(got) == 1
    assert t.send(b"reply", got[0].source)
    assert c.recvfrom(100)[0] == b"reply"
    c.close()


def test_tcp_framing_ping_and_connection_reuse(transports):
    t, port, got = transports
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(MSG[:20])
    gevent.sleep(0.05)
    c.sendall(MSG[20:] + MSG)
    _wait(lambda: len(got) == 2)
    c.sendall(b"\r\n\r\n")
    assert c.recv(10) == b"\r\n"  # RFC 5626 pong
    # a request to the phone's source address goes back over the phone's own connection
    assert t.send(b"to-phone", got[0].source)
    assert c.recv(100) == b"to-phone"
    c.close()
    _wait(lambda: not t.connections)


def test_tcp_garbage_closes_connection(transports):
    t, port, got = transports
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(b"INFO sip:x SIP/2.0\r\nContent-Length: zz\r\n\r\n")
    c.settimeout(3)
    assert c.recv(10) == b""
    assert not got
    c.close()


def test_tcp_outbound_connect(transports):
    t, port, got = transports
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    dest = Peer("tcp", "127.0.0.1", srv.getsockname()[1])
    assert t.send(MSG, dest)
    s, _ = srv.accept()
    assert s.recv(1000) == MSG
    s.sendall(MSG)  # a reply on the same connection reaches the handler
    _wait(lambda: got)
    assert got[0].source == dest
    s.close()
    srv.close()
    refused = Peer("tcp", "127.0.0.1", free_port())
    assert not t.send(MSG, refused)


def test_tls_listener(tmp_path):
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    port = free_port()
    got = []
    t = Transports([f"tls:127.0.0.1:{port}"], got.append, str(cert), str(key))
    t.start()
    try:
        import ssl

        from gevent import ssl as gssl
        ctx = gssl.SSLContext(gssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        c = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
        c.sendall(MSG)
        _wait(lambda: got)
        assert got[0].data == MSG and got[0].source.transport == "tls"
        assert t.send(b"back", got[0].source)
        assert c.recv(100) == b"back"
        c.close()
    finally:
        t.stop()
