"""Random mutations of valid messages never raise anything but ParseError (seeded, repeatable)."""

from __future__ import annotations

import random
from pathlib import Path

from sipproxy.sip.parser import (
    Message,
    ParseError,
    Request,
    make_response,
    parse_message,
)
from sipproxy.sip.transaction import Timers, TransactionLayer
from tests.helpers import frame

DATA = Path(__file__).resolve().parent.parent / "data" / "rfc4475"
SEEDS = [p.read_bytes() for p in sorted(DATA.glob("*.dat"))]
TOKENS = [b"\r\n", b" ", b"\t", b";", b",", b":", b"<", b">", b'"', b"\\", b"%", b"@", b"[",
          b"]", b"=", b"?", b"\r\n ", b"\x00", b"\xff", b"SIP/2.0", b"z9hG4bK", b"9" * 12,
          b"-1", b"Content-Length: ", b"\r\n\r\n", b"Via: ", b"v:", b"To:", b"tag=", b"sip:"]


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(6)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:  # flip a byte
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif op == 1:  # insert a grammar-significant token
            buf[pos:pos] = rng.choice(TOKENS)
        elif op == 2:  # delete a run
            del buf[pos:pos + rng.randint(1, 20)]
        elif op == 3:  # truncate
            del buf[pos:]
        elif op == 4:  # duplicate a line
            lines = bytes(buf).split(b"\r\n")
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i])
            buf = bytearray(b"\r\n".join(lines))
        else:  # splice another message in
            other = rng.choice(SEEDS)
            j = rng.randrange(len(other) + 1)
            buf[pos:pos] = other[j:j + rng.randint(1, 80)]
    return bytes(buf)


def exercise(m: Message) -> None:
    """Touch every parsed view; only ParseError may come out."""
    for attr in ("vias", "call_id", "cseq", "from_", "to", "contacts", "max_forwards",
                 "expires", "routes", "record_routes", "content_length"):
        try:
            value = getattr(m, attr)
            str(value)
        except ParseError:
            pass
    if isinstance(m, Request):
        try:
            str(m.uri)
        except ParseError:
            pass
        make_response(m, 200, to_tag="f").to_bytes()
    again = parse_message(m.to_bytes())
    assert type(again) is type(m)


def test_mutated_messages_only_raise_parse_error() -> None:
    rng = random.Random(4475)
    layer = TransactionLayer(Timers(t1=0.01))
    parsed = rejected = 0
    for i in range(2500):
        data = mutate(rng, SEEDS[i % len(SEEDS)])
        try:
            m = parse_message(data)
        except ParseError as exc:
            rejected += 1
            assert exc.status in (0, 400, 505)
            if exc.request is not None:
                make_response(exc.request, exc.status, exc.reason).to_bytes()
            continue
        parsed += 1
        exercise(m)
        try:
            layer.receive(m, source="fuzz")
        except ParseError:
            pass
        try:
            frame(data)
        except ParseError:
            pass
    assert parsed > 200 and rejected > 200  # both paths were really exercised


def test_random_bytes_and_stream_chunks() -> None:
    rng = random.Random(5626)
    for _ in range(1500):
        data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
        for fn in (parse_message, frame):
            try:
                fn(data)
            except ParseError:
                pass
    stream = b"".join(SEEDS[i] for i in (0, 5, 9)) + b"\r\n\r\n"
    for cut in range(0, len(stream), 7):
        try:
            msgs, rest, _pings = frame(stream[:cut])
        except ParseError:
            continue
        assert b"".join(msgs) + rest in stream or not msgs


def test_pathological_values_are_rejected_in_linear_time() -> None:
    """Inputs that make a backtracking regex go quadratic (30 kB each, a datagram's worth);
    with a quadratic pattern this test takes minutes instead of milliseconds."""
    from sipproxy.sip.headers import parse_via
    from sipproxy.sip.uri import parse_name_addr, parse_params, parse_uri

    n = 15000
    cases = [
        (parse_name_addr, " " * n + "x"),
        (parse_name_addr, "\t " * n + '"'),
        (parse_name_addr, '"' + "\\a" * n),
        (parse_name_addr, "<sip:a@b>" + ";a=b" * (n // 2) + " x"),
        (parse_via, "SIP/2.0/UDP h" + ";a=b" * (n // 2) + ",x"),
        (parse_uri, "sip:a@b" + ";a" * n + ";;"),
        (parse_uri, "sip:" + "a:" * n + "@b c"),
        (parse_params, ";a" * n + "; "),
    ]
    for fn, text in cases:
        try:
            fn(text)
        except ParseError:
            pass
    data = b"INVITE sip:a@b SIP/2.0\r\nX: y\r\n" + b" z\r\n" * n + b"\r\n"
    try:
        parse_message(data)
    except ParseError as exc:
        assert exc.status == 0  # no Via: cannot be answered
