"""Response processing of the stateful proxy (RFC 3261 16.7): what the branches answer.

:class:`Responses` is the proxy's half that the client transactions talk to: the core hands
it every response, timeout and transport error of a branch (``Proxy.__init__`` binds its
methods as the transaction user's, once, so a response costs no extra hop).

* provisional answers go up at once (not 100); a branch that was to be cancelled before it
  answered is cancelled now (a CANCEL may only follow a provisional response, 9.1);
* the first 2xx goes up and the other branches are cancelled (16.7 step 10); later 2xx go up
  too, statelessly once our server transaction is done;
* a 6xx cancels the other branches; when every branch is final the best response goes up
  (16.7 step 6, :func:`sipproxy.proxy.context.best_response`), a 408 when Timer C fired;
* Timer C (the callee's ring timeout) turns silent branches into 408 and cancels the ringing.

The request side (``sipproxy.proxy.proxy``) uses :meth:`Responses.final` (a response of its own
for a forwarded request), :meth:`Responses.cancel_branches` (16.10) and
:meth:`Responses.timer_c`.  This module does not import the proxy: it gets it as an object.
"""

from __future__ import annotations

import logging
from typing import Any

from sipproxy.dialog.sessiontimer import on_answer, parse_session_expires
from sipproxy.dialog.state import DialogInfo
from sipproxy.proxy.context import Branch, Context, best_response
from sipproxy.proxy.nat import fix_nated_contact
from sipproxy.sip.addressing import reply_address
from sipproxy.sip.ids import new_tag
from sipproxy.sip.parser import Request, Response, make_response
from sipproxy.sip.transaction import ICT, Transaction, make_cancel
from sipproxy.sip.uri import ParseError

#: the proxy's log: call outcomes are logged as the proxy's, wherever they are worked out
log = logging.getLogger("sipproxy.proxy")

__all__ = ["Responses", "DIALOG_METHODS"]

#: Methods that may create a dialog: Record-Routed, and their answers' Contact NAT-fixed.
DIALOG_METHODS = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})


def _current(ctx: Context) -> list[Branch]:
    """The branches of the current target set (every branch when it started none)."""
    return ctx.branches[ctx.fork_start:] or ctx.branches


#: final responses after which a serial fork (LCR's gateways, RFC 3263's servers) tries its
#: next target: 408 (also a local timeout) and the 5xx of a failed server or network (a
#: transport error counts as 503) -- not 4xx/6xx about the call itself (busy, number unknown,
#: declined), which the next target would answer the same, nor 501 or 505 (the request itself)
FAIL_OVER = frozenset({408, 500, 502, 503, 504})


def _fails_over(response: Response | None) -> bool:
    return response is not None and response.status in FAIL_OVER


class Responses:
    """The 16.7 response context handling of one :class:`~sipproxy.proxy.proxy.Proxy`."""

    def __init__(self, proxy: Any) -> None:
        edge = proxy.edge
        self.proxy = proxy
        self.edge = edge
        self.media = proxy.media
        self.dialogs = proxy.dialogs
        self.events = proxy.events  # accounting (None: off)
        # bound once: these run for every response
        self._respond = edge.respond
        self._media_release = proxy._media_release
        self._next_target = proxy.next_target
        self._forward = proxy.forward

    def on_response(self, response: Response, txn: Transaction | None, source: Any) -> None:
        if txn is None:
            if response.status >= 200 and self.dialogs is not None:
                self._final_unknown(response, source)
            self.forward_retransmission(response)
            return
        branch = txn.user_data
        if not isinstance(branch, Branch):
            answered = getattr(branch, "answered", None)
            if answered is not None:  # a request the proxy originated (a presence NOTIFY)
                answered(response)
                return
            # the answer to one of our CANCELs, or a 2xx retransmission reaching an INVITE
            # branch whose call was settled (see `release`): relayed as 16.7 step 10 says
            if txn.machine == ICT and 200 <= response.status < 300:
                self.forward_retransmission(response)
            return
        ctx = branch.ctx
        status = response.status
        method = ctx.request.method
        if branch.nat and status < 300 and method in DIALOG_METHODS:
            fix_nated_contact(response, branch.dest)
        if status < 200:
            branch.provisional = True
            if branch.cancel_pending or ctx.cancelled:
                self._send_cancel(branch)
                return
            if status != 100 and not ctx.final_sent:
                self._media_answer(ctx, response)
                self._respond(ctx.txn, response)
            return
        if status < 300:
            first = not branch.answered
            branch.answered = True
            branch.final = response
            if method == "INVITE":
                self._media_answer(ctx, response)
                self.cancel_branches(ctx, keep=branch)
                if first and ctx.request.to.tag is None:
                    ctx.session_interval = self._session_answer(ctx.request, response)
            if ctx.txn.state in ("Proceeding", "Trying", "Accepted"):
                self._respond(ctx.txn, response)
            else:  # a 2xx after our final answer (16.7 step 10): it must still reach the caller
                self.forward_stray(response)
            if not ctx.final_sent:
                ctx.final_sent = True
                self._stop_timer(ctx)
                self._call_log(ctx, response)
            if first and method == "INVITE" and ctx.request.to.tag is None \
                    and not any(b.answered for b in ctx.branches if b is not branch):
                self._dialog_confirmed(ctx, branch, response)
            elif first and ctx.request.to.tag is not None:
                self._in_dialog_answered(ctx, response)
            self.release(ctx)
            return
        if branch.final is None:
            branch.final = response
        if status >= 600 and method == "INVITE":
            self.cancel_branches(ctx)
        self.check_done(ctx)

    def on_timeout(self, txn: Transaction) -> None:
        branch = txn.user_data
        failed = getattr(branch, "failed", None)
        if failed is not None:  # a request the proxy originated: no answer (408)
            failed(408)
            return
        if isinstance(branch, Branch) and branch.final is None:
            branch.final = make_response(branch.request, 408)
            self.check_done(branch.ctx)

    def on_transport_error(self, txn: Transaction) -> None:
        branch = txn.user_data
        failed = getattr(branch, "failed", None)
        if failed is not None:  # a request the proxy originated could not be sent: as no answer
            failed(408)
            return
        if isinstance(branch, Branch) and branch.final is None:
            branch.final = make_response(branch.request, 503, "Unreachable")
            self.check_done(branch.ctx)

    def timer_c(self, ctx: Context) -> None:
        """Timer C fired: the callee rang too long (16.8): cancel what still rings."""
        if ctx.final_sent:
            return
        ctx.timed_out = True
        for b in ctx.branches:
            if b.final is None and not b.provisional:
                b.final = make_response(b.request, 408)
        self.cancel_branches(ctx)
        self.check_done(ctx)

    def cancel_branches(self, ctx: Context, keep: Branch | None = None) -> None:
        """CANCEL every pending INVITE branch but ``keep``: at once when it answered with a
        provisional response, else as soon as it does (9.1)."""
        for b in ctx.branches:
            if b is keep or b.final is not None or b.request.method != "INVITE":
                continue
            if b.provisional:
                self._send_cancel(b)
            else:
                b.cancel_pending = True

    def _send_cancel(self, b: Branch) -> None:
        b.cancel_pending = False
        cancel = make_cancel(b.request)  # the same top Via, so the same branch
        self.edge.send_request(cancel, b.dest, b.txn.key[0] if b.txn is not None else None)

    def check_done(self, ctx: Context) -> None:
        if any(b.final is None for b in ctx.branches):
            return
        if ctx.final_sent:
            self.release(ctx)
            return
        if ctx.pending and not ctx.cancelled and not ctx.timed_out \
                and _fails_over(ctx.branches[-1].final) and self._next_target(ctx):
            return
        if ctx.after is not None and not ctx.cancelled:
            after, ctx.after = ctx.after, None
            outcome = after([b.final.status for b in _current(ctx)], ctx.timed_out)  # type: ignore[union-attr]
            if isinstance(outcome, Response):
                self.final(ctx, outcome)
                return
            if outcome is not None and self._forward(ctx, outcome):
                return
        best = best_response([b.final for b in _current(ctx)])  # type: ignore[misc]
        if ctx.timed_out and best.status == 487 and not ctx.cancelled:
            best = best.copy()
            best.status, best.reason = 408, "Request Timeout"
        if best.vias and best.vias[0].branch != ctx.request.vias[0].branch:
            # synthesized from our own branch request: rebuild it for the upstream side
            best = make_response(ctx.request, best.status, best.reason, to_tag=new_tag(),
                                 headers=[(n, v) for n, v in best.headers.items()
                                          if n.lower() in ("www-authenticate", "proxy-authenticate")])
        self.final(ctx, best)

    def final(self, ctx: Context, response: Response) -> None:
        """Send the final ``response`` of a forwarded request upstream (once)."""
        ctx.final_sent = True
        self._stop_timer(ctx)
        if ctx.request.method == "INVITE":
            self._media_release(ctx.request)
            if ctx.early and response.status >= 300:  # the call that rang is over
                self._early_failed(ctx)
        self._respond(ctx.txn, response)
        self._call_log(ctx, response)
        if ctx.request.method == "BYE":
            self._in_dialog_answered(ctx, response)
        if self.events is not None and response.status >= 300 and ctx.request.method == "INVITE" \
                and ctx.request.to.tag is None:
            self.events.failed(ctx.request, ctx.inbound, response, ctx.caller, ctx.callee, ctx.billing_party,
                               str(ctx.branches[-1].request.uri) if ctx.branches else "")
        self.release(ctx)

    @staticmethod
    def release(ctx: Context) -> None:
        """Let go of a context whose answer is sent and whose every branch has its final
        response: what reaches its transactions from now on (retransmissions, a late
        2xx, a CANCEL) needs none of it, and the transactions linger 32 s more."""
        if not ctx.final_sent or any(b.final is None for b in ctx.branches):
            return
        txn = ctx.txn
        if txn is not None and txn.user_data is ctx:
            txn.user_data = None
        for b in ctx.branches:
            if b.txn is not None and b.txn.user_data is b:
                b.txn.user_data = None
            b.txn = None
            b.ctx = None  # type: ignore[assignment]
        ctx.branches = []
        ctx.server_done = True

    @staticmethod
    def _stop_timer(ctx: Context) -> None:
        if ctx.timer is not None:
            ctx.timer.cancel()
            ctx.timer = None

    def forward_stray(self, response: Response) -> None:
        """A 2xx retransmission with no transaction left: forward along the Via (16.7)."""
        if not 200 <= response.status < 300 or not response.headers.get("via"):
            return
        dest = reply_address(response.vias[0])
        if dest is not None:
            self.edge.forward(response, dest)

    def forward_retransmission(self, response: Response) -> None:
        """A 2xx of a call no longer in hand (settled, or its transaction gone): relayed
        along the Via, its SDP rewritten for the media relay as the first 2xx was (the
        relay session is found by the Call-ID and tags, which the response carries)."""
        if self.media is not None and 200 <= response.status < 300:
            self.media.answer(self.proxy, response, response)
        self.forward_stray(response)

    # -- bookkeeping ------------------------------------------------------------------

    @staticmethod
    def _call_log(ctx: Context, response: Response) -> None:
        if ctx.request.method != "INVITE" or ctx.request.to.tag is not None:
            return
        log.info("call %s -> %s: %d %s (%d branch%s, call-id %s)", ctx.caller, ctx.callee,
                 response.status, response.reason, len(ctx.branches),
                 "" if len(ctx.branches) == 1 else "es", ctx.request.call_id)

    def _early_failed(self, ctx: Context) -> None:
        req = ctx.request
        ctx.early = False
        self.dialogs.failed(req.call_id or "", req.from_.tag or "", req.cseq[0], ctx.caller)

    def _dialog_confirmed(self, ctx: Context, branch: Branch, response: Response) -> None:
        """The first 2xx to an initial INVITE: the call's row becomes ``confirmed``
        (replacing its early row) with both parties' sides."""
        req = ctx.request
        try:
            rr = ", ".join(response.headers.getall("record-route"))
            info = DialogInfo(
                call_id=req.call_id or "", from_tag=req.from_.tag or "", to_tag=response.to.tag or "",
                caller=ctx.caller, callee=ctx.callee,
                caller_contact=req.headers.get("contact") or "",
                callee_contact=response.headers.get("contact") or "",
                caller_cseq=req.cseq[0], route_set=rr, caller_source=str(ctx.inbound.source),
                callee_source=str(branch.dest), proxy=str(ctx.inbound.listener),
                media_relay=self.relay_of(req.call_id or ""), billing_party=ctx.billing_party,
                tariff=ctx.tariff if ctx.prepaid else "", session_interval=ctx.session_interval,
            )
        except ParseError:
            if ctx.early:  # nothing to confirm it with: the call is not tracked
                self._early_failed(ctx)
            return
        ctx.early = False
        self.dialogs.confirmed(info)
        if self.events is not None:
            self.events.answered(info, ctx, branch, response)

    def _final_unknown(self, response: Response, source: Any) -> None:
        """A final answer to an INVITE that matched no transaction here: a late
        retransmission of a call settled long ago, or the answer to a call that rang
        through this proxy before it restarted (the callee answers to the Via, which names
        the proxy's address, not its process).  That call's early row, still in SQL, is
        confirmed from a 2xx (relayed along its Via like any stray 2xx, so the caller gets
        it) and removed on a failure (which has no transaction to go back through).  The
        store matches the early row by Call-ID, From tag and the INVITE's CSeq, so
        anything else changes nothing."""
        try:
            number, method = response.cseq
            if method != "INVITE":
                return
            call_id, from_tag = response.call_id or "", response.from_.tag or ""
            log.debug("%d to INVITE without a transaction (call-id %s): %s", response.status, call_id,
                      "its early dialog, if any, removed" if response.status >= 300 else "relayed; its early dialog, "
                      "if any, confirmed")
            if response.status >= 300:
                self.dialogs.failed(call_id, from_tag, number)
                return
            if response.to.tag is None:
                return
            se = parse_session_expires(response.headers.get("session-expires"))
            self.dialogs.answered(
                call_id, from_tag, number, response.to.tag, response.headers.get("contact") or "",
                ", ".join(response.headers.getall("record-route")),
                str(source.source) if source is not None else "", se.interval if se else 0)
        except ParseError:
            pass

    @staticmethod
    def _session_answer(request: Request, response: Response) -> int:
        """RFC 4028 section 8.2 on the 2xx to an initial INVITE: the session interval (0:
        none), and Session-Expires / Require added for a caller that refreshes when the
        callee does not do session timers."""
        if request.headers.get("session-expires") is None and response.headers.get("session-expires") is None:
            return 0  # the common case: no session timer asked for
        interval, add = on_answer(request.headers.get("session-expires"), request.headers.getall("supported"),
                                  response.headers.get("session-expires"))
        for name, value in add:
            response.headers.add(name, value)
        return interval

    def _in_dialog_answered(self, ctx: Context, response: Response) -> None:
        """A final answer to an in-dialog request: a BYE's ends the dialog for good (any
        answer: RFC 3261 15.1.1, the session is over whatever the answer), a 2xx to a
        re-INVITE or UPDATE refreshes the targets (12.2.1.2, 12.2.2)."""
        req = ctx.request
        method = req.method
        try:
            if method == "BYE":
                self.dialogs.removed(req.call_id or "", req.from_.tag or "", req.to.tag or "")
            elif method in ("INVITE", "UPDATE") and response.status < 300:
                se = parse_session_expires(response.headers.get("session-expires"))
                self.dialogs.refreshed(req.call_id or "", req.from_.tag or "", req.headers.get("contact") or "",
                                       response.headers.get("contact") or "", se.interval if se else 0)
        except ParseError:
            pass

    # -- media relay seam (the answer side; the offer side is the proxy's) --------------

    def relay_of(self, call_id: str) -> str:
        """The media relay carrying ``call_id`` (empty: none)."""
        relays = getattr(self.media, "relays", None)
        return (relays.relay_of(call_id) or "") if relays is not None else ""

    def _media_answer(self, ctx: Context, response: Response) -> None:
        if self.media is not None:
            self.media.answer(self.proxy, ctx.request, response)
