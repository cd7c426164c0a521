"""The presence agent's own loop: XCAP document changes from the change feed, and expiry.

Why a loop of its own: a pres-rules document written through the XCAP server (another
process, maybe another host) must re-decide the live subscriptions within a second
(DESIGN.md: a change visible within 1 s), and lapsed subscriptions and publications must
end without a request to trigger it.  The feed's ``xcap`` topic names each changed document
as ``auid/xui/filename``; the agent is told which trees changed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ngnpro.models import ChangeFeed
from ngnpro.models.changes import TOPIC_PRESENCE, TOPIC_XCAP, Change
from sipproxy.directory.feed import FeedFollower

__all__ = ["PresenceService", "TOPIC_PRESENCE", "TOPIC_XCAP", "changed_trees"]

log = logging.getLogger("sipproxy.presence")

#: ngnpro's topic for accounts (key ``user@domain``): a removed account's subscriptions end
TOPIC_SIP_ACCOUNT = "sip_account"


def changed_trees(changes: list[Change]) -> dict[str, set[str]]:
    """The XCAP users (``user@domain``) whose documents ``changes`` name, each with the
    application usages (auids) that changed, in order of first change."""
    out: dict[str, set[str]] = {}
    for change in changes:
        if change.topic != TOPIC_XCAP:
            continue
        parts = change.key.split("/")
        xui = parts[1] if len(parts) >= 3 else ""
        if xui.startswith("sip:"):
            xui = xui[4:]
        if xui:
            out.setdefault(xui, set()).add(parts[0])
    return out


class PresenceService(FeedFollower):
    """Follows the feed for the agent and sweeps expiries every ``sweep_interval``."""

    name = "presence"

    def __init__(self, agent: Any, sessions: Callable[[], Any], refresh_interval: float = 0.25,
                 sweep_interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(ChangeFeed(sessions), refresh_interval, clock)
        self.agent = agent
        self.sweep_interval = sweep_interval
        self._last_sweep = clock()

    def apply(self, changes: list[Change]) -> None:
        accounts = {c.key for c in changes if c.topic == TOPIC_SIP_ACCOUNT and "@" in c.key}
        for account in sorted(accounts):
            try:
                self.agent.account_changed(account)
            except Exception:  # noqa: BLE001 - one account's failure must not stop the others
                log.exception("presence: cannot apply the change of account %s", account)
        for presentity in dict.fromkeys(c.key for c in changes if c.topic == TOPIC_PRESENCE and "@" in c.key):
            try:  # a publication written by another writer (ngnpro's PresencePort)
                self.agent.state_changed(presentity)
            except Exception:  # noqa: BLE001
                log.exception("presence: cannot notify the state of %s", presentity)
        shared = sorted({c.key.lower() for c in changes if c.topic == TOPIC_XCAP and c.key.split("/")[1:2] == [""]})
        if shared:
            try:  # global documents: the lists that reference them (RFC 4826 external, entry-ref)
                self.agent.lists.shared_documents_changed(shared)
            except Exception:  # noqa: BLE001
                log.exception("presence: cannot apply the change of global XCAP documents")
        for xui, auids in changed_trees(changes).items():
            try:
                self.agent.documents_changed(xui, frozenset(auids))
            except Exception:  # noqa: BLE001 - one tree's failure must not stop the others
                log.exception("presence: cannot apply the XCAP change of %s", xui)

    def refresh(self) -> int:
        count = super().refresh()
        if self._clock() - self._last_sweep >= self.sweep_interval:
            self._last_sweep = self._clock()
            self.agent.sweep()
        return count
