"""SIP messages: parse bytes into `Request` / `Response`, serialise back (RFC 3261 7, 8.2.6, 18.3).

`parse_message` splits the start line and header fields and checks, eagerly, only what every
element needs before it may act on a request: the start line, the fields that identify the
transaction and dialog (Via, From, To, Call-ID, CSeq), Max-Forwards and Content-Length.
Everything else stays raw text until a property or ``headers.get`` asks for it.

Faults (RFC 4475): a malformed request raises ``ParseError(status, reason, request)`` where
``status`` is the answer it deserves (400, 505) and ``request`` is a best-effort `Request`
for ``make_response`` (None when even that could not be built: then drop it). A malformed
response, or garbage, raises ``ParseError(0, reason)``: drop it silently.

Properties parsed on access (``msg.contacts``, ``msg.routes`` ...) raise ``ParseError(400)``
when the field is malformed; callers handling a request catch it and answer 400.

`split_stream` frames messages on TCP/TLS by Content-Length (RFC 3261 18.3) and recognises
RFC 5626 CRLF keepalives.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .headers import Headers, Via, canonical_name, parse_via, pretty_name, split_list
from .uri import URI, NameAddr, ParseError, is_token, parse_name_addr, parse_uri, split_quoted

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
_SINGLE = frozenset(("call-id", "cseq", "from", "to", "max-forwards", "content-length"))
_VERSION_RE = re.compile(r"SIP/(\d+)\.(\d+)\Z", re.IGNORECASE)
_ENCODING = "utf-8"
_ERRORS = "surrogateescape"


def _decode(data: bytes) -> str:
    return data.decode(_ENCODING, _ERRORS)


def _parse_cseq_value(value: str) -> tuple[int, str]:
    parts = value.split()
    if len(parts) != 2 or not parts[0].isdigit() or len(parts[0]) > 10:
        raise ParseError(400, "Bad CSeq")
    number = int(parts[0])
    if number > 0x7FFFFFFF or not is_token(parts[1]):
        raise ParseError(400, "Bad CSeq")
    return number, parts[1]


class Message:
    """Common part of requests and responses: header fields, body, parsed views."""

    __slots__ = ("headers", "body", "_cache")

    def __init__(self, headers: Headers | Iterable[tuple[str, str]] | None, body: bytes) -> None:
        if headers is None:
            headers = Headers()
        elif not isinstance(headers, Headers):
            headers = Headers(headers)
        self.headers = headers
        self.body = body
        self._cache: dict = {}

    def _cached(self, key: str, build):
        """``build()``, remembered until the header fields change (or are replaced)."""
        headers = self.headers
        hit = self._cache.get(key)
        if hit is not None and hit[0] is headers and hit[1] == headers.gen:
            return hit[2]
        value = build()
        self._cache[key] = (headers, headers.gen, value)
        return value

    # -- parsed views of the common fields ----------------------------------------------
    @property
    def vias(self) -> list[Via]:
        return self._cached("via", lambda: [parse_via(v) for v in self._list_strict("via")])

    def _list_strict(self, key: str) -> list[str]:
        """Values of a list field; an empty element (``a,,b``) is a 400 (RFC 4475 3.1.2.1)."""
        out: list[str] = []
        for value in self.headers.raw(key):
            for part in split_quoted(value, ","):
                part = part.strip()
                if not part:
                    raise ParseError(400, "Empty " + key.title() + " Value")
                out.append(part)
        return out

    @property
    def call_id(self) -> str | None:
        value = self.headers.get("call-id")
        return value.strip() if value is not None else None

    @property
    def cseq(self) -> tuple[int, str]:
        return self._cached("cseq", self._parse_cseq)

    def _parse_cseq(self) -> tuple[int, str]:
        value = self.headers.get("cseq")
        if value is None:
            raise ParseError(400, "Missing CSeq")
        return _parse_cseq_value(value)

    @property
    def from_(self) -> NameAddr:
        return self._cached("from", lambda: self._name_addr("from"))

    @property
    def to(self) -> NameAddr:
        return self._cached("to", lambda: self._name_addr("to"))

    def _name_addr(self, key: str) -> NameAddr:
        value = self.headers.get(key)
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

        return self._cached("contact", build)

    @property
    def routes(self) -> list[NameAddr]:
        return self._cached(
            "route", lambda: [parse_name_addr(v) for v in self._list_strict("route")]
        )

    @property
    def record_routes(self) -> list[NameAddr]:
        return self._cached(
            "record-route",
            lambda: [parse_name_addr(v) for v in self._list_strict("record-route")],
        )

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards (0-255); None when absent. Malformed: ParseError(400)."""
        value = self.headers.get("max-forwards")
        if value is None:
            return None
        value = value.strip()
        if not value.isdigit() or len(value) > 10 or int(value) > 255:
            raise ParseError(400, "Bad Max-Forwards")
        return int(value)

    @property
    def expires(self) -> int | None:
        """Expires header (delta-seconds); None when absent, malformed or over 2**32-1."""
        value = self.headers.get("expires")
        if value is None:
            return None
        value = value.strip()
        if not value.isdigit() or len(value) > 10 or int(value) > 0xFFFFFFFF:
            return None
        return int(value)

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        if value is None:
            return None
        value = value.strip()
        if not value.isdigit() or len(value) > 10:
            raise ParseError(400, "Bad Content-Length")
        return int(value)

    # -- serialisation ---------------------------------------------------------------
    def _start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Serialise; Content-Length is always written and always equals len(body)."""
        out = [self._start_line(), "\r\n"]
        have_cl = False
        for key, name, value in self.headers._items:
            if key == "content-length":
                if have_cl:
                    continue
                have_cl = True
                value = str(len(self.body))
            out.append(name)
            out.append(": ")
            out.append(value)
            out.append("\r\n")
        if not have_cl:
            out.append(f"Content-Length: {len(self.body)}\r\n")
        out.append("\r\n")
        head = "".join(out).encode(_ENCODING, _ERRORS)
        return head + self.body if self.body else head

    def __bytes__(self) -> bytes:
        return self.to_bytes()


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
        if self._uri is None:
            self._uri = parse_uri(self._uri_text or "")
        return self._uri

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
        uri = self._uri.copy() if self._uri is not None else (self._uri_text or "")
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


#: header name as written -> canonical key, for names already seen valid (bounded)
_NAME_KEYS: dict[str, str] = {}


def _header_entries(lines: list[str]) -> tuple[list[list[str]], str | None]:
    """Header lines -> [key, name, value] entries, folding (LWS continuation) undone.

    A malformed line is skipped and reported as the second item, so that a request can
    still be answered (400) from the lines that were good.
    """
    entries: list[list[str]] = []
    fault = None
    names = _NAME_KEYS
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
        key = names.get(name)
        if key is None:
            name = name.rstrip()
            if not colon or not name or not is_token(name):
                fault = "Bad Header Line"
                continue
            key = canonical_name(name)
            if len(names) < 4096:
                names[name] = key
        entries.append([key, name, value.strip()])
    return entries, fault


def parse_message(data: bytes) -> Request | Response:
    """Parse one SIP message (a UDP datagram or a framed stream message).

    Octets beyond Content-Length are ignored (RFC 4475 3.1.1.8). Raises `ParseError`: for a
    request with the status to answer (and ``.request`` to answer from), status 0 to drop.
    """
    try:
        lines, rest = _split_head(data)
    except Exception as exc:  # pragma: no cover - decoding with surrogateescape cannot fail
        raise ParseError(0, "Undecodable") from exc
    if not lines or not lines[0]:
        raise ParseError(0, "Empty Message")
    start = lines[0]
    if start[:4].upper() == "SIP/":
        return _parse_response(start, lines, rest)
    return _parse_request(start, lines, rest)


def _check_fields(msg: Message, rest: bytes, status: int) -> None:
    """Frame the body and check the fields every element relies on, in one pass.

    Content-Length (single, numeric, not beyond the datagram: RFC 4475 3.1.2.2/3.1.2.3/3.3.9),
    single-valued fields not repeated (3.3.8), Via/From/To/Call-ID/CSeq present and well
    formed. The parsed values are left in the message's cache.
    """
    first: dict[str, str] = {}
    vias: list[str] = []
    for key, _name, value in msg.headers._items:
        if key == "via":
            vias.append(value)
        elif key in first:
            if key in _SINGLE:
                raise ParseError(status, f"Multiple {pretty_name(key)} Values")
        else:
            first[key] = value
    cl = first.get("content-length")
    if cl is None:
        msg.body = rest
    else:
        if not cl.isdigit() or len(cl) > 10:
            raise ParseError(status, "Bad Content-Length")
        length = int(cl)
        if length > len(rest):
            raise ParseError(status, "Content-Length Larger Than Message")
        msg.body = rest[:length] if length < len(rest) else rest
    for key in ("from", "to", "call-id", "cseq"):
        if key not in first:
            raise ParseError(status, "Missing Required Header: " + pretty_name(key))
    if not vias:
        raise ParseError(status, "Missing Required Header: Via")
    if not first["call-id"]:
        raise ParseError(status, "Empty Call-ID")
    cache = msg._cache
    h = msg.headers
    cache["cseq"] = (h, 0, _parse_cseq_value(first["cseq"]))
    cache["from"] = (h, 0, parse_name_addr(first["from"]))
    cache["to"] = (h, 0, parse_name_addr(first["to"]))
    if len(vias) == 1 and "," not in vias[0]:
        cache["via"] = (h, 0, [parse_via(vias[0])])
    else:
        msg.vias  # noqa: B018 - parse, raising ParseError when malformed


def _parse_request(start: str, lines: list[str], rest: bytes) -> Request:
    parts = start.rstrip(" \t").split(" ")  # trailing SP tolerated (RFC 4475 3.1.2.10)
    method = parts[0]
    version = parts[-1] if len(parts) > 2 else ""
    m = _VERSION_RE.match(version)
    if not is_token(method) or (len(parts) < 3 and m is None):
        raise ParseError(0, "Not A SIP Message")
    entries, fault = _header_entries(lines[1:])
    uri_text = parts[1]
    req = Request(method, uri_text, Headers._from_entries(entries), b"", version)
    try:
        if len(parts) != 3:
            raise ParseError(400, "Malformed Request-Line")
        if m is None:
            raise ParseError(400, "Malformed SIP-Version")
        if (m.group(1), m.group(2)) != ("2", "0"):
            raise ParseError(505, "Version Not Supported")
        req.version = "SIP/2.0"
        if fault:
            raise ParseError(400, fault)
        uri = parse_uri(uri_text)
        if uri.headers:
            raise ParseError(400, "Headers Not Allowed In Request-URI")
        req._uri = uri
        _check_fields(req, rest, 400)
        if req.cseq[1] != method:
            raise ParseError(400, "CSeq Method Mismatch")
        req.max_forwards  # noqa: B018
    except ParseError as exc:
        if "via" not in {e[0] for e in entries}:
            raise ParseError(0, exc.reason) from None  # nowhere to send an answer
        raise ParseError(exc.status, exc.reason, req) from None
    return req


def _parse_response(start: str, lines: list[str], rest: bytes) -> Response:
    parts = start.split(" ", 2)
    if len(parts) < 2:
        raise ParseError(0, "Malformed Status-Line")
    if _VERSION_RE.match(parts[0]) is None or parts[0][4:] != "2.0":
        raise ParseError(0, "Unsupported Version")
    code = parts[1]
    if len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 699:
        raise ParseError(0, "Bad Status Code")
    reason = parts[2] if len(parts) > 2 else ""
    entries, fault = _header_entries(lines[1:])
    if fault:
        raise ParseError(0, fault)
    resp = Response(int(code), reason, Headers._from_entries(entries))
    try:
        _check_fields(resp, rest, 0)
    except ParseError as exc:
        raise ParseError(0, exc.reason) from None
    return resp


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

    Via (all, in order), From, To, Call-ID and CSeq are copied; ``to_tag`` is added to To
    when it has none (never for 100, 8.2.6.1); a 100 copies Timestamp. Works from the raw
    fields, so it can answer a request that failed to parse (``ParseError.request``).
    """
    resp = Headers()
    items = resp._items
    copied: set[str] = set()
    for key, name, value in request.headers._items:
        if key == "via" or (key == "timestamp" and status == 100):
            items.append([key, name, value])
        elif key in copied:
            continue  # a repeated single-value field (RFC 4475 3.3.8): answer with the first
        elif key in ("from", "call-id", "cseq"):
            copied.add(key)
            items.append([key, name, value])
        elif key == "to":
            copied.add(key)
            if to_tag and status != 100 and ";tag=" not in value.replace(" ", "").lower():
                value = f"{value};tag={to_tag}"
            items.append([key, name, value])
    for name, value in headers:
        resp.add(name, value)
    return Response(status, reason, resp, body)


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
