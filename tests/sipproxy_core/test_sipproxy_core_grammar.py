"""RFC 3261 grammar details: names, folding, quoting, escaping, IPv6, case rules, framing."""

from __future__ import annotations

import pytest

from sipproxy.sip.headers import Headers, parse_via
from sipproxy.sip.parser import (
    ParseError,
    Request,
    Response,
    make_response,
    parse_message,
)
from sipproxy.sip.uri import NameAddr, Params, parse_name_addr, parse_params, parse_uri, uri_equal
from tests.helpers import frame


def msg(*lines: str, body: str = "", start: str = "INVITE sip:bob@example.com SIP/2.0") -> bytes:
    head = [start, *lines]
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode()


BASE = (
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-g1",
    "From: <sip:alice@example.com>;tag=a",
    "To: <sip:bob@example.com>",
    "Call-ID: g1@example.com",
    "CSeq: 1 INVITE",
)


# -- header names -----------------------------------------------------------------------


def test_compact_forms_and_case_insensitive_names() -> None:
    m = parse_message(msg(
        "v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-c", "f: <sip:a@example.com>;tag=1",
        "t: <sip:b@example.com>", "i: compact@example.com", "cSeQ: 7 INVITE",
        "m: <sip:a@192.0.2.1>", "c: application/sdp", "k: path", "s: hello", "e: gzip",
        "o: presence", "u: refer", "r: <sip:c@example.com>", "b: <sip:d@example.com>",
        "x: 1800", "y: sig", "l: 4", body="abcd",
    ))
    assert m.call_id == "compact@example.com" and m.headers.get("CALL-ID") == m.call_id
    assert m.cseq == (7, "INVITE") and m.body == b"abcd" and m.content_length == 4
    for compact, full in [("c", "Content-Type"), ("k", "Supported"), ("s", "Subject"),
                          ("e", "Content-Encoding"), ("o", "Event"), ("u", "Allow-Events"),
                          ("r", "Refer-To"), ("b", "Referred-By"), ("x", "Session-Expires"),
                          ("y", "Identity"), ("m", "Contact"), ("t", "To"), ("f", "From")]:
        assert m.headers.get(full) == m.headers.get(compact) is not None, full
        assert m.headers.get(full.upper()) == m.headers.get(compact)
    assert m.contacts[0].uri.host == "192.0.2.1"


def test_folding_joins_continuation_lines() -> None:
    m = parse_message(msg(
        *BASE, "Subject: I know you're there,\r\n\tpick up the phone\r\n   and talk to me!",
    ))
    assert m.headers.get("subject") == "I know you're there, pick up the phone and talk to me!"


def test_bad_header_lines_are_400() -> None:
    for bad in ("NoColonHere", "Bad Name: x", ": empty name", "Na<me: x"):
        with pytest.raises(ParseError) as info:
            parse_message(msg(*BASE, bad))
        assert info.value.status == 400 and info.value.request is not None


# -- quoted strings, lists, escaping --------------------------------------------------


def test_comma_lists_respect_quotes_and_angle_brackets() -> None:
    m = parse_message(msg(
        *BASE,
        'Contact: "Doe, John" <sip:jd@example.com;x=1>;q=0.5, <sip:h@example.com?a=b,c>;expires=60',
        "Contact: sip:third@example.com",
        "Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>",
        "Route: <sip:p3.example.com;lr>",
    ))
    c = m.contacts
    assert [x.uri.user for x in c] == ["jd", "h", "third"]
    assert c[0].display_name == "Doe, John" and c[0].q == 0.5 and c[1].expires == 60
    assert c[1].uri.headers == [("a", "b,c")]
    assert [r.uri.host for r in m.routes] == ["p1.example.com", "p2.example.com", "p3.example.com"]
    assert m.headers.get("route") == "<sip:p1.example.com;lr>"
    assert m.headers.pop_first("route") == "<sip:p1.example.com;lr>"
    assert [r.uri.host for r in m.routes] == ["p2.example.com", "p3.example.com"]  # cache refreshed
    assert m.headers.raw("route") == ["<sip:p2.example.com;lr>", "<sip:p3.example.com;lr>"]


def test_quoted_display_names_with_escapes() -> None:
    na = parse_name_addr(r'"a \"quoted\" \\ name" <sip:x@example.com>;tag=9')
    assert na.display_name == 'a "quoted" \\ name' and na.tag == "9"
    again = parse_name_addr(str(na))
    assert again.display_name == na.display_name and str(again.uri) == "sip:x@example.com"
    assert parse_name_addr('"" <sip:x@example.com>').display_name == ""
    with pytest.raises(ParseError):
        parse_name_addr('"unterminated <sip:x@example.com>')
    with pytest.raises(ParseError):
        parse_name_addr("<sip:x@example.com")


def test_header_params_lws_and_quoted_values() -> None:
    p = parse_params(' ; a = 1 ;B; c="x;y, z"')
    assert p.items() == [("a", "1"), ("B", None), ("c", '"x;y, z"')]
    assert p.get("b") is None and "b" in p and p["A"] == "1"
    for bad in (";;", "; a=", ";a b", "x;a"):
        with pytest.raises(ParseError):
            parse_params(bad)


def test_escaped_characters_in_uris() -> None:
    u = parse_uri("sip:%61lice%20x@example.com;m%61ddr=192.0.2.1?subject=hi%20there")
    assert str(u) == "sip:%61lice%20x@example.com;m%61ddr=192.0.2.1?subject=hi%20there"
    assert uri_equal(u, parse_uri("sip:alice%20x@EXAMPLE.com;maddr=192.0.2.1?subject=hi%20there"))


# -- URIs -------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "sip:alice@atlanta.com",
    "sip:alice:secretword@atlanta.com;transport=tcp",
    "sips:alice@atlanta.com?subject=project%20x&priority=urgent",
    "sip:+1-212-555-1212:1234@gateway.com;user=phone",
    "sips:1212@gateway.com",
    "sip:alice@192.0.2.4",
    "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
    "sip:alice;day=tuesday@atlanta.com",
    "sip:[2001:db8::10]:5070;transport=tcp;lr",
    "sip:user@[::1]",
    "SIP:Alice@Example.COM:5061;Transport=TLS",
    "tel:+1-201-555-0123;phone-context=example.com",
    "im:alice@example.com",
])
def test_uri_round_trips(text: str) -> None:
    assert str(parse_uri(text)) == text


def test_uri_components() -> None:
    u = parse_uri("sip:alice:pw@[2001:db8::1]:5070;transport=TCP;lr;maddr=239.255.255.1?x=y")
    assert (u.user, u.password, u.host, u.port) == ("alice", "pw", "[2001:db8::1]", 5070)
    assert u.transport == "tcp" and u.lr and u.maddr == "239.255.255.1"
    assert u.params["LR"] is None and u.headers == [("x", "y")]
    assert u.aor == "sip:alice@[2001:db8::1]"
    t = parse_uri("tel:+358-555-1234567;postd=pp22")
    assert t.scheme == "tel" and t.user == "+358-555-1234567" and t.params["postd"] == "pp22"
    assert not t.is_sip and parse_uri("sips:a@b").is_sip


@pytest.mark.parametrize("bad", [
    "sip:", "sip:@example.com", "sip:alice@", "sip:alice@exa mple.com", "sip:a@b:99999",
    "sip:a@b:port", "<sip:a@b>", "1sip:a@b", "sip:a@b;;x", "sip:a@b?noequals", "nocolon",
    "sip:a@[zz::1]", "sip:a@[:::::]", "sip:[1::2::3]:5060", "sip:a@[192.0.2.1]",
])
def test_bad_uris(bad: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_uri(bad)
    assert info.value.status == 400


# RFC 3261 19.1.4
EQUAL = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
     "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"),
    ("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
     "sip:alice@atlanta.com?priority=urgent&subject=project%20x"),
    ("sip:[2001:DB8::1]:5060", "sip:[2001:db8::1]:5060"),
]
NOT_EQUAL = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
    ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
    ("sip:alice@atlanta.com", "sip:alice:pw@atlanta.com"),
    ("sip:alice@atlanta.com;maddr=1.2.3.4", "sip:alice@atlanta.com"),
]


@pytest.mark.parametrize("a,b", EQUAL)
def test_uri_equal(a: str, b: str) -> None:
    assert uri_equal(parse_uri(a), parse_uri(b)) and uri_equal(parse_uri(b), parse_uri(a))


@pytest.mark.parametrize("a,b", NOT_EQUAL)
def test_uri_not_equal(a: str, b: str) -> None:
    assert not uri_equal(parse_uri(a), parse_uri(b))
    assert not uri_equal(parse_uri(b), parse_uri(a))


def test_name_addr_forms() -> None:
    a = parse_name_addr("sip:user@example.com;tag=1;expires=30")  # addr-spec: header params
    assert a.tag == "1" and a.expires == 30 and not a.uri.params
    b = parse_name_addr("<sip:user@example.com;transport=tcp>;q=0.7")
    assert b.uri.transport == "tcp" and b.q == 0.7 and b.display_name is None
    assert str(b) == "<sip:user@example.com;transport=tcp>;q=0.7"
    c = parse_name_addr("Bob Smith <sip:bob@[::1]:5070>")
    assert c.display_name == "Bob Smith" and c.uri.host == "[::1]" and c.uri.port == 5070
    assert str(c) == '"Bob Smith" <sip:bob@[::1]:5070>'
    c.tag = "t9"
    assert parse_name_addr(str(c)).tag == "t9"
    assert NameAddr(parse_uri("sip:x@y"), params=Params([("q", "2")])).q is None
    assert parse_name_addr("<sip:x@y>;expires=99999999999").expires is None


# -- Via --------------------------------------------------------------------------------


def test_via_forms() -> None:
    v = parse_via("SIP / 2.0 / tcp [2001:db8::9] : 5061 ; branch = z9hG4bKx ; rport ; received=::1")
    assert (v.protocol, v.transport, v.host, v.port) == ("SIP/2.0", "TCP", "[2001:db8::9]", 5061)
    assert v.branch == "z9hG4bKx" and v.rport is True and v.received == "::1"
    assert str(v) == "SIP/2.0/TCP [2001:db8::9]:5061;branch=z9hG4bKx;rport;received=::1"
    assert parse_via("SIP/2.0/UDP h;rport=5070").rport == 5070
    assert parse_via("SIP/2.0/UDP h").rport is None and parse_via("SIP/2.0/UDP h").port is None
    for bad in ("SIP/2.0 host", "SIP/2.0/UDP", "SIP/2.0/UDP host:70000", "SIP/2.0/UDP h;;",
                "SIP/2.0/UDP host junk", "SIP/2.0/UDP [1::2::3]", "SIP / 2.0 / UDP [::::]:5"):
        with pytest.raises(ParseError):
            parse_via(bad)


# -- start line, case rules, scalar limits ---------------------------------------------


def test_method_is_case_sensitive_header_names_are_not() -> None:
    with pytest.raises(ParseError) as info:
        parse_message(msg(*BASE[:-1], "CSeq: 1 invite"))
    assert info.value.status == 400
    m = parse_message(msg(*[line.upper().replace("SIP:", "sip:") for line in BASE[:1]],
                          *BASE[1:], "MAX-FORWARDS: 10"))
    assert m.max_forwards == 10


@pytest.mark.parametrize("line,status", [
    ("Max-Forwards: 256", 400), ("Max-Forwards: ten", 400), ("Content-Length: 1x", 400),
    ("CSeq: 2147483648 INVITE", 400), ("CSeq: INVITE", 400),
])
def test_scalar_limits(line: str, status: int) -> None:
    lines = [x for x in BASE if not (line.startswith("CSeq") and x.startswith("CSeq"))]
    with pytest.raises(ParseError) as info:
        parse_message(msg(*lines, line))
    assert info.value.status == status


def test_expires_values() -> None:
    assert parse_message(msg(*BASE, "Expires: 3600")).expires == 3600
    assert parse_message(msg(*BASE, "Expires: 99999999999")).expires is None
    assert parse_message(msg(*BASE, "Expires: soon")).expires is None
    assert parse_message(msg(*BASE)).expires is None


@pytest.mark.parametrize("start,status", [
    ("INVITE sip:bob@example.com SIP/3.0", 505),
    ("INVITE sip:bob@example.com SIP/2.0 extra", 400),
    ("INVITE sip:bob@example.com SIP/20", 400),
    ("INVITE sip:bob@example.com sip/2.0", None),  # version is case-insensitive
    ("INVITE  sip:bob@example.com SIP/2.0", 400),
    ("INVITE sip:bob@example.com?Subject=x SIP/2.0", 400),
])
def test_request_line(start: str, status: int | None) -> None:
    data = msg(*BASE, start=start)
    if status is None:
        assert parse_message(data).version == "SIP/2.0"
        return
    with pytest.raises(ParseError) as info:
        parse_message(data)
    assert info.value.status == status


@pytest.mark.parametrize("start", [
    "SIP/2.0 99 Too Small", "SIP/2.0 700 Too Big", "SIP/2.0 2000 OK", "SIP/3.0 200 OK",
    "SIP/2.0 abc OK", "SIP/2.0",
])
def test_bad_status_lines_are_dropped(start: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_message(msg(*BASE, start=start))
    assert info.value.status == 0


def test_response_without_reason_and_leading_crlf_and_bare_lf() -> None:
    r = parse_message(b"\r\n\r\n" + msg(*BASE, start="SIP/2.0 180"))
    assert isinstance(r, Response) and r.status == 180 and r.reason == ""
    lf = msg(*BASE).replace(b"\r\n", b"\n")
    assert parse_message(lf).call_id == "g1@example.com"


# -- Headers API, building and serialising ---------------------------------------------


def test_headers_api() -> None:
    h = Headers([("Via", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2"),
                 ("Allow", "INVITE, ACK"), ("Allow", "BYE")])
    assert h.getall("allow") == ["INVITE", "ACK", "BYE"] and h.get("ALLOW") == "INVITE"
    h.add("Via", "SIP/2.0/TCP p;branch=z9hG4bKp", top=True)
    assert h.get("v") == "SIP/2.0/TCP p;branch=z9hG4bKp" and len(h.getall("via")) == 3
    assert h.pop_first("via") == "SIP/2.0/TCP p;branch=z9hG4bKp"
    assert h.pop_first("via") == "SIP/2.0/UDP a;branch=z9hG4bK1"
    assert h.raw("via") == ["SIP/2.0/UDP b;branch=z9hG4bK2"]
    h.replace_first("via", "SIP/2.0/UDP b;branch=z9hG4bK2;received=192.0.2.7")
    assert h.items()[0] == ("Via", "SIP/2.0/UDP b;branch=z9hG4bK2;received=192.0.2.7")
    h.set("allow", "OPTIONS")
    assert h.raw("Allow") == ["OPTIONS"] and h.count("allow") == 1
    h.add("record-route", "<sip:p;lr>")
    assert ("Record-Route", "<sip:p;lr>") in h.items()
    assert h.remove("allow") == 1 and "allow" not in h and h.pop_first("allow") is None
    assert h.get("missing", "dflt") == "dflt" and h.getall("missing") == []


def test_request_built_from_scratch_and_content_length_rewritten() -> None:
    req = Request("MESSAGE", "sip:bob@example.com", [
        ("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKm"), ("From", "<sip:a@example.com>;tag=1"),
        ("To", "<sip:bob@example.com>"), ("Call-ID", "m1"), ("CSeq", "1 MESSAGE"),
        ("Content-Length", "999"),
    ], b"hello")
    data = req.to_bytes()
    assert b"Content-Length: 5\r\n" in data and data.endswith(b"\r\n\r\nhello")
    back = parse_message(data)
    assert back.body == b"hello" and back.uri.user == "bob"
    back.body = b"hello world"
    assert parse_message(back.to_bytes()).body == b"hello world"
    copy = back.copy()
    copy.headers.set("Call-ID", "other")
    assert back.call_id == "m1" and copy.call_id == "other"
    assert b"Content-Length: 0" in Request("OPTIONS", "sip:x@y").to_bytes()


def test_make_response_rfc3261_8_2_6() -> None:
    req = parse_message(msg(
        "Via: SIP/2.0/UDP p1;branch=z9hG4bK1", "Via: SIP/2.0/UDP ua;branch=z9hG4bK0;rport=5",
        *BASE[1:], "Timestamp: 54", "Contact: <sip:a@ua>", "Subject: x",
    ))
    trying = make_response(req, 100)
    assert trying.headers.raw("via") == req.headers.raw("via")
    assert trying.headers.get("timestamp") == "54" and trying.to.tag is None
    ok = parse_message(make_response(req, 200, to_tag="zz", headers=[("Contact", "<sip:b@h>")])
                       .to_bytes())
    assert ok.reason == "OK" and ok.to.tag == "zz" and ok.from_.tag == "a"
    assert ok.call_id == req.call_id and ok.cseq == req.cseq and ok.headers.get("subject") is None
    assert ok.headers.get("timestamp") is None and ok.contacts[0].uri.user == "b"
    tagged = parse_message(make_response(ok_req := parse_message(msg(
        *BASE[:2], "To: <sip:bob@example.com>;tag=old", *BASE[3:])), 486, "Busy",
        to_tag="new").to_bytes())
    assert tagged.to.tag == "old" and tagged.reason == "Busy" and ok_req.method == "INVITE"


def test_register_wildcard_contact() -> None:
    m = parse_message(msg(*BASE[:-1], "CSeq: 2 REGISTER", "Contact: *", "Expires: 0",
                          start="REGISTER sip:example.com SIP/2.0"))
    assert m.contacts == "*" and m.expires == 0


# -- stream framing ----------------------------------------------------------------------


def test_framing_frames_by_content_length() -> None:
    a = msg(*BASE, "Content-Length: 4", body="abcd")
    b = msg(*BASE, "l: 0")
    msgs, rest, pings = frame(a + b + a[:30])
    assert msgs == [a, b] and rest == a[:30] and pings == 0
    msgs, rest, pings = frame(a[:-2])  # body incomplete
    assert msgs == [] and rest == a[:-2]


def test_framing_keepalives() -> None:
    b = msg(*BASE, "Content-Length: 0")
    msgs, rest, pings = frame(b"\r\n\r\n" + b + b"\r\n\r\n\r\n\r\n")
    assert msgs == [b] and rest == b"" and pings == 3
    msgs, rest, pings = frame(b"\r\n" + b)  # a pong, then a message
    assert msgs == [b] and pings == 0
    msgs, rest, pings = frame(b"\r\n")  # maybe half a ping: wait
    assert msgs == [] and rest == b"\r\n" and pings == 0
    assert frame(b"") == ([], b"", 0)


def test_framing_missing_content_length_counts_as_zero() -> None:
    b = msg(*BASE)
    assert frame(b + b) == ([b, b], b"", 0)


@pytest.mark.parametrize("line", [
    "Content-Length: -1", "Content-Length: abc", "Content-Length: 99999999999",
])
def test_framing_bad_content_length(line: str) -> None:
    with pytest.raises(ParseError) as info:
        frame(msg(*BASE, line))
    assert info.value.status == 400


def test_framing_conflicting_and_huge() -> None:
    with pytest.raises(ParseError):
        frame(msg(*BASE, "Content-Length: 1", "l: 2", body="ab"))
    same = msg(*BASE, "Content-Length: 2", "l: 2", body="ab")
    assert frame(same)[0] == [same]
    with pytest.raises(ParseError):
        frame(b"INVITE sip:x SIP/2.0\r\nX: " + b"a" * 70000)
    with pytest.raises(ParseError) as info:
        frame(msg(*BASE, "Content-Length: 10000000"))
    assert info.value.status == 413


def test_via_built_by_hand() -> None:
    from sipproxy.sip.headers import Via

    v = Via("SIP/2.0", "TLS", "[::1]", 5061, Params([("branch", "z9hG4bKh"), ("rport", None)]))
    assert str(v) == "SIP/2.0/TLS [::1]:5061;branch=z9hG4bKh;rport"
    assert str(parse_via(str(v))) == str(v) and str(v.copy()) == str(v)


def test_parsed_views_follow_header_changes() -> None:
    m = parse_message(msg(*BASE))
    assert m.to.tag is None and m.vias[0].host == "192.0.2.1"
    m.headers.set("To", "<sip:bob@example.com>;tag=x")
    assert m.to.tag == "x"
    m.headers = Headers([*m.headers.items()[1:], ("Via", "SIP/2.0/TCP 192.0.2.99;branch=z9hG4bKn")])
    assert m.vias[0].host == "192.0.2.99" and m.vias[0].transport == "TCP"
