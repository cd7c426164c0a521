"""The UDP forwarding engine: relay ports, the epoll loop, timeouts.

One thread runs a level-triggered ``epoll`` loop over every relay socket (and, through
:meth:`Relay.add_reader`, the control connections), reading one datagram per readiness
event and sending it, unchanged, out of the partner port to the other party.  This keeps the
per-packet cost at two system calls and a few attribute updates: no greenlet switch, no
allocation besides the address tuple.  Level triggering means a socket with more queued
datagrams is simply reported again in the next ``poll``.

Symmetric RTP (RFC 4961): the first packet received on a port teaches where its party really
is (behind NAT that is not what the SDP said); the port is then locked to that source and
packets from anyone else are dropped (see :meth:`RelayPort.accept`).
"""

from __future__ import annotations

import errno
import logging
import resource
import select
import socket
import time
from collections.abc import Callable
from typing import Any

from .session import ControlError, PortPool, RelayPort, Session, StreamOffer

if False:  # typing only
    from .kernel import KernelPath

log = logging.getLogger("mediaproxy.relay")

#: seconds between timeout scans
TICK = 0.5
#: a poll that found fewer ready sockets than this waits BATCH_WAIT seconds before the next
BATCH = 32
BATCH_WAIT = 0.0005
#: sessions fully checked for media timeout per tick at most
CHECKS_PER_TICK = 200
#: seconds between reads of the kernel path's counters
KERNEL_POLL = 2.0
#: seconds a newly locked port pair waits for others to join its batch before it is handed to
#: the kernel (one nft run per batch; the batch is installed off the forwarding thread)
KERNEL_BATCH = 0.02


def raise_fd_limit() -> int:
    """Thousands of streams need four descriptors each: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


class Relay:
    """Relay ports, sessions and the loop that forwards between them."""

    def __init__(self, ip: str, port_range: tuple[int, int], media_timeout: float,
                 on_end: Callable[[dict[str, Any]], None] | None = None,
                 notify: Callable[[Session, dict[str, Any]], None] | None = None,
                 advertised_ip: str = "", kernel: KernelPath | None = None) -> None:
        self.ip = ip
        self.kernel = kernel
        self.kernel_pending: list[RelayPort] | None = [] if kernel is not None else None
        self.kernel_polled = 0.0
        self.advertised_ip = advertised_ip or ip
        self.v6 = ":" in ip
        self.family = socket.AF_INET6 if self.v6 else socket.AF_INET
        self.pool = PortPool(*port_range)
        self.media_timeout = float(media_timeout)
        self.on_end = on_end or (lambda summary: None)
        self.notify = notify or (lambda session, event: None)
        self.ep = select.epoll()
        self.ports: dict[int, RelayPort] = {}
        self.readers: dict[int, Callable[[int, int], None]] = {}
        self.sessions: dict[str, Session] = {}
        self.running = False
        self.tick_soon = False  # run the tick at the next loop turn (a session to look at again)
        raise_fd_limit()
        if kernel is not None:  # the kernel path's worker wakes the loop when nft has answered
            self.add_reader(kernel.wake_fd, kernel.finish)

    # -- ports ---------------------------------------------------------------------------
    def _bind(self, port: int) -> RelayPort:
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            sock.bind((self.ip, port))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        rp = RelayPort(port)
        rp.sock = sock
        rp.fd = sock.fileno()
        rp.recv = sock.recvfrom_into
        rp.send = sock.sendto
        return rp

    def allocate(self) -> tuple[RelayPort, RelayPort]:
        """An even/odd RTP/RTCP pair; ports some other program holds are skipped."""
        for _ in range(self.pool.capacity):
            even = self.pool.take()
            try:
                rtp = self._bind(even)
            except OSError:
                self.pool.give(even)
                continue
            try:
                rtcp = self._bind(even + 1)
            except OSError:
                rtp.sock.close()
                self.pool.give(even)
                continue
            for p in (rtp, rtcp):
                self.ports[p.fd] = p
                self.ep.register(p.fd, select.EPOLLIN)
            return rtp, rtcp
        raise ControlError("no free relay ports")

    def release(self, p: RelayPort) -> None:
        if p.sock is None:
            return
        self.ports.pop(p.fd, None)
        try:
            self.ep.unregister(p.fd)
        except (OSError, ValueError):
            pass
        p.sock.close()
        p.sock = p.recv = p.send = None
        if p.port % 2 == 0:
            self.pool.give(p.port)

    # -- control -------------------------------------------------------------------------
    def update(self, call_id: str, from_tag: str, to_tag: str, direction: str,
               offers: list[StreamOffer], owner: object = None) -> dict[str, Any]:
        session = self.sessions.get(call_id)
        created = session is None
        if session is None:
            if direction != "offer":
                raise ControlError(f"no session for call {call_id!r} to answer")
            session = Session(call_id, from_tag, owner, self.v6)
        needed = 0 if direction != "offer" else sum(1 for i, o in enumerate(offers)
                     if o.port and (i >= len(session.streams) or session.streams[i] is None
                                    or session.streams[i].media_type != o.media_type))
        if 2 * needed > len(self.pool.free):  # refuse before changing anything
            raise ControlError("no free relay ports")
        if owner is not None:
            session.owner = owner
        try:
            ports = session.update(direction, from_tag, to_tag, offers, self.allocate, self.release)
        except Exception:
            if created:
                session.end("failed", self.release)
            raise
        if created:
            self.sessions[call_id] = session
            log.info("session %s created (%d streams)", call_id, len(offers))
        else:
            log.debug("session %s updated by %s", call_id, direction)
        return {"ip": self.advertised_ip, "streams": ports}

    def remove(self, call_id: str, reason: str = "bye") -> dict[str, Any] | None:
        session = self.sessions.pop(call_id, None)
        if session is None:
            return None
        return self._end(session, reason)

    def remove_later(self, call_id: str, reason: str, reply: Callable[[dict[str, Any] | None], None]) -> None:
        """:meth:`remove`, answered through ``reply`` once the kernel's counters of the
        session's flows have been read, so that its summary (and the accounting record made
        from it) counts every packet the kernel forwarded, not only those up to the last
        2-second poll.  The read runs off the forwarding thread; without kernel flows this
        answers at once."""
        session = self.sessions.get(call_id)
        kernel = self.kernel
        ports = self._ports(session) if session is not None else []
        if session is None or kernel is None or not kernel.holds(ports):
            reply(self.remove(call_id, reason))
            return
        del self.sessions[call_id]  # gone for the control protocol; still forwarding until ended
        port_numbers = [p.port for p in ports]
        kernel.final_counts(port_numbers, time.monotonic(), then=lambda: kernel.uninstall(
            port_numbers, then=lambda: reply(self._end(session, reason))))

    @staticmethod
    def _ports(session: Session) -> list[RelayPort]:
        return [p for s in session.streams if s is not None for p in s.ports()]

    def _end(self, session: Session, reason: str) -> dict[str, Any]:
        if self.kernel is not None:  # media stops with the session, not at the next tick
            self.kernel.uninstall([p.port for p in self._ports(session)])
        session.end(reason, self.release)
        summary = session.summary(self.advertised_ip, reason)
        log.info("session %s ended (%s) after %.1fs", session.call_id, reason, summary["duration"])
        try:
            self.on_end(summary)
        except Exception:  # a broken store must not break the relay
            log.exception("cannot store the summary of %s", session.call_id)
        return summary

    def kernel_install(self) -> None:
        """Hand the newly locked port pairs to the kernel (both parties learned)."""
        pending, pairs, seen = self.kernel_pending, [], set()
        for p in pending:
            q = p.partner
            if (q is None or p.sock is None or q.sock is None or not p.learned or not q.learned
                    or p.port in seen or q.port in seen):
                continue
            seen.update((p.port, q.port))
            pairs.append((p, q))
        pending.clear()
        if pairs:
            self.kernel.install(pairs)

    def kernel_tick(self, now: float) -> None:
        """Take back stale flows (party moved, stream closed) and read the counters."""
        kernel = self.kernel
        stale = kernel.stale()
        if stale:
            kernel.uninstall(stale)
        if now - self.kernel_polled >= KERNEL_POLL:
            self.kernel_polled = now
            kernel.poll(now)

    def tick(self, now: float) -> None:
        """Report media timeouts; end sessions nobody removed after the report, or idle ones.

        Each session records when it could next time out, so a tick costs one comparison
        per session; the full check runs about once per media timeout per session.
        """
        timeout = self.media_timeout
        grace = max(timeout, 10.0)
        idle_limit = max(4 * timeout, 300.0)
        ending: list[tuple[Session, str]] = []
        budget = CHECKS_PER_TICK  # bound the pause in forwarding; the rest wait a tick
        for call_id, session in self.sessions.items():
            if session.next_check > now:
                continue
            budget -= 1
            if budget < 0:
                break
            if session.timeout_reported is not None:
                if now - session.timeout_reported > grace:
                    ending.append((session, "media timeout"))
                else:
                    session.next_check = session.timeout_reported + grace
                continue
            stream, soonest = session.due(now, timeout)
            if stream is not None and self._kernel_unsure(session, now):
                continue
            if stream is not None:
                session.timeout_reported = now
                session.next_check = now + grace
                log.info("session %s: no media on stream %d for %ss", call_id, stream.index, timeout)
                self.notify(session, {"event": "timeout", "call_id": call_id,
                                      "from_tag": session.caller_tag, "to_tag": session.callee_tag,
                                      "stream": stream.index, "reason": "media timeout"})
            elif session.idle(now) > idle_limit:
                ending.append((session, "idle"))
            else:
                session.next_check = min(soonest, now + timeout)
        for session, reason in ending:
            if self.sessions.pop(session.call_id, None) is session:
                self._end(session, reason)

    def _kernel_unsure(self, session: Session, now: float) -> bool:
        """Whether a silence may be the kernel's counters being old (read every 2 s): then
        this session's own counters are read now and it is looked at again as soon as they
        are in.  Without this a timeout came up to 2 s late, and a `media_timeout` of 1-2 s
        could end a call whose media the kernel was still forwarding."""
        kernel = self.kernel
        if kernel is None or session.kernel_read >= now - TICK:
            return False
        ports = [p.port for p in self._ports(session)]
        if not any(p in kernel.flows for p in ports):
            return False
        session.next_check = now + TICK  # not asked twice while the read runs

        def read() -> None:
            session.kernel_read = now
            session.next_check = 0.0
            self.tick_soon = True

        kernel.final_counts(ports, now, then=read)
        return True

    def stats(self) -> dict[str, Any]:
        return {"sessions": len(self.sessions), "ports": len(self.ports),
                "free_pairs": len(self.pool.free)}

    # -- loop ----------------------------------------------------------------------------
    def add_reader(self, fd: int, callback: Callable[[int, int], None]) -> None:
        self.readers[fd] = callback
        self.ep.register(fd, select.EPOLLIN)

    def remove_reader(self, fd: int) -> None:
        if self.readers.pop(fd, None) is not None:
            try:
                self.ep.unregister(fd)
            except (OSError, ValueError):
                pass

    def serve_forever(self) -> None:
        """Forward packets until :meth:`stop`.  The hot path is inlined on purpose."""
        self.running = True
        ports, readers, poll = self.ports, self.readers, self.ep.poll
        monotonic = time.monotonic
        sleep = time.sleep
        buf = bytearray(65536)
        mv = memoryview(buf)
        v6 = self.v6
        kernel, kpending = self.kernel, self.kernel_pending
        kernel_due = 0.0
        next_tick = monotonic() + TICK
        while self.running:
            try:
                events = poll(TICK)
            except InterruptedError:
                continue
            now = monotonic()
            for fd, _ev in events:
                p = ports.get(fd)
                if p is None:
                    cb = readers.get(fd)
                    if cb is not None:
                        cb(fd, _ev)
                    continue
                try:
                    n, addr = p.recv(buf)
                except OSError:  # EAGAIN, or an ICMP error from an earlier send
                    continue
                if v6:
                    addr = (addr[0], addr[1], 0, 0)
                if addr != p.learned:
                    if not p.accept(addr):
                        continue
                    if kpending is not None:  # newly locked: a candidate for the kernel path
                        if not kpending:
                            kernel_due = now + KERNEL_BATCH
                        kpending.append(p)
                p.packets += 1
                p.bytes += n
                p.last = now
                q = p.partner
                dst = q.learned or q.sdp_addr
                if dst is not None and q.send is not None:
                    try:
                        q.send(mv[:n], dst)
                    except OSError as exc:
                        if exc.errno not in (errno.EAGAIN, errno.ECONNREFUSED, errno.ENOBUFS):
                            log.debug("send to %s failed: %s", dst, exc)
            if kernel is not None:
                if kernel.done:
                    kernel.finish()
                if kpending and now >= kernel_due:
                    self.kernel_install()
            if now >= next_tick or self.tick_soon:
                self.tick_soon = False
                next_tick = now + TICK
                self.tick(now)
                if kernel is not None:
                    self.kernel_tick(now)
            if len(events) < BATCH:
                sleep(BATCH_WAIT)

    def stop(self) -> None:
        self.running = False

    def close(self) -> None:
        kernel = self.kernel
        if kernel is not None:
            kernel.drain()  # sessions waiting for their final counters end here
            kernel.poll(time.monotonic())  # one last read for all (no worker now: at once)
            self.kernel = None  # the table goes as a whole below, not flow by flow
            self.remove_reader(kernel.wake_fd)
        for call_id in list(self.sessions):
            self.remove(call_id, "shutdown")
        if kernel is not None:
            kernel.close()
        self.ep.close()
