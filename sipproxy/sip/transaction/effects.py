"""What a SIP transaction asks of the I/O edge, and the timer values it runs on (sans-I/O).

The transaction layer (:mod:`sipproxy.sip.transaction.machine`) does no I/O and reads no clock: each of
its entry points returns a list of these *actions*, which the edge (:mod:`sipproxy.runtime.edge`)
executes in order -- send bytes, start or cancel a timer, hand a message to the transaction
user, report a timeout, a transport error or a terminated transaction.  They live here so the
state machines' module holds the machines; see its docstring for what each action means.
:class:`Timers` holds RFC 3261's timer base values (table 4).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sipproxy.sip.messages import Message

#: a :class:`sipproxy.sip.transaction.machine.Transaction`.  Not named by its class: that
#: module imports this one, and mypyc (which compiles both) gives a dataclass the type objects
#: of its fields when the module loads, before the machine module has made its classes.
Transaction = Any

__all__ = ["Timers", "Send", "StartTimer", "CancelTimer", "Deliver", "Timeout", "TransportError",
           "Terminated"]


@dataclass
class Timers:
    """RFC 3261 timer base values in seconds (table 4). ``d`` is Timer D on unreliable."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    d: float = 32.0
    _known: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def initial(self, name: str, reliable: bool) -> float | None:
        """First duration of timer ``name``; None: not started; 0: fires at once."""
        key = (name, reliable, self.t1, self.t4, self.d)
        try:
            return self._known[key]
        except KeyError:
            value = self._known[key] = self._initial(name, reliable)
            return value

    def _initial(self, name: str, reliable: bool) -> float | None:
        t1 = self.t1
        if name in "AEG":
            return None if reliable else t1
        if name in "BFHJLM":
            return 0.0 if (name == "J" and reliable) else 64 * t1
        if name == "D":
            return 0.0 if reliable else self.d
        if name in "IK":
            return 0.0 if reliable else self.t4
        raise ValueError(f"unknown timer {name}")



@dataclass(eq=False, slots=True)
class Send:
    data: bytes
    dest: Any
    #: the parsed message; None for a resend by a settled transaction (`Transaction._settle`)
    message: Message | None
    transaction: Transaction | None
    #: the automatic 100 Trying of a new INVITE server transaction, not made yet (``data``
    #: empty, ``message`` None): the edge holds it back while the TU handles the request
    #: it delivers in the same list, and asks `TransactionLayer.send_trying` for it only if
    #: the TU has not answered meanwhile (17.2.1: the 100 is owed only when the TU will not
    #: answer within 200 ms; a retransmitted INVITE gets it from the transaction anyway).
    #: The edge clears the flag once it has decided.
    deferrable: bool = False


@dataclass(eq=False, slots=True)
class StartTimer:
    transaction: Transaction
    name: str
    delay: float
    #: free for the I/O edge (its watcher or wheel slot); this module never reads it
    edge: Any = None


@dataclass(eq=False, slots=True)
class CancelTimer:
    transaction: Transaction
    name: str
    #: the `StartTimer` no longer needed
    timer: StartTimer | None = None


@dataclass(eq=False, slots=True)
class Deliver:
    message: Message
    transaction: Transaction | None
    source: Any = None


@dataclass(eq=False, slots=True)
class Timeout:
    transaction: Transaction


@dataclass(eq=False, slots=True)
class TransportError:
    transaction: Transaction


@dataclass(eq=False, slots=True)
class Terminated:
    transaction: Transaction
