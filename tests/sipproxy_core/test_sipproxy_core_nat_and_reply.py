"""The core's reply address (RFC 3261 18.2.2 / RFC 3581) worked out when the top Via is
stamped, and the SDP scan of the ``nat`` media policy: both were rewritten to do less work
per message, so their edge cases are pinned here."""

from __future__ import annotations

import pytest

from sipproxy.proxy.nat import sender_behind_nat
from sipproxy.runtime.edge import Core
from sipproxy.sip.addressing import Inbound, Listener, Peer
from sipproxy.sip.parser import parse_message


def _invite(via: str, body: bytes = b"") -> bytes:
    return (f"INVITE sip:b@example.com SIP/2.0\r\nVia: {via}\r\nFrom: <sip:a@example.com>;tag=1\r\n"
            f"To: <sip:b@example.com>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


@pytest.mark.parametrize(("via", "source", "reply_to", "stamped"), [
    # rport asked for: back to the source, received and rport filled in
    ("SIP/2.0/UDP 10.0.0.2:5070;branch=z9hG4bKa;rport", Peer("udp", "198.51.100.7", 4000),
     Peer("udp", "198.51.100.7", 4000), ";rport=4000;received=198.51.100.7"),
    # no rport, sent-by differs from the source: to received, at the Via's port
    ("SIP/2.0/UDP 10.0.0.2:5070;branch=z9hG4bKa", Peer("udp", "198.51.100.7", 4000),
     Peer("udp", "198.51.100.7", 5070), ";received=198.51.100.7"),
    # no rport, sent-by is the source (no port: 5060)
    ("SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKa", Peer("udp", "198.51.100.7", 4000),
     Peer("udp", "198.51.100.7", 5060), None),
    # a host name that is the source's: the source's address, Via port
    ("SIP/2.0/UDP pc.example.com:5080;branch=z9hG4bKa", Peer("udp", "198.51.100.7", 4000),
     Peer("udp", "198.51.100.7", 5080), ";received=198.51.100.7"),
    # a stream: over the connection it came on, whatever the Via says
    ("SIP/2.0/TCP 10.0.0.2:5070;branch=z9hG4bKa", Peer("tcp", "198.51.100.7", 4000),
     Peer("tcp", "198.51.100.7", 4000), ";received=198.51.100.7"),
])
def test_stamped_via_and_reply_address(via, source, reply_to, stamped):  # noqa: ANN001
    msg = parse_message(_invite(via))
    # (a real listener: the compiled message layer checks the argument's type)
    listener = Listener(source.transport, "192.0.2.200", 5060)
    inbound = Inbound(b"", source, listener)
    Core._stamp_via(msg, inbound)
    assert inbound.reply_to == reply_to
    assert inbound.via is msg.vias[0]
    top = msg.headers.get("via")
    if stamped is None:
        assert top == via
    else:
        assert top.endswith(stamped) and top.startswith(via.split(";")[0])
    # the stamped Via reads back the same way (what the old _via_peer computed from it)
    assert Core._reply_peer(msg, Inbound(b"", source, listener)) == reply_to


@pytest.mark.parametrize(("body", "natted"), [
    (b"", False),
    (b"v=0\r\nc=IN IP4 192.0.2.1\r\n", False),
    (b"v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 10.1.2.3\r\n", True),
    (b"c=IN IP4 172.16.0.9/127\r\n", True),  # at the body's start, with a TTL
    (b"v=0\r\nc=IN IP4 192.168.1.5", True),  # last line, no line end
    (b"v=0\r\na=x c=IN IP4 10.1.2.3\r\n", False),  # not at a line's start
    (b"v=0\r\nc=IN IP6 fc00::1\r\n", True),
    (b"v=0\r\nc=IN IP\r\n", False),
])
def test_sdp_part_of_the_nat_test(body, natted):  # noqa: ANN001
    msg = parse_message(_invite("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa", body))
    assert sender_behind_nat(msg) is natted
