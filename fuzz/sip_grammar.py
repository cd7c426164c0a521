"""Fuzz target: the header value grammar -- URIs (`parse_uri`), name-addr values
(`parse_name_addr`), Via values (`parse_via`) and header parameters (`parse_params`).

The first byte picks the parser, the rest is the value. Properties: only `ParseError`; the
time bound; a value written afresh from its parsed components (a new object, so the text is
built by the writer, not remembered from the parse) parses back to the same components.
"""

from __future__ import annotations

from fuzz._common import check, expect_only, text_of, time_bound
from sipproxy.sip.grammar import Params, ParseError, parse_params
from sipproxy.sip.headers import Via, parse_via
from sipproxy.sip.uri import URI, NameAddr, parse_name_addr, parse_uri


def uri_parts(u: URI) -> tuple:
    return (u.scheme, u.user, u.password, u.host, u.port, u.params.items(), list(u.headers), u.opaque)


def fresh_uri(u: URI) -> URI:
    return URI(u.scheme, u.user, u.host, u.port, Params(u.params.items()), list(u.headers), u.password, u.opaque)


def _uri(text: str) -> None:
    u = expect_only((ParseError,), parse_uri, text)
    if u is None:
        return
    written = str(fresh_uri(u))
    again = expect_only((), parse_uri, written)
    check(uri_parts(again) == uri_parts(u), f"URI {text!r} -> {written!r} -> {uri_parts(again)!r}")


def _name_addr(text: str) -> None:
    na = expect_only((ParseError,), parse_name_addr, text)
    if na is None:
        return
    u = expect_only((ParseError,), getattr, na, "uri")
    if u is None:
        return
    written = str(NameAddr(fresh_uri(u), na.display_name, Params(na.params.items())))
    again = expect_only((), parse_name_addr, written)
    check((again.display_name or None, uri_parts(again.uri), again.params.items())
          == (na.display_name or None, uri_parts(u), na.params.items()),
          f"name-addr {text!r} -> {written!r} -> {again!r}")


def _via(text: str) -> None:
    via = expect_only((ParseError,), parse_via, text)
    if via is None:
        return
    for name in ("branch", "received", "rport"):
        getattr(via, name)
    written = str(Via(via.protocol, via.transport, via.host, via.port, Params(via.params.items())))
    again = expect_only((), parse_via, written)
    parts = (via.protocol, via.transport, via.host, via.port, via.params.items())
    check((again.protocol, again.transport, again.host, again.port, again.params.items()) == parts,
          f"Via {text!r} -> {written!r} -> {again!r}")


def _params(text: str) -> None:
    params = expect_only((ParseError,), parse_params, text)
    if params is None:
        return
    written = str(Params(params.items()))
    again = expect_only((), parse_params, written)
    check(again.items() == params.items(), f"params {text!r} -> {written!r} -> {again.items()!r}")


PARSERS = (_uri, _name_addr, _via, _params)


def TestOneInput(data: bytes) -> None:  # noqa: N802
    if not data:
        return
    with time_bound():
        PARSERS[data[0] % len(PARSERS)](text_of(data[1:]))


if __name__ == "__main__":
    from fuzz.run import main_for

    main_for(__name__)
