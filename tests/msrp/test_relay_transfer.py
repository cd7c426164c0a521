"""Large and chunked transfers through the relay: a 50 MB file checked by its hash with the
relay's memory bounded (also while the receiver reads slowly), a chunked message
interrupted and resumed, an aborted message, a leg that drops, and TLS with a client that
verifies the relay's certificate."""

from __future__ import annotations

import hashlib
import os
import ssl
import threading
import time

import pytest

from mediaproxy.msrp.message import ByteRange, Message, new_transaction_id

from .client import MsrpClient
from .conftest import Relay
from .test_relay_im import authed


def test_50mb_file_through_the_relay_with_bounded_memory(relay: Relay) -> None:
    data = os.urandom(1 << 20) * 50  # 50 MB (a repeated random MiB: cheap to make, still checked whole)
    digest = hashlib.sha256(data).hexdigest()
    alice = authed(relay, "alice", "alice-pw")
    bob = authed(relay, "bob", "bob-pw")
    bob.keep_bodies = False
    rss_before, _ = relay.rss_kib()
    try:
        t0 = time.monotonic()
        mid, responses = alice.send([alice.use_path[0], *bob.use_path, bob.uri], data,
                                    content_type="application/octet-stream", chunk_size=256 * 1024,
                                    window=8, Success_Report="yes",
                                    Content_Disposition='attachment; filename="big.bin"')
        got = bob.wait_message(mid, timeout=120)
        elapsed = time.monotonic() - t0
        assert all(r.code == 200 for r in responses) and len(responses) == 200
        assert got.sha256.hexdigest() == digest and got.next_byte - 1 == len(data)
        report = alice.reports.get(timeout=10)
        assert report.get("Byte-Range") == f"1-{len(data)}/{len(data)}"
        rss_after, hwm = relay.rss_kib()
        # the relay never held more than a few chunks of the 50 MB
        assert hwm - rss_before < 16 * 1024, (rss_before, rss_after, hwm)
        print(f"50 MB through the relay in {elapsed:.1f}s, relay RSS {rss_before}->{rss_after} KiB, peak {hwm}")
    finally:
        alice.close()
        bob.close()


def test_slow_receiver_stops_the_sender_not_the_relay_memory(relay: Relay) -> None:
    """Bob stops reading for 2 s: alice's 40 MB push stalls (TCP pushes back through the
    relay) instead of piling up in the relay; when bob reads again it all arrives."""
    alice = authed(relay, "alice", "alice-pw")
    bob = authed(relay, "bob", "bob-pw")
    bob.keep_bodies = False
    _, hwm_before = relay.rss_kib()
    data = os.urandom(1 << 20) * 40
    result: dict = {}
    try:
        bob.reading.clear()
        sender = threading.Thread(target=lambda: result.update(zip(("mid", "responses"), alice.send(
            [alice.use_path[0], *bob.use_path, bob.uri], data, chunk_size=512 * 1024, window=80), strict=True)))
        sender.start()
        time.sleep(2.0)
        # held back: what is in flight is bounded by the socket buffers, not by the relay
        # (about 8 MB sit in the four sockets' buffers on loopback; the rest waits in alice)
        assert sender.is_alive() and alice.sent_bytes < 30 * (1 << 20), alice.sent_bytes
        _, hwm = relay.rss_kib()
        assert hwm - hwm_before < 16 * 1024
        bob.reading.set()
        sender.join(60)
        got = bob.wait_message(result["mid"], timeout=60)
        assert got.sha256.hexdigest() == hashlib.sha256(data).hexdigest()
        assert all(r.code == 200 for r in result["responses"])
    finally:
        bob.reading.set()
        alice.close()
        bob.close()


def test_chunked_message_interrupted_and_resumed(relay: Relay) -> None:
    """RFC 4975 section 7.1.1: the sender ends a chunk early (``+``, end byte ``*``) and
    later sends the rest from the next byte; the receiver gets the whole message."""
    alice = authed(relay, "alice", "alice-pw")
    bob = authed(relay, "bob", "bob-pw")
    body = os.urandom(30000)
    to = [alice.use_path[0], *bob.use_path, bob.uri]
    try:
        headers = alice.path_headers(to, Message_ID="resume-1", Content_Type="application/octet-stream")
        cut = Message(new_transaction_id(), method="SEND", headers=list(headers), body=body[:12345], flag="+")
        cut.set("Byte-Range", str(ByteRange(1, None, len(body))))
        assert alice.request(cut).code == 200
        # another message goes through in between
        mid, responses = alice.send(to, b"meanwhile")
        assert responses[0].code == 200
        assert bytes(bob.wait_message(mid).body) == b"meanwhile"
        assert not bob.received["resume-1"].complete and bob.received["resume-1"].next_byte == 12346
        _, responses = alice.send(to, body[12345:], content_type="application/octet-stream",
                                  message_id="resume-1", start=12346, total=len(body), chunk_size=8000)
        assert all(r.code == 200 for r in responses)
        got = bob.wait_message("resume-1")
        assert bytes(got.body) == body and got.chunks == 1 + 3
    finally:
        alice.close()
        bob.close()


def test_aborted_message(relay: Relay) -> None:
    alice = authed(relay, "alice", "alice-pw")
    bob = authed(relay, "bob", "bob-pw")
    to = [alice.use_path[0], *bob.use_path, bob.uri]
    try:
        headers = alice.path_headers(to, Message_ID="abort-1", Content_Type="text/plain")
        first = Message(new_transaction_id(), method="SEND", headers=list(headers), body=b"a" * 100, flag="+")
        first.set("Byte-Range", "1-100/300")
        assert alice.request(first).code == 200
        stop = Message(new_transaction_id(), method="SEND", headers=list(headers), flag="#")
        stop.set("Byte-Range", "101-100/300")
        assert alice.request(stop).code == 200
        got = bob.wait_message("abort-1")
        assert got.aborted and not got.complete and len(got.body) == 100
    finally:
        alice.close()
        bob.close()


def test_receiving_leg_drops(relay: Relay) -> None:
    """Bob's connection goes away: what alice had in flight to him comes back as a failure
    REPORT (481), and what she sends next is refused 481."""
    alice = authed(relay, "alice", "alice-pw")
    bob = authed(relay, "bob", "bob-pw")
    to = [alice.use_path[0], *bob.use_path, bob.uri]
    try:
        # bob will not answer: he reads, but is gone before his answer matters -- make the
        # relay wait for one by pausing bob's answers (Failure-Report yes, no response yet)
        bob.send_raw = lambda data: None  # type: ignore[method-assign]
        mid, responses = alice.send(to, b"are you there?")
        assert responses[0].code == 200  # the relay's hop-by-hop answer
        bob.wait_message(mid)
        bob.close()
        report = alice.reports.get(timeout=10)
        assert report.get("Message-ID") == mid and report.get("Status").startswith("000 481")
        assert report.get("From-Path") == str(alice.use_path[0])
        _, responses = alice.send(to, b"hello?")
        assert responses[0].code == 481
    finally:
        alice.close()


def test_no_answer_from_the_next_hop_is_reported_408(relay: Relay) -> None:
    alice = authed(relay, "alice", "alice-pw")
    bob = authed(relay, "bob", "bob-pw")
    try:
        bob.send_raw = lambda data: None  # type: ignore[method-assign]
        mid, _ = alice.send([alice.use_path[0], *bob.use_path, bob.uri], b"anyone?")
        report = alice.reports.get(timeout=10)  # transaction_timeout is 3 s here
        assert report.get("Message-ID") == mid and report.get("Status").startswith("000 408")
    finally:
        alice.close()
        bob.close()


def test_tls_with_a_verified_certificate(relay: Relay) -> None:
    alice = MsrpClient("127.0.0.1", relay.tls, tls=True, cafile=str(relay.ca), server_hostname="relay.example.com")
    bob = MsrpClient("127.0.0.1", relay.tls, tls=True, cafile=str(relay.ca))  # the IP address SAN
    try:
        assert alice.sock.version() in ("TLSv1.2", "TLSv1.3")
        assert alice.auth(relay.uri("example.com", relay.tls, "msrps"), "alice", "alice-pw", "SHA-256").code == 200
        assert bob.auth(relay.uri("example.com", relay.tls, "msrps"), "bob", "bob-pw").code == 200
        assert alice.use_path[0].scheme == "msrps" and alice.use_path[0].port == relay.tls
        mid, responses = alice.send([alice.use_path[0], *bob.use_path, bob.uri], "über TLS".encode())
        assert responses[0].code == 200
        assert bytes(bob.wait_message(mid).body) == "über TLS".encode()
    finally:
        alice.close()
        bob.close()
    # a client that does not trust the issuer refuses the relay
    _refuses_the_relay(relay.tls)
    # and one that expects another name too
    _refuses_the_relay(relay.tls, cafile=str(relay.ca), server_hostname="other.example.com")


def _refuses_the_relay(port: int, **tls: str) -> None:
    """The client's certificate check fails.  Once in a CI run (2026-12-08) the handshake
    just after the two connections above closed ended instead in an unexpected_message
    alert from the relay's side (not reproduced in isolation, cause not found): such an
    attempt is tried again, twice at most; a connection made is a failure at once."""
    for _ in range(3):
        try:
            client = MsrpClient("127.0.0.1", port, tls=True, **tls)
        except ssl.SSLCertVerificationError:
            return
        except ssl.SSLError as exc:
            if "UNEXPECTED_MESSAGE" not in str(exc):
                raise
            continue
        client.close()
        pytest.fail("the client accepted the relay's certificate")
    pytest.fail("three handshakes ended in unexpected_message alerts")
