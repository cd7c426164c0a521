"""MSRP over WebSocket (RFC 7977) on the relay's ws:/wss: listeners, with wsproto (sans-I/O).

The client opens the WebSocket with the ``msrp`` sub-protocol (section 4.1); anything else
is refused with HTTP 400.  Each MSRP chunk travels in one WebSocket message (section 3): a
chunk the relay forwards piece by piece goes out as fragments of one message, finished by
the piece that carries the end-line.  What arrives is fed to the MSRP parser as a byte
stream, whatever the framing.
"""

from __future__ import annotations

import socket

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from .streams import ClosedError

__all__ = ["WebSocketStream", "handshake", "SUBPROTOCOL"]

SUBPROTOCOL = "msrp"
#: the largest handshake request accepted (the headers of an HTTP upgrade)
MAX_HANDSHAKE = 16384


class WebSocketStream:
    """The byte stream of an accepted MSRP WebSocket."""

    def __init__(self, sock: socket.socket, ws: WSConnection, read_size: int = 65536) -> None:
        self.sock = sock
        self.ws = ws
        self.read_size = read_size
        self._pending: list[bytes] = []

    def recv(self) -> bytes:
        """The next payload bytes; ``b""`` once the WebSocket is closed."""
        while not self._pending:
            data = self.sock.recv(self.read_size)
            if not data:
                return b""
            try:
                self.ws.receive_data(data)
                for ev in self.ws.events():
                    if isinstance(ev, BytesMessage):
                        self._pending.append(bytes(ev.data))
                    elif isinstance(ev, TextMessage):
                        self._pending.append(ev.data.encode("utf-8"))
                    elif isinstance(ev, Ping):
                        self.sock.sendall(self.ws.send(ev.response()))
                    elif isinstance(ev, CloseConnection):
                        try:
                            self.sock.sendall(self.ws.send(ev.response()))
                        except (OSError, LocalProtocolError):
                            pass
                        return b""
            except RemoteProtocolError as exc:
                raise ClosedError(f"WebSocket protocol error: {exc}") from None
        data = b"".join(self._pending)
        self._pending.clear()
        return data

    def write(self, data: bytes, end: bool) -> None:
        try:
            self.sock.sendall(self.ws.send(BytesMessage(data=data, message_finished=end)))
        except LocalProtocolError as exc:
            raise ClosedError(str(exc)) from None

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def handshake(sock: socket.socket) -> WebSocketStream:
    """Read the HTTP upgrade and accept it for ``msrp``; raises ValueError when refused."""
    ws = WSConnection(ConnectionType.SERVER)
    received = 0
    while True:
        data = sock.recv(4096)
        if not data:
            raise ClosedError("closed during the WebSocket handshake")
        received += len(data)
        if received > MAX_HANDSHAKE:
            raise ValueError("WebSocket handshake too large")
        try:
            ws.receive_data(data)
        except RemoteProtocolError as exc:
            raise ValueError(f"not a WebSocket upgrade: {exc}") from None
        for ev in ws.events():
            if isinstance(ev, Request):
                if SUBPROTOCOL not in ev.subprotocols:
                    sock.sendall(ws.send(RejectConnection(status_code=400)))
                    raise ValueError(f"sub-protocol {SUBPROTOCOL!r} not offered ({ev.subprotocols})")
                sock.sendall(ws.send(AcceptConnection(subprotocol=SUBPROTOCOL)))
                return WebSocketStream(sock, ws)
