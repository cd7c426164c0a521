"""Fuzz target: digest credentials (`sipproxy.sip.digest.parse_credentials`,
`parse_auth_params`), the Authorization / Proxy-Authorization values a client sends.

Properties: these return None for bad input and never raise; the time bound; the quick
path (`_plain_params`) agrees with the grammar (`_regex_params`) wherever it answers; the
parameters written back as ``name="value"`` (quoted-string escaping) parse to the same
parameters, and credentials so written to the same credentials.
"""

from __future__ import annotations

from fuzz._common import check, expect_only, text_of, time_bound
from sipproxy.sip.digest import (
    _plain_params,
    _regex_params,
    parse_auth_params,
    parse_credentials,
)


def quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write(scheme: str, params: dict[str, str]) -> str:
    return scheme + " " + ", ".join(f"{name}={quoted(value)}" for name, value in params.items())


def TestOneInput(data: bytes) -> None:  # noqa: N802
    text = text_of(data)
    with time_bound():
        parsed = expect_only((), parse_auth_params, text)
        creds = expect_only((), parse_credentials, text)
        rest = text.strip().partition(" ")[2].strip()
        if rest and "\\" not in rest:
            plain = expect_only((), _plain_params, rest)
            if plain is not None:
                check(plain == _regex_params(rest), f"quick path and grammar disagree on {rest!r}")
        if parsed is None:
            check(creds is None, "credentials from a value that is not auth-params")
            return
        scheme, params = parsed
        if any(c in value for value in params.values() for c in "\r\n"):
            return  # not writable as one header line
        written = write(scheme, params)
        again = expect_only((), parse_auth_params, written)
        check(again == (scheme, params), f"{text!r} -> {written!r} -> {again!r}")
        if creds is not None:
            check(parse_credentials(written) == creds, f"credentials changed through {written!r}")


if __name__ == "__main__":
    from fuzz.run import main_for

    main_for(__name__)
