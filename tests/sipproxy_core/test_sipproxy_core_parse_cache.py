"""The parser's shortcuts give what the full grammar gives: parse caches, shapes, lazy views."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from sipproxy.sip import grammar, headers, uri
from sipproxy.sip import parser as message
from sipproxy.sip.parser import ParseError, make_response, parse_message

DATA = Path(__file__).resolve().parent.parent / "data" / "rfc4475"
SEEDS = [p.read_bytes() for p in sorted(DATA.glob("*.dat"))]


def clear_caches() -> None:
    for cache in (uri._URI_CACHE, uri._NAME_ADDR_CACHE, uri._NAME_ADDR_SHAPES, headers._VIA_CACHE,
                  headers._VIA_SHAPES, headers._SENT_BY_CACHE, message._LINE_KEYS,
                  message._SHAPES, message._LINE_VALUES):
        cache.clear()


def outcome(fn, text: str):
    try:
        parts = fn(text)
    except ParseError as exc:
        return ("error", exc.status)
    return ("ok", *parts[:-1])  # the params text may be left out by a shortcut


VIA_FORMS = [
    "SIP/2.0/UDP 192.0.2.10:5060;branch={b};rport",
    "SIP/2.0/TCP host.example.com;rport;branch={b}",
    "SIP/2.0/UDP [2001:db8::9]:5061;branch={b};received=192.0.2.7;rport=5070",
    "SIP / 2.0 / UDP h ; branch={b} ; rport",
    "SIP/2.0/UDP h;branch={b};branch=x",
    "SIP/2.0/UDP h;branch=x;branch={b}",
    'SIP/2.0/UDP h;a="q;branch={b};c";branch=x',
    "SIP/2.0/UDP h;BRANCH=up;branch={b}",
    "SIP/2.0/UDP h;branch={b};;",
    "SIP/2.0/UDP h:99999;branch={b}",
    "SIP/2.0/UDP h junk;branch={b}",
    "SIP/2.0/UDP [1::2::3];branch={b}",
    "SIP/2.0/UDP h;branch={b},SIP/2.0/UDP g",
]
BRANCHES = ["z9hG4bK776asdhds", "z9hG4bK-524287-1---5b", "z9hG4bK.a1", "x", "a b", 'q"', "é9",
            "z9\\x", "", "<a>", "a=b", "a,b"]


@pytest.mark.parametrize("form", VIA_FORMS)
def test_via_shapes_agree_with_the_full_grammar(form: str) -> None:
    for branch in BRANCHES:
        value = form.format(b=branch)
        clear_caches()
        expected = outcome(headers._slow_via_parts, value)
        assert outcome(headers._via_parts, value) == expected, value
        assert outcome(headers._via_parts, value) == expected, value  # warm


NAME_ADDR_FORMS = [
    "Alice <sip:alice@example.com>;tag={t}",
    '"Alice, A." <sip:alice@example.com>;tag={t};x=1',
    "<sip:alice@example.com;tag=uri>;tag={t}",
    "<sip:alice@example.com;tag={t}>",
    "sip:alice@example.com;tag={t}",
    '"a>;tag={t}" <sip:a@b>',
    '"unterminated <sip:a@b>;tag={t}',
    "Alice <sip:alice@example.com> ; tag={t}",
    "<sip:a@b>;x=\"q;tag={t}\"",
]
TAGS = ["1928301774", "a6c85cf", "x", "a-b.c", "", "a b", 'q"', "<>", "a;b"]


@pytest.mark.parametrize("form", NAME_ADDR_FORMS)
def test_tag_shapes_agree_with_the_full_grammar(form: str) -> None:
    for tag in TAGS:
        value = form.format(t=tag)
        clear_caches()
        expected = outcome(uri._name_addr_parts, value)
        got = outcome(uri.name_addr_parts, value)
        assert got == expected, value
        assert outcome(uri.name_addr_parts, value) == expected, value


def test_torture_messages_parse_alike_with_cold_and_warm_caches() -> None:
    def summary(data: bytes):
        try:
            m = parse_message(data)
        except ParseError as exc:
            return ("error", exc.status, exc.reason)
        out = [type(m).__name__, m.headers.items(), m.body, m.to_bytes()]
        for attr in ("vias", "from_", "to", "cseq", "call_id", "max_forwards", "contacts"):
            try:
                value = getattr(m, attr)
                out.append([str(v) for v in value] if isinstance(value, list) else str(value))
            except ParseError as exc:
                out.append(("error", exc.status))
        return out

    rng = random.Random(7)
    for data in SEEDS + [s.replace(b"\r\n", b"\r\nX-R: %d\r\n" % rng.randrange(9), 1) for s in SEEDS]:
        clear_caches()
        cold = summary(data)
        assert summary(data) == cold


def test_parsed_objects_are_not_shared_between_messages() -> None:
    data = (b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKs1\r\n"
            b"From: <sip:a@example.com>;tag=f\r\nTo: Bob <sip:bob@example.com>\r\n"
            b"Call-ID: s1\r\nCSeq: 1 INVITE\r\nContact: <sip:a@192.0.2.1>\r\n\r\n")
    first = parse_message(data)
    first.vias[0].params["received"] = "192.0.2.99"
    first.to.params["tag"] = "mutated"
    first.to.uri.host = "elsewhere"
    first.uri.params["lr"] = None
    first.contacts[0].uri.port = 9
    second = parse_message(data)
    assert second.vias[0].received is None and second.to.tag is None
    assert second.to.uri.host == "example.com" and str(second.uri) == "sip:bob@example.com"
    assert second.contacts[0].uri.port is None
    assert str(first.uri) == "sip:bob@example.com;lr" and first.uri.params.get("lr") is None


def test_response_checks_its_top_via_and_the_others_when_asked() -> None:
    base = ("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKr1\r\nVia: {second}\r\n"
            "From: <sip:a@example.com>;tag=f\r\nTo: <sip:b@example.com>;tag=t\r\n"
            "Call-ID: r1\r\nCSeq: 1 INVITE\r\n\r\n")
    resp = parse_message(base.format(second="SIP/2.0/UDP h:99999;branch=z9hG4bKx").encode())
    assert resp.top_via.branch == "z9hG4bKr1"
    with pytest.raises(ParseError) as info:
        resp.vias  # noqa: B018
    assert info.value.status == 400
    with pytest.raises(ParseError) as info:
        parse_message(base.replace("Via: SIP/2.0/UDP 192.0.2.1", "Via: SIP/2.0/UDP 192.0.2.1:99999")
                      .format(second="SIP/2.0/UDP h").encode())
    assert info.value.status == 0
    req = base.replace("SIP/2.0 200 OK", "INVITE sip:b@example.com SIP/2.0")
    with pytest.raises(ParseError) as info:  # a request: every Via checked
        parse_message(req.format(second="SIP/2.0/UDP h:99999").encode())
    assert info.value.status == 400 and info.value.request is not None


def test_stamped_top_via_is_kept_and_other_text_parsed_again() -> None:
    data = (b"OPTIONS sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKv;rport\r\n"
            b"From: <sip:a@example.com>;tag=f\r\nTo: <sip:b@example.com>\r\nCall-ID: v1\r\n"
            b"CSeq: 1 OPTIONS\r\n\r\n")
    m = parse_message(data)
    via = m.top_via
    assert via is m.vias[0]
    via.params["rport"] = "5070"
    via.params["received"] = "192.0.2.9"
    m.headers.replace_first("via", str(via))
    assert m.vias[0] is via and m.top_via is via
    assert m.headers.get("via") == "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKv;rport=5070;received=192.0.2.9"
    m.headers.replace_first("via", "SIP/2.0/TCP 192.0.2.2;branch=z9hG4bKw")
    assert m.top_via is not via and m.top_via.transport == "TCP" and m.vias[0].host == "192.0.2.2"


def test_untouched_lines_are_written_as_they_came() -> None:
    data = (b"MESSAGE sip:b@example.com SIP/2.0\r\nv:SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKu\r\n"
            b"f:  <sip:a@example.com>;tag=f  \r\nt: <sip:b@example.com>\r\ni: u1\r\n"
            b"CSeq: 1 MESSAGE\r\nSubject :   odd   spacing\r\nMax-Forwards: 70\r\nl: 2\r\n\r\nhi")
    m = parse_message(data)
    assert m.to_bytes() == data
    m.headers.set("Max-Forwards", "69")
    m.body = b"hello"
    out = m.to_bytes()
    assert b"\r\nSubject :   odd   spacing\r\n" in out and b"\r\nf:  <sip:a@example.com>;tag=f  \r\n" in out
    assert b"\r\nMax-Forwards: 69\r\n" in out and b"\r\nl: 5\r\n" in out and out.endswith(b"hello")
    assert parse_message(out).headers.get("subject") == "odd   spacing"


def test_line_cache_never_admits_a_bad_line() -> None:
    good = (b"OPTIONS sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKl\r\n"
            b"From: <sip:a@example.com>;tag=f\r\nTo: <sip:b@example.com>\r\nCall-ID: l1\r\n"
            b"CSeq: 1 OPTIONS\r\n{extra}\r\n")
    for extra in (b"Via", b"To", b"Bad Name: x", b": x", b"X-Fine: 1"):
        for _ in range(2):  # the second time from the caches
            data = good.replace(b"{extra}", extra)
            if extra == b"X-Fine: 1":
                assert parse_message(data).headers.get("x-fine") == "1"
                continue
            with pytest.raises(ParseError) as info:
                parse_message(data)
            assert info.value.status == 400


def test_caches_stay_bounded() -> None:
    for i in range(grammar._CACHE_SIZE + 10):
        uri.parse_uri(f"sip:u{i}@example.com")
    assert len(uri._URI_CACHE) <= grammar._CACHE_SIZE
    uri.parse_uri("sip:" + "a" * 300 + "@example.com")  # long texts are not remembered
    assert not any(len(k) > grammar._CACHE_TEXT_MAX for k in uri._URI_CACHE)
    assert re.match(r"sip:u\d+@example.com", next(iter(uri._URI_CACHE)))


FIELD_FAULTS = [
    ("Content-Length: 0", "Content-Length: x1"), ("Content-Length: 0", "Content-Length: 99"),
    ("Call-ID: c1", "Call-ID: "), ("CSeq: 1 OPTIONS", "CSeq: 1 INVITE"), ("CSeq: 1 OPTIONS", "CSeq: x OPTIONS"),
    ("From: <sip:a@example.com>;tag=f", "From: <sip:a@example.com;tag=f"),
    ("To: <sip:b@example.com>", "To: sip:b@exa mple.com"), ("Max-Forwards: 70", "Max-Forwards: 300"),
    ("Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKc", "Via: SIP/2.0/UDP 192.0.2.1:99999;branch=z9hG4bKc"),
    ("Content-Length: 0", "Content-Length: 0x"), ("Call-ID: c1", "Call-ID: c1\r\ni: c2"),
]


@pytest.mark.parametrize(("good", "bad"), FIELD_FAULTS)
def test_known_field_order_and_lines_give_the_same_faults(good: str, bad: str) -> None:
    """A message of a field order already checked (`_SHAPES`) with lines seen before
    (`_LINE_VALUES`) is judged as a cold parse judges it, faults in the same order."""
    base = ("OPTIONS sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKc\r\n"
            "From: <sip:a@example.com>;tag=f\r\nTo: <sip:b@example.com>\r\nCall-ID: c1\r\n"
            "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    data = base.replace(good, bad).encode()
    twice = data.replace(b"Content-Length: x1", b"CSeq: 2 OPTIONS\r\nContent-Length: x1")

    def judged(raw: bytes):
        try:
            m = parse_message(raw)
        except ParseError as exc:
            return ("error", exc.status, exc.reason)
        return ("ok", m.headers._views, m.body, m.to_bytes())

    for raw in (data, twice):
        clear_caches()
        cold = judged(raw)
        parse_message(base.encode())  # the order and the good lines now known
        assert judged(raw) == cold, raw
        assert judged(raw) == cold, raw


def test_responses_built_from_known_field_orders_match_the_general_copy() -> None:
    base = ("INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKm\r\n"
            "{via2}From: <sip:a@example.com>;tag=f\r\nTo: {to}\r\nCall-ID: m1\r\n"
            "CSeq: 1 INVITE\r\nTimestamp: 5\r\nContent-Length: 0\r\n\r\n")
    for to in ("<sip:b@example.com>", "<sip:b@example.com>;tag=x", "<sip:b@example.com;lr=1>",
               "<sip:b@example.com> ; TAG = y", "\"a;tag=b\" <sip:b@example.com>", "sip:b@example.com;x=1"):
        for via2 in ("", "Via: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKn\r\n"):
            request = parse_message(base.format(to=to, via2=via2).encode())
            for status, tag in ((100, "t1"), (180, "t1"), (407, None), (200, "t2")):
                warm = make_response(request, status, to_tag=tag, headers=[("Server", "x")])
                message._SHAPES.clear()
                cold = make_response(request, status, to_tag=tag, headers=[("Server", "x")])
                assert warm.to_bytes() == cold.to_bytes(), (to, status)
                assert warm.headers._keys == cold.headers._keys
                parse_message(base.format(to=to, via2=via2).encode())  # known again


def test_copies_keep_a_well_written_content_length_line() -> None:
    """A copy writes the Content-Length line as the general path would: kept when it is
    ``Name: length``, rewritten when spaced oddly or when the body changed."""
    body = b"v=0\r\n"
    for line, written in ((b"Content-Length: 5", b"Content-Length: 5"), (b"l: 5", b"l: 5"),
                          (b"Content-Length :  5", b"Content-Length: 5"),
                          (b"Content-Length: 05", b"Content-Length: 5")):
        data = (b"INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKp\r\n"
                b"From: <sip:a@example.com>;tag=f\r\nTo: <sip:b@example.com>\r\nCall-ID: p1\r\n"
                b"CSeq: 1 INVITE\r\n" + line + b"\r\n\r\n" + body)
        for _ in range(2):  # cold and warm caches
            original = parse_message(data)
            copy = original.copy()
            copy.headers.add("Via", "SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKq", top=True)
            out = copy.to_bytes()
            assert b"\r\n" + written + b"\r\n\r\n" in out and out.endswith(body)
            # the original keeps its line unless the number needs rewriting (as before)
            assert original.to_bytes() == (data.replace(line, written) if b"05" in line else data)
            copy.body = b"x"
            assert copy.to_bytes().endswith(b"\r\n" + written.split(b":")[0].rstrip() + b": 1\r\n\r\nx")
            again = original.copy()
            again.headers.set("Content-Length", "5")
            assert again.to_bytes().endswith(b"\r\n" + written.split(b":")[0].rstrip() + b": 5\r\n\r\n" + body)
