"""Fuzz target: the MSRP parser (`mediaproxy.msrp.parser.Parser`), fed a byte stream.

The first input byte picks how the rest is cut into pieces, as TCP may deliver it.
Properties: only `MSRPParseError`; the time bound; the same chunks (or the same error)
whether the stream comes whole or in pieces; a chunk that parses, written back with
`Message.encode`, parses to the same chunk.
"""

from __future__ import annotations

from fuzz._common import check, expect_only, time_bound
from mediaproxy.msrp.message import Message
from mediaproxy.msrp.parser import MSRPParseError, Parser, read_messages


def _chunks(data: bytes, step: int) -> list[Message] | MSRPParseError:
    parser, pending, out = Parser(max_head_bytes=4096, max_headers=24), {}, []
    try:
        for i in range(0, len(data), step):
            out += read_messages(parser, data[i:i + step], pending, max_body=1 << 20)
    except MSRPParseError as exc:
        return exc
    return out


def _key(m: Message) -> tuple:
    return (m.transaction_id, m.method, m.code, m.comment, m.headers, m.body, m.flag)


def TestOneInput(data: bytes) -> None:  # noqa: N802
    if not data:
        return
    step, stream = data[0] % 17 + 1, data[1:]
    with time_bound():
        whole = expect_only((), _chunks, stream, max(1, len(stream)))
        pieces = expect_only((), _chunks, stream, step)
        if isinstance(whole, MSRPParseError) or isinstance(pieces, MSRPParseError):
            check(isinstance(whole, MSRPParseError) and isinstance(pieces, MSRPParseError)
                  and whole.reason == pieces.reason,
                  f"whole and in pieces of {step} differ: {whole!r} / {pieces!r}")
            return
        check([_key(m) for m in whole] == [_key(m) for m in pieces],
              f"whole and in pieces of {step} give other chunks")
        for m in whole:
            again = expect_only((), _chunks, m.encode(), 1 << 20)
            check(isinstance(again, list) and len(again) == 1 and _key(again[0]) == _key(m),
                  f"written and read again, the chunk changes: {m!r} -> {again!r}")


if __name__ == "__main__":
    from fuzz.run import main_for

    main_for(__name__)
