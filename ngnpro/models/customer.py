"""Customers and resellers (CustomerPort): the logins that own every other record."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Boolean, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import USERNAME, Base, Stamped


class Customer(Stamped, Base):
    """A CustomerAccount.  ``reseller`` is the top-level reseller's id (0: none, i.e. the
    account is owned by the platform operator); a reseller has ``reseller_active``."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    reseller: Mapped[int] = mapped_column(default=0, server_default="0", index=True)
    customer: Mapped[int] = mapped_column(default=0, server_default="0", index=True)
    reseller_active: Mapped[bool] = mapped_column(Boolean, default=False)
    impersonate: Mapped[int] = mapped_column(default=0)
    username: Mapped[str] = mapped_column(String(USERNAME), unique=True)
    password: Mapped[str] = mapped_column(String(255), default="")
    first_name: Mapped[str] = mapped_column(default="")
    last_name: Mapped[str] = mapped_column(default="")
    organization: Mapped[str] = mapped_column(default="")
    company_code: Mapped[str] = mapped_column(default="")
    tel: Mapped[str] = mapped_column(String(64), default="")
    fax: Mapped[str] = mapped_column(String(64), default="")
    mobile: Mapped[str] = mapped_column(String(64), default="")
    enum: Mapped[str] = mapped_column(String(64), default="")
    sip: Mapped[str] = mapped_column(default="")
    email: Mapped[str] = mapped_column(default="")
    billing_email: Mapped[str] = mapped_column(default="")
    web: Mapped[str] = mapped_column(default="")
    address: Mapped[str] = mapped_column(Text, default="")
    billing_address: Mapped[str] = mapped_column(Text, default="")
    postcode: Mapped[str] = mapped_column(String(64), default="")
    city: Mapped[str] = mapped_column(default="")
    state: Mapped[str] = mapped_column(default="")
    country: Mapped[str] = mapped_column(String(64), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="")
    language: Mapped[str] = mapped_column(String(32), default="")
    vat_number: Mapped[str] = mapped_column(String(64), default="")
    bank_account: Mapped[str] = mapped_column(default="")
    balance: Mapped[Decimal] = mapped_column(default=Decimal(0))
    credit: Mapped[Decimal] = mapped_column(default=Decimal(0))

    properties: Mapped[list[CustomerProperty]] = relationship(
        back_populates="owner", cascade="all, delete-orphan", passive_deletes=True,
        order_by="CustomerProperty.name",
    )


class CustomerProperty(Base):
    """A CustomerProperty: credits, flags (``pstn_access``) and UI settings."""

    __tablename__ = "customer_properties"
    __table_args__ = (UniqueConstraint("customer_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    value: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(32), default="")
    permission: Mapped[str] = mapped_column(String(32), default="")

    owner: Mapped[Customer] = relationship(back_populates="properties")
