"""Sockets and processes: UDP and TCP on the ``[enumdns] listen`` address.

The parent binds one UDP and one TCP socket and forks ``[enumdns] workers`` processes that
all serve them (the kernel hands each datagram and connection to one waiting worker, so load
spreads evenly whatever the clients' ports).  Each worker has its own database connection,
store, change feed and packet cache: no state is shared, nothing to lock across processes.

Inside a worker the UDP loop runs in the main thread.  Its fast path is a packet cache: a
query's bytes after the ID map to the response's bytes after the ID, valid while the zone's
generation is unchanged; a hit costs a dict lookup and a ``sendto``.  Misses go through
:func:`enumdns.answer.respond` under the store's lock.  TCP connections (RFC 7766: several
queries per connection, idle timeout) get a thread each, up to a limit.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections import OrderedDict

import dns.rcode

from ngnpro.models.config import Config, parse_hostport
from ngnpro.models.database import open_database
from ngnpro.models.prefork import supervise

from .answer import Response, header_only, respond
from .store import Store, StoreError

log = logging.getLogger("enumdns.server")

TCP_IDLE_TIMEOUT = 10.0
TCP_MAX_CONNECTIONS = 128
#: Receive buffer per UDP query: queries are small, and asking the kernel for 64 KiB costs
#: an allocation of that size per packet (measured: ~2 us of a ~7 us round trip).  A
#: larger datagram arrives cut short and gets FORMERR.
UDP_QUERY_MAX = 4096


class PacketCache:
    """Query bytes (after the ID) -> (response bytes after the ID, zone, zone generation)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.entries: OrderedDict[bytes, tuple[bytes, object, int]] = OrderedDict()

    def put(self, key: bytes, tail: bytes, holder: object, gen: int) -> None:
        entries = self.entries
        entries[key] = (tail, holder, gen)
        if len(entries) > self.capacity:
            entries.popitem(last=False)


class Worker:
    """One serving process: a store, a packet cache and the socket loops."""

    def __init__(self, config: Config, udp: socket.socket, tcp: socket.socket, name: str = "worker") -> None:
        self.config = config
        self.udp = udp
        self.tcp = tcp
        self.name = name
        section = config["enumdns"]
        self.engine, factory = open_database(config.database_url, migrate=False)
        self.store = Store(self.engine, factory, section["enum_tlds"], section["nameservers"],
                           section["soa_email"], section["cache_size"])
        self.cache = PacketCache(section["cache_size"])
        self.poll_interval = config["database"]["poll_interval"] or 0.25
        self._tcp_slots = threading.BoundedSemaphore(TCP_MAX_CONNECTIONS)

    def run(self) -> None:
        started = time.monotonic()
        self.store.load()
        log.info("%s ready: %d zones, loaded in %.1fs", self.name, len(self.store.zones),
                 time.monotonic() - started)
        self.tcp.listen(128)  # listening only once data is loaded
        for target, name in ((self._poll_loop, "poll"), (self._tcp_loop, "tcp")):
            threading.Thread(target=target, name=name, daemon=True).start()
        self._udp_loop()

    # ----------------------------------------------------------------- answers
    def answer(self, data: bytes, tcp: bool) -> Response:
        """The slow path: build the answer under the store's lock."""
        store = self.store
        with store.lock:
            try:
                resp = respond(data, store, tcp)
            except StoreError as exc:
                log.warning("database unavailable: %s", exc)
                return Response(header_only(data, dns.rcode.SERVFAIL))
            except Exception:  # noqa: BLE001 - a bug must cost one answer, not the server
                log.exception("error answering a query")
                return Response(header_only(data, dns.rcode.SERVFAIL) if len(data) >= 12 else None)
            if resp.cacheable and resp.wire is not None and not tcp:  # TCP answers are never truncated
                holder = resp.zone if resp.zone is not None else store.zoneset
                self.cache.put(data[2:], resp.wire[2:], holder, holder.gen)
        return resp

    def _udp_loop(self) -> None:
        sock = self.udp
        recv, send = sock.recvfrom, sock.sendto
        get = self.cache.entries.get
        answer = self.answer
        while True:
            try:
                data, addr = recv(UDP_QUERY_MAX)
            except InterruptedError:
                continue
            except OSError as exc:
                log.warning("udp receive: %s", exc)
                continue
            entry = get(data[2:])
            if entry is not None and entry[1].gen == entry[2]:
                try:
                    send(data[:2] + entry[0], addr)
                except OSError:
                    pass
                continue
            wire = answer(data, False).wire
            if wire is not None:
                try:
                    send(wire, addr)
                except OSError as exc:
                    log.debug("udp send to %s: %s", addr, exc)

    def _tcp_loop(self) -> None:
        while True:
            try:
                conn, addr = self.tcp.accept()
            except OSError as exc:
                log.warning("tcp accept: %s", exc)
                time.sleep(0.1)
                continue
            if not self._tcp_slots.acquire(blocking=False):
                conn.close()  # too many connections: shed the newest
                continue
            threading.Thread(target=self._tcp_connection, args=(conn, addr), daemon=True).start()

    def _tcp_connection(self, conn: socket.socket, addr: object) -> None:
        """RFC 7766: length-prefixed messages, several per connection, closed when idle."""
        try:
            while True:
                # the whole next message must arrive within the idle timeout, so a client
                # trickling a byte at a time cannot hold a connection slot for ever
                deadline = time.monotonic() + TCP_IDLE_TIMEOUT
                head = _recv_exact(conn, 2, deadline)
                if head is None:
                    return
                (length,) = struct.unpack("!H", head)
                data = _recv_exact(conn, length, deadline) if length else b""
                if data is None:
                    return
                wire = self.answer(data, True).wire
                if wire is None:
                    return  # not even a header: nothing sensible to say on this stream
                conn.sendall(struct.pack("!H", len(wire)) + wire)
        except (OSError, TimeoutError):
            pass
        finally:
            conn.close()
            self._tcp_slots.release()

    def _poll_loop(self) -> None:
        failing = False
        while True:
            time.sleep(self.poll_interval)
            try:
                self.store.poll()
                if failing:
                    log.info("change feed readable again")
                failing = False
            except Exception as exc:  # noqa: BLE001 - keep serving what we have
                if not failing:
                    log.warning("change feed: %s", str(exc).splitlines()[0])
                failing = True


def _recv_exact(conn: socket.socket, n: int, deadline: float) -> bytes | None:
    buf = b""
    while len(buf) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        conn.settimeout(remaining)
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def bind_sockets(host: str, port: int) -> tuple[socket.socket, socket.socket]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    udp = socket.socket(family, socket.SOCK_DGRAM)
    try:
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    except OSError:
        pass
    udp.bind((host, port))
    tcp = socket.socket(family, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((host, port))
    return udp, tcp


def serve(config: Config) -> int:
    """Run the server until SIGTERM/SIGINT; returns the exit status."""
    host, port = parse_hostport(config["enumdns"]["listen"], "enumdns.listen")
    engine, _ = open_database(config.database_url)  # schema upgrade, once, before forking
    engine.dispose()
    try:
        udp, tcp = bind_sockets(host, port)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host, port, exc)
        return 1
    workers = config["enumdns"]["workers"]
    log.info("enumdns on udp+tcp %s:%d, %d worker%s", host, port, workers, "s" if workers > 1 else "")
    if workers == 1:
        try:
            Worker(config, udp, tcp).run()
        except KeyboardInterrupt:
            pass
        return 0
    return supervise(workers, lambda i: Worker(config, udp, tcp, f"worker {i}").run(), log)


__all__ = ["serve", "Worker", "PacketCache", "bind_sockets"]
