"""Least-cost routing: route (prefix) -> carriers by priority -> gateways -> rules."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, Owned, Stamped


class Carrier(Owned, Stamped, Base):
    __tablename__ = "carriers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))

    gateways: Mapped[list[Gateway]] = relationship(
        back_populates="carrier", cascade="all, delete-orphan", passive_deletes=True
    )
    routes: Mapped[list[Route]] = relationship(
        back_populates="carrier", cascade="all, delete-orphan", passive_deletes=True
    )


class Gateway(Owned, Stamped, Base):
    __tablename__ = "gateways"

    id: Mapped[int] = mapped_column(primary_key=True)
    carrier_id: Mapped[int] = mapped_column(ForeignKey("carriers.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    transport: Mapped[str] = mapped_column(String(8), default="udp")
    ip: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(default=5060)

    carrier: Mapped[Carrier] = relationship(back_populates="gateways")
    rules: Mapped[list[GatewayRule]] = relationship(
        back_populates="gateway", cascade="all, delete-orphan", passive_deletes=True
    )


class GatewayRule(Owned, Stamped, Base):
    """Number translation at a gateway for numbers matching ``prefix`` and length bounds."""

    __tablename__ = "gateway_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(32), default="", index=True)
    strip: Mapped[int] = mapped_column(default=0)
    prepend: Mapped[str] = mapped_column(String(32), default="")
    min_length: Mapped[int] = mapped_column(default=0)
    max_length: Mapped[int] = mapped_column(default=0)

    gateway: Mapped[Gateway] = relationship(back_populates="rules")


class Route(Owned, Stamped, Base):
    """A PSTN route: numbers starting with ``prefix`` (00+E.164; empty = all) go to the
    carrier; lower ``priority`` is tried first.  ``originator`` selects routes per peer."""

    __tablename__ = "routes"

    id: Mapped[int] = mapped_column(primary_key=True)
    carrier_id: Mapped[int] = mapped_column(ForeignKey("carriers.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(32), default="", index=True)
    originator: Mapped[str] = mapped_column(String(64), default="", index=True)
    priority: Mapped[int] = mapped_column(default=10)

    carrier: Mapped[Carrier] = relationship(back_populates="routes")


