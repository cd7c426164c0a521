"""The ACM's control protocol: how sipproxy reserves MSRP sessions (RFC 6135) -- JSON
objects, one a line, over TCP, in the style of the RTP relay's (mediaproxy/control.py).

Requests (``id`` is echoed back so a client may pipeline)::

    {"id": 1, "command": "offer", "call_id": "...", "from_tag": "...",
     "path": ["msrp://192.0.2.1:7000/s1;tcp"]}          # the caller's a=path
    -> {"id": 1, "ok": true, "path": ["msrp://ACM:PORT/...;tcp"]}   # for the offer to the callee

    {"id": 2, "command": "answer", "call_id": "...", "from_tag": "...",
     "path": ["msrps://relay.example:2855/r;tcp", "msrp://bob.invalid:9/s;tcp"]}
    -> {"id": 2, "ok": true, "path": ["msrp://ACM:PORT/...;tcp"]}   # for the answer to the caller

    {"id": 3, "command": "remove", "call_id": "...", "from_tag": "..."}
    -> {"id": 3, "ok": true, "summary": {"messages": 2, "bytes": 812, "duration": 31.2}}

    {"id": 4, "command": "ping"} -> {"id": 4, "ok": true, "sessions": 12}

Failures answer ``{"id": N, "ok": false, "error": "..."}`` and change nothing.  The first
half of this module is the protocol without I/O (:func:`handle_line`); the second serves it
with gevent.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from .acm import AcmSessions
from .uri import MsrpUri, URIError, parse_path

__all__ = ["ControlError", "handle_line", "serve_control", "MAX_LINE"]

log = logging.getLogger("mediaproxy.msrp.control")

MAX_LINE = 64 * 1024
MAX_CONNECTIONS = 64


class ControlError(ValueError):
    """A request the ACM cannot act on; the message goes back as ``error``."""


def _text(req: dict[str, Any], key: str) -> str:
    value = req.get(key, "")
    if not isinstance(value, str) or not value or len(value) > 255:
        raise ControlError(f"{key}: expected a non-empty string")
    return value


def _path(req: dict[str, Any]) -> list[MsrpUri]:
    value = req.get("path")
    if not isinstance(value, list) or not value or not all(isinstance(x, str) for x in value):
        raise ControlError("path: expected a list of MSRP URIs")
    try:
        return parse_path(" ".join(value))
    except URIError as exc:
        raise ControlError(f"path: {exc}") from None


def handle_line(acm: AcmSessions, line: bytes) -> dict[str, Any]:
    """The answer to one request line (never raises)."""
    rid: Any = None
    try:
        try:
            req = json.loads(line)
        except (ValueError, RecursionError):
            raise ControlError("not a JSON object") from None
        if not isinstance(req, dict):
            raise ControlError("not a JSON object")
        rid = req.get("id")
        command = req.get("command")
        if command == "ping":
            return {"id": rid, "ok": True, "sessions": len(acm.sessions)}
        call_id, from_tag = _text(req, "call_id"), _text(req, "from_tag")
        if command == "offer":
            uri = acm.offer(call_id, from_tag, _path(req))
            log.info("ACM session %s: caller path %s, callee gets %s", call_id, " ".join(req["path"]), uri)
            return {"id": rid, "ok": True, "path": [str(uri)]}
        if command == "answer":
            uri = acm.answer(call_id, from_tag, _path(req))
            if uri is None:
                raise ControlError("no such session")
            log.info("ACM session %s: callee path %s, caller gets %s", call_id, " ".join(req["path"]), uri)
            return {"id": rid, "ok": True, "path": [str(uri)]}
        if command == "remove":
            summary = acm.remove(call_id, from_tag, str(req.get("reason") or "removed")[:64])
            if summary is None:
                raise ControlError("no such session")
            log.info("ACM session %s removed: %d message(s), %d byte(s) in %.1f s", call_id,
                     summary["messages"], summary["bytes"], summary["duration"])
            return {"id": rid, "ok": True, "summary": summary}
        raise ControlError(f"unknown command {command!r}")
    except ControlError as exc:
        return {"id": rid, "ok": False, "error": str(exc)}


def serve_control(acm: AcmSessions, host: str, port: int) -> Any:
    """Serve the control protocol on ``host:port`` (TCP) with gevent; the started
    ``gevent.server.StreamServer``."""
    from gevent.server import StreamServer

    clients: set[Any] = set()

    def handle(sock: Any, addr: tuple[str, int]) -> None:
        if len(clients) >= MAX_CONNECTIONS:
            sock.close()
            return
        clients.add(sock)
        buf = b""
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        answer = handle_line(acm, line)
                        sock.sendall(json.dumps(answer).encode() + b"\n")
                if len(buf) > MAX_LINE:
                    sock.sendall(json.dumps({"id": None, "ok": False, "error": "line too long"}).encode() + b"\n")
                    return
        except OSError:
            return
        finally:
            clients.discard(sock)
            sock.close()

    server = StreamServer((host, port), handle)
    server.start()
    return server
