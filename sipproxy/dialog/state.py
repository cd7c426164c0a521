"""The state of an established call as the proxy knows it (RFC 3261 section 12), sans-I/O.

:class:`DialogInfo` is what the proxy learns when the callee answers an INVITE: the dialog's
identity (Call-ID and both tags), both parties, their targets and the route set -- what call
control needs to end the call from either side.  The store (:mod:`.store`) keeps it in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DialogInfo"]


@dataclass(frozen=True)
class DialogInfo:
    """What the proxy knows of a call when the callee answered."""

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
