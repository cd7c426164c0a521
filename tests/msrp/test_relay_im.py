"""IM through the relay (RFC 4976): AUTH, reservations, forwarding both ways, reports."""

from __future__ import annotations

import pytest

from mediaproxy.msrp.message import Message, new_transaction_id

from .client import MsrpClient
from .conftest import Relay


def connect(relay: Relay, **kw: object) -> MsrpClient:
    return MsrpClient("127.0.0.1", relay.tcp, **kw)


def authed(relay: Relay, user: str, password: str, domain: str = "example.com",
           algorithm: str = "MD5") -> MsrpClient:
    c = connect(relay)
    final = c.auth(relay.uri(domain), user, password, algorithm)
    assert final.code == 200, final
    return c


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_auth_reserves_a_path(relay: Relay, algorithm: str) -> None:
    c = connect(relay)
    try:
        final = c.auth(relay.uri("example.com"), "alice", "alice-pw", algorithm)
        assert final.code == 200
        assert len(c.use_path) == 1
        use = c.use_path[0]
        assert use.port == relay.tcp and use.session_id and use.host == "127.0.0.1"  # advertised_host
        assert int(final.get("Expires")) == 3600
    finally:
        c.close()


def test_auth_challenge_offers_both_algorithms_in_the_domain_realm(relay: Relay) -> None:
    c = connect(relay)
    try:
        first = c.request(Message(new_transaction_id(), method="AUTH", headers=[
            ("To-Path", str(relay.uri("msrp.example.org"))), ("From-Path", str(c.uri))]))
        assert first.code == 401
        challenges = first.get_all("WWW-Authenticate")
        assert [v.split("algorithm=")[1].split(",")[0] for v in challenges] == ["SHA-256", "MD5"]
        assert all('realm="example.org"' in v for v in challenges)
    finally:
        c.close()


def test_second_domain_account(relay: Relay) -> None:
    c = authed(relay, "carol", "carol-pw", "example.org", "SHA-256")
    c.close()


def test_wrong_password_is_challenged_again_and_reserves_nothing(relay: Relay) -> None:
    c = connect(relay)
    try:
        final = c.auth(relay.uri("example.com"), "alice", "not-her-password", "SHA-256")
        assert final.code == 401
        assert c.use_path == []
        # the account of another domain does not authenticate in this one either
        assert c.auth(relay.uri("example.com"), "carol", "carol-pw", "MD5").code == 401
    finally:
        c.close()


def test_expires_out_of_bounds(relay: Relay) -> None:
    c = connect(relay)
    try:
        final = c.auth(relay.uri("example.com"), "alice", "alice-pw", expires=10)
        assert final.code == 423 and final.get("Min-Expires") == "60"
        final = c.auth(relay.uri("example.com"), "alice", "alice-pw", expires=100000)
        assert final.code == 423 and final.get("Max-Expires") == "3600"
        final = c.auth(relay.uri("example.com"), "alice", "alice-pw", expires=120)
        assert final.code == 200 and final.get("Expires") == "120"
    finally:
        c.close()


def test_im_between_two_clients_of_the_relay(relay: Relay) -> None:
    alice = authed(relay, "alice", "alice-pw")
    bob = authed(relay, "bob", "bob-pw", algorithm="SHA-256")
    try:
        # the SDP a=path of each side: its relay URI, then itself
        alice_path = [*alice.use_path, alice.uri]
        bob_path = [*bob.use_path, bob.uri]
        mid, responses = alice.send([alice.use_path[0], *bob_path], b"Hello Bob",
                                    Success_Report="yes")
        assert [r.code for r in responses] == [200]
        got = bob.wait_message(mid)
        assert bytes(got.body) == b"Hello Bob" and got.content_type == "text/plain"
        req = bob.requests.get(timeout=5)
        # what bob sees: only himself left in To-Path; the way back in From-Path
        assert [str(u) for u in req.to_path] == [str(bob.uri)]
        assert [str(u) for u in req.from_path] == [str(bob.use_path[0]), str(alice.use_path[0]), str(alice.uri)]
        # bob's success REPORT reaches alice through the relay
        report = alice.reports.get(timeout=5)
        assert report.get("Message-ID") == mid and report.get("Status").startswith("000 200")
        assert report.get("Byte-Range") == "1-9/9"
        # and bob answers along his own path
        mid2, responses = bob.send([bob.use_path[0], *alice_path], b"Hi Alice")
        assert [r.code for r in responses] == [200]
        assert bytes(alice.wait_message(mid2).body) == b"Hi Alice"
    finally:
        alice.close()
        bob.close()


def test_peer_without_relay_reaches_a_relay_client(relay: Relay) -> None:
    """The callee uses the relay; the caller connects straight to the callee's relay URI
    (no AUTH: it only reaches the client that reserved that URI)."""
    bob = authed(relay, "bob", "bob-pw")
    caller = connect(relay)
    try:
        mid, responses = caller.send([*bob.use_path, bob.uri], b"x" * 5000, chunk_size=1000)
        assert [r.code for r in responses] == [200] * 5
        got = bob.wait_message(mid)
        assert bytes(got.body) == b"x" * 5000 and got.chunks == 5
    finally:
        bob.close()
        caller.close()
