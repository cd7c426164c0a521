"""The transaction layer: which transaction a message belongs to (RFC 3261 17.1.3, 17.2.3).

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
from typing import Any, cast

from sipproxy.sip.ids import MAGIC_COOKIE
from sipproxy.sip.parser import Message, Request, Response, make_response
from sipproxy.sip.transaction.effects import Deliver, Send, StartTimer, Timers
from sipproxy.sip.transaction.machine import (
    ICT,
    IST,
    NICT,
    NIST,
    PROCEEDING,
    TERMINATED,
    Transaction,
    send_response,
)

__all__ = ["TransactionLayer", "server_key", "client_key", "stateless_tag", "STATELESS_MARK"]

log = logging.getLogger("sipproxy.transaction")

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


def server_key(request: Request, method: str | None = None, via: Any = None) -> tuple:
    """The 17.2.3 matching key of a request (``method`` overrides: ACK/CANCEL -> INVITE;
    ``via``: its top Via when the caller has it parsed already)."""
    if via is None:
        via = request.vias[0]
    if method is None:
        method = "INVITE" if request.method == "ACK" else request.method
    branch = via.params.get("branch")
    if branch and len(branch) > 7 and branch.startswith(MAGIC_COOKIE):
        port = via.port  # the sent-by, read inline: this runs for every request
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
        if txn.last_response_data is not None or txn.state != PROCEEDING or txn.machine != IST:
            return []
        out: list = []
        send_response(txn, out, make_response(cast(Request, txn.request), 100))
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
