"""``python -m sipproxy`` as an operator starts it: bad configurations, TLS from config."""

from __future__ import annotations

import ssl
import subprocess
import sys

from tests.helpers import Service, free_port, write_config


def _run(tmp_path, sections: dict) -> subprocess.CompletedProcess:
    cfg = write_config(tmp_path / "bad.toml", sections)
    return subprocess.run([sys.executable, "-m", "sipproxy", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=60)


def test_bad_configuration_is_one_line_and_exit_2(tmp_path):
    for sections in (
        {"sipproxy": {"listen": ["sctp:127.0.0.1:5060"]}},
        {"sipproxy": {"workers": 0}},
        {"sipproxy": {"listen": ["tls:127.0.0.1:5061"]}},  # TLS without a certificate
        {"sipproxy": {"tls_cert": "/nonexistent.pem", "tls_key": "/nonexistent.key"}},
        {"sipproxy": {"no_such_key": 1}},
    ):
        r = _run(tmp_path, sections)
        assert r.returncode == 2, (sections, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("sipproxy: configuration error: "), r.stderr


def test_tls_listener_from_config_answers_options(tmp_path, sqlite_url):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    port = free_port()
    cfg = write_config(tmp_path / "msp.toml", {
        "database": {"url": sqlite_url},
        "sipproxy": {"listen": [f"tls:127.0.0.1:{port}"], "tls_cert": str(cert), "tls_key": str(key),
                     "media_relay": "never"},
    })
    svc = Service("sipproxy", cfg).wait_tcp("127.0.0.1", port)
    try:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        import socket

        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10)) as c:
            c.sendall(b"\r\n\r\n")  # RFC 5626 ping first
            assert c.recv(2) == b"\r\n"
            c.sendall((f"OPTIONS sip:127.0.0.1:{port};transport=tls SIP/2.0\r\n"
                       "Via: SIP/2.0/TLS 127.0.0.1:1;branch=z9hG4bKtls1\r\n"
                       "From: <sip:mon@monitor.example>;tag=1\r\nTo: <sip:127.0.0.1>\r\n"
                       "Call-ID: tls1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode())
            reply = c.recv(65535)
        assert reply.startswith(b"SIP/2.0 200 "), reply
    finally:
        svc.stop()
