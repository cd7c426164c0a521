"""The server process: TLS, several workers, the log line, configuration errors."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import free_port, write_config
from tests.ngnpro.conftest import start_ngnpro
from tests.ngnpro.harness import ADMIN, envelope, fault_code, http_post, php_call


def _cert(tmp: Path) -> tuple[str, str]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not installed")
    key, cert = tmp / "key.pem", tmp / "cert.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    return str(cert), str(key)


def test_tls(tmp_path: Path, sqlite_url: str) -> None:
    cert, key = _cert(tmp_path)
    server = start_ngnpro(tmp_path, sqlite_url, tls_cert=cert, tls_key=key)
    try:
        assert server.url.startswith("https://")
        import http.client

        ctx = ssl.create_default_context(cafile=cert)
        ctx.check_hostname = False
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=10)
        body = envelope("Customer", "getCustomers", "<query/>", auth=ADMIN).encode()
        conn.request("POST", "/ngnpro/", body=body, headers={"Content-Type": "text/xml", "SOAPAction": '""'})
        resp = conn.getresponse()
        assert resp.status == 200 and b"getCustomersResponse" in resp.read()
        conn.close()
        assert "https://127.0.0.1" in server.output()
    finally:
        server.service.stop()
        server.close()


def test_several_workers_share_the_port(tmp_path: Path, sqlite_url: str) -> None:
    server = start_ngnpro(tmp_path, sqlite_url, workers=2)
    try:
        for i in range(6):
            status, _, data = http_post(server.url, envelope("Customer", "addAccount", (
                f'<account><username xsi:type="xsd:string">w{i}</username></account>'), auth=ADMIN).encode())
            assert status == 200, data
        res = php_call(server.url, "Customer", "getCustomers", {"query": {}})
        assert res["total"] == 6
        assert "2 workers" in server.output()
    finally:
        server.service.stop()
        server.close()
    # every worker is gone with the parent: nothing listens any more
    import socket

    time.sleep(0.5)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


def test_bad_config_is_one_line_and_nonzero(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "bad.toml", {"ngnpro": {"workers": 0}})
    proc = subprocess.run([sys.executable, "-m", "ngnpro", "--config", str(cfg)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        line for line in proc.stderr.strip().splitlines() if line.startswith("ngnpro: configuration error")]
    assert "ngnpro.workers" in proc.stderr


def test_port_in_use_fails_cleanly(tmp_path: Path, sqlite_url: str) -> None:
    import socket

    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen(1)
        cfg = write_config(tmp_path / "msp.toml", {"database": {"url": sqlite_url},
                                                   "ngnpro": {"listen": f"127.0.0.1:{port}"}})
        proc = subprocess.run([sys.executable, "-m", "ngnpro", "--config", str(cfg)], capture_output=True,
                              text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 1
    assert "cannot listen" in proc.stderr and "Traceback" not in proc.stderr


def test_log_line_and_fault_answers_keep_working(ngnpro_server) -> None:
    assert f"http://127.0.0.1:{ngnpro_server.port}/ngnpro/" in ngnpro_server.output()
    assert http_post(ngnpro_server.url, b"<junk")[0] == 500
    status, _, data = http_post(ngnpro_server.url, envelope("Customer", "getAccount", "<id>1</id>").encode())
    assert status == 500
    from lxml import etree

    assert fault_code(etree.fromstring(data)) == 5002


def _exchange(sock, request: bytes) -> tuple[bytes, bytes]:
    """Send one request on ``sock``; ``(headers, body)`` of its response (by Content-Length)."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before a response"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside a response"
        body += chunk
    return head, body


def _request(version: str, connection: str | None) -> bytes:
    body = envelope("Customer", "getCustomers", "<query/>", auth=ADMIN).encode()
    hdrs = f"Connection: {connection}\r\n" if connection else ""
    return (f"POST /ngnpro/ {version}\r\nHost: 127.0.0.1\r\nContent-Type: text/xml; charset=utf-8\r\n"
            f'SOAPAction: ""\r\n{hdrs}Content-Length: {len(body)}\r\n\r\n').encode() + body


def test_keep_alive_only_when_the_client_asks(ngnpro_server) -> None:
    """PHP's SoapClient (HTTP/1.1) keeps its connection; PEAR (HTTP/1.0, Connection: close)
    gets a closed one, and so does an HTTP/1.1 client saying Connection: close."""
    import socket

    with socket.create_connection(("127.0.0.1", ngnpro_server.port), timeout=10) as s:
        for _ in range(3):  # several calls on one connection
            head, body = _exchange(s, _request("HTTP/1.1", "Keep-Alive"))
            assert head.startswith(b"HTTP/1.1 200") and b"getCustomersResponse" in body
            assert b"connection: close" not in head.lower()
        head, body = _exchange(s, _request("HTTP/1.1", None))
        assert head.startswith(b"HTTP/1.1 200") and b"connection: close" not in head.lower()
        head, _ = _exchange(s, _request("HTTP/1.1", "close"))
        assert b"connection: close" in head.lower()
        assert s.recv(100) == b""  # closed after the response
    for connection in (None, "close"):  # HTTP/1.0 as PEAR and libcurl send it
        with socket.create_connection(("127.0.0.1", ngnpro_server.port), timeout=10) as s:
            head, body = _exchange(s, _request("HTTP/1.0", connection))
            assert b"connection: close" in head.lower() and b"getCustomersResponse" in body
            assert s.recv(100) == b""
    with socket.create_connection(("127.0.0.1", ngnpro_server.port), timeout=10) as s:
        head, _ = _exchange(s, _request("HTTP/1.0", "keep-alive"))
        assert b"connection: keep-alive" in head.lower()
        head, body = _exchange(s, _request("HTTP/1.0", "keep-alive"))
        assert b"getCustomersResponse" in body


@pytest.mark.parametrize("raw", [
    b"Host: x\r\nContent-Type: text/xml; charset=UTF-8\r\nSOAPAction: \"\"\r\nContent-Length: 12\r\n\r\nbody",
    b"Host:x\r\ncontent-length:  7 \r\nX-Empty:\r\nConnection: Keep-Alive\r\n\r\n",
    b"Host: x\r\nX-Folded: a\r\n  b\r\nContent-Length: 3\r\n\r\n",  # obsolete line folding
    b"Host: x\r\nno colon here\r\nContent-Length: 3\r\n\r\n",
    b"Host: x\nContent-Length: 3\n\n",
    b"Host: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"",
])
def test_request_headers_read_as_gevent_reads_them(raw: bytes) -> None:
    """ngnpro.server.read_headers answers what gevent's own header parser answers."""
    from io import BytesIO

    from gevent.pywsgi import headers_factory

    from ngnpro.server import read_headers

    ours, theirs = read_headers(BytesIO(raw)), headers_factory(BytesIO(raw))
    for name in ("host", "Content-Length", "content-type", "connection", "x-empty", "x-folded", "soapaction", "none"):
        assert ours.get(name, "?") == theirs.get(name, "?"), name
        assert ours.getheader(name) == theirs.getheader(name)
    assert ours.typeheader == theirs.typeheader and ours.status == theirs.status
    assert list(ours.headers) == list(theirs.headers)
    del ours["content-length"]
    del theirs["content-length"]
    assert list(ours.headers) == list(theirs.headers)


def test_request_header_limits() -> None:
    from http.client import HTTPException
    from io import BytesIO

    from ngnpro.server import read_headers

    assert read_headers(BytesIO(b"X: " + b"a" * 70000 + b"\r\n\r\n")).status
    with pytest.raises(HTTPException):
        read_headers(BytesIO(b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n"))
