"""The MSRP relay as the tests run it: ``python -m mediaproxy.msrp`` on loopback with TCP
(allowed by ``allow_loopback_tcp``), TLS, WebSocket and secure WebSocket listeners, a test
certificate made with openssl, and accounts in two domains on SQLite."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from mediaproxy.msrp.uri import MsrpUri
from ngnpro.models import SipAccount, SipDomain
from ngnpro.models.database import open_database
from tests.helpers import Service, free_port, require_tool, write_config

#: domain -> {user: password}
ACCOUNTS = {"example.com": {"alice": "alice-pw", "bob": "bob-pw"}, "example.org": {"carol": "carol-pw"}}


def provision(url: str) -> None:
    engine, sessions = open_database(url)
    with sessions() as s, s.begin():
        assert isinstance(s, Session)
        for domain, users in ACCOUNTS.items():
            s.add(SipDomain(domain=domain))
            s.flush()
            for user, pw in users.items():
                s.add(SipAccount(username=user, domain=domain,
                                 ha1=hashlib.md5(f"{user}:{domain}:{pw}".encode()).hexdigest(),
                                 ha1_sha256=hashlib.sha256(f"{user}:{domain}:{pw}".encode()).hexdigest()))
    engine.dispose()


def make_certificate(folder: Path) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for relay.example.com and 127.0.0.1 signed by
    it, made with the openssl command: (ca.pem, cert.pem, key.pem)."""
    openssl = require_tool("openssl")
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    cert, key, csr, ext = folder / "cert.pem", folder / "key.pem", folder / "cert.csr", folder / "cert.ext"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=folder)

    run("req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "2", "-subj", "/CN=MSP test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=relay.example.com")
    ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                   "subjectAltName=DNS:relay.example.com,IP:127.0.0.1\nsubjectKeyIdentifier=hash\n"
                   "authorityKeyIdentifier=keyid\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return ca, cert, key


@dataclass
class Relay:
    service: Service
    tcp: int
    tls: int
    ws: int
    wss: int
    ca: Path
    db_url: str

    def uri(self, host: str = "example.com", port: int | None = None, scheme: str = "msrp") -> MsrpUri:
        """The relay's own URI as a client writes it: the host name picks the domain."""
        return MsrpUri(scheme, host, port or self.tcp, "", "tcp")

    def rss_kib(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) of the relay process in KiB."""
        fields = dict(line.split(":", 1) for line in
                      Path(f"/proc/{self.service.proc.pid}/status").read_text().splitlines() if ":" in line)
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def start_relay(folder: Path, certs: tuple[Path, Path, Path] | None = None, **settings: object) -> Relay:
    """A relay process on fresh ports and a fresh database; ``certs`` (ca, cert, key)
    shares a certificate with another relay (default: a new test CA)."""
    db_url = f"sqlite:///{folder / 'msp.sqlite'}"
    provision(db_url)
    ca, cert, key = certs or make_certificate(folder)
    for _ in range(3):
        tcp, tls, ws, wss = free_port(), free_port(), free_port(), free_port()
        config = write_config(folder / "msp.toml", {
            "database": {"url": db_url},
            "logging": {"level": "debug"},
            "msrprelay": {"listen": [f"tcp:127.0.0.1:{tcp}", f"tls:127.0.0.1:{tls}", f"ws:127.0.0.1:{ws}",
                                     f"wss:127.0.0.1:{wss}"],
                          "tls_cert": str(cert), "tls_key": str(key), "allow_loopback_tcp": True,
                          "advertised_host": "127.0.0.1", **settings},
        })
        service = Service("mediaproxy.msrp", config)
        try:
            service.wait_tcp("127.0.0.1", tcp)
            service.wait_tcp("127.0.0.1", ws)
            service.wait_tcp("127.0.0.1", wss)
            return Relay(service, tcp, tls, ws, wss, ca, db_url)
        except RuntimeError:
            service.stop()
            if service.proc.returncode not in (None, 1):
                raise
    raise RuntimeError("the relay did not start")


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    r = start_relay(tmp_path_factory.mktemp("msrprelay"), idle_timeout=20, transaction_timeout=3,
                    max_connections_per_ip=40)
    yield r
    r.service.stop()
