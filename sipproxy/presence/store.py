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

from sqlalchemy import bindparam, delete, func, select, update

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


#: the table itself: plain statements, without the ORM's bookkeeping of bulk updates
_TABLE = PresenceSubscription.__table__


def _key(sub: Subscription, t: Any = PresenceSubscription) -> Any:
    """The row of ``sub`` (``t``: the mapped class, or :data:`_TABLE`'s columns)."""
    c = t if t is PresenceSubscription else t.c
    return (c.call_id == sub.call_id) & (c.to_tag == sub.to_tag) & (c.event_id == sub.event_id)


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

    def next_cseq(self, sub: Subscription, save: bool = False) -> int:
        """The next CSeq number of our requests in ``sub``'s dialog, taken in one transaction
        (the UPDATE's row lock): two senders -- two greenlets, two proxies -- never use the
        same.  ``save``: ``sub``'s changing fields are written by the same UPDATE.  A dialog
        whose row is gone goes on from what ``sub`` holds."""
        t = _TABLE
        values: dict[str, Any] = _values(sub, _MUTABLE) if save else {}
        with self.sessions() as s, s.begin():
            s.execute(update(t).where(_key(sub, t)).values(local_cseq=t.c.local_cseq + 1, **values))
            number = s.scalar(select(t.c.local_cseq).where(_key(sub, t)))
        return number if number is not None else sub.local_cseq + 1

    def next_cseqs(self, subs: list[Subscription]) -> list[int]:
        """:meth:`next_cseq` for many dialogs at once (a state change's NOTIFYs): one
        transaction, one statement run for every dialog, one read of the numbers."""
        if not subs:
            return []
        t = _TABLE
        key = (t.c.call_id == bindparam("k_call_id")) & (t.c.to_tag == bindparam("k_to_tag")) \
            & (t.c.event_id == bindparam("k_event_id"))
        params = [{"k_call_id": sub.call_id, "k_to_tag": sub.to_tag, "k_event_id": sub.event_id} for sub in subs]
        found: dict[tuple[str, str, str], int] = {}
        with self.sessions() as s, s.begin():
            s.execute(update(t).where(key).values(local_cseq=t.c.local_cseq + 1), params)
            call_ids = sorted({sub.call_id for sub in subs})
            for start in range(0, len(call_ids), 500):
                rows = s.execute(select(t.c.call_id, t.c.to_tag, t.c.event_id, t.c.local_cseq)
                                 .where(t.c.call_id.in_(call_ids[start:start + 500]))).all()
                found.update({(c, tag, e): n for c, tag, e, n in rows})
        return [found.get((sub.call_id, sub.to_tag, sub.event_id), sub.local_cseq + 1) for sub in subs]

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

    def lists_reading(self, key: str) -> list[Subscription]:
        """The list subscriptions whose list was read from the XCAP document ``key``
        (``auid/xui/filename``, lowercased; kept in the row's ``document``)."""
        with self.sessions() as s:
            rows = s.scalars(select(PresenceSubscription).where(
                PresenceSubscription.action == "rls",
                PresenceSubscription.document.contains(f'"{key.lower()}"', autoescape=True))).all()
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
        return self.aliases_of([account])[account]

    def aliases_of(self, accounts: list[str]) -> dict[str, list[str]]:
        """:meth:`aliases` of each of ``accounts``, in two reads (one per level) for all."""
        found: dict[str, list[str]] = {a: [] for a in accounts}
        if not accounts:
            return found
        level = {a: [a] for a in found}  # account -> the addresses whose aliases to read next
        a = SipAlias
        with self.sessions() as s:
            for _ in range(2):
                targets = {t for ts in level.values() for t in ts}
                if not targets:
                    break
                users = sorted({t.rpartition("@")[0] for t in targets})
                domains = sorted({t.rpartition("@")[2] for t in targets})
                leads: dict[str, list[str]] = {}
                for start in range(0, len(users), 500):
                    rows = s.execute(select(a.username, a.domain, a.target_username, a.target_domain).where(
                        a.target_username.in_(users[start:start + 500]), a.target_domain.in_(domains))
                        .order_by(a.id)).all()
                    for user, domain, t_user, t_domain in rows:
                        leads.setdefault(f"{t_user}@{t_domain}", []).append(f"{user}@{domain}")
                for account, ts in level.items():
                    new = [alias for t in ts for alias in leads.get(t, ()) if alias not in found[account]]
                    found[account] += new
                    level[account] = new
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
