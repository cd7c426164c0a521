"""Presence state (RFC 3856, RFC 3903, RFC 6665): what the presence agent in sipproxy keeps.

Why in SQL: a restarted proxy, or a second proxy sharing the database, finds the
subscriptions it must notify and the publications it must compose, and the NOTIFY CSeq
of each subscription dialog goes on from where the last sender left it.
Times are epoch seconds (integers): compared with ``time.time()`` by every proxy alike.
"""

from __future__ import annotations

import datetime as _dt

from sqlalchemy import BigInteger, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, BigId, utcnow
from .xcap import DocumentText


class PresencePublication(Base):
    """One device's published state (RFC 3903): an event state identified by its entity tag."""

    __tablename__ = "presence_publications"
    __table_args__ = (UniqueConstraint("etag"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: the presentity ``user@domain`` (its account's own SipId, aliases resolved)
    presentity: Mapped[str] = mapped_column(String(255), index=True)
    #: the event package: ``presence``
    event: Mapped[str] = mapped_column(String(32), default="presence")
    #: SIP-ETag of the current state (a new one on every modification)
    etag: Mapped[str] = mapped_column(String(64))
    document: Mapped[str] = mapped_column(DocumentText)
    content_type: Mapped[str] = mapped_column(String(64), default="application/pidf+xml")
    #: epoch seconds when the publication lapses
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
    updated: Mapped[_dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PresenceSubscription(Base):
    """One subscription dialog in which this platform is the notifier (RFC 6665)."""

    __tablename__ = "presence_subscriptions"
    __table_args__ = (
        UniqueConstraint("call_id", "to_tag", "event_id"),
        Index("ix_presence_subscriptions_presentity_event", "presentity", "event"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(190))
    #: the subscriber's tag (From of the SUBSCRIBE) and ours (To of our 200)
    from_tag: Mapped[str] = mapped_column(String(128))
    to_tag: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(64), default="")
    #: whose state is watched (``user@domain``), and who watches (``user@domain``)
    presentity: Mapped[str] = mapped_column(String(255))
    watcher: Mapped[str] = mapped_column(String(255), index=True)
    #: the From and To values of our NOTIFYs (without tags)
    watcher_uri: Mapped[str] = mapped_column(String(512))
    presentity_uri: Mapped[str] = mapped_column(String(512))
    #: where NOTIFYs go: the subscriber's Contact and the route set (Record-Route, in order)
    remote_target: Mapped[str] = mapped_column(String(512))
    route_set: Mapped[str] = mapped_column(Text, default="")
    #: our Contact in the dialog
    contact: Mapped[str] = mapped_column(String(255), default="")
    #: the transport address the SUBSCRIBE came from (``udp:1.2.3.4:5060``)
    source: Mapped[str] = mapped_column(String(128), default="")
    #: the last CSeq number we used in a NOTIFY, and the subscriber's last one
    local_cseq: Mapped[int] = mapped_column(default=0)
    remote_cseq: Mapped[int] = mapped_column(default=0)
    #: ``pending``, ``active`` or ``terminated``; the reason of the last change
    state: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str] = mapped_column(String(32), default="")
    #: the authorization's action (allow, confirm, polite-block, block) and transformations
    action: Mapped[str] = mapped_column(String(16), default="")
    transformations: Mapped[str] = mapped_column(String(255), default="")
    #: watcherinfo / RLMI version counter
    version: Mapped[int] = mapped_column(default=0)
    #: a list subscription's (RFC 4662) resources, one ``user@domain`` a line, each line
    #: framed by newlines so a resource is found with LIKE '%\nuser@domain\n%'; empty otherwise
    resources: Mapped[str] = mapped_column(Text, default="")
    #: a back-end subscription's (the list server subscribing to another domain's resource)
    #: last state document received in a NOTIFY
    document: Mapped[str] = mapped_column(DocumentText, default="")
    #: epoch seconds when the subscription lapses
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
    created: Mapped[_dt.datetime] = mapped_column(default=utcnow)
