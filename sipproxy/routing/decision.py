"""What routing decides about a request, and what it knows of it (plain values).

Apart from :mod:`.pipeline` so that the steps (:mod:`.outbound`) and the proxy can name them
without importing the router.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from sipproxy.sip.addressing import Inbound, Peer
from sipproxy.sip.parser import Request
from sipproxy.sip.uri import URI

__all__ = ["Target", "Targets", "RouteRequest"]


class Target(NamedTuple):
    """One place to fork to: the new Request-URI (None: unchanged), the next hop, and the
    Route values to push (a registration's Path, RFC 3327)."""

    uri: URI | None
    dest: Peer
    path: tuple[str, ...]


class Targets(NamedTuple):
    """A step's decision to forward: to ``targets``, naming ``callee`` (a SipId or a
    number, for logs and the dialog), with a ring timeout (None: the default).  In parallel
    (forking to a user's contacts), or ``serial``: one after the other, the next when every
    earlier one failed with 408 or a 5xx (gateways of LCR, servers of RFC 3263).
    ``headers``: added to each forwarded copy (the asserted caller id).  ``after``: called
    with the branches' final statuses and whether the ring timeout expired when no branch
    answered 2xx; it may answer new targets or a response (call diversion: busy, no answer,
    unavailable), or None for the usual best response."""

    targets: list[Target]
    callee: str
    ring_timeout: float | None = None
    serial: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    after: Callable[[list[int], bool], Any] | None = None
    #: who pays, when routing changed it on the way (a call diversion's diverting account)
    billing_party: str = ""
    #: a call to the PSTN: its rating (sipproxy.dialog.prepaid.encode_tariff), its price
    tariff: str = ""
    #: ... paid from a prepaid balance: cut off and debited by that rating
    prepaid: bool = False


@dataclass(slots=True)
class RouteRequest:
    """What the steps know of the request being routed, and (for accounting) what routing
    made of it: the billing party and the flow."""

    request: Request
    inbound: Inbound
    #: the authenticated local subscriber who sends it (None: not one of ours)
    account: Any
    #: the Request-URI named a local domain (or this proxy) when the request came
    to_local: bool
    #: who pays (a SipId, a trusted peer's billing id or address): the sender's by default
    billing_party: str = ""
    #: the trusted peer (a PBX) or PSTN gateway it came from, by source address (None: neither)
    trusted: Any = None
    #: it came from one of the LCR's PSTN gateways (an incoming PSTN call)
    gateway: bool = False
    #: (a Request-URI, whether it is local): remembered, every step asks about the same URI
    local: Any = None
    #: where routing sent it: "endpoint" (a local user's contacts), "pstn" (through LCR) or
    #: "peer" (another domain: a PBX, another operator); "" until decided
    destination: str = ""
    #: an emergency number was dialled: no authorization rule refuses it
    emergency: bool = False
    #: a call to the PSTN: its rating and whether a prepaid balance pays (see Targets)
    tariff: str = ""
    prepaid: bool = False

    @property
    def flow(self) -> str:
        """The routing guide's call flow: ``<source>-to-<destination>``, the source being
        ``endpoint`` (a subscriber), ``pbx`` (a trusted peer), ``pstn`` (a gateway) or
        ``outside`` (anyone else)."""
        if self.gateway:
            source = "pstn"
        elif self.trusted is not None:
            source = "pbx"
        elif self.account is not None:
            source = "endpoint"
        else:
            source = "outside"
        return f"{source}-to-{self.destination or 'nowhere'}"
