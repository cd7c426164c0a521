"""The response context of a proxied request (RFC 3261 16.7).

A request the proxy forwards becomes a :class:`Context` (its server transaction) with one
:class:`Branch` per target (a client transaction each).  :func:`best_response` is the 16.7
step 6 choice among the branches' final answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sipproxy.sip.parser import Response

if TYPE_CHECKING:
    from sipproxy.sip.addressing import Inbound, Peer
    from sipproxy.sip.parser import Request
    from sipproxy.sip.transaction import Transaction

__all__ = ["Branch", "Context", "best_response"]


class Branch:
    """One client transaction of a forwarded request."""

    __slots__ = ("ctx", "request", "dest", "txn", "provisional", "final", "cancel_pending",
                 "answered", "nat")

    def __init__(self, ctx: Context, request: Request, dest: Peer) -> None:
        self.ctx = ctx
        self.request = request
        self.dest = dest
        self.txn: Transaction | None = None
        self.provisional = False
        self.final: Response | None = None
        self.cancel_pending = False
        self.answered = False
        #: the target is a NATed contact reached at its public address: its answers'
        #: Contact is rewritten to that address (like Kamailio's fix_nated_contact)
        self.nat = False


class Context:
    """A request being proxied: its server transaction and its branches (the response
    context of 16.7)."""

    __slots__ = ("request", "txn", "inbound", "branches", "final_sent", "cancelled", "timer",
                 "timed_out", "caller", "callee", "dialog_info", "consumed_credentials",
                 "server_done", "pending", "record_route", "headers", "strip_caller_id", "after",
                 "billing_party", "tariff", "prepaid", "session_interval", "fork_start", "early")

    def __init__(self, request: Request, txn: Transaction, inbound: Inbound, caller: str,
                 callee: str) -> None:
        self.request = request
        self.txn = txn
        self.inbound = inbound
        self.branches: list[Branch] = []
        self.final_sent = False
        self.cancelled = False
        self.timer: Any = None  # Timer C: a handle of the edge's call_later (has cancel())
        self.timed_out = False
        self.caller = caller
        self.callee = callee
        #: the request's Proxy-Authorization was for us: left out of the forwarded copies
        self.consumed_credentials = False
        #: the server transaction has terminated (see Proxy.on_terminated)
        self.server_done = False
        #: a serial fork's targets not tried yet (failover: the next one is tried when every
        #: branch so far failed with 408 or 5xx, see Responses)
        self.pending: list[Any] = []
        #: the branches carry our Record-Route (a dialog-creating request)
        self.record_route = False
        #: header fields added to each forwarded copy, and whether the caller's own
        #: caller-id fields are removed from them (not a trusted peer's request)
        self.headers: tuple[tuple[str, str], ...] = ()
        self.strip_caller_id = False
        #: when no branch answered 2xx: what to try next (call diversion), see
        #: sipproxy.routing.decision.Targets.after
        self.after: Any = None
        #: who pays for the call (routing's decision; empty: the caller), for accounting
        self.billing_party = ""
        #: a PSTN call's rating (routing's, sipproxy.dialog.prepaid.encode_tariff): its
        #: price; a prepaid one's dialog is also debited and cut off by it
        self.tariff = ""
        self.prepaid = False
        #: the RFC 4028 session interval the answer settled (0: no session timer)
        self.session_interval = 0
        #: the first branch of the current target set: after a call diversion, the answers
        #: of the fork it diverted from were acted on and no longer compete (like a 3xx
        #: recursed on, 16.7 step 4)
        self.fork_start = 0
        #: an initial INVITE whose ``early`` dialog row was written (queued): its final
        #: answer confirms it (2xx) or removes it
        self.early = False


def best_response(responses: list[Response]) -> Response:
    """16.7 step 6: a 6xx if any, else the lowest class; within a class prefer the more
    telling answer (401/407/415/420/484 over others, 5xx converted to 500 if 503)."""

    def rank(r: Response) -> tuple:
        cls = r.status // 100
        prefer = 0 if r.status in (401, 407, 415, 420, 484) else 1
        return (0 if cls == 6 else 1, cls, prefer, r.status)

    chosen = min(responses, key=rank)
    best = chosen
    if best.status in (401, 407):
        best = chosen.copy()
        for r in responses:
            if r is chosen or r.status not in (401, 407):
                continue
            for name in ("www-authenticate", "proxy-authenticate"):
                for value in r.headers.raw(name):
                    best.headers.add(name, value)
    elif best.status == 503:
        best = best.copy()
        best.status, best.reason = 500, "Server Internal Error"
    return best
