"""SIP messages: parse bytes into `Request` / `Response`, serialise back (RFC 3261 7, 8.2.6, 18.3).

`parse_message` splits the start line and the header field lines and checks, eagerly, only
what every element needs before it may act on a request: the start line, the fields that
identify the transaction and dialog (Via, From, To, Call-ID, CSeq), Max-Forwards and
Content-Length. Everything else stays the line it arrived in until a property or
``headers.get`` asks for it, and `Message.to_bytes` writes untouched lines back as they came.
Of a response only the top Via is checked (the one a proxy reads; ``vias`` checks the others
when asked, raising ParseError(400)).

Speed (``scripts/bench/sip_parse``): a header line seen before (``Max-Forwards: 70``, a call's
From) is indexed with one dictionary look-up (`_index`); values are parsed through bounded
caches of immutable components (`sipproxy.sip.grammar`), so a message of a known call costs the
parsing of its new Via branch and little else. A field order checked before (`_SHAPES`, the
keys as a tuple) gives the positions of the checked fields without counting them, and a
checked field line seen before gives its value in one look-up (`_LINE_VALUES`); only
immutable values (ints, strings, tuples) are remembered, every message builds its own
objects from them. Unusual input (folding, bare LF, LWS, quotes) takes the general path,
which gives the same result. `make_response` (re-exported from `sipproxy.sip.messages`) copies
by the same field positions.

Faults (RFC 4475): a malformed request raises ``ParseError(status, reason, request)`` where
``status`` is the answer it deserves (400, 505) and ``request`` is a best-effort `Request`
for ``make_response`` (None when even that could not be built: then drop it). A malformed
response, or garbage, raises ``ParseError(0, reason)``: drop it silently.

Properties parsed on access (``msg.contacts``, ``msg.routes`` ...) raise ``ParseError(400)``
when the field is malformed; callers handling a request catch it and answer 400. Parsed views
are remembered until their own field changes (``Headers._views``).

Cheap accessors for the hot path: ``msg.top_via`` (the first Via alone, the same object as
``msg.vias[0]``), ``msg.cseq``, ``msg.call_id``, ``msg.max_forwards`` (remembered at parse
time). After setting received/rport on ``msg.top_via``, write it back with
``msg.headers.replace_first("via", str(via))``: the parsed Via is kept, not parsed again.

Streams are framed by :mod:`sipproxy.sip.framing`; the proxy's own checks of a request (RFC
3261 16.3) are :mod:`sipproxy.proxy.validation`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import repeat
from typing import Any, cast

from sipproxy.sip.grammar import _KNOWN_TOKENS, _remember
from sipproxy.sip.headers import (
    CL_COPY,
    CL_OK,
    NAME_KEYS,
    TOP_VIA,
    _headers,
    canonical_name,
    parse_via,
    pretty_name,
    split_list,
)
from sipproxy.sip.messages import (
    _ENCODING,
    _ERRORS,
    _SHAPES,
    REASONS,
    Message,
    Request,
    Response,
    _parse_cseq_value,
    make_response,
)
from sipproxy.sip.uri import (
    _URI_CACHE,
    ParseError,
    _uri_parts,
    is_token,
    name_addr_parts,
    split_quoted,
)

__all__ = [
    "ParseError",
    "Request",
    "Response",
    "Message",
    "parse_message",
    "make_response",
    "REASONS",
    "split_list",  # re-exported for callers splitting their own list-valued fields
]


#: fields that may appear once only (RFC 4475 3.3.8 / 3.3.9)
_SINGLE = ("call-id", "cseq", "from", "to", "max-forwards", "content-length")
_VERSION_RE = re.compile(r"SIP/(\d+)\.(\d+)\Z", re.IGNORECASE)


def _decode(data: bytes) -> str:
    return data.decode(_ENCODING, _ERRORS)


# -- parsing ---------------------------------------------------------------------------


def _split_head(data: bytes) -> tuple[list[str], bytes]:
    """Split raw bytes into unfolded-able lines and the rest (body and any trailing octets)."""
    start = 0
    while data.startswith(b"\r\n", start):
        start += 2
    end = data.find(b"\r\n\r\n", start)
    if end >= 0:
        return _decode(data[start:end]).split("\r\n"), data[end + 4:]
    end = data.find(b"\n\n", start)
    if end >= 0:  # bare LF line ends: be liberal
        return _decode(data[start:end]).replace("\r\n", "\n").split("\n"), data[end + 2:]
    text = _decode(data[start:]).replace("\r\n", "\n").rstrip("\n")
    return text.split("\n"), b""


#: whole header line -> canonical key, for lines that come back (``Max-Forwards: 70``, the
#: From of a call ...): one look-up instead of cutting the name out (bounded)
_LINE_KEYS: dict[str, str] = {}
_line_key = _LINE_KEYS.get
_LINE_KEYS_MAX = 8192
#: fields whose lines hardly ever come back (a new branch, nonce or response each time)
_ONCE = frozenset(("via", "authorization", "proxy-authorization", "www-authenticate",
                   "proxy-authenticate", "date", "timestamp"))


def _index(lines: list[str]) -> tuple[list[str], list[str], str | None]:
    """Header lines -> (canonical keys, lines, fault).

    A line seen before costs one dictionary look-up, a new line with a known name two; a
    malformed line is left out and reported as the fault, so that a request can still be
    answered (400) from the lines that were good. Folded lines go to `_index_folded`.
    """
    keys = list(map(_line_key, lines))
    if None not in keys:
        return cast(list[str], keys), lines, None
    name_key = NAME_KEYS.get
    remember = len(_LINE_KEYS) < _LINE_KEYS_MAX
    i = 0
    for key in keys:
        if key is None:
            line = lines[i]
            name, colon, _ = line.partition(":")
            key = name_key(name) if colon else None
            if key is None:
                return _index_checked(lines)
            keys[i] = key
            if remember and key not in _ONCE and len(line) <= 256:
                _LINE_KEYS[line] = key
        i += 1
    if not remember:
        _LINE_KEYS.clear()
    return cast(list[str], keys), lines, None


def _index_checked(lines: list[str]) -> tuple[list[str], list[str], str | None]:
    """`_index` for lines with a name not seen before: check each one."""
    good_keys: list[str] = []
    good_lines: list[str] = []
    fault = None
    get = NAME_KEYS.get
    for line in lines:
        name, colon, _ = line.partition(":")
        key = get(name) if colon else None
        if key is None:
            if line[:1] in (" ", "\t"):
                return _index_folded(lines)
            name = name.rstrip()
            if not colon or not name or not is_token(name):
                fault = "Bad Header Line"
                continue
            key = canonical_name(name)
        good_keys.append(key)
        good_lines.append(line)
    return good_keys, good_lines, fault


def _index_folded(lines: list[str]) -> tuple[list[str], list[str], str | None]:
    """Like `_index`, for lines that may be folded (LWS continuation lines are joined and
    the field rewritten as ``Name: value``)."""
    entries: list[list[str]] = []
    fault = None
    get = NAME_KEYS.get
    for line in lines:
        if not line:
            continue
        first = line[0]
        if first == " " or first == "\t":
            if not entries:
                fault = "Bad Header Folding"
                continue
            last = entries[-1]
            last[2] = f"{last[2]} {line.strip()}" if last[2] else line.strip()
            continue
        name, colon, value = line.partition(":")
        key = get(name) if colon else None
        if key is None:
            name = name.rstrip()
            if not colon or not name or not is_token(name):
                fault = "Bad Header Line"
                continue
            key = canonical_name(name)
        entries.append([key, name, value.strip()])
    return [e[0] for e in entries], [f"{e[1]}: {e[2]}" for e in entries], fault


def _is_status_line(start: str) -> bool:
    first = start[:4]
    return first == "SIP/" or (first[:1] in ("s", "S") and first.upper() == "SIP/")


def parse_message(data: bytes) -> Request | Response:
    """Parse one SIP message (a UDP datagram or a framed stream message).

    Octets beyond Content-Length are ignored (RFC 4475 3.1.1.8). Raises `ParseError`: for a
    request with the status to answer (and ``.request`` to answer from), status 0 to drop.
    """
    end = data.find(b"\r\n\r\n")
    if end > 0 and data[0] != 13:  # the common case (`_index` sends folded lines on)
        lines = data[:end].decode(_ENCODING, _ERRORS).split("\r\n")
        start = lines[0]
        del lines[0]
        first = start[:4]  # (`_is_status_line`, inline)
        if first == "SIP/" or (first[:1] in ("s", "S") and first.upper() == "SIP/"):
            return _parse_response(start, lines, _index, data, end + 4)
        return _parse_request(start, lines, _index, data, end + 4)
    # leading CRLFs, bare LF line ends or no empty line
    lines, rest = _split_head(data)
    if not lines or not lines[0]:
        raise ParseError(0, "Empty Message")
    start = lines[0]
    if _is_status_line(start):
        return _parse_response(start, lines[1:], _index_folded, rest, 0)
    return _parse_request(start, lines[1:], _index_folded, rest, 0)


#: one letter per field `_check_fields` looks at ("x": any other)
_CODES = {"via": "v", "from": "f", "to": "t", "call-id": "i", "cseq": "c", "content-length": "l",
          "max-forwards": "m"}
_code_of = _CODES.get


#: a whole Content-Length / Call-ID / CSeq / From / To / Max-Forwards line seen before ->
#: its parsed value (immutable: int, str or tuple); a call's lines come back in each of its
#: messages (bounded, well-formed lines only)
_LINE_VALUES: dict[str, object] = {}
_line_value = _LINE_VALUES.get
_uri_cached = _URI_CACHE.get


def _check_fields(msg: Message, data: bytes, body_start: int, status: int) -> None:
    """Frame the body and check the fields every element relies on.

    Content-Length (single, numeric, not beyond the datagram: RFC 4475 3.1.2.2/3.1.2.3/3.3.9),
    single-valued fields not repeated (3.3.8), Via/From/To/Call-ID/CSeq present and well
    formed (for a response: the top Via; a proxy never reads the others, ``vias`` checks them
    when asked). The parsed values are left in the header fields' views.

    A field order seen before (`_SHAPES`) needs no counting, a line seen before
    (`_LINE_VALUES`) no parsing; the rest goes through `_check_fields_general`.
    """
    h = msg.headers
    keys = h._keys
    shape = _SHAPES.get(tuple(keys))  # (hashing the keys' cached hashes: cheap)
    if shape is None:
        codes = "".join(map(_code_of, keys, repeat("x")))  # the fields' order, searchable in C
        _check_fields_general(msg, data, body_start, status, codes)
        if len(codes) <= 64:  # checked: remember where the fields are
            if len(_SHAPES) >= 1024:
                _SHAPES.clear()
            _SHAPES[tuple(keys)] = (codes.find("l"), codes.find("i"), codes.find("c"),
                                    codes.find("f"), codes.find("t"), codes.find("m"),
                                    codes.find("v"), codes.count("v") == 1)
        return
    i_len, i_call, i_cseq, i_from, i_to, i_mf, i_via, one_via = shape
    lines = h._lines
    if i_len >= 0:
        line = lines[i_len]
        cl = _line_value(line)
        if cl is None:
            cl = _content_length(line, status)
        length = cl[0]  # type: ignore[index]
        if length > len(data) - body_start:
            raise ParseError(status, "Content-Length Larger Than Message")
        msg.body = data[body_start:body_start + length]
        if cl[2]:  # type: ignore[index]
            views: dict = {CL_OK: length, CL_COPY: length}
        else:
            views = {CL_OK: length} if cl[1] else {}  # type: ignore[index]
    else:
        msg.body = data[body_start:]
        views = {}
    value = _line_parsed(lines[i_call], str)
    if not value:
        raise ParseError(status, "Empty Call-ID")
    views["call-id"] = value
    views["cseq"] = _line_parsed(lines[i_cseq], _parse_cseq_value)
    views["from"] = _line_parsed(lines[i_from], name_addr_parts)
    views["to"] = _line_parsed(lines[i_to], name_addr_parts)
    if i_mf >= 0:
        line = lines[i_mf]
        value = _line_value(line)
        if value is None:
            mf = line.partition(":")[2].strip()
            if mf.isdigit() and mf.isascii() and len(mf) <= 3 and int(mf) <= 255:
                views["max-forwards"] = value = int(mf)
                _remember(_LINE_VALUES, line, value)
            # else: left for the property to raise (a request's parse asks for it)
        else:
            views["max-forwards"] = value
    else:
        views["max-forwards"] = -1
    h._views = views
    _check_vias(msg, views, lines[i_via], one_via, status)


def _check_vias(msg: Message, views: dict, line: str, one_via: bool, status: int) -> None:
    """The top Via parsed into ``views`` (``one_via``: the only Via field); of a request every
    Via is checked, of a response (status 0) the top one only."""
    via = line.partition(":")[2].strip()
    if "," not in via:
        top = views[TOP_VIA] = parse_via(via)
        if one_via:
            views["via"] = [top]
            return
    elif status == 0:  # a response: the top Via only
        views[TOP_VIA] = parse_via(split_quoted(via, ",")[0].strip())
        return
    if status:
        msg.vias  # noqa: B018 - parse them all, raising ParseError when one is malformed


def _line_parsed(line: str, parse: Callable[[str], Any]) -> Any:
    """The value of a field ``line`` as ``parse(text)`` gives it (remembered)."""
    value = _line_value(line)
    if value is None:
        value = parse(line.partition(":")[2].strip())
        _remember(_LINE_VALUES, line, value)
    return value


def _content_length(line: str, status: int) -> tuple[int, bool, bool]:
    """(length, its number written as `to_bytes` would write it, the whole line so written)
    of a Content-Length line (remembered)."""
    name, _, cl = line.partition(":")
    cl = cl.strip()
    if not cl.isdigit() or not cl.isascii() or len(cl) > 10:
        raise ParseError(status, "Bad Content-Length")
    length = int(cl)
    value = (length, len(cl) == 1 or cl[0] != "0", line == f"{name.rstrip()}: {length}")
    _remember(_LINE_VALUES, line, value)
    return value


def _check_fields_general(msg: Message, data: bytes, body_start: int, status: int,
                          codes: str) -> None:
    """`_check_fields` for a field order not seen before: count and find each field."""
    h = msg.headers
    keys = h._keys
    lines = h._lines
    for code in "fticlm":
        if codes.count(code) > 1:
            raise ParseError(status, f"Multiple {pretty_name(keys[codes.index(code)])} Values")
    views: dict = {}
    i = codes.find("l")
    if i >= 0:
        length, number_ok, line_ok = _content_length(lines[i], status)
        if length > len(data) - body_start:
            raise ParseError(status, "Content-Length Larger Than Message")
        msg.body = data[body_start:body_start + length]
        if number_ok:  # written as to_bytes would write it
            views[CL_OK] = length
            if line_ok:  # the whole line: a copy may keep it too
                views[CL_COPY] = length
    else:
        msg.body = data[body_start:]
    i_from = codes.find("f")
    i_to = codes.find("t")
    i_call = codes.find("i")
    i_cseq = codes.find("c")
    if i_from < 0 or i_to < 0 or i_call < 0 or i_cseq < 0:
        for key in ("from", "to", "call-id", "cseq"):
            if key not in keys:
                raise ParseError(status, "Missing Required Header: " + pretty_name(key))
    i_via = codes.find("v")
    if i_via < 0:
        raise ParseError(status, "Missing Required Header: Via")
    call_id = lines[i_call].partition(":")[2].strip()
    if not call_id:
        raise ParseError(status, "Empty Call-ID")
    views["call-id"] = call_id
    views["cseq"] = _parse_cseq_value(lines[i_cseq].partition(":")[2].strip())
    views["from"] = name_addr_parts(lines[i_from].partition(":")[2].strip())
    views["to"] = name_addr_parts(lines[i_to].partition(":")[2].strip())
    i = codes.find("m")
    if i >= 0:
        mf = lines[i].partition(":")[2].strip()
        if mf.isdigit() and mf.isascii() and len(mf) <= 3 and int(mf) <= 255:
            views["max-forwards"] = int(mf)
        # else: left for the property to raise (a request's parse asks for it)
    else:
        views["max-forwards"] = -1
    h._views = views
    _check_vias(msg, views, lines[i_via], codes.count("v") == 1, status)


def _parse_request(start: str, lines: list[str], index, data: bytes, body_start: int) -> Request:
    parts = start.rstrip(" \t").split(" ")  # trailing SP tolerated (RFC 4475 3.1.2.10)
    method = parts[0]
    version = parts[-1] if len(parts) > 2 else ""
    sip20 = version == "SIP/2.0"
    m = None if sip20 else _VERSION_RE.match(version)
    if not (method in _KNOWN_TOKENS or is_token(method)) or (len(parts) < 3 and m is None):
        raise ParseError(0, "Not A SIP Message")
    keys, lines, fault = index(lines)
    h = _headers(keys, lines)
    req = Request(method, parts[1], h, b"", version)
    try:
        if len(parts) != 3:
            raise ParseError(400, "Malformed Request-Line")
        if not sip20:
            if m is None:
                raise ParseError(400, "Malformed SIP-Version")
            if (m.group(1), m.group(2)) != ("2", "0"):
                raise ParseError(505, "Version Not Supported")
            req.version = "SIP/2.0"
        if fault:
            raise ParseError(400, fault)
        uri = _uri_cached(parts[1])
        if uri is None:
            uri = _uri_parts(parts[1])
        if uri[6]:
            raise ParseError(400, "Headers Not Allowed In Request-URI")
        _check_fields(req, data, body_start, 400)
        views = h._views
        if views["cseq"][1] != method:  # type: ignore[index]
            raise ParseError(400, "CSeq Method Mismatch")
        if "max-forwards" not in views:  # type: ignore[operator]
            req.max_forwards  # noqa: B018 - raises the 400
    except ParseError as exc:
        if "via" not in req.headers._keys:
            raise ParseError(0, exc.reason) from None  # nowhere to send an answer
        raise ParseError(exc.status, exc.reason, req) from None
    return req


def _parse_response(start: str, lines: list[str], index, data: bytes, body_start: int) -> Response:
    parts = start.split(" ", 2)
    if len(parts) < 2:
        raise ParseError(0, "Malformed Status-Line")
    version = parts[0]
    if version != "SIP/2.0" and (_VERSION_RE.match(version) is None or version[4:] != "2.0"):
        raise ParseError(0, "Unsupported Version")
    code = parts[1]
    if len(code) != 3 or not (code.isdigit() and code.isascii()) or not 100 <= int(code) <= 699:
        raise ParseError(0, "Bad Status Code")  # (`_number`, inline)
    keys, lines, fault = index(lines)
    if fault:
        raise ParseError(0, fault)
    resp = Response(int(code), parts[2] if len(parts) > 2 else "", _headers(keys, lines), b"")
    try:
        _check_fields(resp, data, body_start, 0)
    except ParseError as exc:
        raise ParseError(0, exc.reason) from None
    return resp
