"""SIP messages: parse bytes into `Request` / `Response`, serialise back (RFC 3261 7, 8.2.6, 18.3).

`parse_message` splits the start line and the header field lines and checks, eagerly, only
what every element needs before it may act on a request: the start line, the fields that
identify the transaction and dialog (Via, From, To, Call-ID, CSeq), Max-Forwards and
Content-Length. Everything else stays the line it arrived in until a property or
``headers.get`` asks for it, and `Message.to_bytes` writes untouched lines back as they came.

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

`split_stream` frames messages on TCP/TLS by Content-Length (RFC 3261 18.3) and recognises
RFC 5626 CRLF keepalives.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from itertools import repeat

from .headers import (
    CL_OK,
    NAME_KEYS,
    TOP_VIA,
    Headers,
    Via,
    canonical_name,
    parse_via,
    pretty_name,
    split_list,
)
from .uri import (
    URI,
    NameAddr,
    ParseError,
    _uri_from_parts,
    _uri_parts,
    is_token,
    parse_name_addr,
    split_quoted,
)

__all__ = [
    "ParseError",
    "Request",
    "Response",
    "Message",
    "parse_message",
    "make_response",
    "split_stream",
    "REASONS",
    "MAX_MESSAGE_SIZE",
    "proxy_validate",
    "split_list",  # re-exported for callers splitting their own list-valued fields
]

#: largest header section / message accepted on a stream before the connection is refused
MAX_MESSAGE_SIZE = 65536

REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 300: "Multiple Choices",
    301: "Moved Permanently", 302: "Moved Temporarily", 305: "Use Proxy",
    380: "Alternative Service", 400: "Bad Request", 401: "Unauthorized",
    402: "Payment Required", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    406: "Not Acceptable", 407: "Proxy Authentication Required", 408: "Request Timeout",
    410: "Gone", 413: "Request Entity Too Large", 414: "Request-URI Too Long",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    421: "Extension Required", 423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 491: "Request Pending", 493: "Undecipherable",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 600: "Busy Everywhere", 603: "Decline",
    604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}

#: fields that may appear once only (RFC 4475 3.3.8 / 3.3.9)
_SINGLE = ("call-id", "cseq", "from", "to", "max-forwards", "content-length")
_VERSION_RE = re.compile(r"SIP/(\d+)\.(\d+)\Z", re.IGNORECASE)
_ENCODING = "utf-8"
_ERRORS = "surrogateescape"
_partition = str.partition
_KNOWN_METHODS = frozenset((
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY",
    "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
))


def _decode(data: bytes) -> str:
    return data.decode(_ENCODING, _ERRORS)


def _number(text: str) -> bool:
    """ASCII digits only (``str.isdigit`` alone admits superscripts ``int`` refuses)."""
    return text.isdigit() and text.isascii()


def _parse_cseq_value(value: str) -> tuple[int, str]:
    number, sp, method = value.partition(" ")
    if sp and number.isdigit() and number.isascii() and len(number) <= 9 and (
            method in _KNOWN_METHODS):
        return int(number), method  # the common shape: "314159 INVITE"
    parts = value.split()
    if len(parts) != 2 or not _number(parts[0]) or len(parts[0]) > 10:
        raise ParseError(400, "Bad CSeq")
    number = int(parts[0])
    if number > 0x7FFFFFFF or not is_token(parts[1]):
        raise ParseError(400, "Bad CSeq")
    return number, parts[1]


def _parse_max_forwards(value: str) -> int:
    if not _number(value) or len(value) > 10 or int(value) > 255:
        raise ParseError(400, "Bad Max-Forwards")
    return int(value)


class Message:
    """Common part of requests and responses: header fields, body, parsed views."""

    __slots__ = ("headers", "body")

    def __init__(self, headers: Headers | Iterable[tuple[str, str]] | None, body: bytes) -> None:
        if headers is None:
            headers = Headers()
        elif not isinstance(headers, Headers):
            headers = Headers(headers)
        self.headers = headers
        self.body = body

    def _view(self, key: str, build):
        """``build()``, remembered until the fields named ``key`` change (or are replaced)."""
        h = self.headers
        views = h._views
        if views is None:
            views = h._views = {}
        else:
            value = views.get(key)
            if value is not None:
                return value
        value = build()
        views[key] = value
        return value

    # -- parsed views of the common fields ----------------------------------------------
    @property
    def vias(self) -> list[Via]:
        views = self.headers._views
        if views is not None:
            value = views.get("via")
            if value is not None:
                return value
        return self._view("via", self._parse_vias)

    def _parse_vias(self) -> list[Via]:
        values = self._list_strict("via")
        if not values:
            return []
        views = self.headers._views
        top = views.get(TOP_VIA) if views else None
        if top is None:
            top = parse_via(values[0])
            if views is not None:
                views[TOP_VIA] = top
        return [top, *[parse_via(v) for v in values[1:]]]

    @property
    def top_via(self) -> Via:
        """The first Via value, parsed alone (``vias`` parses every one); the same object as
        ``vias[0]``. ParseError(400) when there is none or it is malformed."""
        h = self.headers
        views = h._views
        if views is None:
            views = h._views = {}
        else:
            value = views.get(TOP_VIA)
            if value is not None:
                return value
            vias = views.get("via")
            if vias:
                views[TOP_VIA] = vias[0]
                return vias[0]
        first = h._first("via")
        if first is None:
            raise ParseError(400, "Missing Via")
        if not first or "," in first:
            first = self._list_strict("via")[0]
        value = views[TOP_VIA] = parse_via(first)
        return value

    def _list_strict(self, key: str) -> list[str]:
        """Values of a list field; an empty element (``a,,b``) is a 400 (RFC 4475 3.1.2.1)."""
        out: list[str] = []
        for value in self.headers.raw(key):
            if value and "," not in value:
                out.append(value)
                continue
            for part in split_quoted(value, ","):
                part = part.strip()
                if not part:
                    raise ParseError(400, "Empty " + key.title() + " Value")
                out.append(part)
        return out

    @property
    def call_id(self) -> str | None:
        h = self.headers
        views = h._views
        if views is not None:
            value = views.get("call-id")
            if value is not None:
                return value
        return h._first("call-id")

    @property
    def cseq(self) -> tuple[int, str]:
        views = self.headers._views
        if views is not None:
            value = views.get("cseq")
            if value is not None:
                return value
        return self._view("cseq", self._parse_cseq)

    def _parse_cseq(self) -> tuple[int, str]:
        value = self.headers._first("cseq")
        if value is None:
            raise ParseError(400, "Missing CSeq")
        return _parse_cseq_value(value)

    @property
    def from_(self) -> NameAddr:
        views = self.headers._views
        if views is not None:
            value = views.get("from")
            if value is not None:
                return value
        return self._view("from", lambda: self._name_addr("from"))

    @property
    def to(self) -> NameAddr:
        views = self.headers._views
        if views is not None:
            value = views.get("to")
            if value is not None:
                return value
        return self._view("to", lambda: self._name_addr("to"))

    def _name_addr(self, key: str) -> NameAddr:
        value = self.headers._first(key)
        if value is None:
            raise ParseError(400, f"Missing {key.title()} Header")
        return parse_name_addr(value)

    @property
    def contacts(self) -> list[NameAddr] | str:
        """Contact values; the string ``"*"`` for the REGISTER wildcard."""
        def build():
            values = self._list_strict("contact")
            if len(values) == 1 and values[0] == "*":
                return "*"
            return [parse_name_addr(v) for v in values]

        return self._view("contact", build)

    @property
    def routes(self) -> list[NameAddr]:
        return self._view(
            "route", lambda: [parse_name_addr(v) for v in self._list_strict("route")]
        )

    @property
    def record_routes(self) -> list[NameAddr]:
        return self._view(
            "record-route",
            lambda: [parse_name_addr(v) for v in self._list_strict("record-route")],
        )

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards (0-255); None when absent. Malformed: ParseError(400)."""
        h = self.headers
        views = h._views
        if views is not None:
            value = views.get("max-forwards")
            if value is not None:
                return value if value >= 0 else None
        text = h._first("max-forwards")
        value = -1 if text is None else _parse_max_forwards(text)
        if views is None:
            views = h._views = {}
        views["max-forwards"] = value
        return value if value >= 0 else None

    @property
    def expires(self) -> int | None:
        """Expires header (delta-seconds); None when absent, malformed or over 2**32-1."""
        value = self.headers._first("expires")
        if value is None or not _number(value) or len(value) > 10 or int(value) > 0xFFFFFFFF:
            return None
        return int(value)

    @property
    def content_length(self) -> int | None:
        value = self.headers._first("content-length")
        if value is None:
            return None
        if not _number(value) or len(value) > 10:
            raise ParseError(400, "Bad Content-Length")
        return int(value)

    # -- serialisation ---------------------------------------------------------------
    def _start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Serialise; Content-Length is always written and always equals len(body).

        Field lines nobody changed are written as they arrived."""
        return _serialise(self._start_line(), self.headers, self.body)

    def __bytes__(self) -> bytes:
        return self.to_bytes()


def _serialise(start: str, h: Headers, body: bytes) -> bytes:
    lines = h._lines
    views = h._views
    if views and views.get(CL_OK) == len(body):  # Content-Length as parsed, still right
        head = start + "\r\n" + "\r\n".join(lines) + "\r\n\r\n"
    elif lines and "content-length" not in h._keys:
        head = start + "\r\n" + "\r\n".join(lines) + f"\r\nContent-Length: {len(body)}\r\n\r\n"
    else:
        head = start + "\r\n" + "\r\n".join(_with_content_length(h, len(body))) + "\r\n\r\n"
    data = head.encode(_ENCODING, _ERRORS)
    return data + body if body else data


def _with_content_length(h: Headers, length: int) -> list[str]:
    """The field lines with exactly one Content-Length, of ``length`` (a copy)."""
    keys = h._keys
    lines = list(h._lines)
    n = keys.count("content-length")
    if n == 0:
        lines.append(f"Content-Length: {length}")
        return lines
    i = keys.index("content-length")
    lines[i] = f"{h._name(i)}: {length}"
    if n > 1:
        lines = [line for j, (k, line) in enumerate(zip(keys, lines, strict=True))
                 if j <= i or k != "content-length"]
    return lines


class Request(Message):
    """A SIP request. ``uri`` is parsed when first read (the proxy may never need it)."""

    __slots__ = ("method", "_uri", "_uri_text", "version")

    def __init__(
        self,
        method: str,
        uri: URI | str,
        headers: Headers | Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
        version: str = "SIP/2.0",
    ) -> None:
        super().__init__(headers, body)
        self.method = method
        self.version = version
        if isinstance(uri, URI):
            self._uri: URI | None = uri
            self._uri_text: str | None = None
        else:
            self._uri = None
            self._uri_text = uri

    @property
    def uri(self) -> URI:
        u = self._uri
        if u is None:
            u = self._uri = _uri_from_parts(_uri_parts(self._uri_text or ""))
        return u

    @uri.setter
    def uri(self, value: URI | str) -> None:
        if isinstance(value, URI):
            self._uri, self._uri_text = value, None
        else:
            self._uri, self._uri_text = None, value

    def _start_line(self) -> str:
        uri = self._uri_text if self._uri is None else str(self._uri)
        return f"{self.method} {uri} {self.version}"

    def copy(self) -> Request:
        """An independent copy (headers and URI), for forwarding."""
        r = Request.__new__(Request)
        r.headers = self.headers.copy()
        r.body = self.body
        r.method = self.method
        r.version = self.version
        u = self._uri
        if u is None:
            r._uri = None
            r._uri_text = self._uri_text or ""
        else:
            text = u._parsed_text()
            if text is not None:  # unchanged: the copy parses it again if it needs it
                r._uri = None
                r._uri_text = text
            else:
                r._uri = u.copy()
                r._uri_text = None
        return r

    def __repr__(self) -> str:
        return f"<Request {self._start_line()}>"


class Response(Message):
    """A SIP response."""

    __slots__ = ("status", "reason", "version")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
        version: str = "SIP/2.0",
    ) -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason = REASONS.get(status, "Unknown") if reason is None else reason
        self.version = version

    def _start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def copy(self) -> Response:
        return Response(self.status, self.reason, self.headers.copy(), self.body, self.version)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


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


def _index(lines: list[str]) -> tuple[list[str], list[str], str | None]:
    """Header lines -> (canonical keys, lines, fault).

    One dictionary look-up per line when the names are ones seen before; a malformed line
    is left out and reported as the fault, so that a request can still be answered (400)
    from the lines that were good. Folded lines go to `_index_folded`.
    """
    get = NAME_KEYS.get
    keys = [get(n) if c else None for n, c, _ in map(_partition, lines, repeat(":"))]
    if None not in keys:
        return keys, lines, None
    good_keys: list[str] = []
    good_lines: list[str] = []
    fault = None
    for key, line in zip(keys, lines, strict=True):
        if key is None:
            if line[:1] in (" ", "\t"):
                return _index_folded(lines)
            name, colon, _ = line.partition(":")
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
        lines = _decode(data[:end]).split("\r\n")
        start = lines[0]
        del lines[0]
        if _is_status_line(start):
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


def _check_fields(msg: Message, data: bytes, body_start: int, status: int) -> None:
    """Frame the body and check the fields every element relies on.

    Content-Length (single, numeric, not beyond the datagram: RFC 4475 3.1.2.2/3.1.2.3/3.3.9),
    single-valued fields not repeated (3.3.8), Via/From/To/Call-ID/CSeq present and well
    formed. The parsed values are left in the header fields' views.
    """
    h = msg.headers
    keys = h._keys
    lines = h._lines
    n = len(keys)
    # key -> index of its first line
    first = dict(zip(reversed(keys), range(n - 1, -1, -1), strict=True))
    if len(first) != n:
        for key in _SINGLE:
            if keys.count(key) > 1:
                raise ParseError(status, f"Multiple {pretty_name(key)} Values")
    views: dict = {}
    i = first.get("content-length")
    if i is not None:
        cl = lines[i].partition(":")[2].strip()
        if not cl.isdigit() or not cl.isascii() or len(cl) > 10:
            raise ParseError(status, "Bad Content-Length")
        length = int(cl)
        if length > len(data) - body_start:
            raise ParseError(status, "Content-Length Larger Than Message")
        msg.body = data[body_start:body_start + length]
        if len(cl) == 1 or cl[0] != "0":  # written as to_bytes would write it
            views[CL_OK] = length
    else:
        msg.body = data[body_start:]
    i_from = first.get("from")
    i_to = first.get("to")
    i_call = first.get("call-id")
    i_cseq = first.get("cseq")
    if i_from is None or i_to is None or i_call is None or i_cseq is None:
        for key in ("from", "to", "call-id", "cseq"):
            if key not in first:
                raise ParseError(status, "Missing Required Header: " + pretty_name(key))
    i_via = first.get("via")
    if i_via is None:
        raise ParseError(status, "Missing Required Header: Via")
    call_id = lines[i_call].partition(":")[2].strip()
    if not call_id:
        raise ParseError(status, "Empty Call-ID")
    views["call-id"] = call_id
    views["cseq"] = _parse_cseq_value(lines[i_cseq].partition(":")[2].strip())
    views["from"] = parse_name_addr(lines[i_from].partition(":")[2].strip())
    views["to"] = parse_name_addr(lines[i_to].partition(":")[2].strip())
    i = first.get("max-forwards")
    if i is not None:
        mf = lines[i].partition(":")[2].strip()
        if mf.isdigit() and mf.isascii() and len(mf) <= 3 and int(mf) <= 255:
            views["max-forwards"] = int(mf)
        # else: left for the property to raise (a request's parse asks for it)
    else:
        views["max-forwards"] = -1
    h._views = views
    via = lines[i_via].partition(":")[2].strip()
    if "," not in via and keys.count("via") == 1:
        top = views[TOP_VIA] = parse_via(via)
        views["via"] = [top]
    else:
        msg.vias  # noqa: B018 - parse, raising ParseError when malformed


def _parse_request(start: str, lines: list[str], index, data: bytes, body_start: int) -> Request:
    parts = start.rstrip(" \t").split(" ")  # trailing SP tolerated (RFC 4475 3.1.2.10)
    method = parts[0]
    version = parts[-1] if len(parts) > 2 else ""
    sip20 = version == "SIP/2.0"
    m = None if sip20 else _VERSION_RE.match(version)
    if not is_token(method) or (len(parts) < 3 and m is None):
        raise ParseError(0, "Not A SIP Message")
    keys, lines, fault = index(lines)
    req = Request.__new__(Request)
    req.headers = Headers._from_lines(keys, lines)
    req.body = b""
    req.method = method
    req.version = version
    req._uri = None
    req._uri_text = parts[1]
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
        if _uri_parts(parts[1])[6]:
            raise ParseError(400, "Headers Not Allowed In Request-URI")
        _check_fields(req, data, body_start, 400)
        views = req.headers._views
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
    if len(code) != 3 or not _number(code) or not 100 <= int(code) <= 699:
        raise ParseError(0, "Bad Status Code")
    keys, lines, fault = index(lines)
    if fault:
        raise ParseError(0, fault)
    resp = Response.__new__(Response)
    resp.headers = Headers._from_lines(keys, lines)
    resp.body = b""
    resp.status = int(code)
    resp.reason = parts[2] if len(parts) > 2 else ""
    resp.version = "SIP/2.0"
    try:
        _check_fields(resp, data, body_start, 0)
    except ParseError as exc:
        raise ParseError(0, exc.reason) from None
    return resp


#: fields a response copies from its request once (RFC 3261 8.2.6.2); Via: every one
_COPIED = ("from", "to", "call-id", "cseq")


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """Build a response to ``request`` as RFC 3261 8.2.6.2 says.

    Via (all, in order), From, To, Call-ID and CSeq are copied (their lines as they came);
    ``to_tag`` is added to To when it has none (never for 100, 8.2.6.1); a 100 copies
    Timestamp. Works from the raw fields, so it can answer a request that failed to parse
    (``ParseError.request``).
    """
    src = request.headers
    keys = src._keys
    lines = src._lines
    if keys.count("via") == 1:
        out_keys = ["via"]
        out_lines = [lines[keys.index("via")]]
    else:
        out_lines = [line for k, line in zip(keys, lines, strict=True) if k == "via"]
        out_keys = ["via"] * len(out_lines)
    trying = status == 100
    for key in _COPIED:  # the first of each, in the usual order
        if key in keys:
            line = lines[keys.index(key)]
            if key == "to" and to_tag and not trying:
                name, _, value = line.partition(":")
                value = value.strip()
                if ";tag=" not in value.replace(" ", "").lower():
                    line = f"{name.rstrip()}: {value};tag={to_tag}"
            out_keys.append(key)
            out_lines.append(line)
    if trying and "timestamp" in keys:
        out_keys.append("timestamp")
        out_lines.append(lines[keys.index("timestamp")])
    h = Headers.__new__(Headers)
    h._keys = out_keys
    h._lines = out_lines
    h.gen = 0
    views = src._views
    cseq = views.get("cseq") if views else None
    if cseq is not None:  # the same CSeq and Call-ID: no need to parse them again
        h._views = {"cseq": cseq, "call-id": views.get("call-id") or request.call_id}  # type: ignore[union-attr]
    else:
        h._views = None
    for name, value in headers:
        h.add(name, value)
    resp = Response.__new__(Response)
    resp.headers = h
    resp.body = body
    resp.status = status
    resp.reason = REASONS.get(status, "Unknown") if reason is None else reason
    resp.version = "SIP/2.0"
    return resp


_CL_RE = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE | re.MULTILINE)


def split_stream(buffer: bytes) -> tuple[list[bytes], bytes, int]:
    """Frame a TCP/TLS byte stream: (complete messages, unconsumed rest, keepalive pings).

    A double CRLF between messages is an RFC 5626 keepalive ping (answer each with a single
    CRLF pong); a single CRLF (a pong, or RFC 3261 7.5 leading noise) is skipped. A missing
    Content-Length counts as 0. A Content-Length that is malformed or repeated with
    different values, or a header section over `MAX_MESSAGE_SIZE`, cannot be framed: raises
    ``ParseError(400)`` -- answer if you can, then close the connection.
    """
    messages: list[bytes] = []
    keepalives = 0
    pos = 0
    n = len(buffer)
    while pos < n:
        if buffer.startswith(b"\r\n", pos):
            if buffer.startswith(b"\r\n\r\n", pos):
                keepalives += 1
                pos += 4
                continue
            if pos + 2 == n or (pos + 3 == n and buffer[pos + 2] == 13):
                break  # may be the start of a ping: wait for more
            pos += 2
            continue
        end = buffer.find(b"\r\n\r\n", pos)
        if end < 0:
            if n - pos > MAX_MESSAGE_SIZE:
                raise ParseError(400, "Message Too Large")
            break
        head = buffer[pos:end]
        values = {v.strip() for v in _CL_RE.findall(head)}
        if not values:
            length = 0
        elif len(values) > 1:
            raise ParseError(400, "Multiple Content-Length Values")
        else:
            value = values.pop()
            if not value.isdigit() or len(value) > 10:
                raise ParseError(400, "Bad Content-Length")
            length = int(value)
        if length > MAX_MESSAGE_SIZE:
            raise ParseError(413, "Message Too Large")
        total = end + 4 + length
        if total > n:
            break
        messages.append(buffer[pos:total])
        pos = total
    return messages, buffer[pos:], keepalives




#: URI schemes a proxy can route (others get 416, RFC 3261 16.3 step 2)
ROUTABLE_SCHEMES = frozenset({"sip", "sips", "tel"})


def proxy_validate(request: Request, supported: Iterable[str] = ()) -> Response | None:
    """RFC 3261 16.3 request validation steps 2, 3 and 5 (syntax is checked by parsing).

    Returns the response to send -- 416 Unsupported URI Scheme, 483 Too Many Hops (Max-Forwards
    0; the caller answers an OPTIONS addressed to itself before calling this), 420 Bad
    Extension with Unsupported listing the Proxy-Require options not in ``supported`` -- or
    None when the request may be proxied. Loop detection and authorization are the proxy's.
    """
    if request.uri.scheme.lower() not in ROUTABLE_SCHEMES:
        return make_response(request, 416)
    if request.max_forwards == 0:
        return make_response(request, 483)
    known = {s.lower() for s in supported}
    unsupported = [o for o in request.headers.getall("proxy-require") if o.lower() not in known]
    if unsupported:
        return make_response(request, 420, headers=[("Unsupported", ", ".join(unsupported))])
    return None
