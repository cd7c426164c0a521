"""SIP header fields: the ordered field list of a message and the Via value (RFC 3261 7.3, 20).

`Headers` keeps every field line as the text it arrived in, beside its canonical key, and
parses nothing: a proxy reads a handful of fields per message, so a value is cut out of its
line (and parsed, by the message properties) only when asked for, and serialising a message
joins the lines it did not touch as they came. Names are case-insensitive and compact forms
(``v``, ``i``, ``m`` ...) are the same field as their long forms. Values of the fields whose
grammar is a comma-separated list (Via, Contact, Route, ...) are split by `getall` on commas
outside quoted strings and <>.

Parsed views of the fields (the Via list, From, CSeq ...) are remembered in ``Headers._views``
by the message layer, keyed by the canonical name; every change to a field drops the views of
that field only, so a new top Via does not make From be parsed again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from sipproxy.sip.grammar import (
    _SIMPLE_PARAMS_RE,
    Params,
    ParseError,
    _params,
    _remember,
    _simple_items,
    _with_unique_param,
    check_ipv6_reference,
    is_token,
    parse_params,
    split_quoted,
)

__all__ = ["Headers", "Via", "parse_via", "canonical_name", "COMPACT_FORMS", "LIST_HEADERS"]

#: compact form -> canonical (lower-case) long name (RFC 3261 7.3.3 and later RFCs)
COMPACT_FORMS = {
    "i": "call-id",
    "m": "contact",
    "f": "from",
    "t": "to",
    "v": "via",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
    "s": "subject",
    "e": "content-encoding",
    "o": "event",
    "u": "allow-events",
    "r": "refer-to",
    "b": "referred-by",
    "x": "session-expires",
    "y": "identity",
    "a": "accept-contact",
    "j": "reject-contact",
    "d": "request-disposition",
    "n": "identity-info",
}

#: fields whose grammar is ``value *(COMMA value)`` (several may be combined in one line)
LIST_HEADERS = frozenset(
    {
        "via", "contact", "route", "record-route", "path", "service-route", "allow",
        "supported", "require", "proxy-require", "unsupported", "accept", "accept-encoding",
        "accept-language", "content-encoding", "content-language", "alert-info", "call-info",
        "error-info", "in-reply-to", "warning", "reason", "allow-events", "p-asserted-identity",
        "p-preferred-identity", "accept-contact", "reject-contact", "request-disposition",
        "history-info", "privacy", "security-client", "security-server", "security-verify",
    }
)

#: conventional spelling used when serialising a field added by canonical key
_PRETTY = {
    "call-id": "Call-ID", "cseq": "CSeq", "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version",
}

#: header name as written -> canonical key, for names known to be valid tokens (bounded):
#: the parser's fast path takes a name found here as checked
NAME_KEYS: dict[str, str] = {}
_NAME_KEYS_MAX = 4096

#: view keys derived from a field besides its own (dropped with it)
TOP_VIA = " top-via"
#: Content-Length as parsed, its number written as ``to_bytes`` would write it (the length)
CL_OK = " cl-ok"
#: ... and its whole line (``Name: length``): a copy keeps it as CL_OK (`Headers.copy`)
CL_COPY = " cl-copy"
_DERIVED = {"via": TOP_VIA, "content-length": CL_OK}


def canonical_name(name: str) -> str:
    """The lower-case long name of header ``name`` (compact forms expanded)."""
    key = NAME_KEYS.get(name)
    if key is not None:
        return key
    key = name.lower()
    if len(key) == 1:
        key = COMPACT_FORMS.get(key, key)
    if len(NAME_KEYS) < _NAME_KEYS_MAX and is_token(name):
        NAME_KEYS[name] = key
    return key


def pretty_name(key: str) -> str:
    """Conventional capitalisation of a canonical key (``record-route`` -> ``Record-Route``)."""
    name = _PRETTY.get(key)
    if name is None:
        name = "-".join(p[:1].upper() + p[1:] for p in key.split("-"))
        if len(_PRETTY) < _NAME_KEYS_MAX:
            _PRETTY[key] = name
    return name


for _short, _long in COMPACT_FORMS.items():
    for _n in (_short, _short.upper()):
        NAME_KEYS[_n] = _long
for _key in (
    "via", "max-forwards", "to", "from", "call-id", "cseq", "contact", "route", "record-route",
    "content-length", "content-type", "authorization", "proxy-authorization",
    "www-authenticate", "proxy-authenticate", "expires", "min-expires", "allow", "supported",
    "require", "proxy-require", "unsupported", "user-agent", "server", "accept", "path",
    "timestamp", "date", "subject", "event", "allow-events", "session-expires", "min-se",
    "reason", "p-asserted-identity", "p-preferred-identity", "privacy", "organization",
    "content-disposition", "content-encoding", "accept-encoding", "accept-language",
    "retry-after", "warning", "refer-to", "referred-by", "replaces", "rack", "rseq",
    "subscription-state", "service-route", "history-info", "call-info", "alert-info",
):
    for _n in (_key, pretty_name(_key), _key.upper(), _key.title()):
        NAME_KEYS[_n] = _key


_key_of = NAME_KEYS.get


def split_list(value: str) -> list[str]:
    """Split a list-valued field on commas outside quotes/<>; empty items are dropped."""
    if "," not in value:
        v = value.strip()
        return [v] if v else []
    return [v for v in (p.strip() for p in split_quoted(value, ",")) if v]


class Headers:
    """Ordered, case-insensitive header fields of one message.

    Two parallel lists: ``_keys`` (canonical lower-case long names) and ``_lines`` (each
    field line, ``Name: value``, as received or as added). ``gen`` increases on every change;
    ``_views`` holds the parsed views of the message layer (see the module docstring).
    """

    __slots__ = ("_keys", "_lines", "gen", "_views")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        keys: list[str] = []
        lines: list[str] = []
        for n, v in items:
            keys.append(canonical_name(n))
            lines.append(f"{n}: {v}")
        self._keys = keys
        self._lines = lines
        self.gen = 0
        self._views: dict | None = None

    def _changed(self, key: str) -> None:
        """Fields named ``key`` changed: forget their parsed views."""
        self.gen += 1
        views = self._views
        if views:
            views.pop(key, None)
            derived = _DERIVED.get(key)
            if derived is not None:
                views.pop(derived, None)
                if derived is CL_OK:
                    views.pop(CL_COPY, None)

    def _value(self, i: int) -> str:
        return self._lines[i].partition(":")[2].strip()

    def _name(self, i: int) -> str:
        return self._lines[i].partition(":")[0].rstrip()

    def _first(self, key: str) -> str | None:
        """The value of the first line named ``key`` (a canonical key), unsplit."""
        keys = self._keys
        if key not in keys:
            return None
        return self._lines[keys.index(key)].partition(":")[2].strip()

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for line in self._lines:
            name, _, value = line.partition(":")
            yield name.rstrip(), value.strip()

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return (_key_of(name) or canonical_name(name)) in self._keys

    def count(self, name: str) -> int:
        """Number of field lines named ``name`` (not of comma-separated values)."""
        return self._keys.count(_key_of(name) or canonical_name(name))

    def raw(self, name: str) -> list[str]:
        """Every field line's value for ``name``, unsplit."""
        key = _key_of(name) or canonical_name(name)
        keys = self._keys
        n = keys.count(key)
        if n == 0:
            return []
        if n == 1:
            return [self._lines[keys.index(key)].partition(":")[2].strip()]
        value = self._value
        return [value(i) for i, k in enumerate(keys) if k == key]

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name`` (first list element for list-valued fields)."""
        key = _key_of(name) or canonical_name(name)
        keys = self._keys
        if key not in keys:
            return default
        if key not in LIST_HEADERS:
            return self._lines[keys.index(key)].partition(":")[2].strip()
        for i, k in enumerate(keys):
            if k == key:
                v = self._value(i)
                if v and "," not in v:
                    return v
                values = split_list(v)
                if values:
                    return values[0]
        return default

    def getall(self, name: str) -> list[str]:
        """All values of ``name``, list-valued fields split on commas outside quotes/<>."""
        key = _key_of(name) or canonical_name(name)
        keys = self._keys
        if key not in keys:
            return []
        value = self._value
        if key in LIST_HEADERS:
            out: list[str] = []
            for i, k in enumerate(keys):
                if k == key:
                    out.extend(split_list(value(i)))
            return out
        return [value(i) for i, k in enumerate(keys) if k == key]

    def set(self, name: str, value: str) -> None:
        """Replace every ``name`` field by one (in place of the first, else at the end)."""
        key = _key_of(name) or canonical_name(name)
        keys = self._keys
        lines = self._lines
        if key in keys:
            first = keys.index(key)
            if keys.count(key) > 1:
                for i in range(len(keys) - 1, first, -1):
                    if keys[i] == key:
                        del keys[i]
                        del lines[i]
            lines[first] = f"{self._name(first)}: {value}"
        else:
            if len(name) > 1 and name == key:
                name = pretty_name(key)
            keys.append(key)
            lines.append(f"{name}: {value}")
        self._changed(key)

    def add(self, name: str, value: str, top: bool = False) -> None:
        """Add a field line; ``top=True`` puts it before every other one of its name."""
        key = _key_of(name) or canonical_name(name)
        if len(name) > 1 and name == key:
            name = pretty_name(key)  # "record-route" is written "Record-Route"
        keys = self._keys
        if top and key in keys:
            i = keys.index(key)
            keys.insert(i, key)
            self._lines.insert(i, f"{name}: {value}")
        else:
            keys.append(key)
            self._lines.append(f"{name}: {value}")
        self._changed(key)

    def remove(self, name: str) -> int:
        """Remove every ``name`` field; returns how many lines went."""
        key = _key_of(name) or canonical_name(name)
        keys = self._keys
        n = keys.count(key)
        if not n:  # the usual case of a forwarded copy (credentials, caller id): nothing to do
            return 0
        if n == 1:
            i = keys.index(key)
            del keys[i]
            del self._lines[i]
        elif n:
            lines = self._lines
            keep = [i for i, k in enumerate(keys) if k != key]
            self._keys = [keys[i] for i in keep]
            self._lines = [lines[i] for i in keep]
        self._changed(key)
        return n

    def pop_first(self, name: str) -> str | None:
        """Remove and return the first value of ``name`` (only that element of a list line)."""
        key = _key_of(name) or canonical_name(name)
        keys = self._keys
        lines = self._lines
        while key in keys:
            i = keys.index(key)
            v = lines[i].partition(":")[2].strip()
            if "," in v and key in LIST_HEADERS:
                values = split_list(v)
                if len(values) > 1:
                    lines[i] = f"{self._name(i)}: {', '.join(values[1:])}"
                else:
                    del keys[i]
                    del lines[i]
                    if not values:
                        continue
                self._changed(key)
                return values[0]
            del keys[i]
            del lines[i]
            self._changed(key)
            return v
        return None

    def replace_first(self, name: str, value: str) -> None:
        """Replace the first value of ``name`` in place (e.g. the top Via after adding
        received/rport); adds the field when absent.

        For Via, when ``value`` is the very string ``str(via)`` just made of the message's
        parsed top Via (what a proxy does after setting received/rport), that Via object
        stays the parsed view: it is not parsed again.
        """
        key = _key_of(name) or canonical_name(name)
        keys = self._keys
        if key in keys:
            lines = self._lines
            i = keys.index(key)
            for k in keys[i:]:
                if k != key:
                    i += 1
                    continue
                name, _, v = lines[i].partition(":")
                v = v.strip()
                if "," in v and key in LIST_HEADERS:
                    values = split_list(v)
                    if not values:
                        i += 1
                        continue
                    values[0] = value
                    new = ", ".join(values)
                else:
                    new = value
                lines[i] = f"{name.rstrip()}: {new}"
                views = self._views
                if views and key == "via":
                    top = views.get(TOP_VIA)
                    if top is not None and top._last is value:
                        self.gen += 1  # the parsed views already show this value
                        return
                self._changed(key)
                return
        self.add(name, value)

    def copy(self) -> Headers:
        h = _headers(self._keys[:], self._lines[:])
        views = self._views
        # immutable views only (parsed objects may be changed by their holder); a
        # Content-Length line as `_with_content_length` would write it needs no rewriting
        if views:
            cseq = views.get("cseq")
            length = views.get(CL_COPY)
            if length is not None:
                h._views = {"cseq": cseq, CL_OK: length, CL_COPY: length}
                if cseq is None:
                    del h._views["cseq"]
            elif cseq is not None:
                h._views = {"cseq": cseq}
        return h

    def items(self) -> list[tuple[str, str]]:
        return [(n.rstrip(), v.strip()) for n, _, v in (line.partition(":") for line in self._lines)]

    @property
    def _items(self) -> list[list[str]]:
        """``[key, name, value]`` per line (a snapshot: changing it changes nothing)."""
        return [[k, n, v] for k, (n, v) in zip(self._keys, self.items(), strict=True)]

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


def _headers(keys: list[str], lines: list[str]) -> Headers:
    """A `Headers` of the parallel lists ``keys`` and ``lines``, taken as they are.

    (Built by calling the class, as every object of the message layer: mypyc, which compiles
    these modules, has no ``Cls.__new__`` shortcut.)
    """
    h = Headers()
    h._keys = keys
    h._lines = lines
    return h


_SENT_PROTOCOL_RE = re.compile(
    r"\s*([A-Za-z0-9\-.!%*_+`'~]+)\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s*/\s*"
    r"([A-Za-z0-9\-.!%*_+`'~]+)\s+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-_.]+)(?:\s*:\s*([0-9]{1,5}))?\s*"
)


_FAST_VIA_RE = re.compile(
    r"SIP/2\.0/([A-Za-z0-9\-.!%*_+`'~]+) (\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-_.]+)(?::([0-9]{1,5}))?"
    r"((?:;[A-Za-z0-9\-.!%*_+`'~]+(?:=[^;\"\s,<>=]+)?)*)\Z"
)


class Via:
    """One Via value: ``SIP/2.0/UDP host:port;params``."""

    __slots__ = ("protocol", "transport", "host", "port", "params", "_last")

    def __init__(
        self,
        protocol: str = "SIP/2.0",
        transport: str = "UDP",
        host: str = "",
        port: int | None = None,
        params: Params | None = None,
    ) -> None:
        self.protocol = protocol
        self.transport = transport
        self.host = host
        self.port = port
        self.params = params if params is not None else Params()
        self._last: str | None = None

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> int | bool | None:
        """None when absent, True when present without value, else the port number."""
        for item in self.params._items:
            n = item[0]
            if n == "rport" or (len(n) == 5 and n.lower() == "rport"):  # (as `Params.get`)
                value = item[1]
                if value is None:
                    return True
                return int(value) if value.isdigit() and value.isascii() and int(value) <= 65535 else True
        return None

    def copy(self) -> Via:
        return Via(self.protocol, self.transport, self.host, self.port, self.params.copy())

    def __str__(self) -> str:
        port = self.port
        if port is None:
            s = f"{self.protocol}/{self.transport} {self.host}{self.params}"
        else:
            s = f"{self.protocol}/{self.transport} {self.host}:{port}{self.params}"
        self._last = s  # lets Headers.replace_first recognise this Via's own text
        return s

    def __repr__(self) -> str:
        return f"Via({str(self)!r})"


_VIA_CACHE: dict[str, tuple] = {}


def parse_via(value: str) -> Via:
    """Parse one Via value (LWS allowed around / : ; = as in RFC 4475 3.1.1.1)."""
    parts = _VIA_CACHE.get(value)
    if parts is None:
        parts = _via_parts(value)
        _remember(_VIA_CACHE, value, parts)
    protocol, transport, host, port, items, text = parts
    return Via(protocol, transport, host, port, _params(items, text))


_SENT_BY_CACHE: dict[str, tuple] = {}
_SENT_BY_RE = re.compile(
    r"SIP/2\.0/([A-Za-z0-9\-.!%*_+`'~]+) (\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-_.]+)(?::([0-9]{1,5}))?\Z"
)


_VIA_SHAPES: dict[str, tuple] = {}


def _via_parts(value: str) -> tuple:
    """(protocol, transport, host, port, params items, params text) of a Via value.

    A new branch on a client's usual Via costs no parsing beyond finding it (the rest is
    remembered per client, `_with_unique_param`); otherwise `_plain_via_parts`."""
    if '"' not in value:
        parts = _with_unique_param(value, ";branch=", 4, _VIA_SHAPES, _plain_via_parts)
        if parts is not None:
            return parts
    return _plain_via_parts(value)


def _plain_via_parts(value: str) -> tuple:
    """(protocol, transport, host, port, params items, params text) of a Via value.

    The sent-protocol and sent-by (``SIP/2.0/UDP 192.0.2.1:5060``) come back with every
    request of a client and are remembered apart from the parameters (a new branch each
    time); parameters without LWS or quotes are split without the general parser.
    """
    sent, semi, ptext = value.partition(";")
    head = _SENT_BY_CACHE.get(sent)
    if head is None:
        m = _SENT_BY_RE.match(sent)
        if m is not None:
            transport, host, port_text = m.groups()
            if host[0] == "[":
                check_ipv6_reference(host)
            port = int(port_text) if port_text is not None else None
            if port is not None and port > 65535:
                raise ParseError(400, "Bad Via Port")
            head = ("SIP/2.0", transport.upper(), host, port)
            _remember(_SENT_BY_CACHE, sent, head)
    if head is not None and (not semi or _SIMPLE_PARAMS_RE.match(ptext := semi + ptext)):
        if not semi:
            return (*head, (), None)
        return (*head, _simple_items(ptext), ptext)
    return _slow_via_parts(value)


def _slow_via_parts(value: str) -> tuple:
    m = _FAST_VIA_RE.match(value)
    if m is not None:  # the common shape, in one regex
        transport, host, port_text, ptext = m.groups()
        if host[0] == "[":
            check_ipv6_reference(host)
        port = int(port_text) if port_text is not None else None
        if port is not None and port > 65535:
            raise ParseError(400, "Bad Via Port")
        return ("SIP/2.0", transport.upper(), host, port,
                _simple_items(ptext) if ptext else (), ptext or None)
    m = _SENT_PROTOCOL_RE.match(value)
    if m is None:
        raise ParseError(400, "Bad Via")
    rest = value[m.end():]
    if rest and rest[0] != ";":
        raise ParseError(400, "Bad Via")
    if m.group(4)[0] == "[":
        check_ipv6_reference(m.group(4))
    port = None
    if m.group(5) is not None:
        port = int(m.group(5))
        if port > 65535:
            raise ParseError(400, "Bad Via Port")
    params = parse_params(rest)
    items = params._items
    if type(items) is tuple:
        ptuple, ptext = items, params._text
    else:
        ptuple, ptext = tuple([(k, v) for k, v in items]), None
    return (f"{m.group(1)}/{m.group(2)}", m.group(3).upper(), m.group(4), port, ptuple, ptext)
