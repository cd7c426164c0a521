"""SipPort subscribers: domains, accounts (digest credentials) and groups.

Logic is plain functions of ``(session, scope, parsed values)`` that raise
:class:`NGNProError` before writing anything invalid, so the framework's one-transaction-
per-call rule makes a fault change nothing.  Every write logs a change (``record_change``)
so the proxy drops its cached copy of that subscriber within a second.

Passwords (API.md 2.5) arrive in clear text or as the pair
``md5(user:domain:pw):md5(user@domain:domain:pw)``; the HA1 hashes the proxy needs are kept
either way, the SHA-256 one (RFC 8760) only when the clear text is known.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from spyne import Unicode, rpc
from sqlalchemy import Text, bindparam, cast, exists, func, literal_column, select, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ngnpro import sip_types as t
from ngnpro.models import sip as m
from ngnpro.models.changes import (
    TOPIC_SIP_ACCOUNT,
    TOPIC_SIP_ALIAS,
    TOPIC_SIP_DOMAIN,
    record_change,
)
from ngnpro.models.customer import Customer
from ngnpro.soap import NS_SIP, PortService, call_context
from ngnpro.soap.context import CallContext, Scope
from ngnpro.soap.faults import (
    ALIAS_EXISTS,
    GROUP_ACCOUNT_NOT_FOUND,
    NOT_IN_GROUP,
    PERMISSION_DENIED,
    SIP_ACCOUNT_EXISTS,
    SIP_ACCOUNT_NOT_FOUND,
    SIP_DOMAIN_EXISTS,
    SIP_DOMAIN_NOT_FOUND,
    NGNProError,
)
from ngnpro.soap.query import run_query
from ngnpro.soap.types import StringArray

AUTOINCREMENT = "<autoincrement>"
#: the first username ``<autoincrement>`` hands out in a domain without numeric usernames
FIRST_AUTO_USERNAME = 1000
_HA1_PAIR = re.compile(r"^([0-9a-f]{32}):([0-9a-f]{32})$")


# --- ownership and look-ups ---------------------------------------------------------------


def resolve_owner(
    session: Session, scope: Scope, customer: int | None, reseller: int | None,
    fallback: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """``(customer, reseller)`` of a new or re-owned record.

    A scoped caller may only hand a record to a customer it can see and never to another
    reseller; the unscoped admin may name any owner (the customer may live on another
    engine, API.md 1.1), and when it names none the record inherits ``fallback`` (the
    domain's owner) so a reseller's domain keeps its accounts in that reseller's view."""
    c = t.integer(customer, "customer")
    r = t.integer(reseller, "reseller")
    if scope.unscoped:
        if not c and not r:
            return fallback or scope.owner_defaults()
        if c and not r:
            row = session.get(Customer, c)
            if row is not None:
                r = row.reseller or (row.id if row.reseller_active else 0)
        return c or r, r
    default_c, default_r = scope.owner_defaults()
    if c and scope.visible_ids is not None and c not in scope.visible_ids:
        raise NGNProError(PERMISSION_DENIED, f"Permission denied: customer {c} is not yours")
    if r and r != default_r:
        raise NGNProError(PERMISSION_DENIED, f"Permission denied: reseller {r} is not yours")
    return c or default_c, default_r


def get_domain(session: Session, scope: Scope, name: str | None, field: str = "domain") -> m.SipDomain:
    domain = t.domain_name(name, field)
    row = session.execute(select(m.SipDomain).where(m.SipDomain.domain == domain)).scalar_one_or_none()
    if row is None:
        raise NGNProError(SIP_DOMAIN_NOT_FOUND, f"SIP domain {domain} does not exist")
    scope.check(row)
    return row


def find_account(
    session: Session, scope: Scope, sip_id: t.SipId | None, missing: int = SIP_ACCOUNT_NOT_FOUND,
    for_update: bool = False,
) -> m.SipAccount:
    """The account named by ``sip_id`` inside the caller's scope (``missing`` if none)."""
    user, domain = t.sip_id(sip_id)
    stmt = select(m.SipAccount).where(m.SipAccount.username == user, m.SipAccount.domain == domain)
    if for_update:
        stmt = stmt.with_for_update()
    row = session.execute(stmt).scalar_one_or_none()
    if row is None:
        raise NGNProError(missing, f"SIP account {user}@{domain} does not exist")
    scope.check(row)
    return row


def flush_unique(session: Session, code: int, message: str) -> None:
    """Flush now, so a duplicate that slipped past the look-up (a concurrent call inserted
    the same key) is the API's "exists" fault, not a server error; the framework then
    rolls the call back."""
    try:
        session.flush()
    except IntegrityError:
        raise NGNProError(code, message) from None


def touch(session: Session, account: m.SipAccount) -> None:
    """Log a change of ``account`` and bump its change date (sub-rows do not bump it)."""
    account.change_date = m.utcnow()
    record_change(session, TOPIC_SIP_ACCOUNT, account.aor)


# --- domains ------------------------------------------------------------------------------


def _apply_domain(row: m.SipDomain, d: t.SipDomain) -> None:
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
    for user in users[:200]:
        record_change(session, TOPIC_SIP_ACCOUNT, f"{user}@{row.domain}")
    if len(users) > 200:
        record_change(session, TOPIC_SIP_ACCOUNT, "")
    if aliases:
        record_change(session, TOPIC_SIP_ALIAS, "")


def get_domains(session: Session, scope: Scope, query: t.SipDomainQuery | None) -> t.SipDomainList:
    total, rows = run_query(
        session, select(m.SipDomain), query,
        filters={"domain": m.SipDomain.domain, "customer": m.SipDomain.customer, "reseller": m.SipDomain.reseller},
        orders={"changeDate": m.SipDomain.change_date, "domain": m.SipDomain.domain},
        scope=scope, model=m.SipDomain,
    )
    return t.SipDomainList(total=total, domains=[t.domain_to_soap(r) for r in rows])


# --- accounts -----------------------------------------------------------------------------


def credentials(user: str, domain: str, password: str, store_clear: bool) -> dict[str, str]:
    """Stored password and hashes for a clear-text password or an HA1 pair (API.md 2.5)."""
    pair = _HA1_PAIR.match(password.lower())
    if pair:
        return {"password": "", "ha1": pair.group(1), "ha1b": pair.group(2), "ha1_sha256": ""}
    if not password:
        return {"password": "", "ha1": "", "ha1b": "", "ha1_sha256": ""}
    raw = f"{user}:{domain}:{password}".encode()
    return {
        "password": password if store_clear else "",
        "ha1": hashlib.md5(raw).hexdigest(),
        "ha1b": hashlib.md5(f"{user}@{domain}:{domain}:{password}".encode()).hexdigest(),
        "ha1_sha256": hashlib.sha256(raw).hexdigest(),
    }


def _set_groups(row: m.SipAccount, names: list[str]) -> None:
    wanted = []
    for i, name in enumerate(names):
        g = t.group_name(name, f"groups[{i}]")
        if g not in wanted:
            wanted.append(g)
    keep = [g for g in row.groups if g.name in wanted]
    have = {g.name for g in keep}
    row.groups = keep + [m.SipAccountGroup(name=g) for g in wanted if g not in have]


def _set_prepaid(row: m.SipAccount, prepaid: bool) -> None:
    """The ``prepaid`` member and the ``prepaid`` group say the same thing: keep them equal."""
    row.prepaid = prepaid
    names = row.group_names
    if prepaid and m.GROUP_PREPAID not in names:
        row.groups.append(m.SipAccountGroup(name=m.GROUP_PREPAID))
    elif not prepaid and m.GROUP_PREPAID in names:
        row.groups = [g for g in row.groups if g.name != m.GROUP_PREPAID]


def _apply_account(session: Session, row: m.SipAccount, a: t.SipAccount, store_clear: bool) -> None:
    """Copy the members present in ``a`` onto ``row``; absent (None) members stay as they are,
    read-only ones (ha1, dates, ...) are ignored."""
    for attr, member, limit in (
        ("first_name", "firstName", 255), ("last_name", "lastName", 255),
        ("quickdial_prefix", "quickdialPrefix", 64), ("region", "region", 64),
    ):
        value = getattr(a, member)
        if value is not None:
            setattr(row, attr, t.text(value, member, limit))
    if a.email is not None:
        row.email = t.email(a.email) or f"{row.username}@{row.domain}"
    if a.timezone is not None:
        row.timezone = t.timezone(a.timezone)
    if a.rpid is not None:
        row.rpid = t.e164(a.rpid, "rpid")
    if a.owner is not None:
        row.owner = t.integer(a.owner, "owner")
    for attr, member, hi in (("quota", "quota", 2**31 - 1), ("call_limit", "callLimit", 100000)):
        value = getattr(a, member)
        if value is not None:
            setattr(row, attr, t.integer(value, member, 0, hi))
    if a.timeout is not None:
        row.timeout = t.integer(a.timeout, "timeout", 0, 3600) or 35
    if a.password:
        password = t.text(a.password, "password", 128)
        for attr, value in credentials(row.username, row.domain, password, store_clear).items():
            setattr(row, attr, value)
    if a.groups is not None:
        _set_groups(row, t.string_list(a.groups))
    prepaid = t.flag(a.prepaid, "prepaid")
    if prepaid is not None:
        _set_prepaid(row, prepaid)
    elif a.groups is not None:
        row.prepaid = m.GROUP_PREPAID in row.group_names
    if a.acl is not None:
        entries = [t.acl_entry(e, f"acl[{i}]") for i, e in enumerate(a.acl) if e is not None]
        row.acl = [m.SipAccountAcl(ip=ip, mask=mask, tag=tag) for ip, mask, tag in entries]
    if a.properties is not None:
        props: dict[str, m.SipAccountProperty] = {}
        for i, p in enumerate(a.properties):
            if p is None:
                continue
            name = t.text(p.name, f"properties[{i}].name", 128).strip()
            if not name:
                raise t.invalid(f"properties[{i}].name", "missing")
            props[name] = m.SipAccountProperty(
                name=name, value=t.text(p.value, f"properties[{i}].value", 65536),
                category=t.text(p.category, f"properties[{i}].category", 32),
                permission=t.text(p.permission, f"properties[{i}].permission", 32),
            )
        old = {p.name: p for p in row.properties}
        merged = []
        for name, new in props.items():
            if name in old:  # update in place: a delete + insert of the same key would collide
                old[name].value, old[name].category, old[name].permission = new.value, new.category, new.permission
                merged.append(old[name])
            else:
                merged.append(new)
        row.properties = merged


def next_username(session: Session, domain: str) -> str:
    """The username ``<autoincrement>`` allocates: one above the domain's highest numeric one."""
    stmt = (
        select(m.SipAccount.username)
        .where(m.SipAccount.domain == domain, m.SipAccount.username >= "0", m.SipAccount.username < ":")
        .order_by(func.length(m.SipAccount.username).desc(), m.SipAccount.username.desc())
    )
    for name in session.execute(stmt).scalars():
        if name.isdigit():
            return str(max(int(name) + 1, FIRST_AUTO_USERNAME))
    return str(FIRST_AUTO_USERNAME)


_TAKEN = union_all(
    select(literal_column("'account'").label("what")).where(
        m.SipAccount.username == bindparam("u"), m.SipAccount.domain == bindparam("d")),
    select(literal_column("'alias'")).where(m.SipAlias.username == bindparam("u"), m.SipAlias.domain == bindparam("d")),
)
_DOMAIN = select(m.SipDomain.domain, m.SipDomain.customer, m.SipDomain.reseller).where(
    m.SipDomain.domain == bindparam("d"))


def address_taken(session: Session, user: str, domain: str) -> None:
    taken = set(session.connection().execute(_TAKEN, {"u": user, "d": domain}).scalars())
    if "account" in taken:
        raise NGNProError(SIP_ACCOUNT_EXISTS, f"SIP account {user}@{domain} already exists")
    if "alias" in taken:
        raise NGNProError(ALIAS_EXISTS, f"SIP alias {user}@{domain} already exists")


def usable_domain(session: Session, scope: Scope, name: str | None, field: str) -> Any:
    """``(domain, customer, reseller)`` of a domain the caller may put addresses in."""
    domain = t.domain_name(name, field)
    row = session.connection().execute(_DOMAIN, {"d": domain}).first()
    if row is None:
        raise NGNProError(SIP_DOMAIN_NOT_FOUND, f"SIP domain {domain} does not exist")
    scope.check(row)
    return row


def add_account(session: Session, scope: Scope, a: t.SipAccount | None, store_clear: bool = True) -> t.SipAccount:
    if a is None or a.id is None:
        raise t.invalid("account.id", "missing")
    domain = usable_domain(session, scope, a.id.domain, "account.id.domain")
    raw_user = (a.id.username or "").strip().lower()
    user = next_username(session, domain.domain) if raw_user == AUTOINCREMENT else t.username(raw_user, "account.id.username")
    address_taken(session, user, domain.domain)
    customer, reseller = resolve_owner(
        session, scope, a.customer, a.reseller, fallback=(domain.customer, domain.reseller)
    )
    row = m.SipAccount(
        username=user, domain=domain.domain, customer=customer, reseller=reseller,
        email=f"{user}@{domain.domain}", timeout=35, prepaid=False, groups=[], acl=[], properties=[],
    )
    _apply_account(session, row, a, store_clear)  # validated on a transient object ...
    try:
        _insert_account(session, row)  # ... then written with Core statements
    except IntegrityError:  # a concurrent call inserted it after our look-up
        raise NGNProError(SIP_ACCOUNT_EXISTS, f"SIP account {user}@{domain.domain} already exists") from None
    record_change(session, TOPIC_SIP_ACCOUNT, row.aor)
    return account_wire(row)


_ACCOUNTS = m.SipAccount.__table__
#: scalar column defaults, filled in for members the caller left out
_DEFAULTS = {
    c.key: c.default.arg for c in _ACCOUNTS.columns
    if c.default is not None and c.default.is_scalar and not c.default.is_callable
}


def _insert_account(session: Session, row: m.SipAccount) -> None:
    """INSERT the transient ``row`` and its lists without the ORM's unit of work, which
    costs more than the rest of an addAccount call; ``row`` is never added to the session
    and keeps the values written, for the reply."""
    now = m.utcnow()
    row.create_date = row.change_date = now
    values = dict(_DEFAULTS)
    for column in _ACCOUNTS.columns:
        value = getattr(row, column.key, None)
        if column.key != "id" and value is not None:
            values[column.key] = value
    for key, value in values.items():
        setattr(row, key, value)
    conn = session.connection()
    account_id = conn.execute(_ACCOUNTS.insert(), values).inserted_primary_key[0]
    for table, items in (
        (m.SipAccountGroup.__table__, [{"name": g.name} for g in row.groups]),
        (m.SipAccountAcl.__table__, [{"ip": x.ip, "mask": x.mask, "tag": x.tag} for x in row.acl]),
        (m.SipAccountProperty.__table__, [
            {"name": p.name, "value": p.value, "category": p.category, "permission": p.permission}
            for p in row.properties
        ]),
    ):
        if items:
            conn.execute(table.insert(), [dict(item, account_id=account_id) for item in items])


def update_account(session: Session, scope: Scope, a: t.SipAccount | None, store_clear: bool = True) -> None:
    if a is None:
        raise t.invalid("account", "missing")
    row = find_account(session, scope, a.id, SIP_ACCOUNT_NOT_FOUND)
    if (a.customer and a.customer != row.customer) or (a.reseller and a.reseller != row.reseller):
        row.customer, row.reseller = resolve_owner(
            session, scope, a.customer or row.customer, a.reseller or row.reseller
        )
    _apply_account(session, row, a, store_clear)
    touch(session, row)


def delete_account(session: Session, scope: Scope, sip_id: t.SipId | None) -> None:
    row = find_account(session, scope, sip_id)
    aor = row.aor
    session.delete(row)
    record_change(session, TOPIC_SIP_ACCOUNT, aor)


#: an account's three lists in one round trip: (kind, account, order, a, b, c, d)
_G, _A, _P = m.SipAccountGroup, m.SipAccountAcl, m.SipAccountProperty


def _lists_query():  # noqa: ANN202 - a SQLAlchemy compound select
    k = literal_column  # SQL constants, not bind parameters: no typing doubts across backends
    text_empty = cast(k("''"), Text)
    ids = bindparam("ids", expanding=True)
    return union_all(
        select(k("'g'").label("kind"), _G.account_id, k("0").label("ord"), _G.name.label("a"),
               text_empty.label("b"), k("0").label("n"), k("''").label("c"), k("''").label("d"))
        .where(_G.account_id.in_(ids)),
        select(k("'a'"), _A.account_id, _A.id, _A.ip, cast(_A.tag, Text), _A.mask, k("''"), k("''"))
        .where(_A.account_id.in_(ids)),
        select(k("'p'"), _P.account_id, _P.id, _P.name, _P.value, k("0"), _P.category, _P.permission)
        .where(_P.account_id.in_(ids)),
    ).order_by("ord")


def _account_query():  # noqa: ANN202 - a SQLAlchemy select
    """One account with its three lists in one statement: the account row LEFT JOINed to
    the union of its lists (one row per list item, or one row of NULLs for an account
    without any); each branch of the union finds the account id by its unique key itself,
    so no backend has to push the join condition into the union."""
    k = literal_column
    acc = _ACCOUNTS
    key = (acc.c.username == bindparam("u"), acc.c.domain == bindparam("d"))
    account_id = select(acc.c.id).where(*key).scalar_subquery()
    text_empty = cast(k("''"), Text)
    lists = union_all(
        select(k("'g'").label("kind"), _G.account_id.label("account_id"), k("0").label("ord"),
               _G.name.label("a"), text_empty.label("b"), k("0").label("n"), k("''").label("c"),
               k("''").label("d")).where(_G.account_id == account_id),
        select(k("'a'"), _A.account_id, _A.id, _A.ip, cast(_A.tag, Text), _A.mask, k("''"), k("''"))
        .where(_A.account_id == account_id),
        select(k("'p'"), _P.account_id, _P.id, _P.name, _P.value, k("0"), _P.category, _P.permission)
        .where(_P.account_id == account_id),
    ).subquery("l")
    return (
        select(acc, lists.c.kind.label("l_kind"), lists.c.a.label("l_a"), lists.c.b.label("l_b"),
               lists.c.n.label("l_n"), lists.c.c.label("l_c"), lists.c.d.label("l_d"))
        .select_from(acc.outerjoin(lists, lists.c.account_id == acc.c.id))
        .where(*key)
        .order_by(lists.c.kind, lists.c.ord)
    )


#: built once: getAccount is the hottest method, and building a statement costs more than
#: running it on a warm database
_LISTS = _lists_query()
_ACCOUNT = _account_query()


def account_lists(session: Session, ids: list[int]) -> dict[int, tuple[list, list, list]]:
    """groups, acl and properties of accounts ``ids`` (read paths use Core rows, which cost a
    fraction of the ORM's lazy loads on the hottest method, getAccount)."""
    out: dict[int, tuple[list, list, list]] = {i: ([], [], []) for i in ids}
    if ids:
        for kind, account_id, _, a, b, n, c, d in session.connection().execute(_LISTS, {"ids": ids}):
            groups, acl, props = out[account_id]
            if kind == "g":
                groups.append(a)
            elif kind == "a":
                acl.append((a, n, b or ""))
            else:
                props.append((a, b or "", c or "", d or ""))
    return out


def account_wire(row: m.SipAccount) -> t.SipAccount:
    """The wire form of an account loaded through the ORM (after a write)."""
    return t.account_to_soap(
        row, [g.name for g in row.groups], [(a.ip, a.mask, a.tag) for a in row.acl],
        [(p.name, p.value, p.category, p.permission) for p in row.properties],
    )


def get_account(session: Session, scope: Scope, sip_id: t.SipId | None) -> t.SipAccount:
    user, domain = t.sip_id(sip_id)
    rows = session.connection().execute(_ACCOUNT, {"u": user, "d": domain}).all()
    if not rows:
        raise NGNProError(SIP_ACCOUNT_NOT_FOUND, f"SIP account {user}@{domain} does not exist")
    row = rows[0]
    scope.check(row)
    groups: list[str] = []
    acl: list[tuple[str, int, str]] = []
    props: list[tuple[str, str, str, str]] = []
    for r in rows:
        kind = r.l_kind
        if kind == "g":
            groups.append(r.l_a)
        elif kind == "a":
            acl.append((r.l_a, r.l_n, r.l_b or ""))
        elif kind == "p":
            props.append((r.l_a, r.l_b or "", r.l_c or "", r.l_d or ""))
    return t.account_to_soap(row, groups, acl, props)


def _in_groups(stmt, groups: list[str]):  # noqa: ANN001, ANN202 - SQLAlchemy select in, select out
    for name in groups:
        g = name.strip().lower()
        stmt = stmt.where(
            exists().where(m.SipAccountGroup.account_id == m.SipAccount.id, m.SipAccountGroup.name == g)
        )
    return stmt


def get_accounts(session: Session, scope: Scope, query: t.SipQuery | None) -> t.SipAccountList:
    total, rows = run_query(
        session, select(m.SipAccount), query,
        filters={
            "username": m.SipAccount.username, "domain": m.SipAccount.domain,
            "firstName": m.SipAccount.first_name, "lastName": m.SipAccount.last_name,
            "email": m.SipAccount.email, "owner": m.SipAccount.owner,
            "customer": m.SipAccount.customer, "reseller": m.SipAccount.reseller, "groups": _in_groups,
        },
        orders={
            "changeDate": m.SipAccount.change_date, "username": m.SipAccount.username,
            "domain": m.SipAccount.domain, "firstName": m.SipAccount.first_name,
            "lastName": m.SipAccount.last_name, "email": m.SipAccount.email,
            "createDate": m.SipAccount.create_date,
        },
        scope=scope, model=m.SipAccount,
    )
    lists = account_lists(session, [r.id for r in rows])
    return t.SipAccountList(total=total, accounts=[t.account_to_soap(r, *lists[r.id]) for r in rows])


# --- groups -------------------------------------------------------------------------------


def add_to_group(session: Session, scope: Scope, sip_id: t.SipId | None, group: str | None) -> None:
    row = find_account(session, scope, sip_id, GROUP_ACCOUNT_NOT_FOUND)
    name = t.group_name(group)
    if name not in row.group_names:
        row.groups.append(m.SipAccountGroup(name=name))
        if name == m.GROUP_PREPAID:
            row.prepaid = True
        touch(session, row)


def remove_from_group(session: Session, scope: Scope, sip_id: t.SipId | None, group: str | None) -> None:
    row = find_account(session, scope, sip_id, GROUP_ACCOUNT_NOT_FOUND)
    name = t.group_name(group)
    if name not in row.group_names:
        raise NGNProError(NOT_IN_GROUP, f"SIP account {row.aor} is not in group {name}")
    row.groups = [g for g in row.groups if g.name != name]
    if name == m.GROUP_PREPAID:
        row.prepaid = False
    touch(session, row)


def get_groups(session: Session, scope: Scope, sip_id: t.SipId | None) -> list[str]:
    return sorted(find_account(session, scope, sip_id, GROUP_ACCOUNT_NOT_FOUND).group_names)


# --- the SipPort methods --------------------------------------------------------------------


def store_clear_text(c: CallContext) -> bool:
    """Keep clear-text passwords? The login's ``store_clear_text_passwords`` property
    (a reseller's choice) overrides the engine setting (API.md 2.5)."""
    prop = c.scope.properties.get("store_clear_text_passwords")
    if prop is not None and str(prop).strip() != "":
        return str(prop).strip().lower() in ("1", "true", "yes", "on")
    return bool(c.config["ngnpro"]["store_clear_text_passwords"])


class SipAccountPort(PortService):
    """SipPort: domains, accounts and groups."""

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

    @rpc(t.SipAccount, _returns=t.SipAccount)
    def addAccount(ctx, account):  # noqa: N802, N805
        c = call_context(ctx)
        return add_account(c.session, c.scope, account, store_clear_text(c))

    @rpc(t.SipAccount)
    def updateAccount(ctx, account):  # noqa: N802, N805
        c = call_context(ctx)
        update_account(c.session, c.scope, account, store_clear_text(c))

    @rpc(t.SipId)
    def deleteAccount(ctx, sipId):  # noqa: N802, N803, N805
        c = call_context(ctx)
        delete_account(c.session, c.scope, sipId)

    @rpc(t.SipId, _returns=t.SipAccount)
    def getAccount(ctx, sipId):  # noqa: N802, N803, N805
        c = call_context(ctx)
        return get_account(c.session, c.scope, sipId)

    @rpc(t.SipQuery, _returns=t.SipAccountList)
    def getAccounts(ctx, query):  # noqa: N802, N805
        c = call_context(ctx)
        return get_accounts(c.session, c.scope, query)

    @rpc(t.SipId, Unicode)
    def addToGroup(ctx, sipId, group):  # noqa: N802, N803, N805
        c = call_context(ctx)
        add_to_group(c.session, c.scope, sipId, group)

    @rpc(t.SipId, Unicode)
    def removeFromGroup(ctx, sipId, group):  # noqa: N802, N803, N805
        c = call_context(ctx)
        remove_from_group(c.session, c.scope, sipId, group)

    @rpc(t.SipId, _returns=StringArray)
    def getGroups(ctx, sipId):  # noqa: N802, N803, N805
        c = call_context(ctx)
        return get_groups(c.session, c.scope, sipId)
