"""SIP transports (RFC 3261 section 18) with gevent: UDP, TCP and TLS.

The transport layer moves bytes, nothing more: it knows where a message came from and how to
get bytes to an address, and leaves every SIP decision (rport/received, routing) to the
layers above.  Streams are framed by :class:`sipproxy.sip.framing.StreamFramer`; a
framing error closes the connection.

:class:`Transports` is the gevent edge: a UDP socket, a TCP or a TLS listener per
  ``[sipproxy] listen`` entry, and a connection table.  Connections accepted from a phone are
  kept under the phone's source address, so a request for a registered contact behind NAT
  (whose binding stores that source) goes back over the very connection the phone opened:
  the NAT would drop a new inbound one.
"""

from __future__ import annotations

import _socket
import errno
import logging
import socket as _stdsocket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import gevent
from gevent import socket, ssl
from gevent.server import StreamServer

from sipproxy.runtime.lanes import Lane
from sipproxy.sip.addressing import Inbound, Listener, Peer, parse_listen
from sipproxy.sip.framing import MAX_MESSAGE, PING, FramingError, StreamFramer

log = logging.getLogger("sipproxy.transport")

__all__ = ["Connection", "Transports", "enable_timestamps", "queue_age"]

#: A connection silent for this long (no message, no keepalive) is closed.
IDLE_TIMEOUT = 900.0
#: Most connections kept open at once; beyond it new ones are refused.
MAX_CONNECTIONS = 20000


#: Linux: the kernel stamps each datagram with its arrival time (CLOCK_REALTIME), handed
#: back as ancillary data of the same number
SO_TIMESTAMPNS = getattr(_stdsocket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@ll")
_PEEK = _stdsocket.MSG_PEEK | _stdsocket.MSG_DONTWAIT


def enable_timestamps(sock: _socket.socket) -> bool:
    """Ask the kernel to stamp the datagrams of ``sock`` as they arrive (for :func:`queue_age`);
    False where it cannot (not Linux)."""
    try:
        sock.setsockopt(_socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        return True
    except OSError:
        return False


def queue_age(sock: _socket.socket, now: float) -> float:
    """Seconds the datagram at the head of the receive queue of ``sock`` has waited there
    (its kernel arrival stamp, see :func:`enable_timestamps`, against ``now`` =
    ``time.time()``); 0 when nothing waits.  Peeks: the datagram stays for the reader."""
    try:
        _data, ancillary, _flags, _addr = sock.recvmsg(1, 64, _PEEK)
    except OSError:  # BlockingIOError: an empty queue
        return 0.0
    for level, kind, payload in ancillary:
        if level == _socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(payload)
            return max(0.0, now - sec - nsec * 1e-9)
    return 0.0


@dataclass(eq=False)
class Connection:
    """An open TCP or TLS connection, in the table under its remote address."""

    sock: object
    peer: Peer
    listener: Listener
    framer: StreamFramer = field(default_factory=StreamFramer)
    closed: bool = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)


Handler = Callable[[Inbound], None]


def _udp_socket(lst: Listener, reuse_port: bool) -> _socket.socket:
    """A bound non-blocking UDP socket for ``lst`` with a large receive buffer (bursts)."""
    family = _stdsocket.AF_INET6 if ":" in lst.host else _stdsocket.AF_INET
    sock = _socket.socket(family, _socket.SOCK_DGRAM)
    try:
        if reuse_port:
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEPORT, 1)
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVBUF, 4 << 20)
        sock.setblocking(False)
        sock.bind((lst.host, lst.port))
    except OSError:
        sock.close()
        raise
    return sock


class Transports:
    """Every listener of the configuration and the table of open connections."""

    def __init__(self, specs: list[str], handler: Handler, tls_cert: str = "", tls_key: str = "",
                 reuse_port: bool = False, own_udp: list[Listener] | None = None) -> None:
        self.listeners = [parse_listen(s) for s in specs]
        #: UDP addresses of this process alone (``[sipproxy] worker_ports``): bound without
        #: SO_REUSEPORT, received on like the listeners, never chosen to send requests from
        self.own_udp = own_udp or []
        self._own_sockets: dict[Listener, _socket.socket] = {}
        self.handler = handler
        #: called in the receive loop before a datagram gets its greenlet; True: consumed
        self.prefilter: Callable[[Inbound], bool] | None = None
        #: runs first for every message received from the network (not for those a sibling
        #: worker hands over: counted where they arrived): True drops it (PIKE, see Core)
        self.gate: Callable[[Inbound], bool] | None = None
        self.tls_cert = tls_cert
        self.tls_key = tls_key
        self.reuse_port = reuse_port
        #: plain non-blocking sockets (``_socket``, never monkey-patched): the receive lane
        #: waits on them itself, and a UDP sendto does not block
        self.udp: dict[Listener, _socket.socket] = {}
        self.streams: dict[Listener, StreamServer] = {}
        self.connections: dict[Peer, Connection] = {}
        self.lanes: list[Lane] = []
        self._server_ctx: ssl.SSLContext | None = None
        self._client_ctx: ssl.SSLContext | None = None
        #: (transport, IPv6?) -> the listener to send from: looked up per message
        self._out: dict[tuple[str, bool], Listener | None] = {}
        #: for UDP to a host -> the socket to send from
        self._udp_out: dict[bool, _socket.socket | None] = {}

    # -- set-up ---------------------------------------------------------------------------

    def bind(self) -> None:
        """Open every listening socket (before forking workers, so they share them)."""
        if any(lst.transport == "tls" for lst in self.listeners):
            if not self.tls_cert or not self.tls_key:
                raise ValueError("tls listener needs sipproxy.tls_cert and sipproxy.tls_key")
            # gevent.ssl.SSLContext itself: create_default_context() would hand back the
            # blocking stdlib class and stall the hub during handshakes
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.tls_cert, self.tls_key)
            self._server_ctx = ctx
        for lst in self.listeners:
            family = _stdsocket.AF_INET6 if ":" in lst.host else _stdsocket.AF_INET
            if lst.transport == "udp":
                self.udp[lst] = _udp_socket(lst, self.reuse_port)
            else:
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if self.reuse_port:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                sock.bind((lst.host, lst.port))
                sock.listen(1024)
                server = StreamServer(sock, lambda s, addr, lst=lst: self._accepted(s, addr, lst))
                self.streams[lst] = server
        for lst in self.own_udp:  # this process's alone: no SO_REUSEPORT
            self.udp[lst] = self._own_sockets[lst] = _udp_socket(lst, False)

    def start(self) -> None:
        """Start serving (bind first if not done)."""
        if not self.udp and not self.streams:
            self.bind()
        for lst, sock in self.udp.items():
            lane = Lane(self._udp_reader(sock, lst), self._on_datagram, f"udp {lst}")
            self.lanes.append(lane)
            lane.start()
        for server in self.streams.values():
            server.start()

    def stop(self) -> None:
        for server in self.streams.values():
            server.stop(timeout=0)
        for lane in self.lanes:
            lane.stop()
        self.lanes = []
        for conn in list(self.connections.values()):
            self._close(conn)
        for sock in self.udp.values():
            sock.close()

    # -- receiving ------------------------------------------------------------------------

    def _udp_reader(self, sock: _socket.socket, lst: Listener) -> Callable[[], Inbound | None]:
        """The receive lane's source: the next datagram of ``sock`` (waiting while none is
        queued), None for one to skip."""
        readable = gevent.get_hub().loop.io(sock.fileno(), 1)
        wait = gevent.get_hub().wait
        recvfrom = sock.recvfrom

        def next_datagram() -> Inbound | None:
            try:
                data, addr = recvfrom(MAX_MESSAGE + 1)
            except BlockingIOError:
                wait(readable)
                return None
            except OSError as exc:
                if exc.errno in (errno.EBADF, errno.ENOTSOCK):
                    raise gevent.GreenletExit from None  # closed: the lane ends
                return None  # ICMP errors surface here on Linux; ignore them
            if len(data) > MAX_MESSAGE or not data.strip(b"\r\n\0 "):
                return None  # oversize, or a keepalive / empty datagram
            return Inbound(data, Peer("udp", addr[0], addr[1]), lst)

        return next_datagram

    def _on_datagram(self, inbound: Inbound) -> None:
        """Handled in line in the receive lane (see :mod:`sipproxy.runtime.lanes`)."""
        if self.gate is not None and self.gate(inbound):
            return  # dropped at the edge (PIKE flood control), before any parsing
        if self.prefilter is not None and self.prefilter(inbound):
            return  # handed to the worker that owns the call
        self.handler(inbound)

    def _dispatch(self, inbound: Inbound) -> None:
        if self.gate is not None and self.gate(inbound):
            return
        try:
            self.handler(inbound)
        except Exception:  # a bug in a message must not take the transport down
            log.exception("error handling message from %s", inbound.source)

    def _accepted(self, sock: socket.socket, addr: tuple, lst: Listener) -> None:
        if len(self.connections) >= MAX_CONNECTIONS:
            sock.close()
            return
        if lst.transport == "tls":
            try:
                sock.settimeout(10)
                sock = self._server_ctx.wrap_socket(sock, server_side=True)
            except (OSError, ssl.SSLError) as exc:
                log.debug("TLS handshake with %s failed: %s", addr[0], exc)
                sock.close()
                return
        conn = Connection(sock, Peer(lst.transport, addr[0], addr[1]), lst)
        self._serve(conn)

    def _serve(self, conn: Connection) -> None:
        """Read a connection until it closes, feeding complete messages to the handler."""
        self.connections[conn.peer] = conn
        conn.sock.settimeout(IDLE_TIMEOUT)
        try:
            while not conn.closed:
                try:
                    data = conn.sock.recv(65536)
                except (OSError, ssl.SSLError):
                    break
                if not data:
                    break
                try:
                    items = conn.framer.feed(data)
                except FramingError as exc:
                    log.info("closing %s: %s", conn.peer, exc)
                    break
                for item in items:
                    if item is PING:
                        try:
                            conn.send(b"\r\n")
                        except OSError:
                            break
                    else:
                        self._dispatch(Inbound(item, conn.peer, conn.listener, conn))
        finally:
            self._close(conn)

    def _close(self, conn: Connection) -> None:
        conn.closed = True
        if self.connections.get(conn.peer) is conn:
            del self.connections[conn.peer]
        try:
            conn.sock.close()
        except OSError:
            pass

    # -- sending --------------------------------------------------------------------------

    def listener_for(self, transport: str, host: str | None = None) -> Listener | None:
        """The listener to send from (and to name in Via/Record-Route) for ``transport``."""
        key = (transport, host is not None and ":" in host)
        try:
            return self._out[key]
        except KeyError:
            pass
        candidates = [lst for lst in self.listeners if lst.transport == transport]
        found = next((lst for lst in candidates if (":" in lst.host) == key[1]),
                     candidates[0] if candidates else None)
        self._out[key] = found
        return found

    def send(self, data: bytes, dest: Peer, connection: Connection | None = None,
             listener: Listener | None = None) -> bool:
        """Send ``data`` to ``dest``; over ``connection`` (or the table's connection to
        ``dest``) for a stream.  False when it could not be sent (no listener, connect
        refused): the transaction layer then answers 503 or tries the next target.
        ``listener``: the one a request came in on, when this is its answer: a UDP answer to
        a request that came to a port of this process alone leaves from that port, which a
        NAT in front of the sender expects (RFC 3581 4)."""
        try:
            if dest[0] == "udp":
                host = dest[1]
                v6 = ":" in host
                sock = self._own_sockets.get(listener) if self._own_sockets and listener is not None else None
                if sock is None:
                    sock = self._udp_out.get(v6)
                if sock is None:
                    lst = self.listener_for("udp", host)
                    if lst is None or lst not in self.udp:
                        return False
                    sock = self._udp_out[v6] = self.udp[lst]
                try:
                    sock.sendto(data, (host, dest[2]))
                except BlockingIOError:  # send buffer full: wait for room, once
                    socket.wait_write(sock.fileno(), timeout=1.0)
                    sock.sendto(data, (host, dest[2]))
                return True
            conn = connection if connection is not None and not connection.closed else None
            if conn is None:
                conn = self.connections.get(dest)
            if conn is None:
                conn = self._connect(dest)
                if conn is None:
                    return False
            conn.send(data)
            return True
        except (OSError, ssl.SSLError) as exc:
            log.debug("cannot send to %s: %s", dest, exc)
            return False

    def _connect(self, dest: Peer) -> Connection | None:
        lst = self.listener_for(dest.transport, dest.host)
        if lst is None:
            return None
        family = _stdsocket.AF_INET6 if ":" in dest.host else _stdsocket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(5)
        try:
            sock.connect((dest.host, dest.port))
            if dest.transport == "tls":
                if self._client_ctx is None:
                    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE  # peers are authenticated by digest, not cert
                    self._client_ctx = ctx
                sock = self._client_ctx.wrap_socket(sock)
        except (OSError, ssl.SSLError) as exc:
            log.debug("cannot connect to %s: %s", dest, exc)
            sock.close()
            return None
        conn = Connection(sock, dest, lst)
        self.connections[dest] = conn
        gevent.spawn(self._serve, conn)
        return conn
