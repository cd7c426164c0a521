"""End to end: SIP through ``python -m sipproxy`` with SDP offering ``m=message``, MSRP
through the ACM of ``python -m mediaproxy.msrp`` (RFC 6135), and ACM to relay (RFC 4976).

The user agents are the test UA (tests/reliability/sipua.py) with MSRP SDP; the MSRP
end-points are the test client written from RFC 4975.  The caller's SDP names a private
address, so the proxy's NAT test (``media_relay = "nat"``) engages the ACM."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session as DbSession

from mediaproxy.msrp.uri import MsrpUri, parse_path
from ngnpro.models import MediaSession
from tests.helpers import free_port
from tests.reliability.sipua import UA, Dialog

from .client import MsrpClient
from .conftest import Relay, start_relay
from .test_acm import Acm, active
from .test_relay_im import authed


def msrp_sdp(path: list[MsrpUri], ip: str = "127.0.0.1", file: bool = False) -> str:
    first = path[0]
    extra = ('a=sendonly\r\na=file-selector:name:"report.pdf" type:application/pdf size:1048576\r\n'
             "a=file-transfer-id:vBnG916bdberum2fFEABR1FR3ExZMUrd\r\n" if file else "")
    return (f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
            f"m=message {first.port} {'TCP/TLS/MSRP' if first.secure else 'TCP/MSRP'} *\r\n"
            f"a=accept-types:text/plain application/pdf\r\n{extra}"
            f"a=path:{' '.join(str(u) for u in path)}\r\na=setup:actpass\r\n")


def sdp_attr(body: str | bytes, name: str) -> str:
    text = body.decode() if isinstance(body, bytes) else body
    m = re.search(rf"^a={name}:(.*?)\r?$", text, re.M)
    assert m, text
    return m.group(1).strip()


class MsrpUA(UA):
    """The test UA answering INVITEs with the MSRP SDP of ``answer_path``."""

    answer_path: list[MsrpUri] = []

    def send(self, text: str, dest: tuple[str, int] | None = None) -> None:
        try:
            super().send(text, dest)
        except OSError:
            if not self._closed:  # (a retransmission arriving after close() is no one's business)
                raise

    def _serve(self, req, src) -> None:  # noqa: ANN001
        if req.method != "INVITE" or req.to.tag:
            return super()._serve(req, src)
        rr = req.headers.getall("record-route")
        from sipproxy.sip.uri import parse_name_addr

        d = Dialog(req.call_id, uuid.uuid4().hex[:10], req.from_.tag, str(req.to.uri), str(req.from_.uri),
                   str(parse_name_addr(req.headers.get("contact")).uri), list(rr), 0)
        d.extra["offer"] = req.body
        self.dialogs[req.call_id] = d
        self.send(self._reply(req, 200, "OK", d.local_tag, body=msrp_sdp(self.answer_path), record_route=True), src)


@dataclass
class Platform:
    acm: Acm
    proxy: object


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    e2e = pytest.importorskip("tests.sipproxy_e2e.sipp_support")
    folder = tmp_path_factory.mktemp("msrp_e2e")
    control = free_port()
    (folder / "relay").mkdir()
    relay = start_relay(folder / "relay", control=f"127.0.0.1:{control}")
    relay.service.wait_tcp("127.0.0.1", control)
    (folder / "proxy").mkdir()
    proxy = None
    try:
        proxy = e2e.ProxyProcess(folder / "proxy", relay.db_url, media_relay="nat",
                                 msrp_acm=f"127.0.0.1:{control}")
        yield Platform(Acm(relay, control), proxy)
    finally:
        if proxy is not None:
            proxy.stop()
        relay.service.stop()


def call(platform: Platform, caller_path_of: MsrpClient, callee_path: list[MsrpUri], file: bool = False,
         ) -> tuple[UA, MsrpUA, Dialog, str, str]:
    """alice (behind NAT, says her SDP) calls bob; (alice, bob, dialog, offer at bob, answer at alice)."""
    port = platform.proxy.port  # type: ignore[attr-defined]
    bob = MsrpUA("bob", "bob-pw", port)
    bob.answer_path = callee_path
    assert bob.register().status == 200
    alice = UA("alice", "alice-pw", port)
    r, dialog = alice.call("bob", body=msrp_sdp([caller_path_of.uri], ip="10.0.0.1", file=file))
    assert r is not None and r.status == 200 and dialog is not None, r
    offer_at_bob = bob.dialogs[dialog.call_id].extra["offer"]
    return alice, bob, dialog, offer_at_bob, r.body


def stored_summary(db_url: str, call_id: str) -> MediaSession:
    engine = create_engine(db_url)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with DbSession(engine) as db:
                row = db.scalars(select(MediaSession).where(MediaSession.call_id == call_id)).first()
            if row is not None:
                return row
            time.sleep(0.1)
    finally:
        engine.dispose()
    raise AssertionError(f"no media_sessions row for {call_id}")


def test_im_through_the_acm(platform: Platform) -> None:
    acm = platform.acm
    alice_msrp = MsrpClient("127.0.0.1", acm.relay.tcp)
    bob_msrp = MsrpClient("127.0.0.1", acm.relay.tcp)
    alice, bob, dialog, offer, answer = call(platform, alice_msrp, [bob_msrp.uri])
    try:
        to_bob = parse_path(sdp_attr(offer, "path"))
        to_alice = parse_path(sdp_attr(answer, "path"))
        # both SDPs now name the ACM, one URI per side, and make the end-points active
        assert [u.port for u in to_bob + to_alice] == [acm.relay.tcp] * 2 and to_bob != to_alice
        assert sdp_attr(offer, "setup") == "passive" and sdp_attr(answer, "setup") == "passive"
        assert f"m=message {acm.relay.tcp} TCP/MSRP" in offer.decode()
        assert acm.call(command="ping")["sessions"] == 1
        active(acm, bob_msrp, to_bob)
        active(acm, alice_msrp, to_alice)
        mid, responses = alice_msrp.send(to_alice, b"Hello over MSRP")
        assert [r.code for r in responses] == [200]
        assert bytes(bob_msrp.wait_message(mid).body) == b"Hello over MSRP"
        mid, responses = bob_msrp.send(to_bob, b"Hello back")
        assert [r.code for r in responses] == [200]
        assert bytes(alice_msrp.wait_message(mid).body) == b"Hello back"
        assert alice.bye(dialog).status == 200
        # the BYE released the ACM session, whose summary is stored like the RTP relay's
        assert acm.call(command="ping")["sessions"] == 0
        row = stored_summary(acm.relay.db_url, dialog.call_id)
        assert row.reason == "bye" and row.relay.startswith("msrp-acm")
        stream = json.loads(row.streams)[0]
        assert (stream["media_type"], stream["packets_caller_to_callee"], stream["bytes_callee_to_caller"]) == \
            ("message", 1, len(b"Hello back"))
        _, responses = alice_msrp.send(to_alice, b"after BYE")
        assert responses[0].code == 481
    finally:
        for x in (alice_msrp, bob_msrp, alice, bob):
            x.close()


def test_file_transfer_from_acm_caller_to_relay_callee(platform: Platform, relay: Relay) -> None:
    """ACM to relay: bob answers with his relay's path (RFC 4976); the file-transfer
    attributes (RFC 5547) cross the proxy untouched; 1 MB arrives intact."""
    acm = platform.acm
    alice_msrp = MsrpClient("127.0.0.1", acm.relay.tcp)
    bob_msrp = authed(relay, "bob", "bob-pw")
    alice, bob, dialog, offer, answer = call(platform, alice_msrp, [*bob_msrp.use_path, bob_msrp.uri], file=True)
    try:
        assert sdp_attr(offer, "file-selector") == 'name:"report.pdf" type:application/pdf size:1048576'
        assert sdp_attr(offer, "file-transfer-id") == "vBnG916bdberum2fFEABR1FR3ExZMUrd"
        to_alice = parse_path(sdp_attr(answer, "path"))
        to_bob = parse_path(sdp_attr(offer, "path"))
        active(acm, alice_msrp, to_alice)
        data = os.urandom(1 << 20)
        mid, responses = alice_msrp.send(to_alice, data, content_type="application/pdf", chunk_size=64 * 1024,
                                         Success_Report="yes")
        assert all(r.code == 200 for r in responses)
        got = bob_msrp.wait_message(mid)
        assert hashlib.sha256(bytes(got.body)).digest() == hashlib.sha256(data).digest()
        assert alice_msrp.reports.get(timeout=5).get("Status").startswith("000 200")
        # bob's reply goes out through his relay to the ACM
        mid, responses = bob_msrp.send([bob_msrp.use_path[0], *to_bob], b"thanks")
        assert [r.code for r in responses] == [200]
        assert bytes(alice_msrp.wait_message(mid).body) == b"thanks"
        assert alice.bye(dialog).status == 200
    finally:
        for x in (alice_msrp, bob_msrp, alice, bob):
            x.close()


def test_caller_not_behind_nat_keeps_its_path(platform: Platform) -> None:
    """``media_relay = "nat"`` and nobody behind NAT: the SDP goes through unchanged."""
    port = platform.proxy.port  # type: ignore[attr-defined]
    bob = MsrpUA("bob", "bob-pw", port)
    bob.answer_path = [MsrpUri("msrp", "127.0.0.1", 7001, "bobsess", "tcp")]
    alice_uri = MsrpUri("msrp", "127.0.0.1", 7000, "alicesess", "tcp")
    try:
        assert bob.register().status == 200
        alice = UA("alice", "alice-pw", port)
        r, dialog = alice.call("bob", body=msrp_sdp([alice_uri]))
        assert r is not None and r.status == 200
        assert sdp_attr(bob.dialogs[dialog.call_id].extra["offer"], "path") == str(alice_uri)
        assert sdp_attr(r.body, "path") == str(bob.answer_path[0])
        alice.bye(dialog)
        alice.close()
    finally:
        bob.close()


