"""sipproxy's ACM seam (sipproxy.media.acm.ProxyAcm) on real SIP messages, with a stand-in
for the ACM's control connection: which command each SDP of a call sends, what the SDP
becomes, and when the session is removed."""

from __future__ import annotations

from typing import Any

from sipproxy.media.acm import CombinedMedia, ProxyAcm
from sipproxy.media.msrp_sdp import message_streams
from sipproxy.sip.parser import parse_message

A_PATH, B_PATH = "msrp://10.0.0.1:7000/a;tcp", "msrp://10.0.0.2:7001/b;tcp"
TO_A, TO_B = "msrp://192.0.2.1:2855/for-a;tcp", "msrp://192.0.2.1:2855/for-b;tcp"


class FakeAcm:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def call(self, command: str, **fields: Any) -> dict:
        self.calls.append((command, fields))
        if command == "remove":
            return {"ok": True, "summary": {"messages": 1}}
        return {"ok": True, "path": [TO_B if command == "offer" else TO_A]}


def sdp(path: str, ip: str) -> str:
    return (f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
            f"m=message 7000 TCP/MSRP *\r\na=accept-types:text/plain\r\na=path:{path}\r\na=setup:actpass\r\n")


def sip(start: str, from_tag: str, to_tag: str = "", body: str = "", method: str = "INVITE") -> Any:
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    lines = [start, "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport=5070;received=127.0.0.1",
             f"From: <sip:alice@example.com>;tag={from_tag}", f"To: {to}", "Call-ID: call-1",
             f"CSeq: 1 {method}", "Contact: <sip:alice@127.0.0.1:5070>"]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return parse_message(("\r\n".join(lines) + "\r\n\r\n" + body).encode())


def path_of(msg: Any) -> list[str]:
    return message_streams(msg.body)[0].path


def test_offer_answer_reinvite_and_bye() -> None:
    fake = FakeAcm()
    acm = ProxyAcm(fake, "nat")  # type: ignore[arg-type]
    invite = sip("INVITE sip:bob@example.com SIP/2.0", "ta", body=sdp(A_PATH, "10.0.0.1"))  # private: NAT
    acm.offer(None, invite)
    assert fake.calls[-1] == ("offer", {"call_id": "call-1", "from_tag": "ta", "path": [A_PATH]})
    assert path_of(invite) == [TO_B] and b"a=setup:passive" in invite.body
    ok = sip("SIP/2.0 200 OK", "ta", "tb", body=sdp(B_PATH, "10.0.0.2"))
    acm.answer(None, invite, ok)
    assert fake.calls[-1] == ("answer", {"call_id": "call-1", "from_tag": "ta", "path": [B_PATH]})
    assert path_of(ok) == [TO_A]
    # bob re-INVITEs: his SDP updates his side; alice's answer hers
    reinvite = sip("INVITE sip:alice@127.0.0.1:5070 SIP/2.0", "tb", "ta", body=sdp(B_PATH, "10.0.0.2"))
    acm.offer(None, reinvite)
    assert fake.calls[-1][0] == "answer" and fake.calls[-1][1]["from_tag"] == "ta" and path_of(reinvite) == [TO_A]
    ok2 = sip("SIP/2.0 200 OK", "tb", "ta", body=sdp(A_PATH, "10.0.0.1"))
    acm.answer(None, reinvite, ok2)
    assert fake.calls[-1][0] == "offer" and path_of(ok2) == [TO_B]
    bye = sip("BYE sip:bob@127.0.0.1 SIP/2.0", "ta", "tb", method="BYE")
    assert acm.release(None, bye) == {"messages": 1}
    assert fake.calls[-1] == ("remove", {"call_id": "call-1", "from_tag": "ta", "reason": "bye"})
    assert acm.release(None, bye) is None and not acm.engaged


def test_not_behind_nat_or_no_message_stream_is_left_alone() -> None:
    fake = FakeAcm()
    acm = ProxyAcm(fake, "nat")  # type: ignore[arg-type]
    public = sip("INVITE sip:bob@example.com SIP/2.0", "ta", body=sdp(A_PATH, "192.0.2.50"))
    before = public.body
    acm.offer(None, public)
    assert public.body == before and not fake.calls
    audio = sip("INVITE sip:bob@example.com SIP/2.0", "ta",
                body="v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n")
    acm.offer(None, audio)
    assert not fake.calls


def test_combined_media_sends_each_sdp_to_its_relay() -> None:
    class Rtp:
        call_control = relay_lost = None
        relays = None

        def __init__(self) -> None:
            self.seen: list[str] = []

        def offer(self, proxy: Any, req: Any) -> None:
            self.seen.append("offer")

        def release(self, proxy: Any, req: Any, reason: str = "") -> None:
            self.seen.append("release")

    rtp, fake = Rtp(), FakeAcm()
    media = CombinedMedia(rtp, ProxyAcm(fake, "always"))  # type: ignore[arg-type]
    media.call_control = "cc"
    assert rtp.call_control == "cc"
    media.offer(None, sip("INVITE sip:bob@example.com SIP/2.0", "ta",
                          body="v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
                               "m=audio 4000 RTP/AVP 0\r\n"))
    assert rtp.seen == ["offer"] and not fake.calls
    media.offer(None, sip("INVITE sip:bob@example.com SIP/2.0", "ta", body=sdp(A_PATH, "192.0.2.50")))
    assert fake.calls[-1][0] == "offer" and rtp.seen == ["offer"]
