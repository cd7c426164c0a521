"""The byte streams a relay connection runs over: TCP/TLS sockets and WebSocket (RFC 7977).

A relay connection reads bytes and writes chunks piece by piece (head, body pieces,
end-line), because it forwards without holding a whole chunk.  Over TCP the pieces are just
bytes.  Over WebSocket each MSRP chunk must be one WebSocket message (RFC 7977 section 3),
so the pieces go out as fragments of one message that the end-line finishes.
"""

from __future__ import annotations

import socket
from typing import Protocol

__all__ = ["ByteStream", "SocketStream", "ClosedError"]


class ClosedError(OSError):
    """The peer closed the stream (or broke the framing it runs in)."""


class ByteStream(Protocol):
    def recv(self) -> bytes: ...
    def write(self, data: bytes, end: bool) -> None: ...
    def close(self) -> None: ...


class SocketStream:
    """MSRP straight over a (gevent) TCP or TLS socket."""

    def __init__(self, sock: socket.socket, read_size: int = 65536) -> None:
        self.sock = sock
        self.read_size = read_size

    def recv(self) -> bytes:
        return self.sock.recv(self.read_size)

    def write(self, data: bytes, end: bool) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
