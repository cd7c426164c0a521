"""The relay's I/O edge (gevent): listeners, connections, and forwarding chunk by chunk.

Each connection has one reader greenlet.  The reader parses what arrives and passes each
piece of a chunk straight to the connection it is routed to, while holding that
connection's write lock for the whole chunk (chunks of different senders must not mix on
one connection).  Writing blocks when the receiver is slow, and then the reader stops
reading: TCP's own window pushes back on the sender.  So the relay holds at most one read
buffer and the parser's look-ahead per connection, whatever is sent through it.

The decisions -- where a request goes, what AUTH answers, which REPORT is owed -- are made
by the sans-I/O modules (forwarding, auth, transactions); this module only moves bytes.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import gevent
import gevent.event
import gevent.socket
from gevent.lock import Semaphore
from gevent.server import StreamServer

from .acm import AcmSessions
from .auth import Authenticator
from .forwarding import Forward, Refuse, Reservations
from .message import FLAG_ABORTED, Message, end_line, make_response
from .parser import BodyData, End, Head, MSRPParseError, Parser
from .streams import ByteStream, ClosedError, SocketStream
from .transactions import Pending, RecentIds, TransactionTable, answers_ok, failure_report
from .uri import MsrpUri

__all__ = ["Listener", "RelayServer", "Connection"]

log = logging.getLogger("mediaproxy.msrp")


@dataclass(frozen=True)
class Listener:
    """One ``listen`` entry: ``kind`` is tls, tcp, ws or wss."""

    kind: str
    host: str
    port: int

    @property
    def secure(self) -> bool:
        return self.kind in ("tls", "wss")


@dataclass
class _Current:
    """The chunk being received on a connection and what is done with it."""

    request: Message
    has_body: bool
    target: Connection | None = None     # forwarding to it (its write lock held)
    forward: Forward | None = None
    refuse: tuple[int, str] | None = None
    failed: bool = False                 # the target broke off mid-chunk
    body_bytes: int = 0                  # of the chunk, passed on
    binding: bool = False                # refused only because the ACM's other side is not there


class Connection:
    """One MSRP connection (accepted or opened by the relay)."""

    def __init__(self, server: RelayServer, stream: ByteStream, peer: tuple[str, int], secure: bool,
                 label: str) -> None:
        self.server = server
        self.stream = stream
        self.peer = peer
        self.secure = secure
        self.label = label
        self.wlock = Semaphore()
        self.parser = Parser(server.max_head_bytes, server.max_headers)
        self.recent = RecentIds()
        self.closed = False
        self.current: _Current | None = None
        self.bytes_in = 0
        self.bytes_out = 0

    def __repr__(self) -> str:
        return f"<{self.label} {self.peer[0]}:{self.peer[1]}>"

    # -- writing (the caller holds wlock for pieces) ------------------------------------
    def write(self, data: bytes, end: bool) -> None:
        if self.closed:
            raise ClosedError("connection closed")
        try:
            self.stream.write(data, end)
        except OSError:
            self.close("write failed")
            raise
        self.bytes_out += len(data)

    def send_message(self, msg: Message) -> bool:
        """Write a whole chunk of the relay's own (a response, a REPORT)."""
        with self.wlock:
            try:
                self.write(msg.encode(), True)
                return True
            except OSError:
                return False

    # -- reading ---------------------------------------------------------------------
    def serve(self) -> None:
        try:
            while not self.closed:
                try:
                    data = self.stream.recv()
                except (TimeoutError, gevent.socket.timeout):
                    self.close("idle timeout")
                    break
                except OSError as exc:
                    self.close(f"read failed: {exc}")
                    break
                if not data:
                    self.close("closed by peer")
                    break
                self.bytes_in += len(data)
                try:
                    events = self.parser.feed(data)
                except MSRPParseError as exc:
                    self._parse_error(exc)
                    break
                for ev in events:
                    if isinstance(ev, Head):
                        self._head(ev)
                    elif isinstance(ev, BodyData):
                        self._body(ev.data)
                    else:
                        self._end(ev)
        finally:
            # (here, in the reader: only the reader writes the chunk it is forwarding)
            cur, self.current = self.current, None
            if cur is not None and cur.target is not None:
                self._abort_forward(cur)
            self.close("done")

    def _parse_error(self, exc: MSRPParseError) -> None:
        log.info("%r: %s; closing", self, exc.reason)
        cur, self.current = self.current, None
        if cur is not None and cur.target is not None:
            self._abort_forward(cur)
        if exc.transaction_id is not None and (cur is None or cur.request.is_request):
            req = cur.request if cur is not None else Message(exc.transaction_id, method="SEND")
            self.send_message(make_response(req, exc.code, exc.reason))
        self.close("malformed input")

    def _head(self, ev: Head) -> None:
        msg = ev.message
        cur = self.current = _Current(msg, ev.has_body)
        if not msg.is_request:
            self.server.on_response(self, msg)
            return
        if self.recent.seen(msg.transaction_id):
            cur.refuse = (400, "transaction id reused")
            return
        if msg.method == "AUTH":
            return
        if msg.method not in ("SEND", "REPORT"):
            cur.refuse = (501, f"{msg.method} not implemented")
            return
        route = self.server.route(self, msg)
        if isinstance(route, Refuse):
            log.info("%r: %s %s refused: %d %s", self, msg.method, msg.transaction_id, route.code, route.reason)
            cur.refuse = (route.code, route.reason)
            cur.binding = route.binding
            return
        target = route.connection if route.connection is not None else self.server.connect(route.next_hop)
        if target is None or target.closed:
            cur.refuse = (481, "the next hop is not reachable")
            return
        target.wlock.acquire()  # blocks while another sender's chunk goes to the target
        if target.closed:
            target.wlock.release()
            cur.refuse = (481, "the next hop went away")
            return
        cur.target, cur.forward = target, route
        head = route.message.head() + (b"\r\n" if ev.has_body else b"")
        try:
            target.write(head, False)
        except OSError:
            cur.failed = True

    def _body(self, data: bytes) -> None:
        cur = self.current
        if cur is None or cur.target is None or cur.failed:
            return  # a refused chunk, or one the target broke off: its body is dropped
        try:
            cur.target.write(data, False)
            cur.body_bytes += len(data)
        except OSError:
            cur.failed = True

    def _end(self, ev: End) -> None:
        cur, self.current = self.current, None
        assert cur is not None
        req = cur.request
        if not req.is_request:
            return
        if req.method == "AUTH":
            self.send_message(self.server.authenticator.handle(req, self, self.secure, self.label))
            return
        fr = req.report_wanted("Failure-Report")
        if cur.target is not None:
            target, fwd = cur.target, cur.forward
            assert fwd is not None
            tid = fwd.message.transaction_id
            if not cur.failed:
                # expected before the end-line goes: the answer may come while the write yields
                if req.method == "SEND" and fr == "yes":
                    self.server.transactions.add(target, tid, req, self, str(fwd.via))
                try:
                    target.write((b"\r\n" if cur.has_body else b"") + end_line(tid, ev.flag), True)
                except OSError:
                    cur.failed = True
            target.wlock.release()
            if cur.failed:
                self.server.transactions.table.pop((target, tid), None)
                cur.refuse = (481, "the next hop went away")
            else:
                self.server.count(req, cur, ev.flag)
                if answers_ok(req):
                    self.send_message(make_response(req, 200))
                return
        if cur.binding and not cur.has_body and req.method == "SEND":
            cur.refuse = (200, "OK")  # an empty SEND that only binds its connection to the ACM
        if cur.refuse is not None and req.method != "REPORT" and fr != "no":
            code, reason = cur.refuse
            self.send_message(make_response(req, code, reason))

    def _abort_forward(self, cur: _Current) -> None:
        """The sender went away mid-chunk: end the forwarded chunk with ``#`` (the message
        is given up) so the receiver's stream stays in step."""
        target, fwd = cur.target, cur.forward
        cur.target = None
        assert target is not None and fwd is not None
        if not cur.failed:
            try:
                tail = (b"\r\n" if cur.has_body else b"") + end_line(fwd.message.transaction_id, FLAG_ABORTED)
                target.write(tail, True)
            except OSError:
                pass
        target.wlock.release()

    def close(self, why: str) -> None:
        if self.closed:
            return
        self.closed = True
        log.debug("%r closed: %s (%d bytes in, %d out)", self, why, self.bytes_in, self.bytes_out)
        self.stream.close()  # (a chunk being forwarded from here is ended by the reader, on its way out)
        self.server.gone(self)


class RelayServer:
    """The relay: listeners, the connections, the reservations and open transactions."""

    def __init__(self, listeners: list[Listener], authenticator_factory: Callable[[Reservations], Authenticator], *,
                 tls_context: ssl.SSLContext | None,
                 client_context: ssl.SSLContext | None, idle_timeout: float = 300.0,
                 transaction_timeout: float = 30.0, max_connections: int = 1000,
                 max_connections_per_ip: int = 64, max_head_bytes: int = 16384, max_headers: int = 40,
                 allow_loopback_tcp: bool = False, acm: AcmSessions | None = None,
                 own_hosts: tuple[str, ...] = ()) -> None:
        self.listeners = listeners
        self.tls_context = tls_context
        self.client_context = client_context
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.max_connections_per_ip = max_connections_per_ip
        self.max_head_bytes = max_head_bytes
        self.max_headers = max_headers
        self.allow_loopback_tcp = allow_loopback_tcp
        self.reservations = Reservations({lst.port for lst in listeners},
                                         {lst.host.lower() for lst in listeners} | set(own_hosts))
        self.transactions = TransactionTable(transaction_timeout)
        self.authenticator: Authenticator = authenticator_factory(self.reservations)
        self.acm = acm
        self.connections: set[Connection] = set()
        self.per_ip: Counter[str] = Counter()
        self.outbound: dict[tuple[str, int, bool], Connection] = {}
        self.servers: list[StreamServer] = []
        self.handshaking = 0
        self._last_refusal_log = 0.0
        self.messages = 0
        self.bytes = 0
        self._stopped = gevent.event.Event()

    # -- listening -------------------------------------------------------------------
    def start(self) -> None:
        for lst in self.listeners:
            server = StreamServer((lst.host, lst.port), lambda s, a, lst=lst: self._accepted(s, a, lst))
            server.start()
            self.servers.append(server)
            log.info("MSRP relay listening on %s:%s:%d", lst.kind, lst.host, server.server_port)
        gevent.spawn(self._timer)

    def _secure(self, lst: Listener, peer: str) -> bool:
        """AUTH is allowed over TLS/WSS, and over plain TCP/WS only from loopback when the
        ``allow_loopback_tcp`` setting is on (tests)."""
        if lst.secure:
            return True
        return self.allow_loopback_tcp and ipaddress.ip_address(peer).is_loopback

    def _accepted(self, sock: gevent.socket.socket, addr: tuple[str, int], lst: Listener) -> None:
        ip = addr[0]
        if (len(self.connections) + self.handshaking >= self.max_connections
                or self.per_ip[ip] >= self.max_connections_per_ip):
            now = time.monotonic()
            if now - self._last_refusal_log > 10:  # a flood is one line every 10 s, not one per connection
                self._last_refusal_log = now
                log.warning("refusing connections from %s: too many connections (%d, %d from it)", ip,
                            len(self.connections) + self.handshaking, self.per_ip[ip])
            sock.close()
            return
        # counted from the accept on: a connection that never finishes its TLS or WebSocket
        # handshake holds its place until idle_timeout, like any other
        self.per_ip[ip] += 1
        self.handshaking += 1
        try:
            stream = self._handshake(sock, ip, lst)
        finally:
            self.handshaking -= 1
        if stream is None:
            self._forget_ip(ip)
            return
        conn = Connection(self, stream, addr[:2], self._secure(lst, ip), lst.kind)
        self.connections.add(conn)
        conn.serve()

    def _handshake(self, sock: gevent.socket.socket, ip: str, lst: Listener) -> ByteStream | None:
        """The connection's byte stream after its TLS and WebSocket handshakes (None: failed)."""
        sock.settimeout(self.idle_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # chunks are forwarded as they come
        if lst.secure:
            assert self.tls_context is not None
            try:  # (here, not in the listener: a failed handshake is one log line, not a traceback)
                sock = self.tls_context.wrap_socket(sock, server_side=True)
            except (OSError, ssl.SSLError) as exc:
                log.info("TLS handshake with %s failed: %s", ip, exc)
                sock.close()
                return None
        if lst.kind not in ("ws", "wss"):
            return SocketStream(sock)
        from .websocket import handshake

        try:
            return handshake(sock)
        except (OSError, ClosedError, ValueError) as exc:
            log.info("WebSocket handshake from %s failed: %s", ip, exc)
            sock.close()
            return None

    def _forget_ip(self, ip: str) -> None:
        self.per_ip[ip] -= 1
        if self.per_ip[ip] <= 0:
            del self.per_ip[ip]

    def connect(self, uri: MsrpUri | None) -> Connection | None:
        """The connection to a next hop, opened (TCP, or TLS for ``msrps``) when needed."""
        if uri is None:
            return None
        host, port = uri.authority()
        key = (host, port, uri.secure)
        conn = self.outbound.get(key)
        if conn is not None and not conn.closed:
            return conn
        try:
            sock = gevent.socket.create_connection((host, port), timeout=5)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if uri.secure:
                ctx = self.client_context or ssl.create_default_context()
                sock = ctx.wrap_socket(sock, server_hostname=host)
        except OSError as exc:
            log.info("cannot reach next hop %s: %s", uri, exc)
            return None
        sock.settimeout(self.idle_timeout)
        conn = Connection(self, SocketStream(sock), (host, port), uri.secure, "out")
        self.connections.add(conn)
        self.per_ip[host] += 1
        self.outbound[key] = conn
        gevent.spawn(conn.serve)
        return conn

    # -- events ----------------------------------------------------------------------
    def route(self, conn: Connection, head: Message) -> Forward | Refuse:
        """An ACM session's URI goes to the ACM, anything else to the relay's reservations."""
        if self.acm is not None and self.acm.owns(head.to_path[0]):
            return self.acm.route(conn, head)
        return self.reservations.route(conn, head)

    def on_response(self, conn: Connection, response: Message) -> None:
        """A next hop answered a request the relay passed on; a failure becomes a REPORT."""
        pending = self.transactions.answer(conn, response)
        if pending is None or response.code == 200:
            return
        self._report(pending, response.code, response.comment)

    def _report(self, pending: Pending, code: int, comment: str | None = None) -> None:
        report = failure_report(pending, code, comment)
        if report is not None and not pending.back.closed:
            log.info("failure REPORT %d for message %s to %r", code, pending.request.message_id, pending.back)
            pending.back.send_message(report)

    def count(self, request: Message, cur: _Current, flag: str) -> None:
        """A chunk passed on: counted for the relay and for the reservation it went through
        (the per-session counts logged when the reservation ends)."""
        whole = request.method == "SEND" and flag == "$"
        self.messages += whole
        self.bytes += cur.body_bytes
        via = cur.forward.via if cur.forward is not None else None
        res = self.reservations.by_session.get(via.session_id) if via is not None else None
        if res is not None:
            res.messages += whole
            res.bytes += cur.body_bytes

    def gone(self, conn: Connection) -> None:
        """A connection closed: its reservations end, and what was sent over it and not
        answered is reported failed to its senders (481: the session's leg is gone)."""
        self.connections.discard(conn)
        self._forget_ip(conn.peer[0])
        for key, c in list(self.outbound.items()):
            if c is conn:
                del self.outbound[key]
        if self.acm is not None:
            self.acm.drop_connection(conn)
        for res in self.reservations.drop_owner(conn):
            log.info("%s (%s) ended with its connection: %d message(s), %d byte(s) relayed",
                     res.uri, res.username, res.messages, res.bytes)
        for pending in self.transactions.drop(conn):
            gevent.spawn(self._report, pending, 481, "the receiving leg went away")

    def _timer(self) -> None:
        while not self._stopped.is_set():
            self._stopped.wait(1.0)
            for pending in self.transactions.expired():
                gevent.spawn(self._report, pending, 408)
            for res in self.reservations.purge():
                log.info("%s (%s) expired: %d message(s), %d byte(s) relayed", res.uri, res.username,
                         res.messages, res.bytes)
            for summary in self.acm.expire() if self.acm is not None else ():
                log.info("ACM session %s idle for %.0f s: ended", summary["call_id"], self.acm.idle_timeout)

    def serve_forever(self) -> None:
        self._stopped.wait()

    def stop(self) -> None:
        for server in self.servers:
            server.stop(timeout=1)
        for conn in list(self.connections):
            conn.close("relay stopping")
        self._stopped.set()
