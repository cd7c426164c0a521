"""Tables the data plane writes: registrations, dialogs, accounting, media summaries.

They live in SQL (not in a proxy's memory) so a restarted proxy, or a second proxy on the
same database, finds every binding and call.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from decimal import Decimal

from sqlalchemy import Float, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import DOMAIN, USERNAME, Base, BigId, utcnow


def contact_key(contact: str) -> str:
    """A fixed-width key for a Contact URI, so bindings can be unique on any URI length."""
    return hashlib.sha1(contact.encode("utf-8")).hexdigest()


class Location(Base):
    """A registrar binding (RFC 3261 section 10): address-of-record -> contact."""

    __tablename__ = "location"
    __table_args__ = (
        UniqueConstraint("username", "domain", "contact_hash"),
        Index("ix_location_aor", "username", "domain"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(USERNAME))
    domain: Mapped[str] = mapped_column(String(DOMAIN))
    contact: Mapped[str] = mapped_column(Text)
    contact_hash: Mapped[str] = mapped_column(String(40))
    #: Source the REGISTER came from (``transport:ip:port``): where to send requests behind NAT.
    received: Mapped[str] = mapped_column(String(128), default="")
    #: The proxy socket it arrived on (``transport:ip:port``), for connection reuse.
    socket: Mapped[str] = mapped_column(String(128), default="")
    #: Path header values (RFC 3327), comma-joined, to be used as a pre-loaded route set.
    path: Mapped[str] = mapped_column(Text, default="")
    expires: Mapped[_dt.datetime] = mapped_column(index=True)
    q: Mapped[float] = mapped_column(Float, default=1.0)
    call_id: Mapped[str] = mapped_column(String(255), default="")
    cseq: Mapped[int] = mapped_column(default=0)
    user_agent: Mapped[str] = mapped_column(String(255), default="")
    instance: Mapped[str] = mapped_column(String(255), default="")
    reg_id: Mapped[int] = mapped_column(default=0)
    behind_nat: Mapped[bool] = mapped_column(default=False)
    last_modified: Mapped[_dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Dialog(Base):
    """An established (or establishing) call, kept for call control and accounting."""

    __tablename__ = "dialogs"
    __table_args__ = (UniqueConstraint("call_id", "from_tag"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(255))
    from_tag: Mapped[str] = mapped_column(String(128))
    to_tag: Mapped[str] = mapped_column(String(128), default="")
    caller: Mapped[str] = mapped_column(String(255), default="", index=True)
    callee: Mapped[str] = mapped_column(String(255), default="", index=True)
    billing_party: Mapped[str] = mapped_column(String(255), default="")
    state: Mapped[str] = mapped_column(String(16), default="early", index=True)
    caller_contact: Mapped[str] = mapped_column(Text, default="")
    callee_contact: Mapped[str] = mapped_column(Text, default="")
    caller_cseq: Mapped[int] = mapped_column(default=0)
    callee_cseq: Mapped[int] = mapped_column(default=0)
    #: Record-Route set as the caller sees it (comma-joined).
    route_set: Mapped[str] = mapped_column(Text, default="")
    caller_source: Mapped[str] = mapped_column(String(128), default="")
    callee_source: Mapped[str] = mapped_column(String(128), default="")
    proxy: Mapped[str] = mapped_column(String(128), default="")
    media_relay: Mapped[str] = mapped_column(String(128), default="")
    start_time: Mapped[_dt.datetime] = mapped_column(default=utcnow)
    connect_time: Mapped[_dt.datetime | None] = mapped_column(default=None)
    #: Prepaid/call control: when the call must be cut off (None: no limit).
    deadline: Mapped[_dt.datetime | None] = mapped_column(default=None, index=True)
    #: A prepaid call's tariff (JSON: the rate and the number rated, see
    #: sipproxy.dialog.prepaid); empty: no balance is debited for this call.
    tariff: Mapped[str] = mapped_column(Text, default="")
    #: When the call ended (its BYE, or the proxy's cut-off); the row stays, ``terminated``,
    #: until the BYE is answered.
    end_time: Mapped[_dt.datetime | None] = mapped_column(default=None)
    #: RFC 4028 session timer: the negotiated interval (seconds; 0: none) and when the
    #: session expires unless it is refreshed (a re-INVITE or UPDATE answered 2xx)
    session_interval: Mapped[int] = mapped_column(default=0)
    expires: Mapped[_dt.datetime | None] = mapped_column(default=None, index=True)


class AccountingRecord(Base):
    """One call's accounting (start/stop), the source of CDRs and RADIUS records."""

    __tablename__ = "accounting"
    __table_args__ = (Index("ix_accounting_call", "call_id", "from_tag"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(255))
    from_tag: Mapped[str] = mapped_column(String(128), default="")
    to_tag: Mapped[str] = mapped_column(String(128), default="")
    method: Mapped[str] = mapped_column(String(16), default="INVITE")
    status: Mapped[int] = mapped_column(default=0)
    reason: Mapped[str] = mapped_column(String(255), default="")
    from_uri: Mapped[str] = mapped_column(String(255), default="")
    to_uri: Mapped[str] = mapped_column(String(255), default="")
    caller: Mapped[str] = mapped_column(String(255), default="", index=True)
    callee: Mapped[str] = mapped_column(String(255), default="", index=True)
    billing_party: Mapped[str] = mapped_column(String(255), default="")
    source_ip: Mapped[str] = mapped_column(String(64), default="")
    destination: Mapped[str] = mapped_column(String(255), default="")
    user_agent: Mapped[str] = mapped_column(String(255), default="")
    start_time: Mapped[_dt.datetime] = mapped_column(default=utcnow, index=True)
    stop_time: Mapped[_dt.datetime | None] = mapped_column(default=None)
    duration: Mapped[int] = mapped_column(default=0)
    price: Mapped[Decimal] = mapped_column(default=Decimal(0))
    proxy: Mapped[str] = mapped_column(String(128), default="")


class MediaSession(Base):
    """A relayed call's media summary, written by mediaproxy when the session ends."""

    __tablename__ = "media_sessions"
    __table_args__ = (Index("ix_media_sessions_call", "call_id", "from_tag"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(255))
    from_tag: Mapped[str] = mapped_column(String(128), default="")
    to_tag: Mapped[str] = mapped_column(String(128), default="")
    relay: Mapped[str] = mapped_column(String(128), default="")
    #: JSON list of streams: media type, codec, packets/bytes each way, addresses, times.
    streams: Mapped[str] = mapped_column(Text, default="[]")
    start_time: Mapped[_dt.datetime] = mapped_column(default=utcnow)
    end_time: Mapped[_dt.datetime | None] = mapped_column(default=None)
    duration: Mapped[int] = mapped_column(default=0)
    reason: Mapped[str] = mapped_column(String(64), default="")
