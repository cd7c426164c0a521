"""The ACM's session manager (RFC 6135) in the relay service, driven over its control
protocol as sipproxy drives it: both end-points connect actively to the ACM, which relays
between them; toward a callee that uses an MSRP relay the ACM connects to that relay."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from mediaproxy.msrp.message import Message, new_transaction_id
from mediaproxy.msrp.uri import MsrpUri, parse_path

from .client import MsrpClient
from .conftest import Relay, start_relay
from .test_relay_im import authed


@dataclass
class Acm:
    relay: Relay
    control: int

    def call(self, **request: object) -> dict:
        with socket.create_connection(("127.0.0.1", self.control), timeout=5) as s:
            s.sendall(json.dumps({"id": 7, **request}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                piece = s.recv(65536)
                assert piece, "control connection closed"
                data += piece
        answer = json.loads(data)
        assert answer["id"] == 7
        return answer


@pytest.fixture(scope="module")
def acm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Acm]:
    from tests.helpers import free_port

    control = free_port()
    relay = start_relay(tmp_path_factory.mktemp("acm"), control=f"127.0.0.1:{control}", transaction_timeout=3)
    relay.service.wait_tcp("127.0.0.1", control)
    yield Acm(relay, control)
    relay.service.stop()


def active(acm: Acm, own_path_of: MsrpClient, peer_path: list[MsrpUri]) -> None:
    """The end-point connects to the ACM URI of its SDP and binds with an empty SEND."""
    bind = Message(new_transaction_id(), method="SEND", headers=own_path_of.path_headers(peer_path))
    assert own_path_of.request(bind).code == 200


def test_im_through_the_acm(acm: Acm) -> None:
    alice = MsrpClient("127.0.0.1", acm.relay.tcp)
    bob = MsrpClient("127.0.0.1", acm.relay.tcp)
    try:
        call = {"call_id": os.urandom(6).hex(), "from_tag": "a1"}
        offer = acm.call(command="offer", path=[str(alice.uri)], **call)
        assert offer["ok"]
        to_bob = parse_path(" ".join(offer["path"]))
        answer = acm.call(command="answer", path=[str(bob.uri)], **call)
        to_alice = parse_path(" ".join(answer["path"]))
        assert to_bob != to_alice and to_bob[0].port == acm.relay.tcp
        active(acm, bob, to_bob)      # bob (the callee) connects first: alice not there yet
        active(acm, alice, to_alice)
        mid, responses = alice.send(to_alice, b"hi via the ACM", Success_Report="yes")
        assert [r.code for r in responses] == [200]
        assert bytes(bob.wait_message(mid).body) == b"hi via the ACM"
        req = bob.requests.get(timeout=5)
        assert req.get("To-Path") == str(bob.uri) and req.get("From-Path") == str(to_bob[0])
        report = alice.reports.get(timeout=5)  # bob's success report, back through the ACM
        assert report.get("Message-ID") == mid and report.get("Status").startswith("000 200")
        mid2, responses = bob.send(to_bob, b"and back", chunk_size=3)
        assert [r.code for r in responses] == [200] * 3
        assert bytes(alice.wait_message(mid2).body) == b"and back"
        summary = acm.call(command="remove", **call)["summary"]
        assert summary["messages"] == 2 and summary["bytes"] == len(b"hi via the ACM") + len(b"and back")
        _, responses = alice.send(to_alice, b"after the call")
        assert responses[0].code == 481
    finally:
        alice.close()
        bob.close()


def test_acm_is_no_open_relay(acm: Acm) -> None:
    alice = MsrpClient("127.0.0.1", acm.relay.tcp)
    mallory = MsrpClient("127.0.0.1", acm.relay.tcp)
    try:
        call = {"call_id": os.urandom(6).hex(), "from_tag": "a1"}
        acm.call(command="offer", path=[str(alice.uri)], **call)
        to_alice = parse_path(acm.call(command="answer", path=["msrp://bob.invalid:9/b;tcp"], **call)["path"][0])
        # someone other than the caller the SDP named cannot use the caller's ACM URI
        _, responses = mallory.send(to_alice, b"spam")
        assert responses[0].code == 403
        # nor send past the ACM to a host of its choice
        _, responses = alice.send([*to_alice, MsrpUri("msrp", "127.0.0.1", 9, "x", "tcp")], b"spam")
        assert responses[0].code == 403
        assert acm.call(command="answer", path=["msrp://x.invalid:1/y;tcp"], call_id="nope", from_tag="t") == \
            {"id": 7, "ok": False, "error": "no such session"}
        assert not acm.call(command="offer", path=["http://x"], **call)["ok"]
    finally:
        alice.close()
        mallory.close()


def test_acm_to_relay_and_back(acm: Acm, relay: Relay) -> None:
    """The caller is behind the ACM; the callee uses the MSRP relay (its answer's path
    starts with its relay URI).  The ACM connects to the relay; the callee's replies come
    from the relay to the ACM."""
    alice = MsrpClient("127.0.0.1", acm.relay.tcp)
    bob = authed(relay, "bob", "bob-pw")
    try:
        call = {"call_id": os.urandom(6).hex(), "from_tag": "a1"}
        to_bob = parse_path(acm.call(command="offer", path=[str(alice.uri)], **call)["path"][0])
        bob_sdp_path = [*bob.use_path, bob.uri]
        to_alice = parse_path(acm.call(command="answer", path=[str(u) for u in bob_sdp_path], **call)["path"][0])
        active(acm, alice, to_alice)
        mid, responses = alice.send(to_alice, b"to the relay's client", Success_Report="yes")
        assert [r.code for r in responses] == [200]
        assert bytes(bob.wait_message(mid).body) == b"to the relay's client"
        assert alice.reports.get(timeout=5).get("Status").startswith("000 200")
        # bob answers through his relay to the ACM URI of his SDP
        mid2, responses = bob.send([bob.use_path[0], *to_bob], b"from the relay's client")
        assert [r.code for r in responses] == [200]
        assert bytes(alice.wait_message(mid2).body) == b"from the relay's client"
    finally:
        alice.close()
        bob.close()


def test_relay_client_to_acm_caller(acm: Acm, relay: Relay) -> None:
    """The other way round: the caller uses the relay (its offer's path starts with its
    relay URI), the callee is behind the ACM."""
    carol = authed(relay, "carol", "carol-pw", "example.org")
    dave = MsrpClient("127.0.0.1", acm.relay.tcp)
    try:
        call = {"call_id": os.urandom(6).hex(), "from_tag": "c1"}
        to_dave = parse_path(acm.call(command="offer", path=[str(u) for u in (*carol.use_path, carol.uri)],
                                      **call)["path"][0])
        to_carol = parse_path(acm.call(command="answer", path=[str(dave.uri)], **call)["path"][0])
        active(acm, dave, to_dave)
        mid, responses = carol.send([carol.use_path[0], *to_carol], os.urandom(100000), chunk_size=4096)
        assert all(r.code == 200 for r in responses) and len(responses) == 25
        assert dave.wait_message(mid).next_byte == 100001
        mid2, responses = dave.send(to_dave, b"got it")
        assert [r.code for r in responses] == [200]
        assert bytes(carol.wait_message(mid2).body) == b"got it"
    finally:
        carol.close()
        dave.close()


def test_acm_over_tls(acm: Acm) -> None:
    """``msrps`` paths get ACM URIs on the TLS listener; the end-points verify its
    certificate and talk through it."""
    alice = MsrpClient("127.0.0.1", acm.relay.tls, tls=True, cafile=str(acm.relay.ca))
    bob = MsrpClient("127.0.0.1", acm.relay.tls, tls=True, cafile=str(acm.relay.ca))
    try:
        call = {"call_id": os.urandom(6).hex(), "from_tag": "t1"}
        to_bob = parse_path(acm.call(command="offer", path=[str(alice.uri)], **call)["path"][0])
        to_alice = parse_path(acm.call(command="answer", path=[str(bob.uri)], **call)["path"][0])
        assert {(u.scheme, u.port) for u in to_bob + to_alice} == {("msrps", acm.relay.tls)}
        active(acm, bob, to_bob)
        active(acm, alice, to_alice)
        mid, responses = alice.send(to_alice, "geheim über TLS".encode())
        assert [r.code for r in responses] == [200]
        assert bytes(bob.wait_message(mid).body) == "geheim über TLS".encode()
        acm.call(command="remove", **call)
    finally:
        alice.close()
        bob.close()
