"""The digest nonce-counts that a proxy's worker processes share.

Why: with one table per process a nonce was accepted only by the worker that issued it.
Phones reuse a nonce for their next requests (nonce-count + 1, RFC 7616 3.4), and a new
request's Call-ID picks its worker (sipproxy.runtime.edge.owner_of), so about half of those
requests met a worker that answered ``stale=true``: a second round trip, and a challenge
more to build.  One table in memory the workers all map lets any of them accept any nonce
the proxy issued while still refusing every count already used, whichever worker used it.

The table is a file-backed shared mapping made before the workers fork (an unlinked
temporary file: its descriptor gives a POSIX record lock, ``fcntl.lockf``, which the kernel
releases when its holder dies -- a worker killed with -9 never leaves it locked).  It is
set-associative: a nonce's hash picks a set of :data:`WAYS` slots, each slot ``(tag,
issued, top, bits)`` -- the nonce's hash, its issue time and its replay window
(:func:`sipproxy.sip.digest.advance_window`).  A new nonce takes a free or expired slot of
its set, else the oldest one; evicting a nonce still valid moves the floor up to its issue
time, and a nonce not in the table issued at or before the floor is refused, exactly as the
one-process table does (:class:`sipproxy.sip.digest.NonceCounts`).
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import tempfile
import time
from collections.abc import Callable

from sipproxy.sip.digest import advance_window

__all__ = ["SharedNonceCounts", "WAYS"]

#: slots per set
WAYS = 4
_SLOT = struct.Struct("<QqQQ")  # tag (0: free), issued, top, bits
_HEADER = struct.Struct("<q")  # the floor
_SET = WAYS * _SLOT.size


class SharedNonceCounts:
    """A nonce-count table for the worker processes of one proxy (``DigestAuth(counts=)``).

    ``sets`` x :data:`WAYS` nonces in use at most (default 131,072, 4 MiB of shared
    memory, touched as it fills)."""

    shared = True

    def __init__(self, sets: int = 32768, lifetime: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        if sets < 1:
            raise ValueError("sets must be >= 1")
        self.sets = sets
        self.lifetime = lifetime
        self._clock = clock
        self._file = tempfile.TemporaryFile(prefix="msp-nonces-")
        self._fd = self._file.fileno()
        size = _HEADER.size + sets * _SET
        os.ftruncate(self._fd, size)
        self._map = mmap.mmap(self._fd, size)  # MAP_SHARED: the forked workers see one table
        _HEADER.pack_into(self._map, 0, -1)

    def __len__(self) -> int:
        """Slots holding a nonce still valid (a full scan: for tests and statistics)."""
        limit = self._clock() - self.lifetime
        count = 0
        for offset in range(_HEADER.size, len(self._map), _SLOT.size):
            tag, issued, _, _ = _SLOT.unpack_from(self._map, offset)
            count += tag != 0 and issued >= limit
        return count

    def consume(self, nonce: str, issued: int, nc: int) -> bool:
        """Whether ``nc`` is new for ``nonce`` (issued at ``issued``) in any worker,
        recording it."""
        if nc <= 0:
            return False
        tag = int.from_bytes(hashlib.blake2b(nonce.encode(), digest_size=8).digest(), "little") or 1
        base = _HEADER.size + (tag % self.sets) * _SET
        m = self._map
        limit = self._clock() - self.lifetime
        fcntl.lockf(self._fd, fcntl.LOCK_EX)
        try:
            free = oldest = -1
            oldest_issued = 0
            for offset in range(base, base + _SET, _SLOT.size):
                slot_tag, slot_issued, top, bits = _SLOT.unpack_from(m, offset)
                if slot_tag == tag:
                    accepted, top, bits = advance_window(top, bits, nc)
                    if accepted:
                        _SLOT.pack_into(m, offset, tag, slot_issued, top, bits)
                    return accepted
                if slot_tag == 0 or slot_issued < limit:
                    if free < 0:
                        free = offset
                elif oldest < 0 or slot_issued < oldest_issued:
                    oldest, oldest_issued = offset, slot_issued
            (floor,) = _HEADER.unpack_from(m, 0)
            if issued <= floor:
                return False
            if free < 0:  # every slot holds a valid nonce: the oldest is never accepted again
                free = oldest
                if oldest_issued > floor:
                    _HEADER.pack_into(m, 0, oldest_issued)
            accepted, top, bits = advance_window(0, 0, nc)
            _SLOT.pack_into(m, free, tag, issued, top, bits)
            return accepted
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)
