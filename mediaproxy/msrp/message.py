"""MSRP messages (RFC 4975 section 7 and 9): requests, responses, their header fields and
their wire form.

A message here is one *chunk* on the wire: a start line, header fields, an optional body and
the end-line ``-------<transaction-id><flag>`` whose flag says whether the message is
complete (``$``), continues in a later chunk (``+``) or is aborted (``#``).  Relays forward
chunks one by one and never put a message together, so nothing in this module assumes it
holds a whole message.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

from .uri import MsrpUri, parse_path

__all__ = [
    "REASONS", "ByteRange", "Message", "new_transaction_id", "new_message_id", "end_line",
    "make_response", "make_report", "FLAG_COMPLETE", "FLAG_CONTINUES", "FLAG_ABORTED",
]

FLAG_COMPLETE = "$"
FLAG_CONTINUES = "+"
FLAG_ABORTED = "#"

#: the status codes of RFC 4975 section 10 (and 401, 423 of RFC 4976 section 5)
REASONS: dict[int, str] = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    408: "Request Timeout",
    413: "Message Too Large",
    415: "Unsupported Media Type",
    423: "Interval Out-of-Bounds",
    481: "Session Does Not Exist",
    501: "Method Not Implemented",
    506: "Session Already Bound",
}

_BYTE_RANGE = re.compile(r"([0-9]{1,18})-([0-9]{1,18}|\*)/([0-9]{1,18}|\*)")


@dataclass(frozen=True)
class ByteRange:
    """``Byte-Range: start-end/total`` (RFC 4975 section 7.1.1); ``None`` for ``*``."""

    start: int
    end: int | None
    total: int | None

    @classmethod
    def parse(cls, value: str) -> ByteRange:
        """Parse and check that the range lies inside the message; raises ValueError."""
        m = _BYTE_RANGE.fullmatch(value.strip())
        if not m:
            raise ValueError(f"malformed Byte-Range {value[:60]!r}")
        start = int(m[1])
        end = None if m[2] == "*" else int(m[2])
        total = None if m[3] == "*" else int(m[3])
        if start < 1:
            raise ValueError("Byte-Range starts before byte 1")
        if end is not None and end < start - 1:
            raise ValueError("Byte-Range ends before it starts")
        if total is not None:
            if start > total + 1 or (end is not None and end > total):
                raise ValueError("Byte-Range past the end of the message")
        return cls(start, end, total)

    def __str__(self) -> str:
        end = "*" if self.end is None else str(self.end)
        total = "*" if self.total is None else str(self.total)
        return f"{self.start}-{end}/{total}"


def new_transaction_id() -> str:
    """A transaction id with the 64 bits of randomness RFC 4975 section 7.1 asks for."""
    return secrets.token_hex(8)


def new_message_id() -> str:
    return secrets.token_hex(10)


def end_line(transaction_id: str, flag: str) -> bytes:
    return f"-------{transaction_id}{flag}\r\n".encode()


@dataclass
class Message:
    """One MSRP request or response chunk.

    ``headers`` keeps the fields in order with their names as received; look-ups are
    case-insensitive.  ``body`` is ``b""`` for a message without one; ``flag`` is the
    end-line's continuation flag.
    """

    transaction_id: str
    method: str = ""           # a request: SEND, REPORT, AUTH or an unknown method
    code: int = 0              # a response: its status code
    comment: str = ""          # a response's reason phrase
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    flag: str = FLAG_COMPLETE

    @property
    def is_request(self) -> bool:
        return bool(self.method)

    def get(self, name: str, default: str | None = None) -> str | None:
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for k, v in self.headers if k.lower() == lname]

    def set(self, name: str, value: str) -> None:
        """Replace the field ``name`` (at its place) or append it."""
        lname = name.lower()
        for i, (k, _) in enumerate(self.headers):
            if k.lower() == lname:
                self.headers[i] = (k, value)
                return
        self.headers.append((name, value))

    def remove(self, name: str) -> None:
        lname = name.lower()
        self.headers = [(k, v) for k, v in self.headers if k.lower() != lname]

    @property
    def to_path(self) -> list[MsrpUri]:
        return parse_path(self.get("To-Path") or "")

    @property
    def from_path(self) -> list[MsrpUri]:
        return parse_path(self.get("From-Path") or "")

    @property
    def byte_range(self) -> ByteRange | None:
        value = self.get("Byte-Range")
        return ByteRange.parse(value) if value is not None else None

    @property
    def message_id(self) -> str | None:
        return self.get("Message-ID")

    def report_wanted(self, kind: str) -> str:
        """``Success-Report`` (default ``no``) or ``Failure-Report`` (default ``yes``)."""
        default = "no" if kind == "Success-Report" else "yes"
        return (self.get(kind) or default).strip().lower()

    def head(self) -> bytes:
        """Start line and header fields, with the line ending the head: a blank line when a
        body follows (RFC 4975 section 9: ``CRLF CRLF body CRLF end-line``)."""
        if self.method:
            start = f"MSRP {self.transaction_id} {self.method}\r\n"
        else:
            comment = f" {self.comment}" if self.comment else ""
            start = f"MSRP {self.transaction_id} {self.code:03d}{comment}\r\n"
        lines = [start] + [f"{k}: {v}\r\n" for k, v in self.headers]
        if self.body:
            lines.append("\r\n")
        return "".join(lines).encode("utf-8")

    def encode(self) -> bytes:
        """The chunk's wire form."""
        body = self.body + b"\r\n" if self.body else b""
        return self.head() + body + end_line(self.transaction_id, self.flag)


def make_response(request: Message, code: int, comment: str | None = None,
                  extra: list[tuple[str, str]] | None = None) -> Message:
    """The transaction response to ``request`` (RFC 4975 section 7.2): To-Path is the
    first From-Path URI of the request (the previous hop), From-Path the receiver's own
    URI, the first of the request's To-Path."""
    headers = [("To-Path", (request.get("From-Path") or "").split()[0] if request.get("From-Path") else ""),
               ("From-Path", (request.get("To-Path") or "").split()[0] if request.get("To-Path") else "")]
    headers = [(k, v) for k, v in headers if v]
    headers.extend(extra or [])
    return Message(request.transaction_id, code=code,
                   comment=REASONS.get(code, "") if comment is None else comment, headers=headers)


def make_report(send: Message, code: int = 200, comment: str | None = None,
                byte_range: ByteRange | None = None, transaction_id: str | None = None,
                from_uri: str | None = None) -> Message:
    """A REPORT about the message of ``send`` (RFC 4975 section 7.1.2): back along the
    SEND's From-Path, with its Message-ID, the byte range reported on and ``Status: 000
    CODE REASON``.  ``from_uri`` is the reporter's URI: by default the last To-Path URI of
    the SEND (the end-point's own); a relay gives its own."""
    reason = REASONS.get(code, "") if comment is None else comment
    if byte_range is None:
        byte_range = send.byte_range or ByteRange(1, len(send.body), len(send.body))
    headers = [
        ("To-Path", send.get("From-Path") or ""),
        ("From-Path", from_uri or (send.get("To-Path") or "").split()[-1]),
        ("Message-ID", send.get("Message-ID") or ""),
        ("Byte-Range", str(byte_range)),
        ("Status", f"000 {code:03d} {reason}".rstrip()),
    ]
    return Message(transaction_id or new_transaction_id(), method="REPORT", headers=headers)
