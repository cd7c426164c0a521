"""A registration's binding (RFC 3261 10.2.1) and the registrar's refusals, sans-I/O.

Apart from the location store so the registrar's and the routing's decisions can name a
binding without the SQL layer.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Binding", "OutOfOrder", "TooManyContacts"]


class Binding(NamedTuple):
    """One contact of an address-of-record (RFC 3261 10.2.1), with what routing needs.
    (A named tuple: immutable, and built for every row a REGISTER or a call reads.)"""

    contact: str
    expires: float  # absolute, epoch seconds
    q: float = 1.0
    received: str = ""  # transport:ip:port the REGISTER came from (NAT)
    socket: str = ""  # transport:ip:port of our socket it arrived on
    path: tuple[str, ...] = ()  # RFC 3327 Path values, in order
    call_id: str = ""
    cseq: int = 0
    user_agent: str = ""
    instance: str = ""  # RFC 5626 +sip.instance
    reg_id: int = 0
    behind_nat: bool = False
    modified: float = 0.0

    def remaining(self, now: float) -> int:
        """Seconds left, rounded down, never negative (what a 200 OK lists as expires)."""
        return max(0, int(self.expires - now))


class OutOfOrder(Exception):
    """A REGISTER older than the binding it would change (same Call-ID, CSeq not higher)."""


class TooManyContacts(Exception):
    """The REGISTER would leave more bindings than the configured maximum."""
