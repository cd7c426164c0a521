"""The presence agent: the proxy's notifier for ``presence``, ``presence.winfo`` and
``xcap-diff``, and its event state compositor for PUBLISH (RFC 3856, 3857, 3903, 5875, 6665).

Why here and this shape: the proxy hands the agent the SUBSCRIBE and PUBLISH requests
addressed to a local account (after it authenticated the sender, as for any request of a
local user); the agent answers them and originates the NOTIFYs through the same edge the
proxy sends with (:class:`sipproxy.proxy.interface.Edge`), as call control originates its
BYEs.  It opens no socket and runs no SQL: the store (:mod:`.store`) is handed in, and the
pure rules live in :mod:`.subscription`, :mod:`.publication`, :mod:`.policy`,
:mod:`.pidf`, :mod:`.winfo` and :mod:`.xcapdiff`.  The I/O loop that follows XCAP changes
and expiries is :mod:`.service`.

Events that lead to NOTIFYs:

* a SUBSCRIBE (new, refresh or Expires 0) -- one NOTIFY after the 200, in that dialog;
* a PUBLISH that changed the composed state -- one NOTIFY per active watcher;
* a change of the presentity's pres-rules -- each live subscription is decided again;
* expiry (of a subscription: ``terminated;reason=timeout``; of a publication: new state);
* any change of a watcher -- a partial watcherinfo to the presentity's winfo subscribers.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from lxml import etree

from sipproxy.presence import pidf, policy, winfo, xcapdiff
from sipproxy.presence.backend import BACKEND, BACKEND_TAG
from sipproxy.presence.listserver import RLS, ListServer
from sipproxy.presence.publication import handle_publish
from sipproxy.presence.subscription import (
    TAG_PREFIX,
    Settings,
    Subscription,
    accepts,
    build_notify,
    dialog_headers,
    ends_subscription,
    granted_expires,
    new_subscription,
    parse_event,
)
from sipproxy.sip.addressing import Inbound, Peer
from sipproxy.sip.ids import MAGIC_COOKIE, new_tag
from sipproxy.sip.parser import Request, Response, make_response
from sipproxy.sip.routeset import apply_route_set
from sipproxy.sip.transaction import Transaction
from sipproxy.sip.uri import ParseError, sip_id

__all__ = ["PresenceAgent", "PACKAGES"]

log = logging.getLogger("sipproxy.presence")

PRESENCE, WINFO, XCAP_DIFF = "presence", "presence.winfo", "xcap-diff"
#: the event packages this agent is the notifier of
PACKAGES = (PRESENCE, WINFO, XCAP_DIFF)
ALLOW_EVENTS = ", ".join(PACKAGES)
#: the auid of the presentity's state set through XCAP (RFC 4827)
PIDF_MANIPULATION = "pidf-manipulation"
MAX_ALIAS_DEPTH = 5


class _NotifyTransaction:
    """The user data of a NOTIFY's client transaction: its answer may end the subscription."""

    __slots__ = ("agent", "sub")

    def __init__(self, agent: PresenceAgent, sub: Subscription) -> None:
        self.agent, self.sub = agent, sub

    def answered(self, response: Response) -> None:
        if response.status >= 200:
            self.failed(response.status)

    def failed(self, status: int) -> None:
        try:  # (called from the edge's response handling: a database error stays here)
            self.agent.notify_answered(self.sub, status)
        except Exception:  # noqa: BLE001
            log.exception("NOTIFY to %s answered %d: cannot update the subscription", self.sub.watcher, status)


class PresenceAgent:
    """Answers SUBSCRIBE/PUBLISH for local presentities and sends the NOTIFYs."""

    def __init__(self, edge: Any, store: Any, directory: Any, settings: Settings, *,
                 xcap_root: str = "http://127.0.0.1/xcap-root/",
                 clock: Callable[[], float] = time.time) -> None:
        self.edge = edge
        self.store = store
        self.directory = directory
        self.settings = settings
        self.xcap_root = xcap_root
        self.clock = clock
        #: the resource list server (RFC 4662): SUBSCRIBEs to a list URI
        self.lists = ListServer(self)

    # ================================================================ proxy's side ===

    def handles(self, req: Request) -> bool:
        """Whether an out-of-dialog request to a local user is the agent's: every PUBLISH
        (this platform is the presence compositor), a SUBSCRIBE for one of its packages."""
        if req.method == "PUBLISH":
            return True
        return req.method == "SUBSCRIBE" and parse_event(req.headers.get("event"))[0] in PACKAGES

    def owns(self, req: Request) -> bool:
        """Whether an in-dialog request is in one of our dialogs (by our tag): a SUBSCRIBE
        where we notify, a NOTIFY where the list server subscribed."""
        method = req.method
        if method == "SUBSCRIBE":
            return (req.to.tag or "").startswith(TAG_PREFIX)
        return method == "NOTIFY" and (req.to.tag or "").startswith(BACKEND_TAG)

    def on_request(self, req: Request, txn: Transaction, inbound: Inbound, account: Any) -> Response | None:
        """An out-of-dialog SUBSCRIBE or PUBLISH; ``account`` is the authenticated sender
        (None: a watcher of another domain, known by its From)."""
        presentity = self._presentity(req)
        if presentity is None and req.method == "SUBSCRIBE" and account is not None \
                and parse_event(req.headers.get("event"))[0] == PRESENCE:
            return self._subscribe_list(req, txn, inbound, account)
        if presentity is None:
            return make_response(req, 404, "User Not Found", to_tag=new_tag())
        if req.method == "PUBLISH":
            return self._publish(req, txn, presentity, account)
        return self._subscribe(req, txn, inbound, presentity, account)

    def in_dialog(self, req: Request, txn: Transaction, inbound: Inbound) -> Response | None:
        """A SUBSCRIBE within one of our dialogs: refresh, or end with Expires 0 (a NOTIFY:
        the list server's back-end dialog)."""
        if req.method == "NOTIFY":
            return self.lists.backends.notify(req, txn)
        package, event_id = parse_event(req.headers.get("event"))
        sub = self.store.subscription(req.call_id or "", req.to.tag or "", event_id)
        if sub is None or sub.event != package or sub.from_tag != (req.from_.tag or ""):
            return make_response(req, 481)
        if req.cseq[0] <= sub.remote_cseq:
            return make_response(req, 500, "Out Of Order", headers=[("Retry-After", "1")])
        expires = granted_expires(req, self.settings)
        if isinstance(expires, Response):
            return expires
        now = self.clock()
        sub.remote_cseq = req.cseq[0]
        contacts = req.contacts
        if not isinstance(contacts, str) and contacts:  # a target refresh (RFC 6665 4.1.2.1)
            sub.remote_target = str(contacts[0].uri)
        sub.expires_at = int(now) + expires
        ok = make_response(req, 200, headers=[("Expires", str(expires)), ("Contact", sub.contact)])
        if expires == 0:
            self.edge.respond(txn, ok)
            self.terminate(sub, "timeout")
            return None
        self.store.save(sub)
        self.edge.respond(txn, ok)
        self._notify_state(sub)
        return None

    # ================================================================== SUBSCRIBE ===

    def _presentity(self, req: Request) -> str | None:
        """The account the Request-URI names, aliases followed (``user@domain``)."""
        uri = req.uri
        user, domain = uri.user or "", (uri.host or "").lower()
        for _ in range(MAX_ALIAS_DEPTH):
            account = self.directory.account(user, domain)
            if account is not None:
                return account.sip_id
            target = self.directory.alias(user, domain)
            if target is None:
                return None
            user, domain = target
        return None

    def _contact(self, inbound: Inbound) -> str:
        """Our Contact in a subscription dialog: the listener the SUBSCRIBE came in on."""
        listener = inbound.listener
        host = f"[{listener.host}]" if ":" in listener.host else listener.host
        transport = "" if listener.transport == "udp" else f";transport={listener.transport}"
        return f"<sip:{host}:{listener.port}{transport}>"

    def _bounded(self, req: Request, watcher: str, presentity: str) -> Response | None:
        """503 when the watcher or the presentity holds the most subscriptions allowed."""
        if self.store.count_watcher(watcher) >= self.settings.max_per_watcher:
            log.info("SUBSCRIBE from %s refused: %d subscriptions already", watcher, self.settings.max_per_watcher)
            return make_response(req, 503, "Too Many Subscriptions", to_tag=new_tag(),
                                 headers=[("Retry-After", "300")])
        if self.store.count_presentity(presentity) >= self.settings.max_per_presentity:
            return make_response(req, 503, "Too Many Watchers", to_tag=new_tag(),
                                 headers=[("Retry-After", "300")])
        return None

    def _subscribe_list(self, req: Request, txn: Transaction, inbound: Inbound, account: Any) -> Response | None:
        """A local subscriber's SUBSCRIBE to a URI that is no account: one of its lists?"""
        expires = granted_expires(req, self.settings)
        if isinstance(expires, Response):
            return expires
        uri = req.uri
        bounded = self._bounded(req, account.sip_id, f"{uri.user}@{(uri.host or '').lower()}")
        if bounded is not None:
            return bounded
        return self.lists.subscribe(req, txn, inbound, account.sip_id, expires, self._contact(inbound))

    def _subscribe(self, req: Request, txn: Transaction, inbound: Inbound, presentity: str,
                   account: Any) -> Response | None:
        package, event_id = parse_event(req.headers.get("event"))
        if package not in PACKAGES:
            return make_response(req, 489, "Bad Event", to_tag=new_tag(), headers=[("Allow-Events", ALLOW_EVENTS)])
        expires = granted_expires(req, self.settings)
        if isinstance(expires, Response):
            return expires
        body_type = {PRESENCE: pidf.CONTENT_TYPE, WINFO: winfo.CONTENT_TYPE,
                     XCAP_DIFF: xcapdiff.CONTENT_TYPE}[package]
        if not accepts(req, body_type):
            return make_response(req, 406, to_tag=new_tag(), headers=[("Accept", body_type)])
        watcher = account.sip_id if account is not None else sip_id(req.from_.uri)
        if package != PRESENCE and watcher != presentity:  # one's own watchers, one's own documents
            return make_response(req, 403, "Not Your Resource", to_tag=new_tag())
        bounded = self._bounded(req, watcher, presentity)
        if bounded is not None:
            return bounded
        contact = self._contact(inbound)
        now = self.clock()
        sub = new_subscription(req, package, event_id, presentity, watcher, contact,
                               str(inbound.source), expires, now)
        if package == PRESENCE:
            decision = self.decide(self.store.rules(presentity), watcher, presentity)
            if decision.action == policy.BLOCK:
                log.info("SUBSCRIBE %s -> %s: blocked by the pres-rules", watcher, presentity)
                return make_response(req, 403, "Blocked", to_tag=new_tag())
            sub.action = decision.action
            sub.transformations = decision.transformations.text()
            sub.state = "pending" if decision.action == policy.CONFIRM else "active"
        else:
            sub.action, sub.state = policy.ALLOW, "active"
        ok = make_response(req, 200, to_tag=sub.to_tag, headers=dialog_headers(req, expires, contact))
        if expires == 0:  # a fetch (RFC 6665 4.4.3): the state once, no subscription kept
            self.edge.respond(txn, ok)
            sub.state, sub.reason = "terminated", "timeout"
            self._notify_state(sub, fetch=True)
            return None
        self.store.add(sub)
        self.edge.respond(txn, ok)
        log.info("subscription %s -> %s (%s): %s", watcher, presentity, package, sub.state)
        self._notify_state(sub)
        if package == PRESENCE:
            self._winfo_changed(presentity, [sub])
        return None

    # ==================================================================== PUBLISH ===

    def _publish(self, req: Request, txn: Transaction, presentity: str, account: Any) -> Response | None:
        if account is None or account.sip_id != presentity:
            return make_response(req, 403, "Not Your Presentity", to_tag=new_tag())
        now = self.clock()
        outcome = handle_publish(req, presentity, self.store.publications(presentity, now), now, self.settings)
        if outcome.action and not self.store.apply(outcome):
            return make_response(req, 412, "Conditional Request Failed", to_tag=new_tag())
        if not outcome.changed:
            return outcome.response
        self.edge.respond(txn, outcome.response)  # the 200 first, then the watchers' NOTIFYs
        self.state_changed(presentity)
        return None

    def state_changed(self, presentity: str) -> None:
        """The composed state of ``presentity`` changed: a NOTIFY to each active watcher.

        All of them at once: one read of the rules, the state and the local watchers'
        aliases; the document transformed once per distinct grant; the CSeq numbers taken
        in one transaction (nothing else of a subscription changes here)."""
        subs = [sub for sub in self.store.subscriptions(presentity, PRESENCE) if sub.state == "active"]
        if subs:
            rules = self.store.rules(presentity)
            document = self.composed(presentity)
            is_local = self.directory.is_local_domain
            aliases = self.store.aliases_of(sorted({sub.watcher for sub in subs
                                                     if is_local(sub.watcher.rpartition("@")[2])}))
            bodies: dict[Any, bytes] = {}
            now = self.clock()
            for sub, cseq in zip(subs, self.store.next_cseqs(subs), strict=True):
                grant = None
                if sub.action == policy.POLITE_BLOCK:
                    key: Any = policy.POLITE_BLOCK
                else:
                    grant = self.decide(rules, sub.watcher, presentity, aliases.get(sub.watcher, [])).transformations
                    key = grant.key()
                body = bodies.get(key)
                if body is None:
                    body = bodies[key] = self._presence_body(sub, document, rules, grant)[0]
                self.dispatch(build_notify(sub, now, body, pidf.CONTENT_TYPE, cseq=cseq), sub.source,
                              _NotifyTransaction(self, sub))
        self.lists.resource_changed(presentity)

    def composed(self, presentity: str) -> etree._Element:
        """The presentity's state: its pidf-manipulation document (RFC 4827, the state set
        through XCAP, oldest), then its live publications (oldest change first)."""
        docs = []
        manipulated = self.store.document(PIDF_MANIPULATION, presentity)
        if manipulated:
            try:
                docs.append(pidf.parse_pidf(manipulated, 1 << 20))
            except pidf.XmlError:
                log.info("pidf-manipulation document of %s ignored: not a PIDF", presentity)
        for pub in self.store.publications(presentity, self.clock()).values():
            try:
                docs.append(pidf.parse_pidf(pub.document, 1 << 20))
            except pidf.XmlError:
                continue
        entity = f"sip:{presentity}"
        return pidf.compose(entity, docs) if docs else pidf.neutral(entity)

    def decide(self, rules: str | None, watcher: str, presentity: str,
               aliases: list[str] | None = None) -> policy.Decision:
        """The pres-rules' decision for ``watcher``, who is also known by its aliases (a
        rule may name a local watcher by any address of its account; ``aliases``: read
        already, else read here)."""
        if aliases is None:
            local = self.directory.is_local_domain(watcher.rpartition("@")[2])
            aliases = self.store.aliases(watcher) if local else []
        return policy.decide(rules, watcher, owner=presentity, aliases=tuple(aliases))

    def _presence_body(self, sub: Subscription, document: etree._Element | None,
                       rules: str | None, grant: pidf.Transformations | None = None) -> tuple[bytes, str]:
        """The PIDF ``sub``'s watcher may see (``grant``: its transformations, when known)."""
        if sub.action == policy.POLITE_BLOCK:
            return pidf.serialise(pidf.neutral(f"sip:{sub.presentity}")), pidf.CONTENT_TYPE
        if document is None:
            document = self.composed(sub.presentity)
        if grant is None:
            grant = self.decide(rules, sub.watcher, sub.presentity).transformations
        return pidf.serialise(pidf.transform(document, grant)), pidf.CONTENT_TYPE

    # ============================================================ NOTIFY and state ===

    def _notify_state(self, sub: Subscription, fetch: bool = False) -> None:
        """The NOTIFY that tells ``sub`` its current state (after a SUBSCRIBE)."""
        if sub.action == RLS:
            self.lists.notify(sub, None)
        elif sub.event == PRESENCE:
            if sub.state == "pending" or (sub.state == "terminated" and sub.action == policy.CONFIRM):
                self.send(sub)
            else:
                self.send(sub, *self._presence_body(sub, None, self.store.rules(sub.presentity)))
        elif sub.event == WINFO:
            sub.version = 0
            watchers = self.store.subscriptions(sub.presentity, PRESENCE)
            body = winfo.watcherinfo(f"sip:{sub.presentity}", watchers, sub.version, True, self.clock())
            if not fetch:
                self.store.save(sub)
            self.send(sub, body, winfo.CONTENT_TYPE)
        else:
            documents = self.store.documents(sub.presentity)
            sub.document = json.dumps(documents, sort_keys=True)  # what it was told (the row's)
            changes = [(name, None, etag) for name, etag in sorted(documents.items())]
            self.send(sub, xcapdiff.xcap_diff(self.xcap_root, sub.presentity, changes), xcapdiff.CONTENT_TYPE)

    def _winfo_changed(self, presentity: str, changed: list[Subscription]) -> None:
        """A partial watcherinfo with the ``changed`` watchers to each winfo subscriber."""
        for sub in self.store.subscriptions(presentity, WINFO):
            if sub.state != "active":
                continue
            sub.version += 1
            body = winfo.watcherinfo(f"sip:{presentity}", changed, sub.version, False, self.clock())
            self.send(sub, body, winfo.CONTENT_TYPE)

    def terminate(self, sub: Subscription, reason: str) -> None:
        """End ``sub``: the final NOTIFY (``terminated;reason=``), the row removed."""
        sub.state, sub.reason = "terminated", reason
        if self.store.remove(sub):
            self.send(sub, save=False)
            log.info("subscription %s -> %s (%s) terminated: %s", sub.watcher, sub.presentity, sub.event, reason)
            self._ended(sub)

    def _ended(self, sub: Subscription) -> None:
        """What else ends with ``sub``: the watcher shown terminated in winfo, a list's
        back-end subscriptions, xcap-diff's memory."""
        if sub.action == RLS:
            self.lists.ended(sub)
        elif sub.event == PRESENCE:
            self._winfo_changed(sub.presentity, [sub])

    def notify_answered(self, sub: Subscription, status: int) -> None:
        """A NOTIFY's final answer: a 481 or a timeout ends the subscription (RFC 6665 4.2.2)."""
        if ends_subscription(status) and sub.state != "terminated":
            log.info("NOTIFY to %s answered %d: subscription to %s ended", sub.watcher, status, sub.presentity)
            sub.state, sub.reason = "terminated", "timeout" if status == 408 else "noresource"
            if self.store.remove(sub):
                self._ended(sub)

    def send(self, sub: Subscription, body: bytes = b"", content_type: str = "", save: bool = True) -> bool:
        """Send the next NOTIFY of ``sub`` as a non-INVITE client transaction."""
        now = self.clock()
        cseq = self.store.next_cseq(sub, save=save and sub.state != "terminated")
        notify = build_notify(sub, now, body, content_type, cseq=cseq)
        return self.dispatch(notify, sub.source, _NotifyTransaction(self, sub))

    def dispatch(self, request: Request, source: str, user_data: Any) -> bool:
        """Send a request the agent originates (no Via yet): along its Route set, to the
        phone's own connection when it has one (``source``), else where the Request-URI
        resolves to (RFC 3263); ``user_data`` hears the answer (``answered``/``failed``)."""
        edge = self.edge
        dest: Peer | None = None
        routed = bool(request.headers.get("route"))
        if not routed and source:
            try:
                peer = Peer.parse(source)
            except ValueError:
                peer = None
            if peer is not None and peer.transport != "udp" and edge.connected(peer):
                dest = peer
        try:
            if dest is None:
                dest = edge.resolve(apply_route_set(request) if routed else request.uri)
        except ParseError:
            dest = None
        out = edge.listener_for(dest.transport, dest.host) if dest is not None else None
        if dest is None or out is None:
            log.warning("%s to %s (call-id %s): no way to send it", request.method, request.uri, request.call_id)
            return False
        via = edge.via_for(out, MAGIC_COOKIE + "pa." + edge.branch_suffix())
        request = Request(request.method, request.uri, [("Via", via), *request.headers.items()], request.body)
        txn = edge.send_request(request, dest)
        if txn is None:
            return False
        txn.user_data = user_data
        return True

    # =================================================== changes from elsewhere ===

    def rules_changed(self, presentity: str) -> None:
        """The pres-rules of ``presentity`` changed: decide each live subscription again
        (pending -> active with a NOTIFY, active -> terminated;reason=rejected, ...)."""
        rules = self.store.rules(presentity)
        changed = []
        document = None
        for sub in self.store.subscriptions(presentity, PRESENCE):
            decision = self.decide(rules, sub.watcher, presentity)
            old_action, old_state = sub.action, sub.state
            if decision.action == old_action and decision.transformations.text() == sub.transformations:
                continue
            if decision.action == policy.BLOCK:
                self.terminate(sub, "rejected")
                continue
            if decision.action == policy.CONFIRM and old_state == "active":
                self.terminate(sub, "deactivated")  # RFC 6665: re-subscribe, it waits then
                continue
            sub.action = decision.action
            sub.transformations = decision.transformations.text()
            sub.state = "pending" if decision.action == policy.CONFIRM else "active"
            if not self.store.save(sub, expect_action=old_action, expect_state=old_state):
                continue  # another proxy got there first, or the subscription is gone
            log.info("subscription %s -> %s: %s (pres-rules changed)", sub.watcher, presentity, sub.state)
            if sub.state == "active":
                if document is None:
                    document = self.composed(presentity)
                self.send(sub, *self._presence_body(sub, document, rules))
            if sub.state != old_state:
                changed.append(sub)
        if changed:
            self._winfo_changed(presentity, changed)
        self.lists.resource_changed(presentity)  # the lists holding it: its rules decide there too

    def documents_changed(self, xui: str, auids: frozenset[str] = frozenset()) -> None:
        """Documents of ``xui``'s XCAP tree changed (of the usages ``auids``; empty: any):
        xcap-diff subscribers are told; a pres-rules change re-decides the subscriptions to
        ``xui``, a pidf-manipulation change (named) is new state for its watchers, an
        rls-services or resource-lists change re-reads its lists."""
        def touched(*names: str) -> bool:
            return not auids or any(a in auids for a in names)

        subs = self.store.subscriptions(xui, XCAP_DIFF)
        if subs:
            documents = self.store.documents(xui)
            told_now = json.dumps(documents, sort_keys=True)
            for sub in subs:
                told = sub.document
                changes = xcapdiff.diff(json.loads(told) if told else {}, documents)
                sub.document = told_now
                # one proxy tells it: the one whose update still found what was told before
                if changes and self.store.save(sub, expect={"document": told}):
                    self.send(sub, xcapdiff.xcap_diff(self.xcap_root, xui, changes), xcapdiff.CONTENT_TYPE)
        if touched(*policy.PRES_RULES_AUIDS):
            self.rules_changed(xui)
        if PIDF_MANIPULATION in auids:
            self.state_changed(xui)
        if touched("rls-services", "resource-lists"):
            self.lists.documents_changed(xui)

    def account_changed(self, account: str) -> None:
        """An account changed; when it is gone, every subscription to it ends
        (``terminated;reason=noresource``) and its publications go."""
        if self.store.account_exists(account):
            return
        ended = 0
        for event in (WINFO, XCAP_DIFF, PRESENCE):  # its own winfo first: it hears no more
            for sub in self.store.subscriptions(account, event):
                if sub.action not in (RLS, BACKEND):
                    self.terminate(sub, "noresource")
                    ended += 1
        if self.store.remove_publications(account) or ended:
            log.info("account %s removed: %d subscriptions to it ended", account, ended)
        self.lists.resource_changed(account)

    def sweep(self) -> None:
        """Expiry: lapsed subscriptions get their final NOTIFY (``timeout``); presentities
        whose publication lapsed are notified of their new state."""
        now = self.clock()
        for sub in self.store.take_expired_subscriptions(now):
            if sub.action == BACKEND:  # our own, lapsed: no NOTIFY is ours to send
                continue
            sub.state, sub.reason = "terminated", "timeout"
            self.send(sub, save=False)
            self._ended(sub)
        self.lists.backends.refresh(now)
        for presentity in self.store.take_expired_publications(now):
            self.state_changed(presentity)
