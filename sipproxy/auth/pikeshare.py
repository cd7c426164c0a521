"""PIKE counted across the worker processes of one proxy.

Why: each worker counted only what the kernel gave it, and ``SO_REUSEPORT`` spreads a source
IP's sockets (its ports) over the workers, so a flood from many ports of one address could
send up to ``requests`` x workers before a block, and a block in one worker did not stop
the others.  Here the counts live in an anonymous shared mapping made before the workers
fork (as the registrar's change counters do, sipproxy.registrar.cache): each worker writes
only its own row of sliding-window counters, so no update is lost without a lock; the rate
of an address is the sum of the rows, and a block is one shared entry every worker reads.

Addresses are kept by hash in ``buckets`` slots per row (the workers are forks: one hash
seed).  Two addresses sharing a slot do not add up: the slot holds the address's hash, and
a different one starts the count afresh -- a collision can only delay a block, never block
an innocent address.  The decision is :class:`sipproxy.auth.pike.Pike`'s: the same verdicts,
the same sliding window.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Callable, Iterable

from sipproxy.auth.pike import BLOCK, DROP, PASS, Pike

__all__ = ["PikeTable", "SharedPike"]

_RATE = struct.Struct("<qdqq")  # address hash (0: free), window start, count, previous count
_BLOCKED = struct.Struct("<qd")  # address hash, end of its block


class PikeTable:
    """The shared mapping: ``workers`` rows of ``buckets`` rate slots, and one row of
    ``buckets`` block entries.  Make it before forking."""

    def __init__(self, workers: int, buckets: int = 1 << 16) -> None:
        if workers < 1 or buckets < 1:
            raise ValueError("workers and buckets must be >= 1")
        self.workers = workers
        self.buckets = buckets
        self.blocks_at = workers * buckets * _RATE.size
        self.map = mmap.mmap(-1, self.blocks_at + buckets * _BLOCKED.size)  # MAP_SHARED | MAP_ANONYMOUS


class SharedPike(Pike):
    """:class:`Pike` whose counts and blocks the workers share (``table``); ``worker``: this
    process's row."""

    def __init__(self, requests: int, window: float, block: float, *, table: PikeTable, worker: int,
                 exempt: Iterable[str] = (), trusted: Callable[[str], bool] | None = None) -> None:
        super().__init__(requests, window, block, exempt=exempt, trusted=trusted)
        if not 0 <= worker < table.workers:
            raise ValueError(f"worker {worker} is not in the table")
        self.table = table
        self.worker = worker
        #: ip -> exempt (trusted peers, gateways, pike_exempt), forgotten once per window
        self._exempt_cache: dict[str, bool] = {}

    def check(self, ip: str, now: float) -> int:
        if now >= self._next_sweep:
            self._next_sweep = now + self.window
            self._exempt_cache.clear()
        exempt = self._exempt_cache.get(ip)
        if exempt is None:
            exempt = self._exempt_cache[ip] = self.exempt(ip)
        if exempt:
            return PASS
        table, m = self.table, self.table.map
        key = hash(ip) & 0x7FFFFFFFFFFFFFFF or 1
        bucket = key % table.buckets
        blocked_at = table.blocks_at + bucket * _BLOCKED.size
        tag, until = _BLOCKED.unpack_from(m, blocked_at)
        if tag == key and now < until:
            self.drops += 1
            return DROP
        window = self.window
        estimate = 0.0
        mine = (self.worker * table.buckets + bucket) * _RATE.size
        for worker in range(table.workers):
            offset = (worker * table.buckets + bucket) * _RATE.size
            tag, start, count, previous = _RATE.unpack_from(m, offset)
            if tag != key:
                if offset != mine:
                    continue
                tag, start, count, previous = key, now, 0, 0
            elapsed = now - start
            if elapsed >= window:  # (another worker's row is read as it would be rolled)
                periods = int(elapsed // window)
                previous = count if periods == 1 else 0
                count = 0
                start += periods * window
                elapsed = now - start
            if offset == mine:
                count += 1
                _RATE.pack_into(m, offset, key, start, count, previous)
            estimate += count + previous * (1.0 - elapsed / window)
        if estimate > self.requests:
            _BLOCKED.pack_into(m, blocked_at, key, now + self.block)
            _RATE.pack_into(m, mine, 0, 0.0, 0, 0)
            self.drops += 1
            return BLOCK
        return PASS

    def tracked(self) -> int:
        """Addresses this worker's row counts (a full scan: for tests and statistics)."""
        table = self.table
        base = self.worker * table.buckets * _RATE.size
        return sum(1 for i in range(table.buckets)
                   if _RATE.unpack_from(table.map, base + i * _RATE.size)[0] != 0)
