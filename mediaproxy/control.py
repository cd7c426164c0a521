"""The control protocol the proxy speaks to the relay: JSON objects, one a line, over TCP.

Requests (``id`` is echoed back so a client may pipeline)::

    {"id": 1, "command": "update", "call_id": "...", "from_tag": "...", "to_tag": "",
     "direction": "offer",                      # or "answer": which SDP of the exchange
     "streams": [{"type": "audio", "ip": "192.0.2.1", "port": 4000,
                  "rtcp_port": 4001, "rtcp_ip": "", "rtcp_mux": false,
                  "codec": "PCMU", "direction": "sendrecv"}]}
    -> {"id": 1, "ok": true, "ip": "RELAY", "streams": [{"port": 50000, "rtcp_port": 50001}]}

    {"id": 2, "command": "remove", "call_id": "...", "from_tag": "...", "reason": "bye"}
    -> {"id": 2, "ok": true, "summary": {... see docs/mediaproxy.md ...}}

    {"id": 3, "command": "ping"} -> {"id": 3, "ok": true, "sessions": 12, ...}

Failures answer ``{"id": N, "ok": false, "error": "..."}`` and change nothing.  The relay
also writes unsolicited events to the connection that last updated a session (any
connection if that one is gone)::

    {"event": "timeout", "call_id": "...", "from_tag": "...", "to_tag": "...",
     "stream": 0, "reason": "media timeout"}

The first half of this module is the protocol without I/O (:func:`parse_request`); the second
half serves it on non-blocking sockets inside the relay's own epoll loop.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import select
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .relay import Relay
from .session import DIRECTIONS, ControlError, Session, StreamOffer

log = logging.getLogger("mediaproxy.control")

MAX_LINE = 256 * 1024
MAX_STREAMS = 32
MAX_OUTPUT = 4 * 1024 * 1024  # a client that reads nothing is dropped past this
MAX_CONNECTIONS = 256  # proxies (and their workers) connected at once


@dataclass
class Request:
    id: Any
    command: str
    call_id: str = ""
    from_tag: str = ""
    to_tag: str = ""
    direction: str = ""
    reason: str = ""
    streams: list[StreamOffer] = field(default_factory=list)


def _text(msg: dict, key: str, limit: int, required: bool = False) -> str:
    v = msg.get(key, "")
    if v is None:
        v = ""
    if not isinstance(v, str):
        raise ControlError(f"{key}: expected a string")
    if len(v) > limit:
        raise ControlError(f"{key}: longer than {limit} characters")
    if required and not v:
        raise ControlError(f"{key}: missing")
    return v


def _port(d: dict, key: str, i: int, default: int = 0) -> int:
    v = d.get(key, default)
    if v is None:
        v = default
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 65535:
        raise ControlError(f"streams[{i}].{key}: expected a port 0-65535")
    return v


def _stream(d: Any, i: int) -> StreamOffer:
    if not isinstance(d, dict):
        raise ControlError(f"streams[{i}]: expected an object")
    port = _port(d, "port", i)
    ip = d.get("ip", "")
    if not isinstance(ip, str):
        raise ControlError(f"streams[{i}].ip: expected a string")
    if port:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise ControlError(f"streams[{i}].ip: {ip!r} is not an IP address") from None
    rtcp_ip = d.get("rtcp_ip", "") or ""
    if rtcp_ip:
        try:
            ipaddress.ip_address(rtcp_ip)
        except ValueError:
            raise ControlError(f"streams[{i}].rtcp_ip: {rtcp_ip!r} is not an IP address") from None
    media_type = d.get("type", "audio")
    if not isinstance(media_type, str) or not 0 < len(media_type) <= 32:
        raise ControlError(f"streams[{i}].type: expected a media type")
    codec = d.get("codec", "") or ""
    if not isinstance(codec, str) or len(codec) > 64:
        raise ControlError(f"streams[{i}].codec: expected a codec name")
    direction = d.get("direction", "sendrecv") or "sendrecv"
    if direction not in DIRECTIONS:
        raise ControlError(f"streams[{i}].direction: expected one of {', '.join(DIRECTIONS)}")
    mux = d.get("rtcp_mux", False)
    if not isinstance(mux, bool):
        raise ControlError(f"streams[{i}].rtcp_mux: expected true or false")
    return StreamOffer(media_type, ip, port, _port(d, "rtcp_port", i), rtcp_ip, codec, direction, mux)


def parse_request(line: bytes | str) -> Request:
    """Decode and validate one request line; :class:`ControlError` names what is wrong."""
    try:
        msg = json.loads(line)
    except RecursionError:  # deep nesting: json recurses per level
        raise ControlError("JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError):
        raise ControlError("not a JSON object") from None
    if not isinstance(msg, dict):
        raise ControlError("not a JSON object")
    rid = msg.get("id")
    command = msg.get("command")
    if command == "ping":
        return Request(rid, "ping")
    if command not in ("update", "remove"):
        raise _WithId(rid, f"unknown command {command!r} (update, remove, ping)")
    try:
        req = Request(rid, command,
                      call_id=_text(msg, "call_id", 255, required=True),
                      from_tag=_text(msg, "from_tag", 128),
                      to_tag=_text(msg, "to_tag", 128),
                      reason=_text(msg, "reason", 64))
        if command == "update":
            req.direction = _text(msg, "direction", 16)
            if req.direction not in ("offer", "answer"):
                raise ControlError("direction: expected offer or answer")
            if req.direction == "offer" and not req.from_tag:
                raise ControlError("from_tag: missing")
            if req.direction == "answer" and not req.to_tag:
                raise ControlError("to_tag: missing")
            streams = msg.get("streams")
            if not isinstance(streams, list) or not streams:
                raise ControlError("streams: expected a non-empty list")
            if len(streams) > MAX_STREAMS:
                raise ControlError(f"streams: more than {MAX_STREAMS}")
            req.streams = [_stream(d, i) for i, d in enumerate(streams)]
    except ControlError as exc:
        raise _WithId(rid, str(exc)) from None
    return req


class _WithId(ControlError):
    def __init__(self, rid: Any, message: str) -> None:
        super().__init__(message)
        self.id = rid


Reply = Callable[[dict[str, Any]], None]


def _removed(rid: Any, call_id: str, summary: dict[str, Any] | None) -> dict[str, Any]:
    if summary is None:
        return {"id": rid, "ok": False, "error": f"no session for call {call_id!r}"}
    return {"id": rid, "ok": True, "summary": summary}


def execute(relay: Relay, req: Request, owner: object = None, reply: Reply | None = None) -> dict[str, Any] | None:
    """Run one request against the relay and build the reply object.

    With ``reply``, a ``remove`` of a session the kernel forwards answers later through it
    (after the kernel's final counters are read) and this returns None; the client matches
    replies by ``id``, so later requests may be answered first."""
    if req.command == "ping":
        return {"id": req.id, "ok": True, **relay.stats()}
    if req.command == "update":
        result = relay.update(req.call_id, req.from_tag, req.to_tag, req.direction, req.streams, owner)
        return {"id": req.id, "ok": True, **result}
    if reply is not None and relay.kernel is not None:
        rid, call_id = req.id, req.call_id
        relay.remove_later(call_id, req.reason or "bye", lambda summary: reply(_removed(rid, call_id, summary)))
        return None
    return _removed(req.id, req.call_id, relay.remove(req.call_id, req.reason or "bye"))


def handle_line(relay: Relay, line: bytes, owner: object = None, reply: Reply | None = None) -> dict[str, Any] | None:
    """One request line in, one reply object out (or None: answered later through
    ``reply``, see :func:`execute`); never raises for bad input."""
    try:
        req = parse_request(line)
    except _WithId as exc:
        return {"id": exc.id, "ok": False, "error": str(exc)}
    except ControlError as exc:
        return {"id": None, "ok": False, "error": str(exc)}
    try:
        return execute(relay, req, owner, reply)
    except ControlError as exc:
        return {"id": req.id, "ok": False, "error": str(exc)}
    except Exception as exc:  # never let a bug in one request kill the relay
        log.exception("control request failed")
        return {"id": req.id, "ok": False, "error": f"internal error: {type(exc).__name__}"}


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


# -- I/O inside the relay loop ---------------------------------------------------------------


class Connection:
    """One proxy connection: buffered lines in, buffered replies and events out."""

    def __init__(self, server: ControlServer, sock: socket.socket, peer: Any) -> None:
        self.server = server
        self.sock = sock
        self.peer = peer
        self.fd = sock.fileno()
        self.inbuf = b""
        self.outbuf = b""
        self.closed = False

    def on_event(self, fd: int, ev: int) -> None:
        if ev & select.EPOLLOUT:
            self.flush()
        if ev & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
            self.read()

    def read(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        self.inbuf += data
        while not self.closed:
            line, sep, rest = self.inbuf.partition(b"\n")
            if not sep:
                if len(self.inbuf) > MAX_LINE:
                    self.send({"id": None, "ok": False, "error": f"line longer than {MAX_LINE} bytes"})
                    self.close()
                break
            self.inbuf = rest
            if line.strip():
                out = handle_line(self.server.relay, line, self, self.send)
                if out is not None:
                    self.send(out)

    def send(self, obj: dict[str, Any]) -> None:
        if self.closed:
            return
        self.outbuf += encode(obj)
        if len(self.outbuf) > MAX_OUTPUT:
            log.warning("control client %s reads nothing; dropping it", self.peer)
            self.close()
            return
        self.flush()

    def flush(self) -> None:
        try:
            while self.outbuf:
                n = self.sock.send(self.outbuf)
                self.outbuf = self.outbuf[n:]
        except BlockingIOError:
            pass
        except OSError:
            self.close()
            return
        try:
            self.server.relay.ep.modify(self.fd, select.EPOLLIN | (select.EPOLLOUT if self.outbuf else 0))
        except OSError:
            pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.server.relay.remove_reader(self.fd)
        self.server.connections.discard(self)
        self.sock.close()
        log.info("control client %s disconnected", self.peer)


class ControlServer:
    """Accepts proxy connections on ``host:port`` and routes relay events to them."""

    def __init__(self, relay: Relay, host: str, port: int) -> None:
        self.relay = relay
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(128)
        self.sock.setblocking(False)
        self.connections: set[Connection] = set()
        relay.add_reader(self.sock.fileno(), self._accept)
        relay.notify = self.notify

    def _accept(self, fd: int, ev: int) -> None:
        try:
            sock, peer = self.sock.accept()
        except OSError:
            return
        if len(self.connections) >= MAX_CONNECTIONS:
            log.warning("control client %s refused: %d connections open", peer, len(self.connections))
            sock.close()
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Connection(self, sock, peer)
        self.connections.add(conn)
        self.relay.add_reader(conn.fd, conn.on_event)
        log.info("control client %s connected", peer)

    def notify(self, session: Session, event: dict[str, Any]) -> None:
        """Send an event to the session's proxy connection, or to every connection."""
        owner = session.owner
        if isinstance(owner, Connection) and not owner.closed:
            owner.send(event)
            return
        for conn in list(self.connections):
            conn.send(event)

    def close(self) -> None:
        for conn in list(self.connections):
            conn.close()
        self.relay.remove_reader(self.sock.fileno())
        self.sock.close()
