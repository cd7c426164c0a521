"""SIP provisioning (SipPort): domains, subscriber accounts and everything hanging off them.

Digest credentials are kept as HA1 hashes (RFC 2617 MD5 and RFC 7616/8760 SHA-256) so
the proxy never needs the clear-text password; ``password`` holds clear text only when the
operator keeps it (``store_clear_text_passwords``).  Per-account lists (groups, ACL,
diversions, DND rules, reject members, barring, phonebook, credit history) cascade with
the account, so a deleted subscriber leaves nothing behind; a domain's own ACL cascades with
the domain the same way.
"""

from __future__ import annotations

import datetime as _dt
from decimal import Decimal

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import DOMAIN, IP, URI, USERNAME, Base, Owned, Stamped, utcnow

#: The group names the routing logic acts on (API section 4.1).
GROUP_BLOCKED = "blocked"
GROUP_QUOTA = "quota"
GROUP_PREPAID = "prepaid"
GROUP_PSTN = "free-pstn"
GROUP_ANONYMOUS = "anonymous"
GROUP_ANONYMOUS_REJECT = "anonymous-reject"
GROUP_VOICEMAIL = "voicemail"
GROUP_TRUNKING = "trunking"


class SipDomain(Owned, Stamped, Base):
    """A local SIP domain: the registrar serves it and the proxy treats it as ours."""

    __tablename__ = "sip_domains"

    id: Mapped[int] = mapped_column(primary_key=True)
    domain: Mapped[str] = mapped_column(String(DOMAIN), unique=True)
    certificate: Mapped[str] = mapped_column(Text, default="")
    private_key: Mapped[str] = mapped_column(Text, default="")
    match_ip_address: Mapped[str] = mapped_column(Text, default="")
    match_sip_domain: Mapped[str] = mapped_column(Text, default="")
    verify_cert: Mapped[bool] = mapped_column(Boolean, default=False)
    require_cert: Mapped[bool] = mapped_column(Boolean, default=False)

    accounts: Mapped[list[SipAccount]] = relationship(
        back_populates="sip_domain", cascade="all, delete-orphan", passive_deletes=True
    )
    #: the domain's IP access list (an extension beyond CDRTool's SipDomain), in its order
    acl: Mapped[list[SipDomainAcl]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True,
        order_by="(SipDomainAcl.position, SipDomainAcl.id)",
    )


class AccountNames:
    """The names derived from an account's columns, shared by the mapped
    :class:`SipAccount` and ngnpro's plain new-account values."""

    @property
    def group_names(self) -> set[str]:
        return {g.name for g in self.groups}

    @property
    def aor(self) -> str:
        return f"{self.username}@{self.domain}"


class SipAccount(AccountNames, Owned, Stamped, Base):
    """A subscriber, ``username@domain``."""

    __tablename__ = "sip_accounts"
    __table_args__ = (UniqueConstraint("username", "domain"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(USERNAME))
    domain: Mapped[str] = mapped_column(
        String(DOMAIN), ForeignKey("sip_domains.domain", ondelete="CASCADE", onupdate="CASCADE"),
        index=True,
    )
    password: Mapped[str] = mapped_column(String(255), default="")
    #: md5(username:domain:password), the realm being the domain.
    ha1: Mapped[str] = mapped_column(String(32), default="")
    #: md5(username@domain:domain:password), for clients that put the domain in the user.
    ha1b: Mapped[str] = mapped_column(String(32), default="")
    #: sha256(username:domain:password), RFC 8760.
    ha1_sha256: Mapped[str] = mapped_column(String(64), default="")
    first_name: Mapped[str] = mapped_column(default="")
    last_name: Mapped[str] = mapped_column(default="")
    email: Mapped[str] = mapped_column(default="")
    timezone: Mapped[str] = mapped_column(String(64), default="")
    rpid: Mapped[str] = mapped_column(String(64), default="")
    quickdial_prefix: Mapped[str] = mapped_column(String(64), default="")
    region: Mapped[str] = mapped_column(String(64), default="", index=True)
    owner: Mapped[int] = mapped_column(default=0, index=True)
    prepaid: Mapped[bool] = mapped_column(Boolean, default=False)
    balance: Mapped[Decimal] = mapped_column(default=Decimal(0))
    quota: Mapped[int] = mapped_column(default=0)
    call_limit: Mapped[int] = mapped_column(default=0)
    timeout: Mapped[int] = mapped_column(default=35)
    #: Engage the media relay for every call of this account, NAT or not.
    always_relay: Mapped[bool] = mapped_column(Boolean, default=False)

    sip_domain: Mapped[SipDomain] = relationship(back_populates="accounts")
    groups: Mapped[list[SipAccountGroup]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="SipAccountGroup.name"
    )
    properties: Mapped[list[SipAccountProperty]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="SipAccountProperty.id"
    )
    acl: Mapped[list[SipAccountAcl]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="SipAccountAcl.id"
    )
    diversions: Mapped[list[CallDiversion]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True
    )
    accept_rules: Mapped[list[AcceptRule]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="AcceptRule.id"
    )
    reject_members: Mapped[list[RejectMember]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="RejectMember.id"
    )
    barring_prefixes: Mapped[list[BarringPrefix]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="BarringPrefix.id"
    )
    phonebook: Mapped[list[PhonebookEntry]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="PhonebookEntry.id"
    )
    credit_history: Mapped[list[CreditEntry]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="CreditEntry.id.desc()"
    )



def _account_fk() -> Mapped[int]:
    return mapped_column(ForeignKey("sip_accounts.id", ondelete="CASCADE"), index=True)


class SipAccountGroup(Base):
    """Membership in a group (``blocked``, ``free-pstn``, ``prepaid``, free-form...)."""

    __tablename__ = "sip_account_groups"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = _account_fk()
    name: Mapped[str] = mapped_column(String(64), index=True)


class SipAccountProperty(Base):
    __tablename__ = "sip_account_properties"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = _account_fk()
    name: Mapped[str] = mapped_column(String(128))
    value: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(32), default="")
    permission: Mapped[str] = mapped_column(String(32), default="")


class SipAccountAcl(Base):
    """An IP access-list entry: the account may only be used from ``ip/mask``."""

    __tablename__ = "sip_account_acl"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = _account_fk()
    ip: Mapped[str] = mapped_column(String(IP))
    mask: Mapped[int] = mapped_column(default=32)
    tag: Mapped[str] = mapped_column(String(64), default="")


class SipDomainAcl(Base):
    """An IP access-list entry of a domain: calls to the domain's subscribers may only come
    from the listed ``ip/mask`` networks (an account's own ACL, when it has one, must allow
    the source as well).

    Stored like :class:`SipAccountAcl`, one row per entry cascading with its owner;
    ``position`` keeps the order the provisioning client gave, which ids alone would not
    once a list is replaced."""

    __tablename__ = "sip_domain_acl"

    id: Mapped[int] = mapped_column(primary_key=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("sip_domains.id", ondelete="CASCADE"), index=True)
    ip: Mapped[str] = mapped_column(String(IP))
    mask: Mapped[int] = mapped_column(default=32)
    tag: Mapped[str] = mapped_column(String(64), default="")
    position: Mapped[int] = mapped_column(default=0)


class SipAlias(Owned, Stamped, Base):
    """An alias address ``username@domain`` that routes to ``target``."""

    __tablename__ = "sip_aliases"
    __table_args__ = (
        UniqueConstraint("username", "domain"),
        Index("ix_sip_aliases_target", "target_username", "target_domain"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(USERNAME))
    domain: Mapped[str] = mapped_column(String(DOMAIN))
    target_username: Mapped[str] = mapped_column(String(USERNAME))
    target_domain: Mapped[str] = mapped_column(String(DOMAIN))
    owner: Mapped[int] = mapped_column(default=0, index=True)


class TrustedPeer(Owned, Stamped, Base):
    """A gateway or PBX trusted by source IP: no digest challenge, per-peer PSTN settings."""

    __tablename__ = "trusted_peers"

    id: Mapped[int] = mapped_column(primary_key=True)
    ip: Mapped[str] = mapped_column(String(IP), unique=True)
    description: Mapped[str] = mapped_column(default="")
    tenant: Mapped[str] = mapped_column(String(128), default="")
    carrier_name: Mapped[str] = mapped_column(String(128), default="")
    originator: Mapped[str] = mapped_column(String(64), default="")
    prefix: Mapped[str] = mapped_column(String(32), default="")
    strip: Mapped[int] = mapped_column(default=0)
    tags: Mapped[str] = mapped_column(default="")
    billing_id: Mapped[str] = mapped_column(String(128), default="")
    auth_token: Mapped[str] = mapped_column(String(128), default="")
    call_limit: Mapped[int] = mapped_column(default=0)
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    msteams: Mapped[bool] = mapped_column(Boolean, default=False)
    prepaid: Mapped[bool] = mapped_column(Boolean, default=False)
    enum_lookup: Mapped[bool] = mapped_column(Boolean, default=True)
    transit: Mapped[bool] = mapped_column(Boolean, default=False)
    owner: Mapped[int] = mapped_column(default=0)


class CallDiversion(Base):
    """A call-forwarding rule: condition FUNC (all), FBUS, FNOA, FNOL or FUNV -> URI."""

    __tablename__ = "call_diversions"
    __table_args__ = (UniqueConstraint("account_id", "condition"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = _account_fk()
    condition: Mapped[str] = mapped_column(String(8))
    uri: Mapped[str] = mapped_column(String(URI))


class AcceptRule(Base):
    """A do-not-disturb rule: persistent (time window and weekday mask) or temporary."""

    __tablename__ = "accept_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = _account_fk()
    persistent: Mapped[bool] = mapped_column(Boolean, default=True)
    start: Mapped[str] = mapped_column(String(5), default="")
    stop: Mapped[str] = mapped_column(String(5), default="")
    days: Mapped[int] = mapped_column(default=127)
    #: Comma-separated group names (``everybody``, ``nobody`` or phonebook groups).
    groups: Mapped[str] = mapped_column(Text, default="")
    #: Temporary rules: minutes (0 = until removed) from ``set_at``.
    duration: Mapped[int] = mapped_column(default=0)
    set_at: Mapped[_dt.datetime] = mapped_column(default=utcnow)


class RejectMember(Base):
    __tablename__ = "reject_members"
    __table_args__ = (UniqueConstraint("account_id", "uri"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = _account_fk()
    uri: Mapped[str] = mapped_column(String(URI))


class BarringPrefix(Base):
    __tablename__ = "barring_prefixes"
    __table_args__ = (UniqueConstraint("account_id", "prefix"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = _account_fk()
    prefix: Mapped[str] = mapped_column(String(32))


class PhonebookEntry(Base):
    __tablename__ = "phonebook_entries"
    __table_args__ = (UniqueConstraint("account_id", "uri"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = _account_fk()
    uri: Mapped[str] = mapped_column(String(URI))
    name: Mapped[str] = mapped_column(default="")
    group: Mapped[str] = mapped_column(String(64), default="")


class CreditEntry(Base):
    """One movement of a prepaid balance (API ``CreditEntry``), newest first."""

    __tablename__ = "credit_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = _account_fk()
    date: Mapped[_dt.datetime] = mapped_column(default=utcnow)
    action: Mapped[str] = mapped_column(String(64), default="")
    description: Mapped[str] = mapped_column(default="")
    value: Mapped[Decimal] = mapped_column(default=Decimal(0))
    balance: Mapped[Decimal] = mapped_column(default=Decimal(0))
    session: Mapped[str] = mapped_column(default="")


class PrepaidCard(Owned, Stamped, Base):
    """A voucher: ``addBalanceFromVoucher`` spends it once."""

    __tablename__ = "prepaid_cards"
    __table_args__ = (UniqueConstraint("number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(64))
    value: Mapped[Decimal] = mapped_column(default=Decimal(0))
    used_by: Mapped[str] = mapped_column(String(255), default="")
    used_date: Mapped[_dt.datetime | None] = mapped_column(default=None)


class EmergencyMapping(Stamped, Base):
    """Emergency routing: a number dialled in ``region`` goes to ``destination``."""

    __tablename__ = "emergency_mappings"
    __table_args__ = (UniqueConstraint("region", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    region: Mapped[str] = mapped_column(String(64))
    number: Mapped[str] = mapped_column(String(32))
    destination: Mapped[str] = mapped_column(String(URI))
    description: Mapped[str] = mapped_column(default="")
