"""The ACM's SDP rewriting (sipproxy.media.msrp_sdp), without I/O."""

from __future__ import annotations

import pytest

from sipproxy.media.msrp_sdp import MsrpSdpError, message_streams, rewrite_paths

OFFER = ("v=0\r\no=alice 2890844526 2890844527 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
         "m=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
         "m=message 7654 TCP/MSRP *\r\nc=IN IP4 10.0.0.1\r\na=accept-types:message/cpim text/plain\r\n"
         "a=path:msrp://10.0.0.1:7654/jshA7weztas;tcp\r\n"
         'a=file-selector:name:"My cool picture.jpg" type:image/jpeg size:32349\r\n'
         "a=file-transfer-id:vBnG916bdberum2fFEABR1FR3ExZMUrd\r\na=setup:actpass\r\n")


def test_reads_the_message_streams() -> None:
    [s] = message_streams(OFFER)
    assert (s.index, s.port, s.proto, s.setup) == (1, 7654, "TCP/MSRP", "actpass")
    assert s.path == ["msrp://10.0.0.1:7654/jshA7weztas;tcp"]
    relayed = OFFER.replace("a=path:msrp://10.0.0.1:7654/jshA7weztas;tcp",
                            "a=path:msrps://relay.example:2855/r1;tcp msrp://10.0.0.1:7654/x;tcp")
    assert len(message_streams(relayed)[0].path) == 2
    with pytest.raises(MsrpSdpError):
        message_streams(OFFER.replace("a=path:msrp://10.0.0.1:7654/jshA7weztas;tcp\r\n", ""))
    with pytest.raises(MsrpSdpError):
        message_streams("hello")


def test_rewrite_puts_the_acm_in_and_keeps_the_rest() -> None:
    out = rewrite_paths(OFFER.encode(), {1: ["msrps://192.0.2.9:2855/acm1;tcp"]})
    assert isinstance(out, bytes)
    text = out.decode()
    assert "m=message 2855 TCP/TLS/MSRP *\r\nc=IN IP4 192.0.2.9\r\n" in text
    assert "a=path:msrps://192.0.2.9:2855/acm1;tcp\r\n" in text and "a=setup:passive\r\n" in text
    assert "10.0.0.1:7654" not in text and text.count("c=IN IP4 192.0.2.9") == 1
    # the audio stream, session lines and the RFC 5547 attributes are untouched
    assert "m=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n" in text
    assert text.startswith("v=0\r\no=alice 2890844526 2890844527 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\n")
    assert 'a=file-selector:name:"My cool picture.jpg" type:image/jpeg size:32349\r\n' in text
    assert "a=file-transfer-id:vBnG916bdberum2fFEABR1FR3ExZMUrd\r\n" in text
    assert message_streams(out)[0].path == ["msrps://192.0.2.9:2855/acm1;tcp"]


def test_rewrite_adds_setup_when_missing_and_keeps_host_names() -> None:
    sdp = OFFER.replace("a=setup:actpass\r\n", "")
    text = rewrite_paths(sdp, {1: ["msrp://acm.example.net:3000/z;tcp"]})
    assert isinstance(text, str)
    assert text.endswith("a=setup:passive\r\n") and "m=message 3000 TCP/MSRP *" in text
    assert "c=IN IP4 10.0.0.1\r\na=accept-types" in text  # a host name: the stream's c= stays
