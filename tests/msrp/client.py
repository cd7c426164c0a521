"""An MSRP end-point for the tests, written from RFC 4975 and RFC 4976 (no packaged MSRP
peer exists).  Blocking sockets and one reader thread: it answers SEND chunks (``200``
unless Failure-Report says otherwise), sends the success REPORTs asked for, hashes what it
receives per Message-ID, and can AUTH to a relay with digest (MD5 or SHA-256)."""

from __future__ import annotations

import hashlib
import os
import queue
import secrets
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field

from mediaproxy.msrp.chunking import chunks
from mediaproxy.msrp.message import (
    Message,
    make_report,
    make_response,
    new_message_id,
    new_transaction_id,
)
from mediaproxy.msrp.parser import MSRPParseError, Parser, read_messages
from mediaproxy.msrp.uri import MsrpUri, parse_path
from ngnpro.models.digest import compute_response, parse_auth_params


@dataclass
class Received:
    """A message as it arrives, chunk by chunk, checked for gaps."""

    content_type: str = ""
    next_byte: int = 1
    total: int | None = None
    sha256: hashlib._Hash = field(default_factory=hashlib.sha256)
    body: bytearray = field(default_factory=bytearray)
    complete: bool = False
    aborted: bool = False
    chunks: int = 0


class MsrpClient:
    """One connection to a relay or peer.  ``uri`` is the client's own MSRP URI."""

    def __init__(self, host: str, port: int, *, tls: bool = False, cafile: str | None = None,
                 server_hostname: str | None = None, keep_bodies: bool = True,
                 sock: socket.socket | None = None) -> None:
        if sock is None:
            sock = socket.create_connection((host, port), timeout=10)
            if tls:
                ctx = ssl.create_default_context(cafile=cafile)
                sock = ctx.wrap_socket(sock, server_hostname=server_hostname or host)
        self.sock = sock
        self.sock.settimeout(None)
        try:  # small chunks and responses go out at once (no Nagle delay against delayed ACKs)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
        scheme = "msrps" if tls else "msrp"
        self.uri = MsrpUri(scheme, "client.invalid", 2855 + secrets.randbelow(1000), secrets.token_hex(6), "tcp")
        self.keep_bodies = keep_bodies
        #: cleared: the reader stops reading (a slow receiver), set again: it goes on
        self.reading = threading.Event()
        self.reading.set()
        self.sent_bytes = 0
        self.responses: dict[str, queue.Queue] = {}
        self.requests: queue.Queue[Message] = queue.Queue()
        self.reports: queue.Queue[Message] = queue.Queue()
        self.received: dict[str, Received] = {}
        self.done = threading.Condition()
        self.closed = threading.Event()
        self.error: Exception | None = None
        self.wlock = threading.Lock()
        self.use_path: list[MsrpUri] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    # -- I/O ---------------------------------------------------------------------------
    def send_raw(self, data: bytes) -> None:
        with self.wlock:
            self.sock.sendall(data)

    def _read(self) -> None:
        parser, pending = Parser(max_head_bytes=65536), {}
        try:
            while True:
                self.reading.wait()
                data = self.sock.recv(65536)
                if not data:
                    break
                for msg in read_messages(parser, data, pending):
                    self._dispatch(msg)
        except (OSError, MSRPParseError) as exc:
            self.error = exc
        finally:
            self.closed.set()
            with self.done:
                self.done.notify_all()

    def _dispatch(self, msg: Message) -> None:
        if not msg.is_request:
            self.responses.setdefault(msg.transaction_id, queue.Queue()).put(msg)
            return
        if msg.method == "REPORT":
            self.reports.put(msg)
            return
        if msg.method != "SEND":
            return
        if msg.report_wanted("Failure-Report") == "yes":
            self.send_raw(make_response(msg, 200).encode())
        mid = msg.message_id or ""
        rec = self.received.setdefault(mid, Received(msg.get("Content-Type") or ""))
        br = msg.byte_range
        if br is not None and br.start != rec.next_byte and msg.body:
            raise AssertionError(f"gap in {mid}: chunk at {br.start}, expected {rec.next_byte}")
        rec.sha256.update(msg.body)
        if self.keep_bodies:
            rec.body += msg.body
        rec.next_byte += len(msg.body)
        rec.chunks += 1
        if br is not None:
            rec.total = br.total
        if msg.flag == "$":
            rec.complete = True
            if msg.report_wanted("Success-Report") == "yes":
                self.send_raw(make_report(msg, 200, byte_range=None if br is None else
                                          type(br)(1, rec.next_byte - 1, rec.next_byte - 1)).encode())
        elif msg.flag == "#":
            rec.aborted = True
        self.requests.put(msg)
        with self.done:
            self.done.notify_all()

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # (close alone waits for the reader's recv)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    # -- transactions --------------------------------------------------------------------
    def response(self, tid: str, timeout: float = 10.0) -> Message:
        q = self.responses.setdefault(tid, queue.Queue())
        try:
            return q.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no response to {tid} (connection closed: {self.closed.is_set()})") from None

    def request(self, msg: Message, timeout: float = 10.0) -> Message:
        self.responses.setdefault(msg.transaction_id, queue.Queue())
        self.send_raw(msg.encode())
        return self.response(msg.transaction_id, timeout)

    def wait_message(self, mid: str, timeout: float = 20.0) -> Received:
        deadline = time.monotonic() + timeout
        with self.done:
            while True:
                rec = self.received.get(mid)
                if rec is not None and (rec.complete or rec.aborted):
                    return rec
                left = deadline - time.monotonic()
                if left <= 0 or self.closed.is_set():
                    raise TimeoutError(f"message {mid} not received")
                self.done.wait(min(left, 0.5))

    # -- RFC 4976 AUTH -------------------------------------------------------------------
    def auth(self, relay: MsrpUri, username: str, password: str, algorithm: str = "MD5",
             expires: int | None = None) -> Message:
        """AUTH to ``relay``; answers the first challenge for ``algorithm``.  Returns the
        final response; on 200 ``use_path`` holds the reserved path."""
        def auth_request(extra: list[tuple[str, str]]) -> Message:
            headers = [("To-Path", str(relay)), ("From-Path", str(self.uri))]
            if expires is not None:
                headers.append(("Expires", str(expires)))
            return Message(new_transaction_id(), method="AUTH", headers=headers + extra)

        first = self.request(auth_request([]))
        if first.code != 401:
            return first
        for value in first.get_all("WWW-Authenticate"):
            scheme, params = parse_auth_params(value) or ("", {})
            if params.get("algorithm", "MD5").upper() == algorithm:
                break
        else:
            raise AssertionError(f"no {algorithm} challenge in {first.headers}")
        realm, nonce = params["realm"], params["nonce"]
        ha1 = hashlib.new("md5" if algorithm == "MD5" else "sha256",
                          f"{username}:{realm}:{password}".encode()).hexdigest()
        cnonce, nc = os.urandom(8).hex(), "00000001"
        resp = compute_response(algorithm, ha1, nonce=nonce, method="AUTH", uri=str(relay), qop="auth",
                                nc=nc, cnonce=cnonce)
        cred = (f'Digest username="{username}", realm="{realm}", nonce="{nonce}", uri="{relay}", '
                f'response="{resp}", algorithm={algorithm}, qop=auth, nc={nc}, cnonce="{cnonce}"')
        final = self.request(auth_request([("Authorization", cred)]))
        if final.code == 200:
            self.use_path = parse_path(final.get("Use-Path") or "")
        return final

    # -- sending ---------------------------------------------------------------------------
    def path_headers(self, to_path: list[MsrpUri], **extra: str) -> list[tuple[str, str]]:
        headers = [("To-Path", " ".join(str(u) for u in to_path)), ("From-Path", str(self.uri))]
        headers += [(k.replace("_", "-"), v) for k, v in extra.items()]
        return headers

    def send(self, to_path: list[MsrpUri], body: bytes, content_type: str = "text/plain",
             chunk_size: int = 2048, wait: bool = True, window: int = 32, message_id: str | None = None,
             start: int = 1, total: int | None = None, **extra: str) -> tuple[str, list[Message]]:
        """Send ``body`` as chunks, at most ``window`` unanswered at a time; the Message-ID
        and the responses (empty when not ``wait``)."""
        mid = message_id or new_message_id()
        headers = self.path_headers(to_path, Message_ID=mid, Content_Type=content_type, **extra)
        out: list[str] = []
        responses: list[Message] = []
        for chunk in chunks(headers, body, chunk_size, start=start, total=total):
            self.responses.setdefault(chunk.transaction_id, queue.Queue())
            self.send_raw(chunk.encode())
            self.sent_bytes += len(chunk.body)
            out.append(chunk.transaction_id)
            if wait and len(out) - len(responses) >= window:
                responses.append(self.response(out[len(responses)], 30))
        if wait:
            responses += [self.response(t, 30) for t in out[len(responses):]]
        return mid, responses
