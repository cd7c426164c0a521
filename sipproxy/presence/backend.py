"""The list server's back-end subscriptions (RFC 4662 section 4.4): the proxy as a
*subscriber* to the resources of other domains, on behalf of a list's subscriber.

Why: a list may name a resource this platform does not serve; its state is only known by
subscribing to it where it lives.  The list server sends that domain a SUBSCRIBE of its own
(From: the list's subscriber, so the other side's rules decide what it sees; Contact: this
proxy), keeps the dialog, answers the NOTIFYs that come back and hands each new state to
the lists that hold the resource.  One back-end subscription serves every list of the same
subscriber that names the resource; it ends (SUBSCRIBE with Expires 0) when no such list is
left, and is refreshed before it lapses.

A back-end subscription is a ``presence_subscriptions`` row with ``action`` ``rls-backend``:
``to_tag`` is *our* tag (the From tag of our SUBSCRIBE: it starts with :data:`BACKEND_TAG`,
so the NOTIFYs are recognised), ``from_tag`` the notifier's, ``presentity`` the resource,
``watcher`` the list's subscriber, ``document`` the last state received.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from sipproxy.presence import pidf
from sipproxy.presence.rls import Resource
from sipproxy.presence.subscription import Subscription
from sipproxy.sip.ids import new_tag
from sipproxy.sip.parser import Request, Response, make_response
from sipproxy.sip.transaction import Transaction
from sipproxy.sip.uri import parse_name_addr

__all__ = ["BACKEND", "BACKEND_TAG", "Backends", "parse_subscription_state"]

log = logging.getLogger("sipproxy.presence")

BACKEND = "rls-backend"
BACKEND_TAG = "rl-"
#: refresh a back-end subscription this many seconds before it lapses
REFRESH_AHEAD = 120
#: a failure answer -> the resource's termination reason in the RLMI
_FAILED = {403: "rejected", 603: "rejected", 489: "rejected", 404: "noresource", 480: "noresource",
           408: "giveup", 503: "giveup"}


def parse_subscription_state(value: str | None) -> tuple[str, str, int | None]:
    """``active;expires=599`` -> ``("active", "", 599)``; ``terminated;reason=rejected`` ->
    ``("terminated", "rejected", None)``."""
    state, *params = [p.strip() for p in (value or "").split(";")]
    reason, expires = "", None
    for p in params:
        name, _, v = p.partition("=")
        name = name.strip().lower()
        if name == "reason":
            reason = v.strip().lower()
        elif name == "expires" and v.strip().isdigit():
            expires = int(v.strip())
    return state.lower(), reason, expires


class _SubscribeTransaction:
    """The user data of a back-end SUBSCRIBE's client transaction."""

    __slots__ = ("backends", "sub", "expires")

    def __init__(self, backends: Backends, sub: Subscription, expires: int) -> None:
        self.backends, self.sub, self.expires = backends, sub, expires

    def answered(self, response: Response) -> None:
        if response.status >= 200:
            self._answered(response.status, response)

    def failed(self, status: int) -> None:
        self._answered(status, None)

    def _answered(self, status: int, response: Response | None) -> None:
        try:  # (called from the edge's response handling: a database error stays here)
            self.backends.answered(self.sub, status, response, self.expires)
        except Exception:  # noqa: BLE001
            log.exception("list server: SUBSCRIBE to %s answered %d: cannot record it", self.sub.presentity, status)


class Backends:
    """Back-end subscriptions of the list server (``agent.lists.backends``)."""

    def __init__(self, agent: Any, lists: Any) -> None:
        self.agent = agent
        self.lists = lists

    def is_foreign(self, member: str) -> bool:
        """Whether ``member`` (``user@host[:port]``) lives in a domain not served here."""
        host = member.rpartition("@")[2]
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        return not self.agent.directory.is_local_domain(host)

    # -- starting, refreshing and ending -------------------------------------------------

    def ensure(self, list_sub: Subscription) -> None:
        """A back-end subscription for each foreign member of ``list_sub`` that has none."""
        store = self.agent.store
        for member in list_sub.resources:
            if self.is_foreign(member) and store.backend(list_sub.watcher, member, BACKEND) is None:
                self.start(list_sub.watcher, member, list_sub.contact)

    def start(self, watcher: str, member: str, contact: str) -> None:
        agent = self.agent
        expires = agent.settings.max_expires
        host = parse_name_addr(contact).uri.host or "rls.invalid"
        sub = Subscription(
            call_id=f"rls-{secrets.token_hex(8)}@{host}", from_tag="", to_tag=BACKEND_TAG + new_tag(),
            event="presence", event_id="", presentity=member, watcher=watcher,
            watcher_uri=f"<sip:{watcher}>", presentity_uri=f"<sip:{member}>", remote_target=f"sip:{member}",
            route_set="", contact=contact, state="pending", action=BACKEND,
            expires_at=int(agent.clock()) + expires)
        agent.store.add(sub)
        log.info("list server: subscribing to %s for %s", member, watcher)
        self.subscribe(sub, expires)

    def subscribe(self, sub: Subscription, expires: int) -> bool:
        """Send ``sub``'s next SUBSCRIBE (initial, refresh, or ``expires`` 0 to end it)."""
        sub.local_cseq = self.agent.store.next_cseq(sub)
        routes = [v.strip() for v in sub.route_set.split(",") if v.strip()] if sub.route_set else []
        to = sub.presentity_uri + (f";tag={sub.from_tag}" if sub.from_tag else "")
        headers = [("Max-Forwards", "70"), *[("Route", r) for r in routes],
                   ("From", f"{sub.watcher_uri};tag={sub.to_tag}"), ("To", to), ("Call-ID", sub.call_id),
                   ("CSeq", f"{sub.local_cseq} SUBSCRIBE"), ("Contact", sub.contact), ("Event", "presence"),
                   ("Accept", pidf.CONTENT_TYPE), ("Expires", str(expires)), ("Content-Length", "0")]
        request = Request("SUBSCRIBE", parse_name_addr(f"<{sub.remote_target}>").uri, headers)
        if expires:
            self.agent.store.save(sub)
        return self.agent.dispatch(request, "", _SubscribeTransaction(self, sub, expires))

    def release(self, list_sub: Subscription) -> None:
        """``list_sub`` ended or lost members: end the back-end subscriptions no other list
        of the same subscriber still needs."""
        store = self.agent.store
        others = [s for s in store.subscriptions_of(list_sub.watcher, self.lists.action) if s.key != list_sub.key]
        needed = {m for s in others for m in s.resources} | (set(list_sub.resources)
                                                             if list_sub.state != "terminated" else set())
        for b in store.subscriptions_of(list_sub.watcher, BACKEND):
            if b.presentity in needed:
                continue
            if store.remove(b) and b.from_tag and b.state != "terminated":
                log.info("list server: unsubscribing from %s for %s", b.presentity, b.watcher)
                self.subscribe(b, 0)

    def refresh(self, now: float) -> None:
        """Refresh the back-end subscriptions that lapse soon."""
        expires = self.agent.settings.max_expires
        for b in self.agent.store.expiring(BACKEND, now + REFRESH_AHEAD):
            if not b.from_tag:
                continue
            lapses, b.expires_at = b.expires_at, int(now) + expires  # claimed: the 200 sets it
            if self.agent.store.save(b, expect={"expires_at": lapses}):  # one proxy refreshes
                self.subscribe(b, expires)

    # -- what the other side says ------------------------------------------------------

    def answered(self, sub: Subscription, status: int, response: Response | None, expires: int) -> None:
        """The final answer to one of our SUBSCRIBEs."""
        if expires == 0:
            return
        store = self.agent.store
        current = store.subscription(sub.call_id, sub.to_tag)
        if current is None:
            return
        if status >= 300 or response is None:
            current.state, current.reason = "terminated", _FAILED.get(status, "noresource")
            log.info("list server: SUBSCRIBE to %s answered %d", current.presentity, status)
            store.save(current)
            self.lists.member_changed(current.watcher, current.presentity)
            return
        if not current.from_tag:
            current.from_tag = response.to.tag or ""
        contacts = response.contacts
        if not isinstance(contacts, str) and contacts:
            current.remote_target = str(contacts[0].uri)
        if not current.route_set:  # a UAC's route set: the 2xx's Record-Route, reversed
            current.route_set = ", ".join(reversed(response.headers.getall("record-route")))
        granted = response.expires if response.expires is not None else expires
        current.expires_at = int(self.agent.clock()) + granted
        store.save(current)

    def notify(self, req: Request, txn: Transaction) -> Response | None:
        """A NOTIFY in one of our back-end dialogs: store the state, tell the lists."""
        agent = self.agent
        sub = agent.store.subscription(req.call_id or "", req.to.tag or "")
        if sub is None or sub.action != BACKEND or (sub.from_tag and sub.from_tag != req.from_.tag):
            return make_response(req, 481)
        state, reason, expires = parse_subscription_state(req.headers.get("subscription-state"))
        if state not in ("active", "pending", "terminated"):
            return make_response(req, 400, "Bad Subscription-State")
        if req.body:
            ctype = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
            if ctype != pidf.CONTENT_TYPE:
                return make_response(req, 415, headers=[("Accept", pidf.CONTENT_TYPE)])
            try:
                pidf.parse_pidf(req.body, agent.settings.max_body)
            except pidf.XmlError as exc:
                return make_response(req, 400, f"Bad PIDF: {str(exc)[:80]}")
            sub.document = req.body.decode("utf-8", "replace")
        sub.from_tag = req.from_.tag or ""
        contacts = req.contacts
        if not isinstance(contacts, str) and contacts:
            sub.remote_target = str(contacts[0].uri)
        if not sub.route_set:  # as a UAS: the Record-Route in order
            sub.route_set = ", ".join(req.headers.getall("record-route"))
        sub.state, sub.reason = state, reason if state == "terminated" else ""
        if expires is not None:
            sub.expires_at = int(agent.clock()) + expires
        agent.store.save(sub)
        agent.edge.respond(txn, make_response(req, 200))
        self.lists.member_changed(sub.watcher, sub.presentity)
        return None

    def resource(self, watcher: str, member: str) -> Resource:
        """``member``'s state as the back-end subscription last heard it."""
        res = Resource(f"sip:{member}")
        b = self.agent.store.backend(watcher, member, BACKEND)
        if b is None or b.state == "pending":
            return res
        if b.state == "terminated":
            res.state, res.reason = "terminated", b.reason or "noresource"
            return res
        res.state = "active"
        res.body = b.document.encode("utf-8") if b.document else b""
        return res
