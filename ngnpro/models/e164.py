"""ENUM (RFC 6116) provisioning: ranges are zones, numbers carry NAPTR mappings."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import DOMAIN, Base, Owned, Stamped


class EnumRange(Owned, Stamped, Base):
    """A block of E.164 numbers under one ENUM tree (``tld``); served as one DNS zone."""

    __tablename__ = "enum_ranges"
    __table_args__ = (UniqueConstraint("prefix", "tld"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(String(32))
    tld: Mapped[str] = mapped_column(String(DOMAIN))
    ttl: Mapped[int] = mapped_column(default=3600)
    info: Mapped[str] = mapped_column(default="")
    min_digits: Mapped[int] = mapped_column(default=0)
    max_digits: Mapped[int] = mapped_column(default=0)
    size: Mapped[int] = mapped_column(default=0)
    serial: Mapped[int] = mapped_column(default=1)
    #: Space-separated host names of the range's NS records.
    nameservers: Mapped[str] = mapped_column(Text, default="")

    numbers: Mapped[list[EnumNumber]] = relationship(
        back_populates="range", cascade="all, delete-orphan", passive_deletes=True
    )


class EnumNumber(Owned, Stamped, Base):
    """An E.164 number (digits, no ``+``) inside a range."""

    __tablename__ = "enum_numbers"
    __table_args__ = (UniqueConstraint("number", "tld"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32))
    tld: Mapped[str] = mapped_column(String(DOMAIN))
    range_id: Mapped[int | None] = mapped_column(
        ForeignKey("enum_ranges.id", ondelete="CASCADE"), index=True
    )
    owner: Mapped[int] = mapped_column(default=0, index=True)
    info: Mapped[str] = mapped_column(default="")

    range: Mapped[EnumRange | None] = relationship(back_populates="numbers")
    mappings: Mapped[list[EnumMapping]] = relationship(
        back_populates="number", cascade="all, delete-orphan", passive_deletes=True,
        order_by="EnumMapping.priority, EnumMapping.id",
    )


class EnumMapping(Base):
    """One NAPTR of a number: ``type`` is the E2U service (``sip``, ``mailto``...)."""

    __tablename__ = "enum_mappings"
    __table_args__ = (Index("ix_enum_mappings_mapto", "mapto"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    number_id: Mapped[int] = mapped_column(ForeignKey("enum_numbers.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(64))
    mapto: Mapped[str] = mapped_column(String(255))
    ttl: Mapped[int] = mapped_column(default=3600)
    priority: Mapped[int] = mapped_column(default=10)

    number: Mapped[EnumNumber] = relationship(back_populates="mappings")
