"""A relay's open transactions and the REPORTs it owes (RFC 4975 section 7.1.2,
RFC 4976 section 7.3).

Transaction responses are hop-by-hop: the relay answers the previous hop itself (``200``
once it has passed a SEND chunk on, unless Failure-Report is ``no`` or ``partial``) and
consumes the next hop's response.  When the next hop fails the chunk -- an error response,
no response in time, or its connection dropping -- the relay owes the sender a failure
REPORT if the SEND asked for failure reports, sent back along the SEND's From-Path.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from .message import Message, make_report

__all__ = ["Pending", "TransactionTable", "RecentIds", "failure_report", "answers_ok"]


@dataclass
class Pending:
    """A request passed on and not yet answered by the next hop."""

    request: Message          # the head as received from the previous hop
    back: Hashable            # the connection it came from
    via: str                  # this relay's URI the sender addressed
    deadline: float


def answers_ok(request: Message) -> bool:
    """Whether the previous hop gets a ``200`` for this chunk (section 7.1.2: not for
    Failure-Report ``no`` or ``partial``, never for REPORT)."""
    return request.method != "REPORT" and request.report_wanted("Failure-Report") == "yes"


def failure_report(p: Pending, code: int, comment: str | None = None) -> Message | None:
    """The failure REPORT owed to the sender of ``p`` (None: none was asked for)."""
    req = p.request
    if req.method != "SEND" or req.report_wanted("Failure-Report") == "no" or not req.message_id:
        return None
    return make_report(req, code, comment, from_uri=p.via)


@dataclass
class TransactionTable:
    """Pending transactions by (outgoing connection, transaction id)."""

    timeout: float = 30.0
    clock: Callable[[], float] = time.time
    table: dict[tuple[Hashable, str], Pending] = field(default_factory=dict)

    def add(self, out: Hashable, tid: str, request: Message, back: Hashable, via: str) -> None:
        self.table[(out, tid)] = Pending(request, back, via, self.clock() + self.timeout)

    def answer(self, out: Hashable, response: Message) -> Pending | None:
        return self.table.pop((out, response.transaction_id), None)

    def drop(self, conn: Hashable) -> list[Pending]:
        """The transactions that can no longer be answered: sent over ``conn``.  (Those that
        came from ``conn`` are forgotten: there is no one to report to.)"""
        lost = []
        for key in list(self.table):
            p = self.table[key]
            if key[0] == conn:
                lost.append(self.table.pop(key))
            elif p.back == conn:
                del self.table[key]
        return lost

    def expired(self) -> list[Pending]:
        now = self.clock()
        gone = [k for k, p in self.table.items() if p.deadline < now]
        return [self.table.pop(k) for k in gone]


class RecentIds:
    """The last transaction ids a peer used on one connection: a request reusing one is
    refused (RFC 4975 section 7.1: ids are unique within the session)."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def seen(self, tid: str) -> bool:
        """True if ``tid`` was used before; remembers it otherwise."""
        if tid in self._ids:
            return True
        self._ids[tid] = None
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)
        return False
