"""Fuzz target: the TCP/TLS stream framer (`sipproxy.sip.framing.StreamFramer.feed`).

The first byte gives chunk sizes for cutting the rest into the pieces a socket might
deliver. Properties: only `FramingError`; the time bound; the stream fed in pieces gives the
same messages, pings and left-over bytes as fed whole (or both fail); every framed message
is whole (its head ends in a blank line and its body is Content-Length long), and the framed
items put back together are the start of the stream less skipped CRLFs; each message's own
parse raises nothing but ParseError.
"""

from __future__ import annotations

from fuzz._common import check, expect_only, time_bound
from sipproxy.sip.framing import PING, FramingError, StreamFramer, content_length
from sipproxy.sip.parser import ParseError, parse_message

MAX = 4096  # small, so that the size limit is reached


def chunks(data: bytes, sizes: int) -> list[bytes]:
    out, pos, step = [], 0, 0
    while pos < len(data):
        n = 1 + ((sizes >> (step % 8)) & 0x1F) * (1 + step % 3)
        out.append(data[pos:pos + n])
        pos += n
        step += 1
    return out


def feed(pieces: list[bytes]) -> tuple[list, bytes] | None:
    framer = StreamFramer(MAX)
    items: list = []
    for piece in pieces:
        got = expect_only((FramingError,), framer.feed, piece)
        if got is None:
            return None
        items.extend(got)
    return items, bytes(framer.buffer)


def TestOneInput(data: bytes) -> None:  # noqa: N802
    if not data:
        return
    sizes, stream = data[0], data[1:]
    with time_bound():
        whole = feed([stream])
        pieces = feed(chunks(stream, sizes))
        check((whole is None) == (pieces is None),
              f"fed whole {'failed' if whole is None else 'framed'}, in pieces {'failed' if pieces is None else 'framed'}")
        if whole is None:
            return
        check(whole == pieces, "fed in pieces, the stream frames differently")
        items, rest = whole
        check(len(rest) <= MAX, "the framer keeps more than its limit")
        pos = 0
        for item in items:
            piece = b"\r\n\r\n" if item is PING else item
            while not stream.startswith(piece, pos):
                check(stream.startswith(b"\r\n", pos), f"framed item not found in the stream at {pos}")
                pos += 2
            pos += len(piece)
        while not stream.endswith(rest, pos) or len(stream) - pos != len(rest):
            check(stream.startswith(b"\r\n", pos), "the left-over bytes are not the end of the stream")
            pos += 2
        for item in items:
            if item is PING:
                continue
            head, sep, body = item.partition(b"\r\n\r\n")
            check(sep and len(body) == content_length(head), "a framed message is not whole")
            expect_only((ParseError,), parse_message, item)


if __name__ == "__main__":
    from fuzz.run import main_for

    main_for(__name__)
