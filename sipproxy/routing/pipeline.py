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

from sipproxy.routing.hooks import Hooks
from sipproxy.sip.addressing import Inbound, Peer
from sipproxy.sip.ids import new_tag
from sipproxy.sip.parser import Request, Response, make_response
from sipproxy.sip.uri import URI, ParseError, parse_name_addr, parse_uri

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
    #: the Request-URI names a local domain (or this proxy)
    to_local: bool


Step = Callable[[RouteRequest], "Response | Targets | None"]


class Router:
    """The routing guide's pipeline for initial requests (see the module's text)."""

    def __init__(self, directory: Any, location: Any, edge: Any, hooks: Hooks | None = None) -> None:
        self.directory = directory
        self.location = location
        self.edge = edge
        self.hooks = hooks or Hooks()
        self.steps: list[Step] = [
            self.preprocess_uri, self.local_extensions, self.local_user, self.outbound,
        ]

    def route(self, call: RouteRequest) -> Response | Targets:
        for step in self.steps:
            outcome = step(call)
            if outcome is not None:
                return outcome
        return make_response(call.request, 404, "No Route To Destination", to_tag=new_tag())

    # -- the steps -----------------------------------------------------------------------

    def preprocess_uri(self, call: RouteRequest) -> Response | None:
        return self.hooks.call("preprocess_uri", call.request, account=call.account)

    def local_extensions(self, call: RouteRequest) -> Response | None:
        if not call.to_local:
            return None
        return self.hooks.call("handle_local_extensions", call.request, inbound=call.inbound)

    def local_user(self, call: RouteRequest) -> Response | Targets | None:
        """A local Request-URI: alias -> account (404) -> registered contacts (480)."""
        if not call.to_local:
            return None
        req = call.request
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
        hooked = self.hooks.call("postprocess_request", req, targets=targets)
        if hooked is not None:
            return hooked
        return Targets(targets, account.sip_id, account.timeout or None)

    def outbound(self, call: RouteRequest) -> Response:
        """Placeholder for PSTN / LCR / ENUM / RFC 3263 peers (the routing issue)."""
        req = call.request
        hooked = self.hooks.call("handle_outgoing_peers", req, account=call.account)
        if hooked is not None:
            return hooked
        user = req.uri.user or ""
        if req.uri.scheme.lower() == "tel" or user.lstrip("+").isdigit():
            hooked = self.hooks.call("preprocess_pstn", req, account=call.account)
            if hooked is not None:
                return hooked
            return make_response(req, 404, "No Route To Destination", to_tag=new_tag())
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
