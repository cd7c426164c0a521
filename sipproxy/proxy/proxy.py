"""The stateful proxy (RFC 3261 section 16): the transaction user behind the I/O edge.

Decisions, in the order a request meets them:

1. CANCEL is answered hop by hop (200, or 481 when nothing matches) and propagated to
   every pending branch of the INVITE it cancels (16.10); the branches' 487 goes back.
2. OPTIONS addressed to the proxy itself is answered 200 (monitoring).
3. Validation (16.3): URI scheme (416), Max-Forwards (483), Proxy-Require (420), loops (482:
   one of our own Vias carries the hash of this very request, so it came back unchanged).
4. Route pre-processing (16.4): a Request-URI that is our own Record-Route (the previous hop
   is a strict router) is swapped for the last Route; our own Route values on top are
   removed (two of them when we double record-routed).
5. REGISTER goes to the registrar and is never relayed.
6. In-dialog requests (To tag) follow the Route set, or the Request-URI once our Route was
   consumed; anything else with a To tag gets 404 (we are not an open relay).
7. Initial requests: a party claiming a local From domain is challenged (407) and must
   authenticate as the From user (403 otherwise); a request for a non-local destination is
   only served to an authenticated local user -- others get 407, and 403 once they present
   credentials that are not a local subscriber's.  The Request-URI of a local domain resolves
   alias -> account (404 when unknown) -> registered contacts (480 when none), and the
   request forks in parallel to all of them (16.6) with Record-Route (double when the
   transport or address family changes, RFC 5658).
8. Responses (16.7): provisional ones go up at once (not 100), the first 2xx goes up and the
   other branches are cancelled, a 6xx cancels the others; when every branch is final the
   best response goes up (6xx first, then the lowest class, 503 turned into 500, 401/407
   challenges merged).  Timer C (the callee's ring timeout) cancels what still rings.
   This is :mod:`sipproxy.proxy.responses`, whose methods the proxy binds as its own.

Where an initial request goes (step 7 after authentication) is :mod:`sipproxy.routing`'s
decision.  Every I/O goes through the edge (:class:`sipproxy.proxy.interface.Edge`): this
module opens no socket and reads no database (the directory, location and dialog stores are
handed in).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from sipproxy.auth.authentication import Authenticator
from sipproxy.dialog.control import CallControl
from sipproxy.dialog.sessiontimer import MIN_SE, on_invite
from sipproxy.dialog.state import DialogInfo, early_bound
from sipproxy.proxy.context import Branch, Context
from sipproxy.proxy.interface import Edge
from sipproxy.proxy.nat import fix_nated_contact, via_shows_nat
from sipproxy.proxy.responses import DIALOG_METHODS, Responses
from sipproxy.proxy.unavailable import Unavailable, is_database_error
from sipproxy.proxy.validation import loop_hash, proxy_validate
from sipproxy.routing.pipeline import Router, RouteRequest, Target, Targets
from sipproxy.sip.addressing import Inbound
from sipproxy.sip.digest import MISSING
from sipproxy.sip.ids import MAGIC_COOKIE, new_tag
from sipproxy.sip.parser import Request, Response, make_response
from sipproxy.sip.routeset import apply_route_set
from sipproxy.sip.transaction import Transaction
from sipproxy.sip.uri import URI, ParseError, parse_name_addr, sip_id

log = logging.getLogger("sipproxy.proxy")

__all__ = ["Proxy", "TIMER_C"]

ALLOW = ("INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE, INFO, UPDATE, SUBSCRIBE, NOTIFY, REFER, PRACK, "
         "PUBLISH")
TIMER_C = 180.0


class Proxy:
    """The proxy's request side; I/O goes through ``edge``, routing through ``router``."""

    def __init__(self, edge: Edge, directory: Any, registrar: Any, dialogs: Any, router: Router,
                 *, media: Any = None, failover_timeout: float = 0.0, events: Any = None,
                 session_expires: int = 0, session_min_se: int = MIN_SE, presence: Any = None) -> None:
        self.edge = edge
        self.directory = directory
        self.registrar = registrar
        self.authenticator: Authenticator = registrar.authenticator
        self.dialogs = dialogs
        self.router = router
        #: seconds a serial fork's target may stay silent before the next is tried (0: until
        #: its transaction times out)
        self.failover_timeout = failover_timeout
        #: RFC 4028: the session interval asked for when a caller did not (0: none) and the
        #: smallest accepted (sipproxy.dialog.sessiontimer)
        self.session_expires = session_expires
        self.session_min_se = session_min_se
        self.media = media  # the media relay seam: see _media_* below
        #: the accounting seam (sipproxy.accounting.service.Accounting), None: no accounting;
        #: told of answered, ended and failed calls (here, in Responses and in CallControl)
        self.events = events
        self.calls = CallControl(self)  # the proxy ending calls itself (media timeout, ...)
        #: the presence agent (sipproxy.presence.agent.PresenceAgent), None when presence is
        #: off: it answers SUBSCRIBE/PUBLISH for its event packages to local users
        self.presence = presence
        #: the database outage state (503 + Retry-After), shared with the registrar
        self.unavailable: Unavailable = getattr(registrar, "unavailable", None) or Unavailable()
        #: the call limit (routing's authorize step) counts a caller's early and confirmed
        #: rows, and the writes of them still queued here (see sipproxy.dialog.pending)
        unflushed = getattr(dialogs, "unflushed", None)
        if unflushed is not None:
            router.in_progress = unflushed
        self._mine: dict[str, bool] = {}  # Route value -> names us (see _route_is_mine)
        #: response processing (16.7): the edge hands the branches' answers straight to it
        #: (its methods bound here once, no hop through the proxy per response)
        self.responses = responses = Responses(self)
        self.on_response = responses.on_response
        self.on_timeout = responses.on_timeout
        self.on_transport_error = responses.on_transport_error
        self._final = responses.final
        self._cancel_branches = responses.cancel_branches
        self._timer_c = responses.timer_c
        if hasattr(media, "call_control"):
            media.call_control = self.calls.on_media_timeout
        if hasattr(media, "relay_lost"):
            media.relay_lost = self.calls.on_relay_lost

    # ======================================================================= requests ===

    def on_request(self, request: Request, txn: Transaction | None, inbound: Inbound) -> None:
        if txn is None or request.method == "ACK":  # ACK for a 2xx (end to end), or stray
            try:
                self._forward_ack(request, inbound)
            except ParseError:
                pass
            return
        try:
            response = self._handle(request, txn, inbound)
        except ParseError as exc:
            response = make_response(request, exc.status or 400, exc.reason, to_tag=new_tag())
        except Exception as exc:
            if is_database_error(exc):  # 503 + Retry-After, logged once per outage
                response = self.unavailable.failed(exc, request)
            else:
                log.exception("error routing %s", request.method)
                response = make_response(request, 500, to_tag=new_tag())
        if response is not None:
            status = response.status
            if status == 401 or status == 407:  # a challenge: stateless (RFC 3261 8.2.7, 26.1.5)
                self.edge.reply_stateless(txn, response)
                return
            if status >= 200 and request.method == "INVITE":
                log.info("call %s -> %s: %d %s (call-id %s)", sip_id(request.from_.uri),
                         request.uri, status, response.reason, request.call_id)
            self.edge.respond(txn, response)

    def _handle(self, req: Request, txn: Transaction, inbound: Inbound) -> Response | None:
        method = req.method
        if method == "CANCEL":
            return self._cancel(req)
        if method == "OPTIONS" and self._to_me(req):
            return make_response(req, 200, to_tag=new_tag(), headers=[
                ("Allow", ALLOW), ("Accept", "application/sdp"), ("Supported", "path, outbound")])
        invalid = proxy_validate(req)
        if invalid is not None:
            return invalid
        if self._loops(req):
            return make_response(req, 482, to_tag=new_tag())
        popped = self._preprocess_routes(req)
        routes = req.headers.getall("route")
        if method == "REGISTER":  # answered here, never relayed (whatever its Route says)
            return self.registrar.handle(req, received=str(inbound.source), socket=str(inbound.listener))
        if req.to.tag is not None:
            presence = self.presence
            if presence is not None and not popped and not routes and presence.owns(req) \
                    and self._is_my_uri(req.uri):  # in one of the agent's subscription dialogs
                return presence.in_dialog(req, txn, inbound)
            return self._in_dialog(req, txn, inbound, popped, routes)
        return self._initial(req, txn, inbound, routes)

    # -- 16.4 route information pre-processing -------------------------------------------

    def _is_my_uri(self, uri: URI) -> bool:
        return uri.is_sip and self.edge.is_me(uri.maddr or uri.host, uri.port)

    def _to_me(self, req: Request) -> bool:
        uri = req.uri
        if not uri.is_sip or uri.user or req.headers.get("route"):
            return False
        return self.edge.is_me(uri.host, uri.port) or self.directory.is_local_domain(uri.host)

    def _preprocess_routes(self, req: Request) -> bool:
        popped = False
        headers = req.headers
        top = headers.get("route")
        if top and not req.uri.user and self._is_my_uri(req.uri):
            # the previous hop is a strict router: the last Route is the real Request-URI
            values = headers.getall("route")
            last = parse_name_addr(values[-1])
            headers.remove("route")
            for v in values[:-1]:
                headers.add("Route", v)
            req.uri = last.uri
            popped = True
            top = headers.get("route")
        while top is not None and self._route_is_mine(top):
            headers.pop_first("route")
            popped = True
            top = headers.get("route")
        return popped

    def _route_is_mine(self, value: str) -> bool:
        """Whether a Route value names this proxy; remembered by value (every in-dialog
        request of every call carries the same Record-Route of ours)."""
        known = self._mine.get(value)
        if known is None:
            known = self._is_my_uri(parse_name_addr(value).uri)  # ParseError: not remembered
            if len(self._mine) > 4096:
                self._mine.clear()
            self._mine[value] = known
        return known

    def _loops(self, req: Request) -> bool:
        """16.3 step 4: one of our own Vias below the top carries this request's hash.  The
        hash is only worked out when such a Via is there (most requests have none)."""
        vias = req.vias
        if len(vias) < 2:
            return False
        mark = None
        for via in vias[1:]:
            branch = via.branch or ""
            if branch.startswith(MAGIC_COOKIE) and self.edge.is_me(via.host, via.port):
                if mark is None:
                    mark = MAGIC_COOKIE + loop_hash(req) + "."
                if branch.startswith(mark):
                    return True
        return False

    # -- in-dialog ---------------------------------------------------------------------

    def _in_dialog(self, req: Request, txn: Transaction, inbound: Inbound, popped: bool,
                   routes: list[str]) -> Response | None:
        if not popped:  # not routed through our Record-Route: not ours to relay
            return make_response(req, 404, "Not Here", to_tag=new_tag())
        dest = self.edge.resolve(apply_route_set(req) if routes else req.uri)
        if dest is None:
            return make_response(req, 502, "Unresolvable Next Hop", to_tag=new_tag())
        self.calls.note_request(req)
        if req.method == "INVITE":
            self._media_offer(req)  # a re-INVITE may move the media
        elif req.method == "BYE":
            media = self._media_release(req)
            self.dialogs.ended(req.call_id or "", req.from_.tag or "", req.to.tag or "")
            if self.events is not None:
                self.events.ended(req, media)
        ctx = Context(req, txn, inbound, sip_id(req.from_.uri), sip_id(req.to.uri))
        txn.user_data = ctx
        if not self._start_branches(ctx, [Target(None, dest, ())]):
            self._final(ctx, make_response(req, 480, "No Usable Contact", to_tag=new_tag()))
        return None

    # -- initial requests ---------------------------------------------------------------

    def _initial(self, req: Request, txn: Transaction, inbound: Inbound,
                 routes: list[str]) -> Response | None:
        if self.unavailable.down_since is not None:  # the database failed a moment ago
            refused = self.unavailable.refuse(req)
            if refused is not None:
                return refused
        call = RouteRequest(req, inbound, None, False)
        hooked = self.router.preprocess_request(call)
        if hooked is not None:
            return self._follow(req, txn, inbound, hooked, sip_id(req.from_.uri), False,
                                billing_party=call.billing_party)
        from_uri, ruri = req.from_.uri, req.uri
        from_local = bool(from_uri.is_sip and from_uri.host and self.directory.is_local_domain(from_uri.host))
        to_local = self.router.is_local(ruri)
        call.local = (ruri, to_local)
        account = None
        # a PBX (trusted peer) or PSTN gateway, known by its address, is not challenged; a
        # local From is always challenged (a subscriber spoofing a peer's address too)
        trusted, gateway = (None, False) if from_local else self.router.trusted_source(inbound.source.host)
        if (from_local or not to_local) and trusted is None and req.method != "ACK":
            verdict = self.authenticator.check(req, from_uri.host or "", proxy=True,
                                               source=str(inbound.source))
            if verdict.response is not None:
                if not from_local and verdict.result.status != MISSING:
                    return make_response(req, 403, "Relaying Denied", to_tag=new_tag())
                return verdict.response
            account = verdict.account
            if not from_local or account is None:
                return make_response(req, 403, "Relaying Denied", to_tag=new_tag())
            if account.username != from_uri.user:
                log.info("%s: authenticated as %s but From is %s: 403", req.method,
                         account.sip_id, sip_id(from_uri))
                return make_response(req, 403, "Authentication User Does Not Match From",
                                     to_tag=new_tag())
            # a blocked account: refused by routing's authorization (emergency calls pass)
            # the credentials were for us: they are left out of what is forwarded (on the
            # copies, in _start_branches: changing ``req`` would void its parsed views)
        caller = account.sip_id if account else sip_id(from_uri)
        presence = self.presence
        if presence is not None and to_local and not routes and req.method in ("SUBSCRIBE", "PUBLISH") \
                and presence.handles(req):
            if account is not None and account.blocked:
                return make_response(req, 403, "Account Blocked", to_tag=new_tag())
            if req.method == "SUBSCRIBE" and inbound.source.transport == "udp" and via_shows_nat(req, inbound.via):
                fix_nated_contact(req, inbound.source)  # NOTIFYs reach a NATed watcher
            return presence.on_request(req, txn, inbound, account)
        if routes:  # a pre-loaded route set: only for our authenticated subscribers
            if account is None:
                return make_response(req, 403, "Relaying Denied", to_tag=new_tag())
            if account.blocked:
                return make_response(req, 403, "Account Blocked", to_tag=new_tag())
            dest = self.edge.resolve(apply_route_set(req))
            if dest is None:
                return make_response(req, 502, "Unresolvable Next Hop", to_tag=new_tag())
            return self._proxy(req, txn, inbound, Targets([Target(None, dest, ())], str(req.uri)), caller,
                               consumed_credentials=True)
        call.account, call.to_local, call.trusted, call.gateway = account, to_local, trusted, gateway
        outcome = self.router.route(call)
        if self.unavailable.down_since is not None and not isinstance(outcome, Response):
            self.unavailable.succeeded()
        return self._follow(req, txn, inbound, outcome, caller, account is not None,
                            keep_caller_id=trusted is not None, billing_party=call.billing_party)

    def _follow(self, req: Request, txn: Transaction, inbound: Inbound,
                outcome: Response | Targets, caller: str, consumed_credentials: bool,
                keep_caller_id: bool = False, billing_party: str = "") -> Response | None:
        """Carry out a routing decision: answer, or forward to its targets.  Caller-id
        headers (P-Asserted-Identity, Remote-Party-ID) are kept only from trusted peers and
        gateways (RFC 3325: the identity asserted is ours to assert).  An INVITE that
        routing refuses is accounted as a failed (missed) call."""
        if isinstance(outcome, Response):
            if self.events is not None and req.method == "INVITE" and outcome.status >= 300:
                self.events.failed(req, inbound, outcome, caller, sip_id(req.uri), billing_party)
            return outcome
        return self._proxy(req, txn, inbound, outcome, caller, consumed_credentials=consumed_credentials,
                           strip_caller_id=not keep_caller_id, billing_party=billing_party)

    # -- forwarding (16.6) --------------------------------------------------------------

    def _proxy(self, req: Request, txn: Transaction, inbound: Inbound, decided: Targets,
               caller: str, consumed_credentials: bool = False,
               strip_caller_id: bool = False, billing_party: str = "") -> Response | None:
        """Forward ``req`` to the targets routing ``decided`` on (see :meth:`forward`)."""
        if req.method == "INVITE":
            refused = self._session_timer(req)
            if refused is not None:
                return refused
        ctx = Context(req, txn, inbound, caller, decided.callee)
        ctx.billing_party = billing_party
        ctx.tariff, ctx.prepaid = decided.tariff, decided.prepaid
        ctx.consumed_credentials = consumed_credentials
        ctx.record_route = req.method in DIALOG_METHODS
        ctx.strip_caller_id = strip_caller_id
        txn.user_data = ctx
        if inbound.source.transport == "udp" and via_shows_nat(req, inbound.via):
            fix_nated_contact(req, inbound.source)
        if req.method == "INVITE":
            self._media_offer(req)
        if not self.forward(ctx, decided):
            self._final(ctx, make_response(req, 480, "No Usable Contact", to_tag=new_tag()))
        return None

    def _session_timer(self, req: Request) -> Response | None:
        """RFC 4028 section 8.1 on an initial INVITE: 422 below our Min-SE, else our
        Session-Expires / Min-SE set on it (sipproxy.dialog.sessiontimer)."""
        headers = req.headers
        offer = on_invite(headers.get("session-expires"), headers.get("min-se"),
                          ours=self.session_expires, our_min_se=self.session_min_se)
        if offer.refuse_min_se:
            return make_response(req, 422, "Session Interval Too Small", to_tag=new_tag(),
                                 headers=[("Min-SE", str(offer.refuse_min_se))])
        for name, value in offer.headers:
            headers.set(name, value)
        return None

    def forward(self, ctx: Context, decided: Targets) -> bool:
        """Start branches to ``decided``'s targets: all at once (16.6), or one after the
        other when serial (the next when the last failed with 408 or a 5xx); Timer C for an
        INVITE.  Also for the targets of a call diversion after the first fork failed.
        False when no target could be sent to."""
        ctx.headers, ctx.after, ctx.timed_out = decided.headers, decided.after, False
        ctx.fork_start = len(ctx.branches)
        if decided.billing_party:
            ctx.billing_party = decided.billing_party
        if decided.serial:
            ctx.pending = list(decided.targets)
            started = self.next_target(ctx)
        else:
            ctx.pending = []
            started = self._start_branches(ctx, decided.targets) > 0
        if started and ctx.request.method == "INVITE" and not ctx.final_sent:
            if ctx.timer is not None:
                ctx.timer.cancel()
            ring = decided.ring_timeout or TIMER_C
            ctx.timer = self.edge.call_later(ring, self._timer_c, ctx)
            if self.dialogs is not None:
                self._ringing(ctx, ring)
        return started

    def _ringing(self, ctx: Context, ring: float) -> None:
        """The call rings for at most ``ring`` seconds (Timer C): its ``early`` dialog row,
        one queued write (the INVITE does not wait for SQL), so the call limit counts it
        on every worker and proxy; forwarded again (a call diversion), the row's bound
        moves.  One row per call (Call-ID and From tag), whatever the branches."""
        req = ctx.request
        if ctx.early:
            self.dialogs.ringing(req.call_id or "", req.from_.tag or "", early_bound(ring))
            return
        inbound = ctx.inbound
        self.dialogs.early(DialogInfo(
            call_id=req.call_id or "", from_tag=req.from_.tag or "", to_tag="", caller=ctx.caller,
            callee=ctx.callee, caller_contact=req.headers.get("contact") or "", caller_cseq=req.cseq[0],
            caller_source=str(inbound.source), proxy=str(inbound.listener),
            media_relay=self.responses.relay_of(req.call_id or "") if self.media is not None else "",
            billing_party=ctx.billing_party, tariff=ctx.tariff if ctx.prepaid else ""), early_bound(ring))
        ctx.early = True

    def next_target(self, ctx: Context) -> bool:
        """Start the next of a serial fork's targets that can be sent to; False when none
        is left."""
        while ctx.pending:
            if self._start_branches(ctx, [ctx.pending.pop(0)]):
                if self.failover_timeout:
                    self.edge.call_later(self.failover_timeout, self._unanswered, ctx.branches[-1])
                return True
        return False

    def _unanswered(self, branch: Branch) -> None:
        """A serial fork's target has not answered at all within the failover timeout (like
        OpenSIPS's fr_timer): counted as a 408, so the next target is tried now rather than
        when the transaction times out (32 s).  A provisional answer coming later gets a
        CANCEL (9.1: not before one)."""
        ctx = branch.ctx
        if ctx is None or branch.final is not None or branch.provisional or ctx.final_sent:
            return
        log.info("%s to %s: no answer in %.0f s, trying the next target (call-id %s)",
                 branch.request.method, branch.dest, self.failover_timeout, ctx.request.call_id)
        branch.final = make_response(branch.request, 408, "No Answer From Target")
        branch.cancel_pending = branch.request.method == "INVITE"
        self.responses.check_done(ctx)

    def _start_branches(self, ctx: Context, targets: list) -> int:
        """A branch (a client transaction) for each of ``targets``; how many started."""
        req = ctx.request
        record_route = ctx.record_route
        edge = self.edge
        mark = MAGIC_COOKIE + loop_hash(req) + "."
        mf = req.max_forwards
        max_forwards = str((mf if mf is not None else 70) - 1)
        strip = ctx.consumed_credentials
        rr_of = edge.record_route_listener
        here = rr_of(ctx.inbound.listener)
        started = []
        for uri, dest, path in targets:
            out = edge.listener_for(dest.transport, dest.host)
            if out is None:
                continue
            r = req.copy()
            headers = r.headers
            if uri is not None:
                r.uri = uri
            if strip:
                headers.remove("proxy-authorization")
            if ctx.strip_caller_id:
                headers.remove("p-asserted-identity")
                headers.remove("remote-party-id")
            for name, value in ctx.headers:
                headers.add(name, value)
            headers.set("Max-Forwards", max_forwards)
            if record_route:
                headers.add("Record-Route", _rr(here), top=True)
                if here is not out and (here.transport, ":" in here.host) != (out.transport, ":" in out.host):
                    headers.add("Record-Route", _rr(rr_of(out)), top=True)
            for p in reversed(path):
                headers.add("Route", p, top=True)
            branch_id = mark + edge.branch_suffix()
            headers.add("Via", edge.via_for(out, branch_id), top=True)
            branch = Branch(ctx, r, dest)
            if uri is not None and dest.transport == "udp" and not path:
                plain = self.edge.resolve(uri)
                branch.nat = plain is not None and (plain.host, plain.port) != (dest.host, dest.port)
            ctx.branches.append(branch)
            started.append((branch, branch_id))
        for branch, branch_id in started:
            branch.txn = edge.send_request(branch.request, branch.dest, branch_id)
            if branch.txn is not None:
                branch.txn.user_data = branch
        return len(started)

    def _forward_ack(self, req: Request, inbound: Inbound) -> None:
        """ACK for a 2xx: stateless, along the Route set (16.11)."""
        mf = req.max_forwards
        if mf == 0:
            return
        # read before the Route set changes (a change voids the message's parsed views)
        top = inbound.via if inbound.via is not None else req.vias[0]
        seed = (top.branch or "") + (req.call_id or "")
        popped = self._preprocess_routes(req)
        if req.headers.get("route"):
            dest = self.edge.resolve(apply_route_set(req))
        elif popped:
            dest = self.edge.resolve(req.uri)
        else:
            return  # not routed through us: drop rather than relay
        if dest is None:
            return
        self._media_ack(req)
        out = self.edge.listener_for(dest.transport, dest.host)
        if out is None:
            return
        req.headers.set("Max-Forwards", str((mf if mf is not None else 70) - 1))
        branch = MAGIC_COOKIE + hashlib.sha1(seed.encode("utf-8", "surrogateescape")).hexdigest()[:20]
        req.headers.add("Via", self.edge.via_for(out, branch), top=True)
        self.edge.forward(req, dest)

    # -- CANCEL (16.10) -----------------------------------------------------------------

    def _cancel(self, req: Request) -> Response:
        invite = self.edge.match_cancel(req)
        if invite is None:
            return make_response(req, 481, to_tag=new_tag())
        ctx = invite.user_data
        if ctx is None:
            if invite.state == "Proceeding":
                self.edge.respond(invite, make_response(invite.request, 487, to_tag=new_tag()))
        elif isinstance(ctx, Context) and not ctx.final_sent:
            ctx.cancelled = True
            self._cancel_branches(ctx)
        return make_response(req, 200, to_tag=new_tag())

    # ================================================== transaction bookkeeping ===

    def on_terminated(self, txn: Transaction) -> None:
        """Unlink what a finished transaction tied together (server transaction <-> its
        context, client transaction <-> its branch, context <-> branches): those reference
        cycles otherwise left every call's messages to the cyclic garbage collector, which
        then spent a tenth of the CPU walking them.  Nothing reaches a terminated
        transaction any more (the layer forgot it), so its user data is not needed."""
        data = txn.user_data
        txn.user_data = None
        if isinstance(data, Branch):
            data.txn = None
            ctx = data.ctx
        elif isinstance(data, Context):
            data.server_done = True
            ctx = data
        else:
            return
        if ctx.server_done and all(b.txn is None for b in ctx.branches):
            for b in ctx.branches:
                b.ctx = None  # type: ignore[assignment]
            ctx.branches = []

    # -- media relay seam: M's sipproxy.media.relay plugs in here ------------------------

    def _media_offer(self, req: Request) -> None:
        if self.media is not None:
            self.media.offer(self, req)

    def _media_ack(self, req: Request) -> None:
        if self.media is not None:
            self.media.ack(self, req)

    def _media_release(self, req: Request) -> dict | None:
        """Release the call's relay session; its media summary (None: none)."""
        if self.media is not None:
            return self.media.release(self, req)
        return None


_RR: dict[Any, str] = {}


def _rr(lst: Any) -> str:
    """Our Record-Route value for listener ``lst`` (made once per listener)."""
    value = _RR.get(lst)
    if value is None:
        host = f"[{lst.host}]" if ":" in lst.host else lst.host
        transport = "" if lst.transport == "udp" else f";transport={lst.transport}"
        value = _RR[lst] = f"<sip:{host}:{lst.port}{transport};lr>"
    return value
