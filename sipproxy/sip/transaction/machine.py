"""SIP transactions (RFC 3261 section 17, with the RFC 6026 "Accepted" states), sans-I/O.

The four state machines of RFC 3261 figures 5-8 are one table, `TABLE`:
``(machine, state, event) -> (new state, actions)``. A (machine, state, event) absent from
the table is absorbed: nothing happens (e.g. a 1xx arriving in Completed). RFC 6026 is
followed for 2xx to INVITE: the transactions stay in "Accepted" for 64*T1 so that INVITE
retransmissions are absorbed and 2xx retransmissions still reach the TU, instead of
terminating at once as RFC 3261 draws it.

Machines: ``ICT`` INVITE client (fig. 5), ``NICT`` non-INVITE client (fig. 6), ``IST``
INVITE server (fig. 7), ``NIST`` non-INVITE server (fig. 8).

Events a transaction consumes (the layer names them from what happens):
  ``start``                 client: the TU hands the request; server: the request arrived
  ``1xx`` ``2xx`` ``final`` client: a response arrived (``final`` is 300-699)
  ``request`` ``ack``       server: a retransmission of the request / an ACK arrived
  ``send_1xx`` ``send_2xx`` ``send_final``  server: the TU sends a response
  ``timer_A`` ... ``timer_M``  a timer fired;  ``transport_error``  sending failed

Nothing here does I/O or reads a clock. Every entry point returns a list of *actions* that the
I/O edge executes in order:
  `Send` (data, dest, message, transaction, deferrable)  -- send ``data`` (bytes) to ``dest``
      (``deferrable``: the automatic 100 Trying, see `Send`). ``dest`` is
      opaque to this module: for a client transaction what the TU gave ``send_request``, for
      a server transaction the ``source`` given to ``receive`` (the edge applies RFC 3261
      18.2.2 / RFC 3581 when it sends). ``message`` is None when a transaction that has
      settled (sent or received its final response) resends: it keeps only bytes.
  `StartTimer` (transaction, name, delay)  -- call ``layer.timer_fired(that action)`` after
      ``delay`` seconds. A timer restarted or cancelled meanwhile is ignored when it fires,
      so the edge may skip `CancelTimer` and let stale timers fire harmlessly.
  `CancelTimer` (transaction, name)  -- the timer is no longer needed (optimisation).
  `Deliver` (message, transaction, source)  -- hand a message to the TU: a new request (with
      its server transaction), a response (with its client transaction), or a message
      matching no transaction (``transaction`` None: an ACK for a 2xx, a stray 2xx
      retransmission, which a proxy forwards statelessly per RFC 3261 16.7/16.11). An ACK
      that matches an INVITE server transaction in Accepted (a UA that reused the INVITE's
      branch for its 2xx ACK) comes with that transaction: it is a 2xx ACK all the same.
  `Timeout` (transaction)  -- Timer B/F/H fired: the TU treats it as a 408.
  `TransportError` (transaction)  -- the edge reported a send failure (``transport_error``).
  `Terminated` (transaction)  -- the transaction is gone (the layer forgot it already).

Timers (seconds; `Timers` holds T1, T2, T4 and D, tests use small values): A=T1 doubling,
B=F=H=J=L=M=64*T1, D=32 s, E=G=T1 doubling up to T2, I=K=T4; D, I, J and K are 0 (immediate)
on reliable transports and A, E, G are not started there.

Matching (17.1.3, 17.2.3): responses by top-Via branch + CSeq method (client keys are
``(branch, method)``; `TransactionLayer.find_client` for an edge that strips its own Via
first); requests by branch + sent-by + method (ACK matches its INVITE) when the branch has
the magic cookie ``z9hG4bK`` and more, otherwise by the RFC 2543 fields (Request-URI, From
tag, Call-ID, CSeq number, top Via; the ACK's To tag is not compared).
`TransactionLayer.match_cancel` finds the INVITE server transaction a CANCEL cancels (9.2;
cancelling a non-INVITE has no effect, so only INVITE transactions are looked up).

Stateless answers (RFC 3261 8.2.7): a TU may answer a new request without keeping state --
what 8.2.7 and 26.1.5 ask for challenges, so that a flood of unauthenticated requests creates
no transactions.  `TransactionLayer.reply_stateless` drops the request's server transaction
(it has started no timer and sent nothing yet: the automatic 100 is deferred, see `Send`) and
sends the response once; a retransmitted request is answered anew, with the same To tag
(`stateless_tag`: derived from the request, 8.2.7), and the ACK for such an answer, which
matches no transaction, is absorbed by that tag's mark.

The TU's duties stay with the TU: Timer C and CANCEL of pending branches (16.6, 16.7), the
ACK and retransmissions of a 2xx (13.3.1.4), and answering ``Timeout`` with a 408.
"""

from __future__ import annotations

import logging
import secrets
import zlib
from collections.abc import Callable
from typing import Any

from sipproxy.sip.parser import Message, Request, Response, make_response
from sipproxy.sip.transaction.effects import (
    CancelTimer,
    Deliver,
    Send,
    StartTimer,
    Terminated,
    Timeout,
    Timers,
    TransportError,
)

__all__ = [
    "TABLE", "ICT", "NICT", "IST", "NIST", "TERMINATED", "Timers", "Transaction",
    "TransactionLayer", "Send", "StartTimer", "CancelTimer", "Deliver", "Timeout",
    "TransportError", "Terminated", "make_ack", "make_cancel", "MAGIC_COOKIE", "stateless_tag",
]

log = logging.getLogger("sipproxy.transaction")
#: the level check of `Transaction.fire`, bound once (it asks on every event)
_debug_on = log.isEnabledFor
DEBUG = logging.DEBUG

MAGIC_COOKIE = "z9hG4bK"
ICT, NICT, IST, NIST = "ICT", "NICT", "IST", "NIST"
TERMINATED = "Terminated"

_TERM_ON_ERROR = (TERMINATED, ("transport_error",))

#: how the To tags of our stateless answers begin: drawn once per server (workers fork after
#: the import, so they share it), so that the ACK for such an answer is known by its tag
STATELESS_MARK = "s" + secrets.token_hex(3) + "-"


def stateless_tag(request: Request) -> str:
    """The To tag of a stateless answer to ``request`` (RFC 3261 8.2.7: the same request
    gets the same tag, so a retransmission's answer is the same dialog's): the mark and a
    CRC of what identifies the request -- its top Via branch, Call-ID, From tag and CSeq."""
    via = request.vias[0]
    seed = f"{via.branch}|{request.call_id}|{request.from_.tag}|{request.cseq[0]}"
    return f"{STATELESS_MARK}{zlib.crc32(seed.encode()):08x}"

# fmt: off
#: (machine, state, event) -> (new state, actions). The whole of RFC 3261 17 (+ RFC 6026).
TABLE: dict[tuple[str, str, str], tuple[str, tuple[str, ...]]] = {
    # -- INVITE client transaction (17.1.1, figure 5) ---------------------------------------
    (ICT, "Calling", "start"):              ("Calling", ("send_request", "start_A", "start_B")),
    (ICT, "Calling", "timer_A"):            ("Calling", ("send_request", "double_A")),
    (ICT, "Calling", "timer_B"):            (TERMINATED, ("timeout",)),
    (ICT, "Calling", "transport_error"):    _TERM_ON_ERROR,
    (ICT, "Calling", "1xx"):                ("Proceeding", ("cancel_A", "cancel_B", "deliver")),
    (ICT, "Calling", "2xx"):                ("Accepted", ("cancel_A", "cancel_B", "deliver",
                                                          "start_M")),
    (ICT, "Calling", "final"):              ("Completed", ("cancel_A", "cancel_B", "deliver",
                                                           "send_ack", "start_D")),
    (ICT, "Proceeding", "1xx"):             ("Proceeding", ("deliver",)),
    (ICT, "Proceeding", "2xx"):             ("Accepted", ("deliver", "start_M")),
    (ICT, "Proceeding", "final"):           ("Completed", ("deliver", "send_ack", "start_D")),
    (ICT, "Proceeding", "transport_error"): _TERM_ON_ERROR,
    (ICT, "Completed", "final"):            ("Completed", ("resend_ack",)),
    (ICT, "Completed", "transport_error"):  _TERM_ON_ERROR,
    (ICT, "Completed", "timer_D"):          (TERMINATED, ()),
    (ICT, "Accepted", "2xx"):               ("Accepted", ("deliver",)),
    (ICT, "Accepted", "timer_M"):           (TERMINATED, ()),
    # -- non-INVITE client transaction (17.1.2, figure 6) -----------------------------------
    (NICT, "Trying", "start"):              ("Trying", ("send_request", "start_E", "start_F")),
    (NICT, "Trying", "timer_E"):            ("Trying", ("send_request", "double_E")),
    (NICT, "Trying", "timer_F"):            (TERMINATED, ("timeout",)),
    (NICT, "Trying", "transport_error"):    _TERM_ON_ERROR,
    (NICT, "Trying", "1xx"):                ("Proceeding", ("deliver",)),
    (NICT, "Trying", "2xx"):                ("Completed", ("cancel_E", "cancel_F", "deliver",
                                                           "start_K")),
    (NICT, "Trying", "final"):              ("Completed", ("cancel_E", "cancel_F", "deliver",
                                                           "start_K")),
    (NICT, "Proceeding", "timer_E"):        ("Proceeding", ("send_request", "T2_E")),
    (NICT, "Proceeding", "timer_F"):        (TERMINATED, ("timeout",)),
    (NICT, "Proceeding", "transport_error"): _TERM_ON_ERROR,
    (NICT, "Proceeding", "1xx"):            ("Proceeding", ("deliver",)),
    (NICT, "Proceeding", "2xx"):            ("Completed", ("cancel_E", "cancel_F", "deliver",
                                                           "start_K")),
    (NICT, "Proceeding", "final"):          ("Completed", ("cancel_E", "cancel_F", "deliver",
                                                           "start_K")),
    (NICT, "Completed", "timer_K"):         (TERMINATED, ()),
    # -- INVITE server transaction (17.2.1, figure 7; RFC 6026 Accepted) --------------------
    (IST, "Proceeding", "start"):           ("Proceeding", ("send_100", "deliver")),
    (IST, "Proceeding", "request"):         ("Proceeding", ("resend_response",)),
    (IST, "Proceeding", "send_1xx"):        ("Proceeding", ("send_response",)),
    (IST, "Proceeding", "send_2xx"):        ("Accepted", ("send_response", "start_L")),
    (IST, "Proceeding", "send_final"):      ("Completed", ("send_response", "start_G",
                                                           "start_H")),
    (IST, "Proceeding", "transport_error"): _TERM_ON_ERROR,
    (IST, "Completed", "request"):          ("Completed", ("resend_response",)),
    (IST, "Completed", "timer_G"):          ("Completed", ("resend_response", "double_G")),
    (IST, "Completed", "timer_H"):          (TERMINATED, ("timeout",)),
    (IST, "Completed", "transport_error"):  _TERM_ON_ERROR,
    (IST, "Completed", "ack"):              ("Confirmed", ("cancel_G", "cancel_H", "start_I")),
    (IST, "Confirmed", "timer_I"):          (TERMINATED, ()),
    (IST, "Accepted", "send_2xx"):          ("Accepted", ("send_response",)),
    (IST, "Accepted", "ack"):               ("Accepted", ("deliver",)),
    (IST, "Accepted", "timer_L"):           (TERMINATED, ()),
    # -- non-INVITE server transaction (17.2.2, figure 8) -----------------------------------
    (NIST, "Trying", "start"):              ("Trying", ("deliver",)),
    (NIST, "Trying", "send_1xx"):           ("Proceeding", ("send_response",)),
    (NIST, "Trying", "send_2xx"):           ("Completed", ("send_response", "start_J")),
    (NIST, "Trying", "send_final"):         ("Completed", ("send_response", "start_J")),
    (NIST, "Proceeding", "request"):        ("Proceeding", ("resend_response",)),
    (NIST, "Proceeding", "send_1xx"):       ("Proceeding", ("send_response",)),
    (NIST, "Proceeding", "send_2xx"):       ("Completed", ("send_response", "start_J")),
    (NIST, "Proceeding", "send_final"):     ("Completed", ("send_response", "start_J")),
    (NIST, "Proceeding", "transport_error"): _TERM_ON_ERROR,
    (NIST, "Completed", "request"):         ("Completed", ("resend_response",)),
    (NIST, "Completed", "transport_error"): _TERM_ON_ERROR,
    (NIST, "Completed", "timer_J"):         (TERMINATED, ()),
}
# fmt: on

INITIAL_STATE = {ICT: "Calling", NICT: "Trying", IST: "Proceeding", NIST: "Trying"}
#: states after the final response, in every machine: see `Transaction._settle`
_SETTLED = frozenset(("Completed", "Confirmed", "Accepted"))


# -- message helpers -------------------------------------------------------------------


def make_ack(request: Request, response: Response) -> Request:
    """The hop-by-hop ACK for a non-2xx final response to ``request`` (RFC 3261 17.1.1.3)."""
    h = request.headers
    headers: list[tuple[str, str]] = [("Via", h.get("via") or "")]
    headers.append(("Max-Forwards", "70"))
    for route in h.raw("route"):
        headers.append(("Route", route))
    headers.append(("From", h.get("from") or ""))
    headers.append(("To", response.headers.get("to") or h.get("to") or ""))
    headers.append(("Call-ID", h.get("call-id") or ""))
    headers.append(("CSeq", f"{request.cseq[0]} ACK"))
    return Request("ACK", request.uri.copy(), headers)


def make_cancel(request: Request) -> Request:
    """A CANCEL for ``request`` (RFC 3261 9.1): same Request-URI, Call-ID, From, To, CSeq
    number and top Via (so that it matches the INVITE's transaction downstream)."""
    h = request.headers
    headers: list[tuple[str, str]] = [("Via", h.get("via") or ""), ("Max-Forwards", "70")]
    for route in h.raw("route"):
        headers.append(("Route", route))
    headers.append(("From", h.get("from") or ""))
    headers.append(("To", h.get("to") or ""))
    headers.append(("Call-ID", h.get("call-id") or ""))
    headers.append(("CSeq", f"{request.cseq[0]} CANCEL"))
    return Request("CANCEL", request.uri.copy(), headers)


def server_key(request: Request, method: str | None = None, via: Any = None) -> tuple:
    """The 17.2.3 matching key of a request (``method`` overrides: ACK/CANCEL -> INVITE;
    ``via``: its top Via when the caller has it parsed already)."""
    if via is None:
        via = request.vias[0]
    if method is None:
        method = "INVITE" if request.method == "ACK" else request.method
    branch = via.params.get("branch")
    if branch and len(branch) > 7 and branch.startswith(MAGIC_COOKIE):
        port = via.port  # `Via.sent_by`, inline: this runs for every request
        return (branch, (via.host if port is None else f"{via.host}:{port}").lower(), method)
    # RFC 2543 fallback (To tag left out: our own responses add it)
    return (
        "2543", str(request.uri), request.from_.tag, request.call_id, request.cseq[0],
        str(via), method,
    )


def client_key(message: Message, branch: str | None = None) -> tuple:
    """The 17.1.3 matching key: top Via branch and CSeq method."""
    if branch is None:
        branch = message.vias[0].branch or ""
    return (branch, message.cseq[1])


# -- transactions ----------------------------------------------------------------------


class Transaction:
    """One transaction: its machine, state, the request, and what it must resend."""

    __slots__ = (
        "machine", "state", "key", "request", "reliable", "dest", "timers", "intervals",
        "request_data", "last_response", "last_response_data", "ack", "ack_data", "layer",
        "source", "user_data",
    )

    def __init__(
        self, layer: TransactionLayer, machine: str, key: tuple, request: Request,
        dest: Any, reliable: bool,
    ) -> None:
        self.layer = layer
        self.machine = machine
        self.state = INITIAL_STATE[machine]
        self.key = key
        self.request = request
        self.dest = dest
        self.source = dest
        self.reliable = reliable
        self.timers: dict[str, StartTimer] = {}
        self.intervals: dict[str, float] = {}
        self.request_data: bytes | None = None
        self.last_response: Response | None = None
        self.last_response_data: bytes | None = None
        self.ack: Request | None = None
        self.ack_data: bytes | None = None
        self.user_data: Any = None  # free for the TU (e.g. its proxy context)

    @property
    def is_client(self) -> bool:
        return self.machine in (ICT, NICT)

    @property
    def terminated(self) -> bool:
        return self.state == TERMINATED

    def fire(self, event: str, message: Message | None = None) -> list:
        """Run ``event`` through `TABLE`; return the actions."""
        row = _COMPILED.get((self.machine, self.state, event))
        if row is None:
            if _debug_on(DEBUG):
                log.debug("%s %s %s: absorbed", self.machine, self.state, event)
            return []
        new_state, actions, names, settles, terminates = row
        if _debug_on(DEBUG):
            log.debug("%s %s --%s--> %s %s", self.machine, self.state, event, new_state, names)
        self.state = new_state
        out: list = []
        for action in actions:
            action(self, out, message)
        if settles:
            if self.state == new_state:
                self._settle()
        elif terminates and self.state == TERMINATED:
            for tname, timer in self.timers.items():
                out.append(CancelTimer(self, tname, timer))
            self.timers.clear()
            self.layer._forget(self)
            out.append(Terminated(self))
        return out

    def _settle(self) -> None:
        """The final answer is out: from here on the transaction only absorbs or resends
        (Completed, Confirmed, Accepted -- up to 64*T1 = 32 s over UDP) and needs the bytes
        it resends, not the parsed messages.  Dropping them keeps a busy proxy's heap to
        the calls in progress: holding every transaction's request and response objects for
        32 s cost ~20 KB per call, and the cyclic collector's passes over them stalled a
        worker for up to a second at a few hundred calls/s."""
        self.request = None  # type: ignore[assignment]
        self.last_response = None
        self.ack = None

    # the events of the module docstring, by name
    def receive(self, message: Message) -> list:
        """A message from the network that matched this transaction."""
        if isinstance(message, Response):
            status = message.status
            event = "1xx" if status < 200 else "2xx" if status < 300 else "final"
        else:
            event = "ack" if message.method == "ACK" else "request"
        return self.fire(event, message)

    def send(self, response: Response) -> list:
        """The TU sends ``response`` through this server transaction."""
        status = response.status
        event = "send_1xx" if status < 200 else "send_2xx" if status < 300 else "send_final"
        return self.fire(event, response)

    def timer_fired(self, name: str) -> list:
        self.timers.pop(name, None)
        return self.fire("timer_" + name)

    def transport_error(self) -> list:
        return self.fire("transport_error")

    def __repr__(self) -> str:
        method = self.request.method if self.request is not None else "-"
        return f"<{self.machine} {self.state} {method} {self.key[0]}>"


def _start(name: str) -> Callable:
    def action(txn: Transaction, out: list, _msg: Message | None) -> None:
        delay = txn.layer.timers.initial(name, txn.reliable)
        if delay is None:
            return
        txn.intervals[name] = delay
        if delay == 0:
            out.extend(txn.fire("timer_" + name))
            return
        timer = StartTimer(txn, name, delay)
        previous = txn.timers.get(name)
        if previous is not None:  # restarted while pending: the old one is no longer needed
            out.append(CancelTimer(txn, name, previous))
        txn.timers[name] = timer
        out.append(timer)
    return action


def _restart(name: str, how: str) -> Callable:
    def action(txn: Transaction, out: list, _msg: Message | None) -> None:
        t = txn.layer.timers
        prev = txn.intervals.get(name, t.t1)
        delay = prev * 2 if how == "double" else t.t2
        if how == "double" and name != "A":
            delay = min(delay, t.t2)
        txn.intervals[name] = delay
        timer = StartTimer(txn, name, delay)
        previous = txn.timers.get(name)
        if previous is not None:  # restarted while pending: the old one is no longer needed
            out.append(CancelTimer(txn, name, previous))
        txn.timers[name] = timer
        out.append(timer)
    return action


def _cancel(name: str) -> Callable:
    def action(txn: Transaction, out: list, _msg: Message | None) -> None:
        timer = txn.timers.pop(name, None)
        if timer is not None:
            out.append(CancelTimer(txn, name, timer))
    return action


def _send_request(txn: Transaction, out: list, _msg: Message | None) -> None:
    if txn.request_data is None:
        txn.request_data = txn.request.to_bytes()
    out.append(Send(txn.request_data, txn.dest, txn.request, txn))


def _deliver(txn: Transaction, out: list, msg: Message | None) -> None:
    out.append(Deliver(msg if msg is not None else txn.request, txn, txn.source))


def _send_ack(txn: Transaction, out: list, msg: Message | None) -> None:
    txn.ack = ack = make_ack(txn.request, msg)  # type: ignore[arg-type]
    txn.ack_data = ack.to_bytes()
    out.append(Send(txn.ack_data, txn.dest, ack, txn))


def _resend_ack(txn: Transaction, out: list, _msg: Message | None) -> None:
    if txn.ack_data is not None:
        out.append(Send(txn.ack_data, txn.dest, txn.ack, txn))


def _send_response(txn: Transaction, out: list, msg: Message | None) -> None:
    txn.last_response = msg  # type: ignore[assignment]
    txn.last_response_data = msg.to_bytes()  # type: ignore[union-attr]
    out.append(Send(txn.last_response_data, txn.source, msg, txn))  # type: ignore[arg-type]


def _send_100(txn: Transaction, out: list, _msg: Message | None) -> None:
    # made only when it is sent: most INVITEs a proxy answers itself (challenges) need none
    out.append(Send(b"", txn.source, None, txn, True))


def _resend_response(txn: Transaction, out: list, _msg: Message | None) -> None:
    if txn.last_response_data is not None:
        out.append(Send(txn.last_response_data, txn.source, txn.last_response, txn))
    elif txn.machine == IST:  # a retransmitted INVITE whose TU is still at work: the 100 now
        _send_response(txn, out, make_response(txn.request, 100))


def _timeout(txn: Transaction, out: list, _msg: Message | None) -> None:
    out.append(Timeout(txn))


def _transport_error(txn: Transaction, out: list, _msg: Message | None) -> None:
    out.append(TransportError(txn))


_ACTIONS: dict[str, Callable[[Transaction, list, Message | None], None]] = {
    "send_request": _send_request,
    "deliver": _deliver,
    "send_ack": _send_ack,
    "resend_ack": _resend_ack,
    "send_response": _send_response,
    "send_100": _send_100,
    "resend_response": _resend_response,
    "timeout": _timeout,
    "transport_error": _transport_error,
    "double_A": _restart("A", "double"),
    "double_E": _restart("E", "double"),
    "double_G": _restart("G", "double"),
    "T2_E": _restart("E", "t2"),
}
for _t in "ABDEFGHIJKLM":
    _ACTIONS["start_" + _t] = _start(_t)
    _ACTIONS["cancel_" + _t] = _cancel(_t)
# every action named in the table exists
assert all(a in _ACTIONS for _row in TABLE.values() for a in _row[1])
#: `TABLE` with its actions' functions looked up once: (new state, functions, names,
#: new state settled, new state terminated) -- the last two so `fire` compares no strings
_COMPILED = {key: (state, tuple(_ACTIONS[n] for n in names), names, state in _SETTLED,
                   state == TERMINATED)
             for key, (state, names) in TABLE.items()}


class TransactionLayer:
    """All live transactions of one element; routes messages, timers and TU sends to them."""

    def __init__(self, timers: Timers | None = None) -> None:
        self.timers = timers or Timers()
        self.server: dict[tuple, Transaction] = {}
        self.client: dict[tuple, Transaction] = {}

    def __len__(self) -> int:
        return len(self.server) + len(self.client)

    def _forget(self, txn: Transaction) -> None:
        table = self.client if txn.is_client else self.server
        if table.get(txn.key) is txn:
            del table[txn.key]

    def receive(self, message: Message, source: Any = None, reliable: bool = False,
                via: Any = None) -> list:
        """A parsed message from the network (``source`` is where it came from; ``via``
        its top Via if already parsed)."""
        if isinstance(message, Response):
            txn = self.client.get(client_key(message))
            if txn is None:
                return [Deliver(message, None, source)]
            return txn.receive(message)
        req: Request = message  # type: ignore[assignment]
        key = server_key(req, None, via)
        txn = self.server.get(key)
        if txn is not None:
            return txn.receive(req)
        if req.method == "ACK":
            to_tag = req.to.tag
            if to_tag is not None and to_tag.startswith(STATELESS_MARK):
                log.debug("ACK for a stateless answer (To tag %s) absorbed", to_tag)
                return []
            return [Deliver(req, None, source)]
        machine = IST if req.method == "INVITE" else NIST
        txn = Transaction(self, machine, key, req, source, reliable)
        self.server[key] = txn
        return txn.fire("start", req)

    def send_request(self, request: Request, dest: Any, reliable: bool = False,
                     branch: str | None = None) -> tuple:
        """Start a client transaction for ``request`` (its top Via carries our branch:
        pass it as ``branch`` when known, to spare parsing it back).

        Returns ``(transaction, actions)``. An ACK is not a transaction: it is sent as is
        (``transaction`` None).
        """
        method = request.method
        if method == "ACK":
            return None, [Send(request.to_bytes(), dest, request, None)]
        machine = ICT if method == "INVITE" else NICT
        key = (branch, request.cseq[1]) if branch else client_key(request)
        txn = Transaction(self, machine, key, request, dest, reliable)
        self.client[txn.key] = txn
        return txn, txn.fire("start")

    def send_response(self, txn: Transaction, response: Response) -> list:
        """The TU answers through server transaction ``txn``."""
        return txn.send(response)

    def reply_stateless(self, txn: Transaction, response: Response) -> list:
        """Answer ``txn``'s request statelessly (RFC 3261 8.2.7) and forget the transaction.

        For a server transaction that has sent nothing yet (no timer is running, and its
        deferred 100 is then never sent: 8.2.7 allows no provisional response).  One that
        has sent something already keeps its state and sends ``response`` as usual."""
        if txn.is_client or txn.last_response_data is not None:
            return txn.send(response)
        txn.state = TERMINATED
        self._forget(txn)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s: answered %d statelessly", txn.machine, txn.key[0], response.status)
        return [Send(response.to_bytes(), txn.source, response, None)]

    def send_trying(self, txn: Transaction) -> list:
        """The deferred 100 Trying of INVITE server transaction ``txn`` (see `Send`), made
        now -- unless the transaction has sent a response (or the 100) already, or is gone."""
        if txn.last_response_data is not None or txn.state != "Proceeding" or txn.machine != IST:
            return []
        out: list = []
        _send_response(txn, out, make_response(txn.request, 100))
        return out

    def timer_fired(self, timer: StartTimer) -> list:
        """A `StartTimer` came due; ignored if restarted, cancelled or terminated since."""
        txn = timer.transaction
        if txn.timers.get(timer.name) is not timer:
            return []
        return txn.timer_fired(timer.name)

    def transport_error(self, txn: Transaction) -> list:
        return txn.transport_error()

    def find_client(self, branch: str, method: str) -> Transaction | None:
        """The client transaction of our ``branch`` for CSeq ``method`` (17.1.3), if live.

        For an edge that strips its own top Via before handing a response on."""
        return self.client.get((branch, method))

    def match_cancel(self, cancel: Request) -> Transaction | None:
        """The INVITE server transaction that ``cancel`` cancels (RFC 3261 9.2), if any."""
        return self.server.get(server_key(cancel, "INVITE"))
