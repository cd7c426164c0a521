"""The routing guide's steps for numbers and other domains: emergency numbers, quick dial,
ENUM, the PSTN through LCR, and RFC 3263 peers.

Each function is a step of :class:`sipproxy.routing.pipeline.Router` (it gets the router and
the :class:`RouteRequest`) and answers a response, targets, or None (the next step decides).
Who may go where (the guide's AAA tables):

* a local subscriber may call any SIP address, and PSTN numbers when its account has PSTN
  access (``free-pstn`` group, or prepaid); emergency numbers always;
* a trusted peer (a PBX, by source address) reaches local users, ENUM results, and -- when
  provisioned for transit -- the PSTN (ENUM first, LCR when the number is not found) and
  other domains;
* a PSTN gateway (by source address) reaches local users through ENUM: 404 for a number
  ENUM does not know, 403 for a result that is not local;
* anyone else reaches local users only: 404 for a number that is nobody's.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sipproxy.auth import policy
from sipproxy.routing import diversion, emergency, lcr, quickdial
from sipproxy.routing.decision import RouteRequest, Target, Targets
from sipproxy.sip.addressing import Peer, is_ip
from sipproxy.sip.ids import new_tag
from sipproxy.sip.parser import Response, make_response
from sipproxy.sip.uri import ParseError, parse_uri, sip_id

if TYPE_CHECKING:
    from sipproxy.routing.pipeline import Router

log = logging.getLogger("sipproxy.routing")

__all__ = ["emergency_call", "quick_dial", "number", "pstn", "other_domain", "send_out", "divert"]


def _refuse(call: RouteRequest, status: int, reason: str) -> Response:
    log.info("%s %s: %d %s", call.request.method, call.request.uri, status, reason)
    return make_response(call.request, status, reason, to_tag=new_tag())


def refuse(router: Router, call: RouteRequest, refusal: policy.Refusal, who: str = "") -> Response:
    """Answer an authorization refusal: its status and reason, and a ``Warning: 399``
    header saying why (RFC 3261 20.43).  The attempt is logged with the account, the
    source address and the destination."""
    req = call.request
    account = who or (call.account.sip_id if call.account is not None else sip_id(req.from_.uri))
    log.warning("authorization: %s from %s (source %s) to %s refused: %d %s (%s; call-id %s)",
                req.method, account, call.inbound.source.host, req.uri, refusal.status,
                refusal.reason, refusal.warning, req.call_id)
    host = router.server_domain or call.inbound.listener.host
    return make_response(req, refusal.status, refusal.reason, to_tag=new_tag(),
                         headers=[policy.warning_header(host, refusal.warning)])


def emergency_call(router: Router, call: RouteRequest) -> Response | Targets | None:
    """An emergency number dialled by a local subscriber goes to its region's destination
    (a URI, or a number through LCR); anyone else is refused."""
    if router.data is None or not router.emergency_numbers:
        return None
    req = call.request
    if not (req.uri.scheme.lower() == "tel" or router.target_is_local(call)):
        return None
    decision = emergency.decide(req.uri.user or "", call.account, router.emergency_numbers,
                                router.data.emergency)
    if decision is None:
        return None
    if isinstance(decision, emergency.EmergencyRefused):
        return _refuse(call, decision.status, decision.reason)
    call.emergency = True  # no authorization rule refuses it
    log.info("emergency call %s from %s (region %r) -> %s", decision.number, call.billing_party,
             decision.region, decision.destination)
    if decision.kind == emergency.URI:
        try:
            req.uri = parse_uri(decision.target)
        except ParseError:
            return _refuse(call, 500, "Bad Emergency Destination")
        return None if router.target_is_local(call) else send_out(router, call)
    # a number is routed like a dialled one: national or international forms to E.164
    return pstn(router, call, router.plan.normalise(decision.target) or decision.target, checked=True)


def quick_dial(router: Router, call: RouteRequest) -> None:
    """A short number dialled by an account with a quick dial prefix becomes the full
    address, when that is an account or alias here (the guide: 312080051 + 60).  An
    emergency number is never completed: it is the next step's."""
    req = call.request
    if call.account is None or not router.target_is_local(call):
        return None
    if emergency.is_emergency(req.uri.user or "", router.emergency_numbers):
        return None
    done = quickdial.complete(call.account, req.uri.user or "", req.uri.host.lower(), router.exists)
    if done is not None:
        uri = req.uri.copy()
        uri.user, uri.host = done.username, done.domain
        req.uri = uri
        log.debug("quick dial: %s", uri)
    return None


def number(router: Router, call: RouteRequest) -> Response | Targets | None:
    """A number that is nobody's here (no account or alias of that name): E.164 -> ENUM;
    a local result goes back to the local user step, another is routed out; no result is
    the PSTN for those who may go there and 404 for the rest."""
    req = call.request
    uri = req.uri
    if not (uri.scheme.lower() == "tel" or router.target_is_local(call)):
        return None
    e164 = router.plan.normalise_uri(uri)
    if e164 is None:
        return None
    peer = call.trusted
    if peer is None or getattr(peer, "enum_lookup", True):
        found = router.enum_lookup(uri, e164)
        if found is not None:
            log.info("ENUM %s -> %s (call-id %s)", e164, found, req.call_id)
            req.uri = found
            if router.target_is_local(call):
                return router.local_user(call, depth=1)
            if call.gateway:
                return _refuse(call, 403, "Invalid Destination")
            return other_domain(router, call, hooked=False, enum_result=True)
    if call.gateway:
        return _refuse(call, 404, "User Not Found")
    return pstn(router, call, e164)


def pstn(router: Router, call: RouteRequest, e164: str | None = None, *,
         checked: bool = False) -> Response | Targets:
    """To the PSTN: who may (``checked``: an emergency call, already decided), the
    ``preprocess_pstn`` hook, then the LCR attempts as a serial fork (next gateway, then
    next carrier, on 408/5xx)."""
    req = call.request
    if not checked:
        refused = _pstn_refusal(router, call)
        if refused is not None:
            return refused
    hooked = router.hook("preprocess_pstn", call)
    if hooked is not None:
        return hooked
    if e164 is None:
        e164 = router.plan.normalise_uri(req.uri)
    if e164 is None or router.data is None:
        return _refuse(call, 404, "No Route To Destination")
    refused = _rating(router, call, e164)  # (``checked`` too: a diverted call is paid for)
    if refused is not None:
        return refused
    peer = call.trusted
    originator = getattr(peer, "originator", "") if peer is not None else ""
    targets = []
    for attempt in lcr.attempts(router.data.lcr(), e164, originator):
        gw = attempt.gateway
        host = gw.host if is_ip(gw.host) else next(iter(router.addresses(gw.host)), None)
        if host is None:
            continue
        try:
            uri = parse_uri(attempt.uri)
        except ParseError:
            continue
        targets.append(Target(uri, Peer(gw.transport.lower(), host.strip("[]"), gw.port), ()))
    if not targets:
        return _refuse(call, 404, "No Route To Destination")
    call.destination = "pstn"
    log.info("%s %s to the PSTN as %s: %d gateway(s) (call-id %s)", req.method, e164,
             targets[0].uri, len(targets), req.call_id)
    return Targets(targets, e164, router.outgoing_timeout, serial=True,
                   headers=router.caller_id(call), tariff=call.tariff, prepaid=call.prepaid)


def _pstn_refusal(router: Router, call: RouteRequest) -> Response | None:
    """The PSTN authorization of the guide: accounts with PSTN access (and within their
    monthly quota, a prepaid one with credit: :func:`sipproxy.auth.policy.pstn`), trusted
    peers with transit; nobody else."""
    account, peer = call.account, call.trusted
    if account is not None:
        directory = router.directory
        month_cost = getattr(directory, "month_cost", None)
        refusal = policy.pstn(
            account, month_cost=(lambda: month_cost(call.billing_party or account.sip_id))
            if month_cost is not None else (lambda: 0), credit=router.rating is None)
        return refuse(router, call, refusal) if refusal is not None else None
    if peer is not None and not call.gateway and getattr(peer, "transit", False):
        return None
    return _refuse(call, 403 if peer is not None else 404,
                   "PSTN Transit Not Allowed" if peer is not None else "User Not Found")


def _rating(router: Router, call: RouteRequest, e164: str) -> Response | None:
    """Rate a subscriber's call to ``e164`` (``router.rating``: the paying account's rating
    profiles) and carry the rating with it (``call.tariff``: the accounting row's price).
    A prepaid payer must have a rate there, and its balance must pay the first increment
    at that rate (rule 4 of :mod:`sipproxy.auth.policy`); its call is cut off and debited
    by the rating (``call.prepaid``).  The payer is the billing party (a diverting account
    pays for the diverted call) or the caller; an emergency call is not rated."""
    if router.rating is None or call.emergency:
        return None
    payer = call.billing_party or (call.account.sip_id if call.account is not None else "")
    if "@" not in payer:  # no local account pays (a trusted peer's billing id, nobody)
        return None
    rated = router.rating(payer, e164)
    if rated is None:
        return None
    if rated.prepaid:
        if rated.tariff is None:
            return refuse(router, call, policy.NOT_RATED, payer)
        if rated.balance < rated.first_increment or rated.balance <= 0:
            return refuse(router, call, policy.CREDIT, payer)
    call.tariff, call.prepaid = rated.tariff or "", rated.prepaid
    return None


def other_domain(router: Router, call: RouteRequest, *, hooked: bool = True,
                 enum_result: bool = False) -> Response | Targets:
    """A non-local domain (the ``handle_outgoing_peers`` hook first): for subscribers, for
    trusted peers reaching an ENUM result (PBX to PBX) and for peers allowed transit, to
    the servers RFC 3263 finds, in failover order."""
    if hooked:
        decided = router.hook("handle_outgoing_peers", call)
        if decided is not None:
            return decided
    peer = call.trusted
    if call.account is None and (peer is None or call.gateway or not (
            enum_result or getattr(peer, "transit", False))):
        return _refuse(call, 403, "Relaying Denied")
    return send_out(router, call)


def send_out(router: Router, call: RouteRequest) -> Response | Targets:
    """Forward to the Request-URI's servers (RFC 3263), the next on 408/5xx."""
    req = call.request
    peers = router.locate(req.uri)
    if not peers:
        return _refuse(call, 404 if req.uri.host and not is_ip(req.uri.host) else 502,
                       "Destination Not Found")
    call.destination = "peer"
    return Targets([Target(None, p, ()) for p in peers], sip_id(req.uri), router.outgoing_timeout,
                   serial=True, headers=router.caller_id(call, trusted=False))


def caller_id(account: Any, header: str) -> tuple[tuple[str, str], ...]:
    """The asserted identity of a local subscriber for the PSTN or a PBX (RFC 3325
    P-Asserted-Identity, or Remote-Party-ID): the account's ``rpid``, else its SipId."""
    if account is None:
        return ()
    rpid = (getattr(account, "rpid", "") or "").strip()
    if rpid:
        value = f"<sip:{rpid}@{account.domain}>" if "@" not in rpid and ":" not in rpid else (
            rpid if rpid.startswith("<") else f"<{rpid if ':' in rpid else 'sip:' + rpid}>")
    else:
        value = f"<sip:{account.sip_id}>"
    if header == "rpid":
        return (("Remote-Party-ID", f"{value};party=calling;screen=yes;privacy=off"),)
    return (("P-Asserted-Identity", value),)


def divert(router: Router, call: RouteRequest, account: Any, condition: str | None,
           depth: int) -> Response | Targets | None:
    """Call diversion of a call to local ``account`` under ``condition`` (before the fork:
    unconditional, not online; after it: busy, no answer, unavailable): a Diversion header
    (RFC 5806) is added, the Request-URI becomes the target, the diverting account pays, and
    the target is routed (a local user, the PSTN through LCR, another domain).  None: no
    diversion (not set, a loop, too many, no PSTN access, voicemail without a server)."""
    if condition is None or router.data is None:
        return None
    req = call.request
    previous = req.headers.getall("diversion")
    decided = diversion.decide(
        account, router.data.diversions(account.username, account.domain), condition,
        is_local_domain=router.directory.is_local_domain,
        prior=diversion.prior_diversions(previous), diverted_by=diversion.diverting_parties(previous),
        max_diversions=router.max_diversions)
    if isinstance(decided, diversion.NoDivert) or decided.uri is None:
        log.info("call %s to %s: %s, not diverted (%s)", req.call_id, account.sip_id, condition,
                 getattr(decided, "why", "no voicemail server"))
        return None
    try:
        target = parse_uri(decided.uri)
    except ParseError:
        return None
    if decided.kind == diversion.NUMBER:
        # the diverting account pays: its barring prefixes and the PSTN's rules (quota,
        # prepaid credit) are its own
        month_cost = getattr(router.directory, "month_cost", None)
        refusal = policy.outgoing(account, e164=router.plan.normalise_uri(target), call=False,
                                  active_calls=lambda: 0) or policy.pstn(
            account, month_cost=(lambda: month_cost(account.sip_id)) if month_cost is not None else (lambda: 0))
        if refusal is not None:
            log.info("call %s to %s: %s, not diverted (%s)", req.call_id, account.sip_id, condition,
                     refusal.reason)
            return None
    req.headers.add("Diversion", decided.header, top=True)
    req.uri = target
    call.billing_party = account.sip_id
    log.info("call %s to %s diverted (%s) to %s", req.call_id, account.sip_id, decided.reason, target)
    if decided.kind == diversion.LOCAL:
        # a short number of the diverting account's quick dial range (diversion.classify)
        done = quickdial.complete(account, target.user or "", target.host.lower(), router.exists)
        if done is not None:
            target = target.copy()
            target.user, target.host = done.username, done.domain
            req.uri = target
        return router.local_user(call, depth=depth + 1)
    if decided.kind == diversion.NUMBER:
        return pstn(router, call, checked=True)
    return send_out(router, call)
