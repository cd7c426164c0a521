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

import json
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


class ListServer:
    """List subscriptions of the agent (``agent.lists``)."""

    #: the ``action`` of list subscriptions' rows
    action = RLS

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.backends = Backends(agent, self)

    # -- the list --------------------------------------------------------------------

    def read(self, list_id: str, watcher: str) -> tuple[rls.ListNode, set[str]] | None:
        """``watcher``'s list ``list_id`` (for presence) as a tree, with the XCAP documents
        read to build it; None when ``watcher`` has no such list or it cannot be read."""
        store = self.agent.store
        expander = rls.Expander(store.document, watcher, self.agent.xcap_root)
        try:
            tree = expander.service(f"sip:{list_id}")
        except pidf.XmlError as exc:
            log.info("list %s of %s cannot be read: %s", list_id, watcher, exc)
            return None
        return (tree, expander.read) if tree is not None else None

    @staticmethod
    def _state(sub: Subscription) -> dict[str, Any]:
        """What a list subscription's row keeps in ``document``: the list's ``tree``, the
        XCAP documents it was read from (``docs``) and each nested list's RLMI ``versions``."""
        try:
            state = json.loads(sub.document) if sub.document else {}
        except ValueError:
            state = {}
        return state if isinstance(state, dict) else {}

    @staticmethod
    def _tree(sub: Subscription, state: dict[str, Any]) -> rls.ListNode:
        if isinstance(state.get("tree"), dict):
            return rls.ListNode.from_json(state["tree"])
        # (a row written before lists were kept as trees: its resources, flat)
        return rls.ListNode(f"sip:{sub.presentity}", members=[rls.Entry(f"sip:{r}") for r in sub.resources])

    @staticmethod
    def _keep(sub: Subscription, tree: rls.ListNode, docs: set[str], versions: dict[str, int]) -> None:
        sub.resources = tree.resources()
        sub.document = json.dumps({"tree": tree.to_json(), "docs": sorted(docs), "versions": versions},
                                  ensure_ascii=False, sort_keys=True)

    # -- SUBSCRIBE -------------------------------------------------------------------

    def subscribe(self, req: Request, txn: Transaction, inbound: Inbound, watcher: str,
                  expires: int, contact: str) -> Response | None:
        """A SUBSCRIBE to a URI that is no account: a list of the subscriber's, or 404."""
        uri: URI = req.uri
        list_id = f"{uri.user}@{(uri.host or '').lower()}"
        found = self.read(list_id, watcher)
        if found is None:
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
        tree, docs = found
        self._keep(sub, tree, docs, {})
        ok = make_response(req, 200, to_tag=sub.to_tag,
                           headers=[*dialog_headers(req, expires, contact), ("Require", "eventlist")])
        if expires == 0:
            agent.edge.respond(txn, ok)
            sub.state, sub.reason = "terminated", "timeout"
            self.notify(sub, None, save=False, first=True)
            return None
        agent.store.add(sub)
        agent.edge.respond(txn, ok)
        log.info("list subscription %s -> %s: %d resources", watcher, list_id, len(sub.resources))
        self.notify(sub, None, first=True)
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

    def _members(self, node: rls.ListNode, sub: Subscription, changed: set[str] | None,
                 versions: dict[str, int], first: bool, cache: dict) -> list[rls.Resource | rls.NestedList]:
        """What a NOTIFY reports of ``node``: every member (``changed`` None: full state), or
        the ``changed`` resources and the nested lists holding one.  Each nested list
        reported gets its own next RLMI version (0 in the first NOTIFY, or when new) in
        ``versions`` (RFC 4662 5.2: one counter per list)."""
        out: list[rls.Resource | rls.NestedList] = []
        for member in node.members:
            if isinstance(member, rls.ListNode):
                inner = self._members(member, sub, changed, versions, first, cache)
                if changed is not None and not inner:
                    continue
                version = 0 if first or member.uri not in versions else versions[member.uri] + 1
                versions[member.uri] = version
                out.append(rls.NestedList(member.uri, member.name, version, changed is None, inner))
            else:
                ident = rls.member_id(member.uri)
                if changed is not None and ident not in changed:
                    continue
                res = self.resource(sub, ident, cache)
                res.name = member.name
                out.append(res)
        return out

    def notify(self, sub: Subscription, changed: list[str] | None, save: bool = True,
               cache: dict | None = None, first: bool = False) -> None:
        """A NOTIFY of ``sub``: full state (``changed`` None) or the ``changed`` members;
        the RLMI version is 0 in the ``first``, one up in each later one.  Nested lists are
        nested RLMI documents (RFC 4662 section 5), full in a full-state NOTIFY, partial
        (only the changed members, ``fullState="false"``) otherwise."""
        cache = {} if cache is None else cache
        state = self._state(sub)
        tree = self._tree(sub, state)
        versions = {k: v for k, v in (state.get("versions") or {}).items() if isinstance(v, int)}
        wanted = None if changed is None else {m for m in changed if m in sub.resources}
        members = self._members(tree, sub, wanted, versions, first, cache)
        if not members and wanted is not None:
            return
        sub.version = 0 if first else sub.version + 1
        self._keep(sub, tree, set(state.get("docs") or ()), versions)
        host = sub.presentity.rpartition("@")[2] or "rls.invalid"
        body, ctype = rls.multipart(f"sip:{sub.presentity}", sub.version, changed is None, members, host)
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
        """Documents of ``xui``'s tree changed: its lists are read again (:meth:`reread`)."""
        for sub in self.agent.store.subscriptions_of(xui, RLS):
            self.reread(sub)

    def shared_documents_changed(self, keys: list[str]) -> None:
        """Global XCAP documents (``auid//filename``) changed: the lists read from them (an
        ``external`` or ``entry-ref`` into the global tree) are read again."""
        done: set[tuple[str, str, str]] = set()
        for key in keys:
            for sub in self.agent.store.lists_reading(key):
                if sub.key not in done:
                    done.add(sub.key)
                    self.reread(sub)

    def reread(self, sub: Subscription) -> None:
        """Read ``sub``'s list again: when its members or its shape (nested lists, names)
        changed, a full-state NOTIFY, and its back-end subscriptions follow the members."""
        found = self.read(sub.presentity, sub.watcher)
        if found is None:
            self.agent.terminate(sub, "noresource")
            return
        tree, docs = found
        state = self._state(sub)
        before_resources, before_document = sub.resources, sub.document
        self._keep(sub, tree, docs, state.get("versions") or {})
        if sub.resources == before_resources and tree.to_json() == state.get("tree"):
            if sorted(docs) != state.get("docs"):  # (the same list from other documents: remember them)
                self.agent.store.save(sub, expect={"document": before_document})
            return
        if not self.agent.store.save(sub, expect={"resources": before_resources, "document": before_document}):
            return  # another proxy re-read the list first: it notifies
        self.notify(sub, None)
        self.backends.release(sub)  # members gone: their back-ends, unless another list has them
        self.backends.ensure(sub)
