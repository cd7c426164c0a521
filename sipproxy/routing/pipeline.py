"""The routing of an initial request, as a pipeline of steps (the routing guide's order).

Each step looks at the request being routed (a :class:`RouteRequest`) and answers one of:

* a :class:`~sipproxy.sip.messages.Response` -- the answer, routing ends (404, 480, a
  hook's reply ...);
* :class:`Targets` -- where to forward the request, routing ends;
* None -- not this step's business: the next step decides.

The steps run after authentication (the proxy's, RFC 3261 16.3 and 22) and in the guide's
order; the site hooks are called at their points.  Today the pipeline is: the
``preprocess_uri`` hook, the ``handle_local_extensions`` hook, the local user (alias ->
account -> registered contacts, then the ``postprocess_request`` hook), and the outbound
placeholder (the ``handle_outgoing_peers`` and ``preprocess_pstn`` hooks, then 404 for a
number and 403 otherwise).  Quick dial, emergency numbers, ENUM, call diversion, PSTN/LCR
and RFC 3263 peers are the routing issue's steps, to be added here.

Sans-I/O: the data comes through the directory and location interfaces, addresses through
the edge's ``resolve`` and ``connected`` (:class:`sipproxy.proxy.interface.Edge`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from sipproxy.routing.hookapi import HookAPI
from sipproxy.routing.hooks import Hooks
from sipproxy.sip.addressing import Inbound, Peer
from sipproxy.sip.ids import new_tag
from sipproxy.sip.parser import Request, Response, make_response
from sipproxy.sip.uri import URI, ParseError, parse_name_addr, parse_uri, sip_id

log = logging.getLogger("sipproxy.routing")

__all__ = ["Target", "Targets", "RouteRequest", "Router", "MAX_ALIAS_DEPTH"]

#: aliases are followed this deep; a longer chain is treated as a loop
MAX_ALIAS_DEPTH = 5


class Target(NamedTuple):
    """One place to fork to: the new Request-URI (None: unchanged), the next hop, and the
    Route values to push (a registration's Path, RFC 3327)."""

    uri: URI | None
    dest: Peer
    path: tuple[str, ...]


class Targets(NamedTuple):
    """A step's decision to forward: to ``targets``, naming ``callee`` (a SipId, for logs
    and the dialog), with the callee's ring timeout (None: the default).  In parallel
    (forking to a user's contacts), or ``serial``: one after the other, the next when every
    earlier one failed with 408 or a 5xx (gateways of LCR, servers of RFC 3263)."""

    targets: list[Target]
    callee: str
    ring_timeout: float | None = None
    serial: bool = False


@dataclass(slots=True)
class RouteRequest:
    """What the steps know of the request being routed."""

    request: Request
    inbound: Inbound
    #: the authenticated local subscriber who sends it (None: not one of ours)
    account: Any
    #: the Request-URI named a local domain (or this proxy) when the request came
    to_local: bool
    #: who pays (a SipId, a trusted peer's address ...): the sender's account by default
    billing_party: str = ""


Step = Callable[[RouteRequest], "Response | Targets | None"]


class Router:
    """The routing guide's pipeline for initial requests (see the module's text)."""

    def __init__(self, directory: Any, location: Any, edge: Any, hooks: Hooks | None = None,
                 *, server_domain: str = "") -> None:
        self.directory = directory
        self.location = location
        self.edge = edge
        self.hooks = hooks or Hooks()
        self.server_domain = server_domain
        self.steps: list[Step] = [
            self.preprocess_uri, self.local_extensions, self.local_user, self.outbound,
        ]

    def route(self, call: RouteRequest) -> Response | Targets:
        if not call.billing_party and call.account is not None:
            call.billing_party = call.account.sip_id
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
        api = HookAPI(self, call)
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

    # -- primitives the steps and the hooks share ------------------------------------------

    def enum_lookup(self, uri: URI) -> URI | None:
        """ENUM on ``uri``'s number: coming with the routing issue's ENUM step (None)."""
        return None

    def send_out(self, call: RouteRequest) -> Response | Targets:
        """Forward to the Request-URI's server (its address record; RFC 3263's NAPTR and
        SRV steps come with the routing issue)."""
        req = call.request
        dest = self.edge.resolve(req.uri)
        if dest is None:
            return make_response(req, 502, "Unresolvable Destination", to_tag=new_tag())
        return Targets([Target(None, dest, ())], sip_id(req.uri))

    def pstn(self, call: RouteRequest) -> Response | Targets:
        """A number for the PSTN: the ``preprocess_pstn`` hook, then LCR (coming with the
        routing issue: until then 404)."""
        hooked = self.hook("preprocess_pstn", call)
        if hooked is not None:
            return hooked
        return make_response(call.request, 404, "No Route To Destination", to_tag=new_tag())

    # -- the steps -----------------------------------------------------------------------

    def preprocess_uri(self, call: RouteRequest) -> Response | Targets | None:
        return self.hook("preprocess_uri", call)

    def local_extensions(self, call: RouteRequest) -> Response | Targets | None:
        if not self.is_local(call.request.uri):
            return None
        return self.hook("handle_local_extensions", call)

    def local_user(self, call: RouteRequest) -> Response | Targets | None:
        """A local Request-URI: alias -> account (404) -> registered contacts (480)."""
        req = call.request
        if not self.is_local(req.uri):
            return None
        user, domain = req.uri.user, req.uri.host.lower()
        if not user:
            return make_response(req, 404, "Not Found", to_tag=new_tag())
        for _ in range(MAX_ALIAS_DEPTH):
            target = self.directory.alias(user, domain)
            if target is None:
                break
            user, domain = target[0], target[1].lower()
        account = self.directory.account(user, domain)
        if account is None:
            return make_response(req, 404, "User Not Found", to_tag=new_tag())
        bindings = self.location.lookup(account.username, account.domain)
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
        decided = Targets(targets, account.sip_id, account.timeout or None)
        hooked = self.hook("postprocess_request", call)
        return hooked if hooked is not None else decided

    def outbound(self, call: RouteRequest) -> Response | Targets:
        """Not local: a number goes to :meth:`pstn`; another domain to the
        ``handle_outgoing_peers`` hook, then 403 (RFC 3263 peers come with the routing issue)."""
        req = call.request
        user = req.uri.user or ""
        if req.uri.scheme.lower() == "tel" or user.lstrip("+").isdigit():
            return self.pstn(call)
        hooked = self.hook("handle_outgoing_peers", call)
        if hooked is not None:
            return hooked
        return make_response(req, 403, "Outbound Routing Not Available", to_tag=new_tag())
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
