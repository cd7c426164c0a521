"""SIP transactions (RFC 3261 section 17, with RFC 6026's Accepted state), sans-I/O.

What lives here, and may import only the standard library and :mod:`sipproxy.sip`:

* :mod:`.machine` -- the four state machines of figures 5-8 as one table (machines and
  states as enums) and the :class:`Transaction` that runs it;
* :mod:`.effects` -- what a transaction asks of the I/O edge (send, start a timer, deliver
  to the transaction user) and the timer values (T1, T2, T4);
* :mod:`.layer` -- the transaction layer: matching messages to transactions (17.1.3,
  17.2.3), CANCEL matching (9.2) and stateless answers (8.2.7).
"""

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
from sipproxy.sip.transaction.layer import (
    STATELESS_MARK,
    TransactionLayer,
    client_key,
    server_key,
    stateless_tag,
)
from sipproxy.sip.transaction.machine import (
    ICT,
    IST,
    NICT,
    NIST,
    TABLE,
    TERMINATED,
    Machine,
    State,
    Transaction,
    make_ack,
    make_cancel,
)

__all__ = [
    "CancelTimer", "Deliver", "Send", "StartTimer", "Terminated", "Timeout", "Timers",
    "TransportError", "STATELESS_MARK", "TransactionLayer", "client_key", "server_key",
    "stateless_tag", "ICT", "IST", "NICT", "NIST", "TABLE", "TERMINATED", "Machine", "State",
    "Transaction", "make_ack", "make_cancel",
]
