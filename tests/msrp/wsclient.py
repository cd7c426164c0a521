"""A WebSocket client socket for the MSRP test client (RFC 7977), on wsproto: ``sendall``
sends one WebSocket message per call (one MSRP chunk), ``recv`` returns payload bytes."""

from __future__ import annotations

import socket
import ssl

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


class WebSocketClientSocket:
    def __init__(self, host: str, port: int, subprotocol: str = "msrp", tls: bool = False,
                 cafile: str | None = None) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        if tls:
            self.sock = ssl.create_default_context(cafile=cafile).wrap_socket(self.sock, server_hostname=host)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(self.ws.send(Request(host=f"{host}:{port}", target="/", subprotocols=[subprotocol])))
        self._pending: list[bytes] = []
        while True:
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError("closed during the handshake")
            self.ws.receive_data(data)
            for ev in self.ws.events():
                if isinstance(ev, AcceptConnection):
                    self.subprotocol = ev.subprotocol
                    return
                if isinstance(ev, RejectConnection):
                    raise ConnectionRefusedError(f"WebSocket refused: {ev.status_code}")

    def settimeout(self, t: float | None) -> None:
        self.sock.settimeout(t)

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(self.ws.send(BytesMessage(data=data)))

    def recv(self, n: int) -> bytes:
        while not self._pending:
            data = self.sock.recv(n)
            if not data:
                return b""
            self.ws.receive_data(data)
            for ev in self.ws.events():
                if isinstance(ev, BytesMessage):
                    self._pending.append(bytes(ev.data))
                elif isinstance(ev, TextMessage):
                    self._pending.append(ev.data.encode())
                elif isinstance(ev, Ping):
                    self.sock.sendall(self.ws.send(ev.response()))
                elif isinstance(ev, CloseConnection):
                    return b""
        data = b"".join(self._pending)
        self._pending.clear()
        return data

    def shutdown(self, how: int) -> None:
        self.sock.shutdown(how)

    def close(self) -> None:
        self.sock.close()
