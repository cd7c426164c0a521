"""sipproxy.media.relay.ProxyMedia on SIP-shaped messages, against a real relay process."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sipproxy.media.relay import MediaRelays, ProxyMedia
from sipproxy.proxy.nat import sender_behind_nat
from sipproxy.sip.sdp import parse
from tests.mediaproxy.rtp import Endpoint, start_relay


def body(ep: Endpoint, ip: str | None = None) -> bytes:
    ip = ip or ep.host
    return (f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
            f"m=audio {ep.port} RTP/AVP 8\r\n").encode()


class Headers(dict):
    def get(self, key, default=None):  # noqa: ANN001, ANN201
        return super().get(key.lower(), default)


def msg(method="INVITE", status=0, b=b"", to_tag=None, from_tag="caller", received=None, call_id="seam-1"):
    h = Headers({"content-type": "application/sdp"} if b else {})
    return SimpleNamespace(method=method, status=status, body=b, headers=h, call_id=call_id,
                           from_=SimpleNamespace(tag=from_tag), to=SimpleNamespace(tag=to_tag),
                           vias=[SimpleNamespace(host="192.0.2.7", port=5060, rport=None, received=received)])


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seam")
    svc, control, rng = start_relay(tmp, f"sqlite:///{tmp / 'msp.sqlite'}")
    relays = MediaRelays([f"127.0.0.1:{control}"])
    yield relays
    relays.close()
    svc.stop()


def test_invite_200_bye(relay):
    media = ProxyMedia(relay, "always")
    a, b = Endpoint(), Endpoint()
    invite = msg(b=body(a))
    media.offer(None, invite)
    seen_by_callee = parse(invite.body).media[0]
    assert seen_by_callee.port != a.port
    ok = msg(status=200, b=body(b), to_tag="callee")
    media.answer(None, invite, ok)
    seen_by_caller = parse(ok.body).media[0]
    a.send((seen_by_caller.address, seen_by_caller.port), 2)
    assert len(b.receive(2)) == 2
    b.send((seen_by_callee.address, seen_by_callee.port), 1)
    assert len(a.receive(1)) == 1
    # a re-INVITE that fails keeps the session; BYE releases it with the summary
    reinvite = msg(b=body(a), to_tag="callee")
    media.offer(None, reinvite)
    assert parse(reinvite.body).media[0].port == seen_by_callee.port
    assert media.release(None, reinvite) is None
    summary = media.release(None, msg("BYE", to_tag="callee"))
    s = summary["streams"][0]
    assert (s["packets_caller_to_callee"], s["packets_callee_to_caller"], s["codec"]) == (2, 1, "PCMA")
    assert summary["reason"] == "bye"


def test_late_offer_and_policy(relay):
    media = ProxyMedia(relay, "nat")
    a, b = Endpoint(), Endpoint()
    # not behind NAT: not relayed
    plain = msg(b=body(a), call_id="seam-plain")
    media.offer(None, plain)
    assert plain.body == body(a)
    assert not sender_behind_nat(plain)
    # behind NAT (Via received=): relayed; the INVITE has no SDP, the 200 offers, the ACK answers
    invite = msg(received="198.51.100.9", call_id="seam-late")
    assert sender_behind_nat(invite) and sender_behind_nat(msg(b=body(a, "192.168.1.5")))
    media.offer(None, invite)
    ok = msg(status=200, b=body(b), to_tag="callee", call_id="seam-late")
    media.answer(None, invite, ok)
    to_relay_from_a = parse(ok.body).media[0]
    ack = msg("ACK", b=body(a), to_tag="callee", call_id="seam-late")
    media.ack(None, ack)
    to_relay_from_b = parse(ack.body).media[0]
    assert to_relay_from_a.port != b.port and to_relay_from_b.port != a.port
    a.send((to_relay_from_a.address, to_relay_from_a.port), 1)
    b.send((to_relay_from_b.address, to_relay_from_b.port), 1)
    assert len(b.receive(1)) == 1 and len(a.receive(1)) == 1
    assert media.release(None, msg("INVITE", call_id="seam-late"))["reason"] == "failed"
