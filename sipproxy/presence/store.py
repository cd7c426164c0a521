"""The presence agent's state in SQL: ``presence_subscriptions``, ``presence_publications``,
and the XCAP documents it reads (``xcap_documents``).

Why SQL: a restarted proxy, or a second proxy on the same database, finds the
subscriptions to notify and the publications to compose (DESIGN.md, Data).  Changes that
several proxies could make at once are conditional updates (the row still holds what the
caller saw), so exactly one of them notifies: an expiry is taken by the one whose DELETE
removed the row, a re-authorization by the one whose UPDATE matched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, func, select, update

from ngnpro.models import (
    PresencePublication,
    PresenceSubscription,
    SipAccount,
    SipAlias,
    XcapDocument,
)
from sipproxy.presence.policy import PRES_RULES_AUIDS
from sipproxy.presence.publication import Outcome, Publication
from sipproxy.presence.subscription import Subscription

__all__ = ["PresenceStore", "PRES_RULES_AUIDS"]


_FIELDS = ("call_id", "from_tag", "to_tag", "event", "event_id", "presentity", "watcher", "watcher_uri",
           "presentity_uri", "remote_target", "route_set", "contact", "source", "local_cseq",
           "remote_cseq", "state", "reason", "action", "transformations", "version", "expires_at", "document")
#: (``local_cseq`` is not among them: only :meth:`PresenceStore.next_cseq` moves it, atomically)
_MUTABLE = ("from_tag", "remote_target", "route_set", "remote_cseq", "state", "reason", "action",
            "transformations", "version", "expires_at", "document")


def _sub(row: PresenceSubscription) -> Subscription:
    return Subscription(**{f: getattr(row, f) for f in _FIELDS},
                        resources=tuple(r for r in (row.resources or "").split("\n") if r))


def _values(sub: Subscription, fields: tuple[str, ...]) -> dict[str, Any]:
    values = {f: getattr(sub, f) for f in fields}
    values["resources"] = "\n" + "\n".join(sub.resources) + "\n" if sub.resources else ""
    return values


def _pub(row: PresencePublication) -> Publication:
    return Publication(row.presentity, row.etag, row.document, row.content_type, row.expires_at)


def _key(sub: Subscription) -> Any:
    t = PresenceSubscription
    return (t.call_id == sub.call_id) & (t.to_tag == sub.to_tag) & (t.event_id == sub.event_id)


class PresenceStore:
    """Reads and writes of the agent, each in a short transaction of its own."""

    def __init__(self, sessions: Callable[[], Any]) -> None:
        self.sessions = sessions

    # -- subscriptions -------------------------------------------------------------------

    def subscription(self, call_id: str, to_tag: str, event_id: str = "") -> Subscription | None:
        with self.sessions() as s:
            row = s.scalars(select(PresenceSubscription).where(
                PresenceSubscription.call_id == call_id, PresenceSubscription.to_tag == to_tag,
                PresenceSubscription.event_id == event_id)).first()
            return _sub(row) if row is not None else None

    def subscriptions(self, presentity: str, event: str) -> list[Subscription]:
        with self.sessions() as s:
            rows = s.scalars(select(PresenceSubscription).where(
                PresenceSubscription.presentity == presentity, PresenceSubscription.event == event)
                .order_by(PresenceSubscription.id)).all()
            return [_sub(r) for r in rows]

    def add(self, sub: Subscription) -> None:
        with self.sessions() as s, s.begin():
            s.add(PresenceSubscription(**_values(sub, _FIELDS)))

    def save(self, sub: Subscription, *, expect_action: str | None = None,
             expect_state: str | None = None, expect: dict[str, Any] | None = None) -> bool:
        """Write ``sub``'s changing fields; with ``expect_*`` (or ``expect``: column -> value,
        ``resources`` as the tuple), only when the row still holds those (False: another
        proxy changed it first, or it is gone)."""
        cond = _key(sub)
        if expect_action is not None:
            cond = cond & (PresenceSubscription.action == expect_action)
        if expect_state is not None:
            cond = cond & (PresenceSubscription.state == expect_state)
        for column, value in (expect or {}).items():
            if column == "resources":
                value = "\n" + "\n".join(value) + "\n" if value else ""
            cond = cond & (getattr(PresenceSubscription, column) == value)
        with self.sessions() as s, s.begin():
            result = s.execute(update(PresenceSubscription).where(cond)
                               .values(**_values(sub, _MUTABLE)))
            return (result.rowcount or 0) > 0

    def next_cseq(self, sub: Subscription) -> int:
        """The next CSeq number of our requests in ``sub``'s dialog, taken in one transaction
        (the UPDATE's row lock): two senders -- two greenlets, two proxies -- never use the
        same.  A dialog whose row is gone goes on from what ``sub`` holds."""
        with self.sessions() as s, s.begin():
            s.execute(update(PresenceSubscription).where(_key(sub))
                      .values(local_cseq=PresenceSubscription.local_cseq + 1))
            number = s.scalar(select(PresenceSubscription.local_cseq).where(_key(sub)))
        return number if number is not None else sub.local_cseq + 1

    def remove(self, sub: Subscription) -> bool:
        """Delete ``sub``; False when it was already gone."""
        with self.sessions() as s, s.begin():
            return (s.execute(delete(PresenceSubscription).where(_key(sub))).rowcount or 0) > 0

    def list_subscriptions(self, resource: str) -> list[Subscription]:
        """The list subscriptions (RFC 4662) that hold ``resource`` (``user@domain``)."""
        with self.sessions() as s:
            rows = s.scalars(select(PresenceSubscription).where(
                PresenceSubscription.action == "rls",
                PresenceSubscription.resources.like(f"%\n{resource}\n%"))).all()
            return [_sub(r) for r in rows]

    def backend(self, watcher: str, resource: str, action: str) -> Subscription | None:
        """The list server's own subscription to ``resource`` for ``watcher``, if any."""
        with self.sessions() as s:
            row = s.scalars(select(PresenceSubscription).where(
                PresenceSubscription.watcher == watcher, PresenceSubscription.presentity == resource,
                PresenceSubscription.action == action)).first()
            return _sub(row) if row is not None else None

    def expiring(self, action: str, before: float) -> list[Subscription]:
        """Subscriptions decided ``action`` that lapse before ``before`` (to refresh them)."""
        with self.sessions() as s:
            rows = s.scalars(select(PresenceSubscription).where(
                PresenceSubscription.action == action, PresenceSubscription.state != "terminated",
                PresenceSubscription.expires_at < int(before)).limit(500)).all()
            return [_sub(r) for r in rows]

    def subscriptions_of(self, watcher: str, action: str) -> list[Subscription]:
        """``watcher``'s subscriptions decided ``action`` (``rls``: its list subscriptions)."""
        with self.sessions() as s:
            rows = s.scalars(select(PresenceSubscription).where(
                PresenceSubscription.watcher == watcher, PresenceSubscription.action == action)).all()
            return [_sub(r) for r in rows]

    def count_watcher(self, watcher: str) -> int:
        with self.sessions() as s:
            # (the list server's own back-end subscriptions are bounded by the lists' sizes)
            return s.scalar(select(func.count()).select_from(PresenceSubscription).where(
                PresenceSubscription.watcher == watcher, PresenceSubscription.action != "rls-backend")) or 0

    def count_presentity(self, presentity: str) -> int:
        with self.sessions() as s:
            return s.scalar(select(func.count()).select_from(PresenceSubscription)
                            .where(PresenceSubscription.presentity == presentity)) or 0

    def take_expired_subscriptions(self, now: float) -> list[Subscription]:
        """Remove the subscriptions that have lapsed; those this call removed."""
        with self.sessions() as s:
            rows = s.scalars(select(PresenceSubscription).where(
                PresenceSubscription.expires_at < int(now)).limit(500)).all()
            found = [_sub(r) for r in rows]
        return [sub for sub in found if self.remove(sub)]

    # -- publications --------------------------------------------------------------------

    def publications(self, presentity: str, now: float) -> dict[str, Publication]:
        """The live publications of ``presentity`` by entity tag, oldest change first."""
        with self.sessions() as s:
            rows = s.scalars(select(PresencePublication).where(
                PresencePublication.presentity == presentity, PresencePublication.expires_at >= int(now))
                .order_by(PresencePublication.updated, PresencePublication.id)).all()
            return {r.etag: _pub(r) for r in rows}

    def apply(self, outcome: Outcome) -> bool:
        """Store what a PUBLISH decided; False when the entity tag it changed was changed
        or removed meanwhile (the PUBLISH then gets a 412)."""
        pub = outcome.publication
        with self.sessions() as s, s.begin():
            if outcome.action == "insert" and pub is not None:
                s.add(PresencePublication(presentity=pub.presentity, event="presence", etag=pub.etag,
                                          document=pub.document, content_type=pub.content_type,
                                          expires_at=pub.expires_at))
                return True
            if outcome.action == "update" and pub is not None:
                return (s.execute(update(PresencePublication).where(
                    PresencePublication.etag == outcome.old_etag).values(
                    etag=pub.etag, document=pub.document, expires_at=pub.expires_at)).rowcount or 0) > 0
            if outcome.action == "remove":
                return (s.execute(delete(PresencePublication).where(
                    PresencePublication.etag == outcome.old_etag)).rowcount or 0) > 0
        return True

    def remove_publications(self, presentity: str) -> int:
        with self.sessions() as s, s.begin():
            return s.execute(delete(PresencePublication).where(
                PresencePublication.presentity == presentity)).rowcount or 0

    def take_expired_publications(self, now: float) -> set[str]:
        """Remove lapsed publications; the presentities whose state this call changed."""
        with self.sessions() as s:
            rows = s.execute(select(PresencePublication.etag, PresencePublication.presentity).where(
                PresencePublication.expires_at < int(now)).limit(500)).all()
        changed = set()
        for etag, presentity in rows:
            with self.sessions() as s, s.begin():
                if s.execute(delete(PresencePublication).where(PresencePublication.etag == etag)).rowcount:
                    changed.add(presentity)
        return changed

    # -- accounts -------------------------------------------------------------------------

    def aliases(self, account: str) -> list[str]:
        """The aliases (``user@domain``) that lead to ``account`` (two levels of chains)."""
        found: list[str] = []
        targets = [account]
        with self.sessions() as s:
            for _ in range(2):
                rows = []
                for target in targets:
                    user, _, domain = target.rpartition("@")
                    rows += s.execute(select(SipAlias.username, SipAlias.domain).where(
                        SipAlias.target_username == user, SipAlias.target_domain == domain)).all()
                targets = [f"{u}@{d}" for u, d in rows if f"{u}@{d}" not in found]
                found += targets
                if not targets:
                    break
        return found

    def account_exists(self, account: str) -> bool:
        user, _, domain = account.rpartition("@")
        with self.sessions() as s:
            return s.scalar(select(SipAccount.id).where(SipAccount.username == user,
                                                        SipAccount.domain == domain)) is not None

    # -- XCAP documents ------------------------------------------------------------------

    def rules(self, presentity: str) -> str | None:
        """The presentity's pres-rules document (IETF usage first, then OMA), or None."""
        with self.sessions() as s:
            rows = s.execute(select(XcapDocument.auid, XcapDocument.document).where(
                XcapDocument.xui == presentity, XcapDocument.auid.in_(PRES_RULES_AUIDS),
                XcapDocument.filename == "index")).all()
        found = dict(rows)
        for auid in PRES_RULES_AUIDS:
            if auid in found:
                return found[auid]
        return None

    def document(self, auid: str, xui: str, filename: str = "index") -> str | None:
        with self.sessions() as s:
            return s.scalar(select(XcapDocument.document).where(
                XcapDocument.auid == auid, XcapDocument.xui == xui, XcapDocument.filename == filename))

    def documents(self, xui: str) -> dict[str, str]:
        """``auid/filename`` -> entity tag of every document in ``xui``'s tree (xcap-diff)."""
        with self.sessions() as s:
            rows = s.execute(select(XcapDocument.auid, XcapDocument.filename, XcapDocument.etag)
                             .where(XcapDocument.xui == xui)).all()
        return {f"{auid}/{filename}": etag for auid, filename, etag in rows}
