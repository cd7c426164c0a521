"""A short-lived cache of location look-ups: address-of-record -> its bindings (sans-I/O).

Why: every initial INVITE to a local user read the user's bindings from the shared
``location`` table -- a SELECT per call, ~4.6 % of a worker's CPU under call load -- although
they rarely change between two calls.  :class:`~sipproxy.location.LocationStore` keeps what
a look-up read for ``ttl`` seconds (``[sipproxy] location_cache``; 0: no cache).

What a cached answer can miss, and why that is acceptable:

* Within one proxy nothing: the store forgets an address-of-record's entry whenever it
  writes for it (a REGISTER written through or deferred as a pending refresh, a removal,
  the purge; the later write-back of pending refreshes writes what it already answers),
  and a write that changes the contact set or where calls go is announced to the sibling
  workers, which forget theirs (``on_change`` -> ``Core.invalidate_siblings``, a datagram
  through the workers' mailboxes).  A call that reaches a sibling in the instant
  between the commit and the arrival of that datagram, or a datagram the sibling's full
  mailbox refused, still sees the old contacts -- for at most ``ttl``.
* A second proxy on the same database writes where this one cannot hear it: its changes
  are seen here within ``ttl``.
* Refreshes (the same contacts, a later expiry) are not announced: they never change where
  calls go.  The one way an expiry does matter is when the cached one passes: :meth:`get`
  then answers None rather than the bindings left, so the caller reads the table again and
  finds a binding another worker refreshed meanwhile (it is not dropped from calls).
* A look-up that was reading the table when its address-of-record was invalidated may have
  read the state before that write: :meth:`put` drops its answer (``since``, from
  :meth:`mark` before the read), so it is never cached after the invalidation.

The cache is bounded (``size`` entries, the oldest dropped first); answers are lists the
caller may keep or change, the cached tuples are never handed out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable, Sequence
from operator import attrgetter
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["CachedLookups", "LookupCache", "routes_differ"]

log = logging.getLogger("sipproxy.location")


class _Expiring(Protocol):
    @property
    def expires(self) -> float: ...


B = TypeVar("B", bound=_Expiring)


class LookupCache:
    """``aor -> (bindings, fetched at)``; ``now`` is the caller's clock (epoch seconds, the
    one binding expiries are in)."""

    def __init__(self, ttl: float, size: int = 10000) -> None:
        if ttl < 0 or size < 1:
            raise ValueError("ttl must be >= 0 and size >= 1")
        self.ttl = ttl
        self.size = size
        self._entries: dict[Hashable, tuple[tuple[Any, ...], float]] = {}
        #: invalidations so far; per recent address-of-record the number of its last one
        #: (bounded too: one forgotten counts as at most ``_floor``)
        self._seq = 0
        self._recent: dict[Hashable, int] = {}
        self._floor = 0
        #: counters for tests and benchmarks
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, aor: Hashable, now: float) -> list[Any] | None:
        """The cached bindings of ``aor`` (a new list), or None: not cached, older than
        ``ttl``, or one of them expired since it was read (see the module docstring)."""
        entry = self._entries.get(aor)
        if entry is not None:
            bindings, fetched = entry
            # a clock set back must not make an entry young again
            if 0.0 <= now - fetched < self.ttl and all(b.expires > now for b in bindings):
                self.hits += 1
                return list(bindings)
            del self._entries[aor]
        self.misses += 1
        return None

    def mark(self) -> int:
        """Before reading the table: pass this to :meth:`put` as ``since``."""
        return self._seq

    def put(self, aor: Hashable, bindings: Sequence[B], now: float, since: int | None = None) -> None:
        """Remember ``bindings`` of ``aor``, read at ``now``.  Never an empty list (a user who
        registers must be reachable at once), nor an answer read before an invalidation of
        ``aor`` that came after ``since``."""
        if not bindings or self.ttl <= 0:
            return
        if since is not None and self._recent.get(aor, self._floor) > since:
            return
        entries = self._entries
        entries.pop(aor, None)  # re-inserted: the newest again
        entries[aor] = (tuple(bindings), now)
        if len(entries) > self.size:
            del entries[next(iter(entries))]

    def invalidate(self, aor: Hashable) -> None:
        """Forget ``aor`` (its bindings changed, or may have), and void answers being read."""
        self._entries.pop(aor, None)
        self._seq += 1
        recent = self._recent
        recent.pop(aor, None)
        recent[aor] = self._seq
        if len(recent) > self.size:
            oldest = next(iter(recent))
            self._floor = recent.pop(oldest)

    def clear(self) -> None:
        """Forget everything (and void every answer being read)."""
        self._entries.clear()
        self._recent.clear()
        self._seq += 1
        self._floor = self._seq


#: what of a binding decides where a call goes
_route = attrgetter("contact", "q", "received", "socket", "path", "instance", "reg_id", "behind_nat")


def routes_differ(before: Iterable[Any], after: Iterable[Any]) -> bool:
    """True when the live bindings ``after`` a write route calls differently from those
    ``before``: a contact added or removed, or one of its routing fields changed (a pure
    refresh -- new expiry, Call-ID, CSeq, User-Agent -- does not).  Such a write must be
    announced to the other workers' caches."""
    return set(map(_route, before)) != set(map(_route, after))


class CachedLookups(Generic[B]):
    """The location store's side of the cache, kept here so that the store holds only its
    hooks: a mixin of :class:`~sipproxy.location.LocationStore`, which provides ``_clock``
    and ``_lookup`` (the table read) and calls :meth:`_changed` after every write it makes
    for an address-of-record, :meth:`_purged` after deleting expired bindings."""

    #: recent look-ups; None: every look-up reads the table
    cache: LookupCache | None = None
    #: ``on_change(username, domain)``: a write made here changed where calls to that
    #: address-of-record go (the server tells its sibling workers); it must not raise
    on_change: Callable[[str, str], None] | None = None
    _clock: Callable[[], float]

    def _lookup(self, aor: tuple[str, str], now: float) -> list[B]:
        raise NotImplementedError

    def lookup(self, username: str, domain: str) -> list[B]:
        """The live bindings of ``username@domain``, best first (q, then most recent)."""
        now = self._clock()
        aor = (username, domain.lower())
        cache = self.cache
        if cache is None:
            return self._lookup(aor, now)
        found = cache.get(aor, now)
        if found is None:
            since = cache.mark()
            found = self._lookup(aor, now)
            cache.put(aor, found, now, since)
        return found

    def _changed(self, aor: tuple[str, str], announce: bool) -> None:
        """A write for ``aor`` was made: forget its cached look-up.  ``announce``: it changed
        where calls go, so ``on_change`` too (after the commit: the others read the new rows)."""
        if self.cache is not None:
            self.cache.invalidate(aor)
        if announce and self.on_change is not None:
            try:
                self.on_change(*aor)
            except Exception:  # committed: the others see it within their TTL
                log.exception("location: on_change(%s@%s) failed", *aor)

    def _purged(self) -> None:
        """Expired bindings were deleted, whose we do not know (:meth:`LookupCache.get`
        ignores expired ones anyway)."""
        if self.cache is not None:
            self.cache.clear()
