"""Fuzz target: SIP messages (`sipproxy.sip.parser.parse_message`), UDP datagrams and framed
stream messages alike.

Properties: only `ParseError` comes out (of the parse, of every parsed view a proxy reads,
and of answering a malformed request from ``exc.request``); no input takes longer than the
time bound; a parsed message written with ``to_bytes`` parses again to the same start line,
header fields and body.
"""

from __future__ import annotations

from fuzz._common import check, expect_only, time_bound
from sipproxy.sip.parser import ParseError, Request, make_response, parse_message

#: the parsed views a proxy reads (each may raise ParseError(400) when its field is malformed)
VIEWS = ("vias", "top_via", "call_id", "cseq", "from_", "to", "contacts", "max_forwards",
         "expires", "routes", "record_routes", "content_length")


def start_line(msg) -> tuple:
    if isinstance(msg, Request):
        return ("request", msg.method, msg._start_line().split(" ")[1], msg.version)
    return ("response", msg.status, msg.reason, msg.version)


def summary(msg) -> tuple:
    """Start line, header fields but Content-Length (``to_bytes`` always writes exactly one,
    equal to the body's length: checked apart), body."""
    fields = [item for key, item in zip(msg.headers._keys, msg.headers.items(), strict=True)
              if key != "content-length"]
    return start_line(msg), fields, msg.body


def _views(msg) -> None:
    for name in VIEWS:
        value = expect_only((ParseError,), getattr, msg, name)
        if value is not None:
            str(value)
    if isinstance(msg, Request):
        uri = expect_only((ParseError,), getattr, msg, "uri")
        if uri is not None:
            str(uri)
        expect_only((ParseError,), lambda: make_response(msg, 200, to_tag="fuzz").to_bytes())


def _answer(exc: ParseError) -> bytes:
    """The answer to a malformed request, built from what could be read of it."""
    return make_response(exc.request, exc.status, exc.reason).to_bytes()


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the libFuzzer/atheris entry point name
    with time_bound():
        try:
            msg = parse_message(data)
        except ParseError as exc:
            check(exc.status in (0, 400, 505), f"ParseError status {exc.status}")
            if exc.request is not None:
                expect_only((ParseError,), _answer, exc)
            return
        except Exception as exc:
            check(False, f"parse_message raised {type(exc).__name__}: {exc}")
            raise
        before = summary(msg)
        wire = msg.to_bytes()
        try:
            again = parse_message(wire)
        except ParseError as exc:
            check(False, f"to_bytes of a parsed message does not parse again: {exc} ({wire[:300]!r})")
            raise
        check(summary(again) == before,
              f"parse(to_bytes(m)) differs from m:\n{before!r}\n{summary(again)!r}")
        check(again.headers.getall("content-length") == [str(len(again.body))],
              f"to_bytes wrote Content-Length {again.headers.getall('content-length')} for a "
              f"{len(again.body)}-byte body")
        check(again.to_bytes() == wire, "to_bytes is not stable across a second round trip")
        _views(msg)


if __name__ == "__main__":
    from fuzz.run import main_for

    main_for(__name__)
