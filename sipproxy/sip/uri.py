"""SIP, SIPS and tel URIs and name-addr values (RFC 3261 sections 19.1, 20.10, 25.1; RFC 3966).

A proxy reads URIs far more often than it writes them, so parsing keeps every component as
the text it arrived in (escapes, case, parameter order): ``str(uri)`` rebuilds the same text,
while comparison (`uri_equal`, RFC 3261 19.1.4) works on the unescaped, case-folded values.

Parameters (URI parameters, header parameters) live in `Params`: ordered, names matched
case-insensitively, a flag parameter (``;lr``) has the value ``None``.

Malformed input raises `ParseError` (defined here so that every layer shares it) with the
status a request carrying it deserves (400) -- the message layer decides whether to answer it.

Speed: the same URIs and addresses come back in every message of a call (and the same AORs
in every call), so `parse_uri` and `parse_name_addr` remember, per text (bounded, short texts
only), the *components* they found -- immutable tuples -- and build fresh objects from them.
Nothing mutable is shared: a `Params` built from the cache holds the cached tuple and copies
it on its first write; ``NameAddr.uri`` is only built when read (``to.tag`` does not need it);
``str(uri)`` returns the text worked out at parse time while the URI is unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, unquote_to_bytes

from sipproxy.sip.grammar import (
    Params,
    ParseError,
    _params,
    _quoted_end,
    _remember,
    _simple_items,
    _with_unique_param,
    check_ipv6_reference,
    is_token,
    parse_params,
    quote_string,
    split_quoted,
    unquote_string,
)

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
    "sip_id",
    # the shared grammar, from .grammar (imported from here by older code)
    "split_quoted",
    "is_token",
    "check_ipv6_reference",
]


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
_URI_PARAM_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()%\[\]/:&+$]+\Z")


def _parse_uri_params(text: str) -> tuple:
    items = []
    for part in text.split(";"):
        name, eq, value = part.partition("=")
        if not name or not _URI_PARAM_RE.match(name) or (eq and not _URI_PARAM_RE.match(value)):
            raise ParseError(400, "Bad URI Parameter")
        items.append((name, value if eq else None))
    return tuple(items)


def _uri_text(
    scheme: str, user: str | None, password: str | None, host: str, port: int | None,
    params: Iterable, headers: Iterable, opaque: str | None,
) -> str:
    if opaque is not None:
        return f"{scheme}:{opaque}"
    out = [scheme, ":"]
    if user is not None:
        out.append(user)
        if password is not None:
            out.append(":")
            out.append(password)
        if host:
            out.append("@")
    out.append(host)
    if port is not None:
        out.append(f":{port}")
    for k, v in params:
        out.append(f";{k}" if v is None else f";{k}={v}")
    if headers:
        out.append("?" + "&".join(f"{k}={v}" for k, v in headers))
    return "".join(out)


class URI:
    """A parsed URI. For sip/sips: user, password, host, port, params, headers.

    ``tel`` URIs keep the number in ``user`` (host empty). Any other scheme keeps its
    scheme-specific part in ``opaque`` (RFC 4475 3.3.2 / 3.3.4: such URIs are valid in header
    fields; a proxy answers 416 when one is the Request-URI and it cannot route it).
    """

    __slots__ = ("scheme", "user", "password", "host", "port", "params", "headers", "opaque",
                 "_parts")

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
        self._parts: tuple | None = None

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
    def aor(self) -> str:
        """``scheme:user@host`` with scheme and host lower-cased: the address-of-record key."""
        scheme = self.scheme.lower()
        if scheme == "sips":
            scheme = "sip"
        if self.user is None:
            return f"{scheme}:{self.host.lower()}"
        return f"{scheme}:{self.user}@{self.host.lower()}"

    def copy(self) -> URI:
        u = URI(self.scheme, self.user, self.host, self.port, self.params.copy(),
                list(self.headers), self.password, self.opaque)
        u._parts = self._parts
        return u

    def _parsed_text(self) -> str | None:
        """The text this URI was parsed from (as ``str`` writes it) while unchanged, else None."""
        p = self._parts
        if (p is not None and self.params._items is p[5] and self.host is p[3]
                and self.user is p[1] and self.port == p[4] and not self.headers and not p[6]
                and self.scheme is p[0] and self.password is p[2] and self.opaque is p[7]):
            return p[8]
        return None

    def __str__(self) -> str:
        p = self._parts
        if (p is not None and self.params._items is p[5] and self.host is p[3]
                and self.user is p[1] and self.port == p[4] and not self.headers and not p[6]
                and self.scheme is p[0] and self.password is p[2] and self.opaque is p[7]):
            return p[8]  # unchanged since parsed: the text worked out then
        return _uri_text(self.scheme, self.user, self.password, self.host, self.port,
                         self.params._items, self.headers, self.opaque)

    def __repr__(self) -> str:
        return f"URI({str(self)!r})"


def _uri_from_parts(p: tuple) -> URI:
    u = URI(p[0], p[1], p[3], p[4], _params(p[5], p[9]), list(p[6]) if p[6] else [], p[2], p[7])
    u._parts = p
    return u


_URI_CACHE: dict[str, tuple] = {}


def _uri_parts(text: str) -> tuple:
    """The components of URI ``text`` (remembered):
    (scheme, user, password, host, port, params, headers, opaque, str, params text)."""
    parts = _URI_CACHE.get(text)
    if parts is not None:
        return parts
    m = _FAST_SIP_RE.match(text)
    if m is not None:  # the common shape, in one regex
        scheme, user, host, port_text, ptext = m.groups()
        if host[0] == "[":
            check_ipv6_reference(host)
        port = None
        if port_text is not None:
            port = int(port_text)
            if port > 65535:
                raise ParseError(400, "Bad URI Port")
        items = _simple_items(ptext) if ptext else ()
        parts = (scheme, user, None, host, port, items, (), None, "", ptext or None)
    else:
        parts = _slow_uri_parts(text)
    parts = (*parts[:8], _uri_text(*parts[:8]), parts[9])
    _remember(_URI_CACHE, text, parts)
    return parts


def _slow_uri_parts(text: str) -> tuple:
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
        return _sip_parts(scheme, rest)
    if low == "tel":
        number, _, ptext = rest.partition(";")
        if not number:
            raise ParseError(400, "Bad tel URI")
        items = _parse_uri_params(ptext) if ptext else ()
        return (scheme, number, None, "", None, items, (), None, "", None)
    return (scheme, None, None, "", None, (), (), rest, "", None)


def _sip_parts(scheme: str, rest: str) -> tuple:
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
    items = _parse_uri_params(ptext[1:]) if ptext else ()
    headers: list[tuple[str, str]] = []
    if htext is not None:
        for item in htext.split("&"):
            name, eq, value = item.partition("=")
            if not name or not eq:
                raise ParseError(400, "Bad URI Header")
            headers.append((name, value))
    return (scheme, user, password, host, port, items, tuple(headers), None, "", None)


def parse_uri(text: str) -> URI:
    """Parse a URI (no surrounding LWS or <> allowed). Raises ParseError(400, ...)."""
    return _uri_from_parts(_uri_parts(text))


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
    """A From/To/Contact/Route/Record-Route value: display name, URI, header parameters.

    ``uri`` is built when first read: a parsed value keeps only the URI's components until
    then (the To tag alone does not need it).
    """

    __slots__ = ("display_name", "params", "_uri", "_uparts")

    def __init__(
        self, uri: URI | None, display_name: str | None = None, params: Params | None = None,
        _uparts: tuple | None = None,
    ) -> None:
        # (``uri`` None: the parser's form, which gives the URI's parts in ``_uparts``)
        self._uri: URI | None = uri
        self._uparts: tuple | None = _uparts
        self.display_name = display_name
        self.params = params if params is not None else Params()

    @property
    def uri(self) -> URI:
        u = self._uri
        if u is None:
            u = self._uri = _uri_from_parts(self._uparts)  # type: ignore[arg-type]
        return u

    @uri.setter
    def uri(self, value: URI) -> None:
        self._uri = value

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
        u = self._uri
        return NameAddr(u.copy() if u is not None else None, self.display_name,
                        self.params.copy(), self._uparts)

    def __str__(self) -> str:
        u = self._uri
        uri = self._uparts[8] if u is None else str(u)  # type: ignore[index]
        if self.display_name:
            return f"{quote_string(self.display_name)} <{uri}>{self.params}"
        return f"<{uri}>{self.params}"

    def __repr__(self) -> str:
        return f"NameAddr({str(self)!r})"


_NAME_ADDR_CACHE: dict[str, tuple] = {}
_NAME_ADDR_SHAPES: dict[str, tuple] = {}


def parse_name_addr(text: str) -> NameAddr:
    """Parse ``[display-name] <uri> *(;param)`` or ``addr-spec *(;param)``.

    In the addr-spec form the parameters belong to the header field, not the URI (RFC 3261
    20.10; RFC 4475 3.1.2.13). Liberal where RFC 4475 allows it: LWS inside <> and unquoted
    display names with non-token characters are accepted.
    """
    return _name_addr_from_parts(name_addr_parts(text))


def name_addr_parts(text: str) -> tuple:
    """What `parse_name_addr` finds in ``text``, as an immutable tuple (remembered): the
    message layer checks a field with it and builds the object only when it is read."""
    parts = _NAME_ADDR_CACHE.get(text)
    if parts is None:
        parts = None
        if ";tag=" in text:  # a new tag for a known address: parse the rest once
            before, _, after = text.partition(";tag=")
            if '"' not in after and '"' not in before[before.rfind(">"):]:
                parts = _with_unique_param(text, ";tag=", 2, _NAME_ADDR_SHAPES, _name_addr_parts)
        if parts is None:
            parts = _name_addr_parts(text)
        _remember(_NAME_ADDR_CACHE, text, parts)
    return parts


def _name_addr_from_parts(parts: tuple) -> NameAddr:
    return NameAddr(None, parts[0], _params(parts[2], parts[3]), parts[1])


def _name_addr_parts(text: str) -> tuple:
    """(display name, URI components, header params items, header params text)."""
    m = _FAST_NAME_ADDR_RE.match(text)
    if m is not None:  # common shape: [token or "quoted"] <uri>;simple=params
        quoted, plain, uri_text, ptext = m.groups()
        if quoted is not None:
            display = unquote_string(f'"{quoted}"') if "\\" in quoted else quoted
        else:
            display = plain.strip() or None
        return (display, _uri_parts(uri_text), _simple_items(ptext) if ptext else (),
                ptext or None)
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
            return (None, _uri_parts(uri_text), *_params_parts(semi + ptext))
    gt = rest.find(">")
    if gt < 0:
        raise ParseError(400, "Unbalanced Angle Brackets")
    uri = _uri_parts(rest[1:gt].strip())
    return (display, uri, *_params_parts(rest[gt + 1:]))


def _params_parts(text: str) -> tuple:
    p = parse_params(text)
    items = p._items
    if type(items) is tuple:
        return items, p._text
    return tuple([(k, v) for k, v in items]), None


def sip_id(uri: URI) -> str:
    """``user@host`` (host lower-cased; the host alone without a user): how a party is named
    in logs, dialogs and accounts -- NGNPro's SipId, not the RFC's address-of-record URI
    (that is :attr:`URI.aor`)."""
    return f"{uri.user}@{uri.host.lower()}" if uri.user else uri.host.lower()
