"""The MSRP message layer without I/O: parser (incremental, bounds, errors), wire form,
chunking, responses and REPORTs, URIs."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz import msrp_message
from fuzz._common import seeds
from mediaproxy.msrp.chunking import abort_chunk, chunks
from mediaproxy.msrp.message import ByteRange, Message, make_report, make_response
from mediaproxy.msrp.parser import BodyData, End, Head, MSRPParseError, Parser, read_messages
from mediaproxy.msrp.uri import URIError, parse_path, parse_uri

TO, FROM = "msrp://bob.example:2855/s1;tcp", "msrp://alice.example:7000/s2;tcp"


def send(body: bytes = b"hello", **kw) -> Message:
    headers = [("To-Path", TO), ("From-Path", FROM), ("Message-ID", "m1"),
               ("Byte-Range", f"1-{len(body)}/{len(body)}"), ("Content-Type", "text/plain")]
    return Message("tid12345", method="SEND", headers=headers, body=body, **kw)


def parse_all(data: bytes, **kw) -> list[Message]:
    return read_messages(Parser(**kw), data, {})


def test_rfc_example_send_and_response() -> None:
    raw = (b"MSRP a786hjs2 SEND\r\nTo-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp\r\n"
           b"From-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp\r\nMessage-ID: 87652491\r\n"
           b"Byte-Range: 1-25/25\r\nContent-Type: text/plain\r\n\r\nHey Bob, are you there?\r\n-------a786hjs2$\r\n")
    [msg] = parse_all(raw)
    assert msg.method == "SEND" and msg.transaction_id == "a786hjs2" and msg.flag == "$"
    assert msg.body == b"Hey Bob, are you there?" and msg.byte_range == ByteRange(1, 25, 25)
    assert msg.to_path[0].port == 12763 and msg.to_path[0].session_id == "kjhd37s2s20w2a"
    assert msg.encode() == raw
    resp = make_response(msg, 200)
    assert resp.encode() == (b"MSRP a786hjs2 200 OK\r\nTo-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp\r\n"
                             b"From-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp\r\n-------a786hjs2$\r\n")


def test_body_streams_without_being_held() -> None:
    """A 1 MB body fed in 64 KiB pieces comes out as it arrives, the parser keeping back
    no more than the end-line could need."""
    body = b"x" * (1 << 20)
    data = send(body).encode()
    parser, seen, most = Parser(), 0, 0
    for i in range(0, len(data), 65536):
        for ev in parser.feed(data[i:i + 65536]):
            if isinstance(ev, BodyData):
                seen += len(ev.data)
        most = max(most, parser.buffered)
    assert seen == len(body) and most < 64


def test_end_line_lookalikes_in_the_body() -> None:
    body = b"a\r\n-------tid12345 not the end\r\n-------tid12345x\r\n-------other$\r\n"
    [msg] = parse_all(send(body).encode())
    assert msg.body == body


def test_events_in_order_and_flags() -> None:
    data = send(b"part", flag="+").encode() + send(b"", flag="#").encode()
    events = Parser().feed(data)
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Head", "BodyData", "End", "Head", "End"]
    assert isinstance(events[0], Head) and events[0].has_body
    assert [e.flag for e in events if isinstance(e, End)] == ["+", "#"]


@pytest.mark.parametrize("raw, reason, tid", [
    (b"GET / HTTP/1.1\r\n", "not an MSRP start line", None),
    (b"MSRP ab SEND\r\n", "malformed start line", None),
    (b"MSRP abcd1234 send\r\n", "malformed start line", None),
    (b"MSRP abcd1234 SEND\r\nTo-Path " + b"\r\n", "malformed header field", "abcd1234"),
    (b"MSRP abcd1234 SEND\r\nFrom-Path: " + FROM.encode() + b"\r\n-------abcd1234$\r\n",
     "To-Path and From-Path are required", "abcd1234"),
    (b"MSRP abcd1234 SEND\r\nTo-Path: http://x/;tcp\r\nFrom-Path: " + FROM.encode() + b"\r\n\r\n",
     "To-Path: not an MSRP URI", "abcd1234"),
    (b"MSRP abcd1234 SEND\r\nTo-Path: " + TO.encode() + b"\r\nFrom-Path: " + FROM.encode()
     + b"\r\nByte-Range: 5-10/8\r\n\r\n", "Byte-Range past the end", "abcd1234"),
    (b"MSRP abcd1234 SEND\r\nTo-Path: " + TO.encode() + b"\r\nFrom-Path: " + FROM.encode()
     + b"\r\nByte-Range: 0-1/8\r\n\r\n", "Byte-Range starts before byte 1", "abcd1234"),
    (b"MSRP abcd1234 SEND\r\nTo-Path: " + TO.encode() + b"\r\nTo-Path: " + TO.encode() + b"\r\n\r\n",
     "To-Path given twice", "abcd1234"),
    (b"MSRP abcd1234 SEND\r\nTo-Path: " + TO.encode() + b"\r\nFrom-Path: " + FROM.encode()
     + b"\r\n-------abcd9999$\r\n", "end-line does not match", "abcd1234"),
    (b"MSRP abcd1234 200 OK\r\nTo-Path: " + TO.encode() + b"\r\nFrom-Path: " + FROM.encode()
     + b"\r\n\r\nbody\r\n", "a response has no body", "abcd1234"),
])
def test_malformed(raw: bytes, reason: str, tid: str | None) -> None:
    with pytest.raises(MSRPParseError) as info:
        Parser().feed(raw)
    assert info.value.reason.startswith(reason) and info.value.transaction_id == tid
    assert info.value.code == 400


def test_bounds() -> None:
    with pytest.raises(MSRPParseError, match="header too large"):
        Parser(max_head_bytes=1024).feed(b"MSRP abcd1234 SEND\r\nX: " + b"a" * 2000)
    with pytest.raises(MSRPParseError, match="header too large"):
        Parser(max_head_bytes=1024, max_headers=1000).feed(b"MSRP abcd1234 SEND\r\n" + b"X: 1\r\n" * 300)
    with pytest.raises(MSRPParseError, match="more than 10 header fields"):
        Parser(max_headers=10).feed(b"MSRP abcd1234 SEND\r\n" + b"X: 1\r\n" * 11)
    path = " ".join(f"msrp://h{i}.example:1/s;tcp" for i in range(17))
    with pytest.raises(MSRPParseError, match="more than 16"):
        Parser().feed(b"MSRP abcd1234 SEND\r\nTo-Path: " + path.encode() + b"\r\nFrom-Path: x\r\n\r\n")
    # a failed parser stays failed: the stream cannot be re-synchronised
    p = Parser()
    with pytest.raises(MSRPParseError):
        p.feed(b"junk\r\n")
    with pytest.raises(MSRPParseError):
        p.feed(send().encode())


def test_chunking_covers_the_message() -> None:
    body = bytes(range(256)) * 40
    parts = list(chunks([("To-Path", TO), ("From-Path", FROM), ("Message-ID", "m")], body, 1000))
    assert len(parts) == 11 and [p.flag for p in parts] == ["+"] * 10 + ["$"]
    assert b"".join(p.body for p in parts) == body
    assert str(parts[3].byte_range) == "3001-4000/10240" and str(parts[-1].byte_range) == "10001-10240/10240"
    assert len({p.transaction_id for p in parts}) == 11
    resumed = list(chunks([("To-Path", TO), ("From-Path", FROM)], body[5000:], 4096, start=5001, total=len(body)))
    assert str(resumed[0].byte_range) == "5001-9096/10240" and resumed[-1].flag == "$"
    stop = abort_chunk([("To-Path", TO), ("From-Path", FROM)], 5001, 10240)
    assert stop.flag == "#" and [m.flag for m in parse_all(stop.encode())] == ["#"]


def test_report_goes_back_along_the_from_path() -> None:
    msg = send(b"abc", flag="$")
    msg.set("From-Path", f"msrp://relay.example:2855/r1;tcp {FROM}")
    report = make_report(msg, 200)
    assert report.method == "REPORT" and report.get("To-Path") == msg.get("From-Path")
    assert report.get("From-Path") == TO and report.get("Status") == "000 200 OK"
    assert report.get("Message-ID") == "m1" and report.get("Byte-Range") == "1-3/3"
    failed = make_report(msg, 481, from_uri="msrps://relay.example:2855/r9;tcp")
    assert failed.get("Status") == "000 481 Session Does Not Exist"
    assert failed.get("From-Path") == "msrps://relay.example:2855/r9;tcp"


def test_uris() -> None:
    u = parse_uri("msrps://alice@Relay.Example.com:2856/Sess1;TCP")
    assert (u.scheme, u.host, u.port, u.session_id, u.transport, u.user) == \
        ("msrps", "Relay.Example.com", 2856, "Sess1", "TCP", "alice")
    # RFC 4975 section 6.1: host and transport case-insensitive, session-id not, user ignored
    assert u == parse_uri("msrps://relay.example.com:2856/Sess1;tcp")
    assert u != parse_uri("msrps://relay.example.com:2856/sess1;tcp")
    assert parse_uri("msrp://[2001:db8::1]/s;tcp").port == 2855
    for bad in ("http://x/s;tcp", "msrp://x/s", "msrp://x:99999/s;tcp", "msrp:// x/s;tcp"):
        with pytest.raises(URIError):
            parse_uri(bad)
    assert len(parse_path(f"{TO}  {FROM}")) == 2


# -- properties (hypothesis; the long runs are scripts/fuzz msrp_message) ------------------------

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=4, max_size=12)
body_bytes = st.binary(max_size=300) | st.sampled_from([b"\r\n-------", b"-------tid$\r\n", b"\r\n\r\n"])


@st.composite
def streams(draw) -> bytes:
    out = []
    for _ in range(draw(st.integers(1, 3))):
        tid = draw(token)
        body = draw(body_bytes)
        kind = draw(st.sampled_from(["SEND", "REPORT", "resp"]))
        headers = [("To-Path", TO), ("From-Path", FROM)]
        headers += draw(st.lists(st.tuples(st.sampled_from(["Message-ID", "X-A", "Status", "Content-Type"]),
                                           token), max_size=3, unique_by=lambda h: h[0]))
        if kind == "resp":
            m = Message(tid, code=draw(st.sampled_from([200, 400, 481])), comment=draw(token), headers=headers)
        else:
            m = Message(tid, method=kind, headers=headers, body=body, flag=draw(st.sampled_from("$+#")))
        raw = m.encode()
        if draw(st.booleans()):  # an edit: a byte changed, dropped or added
            pos = draw(st.integers(0, len(raw)))
            raw = raw[:pos] + draw(st.binary(max_size=3)) + raw[pos + draw(st.integers(0, 2)):]
        out.append(raw)
    return draw(st.integers(0, 255)).to_bytes(1, "big") + b"".join(out)


@SETTINGS
@given(streams())
def test_parser_properties(data: bytes) -> None:
    """Only MSRPParseError; the same chunks whole or in pieces; encode -> parse is stable."""
    msrp_message.TestOneInput(data)


@SETTINGS
@given(st.sampled_from(seeds("msrp_message")), st.integers(0, 255))
def test_parser_properties_on_the_seeds(seed: bytes, step: int) -> None:
    msrp_message.TestOneInput(bytes([step]) + seed[1:])
