"""Requests for the presence tests, as a phone would send them."""

from __future__ import annotations

from sipproxy.sip.parser import parse_message

_N = [0]


def request(method: str, ruri: str, *, from_: str = "carol@example.com", to: str = "",
            event: str | None = "presence", expires: int | None = None, body: bytes = b"",
            content_type: str = "application/pidf+xml", call_id: str = "", cseq: int = 1,
            to_tag: str = "", from_tag: str = "ft1", extra: tuple[str, ...] = ()):
    _N[0] += 1
    lines = [f"{method} sip:{ruri} SIP/2.0",
             f"Via: SIP/2.0/UDP 192.0.2.5:5062;branch=z9hG4bK-{_N[0]}",
             "Max-Forwards: 70",
             f"From: <sip:{from_}>;tag={from_tag}",
             f"To: <sip:{to or ruri}>" + (f";tag={to_tag}" if to_tag else ""),
             f"Call-ID: {call_id or f'call-{_N[0]}'}",
             f"CSeq: {cseq} {method}",
             "Contact: <sip:carol@192.0.2.5:5062>"]
    if event is not None:
        lines.append(f"Event: {event}")
    if expires is not None:
        lines.append(f"Expires: {expires}")
    lines += list(extra)
    if body:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body)}")
    return parse_message(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
