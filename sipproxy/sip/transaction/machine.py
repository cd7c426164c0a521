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

Matching messages to transactions is :mod:`sipproxy.sip.transaction.layer`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import StrEnum
from typing import Any, cast

from sipproxy.sip.parser import Message, Request, Response, make_response
from sipproxy.sip.transaction.effects import (
    CancelTimer,
    Deliver,
    Send,
    StartTimer,
    Terminated,
    Timeout,
    TransportError,
)

__all__ = [
    "TABLE", "Machine", "State", "ICT", "NICT", "IST", "NIST", "TERMINATED", "Transaction",
    "make_ack", "make_cancel", "send_response",
]

log = logging.getLogger("sipproxy.transaction")
#: the level check of `Transaction.fire`, bound once (it asks on every event)
_debug_on = log.isEnabledFor
DEBUG = logging.DEBUG



class Machine(StrEnum):
    """The four machines of RFC 3261 17 (figures 5-8)."""

    ICT = "ICT"    # INVITE client
    NICT = "NICT"  # non-INVITE client
    IST = "IST"    # INVITE server
    NIST = "NIST"  # non-INVITE server


class State(StrEnum):
    """The states of the machines (RFC 3261 17; Accepted from RFC 6026)."""

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


ICT, NICT, IST, NIST = Machine.ICT, Machine.NICT, Machine.IST, Machine.NIST
CALLING, TRYING, PROCEEDING = State.CALLING, State.TRYING, State.PROCEEDING
COMPLETED, CONFIRMED, ACCEPTED, TERMINATED = (
    State.COMPLETED, State.CONFIRMED, State.ACCEPTED, State.TERMINATED)

_TERM_ON_ERROR = (TERMINATED, ("transport_error",))

# fmt: off
#: (machine, state, event) -> (new state, actions). The whole of RFC 3261 17 (+ RFC 6026).
TABLE: dict[tuple[Machine, State, str], tuple[State, tuple[str, ...]]] = {
    # -- INVITE client transaction (17.1.1, figure 5) ---------------------------------------
    (ICT, CALLING, "start"):              (CALLING, ("send_request", "start_A", "start_B")),
    (ICT, CALLING, "timer_A"):            (CALLING, ("send_request", "double_A")),
    (ICT, CALLING, "timer_B"):            (TERMINATED, ("timeout",)),
    (ICT, CALLING, "transport_error"):    _TERM_ON_ERROR,
    (ICT, CALLING, "1xx"):                (PROCEEDING, ("cancel_A", "cancel_B", "deliver")),
    (ICT, CALLING, "2xx"):                (ACCEPTED, ("cancel_A", "cancel_B", "deliver",
                                                          "start_M")),
    (ICT, CALLING, "final"):              (COMPLETED, ("cancel_A", "cancel_B", "deliver",
                                                           "send_ack", "start_D")),
    (ICT, PROCEEDING, "1xx"):             (PROCEEDING, ("deliver",)),
    (ICT, PROCEEDING, "2xx"):             (ACCEPTED, ("deliver", "start_M")),
    (ICT, PROCEEDING, "final"):           (COMPLETED, ("deliver", "send_ack", "start_D")),
    (ICT, PROCEEDING, "transport_error"): _TERM_ON_ERROR,
    (ICT, COMPLETED, "final"):            (COMPLETED, ("resend_ack",)),
    (ICT, COMPLETED, "transport_error"):  _TERM_ON_ERROR,
    (ICT, COMPLETED, "timer_D"):          (TERMINATED, ()),
    (ICT, ACCEPTED, "2xx"):               (ACCEPTED, ("deliver",)),
    (ICT, ACCEPTED, "timer_M"):           (TERMINATED, ()),
    # -- non-INVITE client transaction (17.1.2, figure 6) -----------------------------------
    (NICT, TRYING, "start"):              (TRYING, ("send_request", "start_E", "start_F")),
    (NICT, TRYING, "timer_E"):            (TRYING, ("send_request", "double_E")),
    (NICT, TRYING, "timer_F"):            (TERMINATED, ("timeout",)),
    (NICT, TRYING, "transport_error"):    _TERM_ON_ERROR,
    (NICT, TRYING, "1xx"):                (PROCEEDING, ("deliver",)),
    (NICT, TRYING, "2xx"):                (COMPLETED, ("cancel_E", "cancel_F", "deliver",
                                                           "start_K")),
    (NICT, TRYING, "final"):              (COMPLETED, ("cancel_E", "cancel_F", "deliver",
                                                           "start_K")),
    (NICT, PROCEEDING, "timer_E"):        (PROCEEDING, ("send_request", "T2_E")),
    (NICT, PROCEEDING, "timer_F"):        (TERMINATED, ("timeout",)),
    (NICT, PROCEEDING, "transport_error"): _TERM_ON_ERROR,
    (NICT, PROCEEDING, "1xx"):            (PROCEEDING, ("deliver",)),
    (NICT, PROCEEDING, "2xx"):            (COMPLETED, ("cancel_E", "cancel_F", "deliver",
                                                           "start_K")),
    (NICT, PROCEEDING, "final"):          (COMPLETED, ("cancel_E", "cancel_F", "deliver",
                                                           "start_K")),
    (NICT, COMPLETED, "timer_K"):         (TERMINATED, ()),
    # -- INVITE server transaction (17.2.1, figure 7; RFC 6026 Accepted) --------------------
    (IST, PROCEEDING, "start"):           (PROCEEDING, ("send_100", "deliver")),
    (IST, PROCEEDING, "request"):         (PROCEEDING, ("resend_response",)),
    (IST, PROCEEDING, "send_1xx"):        (PROCEEDING, ("send_response",)),
    (IST, PROCEEDING, "send_2xx"):        (ACCEPTED, ("send_response", "start_L")),
    (IST, PROCEEDING, "send_final"):      (COMPLETED, ("send_response", "start_G",
                                                           "start_H")),
    (IST, PROCEEDING, "transport_error"): _TERM_ON_ERROR,
    (IST, COMPLETED, "request"):          (COMPLETED, ("resend_response",)),
    (IST, COMPLETED, "timer_G"):          (COMPLETED, ("resend_response", "double_G")),
    (IST, COMPLETED, "timer_H"):          (TERMINATED, ("timeout",)),
    (IST, COMPLETED, "transport_error"):  _TERM_ON_ERROR,
    (IST, COMPLETED, "ack"):              (CONFIRMED, ("cancel_G", "cancel_H", "start_I")),
    (IST, CONFIRMED, "timer_I"):          (TERMINATED, ()),
    (IST, ACCEPTED, "send_2xx"):          (ACCEPTED, ("send_response",)),
    (IST, ACCEPTED, "ack"):               (ACCEPTED, ("deliver",)),
    (IST, ACCEPTED, "timer_L"):           (TERMINATED, ()),
    # -- non-INVITE server transaction (17.2.2, figure 8) -----------------------------------
    (NIST, TRYING, "start"):              (TRYING, ("deliver",)),
    (NIST, TRYING, "send_1xx"):           (PROCEEDING, ("send_response",)),
    (NIST, TRYING, "send_2xx"):           (COMPLETED, ("send_response", "start_J")),
    (NIST, TRYING, "send_final"):         (COMPLETED, ("send_response", "start_J")),
    (NIST, PROCEEDING, "request"):        (PROCEEDING, ("resend_response",)),
    (NIST, PROCEEDING, "send_1xx"):       (PROCEEDING, ("send_response",)),
    (NIST, PROCEEDING, "send_2xx"):       (COMPLETED, ("send_response", "start_J")),
    (NIST, PROCEEDING, "send_final"):     (COMPLETED, ("send_response", "start_J")),
    (NIST, PROCEEDING, "transport_error"): _TERM_ON_ERROR,
    (NIST, COMPLETED, "request"):         (COMPLETED, ("resend_response",)),
    (NIST, COMPLETED, "transport_error"): _TERM_ON_ERROR,
    (NIST, COMPLETED, "timer_J"):         (TERMINATED, ()),
}
# fmt: on

INITIAL_STATE = {ICT: CALLING, NICT: TRYING, IST: PROCEEDING, NIST: TRYING}
#: states after the final response, in every machine: see `Transaction._settle`
_SETTLED = frozenset((COMPLETED, CONFIRMED, ACCEPTED))


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


# -- transactions ----------------------------------------------------------------------


class Transaction:
    """One transaction: its machine, state, the request, and what it must resend."""

    __slots__ = (
        "machine", "state", "key", "request", "reliable", "dest", "timers", "intervals",
        "request_data", "last_response", "last_response_data", "ack", "ack_data", "layer",
        "source", "user_data",
    )

    def __init__(
        self, layer: Any, machine: Machine, key: tuple, request: Request,
        dest: Any, reliable: bool,
    ) -> None:
        self.layer = layer
        self.machine = machine
        self.state = INITIAL_STATE[machine]
        self.key = key
        #: None once settled (`_settle`): compiled code checks attribute types, so the
        #: annotation must admit what `_settle` stores
        self.request: Request | None = request
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
        self.request = None
        self.last_response = None
        self.ack = None

    # the events of the module docstring, by name
    def receive(self, message: Message) -> list:
        """A message from the network that matched this transaction."""
        if isinstance(message, Response):
            status = message.status
            event = "1xx" if status < 200 else "2xx" if status < 300 else "final"
        else:
            event = "ack" if cast(Request, message).method == "ACK" else "request"
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
    # (a client transaction sends its request before it settles: txn.request is there)
    if txn.request_data is None:
        txn.request_data = cast(Request, txn.request).to_bytes()
    out.append(Send(txn.request_data, txn.dest, txn.request, txn))


def _deliver(txn: Transaction, out: list, msg: Message | None) -> None:
    out.append(Deliver(msg if msg is not None else cast(Request, txn.request), txn, txn.source))


def _send_ack(txn: Transaction, out: list, msg: Message | None) -> None:
    txn.ack = ack = make_ack(txn.request, msg)  # type: ignore[arg-type]
    txn.ack_data = ack.to_bytes()
    out.append(Send(txn.ack_data, txn.dest, ack, txn))


def _resend_ack(txn: Transaction, out: list, _msg: Message | None) -> None:
    if txn.ack_data is not None:
        out.append(Send(txn.ack_data, txn.dest, txn.ack, txn))


def send_response(txn: Transaction, out: list, msg: Message | None) -> None:
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
        send_response(txn, out, make_response(cast(Request, txn.request), 100))


def _timeout(txn: Transaction, out: list, _msg: Message | None) -> None:
    out.append(Timeout(txn))


def _transport_error(txn: Transaction, out: list, _msg: Message | None) -> None:
    out.append(TransportError(txn))


_ACTIONS: dict[str, Callable[[Transaction, list, Message | None], None]] = {
    "send_request": _send_request,
    "deliver": _deliver,
    "send_ack": _send_ack,
    "resend_ack": _resend_ack,
    "send_response": send_response,
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
