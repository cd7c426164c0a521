"""Identifiers the proxy makes: tags (RFC 3261 19.3) and branches (RFC 3261 8.1.1.7).

Why one module: a tag or a branch must be unique in space and time, which takes
cryptographic randomness; three generators of our own had grown apart (one a system call per
tag).  Here is the one pool they draw from, and the one spelling of the branch's magic cookie.
"""

from __future__ import annotations

import binascii
import os

__all__ = ["MAGIC_COOKIE", "random_hex", "new_tag"]

#: RFC 3261 8.1.1.7: a branch that starts with it was made by an RFC 3261 element, unique
MAGIC_COOKIE = "z9hG4bK"


class _Random:
    """Random hex from a pool filled by one ``os.urandom`` call per 4 KiB: tags, branches
    and nonces need cryptographic randomness (RFC 3261 19.3), not a system call each."""

    __slots__ = ("pool", "pos")

    def __init__(self) -> None:
        self.pool = b""
        self.pos = 0

    def hex(self, nbytes: int) -> str:
        pos = self.pos
        if pos + nbytes > len(self.pool):
            self.pool, pos = os.urandom(4096), 0
        self.pos = pos + nbytes
        return binascii.hexlify(self.pool[pos:pos + nbytes]).decode()

    def reset(self) -> None:
        """After a fork: the child must not hand out the parent's bytes again."""
        self.pool, self.pos = b"", 0


_random = _Random()
#: ``random_hex(n)``: 2n hex digits of n random bytes
random_hex = _random.hex
os.register_at_fork(after_in_child=_random.reset)


def new_tag() -> str:
    """A From/To tag for a message the proxy makes itself (48 random bits)."""
    return _random.hex(6)

