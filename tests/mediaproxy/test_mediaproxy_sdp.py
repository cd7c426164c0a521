"""sipproxy.sip.sdp: reading media lines and writing the relay into offers and answers."""

from __future__ import annotations

import pytest

from sipproxy.sip.sdp import SdpError, parse, relay_streams, rewrite

OFFER = (
    "v=0\r\n"
    "o=alice 2890844526 2890844526 IN IP4 192.168.1.10\r\n"
    "s=-\r\n"
    "c=IN IP4 192.168.1.10\r\n"
    "t=0 0\r\n"
    "m=audio 49170 RTP/AVP 0 8 101\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=rtcp:49171 IN IP4 192.168.1.10\r\n"
    "a=sendrecv\r\n"
    "m=video 51372 RTP/AVP 96\r\n"
    "c=IN IP4 192.168.1.11\r\n"
    "a=rtpmap:96 H264/90000\r\n"
    "a=recvonly\r\n"
)

PORTS = [{"port": 50000, "rtcp_port": 50001}, {"port": 50002, "rtcp_port": 50003}]


def test_parse_multiple_streams():
    d = parse(OFFER)
    a, v = d.media
    assert (a.media_type, a.port, a.address, a.rtcp_port, a.rtcp_address, a.codec, a.direction) == (
        "audio", 49170, "192.168.1.10", 49171, "192.168.1.10", "PCMU", "sendrecv")
    assert (v.media_type, v.port, v.address, v.codec, v.direction) == ("video", 51372, "192.168.1.11", "H264", "recvonly")
    streams = relay_streams(d)
    assert streams[0] == {"type": "audio", "ip": "192.168.1.10", "port": 49170, "rtcp_port": 49171,
                          "rtcp_ip": "192.168.1.10", "rtcp_mux": False, "codec": "PCMU", "direction": "sendrecv"}


def test_rewrite_offer_replaces_addresses_and_ports():
    out = rewrite(OFFER, "203.0.113.5", PORTS)
    assert out.endswith("\r\n") and "\r\n\r\n" not in out
    lines = out.split("\r\n")
    assert "c=IN IP4 203.0.113.5" in lines and "c=IN IP4 192.168.1.11" not in lines
    assert "m=audio 50000 RTP/AVP 0 8 101" in lines
    assert "m=video 50002 RTP/AVP 96" in lines
    assert "a=rtcp:50001 IN IP4 203.0.113.5" in lines
    assert "o=alice 2890844526 2890844526 IN IP4 192.168.1.10" in lines  # origin is an identifier
    assert "a=recvonly" in lines and "a=rtpmap:101 telephone-event/8000" in lines
    d = parse(out)
    assert [m.address for m in d.media] == ["203.0.113.5", "203.0.113.5"]


def test_rewrite_answer_in_bytes_with_lf_line_ends():
    answer = b"v=0\no=bob 1 1 IN IP4 10.0.0.2\ns=-\nc=IN IP4 10.0.0.2\nt=0 0\nm=audio 3456 RTP/AVP 8\na=rtcp:3457\n"
    out = rewrite(answer, "127.0.0.1", [{"port": 40000, "rtcp_port": 40001}])
    assert isinstance(out, bytes)
    assert out == b"v=0\no=bob 1 1 IN IP4 10.0.0.2\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 40000 RTP/AVP 8\na=rtcp:40001\n"


def test_ipv6_connection_lines():
    sdp = "v=0\r\no=- 1 1 IN IP6 2001:db8::1\r\ns=-\r\nc=IN IP6 2001:db8::1\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0\r\n"
    d = parse(sdp)
    assert d.media[0].address == "2001:db8::1"
    out6 = rewrite(sdp, "::1", [{"port": 50000, "rtcp_port": 50001}])
    assert "c=IN IP6 ::1\r\n" in out6
    out4 = rewrite(sdp, "198.51.100.1", [{"port": 50000, "rtcp_port": 50001}])
    assert "c=IN IP4 198.51.100.1\r\n" in out4


def test_hold_and_port_zero_are_kept():
    sdp = ("v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
           "m=audio 4000 RTP/AVP 0\r\na=sendonly\r\nm=video 0 RTP/AVP 96\r\n")
    d = parse(sdp)
    assert d.media[0].address == "0.0.0.0" and d.media[0].direction == "sendonly"
    assert relay_streams(d)[1]["port"] == 0
    out = rewrite(sdp, "127.0.0.1", [{"port": 50000, "rtcp_port": 50001}, {"port": 0, "rtcp_port": 0}])
    assert "c=IN IP4 0.0.0.0\r\n" in out and "m=audio 50000 RTP/AVP 0\r\n" in out
    assert "m=video 0 RTP/AVP 96\r\n" in out and "a=sendonly\r\n" in out


ICE = (
    "v=0\r\no=- 1 1 IN IP4 192.168.1.10\r\ns=-\r\nc=IN IP4 192.168.1.10\r\nt=0 0\r\n"
    "a=ice-ufrag:8hhY\r\na=ice-pwd:asd88fgpdd777uzjYhagZg\r\n"
    "m=audio 45664 RTP/AVP 0\r\n"
    "a=candidate:1 1 UDP 2130706431 192.168.1.10 45664 typ host\r\n"
    "a=candidate:1 2 UDP 2130706430 192.168.1.10 45665 typ host\r\n"
    "a=candidate:2 1 UDP 1694498815 198.51.100.7 45664 typ srflx raddr 192.168.1.10 rport 45664\r\n"
    "m=video 45666 RTP/AVP 96\r\na=rtcp-mux\r\n"
    "a=candidate:1 1 UDP 2130706431 192.168.1.10 45666 typ host\r\n"
)


def test_ice_relay_candidate_replaces_the_endpoints():
    out = rewrite(ICE, "203.0.113.5", PORTS)
    lines = out.split("\r\n")
    assert not [x for x in lines if "typ host" in x or "typ srflx" in x]
    audio = lines[lines.index("m=audio 50000 RTP/AVP 0"):lines.index("m=video 50002 RTP/AVP 96")]
    prio = (65535 << 8) + 255
    assert f"a=candidate:msprelay 1 UDP {prio} 203.0.113.5 50000 typ relay raddr 203.0.113.5 rport 50000" in audio
    assert f"a=candidate:msprelay 2 UDP {prio - 1} 203.0.113.5 50001 typ relay raddr 203.0.113.5 rport 50001" in audio
    video = lines[lines.index("m=video 50002 RTP/AVP 96"):]
    relay = [x for x in video if x.startswith("a=candidate:")]
    assert relay == [f"a=candidate:msprelay 1 UDP {prio} 203.0.113.5 50002 typ relay raddr 203.0.113.5 rport 50002"]
    # the default candidate (c=/m=) is one of the candidates: no ICE mismatch at the peer
    d = parse(out)
    for m in d.media:
        assert any(c.split()[4:6] == [m.address, str(m.port)] for c in m.candidates)


def test_ice_add_mode_keeps_endpoint_candidates_with_the_relay_last():
    out = rewrite(ICE, "203.0.113.5", PORTS, ice="add")
    d = parse(out)
    audio = d.media[0].candidates
    assert len(audio) == 5
    assert min(audio, key=lambda c: int(c.split()[3])).split()[4] == "203.0.113.5"


def test_errors():
    with pytest.raises(SdpError):
        parse("hello")
    with pytest.raises(SdpError):
        parse("v=0\r\nm=audio x RTP/AVP 0\r\n")
    with pytest.raises(SdpError):
        parse("v=0\r\nm=audio 4000 RTP/AVP 0\r\n")  # no connection address
    with pytest.raises(SdpError):
        parse("v=0\r\nc=IN IP4 not-an-ip\r\nm=audio 4000 RTP/AVP 0\r\n")
    with pytest.raises(SdpError):
        rewrite(OFFER, "127.0.0.1", PORTS[:1])


def test_t38_and_static_codecs():
    sdp = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=image 6000 udptl t38\r\nm=audio 6002 RTP/AVP 18 0\r\n"
    d = parse(sdp)
    assert [m.codec for m in d.media] == ["t38", "G729"]
