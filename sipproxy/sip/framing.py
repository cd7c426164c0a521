"""Framing a TCP/TLS byte stream into SIP messages (RFC 3261 18.3, RFC 5626 keepalives).

Sans-I/O: feed the bytes a connection delivered, get whole messages back.  On a stream the
Content-Length decides where a message ends, so a missing one counts as 0, and a malformed
one, or two that disagree, cannot be framed: nothing later on that stream can be trusted, and
the connection must be closed.  A hard size limit means a hostile peer cannot make us buffer
without bound.  A double CRLF between messages is an RFC 5626 keepalive "ping" (answer it
with a single CRLF "pong"); a lone CRLF (a pong, or RFC 3261 7.5 leading noise) is skipped.
"""

from __future__ import annotations

import re

from sipproxy.sip.grammar import ParseError

__all__ = ["FramingError", "StreamFramer", "PING", "MAX_MESSAGE"]

#: Largest SIP message we accept, header block and body (UDP datagrams are smaller anyway).
MAX_MESSAGE = 65535
#: Item of :meth:`StreamFramer.feed` for an RFC 5626 keepalive ping.
PING = object()

_CL_RE = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE | re.MULTILINE)


class FramingError(ParseError):
    """The byte stream cannot be split into SIP messages; the connection must be closed."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(status, reason)


def content_length(head: bytes) -> int:
    """The Content-Length (or compact ``l``) of a header block; 0 when absent."""
    values = {v.strip() for v in _CL_RE.findall(head)}
    if not values:
        return 0
    if len(values) > 1:
        raise FramingError("Multiple Content-Length Values")
    value = values.pop()
    if not value.isdigit() or len(value) > 10:
        raise FramingError(f"Bad Content-Length {value[:20]!r}")
    return int(value)


class StreamFramer:
    """Split a stream into SIP messages; ``feed`` bytes, get a list of complete messages
    (``bytes``) and :data:`PING` items back.  Raises :class:`FramingError`."""

    __slots__ = ("buffer", "max_size")

    def __init__(self, max_size: int = MAX_MESSAGE) -> None:
        self.buffer = bytearray()
        self.max_size = max_size

    def feed(self, data: bytes) -> list[object]:
        self.buffer += data
        out: list[object] = []
        buf = self.buffer
        while buf:
            if buf.startswith(b"\r\n"):
                if buf.startswith(b"\r\n\r\n"):
                    out.append(PING)
                    del buf[:4]
                    continue
                if len(buf) < 4 and b"\r\n\r\n".startswith(bytes(buf)):
                    break  # maybe the start of a ping: wait for more
                del buf[:2]
                continue
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > self.max_size:
                    raise FramingError("Message Too Large", 413)
                break
            length = content_length(bytes(buf[:end]))
            total = end + 4 + length
            if total > self.max_size:
                raise FramingError(f"Message Too Large ({total} bytes, over {self.max_size})", 413)
            if len(buf) < total:
                break
            out.append(bytes(buf[:total]))
            del buf[:total]
        return out
