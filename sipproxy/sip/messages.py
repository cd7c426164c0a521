"""SIP message objects: `Request`, `Response`, their parsed views, serialising (RFC 3261 7).

A message keeps its header field lines as they came (`Headers`) and parses a field only when
a property asks for it; `sipproxy.sip.parser` builds them from bytes (``parse_message``) and
re-exports everything here. `make_response` builds the answer to a request from its lines.

Cheap accessors for the hot path: ``msg.top_via`` (the first Via alone, the same object as
``msg.vias[0]``), ``msg.cseq``, ``msg.call_id``, ``msg.max_forwards`` (found at parse time),
``msg.from_`` / ``msg.to`` (checked at parse time, built when first read). After setting
received/rport on ``msg.top_via``, write it back with
``msg.headers.replace_first("via", str(via))``: the parsed Via is kept, not parsed again.
"""

from __future__ import annotations

from collections.abc import Iterable

from sipproxy.sip.headers import CL_OK, TOP_VIA, Headers, Via, _headers, parse_via
from sipproxy.sip.uri import (
    URI,
    NameAddr,
    ParseError,
    _name_addr_from_parts,
    _uri_from_parts,
    _uri_parts,
    is_token,
    parse_name_addr,
    split_quoted,
)

__all__ = ["Message", "Request", "Response", "REASONS", "make_response"]

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

_ENCODING = "utf-8"
_ERRORS = "surrogateescape"
_partition = str.partition
_KNOWN_METHODS = frozenset((
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY",
    "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
))


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
    seq = int(parts[0])
    if seq > 0x7FFFFFFF or not is_token(parts[1]):
        raise ParseError(400, "Bad CSeq")
    return seq, parts[1]


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
                if type(value) is tuple:  # checked at parse time, built when first read
                    value = views["from"] = _name_addr_from_parts(value)
                return value
        return self._view("from", lambda: self._name_addr("from"))

    @property
    def to(self) -> NameAddr:
        views = self.headers._views
        if views is not None:
            value = views.get("to")
            if value is not None:
                if type(value) is tuple:
                    value = views["to"] = _name_addr_from_parts(value)
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
        u = self._uri
        uri: URI | str
        if u is None:
            uri = self._uri_text or ""
        else:
            text = u._parsed_text()
            # unchanged: the copy parses it again if it needs it
            uri = text if text is not None else u.copy()
        return Request(self.method, uri, self.headers.copy(), self.body, self.version)

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


#: the keys (as a tuple) of a field order `sipproxy.sip.parser` already checked (no single-valued
#: field repeated, the required ones present) -> the fields' positions (bounded); here because
#: `make_response` reads it too
_SHAPES: dict[tuple[str, ...], tuple[int, int, int, int, int, int, int, bool]] = {}


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
    trying = status == 100
    shape = _SHAPES.get(tuple(keys))
    if shape is not None and shape[7]:  # a checked order, one Via line
        to = lines[shape[4]]
        if to_tag and not trying and (
                "=" not in to or ";tag=" not in to.replace(" ", "").lower()):
            name, _, value = to.partition(":")  # (no "=": no tag; a field name has none)
            to = f"{name.rstrip()}: {value.strip()};tag={to_tag}"
        out_keys = ["via", "from", "to", "call-id", "cseq"]
        out_lines = [lines[shape[6]], lines[shape[3]], to, lines[shape[1]], lines[shape[2]]]
        if trying and "timestamp" in keys:
            out_keys.append("timestamp")
            out_lines.append(lines[keys.index("timestamp")])
    else:
        out_keys, out_lines = _copied_fields(keys, lines, trying, to_tag)
    h = _headers(out_keys, out_lines)
    views = src._views
    cseq = views.get("cseq") if views else None
    if cseq is not None:  # the same CSeq and Call-ID: no need to parse them again
        h._views = {"cseq": cseq, "call-id": views.get("call-id") or request.call_id}  # type: ignore[union-attr]
    for name, value in headers:
        h.add(name, value)
    return Response(status, reason, h, body)


def _copied_fields(keys: list[str], lines: list[str], trying: bool,
                   to_tag: str | None) -> tuple[list[str], list[str]]:
    """The (keys, lines) `make_response` copies from a request of any shape."""
    if keys.count("via") == 1:
        out_keys = ["via"]
        out_lines = [lines[keys.index("via")]]
    else:
        out_lines = [line for k, line in zip(keys, lines, strict=True) if k == "via"]
        out_keys = ["via"] * len(out_lines)
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
    return out_keys, out_lines
