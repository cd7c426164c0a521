"""DNS zones and records (DnsPort), served authoritatively by enumdns."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import DOMAIN, Base, Owned, Stamped

#: Record types enumdns serves; ``MBOXFW`` and ``URL`` are "fancy" records for mail/web.
DNS_TYPES = ("A", "AAAA", "CNAME", "MX", "NS", "NAPTR", "PTR", "SRV", "TXT", "LOC", "SOA")
FANCY_TYPES = ("MBOXFW", "URL")


class DnsZone(Owned, Stamped, Base):
    __tablename__ = "dns_zones"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(DOMAIN), unique=True)
    ttl: Mapped[int] = mapped_column(default=3600)
    info: Mapped[str] = mapped_column(default="")
    serial: Mapped[int] = mapped_column(default=1)
    email: Mapped[str] = mapped_column(default="")
    refresh: Mapped[int] = mapped_column(default=10800)
    retry: Mapped[int] = mapped_column(default=3600)
    expire: Mapped[int] = mapped_column(default=1209600)
    minimum: Mapped[int] = mapped_column(default=3600)
    #: Space-separated host names of the zone's NS records.
    nameservers: Mapped[str] = mapped_column(Text, default="")

    records: Mapped[list[DnsRecord]] = relationship(
        back_populates="zone", cascade="all, delete-orphan", passive_deletes=True
    )


class DnsRecord(Owned, Stamped, Base):
    """A record; ``name`` is relative to the zone (empty: apex), ``value`` zone-file text."""

    __tablename__ = "dns_records"
    __table_args__ = (Index("ix_dns_records_lookup", "zone_id", "name", "type"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    zone_id: Mapped[int] = mapped_column(ForeignKey("dns_zones.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(DOMAIN), default="")
    type: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(Text)
    ttl: Mapped[int] = mapped_column(default=3600)
    priority: Mapped[int] = mapped_column(default=0)
    owner: Mapped[int] = mapped_column(default=0, index=True)

    zone: Mapped[DnsZone] = relationship(back_populates="records")
