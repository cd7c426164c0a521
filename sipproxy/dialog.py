"""Dialog state of established calls, in the shared ``dialogs`` table (RFC 3261 section 12).

The proxy records every call that a 2xx to an INVITE established and forgets it on BYE.
The row lives in SQL rather than in the proxy's memory because call control (cut-off of a
prepaid call, a media timeout, an operator ending a call) needs to find the call from any
proxy process, and a restarted proxy must still know what is up.  A dialog is identified by
Call-ID and the caller's From tag (unique in the table); a BYE may come from either side, so
removal matches the Call-ID and either tag.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ngnpro.models import Dialog
from ngnpro.models.base import utcnow

log = logging.getLogger("sipproxy.dialog")

__all__ = ["DialogInfo", "DialogStore"]


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


def _clip(value: str, n: int) -> str:
    return value[:n]


class DialogStore:
    """Writes and removes rows of ``dialogs``; database errors are logged, never raised
    (a call must not fail because its bookkeeping did)."""

    def __init__(self, session_factory: Callable[[], Session]) -> None:
        self._session_factory = session_factory

    def confirmed(self, info: DialogInfo) -> bool:
        """A 2xx to an INVITE: insert the dialog (or confirm a re-INVITE's existing row)."""
        try:
            with self._session_factory() as s, s.begin():
                row = s.scalars(select(Dialog).where(
                    Dialog.call_id == _clip(info.call_id, 255),
                    Dialog.from_tag == _clip(info.from_tag, 128))).first()
                if row is None:
                    row = Dialog(call_id=_clip(info.call_id, 255), from_tag=_clip(info.from_tag, 128))
                    s.add(row)
                elif row.state == "confirmed":
                    return True  # a re-INVITE or a 2xx retransmission
                row.to_tag = _clip(info.to_tag, 128)
                row.caller = _clip(info.caller, 255)
                row.callee = _clip(info.callee, 255)
                row.billing_party = _clip(info.caller, 255)
                row.state = "confirmed"
                row.caller_contact = info.caller_contact
                row.callee_contact = info.callee_contact
                row.caller_cseq = info.caller_cseq
                row.route_set = info.route_set
                row.caller_source = _clip(info.caller_source, 128)
                row.callee_source = _clip(info.callee_source, 128)
                row.proxy = _clip(info.proxy, 128)
                row.media_relay = _clip(info.media_relay, 128)
                row.connect_time = utcnow()
            return True
        except SQLAlchemyError as exc:
            log.error("cannot store dialog %s: %s", info.call_id, str(exc).splitlines()[0])
            return False

    def ended(self, call_id: str, tag_a: str, tag_b: str = "") -> int:
        """A BYE (from either side): remove the dialog; returns the number of rows removed."""
        tags = [t for t in (tag_a, tag_b) if t]
        if not tags:
            return 0
        try:
            with self._session_factory() as s, s.begin():
                result = s.execute(delete(Dialog).where(
                    Dialog.call_id == _clip(call_id, 255),
                    or_(Dialog.from_tag.in_(tags), Dialog.to_tag.in_(tags))))
                return result.rowcount or 0
        except SQLAlchemyError as exc:
            log.error("cannot remove dialog %s: %s", call_id, str(exc).splitlines()[0])
            return 0

    def find(self, call_id: str) -> list[Dialog]:
        with self._session_factory() as s:
            return list(s.scalars(select(Dialog).where(Dialog.call_id == _clip(call_id, 255))))
