"""SIP, SIPS and tel URIs and name-addr values (RFC 3261 sections 19.1, 20.10, 25.1; RFC 3966).

A proxy reads URIs far more often than it writes them, so parsing keeps every component as
the text it arrived in (escapes, case, parameter order): ``str(uri)`` rebuilds the same text,
while comparison (`uri_equal`, RFC 3261 19.1.4) works on the unescaped, case-folded values.

Parameters (URI parameters, header parameters) live in `Params`: ordered, names matched
case-insensitively, a flag parameter (``;lr``) has the value ``None``.

Malformed input raises `ParseError` (defined here so that every layer shares it) with the
status a request carrying it deserves (400) -- the message layer decides whether to answer it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from urllib.parse import unquote, unquote_to_bytes

__all__ = [
    "ParseError",
    "Params",
    "URI",
    "NameAddr",
    "parse_uri",
    "parse_name_addr",
    "parse_params",
    "uri_equal",
    "unquote_string",
    "quote_string",
]


class ParseError(ValueError):
    """Malformed SIP input.

    ``status`` is the response a request carrying the fault must get (400, 505, ...), or 0
    when the input is to be dropped silently (garbage, malformed responses). ``request`` is,
    when the start line and header fields could be split, a best-effort `Request` from which
    the answer can be built with ``make_response``.
    """

    def __init__(self, status: int, reason: str, request: object | None = None) -> None:
        super().__init__(f"{status} {reason}" if status else reason)
        self.status = status
        self.reason = reason
        self.request = request


_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*\Z")
_BAD_URI_CHARS_RE = re.compile(r'[\s<>"]')
# sip/sips after the colon: [user[:password]@]host[:port][;params][?headers]; the first @
# ends the userinfo (user may hold ; ? / and more, RFC 4475 3.1.1.2 / 3.1.1.9)
_SIP_RE = re.compile(
    r"(?:([^:@]*)(?::([^@]*))?@)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-_.]+)(?::([0-9]{1,5}))?"
    r"(;[^?]*)?(?:\?(.*))?\Z",
    re.S,
)
_FAST_SIP_RE = re.compile(
    r"(sips?):(?:([A-Za-z0-9\-_.!~*'()&=+$,;?/%]+)@)?([A-Za-z0-9\-_.]+|\[[0-9A-Fa-f:.]+\])"
    r"(?::([0-9]{1,5}))?((?:;[A-Za-z0-9\-_.!~*'()%]+(?:=[A-Za-z0-9\-_.!~*'()%\[\]/:&+$]+)?)*)\Z",
    re.I,
)
_FAST_NAME_ADDR_RE = re.compile(
    r"""(?:[ \t]*"((?:[^"\\]|\\.)*)"[ \t]*|([A-Za-z0-9\-.!%*_+`'~ \t]*))<([^<>"\s]+)>"""
    r"""((?:;[A-Za-z0-9\-.!%*_+`'~]+(?:=[^;"\s,<>=]+)?)*)[ \t]*\Z"""
)
_SIMPLE_PARAMS_RE = re.compile(r"(?:;[A-Za-z0-9\-.!%*_+`'~]+(?:=[^;\"\s,<>=]+)?)+\Z")
_URI_PARAM_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()%\[\]/:&+$]+\Z")


def is_token(text: str) -> bool:
    """True when ``text`` is an RFC 3261 token (method names, parameter names...)."""
    return _TOKEN_RE.match(text) is not None


def check_ipv6_reference(host: str) -> None:
    """Raise ParseError(400) unless ``host`` is ``[`` IPv6address ``]`` (RFC 3261 25.1)."""
    try:
        ipaddress.IPv6Address(host[1:-1])
    except ValueError:
        raise ParseError(400, "Bad IPv6 Reference") from None


def quote_string(text: str) -> str:
    """Return ``text`` as a quoted-string, escaping backslash and double quote."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unquote_string(text: str) -> str:
    """Undo `quote_string`; text that is not quoted is returned unchanged."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        out = []
        i, end = 1, len(text) - 1
        while i < end:
            ch = text[i]
            if ch == "\\" and i + 1 < end:
                i += 1
                ch = text[i]
            out.append(ch)
            i += 1
        return "".join(out)
    return text


def _quoted_end(text: str, start: int) -> int:
    """Index of the closing quote of the quoted-string opening at ``start``; -1 if none."""
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            return i
        i += 1
    return -1


def split_quoted(text: str, sep: str) -> list[str]:
    """Split ``text`` on ``sep`` outside quoted strings and <> (items not stripped)."""
    if '"' not in text and "<" not in text:
        return text.split(sep)
    parts: list[str] = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            end = _quoted_end(text, i)
            if end < 0:
                raise ParseError(400, "Unterminated Quoted String")
            i = end + 1
            continue
        if ch == "<":
            end = text.find(">", i)
            if end < 0:
                raise ParseError(400, "Unbalanced Angle Brackets")
            i = end + 1
            continue
        if ch == sep:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


class Params:
    """Ordered parameters with case-insensitive names; a flag parameter has value None."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str | None]] = ()) -> None:
        self._items: list[list] = [[k, v] for k, v in items]

    def _find(self, name: str) -> int:
        low = name.lower()
        for i, item in enumerate(self._items):
            if item[0].lower() == low:
                return i
        return -1

    def get(self, name: str, default: str | None = None) -> str | None:
        i = self._find(name)
        return default if i < 0 else self._items[i][1]

    def __getitem__(self, name: str) -> str | None:
        i = self._find(name)
        if i < 0:
            raise KeyError(name)
        return self._items[i][1]

    def __setitem__(self, name: str, value: str | None) -> None:
        i = self._find(name)
        if i < 0:
            self._items.append([name, value])
        else:
            self._items[i][1] = value

    def __delitem__(self, name: str) -> None:
        i = self._find(name)
        if i < 0:
            raise KeyError(name)
        del self._items[i]

    def pop(self, name: str, default: str | None = None) -> str | None:
        i = self._find(name)
        if i < 0:
            return default
        return self._items.pop(i)[1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._find(name) >= 0

    def __iter__(self) -> Iterator[str]:
        return (item[0] for item in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def items(self) -> list[tuple[str, str | None]]:
        return [(k, v) for k, v in self._items]

    def copy(self) -> Params:
        return Params(self.items())

    def __str__(self) -> str:
        return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self._items)

    def __repr__(self) -> str:
        return f"Params({self.items()!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Params):
            return NotImplemented
        return [(k.lower(), v) for k, v in self._items] == [
            (k.lower(), v) for k, v in other._items
        ]


def parse_params(text: str) -> Params:
    """Parse header parameters ``;name=value;flag`` with LWS allowed around ; and =.

    Values may be quoted strings (kept with their quotes). An empty parameter (``;;``) or a
    non-token name is a 400.
    """
    params = Params()
    if not text or text.isspace():
        return params
    if _SIMPLE_PARAMS_RE.match(text):  # fast path: no LWS, no quotes
        params._items = [
            [n, v if eq else None]
            for n, eq, v in (p.partition("=") for p in text[1:].split(";"))
        ]
        return params
    parts = split_quoted(text, ";")
    if parts[0].strip():
        raise ParseError(400, "Bad Header Parameters")
    items = params._items
    for part in parts[1:]:
        name, eq, value = part.partition("=")
        name = name.strip()
        if not name or not _TOKEN_RE.match(name):
            raise ParseError(400, "Bad Header Parameter")
        if eq:
            value = value.strip()
            if not value:
                raise ParseError(400, "Empty Header Parameter Value")
            if value[0] == '"':
                if _quoted_end(value, 0) != len(value) - 1:
                    raise ParseError(400, "Bad Quoted Parameter Value")
            elif any(c in value for c in " \t<>\","):
                raise ParseError(400, "Bad Header Parameter Value")
            items.append([name, value])
        else:
            items.append([name, None])
    return params


def _parse_uri_params(text: str) -> Params:
    params = Params()
    items = params._items
    for part in text.split(";"):
        name, eq, value = part.partition("=")
        if not name or not _URI_PARAM_RE.match(name) or (eq and not _URI_PARAM_RE.match(value)):
            raise ParseError(400, "Bad URI Parameter")
        items.append([name, value if eq else None])
    return params


class URI:
    """A parsed URI. For sip/sips: user, password, host, port, params, headers.

    ``tel`` URIs keep the number in ``user`` (host empty). Any other scheme keeps its
    scheme-specific part in ``opaque`` (RFC 4475 3.3.2 / 3.3.4: such URIs are valid in header
    fields; a proxy answers 416 when one is the Request-URI and it cannot route it).
    """

    __slots__ = ("scheme", "user", "password", "host", "port", "params", "headers", "opaque")

    def __init__(
        self,
        scheme: str = "sip",
        user: str | None = None,
        host: str = "",
        port: int | None = None,
        params: Params | None = None,
        headers: list[tuple[str, str]] | None = None,
        password: str | None = None,
        opaque: str | None = None,
    ) -> None:
        self.scheme = scheme
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.params = params if params is not None else Params()
        self.headers = headers if headers is not None else []
        self.opaque = opaque

    @property
    def is_sip(self) -> bool:
        """True for sip: and sips: URIs."""
        return self.scheme.lower() in ("sip", "sips")

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter, lower-cased (None when absent)."""
        value = self.params.get("transport")
        return value.lower() if value else None

    @property
    def lr(self) -> bool:
        return "lr" in self.params

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def hostport(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def aor(self) -> str:
        """``scheme:user@host`` with scheme and host lower-cased: the address-of-record key."""
        scheme = self.scheme.lower()
        if scheme == "sips":
            scheme = "sip"
        if self.user is None:
            return f"{scheme}:{self.host.lower()}"
        return f"{scheme}:{self.user}@{self.host.lower()}"

    def copy(self) -> URI:
        return URI(
            self.scheme, self.user, self.host, self.port, self.params.copy(),
            list(self.headers), self.password, self.opaque,
        )

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":")
                out.append(self.password)
            if self.host:
                out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        if self.params:
            out.append(str(self.params))
        if self.headers:
            out.append("?" + "&".join(f"{k}={v}" for k, v in self.headers))
        return "".join(out)

    def __repr__(self) -> str:
        return f"URI({str(self)!r})"


def parse_uri(text: str) -> URI:
    """Parse a URI (no surrounding LWS or <> allowed). Raises ParseError(400, ...)."""
    m = _FAST_SIP_RE.match(text)
    if m is not None:  # the common shape, in one regex
        scheme, user, host, port, ptext = m.groups()
        params = Params.__new__(Params)
        if ptext:
            params._items = [
                [n, v if eq else None] for n, eq, v in (p.partition("=") for p in ptext[1:].split(";"))
            ]
        else:
            params._items = []
        uri = URI.__new__(URI)
        uri.scheme = scheme
        uri.user = user
        uri.password = None
        if host[0] == "[":
            check_ipv6_reference(host)
        uri.host = host
        uri.port = int(port) if port is not None and int(port) <= 65535 else None
        if port is not None and uri.port is None:
            raise ParseError(400, "Bad URI Port")
        uri.params = params
        uri.headers = []
        uri.opaque = None
        return uri
    colon = text.find(":")
    if colon <= 0:
        raise ParseError(400, "Bad URI")
    scheme = text[:colon]
    if not _SCHEME_RE.match(scheme):
        raise ParseError(400, "Bad URI Scheme")
    rest = text[colon + 1:]
    if not rest or _BAD_URI_CHARS_RE.search(rest):
        raise ParseError(400, "Bad URI")
    low = scheme.lower()
    if low == "sip" or low == "sips":
        return _parse_sip(scheme, rest)
    if low == "tel":
        number, _, ptext = rest.partition(";")
        if not number:
            raise ParseError(400, "Bad tel URI")
        return URI(scheme, number, "", None, _parse_uri_params(ptext) if ptext else Params())
    return URI(scheme, opaque=rest)


def _parse_sip(scheme: str, rest: str) -> URI:
    m = _SIP_RE.match(rest)
    if m is None:
        raise ParseError(400, "Bad SIP URI")
    user, password, host, port_text, ptext, htext = m.groups()
    if host[0] == "[":
        check_ipv6_reference(host)
    if user is not None and not user:
        raise ParseError(400, "Bad URI User")
    port = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            raise ParseError(400, "Bad URI Port")
    params = _parse_uri_params(ptext[1:]) if ptext else Params()
    headers: list[tuple[str, str]] = []
    if htext is not None:
        for item in htext.split("&"):
            name, eq, value = item.partition("=")
            if not name or not eq:
                raise ParseError(400, "Bad URI Header")
            headers.append((name, value))
    return URI(scheme, user, host, port, params, headers, password)


_SPECIAL_PARAMS = ("user", "ttl", "method", "maddr", "transport")


def _unesc(text: str | None) -> bytes | None:
    return None if text is None else unquote_to_bytes(text)


def _unesc_ci(text: str | None) -> bytes | None:
    return None if text is None else unquote_to_bytes(text).lower()


def uri_equal(a: URI, b: URI) -> bool:
    """URI equality by RFC 3261 19.1.4 (sip/sips; other schemes: case-insensitive text)."""
    sa, sb = a.scheme.lower(), b.scheme.lower()
    if sa != sb:
        return False
    if a.opaque is not None or b.opaque is not None:
        return (a.opaque or "").lower() == (b.opaque or "").lower()
    if _unesc(a.user) != _unesc(b.user) or _unesc(a.password) != _unesc(b.password):
        return False
    if _unesc_ci(a.host) != _unesc_ci(b.host) or a.port != b.port:
        return False
    pa = {unquote(k).lower(): v for k, v in a.params.items()}
    pb = {unquote(k).lower(): v for k, v in b.params.items()}
    for name in pa.keys() | pb.keys():
        if name in pa and name in pb:
            if _unesc_ci(pa[name]) != _unesc_ci(pb[name]):
                return False
        elif name in _SPECIAL_PARAMS:
            return False
    ha = {unquote_to_bytes(k).lower(): _unesc(v) for k, v in a.headers}
    hb = {unquote_to_bytes(k).lower(): _unesc(v) for k, v in b.headers}
    return ha == hb


class NameAddr:
    """A From/To/Contact/Route/Record-Route value: display name, URI, header parameters."""

    __slots__ = ("display_name", "uri", "params")

    def __init__(
        self, uri: URI, display_name: str | None = None, params: Params | None = None
    ) -> None:
        self.uri = uri
        self.display_name = display_name
        self.params = params if params is not None else Params()

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @tag.setter
    def tag(self, value: str | None) -> None:
        if value is None:
            self.params.pop("tag")
        else:
            self.params["tag"] = value

    @property
    def q(self) -> float | None:
        """The ``q`` parameter as a float in [0, 1]; None when absent or malformed."""
        value = self.params.get("q")
        if value is None:
            return None
        try:
            q = float(value)
        except ValueError:
            return None
        return q if 0.0 <= q <= 1.0 else None

    @property
    def expires(self) -> int | None:
        """The ``expires`` parameter; None when absent, malformed or beyond 2**32-1."""
        value = self.params.get("expires")
        if value is None or not value.isdigit() or len(value) > 10:
            return None
        n = int(value)
        return n if n <= 0xFFFFFFFF else None

    def copy(self) -> NameAddr:
        return NameAddr(self.uri.copy(), self.display_name, self.params.copy())

    def __str__(self) -> str:
        if self.display_name:
            return f"{quote_string(self.display_name)} <{self.uri}>{self.params}"
        return f"<{self.uri}>{self.params}"

    def __repr__(self) -> str:
        return f"NameAddr({str(self)!r})"


def parse_name_addr(text: str) -> NameAddr:
    """Parse ``[display-name] <uri> *(;param)`` or ``addr-spec *(;param)``.

    In the addr-spec form the parameters belong to the header field, not the URI (RFC 3261
    20.10; RFC 4475 3.1.2.13). Liberal where RFC 4475 allows it: LWS inside <> and unquoted
    display names with non-token characters are accepted.
    """
    m = _FAST_NAME_ADDR_RE.match(text)
    if m is not None:  # common shape: [token or "quoted"] <uri>;simple=params
        quoted, plain, uri_text, ptext = m.groups()
        na = NameAddr.__new__(NameAddr)
        if quoted is not None:
            na.display_name = unquote_string(f'"{quoted}"') if "\\" in quoted else quoted
        else:
            na.display_name = plain.strip() or None
        na.uri = parse_uri(uri_text)
        params = Params.__new__(Params)
        params._items = [
            [n, v if eq else None] for n, eq, v in (p.partition("=") for p in ptext[1:].split(";"))
        ] if ptext else []
        na.params = params
        return na
    s = text.strip()
    if not s:
        raise ParseError(400, "Empty Address")
    display = None
    if s[0] == '"':
        end = _quoted_end(s, 0)
        if end < 0:
            raise ParseError(400, "Unterminated Quoted String")
        display = unquote_string(s[: end + 1])
        rest = s[end + 1:].lstrip()
        if not rest.startswith("<"):
            raise ParseError(400, "Bad Address")
    else:
        lt = s.find("<")
        if lt >= 0:
            display = s[:lt].strip() or None
            rest = s[lt:]
        else:
            uri_text, semi, ptext = s.partition(";")
            uri_text = uri_text.rstrip()
            return NameAddr(parse_uri(uri_text), None, parse_params(semi + ptext))
    gt = rest.find(">")
    if gt < 0:
        raise ParseError(400, "Unbalanced Angle Brackets")
    uri = parse_uri(rest[1:gt].strip())
    return NameAddr(uri, display, parse_params(rest[gt + 1:]))
