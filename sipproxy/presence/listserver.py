"""The resource list server (RFC 4662) of the presence agent.

Why a part of its own: a list subscription is one dialog with the subscriber but many
resources behind it; what each resource's state is, and when the subscriber hears of it,
differ from a single subscription.  A list subscription is a ``presence_subscriptions`` row
whose ``action`` is ``rls``, whose ``presentity`` is the list URI (``user@domain``) and
whose ``resources`` are the list's members; the first NOTIFY carries the full state
(``fullState="true"``), each later one only the resources that changed, the RLMI
``version`` one up each time.

Local resources are subscribed to internally: the list server composes their published
state and applies *their* pres-rules with the list's subscriber as the watcher (so a list
never shows more than a direct subscription would).  A resource of another domain is
subscribed to by SIP (:mod:`.backend`): it is ``pending`` until that domain's NOTIFY says
otherwise.
"""

from __future__ import annotations

import logging
from typing import Any

from sipproxy.presence import pidf, policy, rls
from sipproxy.presence.backend import Backends
from sipproxy.presence.subscription import Subscription, accepts, dialog_headers, new_subscription
from sipproxy.sip.addressing import Inbound
from sipproxy.sip.ids import new_tag
from sipproxy.sip.parser import Request, Response, make_response
from sipproxy.sip.transaction import Transaction
from sipproxy.sip.uri import URI

__all__ = ["ListServer", "RLS"]

log = logging.getLogger("sipproxy.presence")

#: the ``action`` of a list subscription's row
RLS = "rls"


def _id(uri: str) -> str:
    """``sip:Bob@Example.com`` -> ``Bob@example.com``."""
    for scheme in ("sip:", "sips:", "pres:"):
        if uri.lower().startswith(scheme):
            uri = uri[len(scheme):]
            break
    user, at, host = uri.partition("@")
    return f"{user}@{host.lower()}" if at else uri.lower()


class ListServer:
    """List subscriptions of the agent (``agent.lists``)."""

    #: the ``action`` of list subscriptions' rows
    action = RLS

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.backends = Backends(agent, self)

    # -- the list --------------------------------------------------------------------

    def members(self, list_id: str, watcher: str) -> list[tuple[str, str]] | None:
        """``(user@domain, display name)`` of the members of ``watcher``'s list ``list_id``;
        None when ``watcher`` has no such list (for presence)."""
        store = self.agent.store
        document = store.document("rls-services", watcher)
        if document is None:
            return None
        try:
            service = rls.find_service(document, f"sip:{list_id}")
            if service is None or (service.packages and "presence" not in service.packages):
                return None
            entries = list(service.entries)
            if service.reference:
                xui, filename, names = rls.parse_list_reference(service.reference)
                # one's own lists only: another user's buddy list is not the subscriber's to read
                lists = store.document("resource-lists", xui, filename) if xui == watcher.lower() else None
                entries = rls.list_entries(lists, names) if lists is not None else []
        except pidf.XmlError as exc:
            log.info("list %s of %s cannot be read: %s", list_id, watcher, exc)
            return None
        return [(_id(uri), name) for uri, name in entries]

    # -- SUBSCRIBE -------------------------------------------------------------------

    def subscribe(self, req: Request, txn: Transaction, inbound: Inbound, watcher: str,
                  expires: int, contact: str) -> Response | None:
        """A SUBSCRIBE to a URI that is no account: a list of the subscriber's, or 404."""
        uri: URI = req.uri
        list_id = f"{uri.user}@{(uri.host or '').lower()}"
        members = self.members(list_id, watcher)
        if members is None:
            return make_response(req, 404, "User Not Found", to_tag=new_tag())
        supported = ",".join(req.headers.getall("supported")).replace(" ", "").lower().split(",")
        if "eventlist" not in supported:  # RFC 4662 4.1: a list only for who can read one
            return make_response(req, 421, to_tag=new_tag(), headers=[("Require", "eventlist")])
        if not accepts(req, "multipart/related", rls.RLMI_TYPE, pidf.CONTENT_TYPE):
            return make_response(req, 406, to_tag=new_tag(), headers=[
                ("Accept", f"multipart/related, {rls.RLMI_TYPE}, {pidf.CONTENT_TYPE}")])
        agent = self.agent
        sub = new_subscription(req, "presence", "", list_id, watcher, contact, str(inbound.source),
                               expires, agent.clock())
        sub.action, sub.state = RLS, "active"
        sub.resources = tuple(m for m, _ in members)
        ok = make_response(req, 200, to_tag=sub.to_tag,
                           headers=[*dialog_headers(req, expires, contact), ("Require", "eventlist")])
        if expires == 0:
            agent.edge.respond(txn, ok)
            sub.state, sub.reason = "terminated", "timeout"
            self.notify(sub, None, names=dict(members), save=False, first=True)
            return None
        agent.store.add(sub)
        agent.edge.respond(txn, ok)
        log.info("list subscription %s -> %s: %d resources", watcher, list_id, len(members))
        self.notify(sub, None, names=dict(members), first=True)
        self.backends.ensure(sub)
        return None

    # -- NOTIFY ----------------------------------------------------------------------

    def resource(self, sub: Subscription, member: str, cache: dict) -> rls.Resource:
        """The state of ``member`` as ``sub``'s subscriber may see it."""
        agent = self.agent
        res = rls.Resource(f"sip:{member}")
        user, _, domain = member.partition("@")
        if self.backends.is_foreign(member):
            return self.backends.resource(sub.watcher, member)
        if agent.directory.account(user, domain) is None or not agent.store.account_exists(member):
            res.state, res.reason = "terminated", "noresource"
            return res
        if member not in cache:
            cache[member] = (agent.store.rules(member), agent.composed(member))
        rules, document = cache[member]
        decision = agent.decide(rules, sub.watcher, member)
        if decision.action == policy.BLOCK:
            res.state, res.reason = "terminated", "rejected"
        elif decision.action == policy.CONFIRM:
            res.state = "pending"
        elif decision.action == policy.POLITE_BLOCK:
            res.state, res.body = "active", pidf.serialise(pidf.neutral(res.uri))
        else:
            res.state = "active"
            res.body = pidf.serialise(pidf.transform(document, decision.transformations))
        return res

    def notify(self, sub: Subscription, changed: list[str] | None, names: dict | None = None,
               save: bool = True, cache: dict | None = None, first: bool = False) -> None:
        """A NOTIFY of ``sub``: full state (``changed`` None) or the ``changed`` members;
        the RLMI version is 0 in the ``first``, one up in each later one."""
        cache = {} if cache is None else cache
        full = changed is None
        members = list(sub.resources) if full else [m for m in changed or () if m in sub.resources]
        if not members and not full:
            return
        resources = []
        for member in members:
            res = self.resource(sub, member, cache)
            res.name = (names or {}).get(member, "")
            resources.append(res)
        sub.version = 0 if first else sub.version + 1
        host = sub.presentity.rpartition("@")[2] or "rls.invalid"
        body, ctype = rls.multipart(f"sip:{sub.presentity}", sub.version, full, resources, host)
        self.agent.send(sub, body, ctype, save=save)

    # -- changes ---------------------------------------------------------------------

    def member_changed(self, watcher: str, member: str) -> None:
        """A back-end subscription of ``watcher``'s heard news of ``member``."""
        for sub in self.agent.store.list_subscriptions(member):
            if sub.watcher == watcher:
                self.notify(sub, [member])

    def ended(self, sub: Subscription) -> None:
        """List subscription ``sub`` ended: its back-end subscriptions no other list needs end."""
        self.backends.release(sub)

    def resource_changed(self, member: str) -> None:
        """``member``'s state or rules changed: a partial NOTIFY to each list holding it."""
        cache: dict = {}
        for sub in self.agent.store.list_subscriptions(member):
            self.notify(sub, [member], cache=cache)

    def documents_changed(self, xui: str) -> None:
        """``xui``'s rls-services or resource-lists changed: its lists are read again; a
        list whose members changed gets a full-state NOTIFY."""
        for sub in self.agent.store.subscriptions_of(xui, RLS):
            members = self.members(sub.presentity, xui)
            if members is None:
                self.agent.terminate(sub, "noresource")
                continue
            ids = tuple(m for m, _ in members)
            if ids != sub.resources:
                before, sub.resources = sub.resources, ids
                if not self.agent.store.save(sub, expect={"resources": before}):
                    continue  # another proxy re-read the list first: it notifies
                self.notify(sub, None, names=dict(members))
                self.backends.release(sub)  # members gone: their back-ends, unless another list has them
                self.backends.ensure(sub)
