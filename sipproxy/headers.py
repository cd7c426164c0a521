"""SIP header fields: the ordered field list of a message and the Via value (RFC 3261 7.3, 20).

`Headers` stores every field as it arrived -- (canonical key, name as written, value) -- and
parses nothing: a proxy reads a handful of fields per message, so values are parsed on
access by the message properties. Names are case-insensitive and compact forms (``v``, ``i``,
``m`` ...) are the same field as their long forms. Values of the fields whose grammar is a
comma-separated list (Via, Contact, Route, ...) are split by `getall` on commas outside quoted
strings and <>.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from .uri import Params, ParseError, check_ipv6_reference, parse_params, split_quoted

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


def canonical_name(name: str) -> str:
    """The lower-case long name of header ``name`` (compact forms expanded)."""
    key = name.lower()
    if len(key) == 1:
        return COMPACT_FORMS.get(key, key)
    return key


def pretty_name(key: str) -> str:
    """Conventional capitalisation of a canonical key (``record-route`` -> ``Record-Route``)."""
    return _PRETTY.get(key) or "-".join(p[:1].upper() + p[1:] for p in key.split("-"))


def split_list(value: str) -> list[str]:
    """Split a list-valued field on commas outside quotes/<>; empty items are dropped."""
    if "," not in value:
        v = value.strip()
        return [v] if v else []
    return [v for v in (p.strip() for p in split_quoted(value, ",")) if v]


class Headers:
    """Ordered, case-insensitive header fields of one message.

    Each entry is ``[key, name, value]``: key is the canonical lower-case long name, name the
    spelling to write back. ``gen`` increases on every change so that parsed views can be
    cached by the message.
    """

    __slots__ = ("_items", "gen")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[list[str]] = [[canonical_name(n), n, v] for n, v in items]
        self.gen = 0

    @classmethod
    def _from_entries(cls, entries: list[list[str]]) -> Headers:
        h = cls.__new__(cls)
        h._items = entries
        h.gen = 0
        return h

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((name, value) for _k, name, value in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = canonical_name(name)
        return any(item[0] == key for item in self._items)

    def count(self, name: str) -> int:
        """Number of field lines named ``name`` (not of comma-separated values)."""
        key = canonical_name(name)
        return sum(1 for item in self._items if item[0] == key)

    def raw(self, name: str) -> list[str]:
        """Every field line's value for ``name``, unsplit."""
        key = canonical_name(name)
        return [item[2] for item in self._items if item[0] == key]

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name`` (first list element for list-valued fields)."""
        key = canonical_name(name)
        for item in self._items:
            if item[0] == key:
                if key in LIST_HEADERS:
                    values = split_list(item[2])
                    if values:
                        return values[0]
                    continue
                return item[2]
        return default

    def getall(self, name: str) -> list[str]:
        """All values of ``name``, list-valued fields split on commas outside quotes/<>."""
        key = canonical_name(name)
        if key in LIST_HEADERS:
            out: list[str] = []
            for item in self._items:
                if item[0] == key:
                    out.extend(split_list(item[2]))
            return out
        return [item[2] for item in self._items if item[0] == key]

    def set(self, name: str, value: str) -> None:
        """Replace every ``name`` field by one (in place of the first, else at the end)."""
        key = canonical_name(name)
        items = self._items
        first = -1
        for i in range(len(items) - 1, -1, -1):
            if items[i][0] == key:
                if first >= 0:
                    del items[first]
                first = i
        if first >= 0:
            items[first] = [key, items[first][1], value]
        else:
            if len(name) > 1 and name == key:
                name = pretty_name(key)
            items.append([key, name, value])
        self.gen += 1

    def add(self, name: str, value: str, top: bool = False) -> None:
        """Add a field line; ``top=True`` puts it before every other one of its name."""
        key = canonical_name(name)
        if len(name) > 1 and name == key:
            name = pretty_name(key)  # "record-route" is written "Record-Route"
        entry = [key, name, value]
        if top:
            for i, item in enumerate(self._items):
                if item[0] == key:
                    self._items.insert(i, entry)
                    break
            else:
                self._items.append(entry)
        else:
            self._items.append(entry)
        self.gen += 1

    def remove(self, name: str) -> int:
        """Remove every ``name`` field; returns how many lines went."""
        key = canonical_name(name)
        before = len(self._items)
        self._items = [item for item in self._items if item[0] != key]
        self.gen += 1
        return before - len(self._items)

    def pop_first(self, name: str) -> str | None:
        """Remove and return the first value of ``name`` (only that element of a list line)."""
        key = canonical_name(name)
        items = self._items
        for i, item in enumerate(items):
            if item[0] != key:
                continue
            if key in LIST_HEADERS and "," in item[2]:
                values = split_list(item[2])
                if not values:
                    del items[i]
                    continue
                if len(values) > 1:
                    item[2] = ", ".join(values[1:])
                else:
                    del items[i]
                self.gen += 1
                return values[0]
            del items[i]
            self.gen += 1
            return item[2].strip()
        return None

    def replace_first(self, name: str, value: str) -> None:
        """Replace the first value of ``name`` in place (e.g. the top Via after adding
        received/rport); adds the field when absent."""
        key = canonical_name(name)
        for item in self._items:
            if item[0] != key:
                continue
            if key in LIST_HEADERS and "," in item[2]:
                values = split_list(item[2])
                if not values:
                    continue
                values[0] = value
                item[2] = ", ".join(values)
            else:
                item[2] = value
            self.gen += 1
            return
        self.add(name, value)

    def copy(self) -> Headers:
        h = Headers._from_entries([list(item) for item in self._items])
        return h

    def items(self) -> list[tuple[str, str]]:
        return [(name, value) for _k, name, value in self._items]

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


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

    __slots__ = ("protocol", "transport", "host", "port", "params")

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

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> int | bool | None:
        """None when absent, True when present without value, else the port number."""
        if "rport" not in self.params:
            return None
        value = self.params.get("rport")
        if value is None:
            return True
        return int(value) if value.isdigit() and int(value) <= 65535 else True

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def copy(self) -> Via:
        return Via(self.protocol, self.transport, self.host, self.port, self.params.copy())

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{self.params}"

    def __repr__(self) -> str:
        return f"Via({str(self)!r})"


def parse_via(value: str) -> Via:
    """Parse one Via value (LWS allowed around / : ; = as in RFC 4475 3.1.1.1)."""
    m = _FAST_VIA_RE.match(value)
    if m is not None:  # the common shape, in one regex
        transport, host, port_text, ptext = m.groups()
        via = Via.__new__(Via)
        via.protocol = "SIP/2.0"
        via.transport = transport.upper()
        if host[0] == "[":
            check_ipv6_reference(host)
        via.host = host
        via.port = int(port_text) if port_text is not None else None
        if via.port is not None and via.port > 65535:
            raise ParseError(400, "Bad Via Port")
        params = Params.__new__(Params)
        params._items = [
            [n, v if eq else None] for n, eq, v in (p.partition("=") for p in ptext[1:].split(";"))
        ] if ptext else []
        via.params = params
        return via
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
    return Via(
        f"{m.group(1)}/{m.group(2)}", m.group(3).upper(), m.group(4), port, parse_params(rest)
    )
