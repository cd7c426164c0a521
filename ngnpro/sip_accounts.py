"""SipPort subscribers: accounts (digest credentials) and groups (domains: ``sip_domains``).

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
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from spyne import Unicode, rpc
from sqlalchemy import bindparam, exists, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ngnpro import sip_account_sql as sql
from ngnpro import sip_types as t
from ngnpro.models import sip as m
from ngnpro.models.changes import (
    TOPIC_SIP_ACCOUNT,
    record_change,
)
from ngnpro.models.customer import Customer
from ngnpro.models.rating import forget_entities
from ngnpro.soap import NS_SIP, PortService, call_context
from ngnpro.soap.context import CallContext, Scope
from ngnpro.soap.faults import (
    ALIAS_EXISTS,
    GROUP_ACCOUNT_NOT_FOUND,
    NOT_IN_GROUP,
    PERMISSION_DENIED,
    SIP_ACCOUNT_EXISTS,
    SIP_ACCOUNT_NOT_FOUND,
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


_CUSTOMER_OWNER = select(Customer.id, Customer.reseller, Customer.reseller_active).where(Customer.id == bindparam("c"))


def db_connection(db: Session | Connection) -> Connection:
    """The Core connection of ``db``: the call's own connection, or a Session's."""
    return db.connection() if isinstance(db, Session) else db


def resolve_owner(
    session: Session | Connection, scope: Scope, customer: int | None, reseller: int | None,
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
            row = session.execute(_CUSTOMER_OWNER, {"c": c}).first()
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


def _item(row: Any, model: Any, **values: Any) -> Any:
    """A list item of ``row``: an ORM object for a stored account, a plain one for a
    :class:`NewAccount` (whose lists are inserted with Core statements)."""
    if isinstance(row, NewAccount):
        return SimpleNamespace(**values)
    return model(**values)


def _set_groups(row: m.SipAccount, names: list[str]) -> None:
    wanted = []
    for i, name in enumerate(names):
        g = t.group_name(name, f"groups[{i}]")
        if g not in wanted:
            wanted.append(g)
    keep = [g for g in row.groups if g.name in wanted]
    have = {g.name for g in keep}
    row.groups = keep + [_item(row, m.SipAccountGroup, name=g) for g in wanted if g not in have]


def _set_prepaid(row: m.SipAccount, prepaid: bool) -> None:
    """The ``prepaid`` member and the ``prepaid`` group say the same thing: keep them equal."""
    row.prepaid = prepaid
    names = row.group_names
    if prepaid and m.GROUP_PREPAID not in names:
        row.groups.append(_item(row, m.SipAccountGroup, name=m.GROUP_PREPAID))
    elif not prepaid and m.GROUP_PREPAID in names:
        row.groups = [g for g in row.groups if g.name != m.GROUP_PREPAID]


def _apply_account(row: m.SipAccount | NewAccount, a: t.SipAccount, store_clear: bool) -> None:
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
        row.acl = [_item(row, m.SipAccountAcl, ip=ip, mask=mask, tag=tag) for ip, mask, tag in entries]
    if a.properties is not None:
        props: dict[str, m.SipAccountProperty] = {}
        for i, p in enumerate(a.properties):
            if p is None:
                continue
            name = t.text(p.name, f"properties[{i}].name", 128).strip()
            if not name:
                raise t.invalid(f"properties[{i}].name", "missing")
            props[name] = _item(row, m.SipAccountProperty,
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


def next_username(session: Session | Connection, domain: str) -> str:
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


def address_taken(session: Session | Connection, user: str, domain: str) -> None:
    taken = {r.what for r in sql.TAKEN.rows(db_connection(session), {"u": user, "d": domain})}
    if "account" in taken:
        raise NGNProError(SIP_ACCOUNT_EXISTS, f"SIP account {user}@{domain} already exists")
    if "alias" in taken:
        raise NGNProError(ALIAS_EXISTS, f"SIP alias {user}@{domain} already exists")


def usable_domain(session: Session | Connection, scope: Scope, name: str | None, field: str) -> Any:
    """``(domain, customer, reseller)`` of a domain the caller may put addresses in."""
    domain = t.domain_name(name, field)
    rows = sql.DOMAIN.rows(db_connection(session), {"d": domain})
    row = rows[0] if rows else None
    if row is None:
        raise NGNProError(SIP_DOMAIN_NOT_FOUND, f"SIP domain {domain} does not exist")
    scope.check(row)
    return row


class NewAccount(m.AccountNames):
    """A new account's values while they are checked, before anything is written: a plain
    object with the attributes of :class:`m.SipAccount` that :func:`_apply_account` sets
    (an ORM instance would fire instrumentation events for every one of them)."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


def add_account(
    db: Session | Connection, scope: Scope, a: t.SipAccount | None, store_clear: bool = True,
    before_write: Callable[[], None] | None = None,
) -> t.SipAccount:
    """Check everything, then INSERT the account, its lists and the change with Core
    statements on the call's connection (``db`` may be a Session: its connection is used);
    ``before_write()`` is called just before the first INSERT."""
    if a is None or a.id is None:
        raise t.invalid("account.id", "missing")
    conn = db_connection(db)
    domain = usable_domain(conn, scope, a.id.domain, "account.id.domain")
    raw_user = (a.id.username or "").strip().lower()
    user = next_username(conn, domain.domain) if raw_user == AUTOINCREMENT else t.username(raw_user, "account.id.username")
    address_taken(conn, user, domain.domain)
    customer, reseller = resolve_owner(
        conn, scope, a.customer, a.reseller, fallback=(domain.customer, domain.reseller)
    )
    row = NewAccount(
        username=user, domain=domain.domain, customer=customer, reseller=reseller,
        email=f"{user}@{domain.domain}", timeout=35, prepaid=False, groups=[], acl=[], properties=[],
    )
    _apply_account(row, a, store_clear)  # validated on a plain object ...
    values = _complete(row)
    reply = account_wire(row)
    # ... then written with Core statements, last: on SQLite the first INSERT takes the
    # database's write lock, held until the framework commits right after this returns
    if before_write is not None:
        before_write()
    try:
        _insert_account(conn, row, values)
    except IntegrityError:  # a concurrent call inserted it after our look-up
        raise NGNProError(SIP_ACCOUNT_EXISTS, f"SIP account {user}@{domain.domain} already exists") from None
    sql.record_change(conn, TOPIC_SIP_ACCOUNT, row.aor, row.create_date)
    return reply


#: scalar column defaults, filled in for members the caller left out
_DEFAULTS = {
    c.key: c.default.arg for c in sql.ACCOUNTS.columns
    if c.default is not None and c.default.is_scalar and not c.default.is_callable
}


def _complete(row: NewAccount) -> dict[str, Any]:
    """Every column's value for the new ``row`` (defaults for what the caller left out,
    the dates now), also set on ``row`` for the reply."""
    now = m.utcnow()
    row.create_date = row.change_date = now
    values = dict(_DEFAULTS)
    for key in sql.COLUMNS:
        value = getattr(row, key, None)
        if value is not None:
            values[key] = value
    for key in sql.COLUMNS:
        if key not in values:
            raise RuntimeError(f"sip_accounts: no value for column {key}")  # a new column needs a default
    for key, value in values.items():
        setattr(row, key, value)
    return values


def _insert_account(conn: Connection, row: NewAccount, values: dict[str, Any]) -> None:
    """INSERT ``row`` (its column ``values``) and its lists without the ORM's unit of work,
    which costs more than the rest of an addAccount call."""
    sql.insert_account(
        conn, values,
        [{"name": g.name} for g in row.groups],
        [{"ip": x.ip, "mask": x.mask, "tag": x.tag} for x in row.acl],
        [{"name": p.name, "value": p.value, "category": p.category, "permission": p.permission}
         for p in row.properties],
    )


def update_account(session: Session, scope: Scope, a: t.SipAccount | None, store_clear: bool = True) -> None:
    if a is None:
        raise t.invalid("account", "missing")
    row = find_account(session, scope, a.id, SIP_ACCOUNT_NOT_FOUND)
    if (a.customer and a.customer != row.customer) or (a.reseller and a.reseller != row.reseller):
        row.customer, row.reseller = resolve_owner(
            session, scope, a.customer or row.customer, a.reseller or row.reseller
        )
    _apply_account(row, a, store_clear)
    touch(session, row)


def delete_account(session: Session, scope: Scope, sip_id: t.SipId | None) -> None:
    row = find_account(session, scope, sip_id)
    aor = row.aor
    session.delete(row)
    record_change(session, TOPIC_SIP_ACCOUNT, aor)
    forget_entities(session, subscriber=aor)


#: an account's three lists in one round trip: (kind, account, order, a, b, c, d)
#: groups, ACL and properties of several accounts in one round trip (getAccounts)
_LISTS = sql.lists_query(lambda column: column.in_(bindparam("ids", expanding=True))).order_by("ord")


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


def get_account(db: Session | Connection, scope: Scope, sip_id: t.SipId | None) -> t.SipAccount:
    user, domain = t.sip_id(sip_id)
    rows = sql.ACCOUNT.rows(db_connection(db), {"u": user, "d": domain})
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
    """SipPort: accounts and groups."""

    __port_namespace__ = NS_SIP

    @rpc(t.SipAccount, _returns=t.SipAccount)
    def addAccount(ctx, account):  # noqa: N802, N805
        c = call_context(ctx)
        return add_account(c.connection, c.scope, account, store_clear_text(c), before_write=c.writing)

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
        return get_account(c.connection, c.scope, sipId)

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
