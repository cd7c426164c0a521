"""The state of a call as the proxy knows it (RFC 3261 section 12), sans-I/O.

:class:`DialogInfo` is what the proxy knows of a call: at the initial INVITE (the caller's
side: its Call-ID and From tag, its Contact, where it came from -- an ``early`` row) and
when the callee answers (the To tag, the callee's Contact and the route set -- the
``confirmed`` row call control needs to end the call from either side).  The store
(:mod:`.store`) keeps it in SQL.

:func:`early_bound` is how long an early row may stay before it is taken for stale: a row
whose proxy died while the call rang is never removed by its final answer, and must not
count against the caller's call limit for ever.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DialogInfo", "EARLY_MARGIN", "early_bound"]

#: seconds an early row outlives its ring time: 64*T1, the life of the CANCEL that Timer C
#: sends (and the time the callee has to answer it with 487, or with a 2xx that crossed it)
EARLY_MARGIN = 32.0


def early_bound(ring_timeout: float) -> float:
    """Seconds from now after which an early row of a call that rings for at most
    ``ring_timeout`` seconds (its Timer C) is stale: its proxy would have answered the
    caller and removed the row long before, unless it died."""
    return max(ring_timeout, 0.0) + EARLY_MARGIN


@dataclass(frozen=True)
class DialogInfo:
    """What the proxy knows of a call: the caller's side from the INVITE (``to_tag`` and
    the callee's fields empty while it rings), both sides once the callee answered."""

    call_id: str
    from_tag: str
    to_tag: str
    caller: str
    callee: str
    caller_contact: str = ""
    callee_contact: str = ""
    caller_cseq: int = 0
    route_set: str = ""
    caller_source: str = ""
    callee_source: str = ""
    proxy: str = ""
    media_relay: str = ""
    #: who pays (routing's decision: a diverting account, a trusted peer); empty: the caller
    billing_party: str = ""
    #: a prepaid call's rating (sipproxy.dialog.prepaid.encode_tariff); empty: not debited
    tariff: str = ""
    #: the RFC 4028 session interval the 2xx settled (seconds; 0: no session timer)
    session_interval: int = 0
