"""Caches of provisioning kept fresh by ngnpro's change feed (DESIGN.md: a change visible
within 1 s).

Why one base: the directory (domains, accounts, aliases) and the routing data (LCR, trusted
peers, diversions, emergency mappings) follow the feed the same way -- a refresher greenlet
polls it every ``refresh_interval``; without one, a look-up polls when a poll is due -- and
differ only in what a change drops (:meth:`FeedFollower.apply`) and what is loaded at start
(:meth:`FeedFollower.warm`).  A failed poll keeps the cache: the feed keeps its position,
so the changes missed are applied on the next successful poll.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from ngnpro.models import ChangeFeed
from ngnpro.models.changes import Change

__all__ = ["FeedFollower", "engine_of"]

log = logging.getLogger("sipproxy.directory")


def engine_of(session_factory: Callable[[], Any] | Engine) -> Engine:
    """The engine a session factory is bound to (the stores run Core statements on it); an
    engine is its own."""
    if isinstance(session_factory, Engine):
        return session_factory
    if isinstance(session_factory, sessionmaker) and session_factory.kw.get("bind") is not None:
        return session_factory.kw["bind"]
    with session_factory() as s:
        return s.get_bind()


class FeedFollower:
    """The freshness of one cache (subclasses name it and say what a change drops)."""

    #: how the cache is named in log lines
    name = "cache"

    def __init__(self, feed: ChangeFeed, refresh_interval: float, clock: Callable[[], float]) -> None:
        self._feed = feed
        self.refresh_interval = refresh_interval
        self._clock = clock
        self._last_refresh = clock()
        self._failing_since: float | None = None  # the change feed failing since (a poll error)
        self._failures = 0
        self._greenlet = None

    def apply(self, changes: list[Change]) -> None:
        """Drop what ``changes`` name."""
        raise NotImplementedError

    def warm(self) -> int:
        """Load at start what most look-ups will ask; how many entries."""
        return 0

    def refresh(self) -> int:
        """Apply the changes committed since the last call; returns how many were read."""
        self._last_refresh = self._clock()
        changes = self._feed.poll()
        if changes:
            self.apply(changes)
            log.debug("%s: %d provisioning changes applied", self.name, len(changes))
        return len(changes)

    def _maybe_refresh(self) -> None:
        """Without a refresher greenlet, look-ups poll the feed themselves when it is due."""
        if self._greenlet is None and self._clock() - self._last_refresh >= self.refresh_interval:
            self._safe_refresh()

    def _safe_refresh(self) -> None:
        """Poll; a failure keeps the cache.  An outage is logged once when it starts and
        once when it ends (a poll every ``refresh_interval`` would log a line each)."""
        try:
            self.refresh()
        except Exception as exc:  # noqa: BLE001 - a database hiccup must not take the proxy down
            if self._failing_since is None:
                self._failing_since = self._clock()
                self._failures = 0
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                log.warning("%s: change feed poll failed (%s); keeping the cache, retrying every %gs",
                            self.name, first, self.refresh_interval)
            self._failures += 1
            return
        if self._failing_since is not None:
            log.warning("%s: change feed read again after %.1f s (%d polls failed)", self.name,
                        self._clock() - self._failing_since, self._failures)
            self._failing_since = None

    def start(self) -> None:
        """Run :meth:`refresh` every ``refresh_interval`` seconds in a gevent greenlet."""
        import gevent

        def loop() -> None:
            try:
                log.debug("%s: %d entries preloaded", self.name, self.warm())
            except Exception as exc:  # noqa: BLE001 - the cache fills on demand instead
                log.warning("%s: preload failed: %s", self.name, exc)
            while True:
                gevent.sleep(self.refresh_interval)
                self._safe_refresh()

        if self._greenlet is None:
            self._greenlet = gevent.spawn(loop)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None
