"""A short-lived cache of location look-ups: address-of-record -> its bindings (sans-I/O).

Why: every initial INVITE to a local user read the user's bindings from the shared
``location`` table -- a SELECT per call, ~4.6 % of a worker's CPU under call load -- although
they rarely change between two calls.  :class:`~sipproxy.registrar.location.LocationStore` keeps what
a look-up read for ``ttl`` seconds (``[sipproxy] location_cache``; 0: no cache).

What a cached answer can miss, and why that is acceptable:

* Within one proxy nothing: the store forgets an address-of-record's entry whenever it
  writes for it (a REGISTER written through or deferred as a pending refresh, a removal,
  the purge; the later write-back of pending refreshes writes what it already answers),
  and a write that changes the contact set or where calls go bumps that address-of-record's
  counter in the :class:`ChangeCounters` all workers share (``on_change``), before its 200
  OK goes out: a sibling's cached answer no longer matches the counters, whatever message
  comes after -- a phone that adds a contact and calls at once rings there.
* A second proxy on the same database writes where this one cannot see it: its changes
  are seen here within ``ttl``.
* Refreshes (the same contacts, a later expiry) are not announced: they never change where
  calls go.  The one way an expiry does matter is when the cached one passes: :meth:`get`
  then answers None rather than the bindings left, so the caller reads the table again and
  finds a binding another worker refreshed meanwhile (it is not dropped from calls).
* A look-up that was reading the table when its address-of-record was changed may have
  read the state before that write: :meth:`put` drops its answer (``since``, from
  :meth:`mark` before the read, for this worker's writes; the counters' ``stamp`` taken
  before the read, for the siblings'), so it is never cached after the change.

The cache is bounded (``size`` entries, the oldest dropped first); answers are lists the
caller may keep or change, the cached tuples are never handed out.
"""

from __future__ import annotations

import logging
import mmap
from collections.abc import Callable, Hashable, Iterable, Sequence
from operator import attrgetter
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["CachedLookups", "ChangeCounters", "LookupCache", "routes_differ"]

log = logging.getLogger("sipproxy.location")


class _Expiring(Protocol):
    @property
    def expires(self) -> float: ...


B = TypeVar("B", bound=_Expiring)


class ChangeCounters:
    """Per address-of-record change counters in memory that the workers of one server share
    (an anonymous shared mapping, made before they fork).

    Why: a sibling's write must void this worker's cached look-up before any message that
    comes after that write is handled here.  Telling siblings by datagram (the first way)
    could not promise it: the datagram waits on another socket than the call, and a busy
    worker may read the call first.  A counter bumped before the 200 OK, in memory every
    worker reads, is seen by whatever comes after -- no system call on either side.

    Each worker writes only its own row (``worker``: set once forked), so no update is lost
    without a lock; an address-of-record's *stamp* is its bucket's counters across the
    rows.  Buckets are by hash (the workers are forks: the same hash seed); two
    addresses-of-record sharing one cost a needless read, never a stale answer."""

    def __init__(self, workers: int, buckets: int = 1 << 16) -> None:
        if workers < 1 or buckets < 1:
            raise ValueError("workers and buckets must be >= 1")
        self.workers = workers
        self.buckets = buckets
        self.worker = 0
        self._map = mmap.mmap(-1, workers * buckets * 4)  # MAP_SHARED | MAP_ANONYMOUS
        self._counts = memoryview(self._map).cast("I")

    def bump(self, username: str, domain: str) -> None:
        """This worker changed where calls to ``username@domain`` go (``on_change``)."""
        i = self.worker * self.buckets + hash((username, domain.lower())) % self.buckets
        self._counts[i] = (self._counts[i] + 1) & 0xFFFFFFFF

    def stamp(self, aor: Hashable) -> list[int]:
        """What the workers have changed of ``aor`` = ``(username, domain)``, so far."""
        return self._counts[hash(aor) % self.buckets::self.buckets].tolist()


class LookupCache:
    """``aor -> (bindings, fetched at, stamp)``; ``now`` is the caller's clock (epoch
    seconds, the one binding expiries are in).  ``shared``: the workers' change counters
    (None: one worker, nobody else writes here)."""

    def __init__(self, ttl: float, size: int = 10000, shared: ChangeCounters | None = None) -> None:
        if ttl < 0 or size < 1:
            raise ValueError("ttl must be >= 0 and size >= 1")
        self.ttl = ttl
        self.size = size
        self.shared = shared
        self._entries: dict[Hashable, tuple[tuple[Any, ...], float, list[int] | None]] = {}
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
            bindings, fetched, stamp = entry
            # a clock set back must not make an entry young again
            if 0.0 <= now - fetched < self.ttl and all(b.expires > now for b in bindings) \
                    and (stamp is None or self.shared.stamp(aor) == stamp):  # type: ignore[union-attr]
                self.hits += 1
                return list(bindings)
            del self._entries[aor]
        self.misses += 1
        return None

    def mark(self) -> int:
        """Before reading the table: pass this to :meth:`put` as ``since``."""
        return self._seq

    def stamp(self, aor: Hashable) -> list[int] | None:
        """Before reading the table: the siblings' changes so far, for :meth:`put`."""
        return self.shared.stamp(aor) if self.shared is not None else None

    def put(self, aor: Hashable, bindings: Sequence[B], now: float, since: int | None = None,
            stamp: list[int] | None = None) -> None:
        """Remember ``bindings`` of ``aor``, read at ``now``.  Never an empty list (a user who
        registers must be reachable at once), nor an answer read before an invalidation of
        ``aor`` that came after ``since``; ``stamp`` (from :meth:`stamp` before the read)
        voids it when a sibling has changed ``aor`` since."""
        if not bindings or self.ttl <= 0:
            return
        if since is not None and self._recent.get(aor, self._floor) > since:
            return
        if self.shared is not None and stamp is None:
            stamp = self.shared.stamp(aor)
        entries = self._entries
        entries.pop(aor, None)  # re-inserted: the newest again
        entries[aor] = (tuple(bindings), now, stamp)
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
    hooks: a mixin of :class:`~sipproxy.registrar.location.LocationStore`, which provides ``_clock``
    and ``_lookup`` (the table read) and calls :meth:`_changed` after every write it makes
    for an address-of-record, :meth:`_purged` after deleting expired bindings."""

    #: recent look-ups; None: every look-up reads the table
    cache: LookupCache | None = None
    #: ``on_change(username, domain)``: a write made here changed where calls to that
    #: address-of-record go (the server bumps its `ChangeCounters`); it must not raise
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
            stamp = cache.stamp(aor)
            found = self._lookup(aor, now)
            cache.put(aor, found, now, since, stamp)
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
