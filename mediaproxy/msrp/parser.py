"""An incremental MSRP parser for a byte stream (RFC 4975 section 9), without I/O.

``Parser.feed(data)`` returns events in wire order: :class:`Head` (start line and header
fields, checked), :class:`BodyData` pieces and :class:`End` (the end-line's flag).  A relay
forwards each event as it comes, so a chunk's body is never held whole: at most the
end-line's length is kept back while the parser looks for it.  :func:`read_messages`
assembles whole chunks for end-points and tests, with a size bound.

What a peer can make the parser hold is bounded: the head (start line and header fields)
by ``max_head_bytes``, the number of fields by ``max_headers`` and each path by
``max_path``.  Anything malformed raises :class:`MSRPParseError`, which carries the
transaction id when the start line was good enough to answer ``400``; after an error the
stream cannot be re-synchronised, so the connection must be closed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .message import ByteRange, Message
from .uri import URIError, parse_path

__all__ = ["MSRPParseError", "Head", "BodyData", "End", "Parser", "read_messages", "Event"]

_START = re.compile(
    rb"MSRP ([A-Za-z0-9][A-Za-z0-9.\-+%=]{3,31}) (?:([A-Z]{1,32})|([0-9]{3})(?: ([^\r\n]*))?)")
_NAME = re.compile(rb"[A-Za-z0-9\-_.!%*+`'~]{1,64}")
_PATH_FIELDS = ("to-path", "from-path", "use-path")


class MSRPParseError(ValueError):
    """Malformed input.  ``transaction_id`` is set when a ``400`` can still be answered;
    ``code`` is the status to answer with."""

    def __init__(self, reason: str, transaction_id: str | None = None, code: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transaction_id = transaction_id
        self.code = code


@dataclass
class Head:
    """A chunk's start line and header fields; ``message.body`` stays empty (the body
    follows as :class:`BodyData` when ``has_body``)."""

    message: Message
    has_body: bool


@dataclass
class BodyData:
    data: bytes


@dataclass
class End:
    transaction_id: str
    flag: str


Event = Head | BodyData | End


class Parser:
    """Feed bytes, get events; one parser per connection (or per direction of one)."""

    def __init__(self, max_head_bytes: int = 16384, max_headers: int = 40, max_path: int = 16) -> None:
        self.max_head_bytes = max_head_bytes
        self.max_headers = max_headers
        self.max_path = max_path
        self._buf = bytearray()
        self._state = "start"          # start -> headers -> (body) -> start
        self._message: Message | None = None
        self._head_bytes = 0
        self._terminator = b""
        self._failed: MSRPParseError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held back (for memory accounting)."""
        return len(self._buf)

    @property
    def idle(self) -> bool:
        """True between chunks (nothing of a chunk received yet)."""
        return self._state == "start" and not self._buf

    def feed(self, data: bytes) -> list[Event]:
        if self._failed:
            raise self._failed
        self._buf += data
        events: list[Event] = []
        try:
            while self._step(events):
                pass
        except MSRPParseError as exc:
            self._failed = exc
            raise
        return events

    # -- states ----------------------------------------------------------------------
    def _line(self) -> bytes | None:
        i = self._buf.find(b"\r\n")
        if i < 0:
            if self._head_bytes + len(self._buf) > self.max_head_bytes:
                raise self._error("header too large")
            return None
        line = bytes(self._buf[:i])
        del self._buf[:i + 2]
        self._head_bytes += i + 2
        if self._head_bytes > self.max_head_bytes:
            raise self._error("header too large")
        return line

    def _error(self, reason: str) -> MSRPParseError:
        tid = self._message.transaction_id if self._message else None
        return MSRPParseError(reason, tid)

    def _step(self, events: list[Event]) -> bool:
        if self._state == "start":
            return self._start()
        if self._state == "headers":
            return self._header(events)
        return self._body(events)

    def _start(self) -> bool:
        if not b"MSRP ".startswith(bytes(self._buf[:5])):
            raise MSRPParseError("not an MSRP start line")
        line = self._line()
        if line is None:
            return False
        m = _START.fullmatch(line)
        if not m:
            raise MSRPParseError(f"malformed start line {line[:60]!r}")
        tid = m[1].decode()
        if m[2]:
            self._message = Message(tid, method=m[2].decode())
        else:
            comment = (m[4] or b"").decode("utf-8", "replace")
            self._message = Message(tid, code=int(m[3]), comment=comment)
        self._state = "headers"
        return True

    def _header(self, events: list[Event]) -> bool:
        line = self._line()
        if line is None:
            return False
        msg = self._message
        assert msg is not None
        if line.startswith(b"-------"):
            flag = self._end_flag(line)
            self._check(msg, has_body=False)
            events.append(Head(msg, False))
            events.append(End(msg.transaction_id, flag))
            self._reset()
            return True
        if not line:
            self._check(msg, has_body=True)
            events.append(Head(msg, True))
            self._terminator = b"\r\n-------" + msg.transaction_id.encode()
            self._state = "body"
            return True
        name, sep, value = line.partition(b":")
        if not sep or not _NAME.fullmatch(name):
            raise self._error(f"malformed header field {line[:60]!r}")
        if len(msg.headers) >= self.max_headers:
            raise self._error(f"more than {self.max_headers} header fields")
        try:
            msg.headers.append((name.decode(), value.strip().decode("utf-8")))
        except UnicodeDecodeError:
            raise self._error("header field not UTF-8") from None
        return True

    def _end_flag(self, line: bytes) -> str:
        msg = self._message
        assert msg is not None
        want = b"-------" + msg.transaction_id.encode()
        if len(line) != len(want) + 1 or not line.startswith(want) or line[-1:] not in (b"$", b"+", b"#"):
            raise self._error("end-line does not match the transaction")
        return line[-1:].decode()

    def _check(self, msg: Message, has_body: bool) -> None:
        """What every chunk must satisfy before anything of it is acted on."""
        seen = set()
        for k, v in msg.headers:
            lk = k.lower()
            if lk in _PATH_FIELDS or lk in ("byte-range", "message-id", "content-type", "expires"):
                if lk in seen:
                    raise self._error(f"{k} given twice")
                seen.add(lk)
            if lk in _PATH_FIELDS:
                try:
                    parse_path(v, self.max_path)
                except URIError as exc:
                    raise self._error(f"{k}: {exc}") from None
            elif lk == "byte-range":
                try:
                    ByteRange.parse(v)
                except ValueError as exc:
                    raise self._error(str(exc)) from None
            elif lk == "expires" and not v.isdigit():
                raise self._error("Expires is not a number")
        if "to-path" not in seen or "from-path" not in seen:
            raise self._error("To-Path and From-Path are required")
        if not msg.method and has_body:
            raise self._error("a response has no body")

    def _body(self, events: list[Event]) -> bool:
        msg = self._message
        assert msg is not None
        term = self._terminator
        i = self._buf.find(term)
        while i >= 0:
            after = i + len(term)
            if len(self._buf) < after + 3:
                break  # the flag and CRLF have not all arrived
            if self._buf[after:after + 1] in (b"$", b"+", b"#") and self._buf[after + 1:after + 3] == b"\r\n":
                if i:
                    events.append(BodyData(bytes(self._buf[:i])))
                flag = self._buf[after:after + 1].decode()
                del self._buf[:after + 3]
                events.append(End(msg.transaction_id, flag))
                self._reset()
                return True
            i = self._buf.find(term, i + 1)
        keep = len(term) + 2
        if i >= 0:
            keep = max(keep, len(self._buf) - i)
        if len(self._buf) > keep:
            cut = len(self._buf) - keep
            events.append(BodyData(bytes(self._buf[:cut])))
            del self._buf[:cut]
        return False

    def _reset(self) -> None:
        self._state = "start"
        self._message = None
        self._head_bytes = 0
        self._terminator = b""


def read_messages(parser: Parser, data: bytes, pending: dict[int, Message], max_body: int = 1 << 26) -> list[Message]:
    """Whole chunks from ``data`` (the end-point view): ``pending`` carries the chunk being
    received between calls (pass the same dict each time)."""
    out: list[Message] = []
    for ev in parser.feed(data):
        if isinstance(ev, Head):
            pending[0] = ev.message
        elif isinstance(ev, BodyData):
            msg = pending[0]
            if len(msg.body) + len(ev.data) > max_body:
                raise MSRPParseError("chunk larger than allowed", msg.transaction_id, 413)
            msg.body += ev.data
        else:
            msg = pending.pop(0)
            msg.flag = ev.flag
            out.append(msg)
    return out
