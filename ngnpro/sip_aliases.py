"""SipPort aliases: an alias address ``user@domain`` in a local domain that routes to a
target address (a local account or anywhere else).

An alias and an account never share an address (faults 1011/1012), the alias domain must
be one the caller can use, and every write logs a ``sip_alias`` change so the proxy's
alias cache follows within a second.
"""

from __future__ import annotations

from spyne import rpc
from sqlalchemy import select
from sqlalchemy.orm import Session

from ngnpro import sip_types as t
from ngnpro.models import sip as m
from ngnpro.models.changes import TOPIC_SIP_ALIAS, record_change
from ngnpro.sip_accounts import address_taken, flush_unique, resolve_owner, usable_domain
from ngnpro.soap import NS_SIP, PortService, call_context
from ngnpro.soap.context import Scope
from ngnpro.soap.faults import ALIAS_EXISTS, ALIAS_NOT_FOUND, NGNProError
from ngnpro.soap.query import run_query


def _target(alias: t.SipAlias) -> tuple[str, str]:
    if alias.target is None:
        raise t.invalid("alias.target", "missing")
    return (
        t.target_username(alias.target.username, "alias.target.username"),
        t.host(alias.target.domain, "alias.target.domain"),
    )


def find_alias(session: Session, scope: Scope, sip_id: t.SipId | None) -> m.SipAlias:
    user, domain = t.sip_id(sip_id, "id")
    row = session.execute(
        select(m.SipAlias).where(m.SipAlias.username == user, m.SipAlias.domain == domain)
    ).scalar_one_or_none()
    if row is None:
        raise NGNProError(ALIAS_NOT_FOUND, f"SIP alias {user}@{domain} does not exist")
    scope.check(row)
    return row


def add_alias(session: Session, scope: Scope, alias: t.SipAlias | None) -> None:
    if alias is None or alias.id is None:
        raise t.invalid("alias.id", "missing")
    user = t.username(alias.id.username, "alias.id.username")
    domain = usable_domain(session, scope, alias.id.domain, "alias.id.domain")
    target_user, target_domain = _target(alias)
    if (user, domain.domain) == (target_user, target_domain):
        raise t.invalid("alias.target", "an alias cannot point to itself")
    address_taken(session, user, domain.domain)
    customer, reseller = resolve_owner(
        session, scope, alias.customer, alias.reseller, fallback=(domain.customer, domain.reseller)
    )
    session.add(m.SipAlias(
        username=user, domain=domain.domain, target_username=target_user, target_domain=target_domain,
        owner=t.integer(alias.owner, "alias.owner"), customer=customer, reseller=reseller,
    ))
    record_change(session, TOPIC_SIP_ALIAS, f"{user}@{domain.domain}")
    flush_unique(session, ALIAS_EXISTS, f"SIP alias {user}@{domain.domain} already exists")


def update_alias(session: Session, scope: Scope, alias: t.SipAlias | None) -> None:
    if alias is None:
        raise t.invalid("alias", "missing")
    row = find_alias(session, scope, alias.id)
    if alias.target is not None:
        row.target_username, row.target_domain = _target(alias)
        if (row.username, row.domain) == (row.target_username, row.target_domain):
            raise t.invalid("alias.target", "an alias cannot point to itself")
    if alias.owner is not None:
        row.owner = t.integer(alias.owner, "alias.owner")
    if (alias.customer and alias.customer != row.customer) or (alias.reseller and alias.reseller != row.reseller):
        row.customer, row.reseller = resolve_owner(
            session, scope, alias.customer or row.customer, alias.reseller or row.reseller
        )
    row.change_date = m.utcnow()
    record_change(session, TOPIC_SIP_ALIAS, f"{row.username}@{row.domain}")


def delete_alias(session: Session, scope: Scope, sip_id: t.SipId | None) -> None:
    row = find_alias(session, scope, sip_id)
    session.delete(row)
    record_change(session, TOPIC_SIP_ALIAS, f"{row.username}@{row.domain}")


def get_alias(session: Session, scope: Scope, sip_id: t.SipId | None) -> t.SipAlias:
    return t.alias_to_soap(find_alias(session, scope, sip_id))


def get_aliases(session: Session, scope: Scope, query: t.AliasQuery | None) -> t.SipAliasList:
    total, rows = run_query(
        session, select(m.SipAlias), query,
        filters={
            "aliasUsername": m.SipAlias.username, "aliasDomain": m.SipAlias.domain,
            "targetUsername": m.SipAlias.target_username, "targetDomain": m.SipAlias.target_domain,
            "owner": m.SipAlias.owner, "customer": m.SipAlias.customer, "reseller": m.SipAlias.reseller,
        },
        orders={
            "changeDate": m.SipAlias.change_date, "aliasUsername": m.SipAlias.username,
            "aliasDomain": m.SipAlias.domain, "targetUsername": m.SipAlias.target_username,
            "targetDomain": m.SipAlias.target_domain,
        },
        scope=scope, model=m.SipAlias,
    )
    return t.SipAliasList(total=total, aliases=[t.alias_to_soap(r) for r in rows])


# --- the SipPort methods --------------------------------------------------------------------


class SipAliasPort(PortService):
    """SipPort: aliases."""

    __port_namespace__ = NS_SIP

    @rpc(t.SipAlias)
    def addAlias(ctx, alias):  # noqa: N802, N805
        c = call_context(ctx)
        add_alias(c.session, c.scope, alias)

    @rpc(t.SipAlias)
    def updateAlias(ctx, alias):  # noqa: N802, N805
        c = call_context(ctx)
        update_alias(c.session, c.scope, alias)

    @rpc(t.SipId)
    def deleteAlias(ctx, id):  # noqa: N802, N805, A002 - the wire name is "id"
        c = call_context(ctx)
        delete_alias(c.session, c.scope, id)

    @rpc(t.SipId, _returns=t.SipAlias)
    def getAlias(ctx, id):  # noqa: N802, N805, A002
        c = call_context(ctx)
        return get_alias(c.session, c.scope, id)

    @rpc(t.AliasQuery, _returns=t.SipAliasList)
    def getAliases(ctx, query):  # noqa: N802, N805
        c = call_context(ctx)
        return get_aliases(c.session, c.scope, query)
