"""SIP-specific event notification (RFC 6665), the notifier's side, as plain code.

Why apart from the agent: what a SUBSCRIBE is answered (489, 423, the expiry granted),
what a subscription dialog looks like, and how each NOTIFY of it is built (CSeq, tags,
route set, ``Subscription-State``) are the RFC's rules and nothing else; the agent
(:mod:`sipproxy.presence.agent`) decides *when*, the store keeps the state.

A subscription dialog, from the notifier's side (RFC 6665 4.2.1, RFC 3261 12.1.1):

* our tag is the To tag of our 2xx (it starts with :data:`TAG_PREFIX`, so an in-dialog
  SUBSCRIBE that reaches the proxy is recognised without a look-up);
* the remote target is the SUBSCRIBE's Contact; the route set its Record-Route, in order;
* our NOTIFYs carry From = the SUBSCRIBE's To with our tag, To = its From with its tag,
  the same Call-ID, our own CSeq sequence (one up per NOTIFY), the Event with its ``id``,
  and ``Subscription-State``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sipproxy.sip.ids import new_tag
from sipproxy.sip.parser import Request, Response, make_response
from sipproxy.sip.uri import ParseError, parse_name_addr

__all__ = ["TAG_PREFIX", "REASONS", "Settings", "Subscription", "parse_event", "accepts", "granted_expires",
           "new_subscription", "dialog_headers", "subscription_state", "build_notify", "ends_subscription",
           "notifier_tag"]

#: our To tags in subscription dialogs
TAG_PREFIX = "pa-"
#: RFC 6665 4.1.3 / 8.2: the termination reasons (``reason=`` of Subscription-State)
REASONS = ("deactivated", "probation", "rejected", "timeout", "giveup", "noresource", "invariant")
#: reasons after which the subscriber may retry (RFC 6665 4.1.3): a retry-after is given
_RETRY = {"probation": 60, "giveup": 60}


@dataclass(frozen=True)
class Settings:
    """The ``[sipproxy] presence_*`` settings the RFC logic needs."""

    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    max_per_watcher: int = 100
    max_per_presentity: int = 1000
    max_body: int = 65536


@dataclass
class Subscription:
    """One subscription dialog as the notifier keeps it (a ``presence_subscriptions`` row)."""

    call_id: str
    from_tag: str
    to_tag: str
    event: str
    event_id: str
    presentity: str
    watcher: str
    watcher_uri: str
    presentity_uri: str
    remote_target: str
    route_set: str
    contact: str
    source: str = ""
    local_cseq: int = 0
    remote_cseq: int = 0
    state: str = "pending"
    reason: str = ""
    action: str = ""
    transformations: str = ""
    version: int = 0
    expires_at: int = 0
    #: a list subscription's resources (RFC 4662), ``user@domain`` each
    resources: tuple[str, ...] = ()
    #: a back-end subscription's last state document (the list server as subscriber)
    document: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.call_id, self.to_tag, self.event_id)


def notifier_tag() -> str:
    return TAG_PREFIX + new_tag()


def parse_event(value: str | None) -> tuple[str, str]:
    """``presence;id=7`` -> ``("presence", "7")``; ``("", "")`` when absent."""
    if not value:
        return "", ""
    package, *params = [p.strip() for p in value.split(";")]
    event_id = ""
    for p in params:
        name, _, v = p.partition("=")
        if name.strip().lower() == "id":
            event_id = v.strip()
    return package.lower(), event_id


def accepts(req: Request, *types: str) -> bool:
    """Whether the subscriber accepts all of ``types`` (RFC 6665 4.1.2: no ``Accept``
    means the package's default type; ``*/*`` and ``type/*`` match)."""
    values = req.headers.getall("accept")
    if not values:
        return True
    listed = {v.split(";")[0].strip().lower() for value in values for v in value.split(",") if v.strip()}
    if "*/*" in listed:
        return True
    return all(t in listed or t.split("/")[0] + "/*" in listed for t in types)


def granted_expires(req: Request, settings: Settings) -> int | Response:
    """The expiry to grant a SUBSCRIBE or PUBLISH: its Expires (the default when absent)
    capped at the maximum; a 423 with ``Min-Expires`` when below the minimum (0 is
    always allowed: it ends or fetches); a 400 when the Expires is malformed."""
    raw = req.headers.get("expires")
    if raw is None:
        return min(settings.default_expires, settings.max_expires)
    expires = req.expires
    if expires is None:
        return make_response(req, 400, "Bad Expires", to_tag=new_tag())
    if 0 < expires < settings.min_expires:
        return make_response(req, 423, to_tag=new_tag(), headers=[("Min-Expires", str(settings.min_expires))])
    return min(expires, settings.max_expires)


def new_subscription(req: Request, package: str, event_id: str, presentity: str, watcher: str,
                     contact: str, source: str, expires: int, now: float) -> Subscription:
    """The dialog a SUBSCRIBE creates (state pending until authorized).  Raises
    :class:`ParseError` (a 400) when the SUBSCRIBE has no usable Contact."""
    contacts = req.contacts
    if isinstance(contacts, str) or not contacts:
        raise ParseError(400, "Missing Contact")
    return Subscription(
        call_id=req.call_id or "", from_tag=req.from_.tag or "", to_tag=notifier_tag(),
        event=package, event_id=event_id, presentity=presentity, watcher=watcher,
        watcher_uri=f"<{req.from_.uri}>", presentity_uri=f"<{req.to.uri}>",
        remote_target=str(contacts[0].uri), route_set=", ".join(req.headers.getall("record-route")),
        contact=contact, source=source, remote_cseq=req.cseq[0], expires_at=int(now) + expires)


def dialog_headers(req: Request, expires: int, contact: str) -> list[tuple[str, str]]:
    """The headers of the 200 that creates a subscription dialog: ``Expires`` granted, our
    ``Contact``, and the SUBSCRIBE's ``Record-Route`` copied (RFC 3261 12.1.1), so the
    subscriber's in-dialog requests go back through the proxies that asked to stay."""
    return [*(("Record-Route", v) for v in req.headers.getall("record-route")),
            ("Expires", str(expires)), ("Contact", contact)]


def subscription_state(sub: Subscription, now: float) -> str:
    """The ``Subscription-State`` value of the next NOTIFY (RFC 6665 4.1.3, 8.2.3)."""
    if sub.state == "terminated":
        value = "terminated"
        if sub.reason:
            value += f";reason={sub.reason}"
            if sub.reason in _RETRY:
                value += f";retry-after={_RETRY[sub.reason]}"
        return value
    return f"{sub.state};expires={max(0, int(sub.expires_at - now))}"


def build_notify(sub: Subscription, now: float, body: bytes = b"", content_type: str = "",
                 max_forwards: int = 70, cseq: int | None = None) -> Request:
    """The next NOTIFY of ``sub`` (no Via yet): CSeq ``cseq`` when given (the store hands
    out the numbers), else one above the last used; ``sub.local_cseq`` becomes it."""
    sub.local_cseq = sub.local_cseq + 1 if cseq is None else cseq
    routes = [v.strip() for v in sub.route_set.split(",") if v.strip()] if sub.route_set else []
    event = sub.event + (f";id={sub.event_id}" if sub.event_id else "")
    headers = [("Max-Forwards", str(max_forwards))]
    headers += [("Route", r) for r in routes]
    headers += [
        ("From", f"{sub.presentity_uri};tag={sub.to_tag}"),
        ("To", sub.watcher_uri + (f";tag={sub.from_tag}" if sub.from_tag else "")),
        ("Call-ID", sub.call_id), ("CSeq", f"{sub.local_cseq} NOTIFY"),
        ("Contact", sub.contact), ("Event", event),
        ("Subscription-State", subscription_state(sub, now)),
    ]
    if body:
        headers.append(("Content-Type", content_type))
    headers.append(("Content-Length", str(len(body))))
    target = parse_name_addr(f"<{sub.remote_target}>").uri
    return Request("NOTIFY", target, headers, body)


def ends_subscription(status: int) -> bool:
    """Whether a NOTIFY's final answer ends the subscription (RFC 6665 4.2.2): a 481 (the
    subscriber knows no such dialog) must, a timeout (408, also what the edge reports for
    no answer at all or a transport failure) should; other failures leave it alone."""
    return status in (408, 481)
