"""Two relays (RFC 4976's usual case): alice's relay and bob's relay, each client
authenticated to its own over TLS, the relays connecting to each other over TLS and
checking each other's certificate (``tls_ca_file``)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .client import MsrpClient
from .conftest import make_certificate, start_relay


def test_im_and_file_across_two_relays_over_tls(tmp_path: Path) -> None:
    certs = make_certificate(tmp_path)
    (tmp_path / "r1").mkdir()
    (tmp_path / "r2").mkdir()
    relay1 = start_relay(tmp_path / "r1", certs, tls_ca_file=str(certs[0]))
    relay2 = start_relay(tmp_path / "r2", certs, tls_ca_file=str(certs[0]))
    alice = MsrpClient("127.0.0.1", relay1.tls, tls=True, cafile=str(certs[0]))
    bob = MsrpClient("127.0.0.1", relay2.tls, tls=True, cafile=str(certs[0]))
    try:
        assert alice.auth(relay1.uri("example.com", relay1.tls, "msrps"), "alice", "alice-pw", "SHA-256").code == 200
        assert bob.auth(relay2.uri("example.com", relay2.tls, "msrps"), "bob", "bob-pw", "SHA-256").code == 200
        to_bob = [alice.use_path[0], bob.use_path[0], bob.uri]
        mid, responses = alice.send(to_bob, b"across two relays", Success_Report="yes")
        assert [r.code for r in responses] == [200]
        assert bytes(bob.wait_message(mid).body) == b"across two relays"
        req = bob.requests.get(timeout=5)
        assert req.get("From-Path") == f"{bob.use_path[0]} {alice.use_path[0]} {alice.uri}"
        assert alice.reports.get(timeout=5).get("Status").startswith("000 200")
        data = os.urandom(3 << 20)
        mid, responses = bob.send([bob.use_path[0], alice.use_path[0], alice.uri], data, chunk_size=128 * 1024)
        assert all(r.code == 200 for r in responses) and len(responses) == 24
        assert hashlib.sha256(bytes(alice.wait_message(mid).body)).digest() == hashlib.sha256(data).digest()
        # relay1 reached relay2 over TLS and said so
        assert "reserved" in relay2.service.output() and "cannot reach next hop" not in relay1.service.output()
    finally:
        alice.close()
        bob.close()
        relay1.service.stop()
        relay2.service.stop()


def test_a_next_hop_with_an_untrusted_certificate_is_not_used(tmp_path: Path) -> None:
    """Bob's relay has a certificate alice's relay does not trust: alice's SEND is refused
    481 (the next hop is not reachable) instead of going over an unverified connection."""
    (tmp_path / "r1").mkdir()
    (tmp_path / "r2").mkdir()
    relay1 = start_relay(tmp_path / "r1")  # its own CA, and the system's for next hops
    relay2 = start_relay(tmp_path / "r2")
    alice = MsrpClient("127.0.0.1", relay1.tls, tls=True, cafile=str(relay1.ca))
    bob = MsrpClient("127.0.0.1", relay2.tls, tls=True, cafile=str(relay2.ca))
    try:
        assert alice.auth(relay1.uri("example.com", relay1.tls, "msrps"), "alice", "alice-pw").code == 200
        assert bob.auth(relay2.uri("example.com", relay2.tls, "msrps"), "bob", "bob-pw").code == 200
        _, responses = alice.send([alice.use_path[0], bob.use_path[0], bob.uri], b"hello?")
        assert responses[0].code == 481
        assert "certificate verify failed" in relay1.service.output()
        assert not bob.received
    finally:
        alice.close()
        bob.close()
        relay1.service.stop()
        relay2.service.stop()
