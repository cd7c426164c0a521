"""The MSRP relay as the tests run it: ``python -m mediaproxy.msrp`` on loopback with a TCP
(allowed by ``allow_loopback_tcp``), a TLS and a WebSocket listener, a test certificate,
and accounts in two domains on SQLite."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from mediaproxy.msrp.uri import MsrpUri
from ngnpro.models import SipAccount, SipDomain
from ngnpro.models.database import open_database
from tests.helpers import Service, free_port, write_config

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
    it: (ca.pem, cert.pem, key.pem)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("MSP test CA")).issuer_name(name("MSP test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("relay.example.com")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("relay.example.com"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


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


def start_relay(folder: Path, **settings: object) -> Relay:
    db_url = f"sqlite:///{folder / 'msp.sqlite'}"
    provision(db_url)
    ca, cert, key = make_certificate(folder)
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
