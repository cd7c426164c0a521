"""SipPort domains: the SIP domains the registrar serves and the proxy treats as local.

Deleting a domain deletes its accounts (the database cascades their settings) and the
aliases living in it; every write logs a change so the proxy's caches follow within a
second.

A domain may carry an IP access list (``acl``, the shape and rules of SipAccount.acl): an
extension beyond CDRTool's SipDomain.  CDRTool never sets it, but its domain page sends
back what getDomains returned, so the list is returned in full and an update without the
member leaves it as it is.
"""

from __future__ import annotations

from spyne import Unicode, rpc
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ngnpro import sip_types as t
from ngnpro.models import sip as m
from ngnpro.models.changes import (
    TOPIC_SIP_ACCOUNT,
    TOPIC_SIP_ALIAS,
    TOPIC_SIP_DOMAIN,
    record_change,
)
from ngnpro.models.rating import forget_entities
from ngnpro.sip_accounts import flush_unique, get_domain, resolve_owner
from ngnpro.soap import NS_SIP, PortService, call_context
from ngnpro.soap.context import Scope
from ngnpro.soap.faults import SIP_DOMAIN_EXISTS, NGNProError
from ngnpro.soap.query import run_query


def _acl(d: t.SipDomain) -> list[m.SipDomainAcl] | None:
    """The ACL rows ``d.acl`` asks for, checked as the account ACL is (fault 1040 naming
    ``acl[i].ip`` / ``acl[i].mask``); None when the member is absent (keep the list)."""
    if d.acl is None:
        return None
    entries = [t.acl_entry(e, f"acl[{i}]") for i, e in enumerate(d.acl) if e is not None]
    return [m.SipDomainAcl(ip=ip, mask=mask, tag=tag, position=i) for i, (ip, mask, tag) in enumerate(entries)]


def _apply_domain(row: m.SipDomain, d: t.SipDomain) -> None:
    acl = _acl(d)  # every member is checked before the row changes
    for attr, value in (
        ("certificate", t.pem(d.certificate, "certificate", "CERTIFICATE")),
        ("private_key", t.pem(d.private_key, "private_key", "PRIVATE KEY")),
        ("match_ip_address", t.ip_list(d.match_ip_address, "match_ip_address")),
        ("match_sip_domain", t.domain_list(d.match_sip_domain, "match_sip_domain")),
        ("verify_cert", t.flag(d.verify_cert, "verify_cert")),
        ("require_cert", t.flag(d.require_cert, "require_cert")),
    ):
        if value is not None:
            setattr(row, attr, value)
    if acl is not None:
        row.acl = acl


def add_domain(session: Session, scope: Scope, d: t.SipDomain | None) -> None:
    if d is None:
        raise t.invalid("domain", "missing")
    name = t.domain_name(d.domain)
    if session.execute(select(m.SipDomain.id).where(m.SipDomain.domain == name)).first():
        raise NGNProError(SIP_DOMAIN_EXISTS, f"SIP domain {name} already exists")
    customer, reseller = resolve_owner(session, scope, d.customer, d.reseller)
    row = m.SipDomain(domain=name, customer=customer, reseller=reseller)
    _apply_domain(row, d)
    session.add(row)
    record_change(session, TOPIC_SIP_DOMAIN, name)
    flush_unique(session, SIP_DOMAIN_EXISTS, f"SIP domain {name} already exists")


def update_domain(session: Session, scope: Scope, d: t.SipDomain | None) -> None:
    if d is None:
        raise t.invalid("domain", "missing")
    row = get_domain(session, scope, d.domain)
    if (d.customer and d.customer != row.customer) or (d.reseller and d.reseller != row.reseller):
        row.customer, row.reseller = resolve_owner(
            session, scope, d.customer or row.customer, d.reseller or row.reseller
        )
    _apply_domain(row, d)
    row.change_date = m.utcnow()
    record_change(session, TOPIC_SIP_DOMAIN, row.domain)


def delete_domain(session: Session, scope: Scope, name: str | None) -> None:
    """Delete a domain with its accounts (the database cascades their settings) and the
    aliases living in it."""
    row = get_domain(session, scope, name)
    aliases = session.execute(select(m.SipAlias).where(m.SipAlias.domain == row.domain)).scalars().all()
    for alias in aliases:
        session.delete(alias)
    users = session.execute(select(m.SipAccount.username).where(m.SipAccount.domain == row.domain)).scalars().all()
    session.execute(m.SipAccount.__table__.delete().where(m.SipAccount.domain == row.domain))
    session.delete(row)
    record_change(session, TOPIC_SIP_DOMAIN, row.domain)
    forget_entities(session, domain=row.domain)
    for user in users[:200]:
        record_change(session, TOPIC_SIP_ACCOUNT, f"{user}@{row.domain}")
    if len(users) > 200:
        record_change(session, TOPIC_SIP_ACCOUNT, "")
    if aliases:
        record_change(session, TOPIC_SIP_ALIAS, "")


def get_domains(session: Session, scope: Scope, query: t.SipDomainQuery | None) -> t.SipDomainList:
    total, rows = run_query(
        session, select(m.SipDomain).options(selectinload(m.SipDomain.acl)), query,
        filters={"domain": m.SipDomain.domain, "customer": m.SipDomain.customer, "reseller": m.SipDomain.reseller},
        orders={"changeDate": m.SipDomain.change_date, "domain": m.SipDomain.domain},
        scope=scope, model=m.SipDomain,
    )
    return t.SipDomainList(total=total, domains=[t.domain_to_soap(r) for r in rows])


class SipDomainPort(PortService):
    """SipPort: domains."""

    __port_namespace__ = NS_SIP

    @rpc(t.SipDomain)
    def addDomain(ctx, domain):  # noqa: N802, N805 - wire names; spyne passes the context first
        c = call_context(ctx)
        add_domain(c.session, c.scope, domain)

    @rpc(t.SipDomain)
    def updateDomain(ctx, domain):  # noqa: N802, N805
        c = call_context(ctx)
        update_domain(c.session, c.scope, domain)

    @rpc(Unicode)
    def deleteDomain(ctx, domain):  # noqa: N802, N805
        c = call_context(ctx)
        delete_domain(c.session, c.scope, domain)

    @rpc(t.SipDomainQuery, _returns=t.SipDomainList)
    def getDomains(ctx, query):  # noqa: N802, N805
        c = call_context(ctx)
        return get_domains(c.session, c.scope, query)
