"""The routing of an initial request, as a pipeline of steps (the routing guide's order).

Each step looks at the request being routed (a :class:`RouteRequest`) and answers one of:

* a :class:`~sipproxy.sip.messages.Response` -- the answer, routing ends (404, 480, a
  hook's reply ...);
* :class:`Targets` -- where to forward the request, routing ends;
* None -- not this step's business: the next step decides.

The steps run after authentication (the proxy's, RFC 3261 16.3 and 22; a trusted peer or a
PSTN gateway is known by its source address instead), in the order of DESIGN.md, with the
site hooks at their points (:mod:`.hooks`):

1. the ``preprocess_uri`` hook; ``handle_incoming_pstn`` for requests from a trusted peer
   or a PSTN gateway;
2. quick dial, then emergency numbers (by the caller's region) -- :mod:`.outbound`;
3. the ``handle_local_extensions`` hook, then the local user: alias -> account ->
   registered contacts (480 when none), then ``postprocess_request``;
4. a number that is nobody's here: ENUM (RFC 6116) -> a local user, or routed out; no
   result: the PSTN through LCR for those allowed (``preprocess_pstn`` first), else 404;
5. another domain: ``handle_outgoing_peers``, then RFC 3263 servers in failover order.

Call diversion (:func:`outbound.divert`): unconditional and not-online before the fork (in
step 3), busy, no-answer and unavailable after it (the targets' ``after``).  Sans-I/O: the data comes through the directory, location and
routing-data objects, DNS through a :class:`~sipproxy.routing.resolver.Resolver`, addresses
through the edge (:class:`sipproxy.proxy.interface.Edge`).
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Callable, Iterable
from typing import Any

from sipproxy.auth import policy
from sipproxy.routing import diversion, lcr, outbound
from sipproxy.routing.decision import RouteRequest, Target, Targets
from sipproxy.routing.hookapi import HookAPI
from sipproxy.routing.hooks import Hooks
from sipproxy.routing.numbers import NumberPlan
from sipproxy.sip.addressing import Peer, is_ip
from sipproxy.sip.ids import new_tag
from sipproxy.sip.parser import Response, make_response
from sipproxy.sip.uri import URI, ParseError, parse_name_addr, parse_uri

log = logging.getLogger("sipproxy.routing")

__all__ = ["Target", "Targets", "RouteRequest", "Router", "MAX_ALIAS_CHAIN", "MAX_DEPTH"]

#: an alias chain longer than this is refused like a loop (a provisioning mistake)
MAX_ALIAS_CHAIN = 100
#: the local user step is re-entered at most this deep (an ENUM result, a diversion target)
MAX_DEPTH = 5

Step = Callable[[RouteRequest], "Response | Targets | None"]


class Router:
    """The routing guide's pipeline for initial requests (see the module's text)."""

    def __init__(self, directory: Any, location: Any, edge: Any, hooks: Hooks | None = None,
                 *, server_domain: str = "", data: Any = None, resolver: Any = None,
                 plan: NumberPlan | None = None, emergency_numbers: Iterable[str] = (),
                 outgoing_timeout: float | None = None, caller_id_header: str = "pai",
                 max_diversions: int = 5) -> None:
        self.directory = directory
        self.location = location
        self.edge = edge
        self.hooks = hooks or Hooks()
        self.server_domain = server_domain
        #: trusted peers, LCR, emergency mappings (sipproxy.directory.routing.RoutingData)
        self.data = data
        #: ENUM and RFC 3263 (a routing.resolver.Resolver); None: the edge's resolve only
        self.resolver = resolver
        self.plan = plan or NumberPlan()
        self.emergency_numbers = tuple(emergency_numbers)
        #: ring timeout of calls to the PSTN and other domains (the guide's OUTGOING_TIMEOUT)
        self.outgoing_timeout = outgoing_timeout
        self.caller_id_header = caller_id_header
        self._gateways: tuple[Any, frozenset[str]] | None = None  # (LCR table, its addresses)
        #: at most this many diversions of one call (RFC 5806 counters)
        self.max_diversions = max_diversions
        #: the calls of a caller (a SipId) this process has queued an early dialog row for
        #: that is not written yet, minus those whose removal is queued (the dialog store's
        #: ``unflushed``, see sipproxy.dialog.pending); the written ones are the directory's
        #: ``active_calls`` (the dialogs table, every worker and proxy)
        self.in_progress: Callable[[str], int] = lambda caller: 0
        #: ``rating(payer, e164)``: a prepaid payer's rating for a PSTN number (an object
        #: with ``prepaid``, ``balance``, ``tariff``, ``first_increment``:
        #: sipproxy.dialog.prepaid.Rated), read from SQL by the app; None: no prepaid rating
        self.rating: Callable[[str, str], Any] | None = None
        #: the time (UTC) the accept rules are checked at
        self.now: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.UTC)
        self.steps: list[Step] = [
            self.preprocess_uri, self.incoming_pstn, self.quick_dial, self.emergency,
            self.authorize, self.local_extensions, self.local_user, self.outbound,
        ]

    def route(self, call: RouteRequest) -> Response | Targets:
        if not call.billing_party:  # the guide: the subscriber, else the peer or gateway
            if call.account is not None:
                call.billing_party = call.account.sip_id
            elif call.trusted is not None:
                call.billing_party = getattr(call.trusted, "billing_id", "") or call.inbound.source.host
        for step in self.steps:
            outcome = step(call)
            if outcome is not None:
                return outcome
        return make_response(call.request, 404, "No Route To Destination", to_tag=new_tag())

    def hook(self, point: str, call: RouteRequest) -> Response | Targets | None:
        """Run the site hook of ``point``: its decision, or None to go on.  A hook that
        raised leaves the Request-URI as it found it."""
        if point not in self.hooks:
            return None
        api = HookAPI(self, call, point)
        uri = call.request.uri
        if not self.hooks.run(point, call.request, api):
            call.request.uri = uri
            return None
        return api.outcome

    def preprocess_request(self, call: RouteRequest) -> Response | Targets | None:
        """The first hook, before authentication (the proxy calls it)."""
        return self.hook("preprocess_request", call)

    def is_local(self, where: URI | str) -> bool:
        """A URI (or a domain) served here: a local domain, or this proxy's own address."""
        if isinstance(where, str):
            return self.directory.is_local_domain(where)
        return bool(where.is_sip and (self.directory.is_local_domain(where.host)
                                      or self.edge.is_me(where.host, where.port)))

    def target_is_local(self, call: RouteRequest) -> bool:
        """:meth:`is_local` of the request's current Request-URI, remembered for that URI
        (the steps ask it again and again; a step that routes elsewhere sets a new URI)."""
        uri = call.request.uri
        known = call.local
        if known is None or known[0] is not uri:
            known = call.local = (uri, self.is_local(uri))
        return known[1]

    # -- primitives the steps and the hooks share ------------------------------------------

    def trusted_source(self, ip: str) -> tuple[Any, bool]:
        """(the trusted peer or gateway at ``ip`` or None, whether it is a PSTN gateway)."""
        if self.data is None:
            return None, False
        peer = self.data.trusted_peer(ip)
        if peer is not None:
            return (None, False) if peer.blocked else (peer, False)
        if ip in self.gateway_addresses():
            return ip, True
        return None, False

    def gateway_addresses(self) -> frozenset[str]:
        """The addresses of every PSTN gateway: provisioned by address, or by a DNS name
        resolved once per version of the LCR table."""
        table = self.data.lcr()
        known = self._gateways
        if known is None or known[0] is not table:
            found: set[str] = set()
            for host in table.gateway_hosts:
                found.update([host] if is_ip(host) else self.addresses(host))
            known = self._gateways = (table, frozenset(found))
        return known[1]

    def exists(self, user: str, domain: str) -> bool:
        """An account or an alias of that name is provisioned here."""
        return (self.directory.account(user, domain) is not None
                or self.directory.alias(user, domain) is not None)

    def enum_lookup(self, uri: URI, e164: str | None = None) -> URI | None:
        """ENUM on ``uri``'s number (E.164 after the guide's normalisation; ``e164``: that
        number when the caller has it already): the first SIP URI of the answer, or None."""
        if e164 is None:
            e164 = self.plan.normalise_uri(uri)
        if e164 is None or self.resolver is None:
            return None
        for text in self.resolver.enum(e164):
            try:
                return parse_uri(text)
            except ParseError:
                continue
        return None

    def locate(self, uri: URI) -> list[Peer]:
        """The servers of ``uri`` in failover order (RFC 3263)."""
        if self.resolver is not None:
            return list(self.resolver.locate(uri))
        dest = self.edge.resolve(uri)
        return [dest] if dest is not None else []

    def addresses(self, host: str) -> list[str]:
        if self.resolver is not None:
            return list(self.resolver.address(host))
        return []

    def caller_id(self, call: RouteRequest, *, trusted: bool = True) -> tuple[tuple[str, str], ...]:
        """The caller id a local subscriber's call to the PSTN or another domain carries.
        ``trusted``: the destination is in our trust domain (RFC 3325: the PSTN gateways);
        a caller asking for ``Privacy: id`` gets none asserted to the others."""
        if not trusted and any("id" in (v.lower().replace(";", " ").split())
                               for v in call.request.headers.getall("privacy")):
            return ()
        return outbound.caller_id(call.account, self.caller_id_header)

    def send_out(self, call: RouteRequest) -> Response | Targets:
        return outbound.send_out(self, call)

    def pstn(self, call: RouteRequest, *, checked: bool = False) -> Response | Targets:
        return outbound.pstn(self, call, checked=checked)

    # -- the steps -----------------------------------------------------------------------

    def preprocess_uri(self, call: RouteRequest) -> Response | Targets | None:
        return self.hook("preprocess_uri", call)

    def incoming_pstn(self, call: RouteRequest) -> Response | Targets | None:
        """A trusted peer's or gateway's request: the ``handle_incoming_pstn`` hook, then a
        trusted peer's own number rewriting (its provisioned ``strip`` and ``prefix``)."""
        if call.trusted is None:
            return None
        hooked = self.hook("handle_incoming_pstn", call)
        if hooked is not None:
            return hooked
        peer = call.trusted
        user = call.request.uri.user
        if not call.gateway and user and (peer.strip or peer.prefix):
            uri = call.request.uri.copy()
            uri.user = lcr.peer_number(peer, user)
            call.request.uri = uri
        return None

    def quick_dial(self, call: RouteRequest) -> None:
        return outbound.quick_dial(self, call)

    def emergency(self, call: RouteRequest) -> Response | Targets | None:
        return outbound.emergency_call(self, call)

    def authorize(self, call: RouteRequest) -> Response | None:
        """The outgoing authorization of a local subscriber's request (after emergency
        numbers, which pass): blocked, barring prefixes on the destination's E.164 number,
        and the call limit (:func:`sipproxy.auth.policy.outgoing`); the PSTN's own rules
        (access, quota, prepaid credit) are :func:`outbound.pstn`'s."""
        account = call.account
        if account is None or call.emergency or call.trusted is not None:
            return None
        req = call.request
        uri = req.uri
        e164 = None
        if account.barring_prefixes and (uri.scheme.lower() == "tel" or self.target_is_local(call)):
            e164 = self.plan.normalise_uri(uri)
        refusal = policy.outgoing(account, e164=e164, call=req.method == "INVITE",
                                  active_calls=lambda: self.active_calls(account.sip_id))
        return outbound.refuse(self, call, refusal) if refusal is not None else None

    def active_calls(self, caller: str) -> int:
        """The calls ``caller`` has going: ringing or answered (the ``early`` and
        ``confirmed`` rows of the dialogs table, shared by every worker and proxy),
        corrected by this process's writes of them not applied yet -- each call counted
        once, by its row or, before the row is written, by this process's tally."""
        counted = getattr(self.directory, "active_calls", None)
        return max(0, (counted(caller) if counted is not None else 0) + self.in_progress(caller))

    def incoming_refusal(self, call: RouteRequest, account: Any) -> Response | None:
        """The incoming authorization of a call to local ``account``
        (:func:`sipproxy.auth.policy.incoming`): the ACL of the account's domain and the
        account's own, then the callee's rules; a trusted peer's calls skip both ACLs."""
        req = call.request
        if req.method != "INVITE":
            return None
        check_acl = call.trusted is None
        domain_acl = getattr(self.directory, "domain_acl", None)  # test doubles may have none
        refusal = policy.incoming(account, source_ip=call.inbound.source.host, caller=str(req.from_.uri),
                                  now=self.now(), check_acl=check_acl,
                                  domain_acl=domain_acl(account.domain) if check_acl and domain_acl else ())
        if refusal is None:
            return None
        return outbound.refuse(self, call, refusal, who=str(req.from_.uri))

    def local_extensions(self, call: RouteRequest) -> Response | Targets | None:
        if not self.target_is_local(call):
            return None
        return self.hook("handle_local_extensions", call)

    def local_user(self, call: RouteRequest, depth: int = 0) -> Response | Targets | None:
        """A local Request-URI: alias -> account -> registered contacts (480); a number
        that is nobody's goes to :func:`outbound.number` (ENUM, the PSTN), else 404."""
        req = call.request
        if not self.target_is_local(call):
            return None
        user, domain = req.uri.user, req.uri.host.lower()
        if not user:
            return make_response(req, 404, "Not Found", to_tag=new_tag())
        seen = {(user, domain)}
        while (target := self.directory.alias(user, domain)) is not None:
            user, domain = target[0], target[1].lower()
            if (user, domain) in seen or len(seen) > MAX_ALIAS_CHAIN:
                log.warning("alias loop at %s@%s (call-id %s)", user, domain, req.call_id)
                return make_response(req, 404, "Alias Loop", to_tag=new_tag())
            seen.add((user, domain))
        account = self.directory.account(user, domain)
        if account is None:
            by_number = outbound.number(self, call) if depth == 0 else None
            return by_number or make_response(req, 404, "User Not Found", to_tag=new_tag())
        refused = self.incoming_refusal(call, account)
        if refused is not None:
            return refused
        bindings = self.location.lookup(account.username, account.domain)
        diversions = self.data.diversions(account.username, account.domain) if self.data is not None else ()
        if diversions and depth <= MAX_DEPTH:
            diverted = outbound.divert(self, call, account,
                                       diversion.condition_before_fork(diversions, bool(bindings)), depth)
            if diverted is not None:
                return diverted
        if not bindings:
            return make_response(req, 480, "Temporarily Unavailable", to_tag=new_tag())
        targets = []
        for b in bindings:
            try:
                uri = parse_uri(b.contact)
            except ParseError:
                continue
            dest = self.binding_dest(b, uri)
            if dest is not None:
                targets.append(Target(uri, dest, b.path))
        if not targets:
            return make_response(req, 480, "Temporarily Unavailable", to_tag=new_tag())
        after = None
        if diversions and depth <= MAX_DEPTH:
            def after(statuses: list[int], ring_timeout_expired: bool) -> Response | Targets | None:
                condition = diversion.condition_after_fork(statuses, ring_timeout_expired)
                outcome = outbound.divert(self, call, account, condition, depth)
                if isinstance(outcome, Targets):  # the diverting account pays from here on
                    outcome = outcome._replace(billing_party=call.billing_party)
                return outcome
        call.destination = "endpoint"
        decided = Targets(targets, account.sip_id, account.timeout or None, after=after)
        hooked = self.hook("postprocess_request", call)
        return hooked if hooked is not None else decided

    def outbound(self, call: RouteRequest) -> Response | Targets:
        """Not local: a number (a tel: URI) to ENUM and the PSTN, another domain out."""
        if call.request.uri.scheme.lower() == "tel":
            return outbound.number(self, call) or outbound.pstn(self, call)
        return outbound.other_domain(self, call)

    # -- where to send -------------------------------------------------------------------

    def binding_dest(self, b: Any, uri: URI) -> Peer | None:
        """A registered contact's next hop: the connection the phone keeps open (TCP/TLS
        behind NAT), its NAT source (UDP behind NAT), else the Contact address."""
        if b.path:
            try:
                return self.edge.resolve(parse_name_addr(b.path[0]).uri)
            except ParseError:
                return None
        if b.received:
            try:
                src = Peer.parse(b.received)
            except ValueError:
                src = None
            if src is not None:
                if src.transport != "udp" and self.edge.connected(src):
                    return src
                if b.behind_nat and src.transport == "udp":
                    return src
        return self.edge.resolve(uri)
