"""The response context of a proxied request (RFC 3261 16.7) and the small decisions around it.

A request the proxy forwards becomes a :class:`Context` (its server transaction) with one
:class:`Branch` per target (a client transaction each).  :func:`best_response` is the 16.7
step 6 choice among the branches' final answers, :func:`loop_hash` the 16.6 step 8 value
that makes a looping request recognisable in our own Via, and :func:`sender_behind_nat` the
NAT test of the ``nat`` media policy.  :class:`Hooks` is the site hook dispatcher seam.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from typing import TYPE_CHECKING, Any

from sipproxy.sip.parser import Request, Response
from sipproxy.sip.uri import ParseError

if TYPE_CHECKING:
    from sipproxy.runtime.lanes import Handle
    from sipproxy.runtime.transport import Inbound, Peer
    from sipproxy.sip.transaction.machine import Transaction

__all__ = ["HOOK_POINTS", "Hooks", "Branch", "Context", "best_response", "loop_hash",
           "sender_behind_nat", "fix_nated_contact", "via_shows_nat"]

HOOK_POINTS = (
    "preprocess_request", "preprocess_uri", "handle_local_extensions", "handle_incoming_pstn",
    "handle_outgoing_peers", "preprocess_pstn", "postprocess_request",
)


class Hooks:
    """The site hook dispatcher (DESIGN.md "Routing logic and site hooks").

    A hook may answer the request (return a Response) or let routing go on (None).  The
    loader of the siteconfig folder comes with a later issue; until then every point is a
    no-op, but the proxy already calls each at its place.
    """

    def call(self, point: str, request: Request, **context: Any) -> Response | None:
        return None


def loop_hash(request: Request) -> str:
    """What makes a request the same request again (16.6 step 8): a loop brings it back with
    all of these unchanged, a spiral (e.g. after alias translation) changes the URI."""
    h = request.headers
    data = "\0".join((
        str(request.uri), request.from_.tag or "", request.to.tag or "", request.call_id or "",
        str(request.cseq[0]), h.get("proxy-require") or "",
    ))
    return hashlib.sha1(data.encode("utf-8", "surrogateescape")).hexdigest()[:12]


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
                 "server_done")

    def __init__(self, request: Request, txn: Transaction, inbound: Inbound, caller: str,
                 callee: str) -> None:
        self.request = request
        self.txn = txn
        self.inbound = inbound
        self.branches: list[Branch] = []
        self.final_sent = False
        self.cancelled = False
        self.timer: Handle | None = None  # Timer C, on the core's timer wheel
        self.timed_out = False
        self.caller = caller
        self.callee = callee
        #: the request's Proxy-Authorization was for us: left out of the forwarded copies
        self.consumed_credentials = False
        #: the server transaction has terminated (see Proxy.on_terminated)
        self.server_done = False


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


_PRIVATE = [ipaddress.ip_network(n) for n in
            ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")]


@functools.lru_cache(maxsize=4096)
def _private(text: str) -> bool:
    """``text`` is a private (RFC 1918 / RFC 6598 / ULA) address; remembered: phones repeat."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return False
    return any(addr in net for net in _PRIVATE)


def sender_behind_nat(req: Request, via: Any = None) -> bool:
    """The NAT test of the ``nat`` media policy: the top Via's sent-by differs from where the
    request came from (``received``/``rport`` as the core stamped them), or the SDP names a
    private address."""
    if via_shows_nat(req, via):
        return True
    body = req.body
    if not body:
        return False
    # the lines that begin with ``c=IN IP``, found without splitting the body into lines
    pos = body.find(b"c=IN IP")
    while pos >= 0:
        if pos == 0 or body[pos - 1] == 10:  # at a line's start (after "\n")
            end = body.find(b"\n", pos)
            line = body[pos:] if end < 0 else body[pos:end]
            if _private(line.split()[-1].split(b"/")[0].decode("ascii", "replace")):
                return True
        pos = body.find(b"c=IN IP", pos + 7)
    return False


def fix_nated_contact(msg: Request | Response, public: Peer) -> bool:
    """Point the single Contact of ``msg`` at ``public`` (where the NATed party really is),
    so in-dialog requests to it reach it.  True when changed."""
    try:
        contacts = msg.contacts
    except ParseError:
        return False
    if not isinstance(contacts, list) or len(contacts) != 1 or not contacts[0].uri.is_sip:
        return False
    contact = contacts[0].copy()
    host = f"[{public.host}]" if ":" in public.host else public.host
    if contact.uri.host == host and contact.uri.port == public.port:
        return False
    contact.uri.host, contact.uri.port = host, public.port
    msg.headers.set("Contact", str(contact))
    return True


def via_shows_nat(req: Request, via: Any = None) -> bool:
    """The top Via's sent-by is not where the request came from (after the core stamped
    ``received``/``rport``; ``via``: that stamped top Via, when the caller has it)."""
    if via is None:
        try:
            via = req.vias[0]
        except (ParseError, IndexError):
            return False
    received = via.received
    if received and received != via.host.strip("[]"):
        return True
    rport = via.rport
    return isinstance(rport, int) and rport is not True and rport != (via.port or 5060)

