"""The shared grammar of SIP header values (RFC 3261 section 25): tokens, quoted strings,
``;name=value`` parameters, and the fault every parser raises (`ParseError`).

Also the bounded parse caches the value parsers share: a proxy sees the same addresses,
Via sent-bys and parameter lists in message after message, so parsers remember the
immutable components they found per text (`_remember`), and for a value whose only new part
is one parameter (a Via's branch, an address's tag) per *shape* (`_with_unique_param`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from itertools import repeat

__all__ = [
    "ParseError",
    "Params",
    "parse_params",
    "is_token",
    "check_ipv6_reference",
    "quote_string",
    "unquote_string",
    "split_quoted",
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
_SIMPLE_PARAMS_RE = re.compile(r"(?:;[A-Za-z0-9\-.!%*_+`'~]+(?:=[^;\"\s,<>=]+)?)+\Z")
#: tokens seen valid (methods, mostly): `is_token` answers them without the regex
_KNOWN_TOKENS = {
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY",
    "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
}

#: parse caches hold texts up to this length, at most this many (then start afresh)
_CACHE_TEXT_MAX = 256
_CACHE_SIZE = 8192


def _remember(cache: dict, text: str, parts: object) -> None:
    if len(text) <= _CACHE_TEXT_MAX:
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        cache[text] = parts


#: a parameter value that cannot change how the text around it splits (no quote, backslash,
#: separator or white space)
_PLAIN_VALUE_RE = re.compile(r'[^;"\s,<>=\\]+\Z')


def _with_unique_param(value: str, marker: str, at: int, cache: dict, full) -> tuple | None:
    """Parts of ``value`` when its parameter ``marker`` (``;branch=``, ``;tag=``) has a value
    seen nowhere else: what the rest parses to is remembered per *shape* (``value`` without
    that parameter's value) -- a client's Via, a caller's From, differ only there.

    ``full(text)`` parses a whole value into parts whose params items are at index ``at``
    (the params text follows them); None when ``value`` is not of that form (then parse it
    whole). The shape is parsed with the value ``x``: a plain value (no character that
    separates or quotes) splits the text around it the same way.
    """
    before, sep, after = value.partition(marker)
    if not sep:
        return None
    pvalue, semi, rest = after.partition(";")
    if not pvalue or not (pvalue.isalnum() or pvalue.replace(".", "").replace("-", "").isalnum()
                          or _PLAIN_VALUE_RE.match(pvalue)):  # (the common forms first)
        return None
    key = before + marker + semi + rest
    shape = cache.get(key)
    if shape is None:
        parts = full(before + marker + "x" + semi + rest)
        items = parts[at]
        name = marker[1:-1]
        found = [i for i, item in enumerate(items) if item[0] == name and item[1] == "x"]
        if len(found) != 1:
            return None
        i = found[0]
        shape = (parts[:at], items[:i], items[i + 1:], name)
        _remember(cache, key, shape)
    head, pre, post, name = shape
    return head + (pre + ((name, pvalue),) + post, None)


def is_token(text: str) -> bool:
    """True when ``text`` is an RFC 3261 token (method names, parameter names...)."""
    return text in _KNOWN_TOKENS or _TOKEN_RE.match(text) is not None


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


_partition = str.partition


def _simple_items(text: str) -> tuple:
    """``;a=b;c`` (already checked simple: no LWS, no quotes) -> ((a, b), (c, None))."""
    return tuple([
        (n, v if eq else None) for n, eq, v in map(_partition, text[1:].split(";"), repeat("="))
    ])


class Params:
    """Ordered parameters with case-insensitive names; a flag parameter has value None.

    ``_items`` is a list of ``[name, value]`` lists, or -- straight from a parse cache -- a
    tuple of ``(name, value)`` tuples (with ``_text``, the text they came from), copied into
    lists by the first write.
    """

    __slots__ = ("_items", "_text")

    def __init__(self, items: Iterable[tuple[str, str | None]] = ()) -> None:
        self._items: list | tuple = [[k, v] for k, v in items] if items != () else []
        self._text: str | None = None

    def _own(self) -> list:
        items = self._items
        if isinstance(items, list):
            return items
        own = self._items = [list(item) for item in items]
        return own

    def _find(self, name: str) -> int:
        low = None
        i = 0
        for item in self._items:
            n = item[0]
            if n == name:
                return i
            if len(n) == len(name):
                if low is None:
                    low = name.lower()
                if n.lower() == low:
                    return i
            i += 1
        return -1

    def get(self, name: str, default: str | None = None) -> str | None:
        low = None
        for item in self._items:
            n = item[0]
            if n == name:
                return item[1]
            if len(n) == len(name):
                if low is None:
                    low = name.lower()
                if n.lower() == low:
                    return item[1]
        return default

    def __getitem__(self, name: str) -> str | None:
        i = self._find(name)
        if i < 0:
            raise KeyError(name)
        return self._items[i][1]

    def __setitem__(self, name: str, value: str | None) -> None:
        i = self._find(name)
        items = self._own()
        if i < 0:
            items.append([name, value])
        else:
            items[i][1] = value

    def __delitem__(self, name: str) -> None:
        i = self._find(name)
        if i < 0:
            raise KeyError(name)
        del self._own()[i]

    def pop(self, name: str, default: str | None = None) -> str | None:
        i = self._find(name)
        if i < 0:
            return default
        return self._own().pop(i)[1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._find(name) >= 0

    def __iter__(self) -> Iterator[str]:
        return iter([item[0] for item in self._items])

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def items(self) -> list[tuple[str, str | None]]:
        items = self._items
        if type(items) is tuple:
            return list(items)
        return [(k, v) for k, v in items]

    def copy(self) -> Params:
        items = self._items
        return _params(items if type(items) is tuple else [[k, v] for k, v in items], self._text)

    def __str__(self) -> str:
        items = self._items
        if type(items) is tuple and self._text is not None:
            return self._text
        return "".join([f";{k}" if v is None else f";{k}={v}" for k, v in items])

    def __repr__(self) -> str:
        return f"Params({self.items()!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Params):
            return NotImplemented
        return [(k.lower(), v) for k, v in self._items] == [
            (k.lower(), v) for k, v in other._items
        ]


def _params(items: list | tuple, text: str | None) -> Params:
    """A `Params` holding ``items`` as they are (a parse cache's tuple, or a list it owns).

    (The message layer builds every object by calling its class, never ``Cls.__new__``:
    mypyc, which compiles these modules, has no ``__new__`` for its classes.)
    """
    p = Params()
    p._items = items
    p._text = text
    return p


def parse_params(text: str) -> Params:
    """Parse header parameters ``;name=value;flag`` with LWS allowed around ; and =.

    Values may be quoted strings (kept with their quotes). An empty parameter (``;;``) or a
    non-token name is a 400.
    """
    if not text or text.isspace():
        return Params()
    if _SIMPLE_PARAMS_RE.match(text):  # fast path: no LWS, no quotes
        return _params(_simple_items(text), text)
    parts = split_quoted(text, ";")
    if parts[0].strip():
        raise ParseError(400, "Bad Header Parameters")
    params = Params()
    items = params._own()
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
