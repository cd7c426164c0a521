"""Wiring of the proxy: transports <-> transaction layer <-> transaction user, timers in gevent.

The layers below are sans-I/O (``message``, ``transaction``) and the ones above decide
(``proxy``, ``registrar``); this module is the only place that does their I/O:

* bytes from :mod:`sipproxy.runtime.transport` are parsed; a malformed request is answered with the
  status the parser chose (RFC 4475), malformed responses and garbage are dropped;
* the top Via of a request gets ``received``/``rport`` (RFC 3261 18.2.1, RFC 3581) so the
  response finds its way back through a NAT;
* a response must carry our own Via on top (else it is dropped, 18.1.2); it is popped
  before the transaction layer sees it;
* the transaction layer's actions are executed: ``Send`` over the transports (responses by
  RFC 3261 18.2.2 / RFC 3581: over the request's connection, else to received:rport),
  ``StartTimer`` as gevent timers, ``Deliver``/``Timeout``/``TransportError`` to the
  transaction user (:class:`sipproxy.proxy.proxy.Proxy`).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

import gevent
from gevent import socket as gsocket

from sipproxy.runtime.lanes import TAKEOVER_HOOKS, Lane, TimerWheel
from sipproxy.runtime.overload import TICK, Overload
from sipproxy.runtime.steering import owner_of, worker_addresses
from sipproxy.runtime.transport import Transports, enable_timestamps, queue_age
from sipproxy.sip.addressing import (
    Inbound,
    Listener,
    Peer,
    is_ip,
    parse_listen,
    reply_address,
    target_of,
)
from sipproxy.sip.headers import Via
from sipproxy.sip.ids import MAGIC_COOKIE, random_hex
from sipproxy.sip.parser import ParseError, Request, Response, make_response, parse_message
from sipproxy.sip.transaction import (
    CancelTimer,
    Deliver,
    Send,
    StartTimer,
    Terminated,
    Timeout,
    Timers,
    Transaction,
    TransactionLayer,
    TransportError,
)
from sipproxy.sip.uri import URI

log = logging.getLogger("sipproxy.core")

__all__ = ["Core", "TransactionUser", "owner_of"]

#: timers that keep their exact RFC 3261 durations (retransmissions: T1 doubling); the
#: others are seconds long and go to the coarse timer wheel when at least WHEEL_MIN
PRECISE_TIMERS = frozenset("AEG")
WHEEL_MIN = 1.0
WHEEL_TICK = 0.05


class TransactionUser(Protocol):
    """What the core hands messages to (the proxy)."""

    def on_request(self, request: Request, txn: Transaction | None, inbound: Inbound) -> None: ...

    def on_response(self, response: Response, txn: Transaction | None, inbound: Inbound) -> None: ...

    def on_timeout(self, txn: Transaction) -> None: ...

    def on_transport_error(self, txn: Transaction) -> None: ...

    def on_terminated(self, txn: Transaction) -> None: ...


class Core:
    """One proxy process: its transports, its transactions, its timers."""

    def __init__(self, listen: list[str], *, tls_cert: str = "", tls_key: str = "",
                 reuse_port: bool = False, timers: Timers | None = None,
                 worker: int = 0, workers: int = 1, mailboxes: list | None = None,
                 worker_ports: int = 0) -> None:
        #: ``[sipproxy] worker_ports`` (see :func:`worker_addresses`): the address of this
        #: worker to name for each UDP listener and sibling port, and every worker's port
        self._own, self._worker_listeners = worker_addresses(
            [lst for lst in map(parse_listen, listen) if lst.transport == "udp"], worker, workers, worker_ports)
        self.transports = Transports(listen, self.on_inbound, tls_cert, tls_key, reuse_port,
                                     own_udp=sorted(set(self._own.values()), key=str))
        #: worker processes share the listening addresses (SO_REUSEPORT): the kernel picks a
        #: worker by the sender's address, which says nothing about the call.  Every UDP
        #: message is handled by the worker its Call-ID hashes to (``owner_of``); another
        #: worker hands it over a local datagram socket.  Streams stay with the worker that
        #: owns the connection.
        self.worker = worker
        self.workers = workers
        #: one loopback UDP socket per worker, opened by the parent before forking
        self._mailboxes = mailboxes or []
        self._mailbox_ports = [m.getsockname()[1] for m in self._mailboxes]
        self._mailbox: Any = None
        self._loop = gevent.get_hub().loop
        #: transaction timers seconds long, and the TU's own (Timer C), see PRECISE_TIMERS
        self.wheel = TimerWheel(self._wheel_fire, WHEEL_TICK)
        #: precise timers (libev watchers) pending: StartTimer -> watcher
        self._precise: dict[StartTimer, Any] = {}
        self._mailbox_lane: Lane | None = None
        #: the deferred 100 Trying of the INVITE whose TU is running (see `execute`)
        self._held_trying: Send | None = None
        self.layer = TransactionLayer(timers)
        self.tu: TransactionUser | None = None
        #: host strings and ``host:port`` that name this proxy (Via / Route / Request-URI checks)
        self.addresses: set[tuple[str, int]] = set()
        for lst in (*self.transports.listeners, *self._worker_listeners):
            self.addresses.add((lst.host.lower(), lst.port))
        self.received = 0
        self.dropped = 0
        self._is_me: dict[tuple[str, int | None], bool] = {}
        self._via_prefix: dict[Listener, str] = {}
        self._via_suffix: dict[Listener, str] = {}
        #: sheds new requests while this worker is behind (``[sipproxy] overload_delay``);
        #: None: off.  Fed by a libev timer from ``start``, see :mod:`sipproxy.runtime.overload`
        self.overload: Overload | None = None
        self._overload_timer: Any = None
        #: the DNS resolver for host names in URIs (sipproxy.runtime.dns; None: the system's)
        self.dns: Any = None
        #: PIKE flood control (see enable_pike); None: off
        self.pike: Any = None

    # -- flood control (PIKE) -------------------------------------------------------------

    def enable_pike(self, pike: Any) -> None:
        """Drop the requests of a flooding source as they arrive, before parsing them
        (``pike``: a :class:`sipproxy.auth.pike.Pike`, the decision; with several workers a
        :class:`sipproxy.auth.pikeshare.SharedPike`, counts and blocks shared by all)."""
        self.pike = pike
        self.transports.gate = self._pike_gate

    def _pike_gate(self, inbound: Inbound) -> bool:
        if inbound.data[:8] == b"SIP/2.0 ":  # responses are not counted
            return False
        verdict = self.pike.check(inbound.source.host, time.monotonic())
        if verdict == 0:
            return False
        self.dropped += 1
        if verdict == 1:
            log.warning("pike: %s sent more than %d requests in %g s: blocked for %g s, its requests dropped",
                        inbound.source.host, self.pike.requests, self.pike.window, self.pike.block)
        return True

    # -- life cycle -----------------------------------------------------------------------

    def bind(self) -> None:
        self.transports.bind()
        if self.workers > 1 and self._mailboxes:
            self._mailbox = self._mailboxes[self.worker]
            self.transports.prefilter = self._route_to_owner
            for n, box in enumerate(self._mailboxes):
                if n != self.worker:
                    box.close()  # we only send to their ports, from our own socket

    def start(self) -> None:
        TAKEOVER_HOOKS.append(self._send_held_trying)
        self.transports.start()
        self.wheel.start()
        if self._mailbox is not None:
            self._mailbox.setblocking(False)
            self._mailbox_lane = Lane(self._mailbox_reader(), self.on_inbound, "mailbox")
            self._mailbox_lane.start()
        if self.overload is not None:
            self._watch_overload(self.overload)

    def stop(self) -> None:
        if self._overload_timer is not None:
            self._overload_timer.close()
            self._overload_timer = None
            if self.overload.episodes:
                log.info("overload control: %s", self.overload.summary())
        if self._send_held_trying in TAKEOVER_HOOKS:
            TAKEOVER_HOOKS.remove(self._send_held_trying)
        self.transports.stop()
        self.wheel.stop()
        for watcher in self._precise.values():
            watcher.close()
        self._precise.clear()
        if self._mailbox_lane is not None:
            self._mailbox_lane.stop()
        if self._mailbox is not None:
            self._mailbox.close()

    def _watch_overload(self, control: Overload) -> None:
        """Every TICK: how long the oldest datagram waiting in each of our UDP queues (and
        the mailbox) has waited; the largest goes to ``control`` (why this signal: see
        sipproxy.runtime.overload)."""
        queues = [*self.transports.udp.values()]
        if self._mailbox is not None:
            queues.append(self._mailbox)
        queues = [sock for sock in queues if enable_timestamps(sock)]
        if not queues:
            log.warning("overload control off: no kernel receive time stamps on this system")
            return
        wall, sample = time.time, control.sample

        def tick() -> None:  # in the hub: must not block or raise
            now = wall()
            behind = 0.0
            for sock in queues:
                age = queue_age(sock, now)
                if age > behind:
                    behind = age
            sample(behind)

        timer = self._loop.timer(TICK, TICK, ref=False)
        timer.start(tick)
        self._overload_timer = timer

    def pending_timers(self) -> int:
        """Timers not yet fired nor cancelled (precise and on the wheel)."""
        return len(self._precise) + len(self.wheel)

    def call_later(self, delay: float, fn: Any, *args: Any) -> Any:
        """Call ``fn(*args)`` after about ``delay`` seconds (the coarse wheel: never early, at
        most a tick late); returns a handle with ``cancel()``.  For the TU's own timers."""
        return self.wheel.call_later(delay, fn, *args)

    def branch_suffix(self) -> str:
        """The random part of our branches, prefixed by this worker's number."""
        return f"{self.worker}.{random_hex(6)}"

    def owner_of(self, data: bytes) -> int:
        """The worker that handles a UDP message (:func:`owner_of`); this one when the
        message names none."""
        owner = owner_of(data, self.workers)
        return self.worker if owner is None else owner

    def _route_to_owner(self, inbound: Inbound) -> bool:
        """Transport prefilter (runs in the UDP receive loop, in arrival order): True when
        the datagram belongs to another worker's call and was handed to it."""
        # A REGISTER too: the kernel picks a worker by the sender's address, so an SBC or
        # a trunk registering many accounts from one address would load one worker only;
        # by Call-ID its registrations spread, and a retransmission meets its transaction
        owner = self.owner_of(inbound.data)
        if owner == self.worker or not self._handoff(owner, inbound):
            return False
        if log.isEnabledFor(logging.DEBUG):
            log.debug("datagram from %s handed to worker %d: %s", inbound.source, owner,
                      inbound.data[:inbound.data.find(b"\r")].decode("utf-8", "replace"))
        return True

    def _handoff(self, worker: int, inbound: Inbound) -> bool:
        """Pass a datagram to the worker that owns its call; False when there is no such
        worker to hand to (then this one handles it)."""
        if not 0 <= worker < len(self._mailbox_ports) or self._mailbox is None:
            return False
        src = inbound.source
        head = f"{src[1]}|{src[2]}|{inbound.listener}\n".encode()
        try:
            self._mailbox.sendto(head + inbound.data, ("127.0.0.1", self._mailbox_ports[worker]))
        except OSError as exc:  # BlockingIOError too: the owner is that far behind
            log.debug("cannot hand a message to worker %d: %s", worker, exc)
            return False
        return True

    def _mailbox_reader(self) -> Any:
        """The mailbox lane's source: the next datagram a sibling worker handed over."""
        listeners = {str(lst): lst for lst in (*self.transports.listeners, *self._worker_listeners)}
        ports = set(self._mailbox_ports)
        box = self._mailbox
        readable = self._loop.io(box.fileno(), 1)
        wait = gevent.get_hub().wait

        def next_handed() -> Inbound | None:
            try:
                data, addr = box.recvfrom(70000)
            except BlockingIOError:
                wait(readable)
                return None
            except OSError as exc:
                if exc.errno in (9, 88):  # EBADF, ENOTSOCK: closed
                    raise gevent.GreenletExit from None
                return None
            if addr[0] != "127.0.0.1" or addr[1] not in ports:
                return None  # only our sibling workers may hand us messages
            head, _, payload = data.partition(b"\n")
            host, _, rest = head.decode("ascii", "replace").partition("|")
            port, _, listener = rest.partition("|")
            lst = listeners.get(listener)
            if lst is None or not port.isdigit():
                return None
            return Inbound(payload, Peer("udp", host, int(port)), lst)

        return next_handed

    # -- who we are -----------------------------------------------------------------------

    def is_me(self, host: str | None, port: int | None, transport: str | None = None) -> bool:
        """True when ``host:port`` names one of our listeners (port None: the default).
        Remembered: every Via, Route and Request-URI is asked about, with few hosts."""
        if not host:
            return False
        key = (host, port)
        known = self._is_me.get(key)
        if known is None:
            if len(self._is_me) > 4096:
                self._is_me.clear()
            known = self._is_me[key] = self._lookup_me(host, port)
        return known

    def _lookup_me(self, host: str, port: int | None) -> bool:
        host = host.strip("[]").lower()
        for lst in (*self.transports.listeners, *self._worker_listeners):
            if lst.host.lower() != host:
                continue
            default = 5061 if lst.transport == "tls" else 5060
            if (port or default) == lst.port:
                return True
        return False

    def listener_for(self, transport: str, host: str | None = None) -> Listener | None:
        return self.transports.listener_for(transport, host)

    def via_for(self, lst: Listener, branch: str) -> str:
        """Our Via for a request sent from ``lst`` (the part before the branch made once).

        With worker ports, a UDP Via names this worker's own port and asks for no
        ``rport``: the request still leaves from the shared port (a NATed phone's pinhole
        is for that one), and the answer goes to the sent-by port (RFC 3261 18.2.2), which
        only this worker receives on."""
        prefix = self._via_prefix.get(lst)
        if prefix is None:
            own = self._own.get(lst)
            named = own if own is not None else lst
            host = f"[{lst.host}]" if ":" in lst.host else lst.host
            prefix = f"SIP/2.0/{lst.transport.upper()} {host}:{named.port};branch="
            self._via_prefix[lst] = prefix
            self._via_suffix[lst] = "" if own is not None else ";rport"
        return prefix + branch + self._via_suffix[lst]

    def record_route_listener(self, lst: Listener) -> Listener:
        """The address to put in our Record-Route for ``lst``: with worker ports this
        worker's own, so the dialog's later requests come to the worker that holds it."""
        return self._own.get(lst, lst)

    # -- receiving ------------------------------------------------------------------------

    def on_inbound(self, inbound: Inbound) -> None:
        self.received += 1
        try:
            msg = parse_message(inbound.data)
        except ParseError as exc:
            self.dropped += 1
            if exc.status and exc.request is not None and exc.request.method != "ACK":
                log.debug("bad request from %s: %s %s", inbound.source, exc.status, exc.reason)
                try:
                    resp = make_response(exc.request, exc.status, exc.reason)
                    self.transports.send(resp.to_bytes(), self._reply_peer(resp, inbound),
                                         inbound.connection, inbound.listener)
                except Exception:  # the request was too broken to answer
                    pass
            else:
                log.debug("dropped message from %s: %s", inbound.source, exc.reason)
            return
        if isinstance(msg, Request):
            self._stamp_via(msg, inbound)
            control = self.overload
            if control is not None and control.reject:  # overloaded: a new request may be shed
                refusal = control.refuse(msg, inbound.via, self.layer.server)
                if refusal is not None:
                    self.transports.send(refusal, self._reply_peer(None, inbound), inbound.connection,
                                         inbound.listener)
                    return
        else:
            top = msg.top_via  # parsed by the parse; only ours matters here
            branch = top.branch
            if not self.is_me(top.host, top.port) or not (branch or "").startswith(MAGIC_COOKIE):
                log.debug("response not for us (Via %s) dropped", top)
                self.dropped += 1
                return
            method = msg.cseq[1]  # before the Via goes: parsed views stay valid
            msg.headers.pop_first("via")
            txn = self.layer.find_client(branch, method)
            self.execute(txn.receive(msg) if txn is not None else [Deliver(msg, None, inbound)])
            return
        self.execute(self.layer.receive(msg, inbound, inbound.source.transport != "udp", inbound.via))
        # handled (the TU ran in line, or blocked and came back): the server transaction
        # keeps ``inbound`` for its resends, which need only the addresses
        inbound.data = b""
        inbound.via = None

    @staticmethod
    def _stamp_via(msg: Request, inbound: Inbound) -> None:
        """RFC 3261 18.2.1 received and RFC 3581 rport on the top Via (kept, stamped, as
        ``inbound.via``: the layers above need it again and must not parse it again)."""
        via = msg.vias[0]
        inbound.via = via
        src = inbound.source
        if via.rport is not None:  # asked for (True) or given: RFC 3581 fills it in
            params = via.params
            params["rport"] = str(src.port)
            params["received"] = src.host
            msg.headers.replace_first("via", str(via))
        elif via.host.strip("[]") != src.host:
            via.params["received"] = src.host
            msg.headers.replace_first("via", str(via))
        # every response to this request leaves by this Via: work the address out once
        # (responses carry the same top Via; parsing it per response cost ~10% of a call)
        inbound.reply_to = reply_address(via, src)

    # -- executing the transaction layer's actions -----------------------------------------

    def execute(self, actions: list) -> None:
        trying = None
        for action in actions:
            kind = type(action)
            if kind is Send:
                if action.deferrable:
                    # after the TU had its go at the request (see below), or as soon as the
                    # TU blocks (`_send_held_trying`, run when its lane is taken over)
                    trying = self._held_trying = action
                    continue
                if not self._send(action):
                    txn = action.transaction
                    if txn is not None and not txn.terminated:
                        self.execute(self.layer.transport_error(txn))
            elif kind is StartTimer:
                self._start_timer(action)
            elif kind is CancelTimer:
                timer = action.timer
                if timer is not None:
                    self._cancel_timer(timer)
            elif kind is Deliver:
                self._deliver(action)
            elif kind is Timeout:
                if self.tu is not None:
                    self.tu.on_timeout(action.transaction)
            elif kind is TransportError:
                if self.tu is not None:
                    self.tu.on_transport_error(action.transaction)
            elif kind is Terminated:
                if self.tu is not None:
                    self.tu.on_terminated(action.transaction)
        if trying is not None:
            # the TU handled the new INVITE in line: a 100 only if it has not answered -- a
            # challenged or refused INVITE needs none
            if self._held_trying is trying:
                self._held_trying = None
            self._send_trying(trying)

    def _send_trying(self, trying: Send) -> None:
        if not trying.deferrable:
            return  # sent already, when the TU blocked
        trying.deferrable = False
        self.execute(self.layer.send_trying(trying.transaction))

    def _send_held_trying(self) -> None:
        """A lane was taken over: the TU handling a new INVITE waits (on the database, DNS,
        the media relay), so the 100 it owes goes out now rather than when it is done
        (RFC 3261 16.2: a proxy that will not answer within 200 ms sends a 100), and the
        caller's Timer A stops resending the INVITE."""
        held = self._held_trying
        if held is not None:
            self._held_trying = None
            self._send_trying(held)

    def _start_timer(self, timer: StartTimer) -> None:
        """Retransmission timers (and any short one) as precise libev timers; the long
        ones, most of them cancelled or ending a transaction long over, on the wheel."""
        if timer.delay >= WHEEL_MIN and timer.name not in PRECISE_TIMERS:
            timer.edge = self.wheel.add(timer.delay, timer)
            return
        watcher = self._loop.timer(timer.delay)
        timer.edge = watcher
        self._precise[timer] = watcher
        watcher.start(self._timer_due, timer)

    def _cancel_timer(self, timer: StartTimer) -> None:
        edge = timer.edge
        if edge is None:
            return
        timer.edge = None
        if type(edge) is int:
            self.wheel.remove(edge, timer)
        else:
            edge.close()
            self._precise.pop(timer, None)

    def _wheel_fire(self, entry: Any) -> None:
        """A wheel entry came due (in the wheel's lane: in line, see sipproxy.runtime.lanes)."""
        if type(entry) is StartTimer:
            entry.edge = None
            self.execute(self.layer.timer_fired(entry))
        else:
            entry()

    def _timer_due(self, timer: StartTimer) -> None:
        """libev callback (runs in the hub: must not block): hand over to a greenlet."""
        watcher = self._precise.pop(timer, None)
        if watcher is not None:
            watcher.close()
        timer.edge = None
        gevent.spawn(self._timer, timer)

    def _timer(self, action: StartTimer) -> None:
        try:
            self.execute(self.layer.timer_fired(action))
        except Exception:
            log.exception("timer %s failed", action.name)

    def _deliver(self, action: Deliver) -> None:
        tu = self.tu
        msg = action.message
        if tu is None:
            if isinstance(msg, Request) and action.transaction is not None:
                self.respond(action.transaction, make_response(msg, 503))
            return
        if isinstance(msg, Request):
            tu.on_request(msg, action.transaction, action.source)
        else:
            tu.on_response(msg, action.transaction, action.source)

    def _send(self, action: Send) -> bool:
        dest = action.dest
        if isinstance(dest, Inbound):  # a response through a server transaction
            peer = dest.reply_to  # (worked out when the request came: `_stamp_via`)
            if peer is None:
                peer = self._reply_peer(action.message, dest)
            return self.transports.send(action.data, peer, dest.connection, dest.listener)
        return self.transports.send(action.data, dest)

    @staticmethod
    def _reply_peer(msg: Any, inbound: Inbound) -> Peer:
        """Where a response goes (RFC 3261 18.2.2, RFC 3581 4)."""
        if inbound.reply_to is not None:
            return inbound.reply_to
        src = inbound.source
        if src.transport != "udp":
            return src
        try:
            via: Via = msg.vias[0]
        except (ParseError, IndexError):
            return src
        return reply_address(via, src) or src

    # -- API for the transaction user ------------------------------------------------------

    def respond(self, txn: Transaction, response: Response) -> None:
        """Answer a request through its server transaction."""
        self.execute(self.layer.send_response(txn, response))

    def reply_stateless(self, txn: Transaction, response: Response) -> None:
        """Answer a new request without keeping its transaction (RFC 3261 8.2.7: challenges)."""
        self.execute(self.layer.reply_stateless(txn, response))

    def send_request(self, request: Request, dest: Peer, branch: str | None = None) -> Transaction | None:
        """Start a client transaction (the request carries our Via, of ``branch``, on top)."""
        txn, actions = self.layer.send_request(request, dest, dest.transport != "udp", branch)
        self.execute(actions)
        return txn

    def forward(self, message: Request | Response, dest: Peer) -> bool:
        """Send without a transaction (ACK for a 2xx, a stray 2xx)."""
        return self.transports.send(message.to_bytes(), dest)

    def resolve(self, uri: URI) -> Peer | None:
        """Where a request for ``uri`` goes: its host when an address, else the host's
        address from the resolver (gevent's: the hub keeps running while it waits).  RFC
        3263's NAPTR/SRV steps are the routing issue's."""
        target = target_of(uri)
        if target is None:
            return None
        transport, host, port = target
        if not is_ip(host):
            if self.dns is not None:  # the platform's resolver (its servers, its cache)
                found = self.dns.address(host)
                if not found:
                    return None
                host = found[0]
            else:
                try:
                    host = gsocket.gethostbyname(host)
                except OSError:
                    return None
        return Peer(transport, host, port)

    def connected(self, peer: Peer) -> bool:
        return peer in self.transports.connections

    def match_cancel(self, cancel: Request) -> Transaction | None:
        return self.layer.match_cancel(cancel)
