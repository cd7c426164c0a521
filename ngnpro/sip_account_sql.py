"""The statements of the hottest SipPort calls, getAccount and addAccount, prepared once
(:mod:`ngnpro.models.prepared`): an account with all its lists in one query, the look-ups an
addAccount makes before it writes, and its inserts.  Other account methods use the ORM.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Text, bindparam, cast, literal_column, select, union_all
from sqlalchemy.engine import Connection

from ngnpro.models import sip as m
from ngnpro.models.changes import ChangeLogEntry
from ngnpro.models.prepared import Prepared, supports_returning

ACCOUNTS = m.SipAccount.__table__
_G, _A, _P = m.SipAccountGroup, m.SipAccountAcl, m.SipAccountProperty


def lists_query(account_id: Any) -> Any:
    """groups (``g``), ACL entries (``a``) and properties (``p``) of the accounts matched by
    ``account_id`` (a column condition's right side), as rows (kind, account_id, ord, a, b, n,
    c, d).  Constants are SQL literals, not bind parameters: no typing doubts across
    backends."""
    k = literal_column
    return union_all(
        select(k("'g'").label("kind"), _G.account_id.label("account_id"), k("0").label("ord"),
               _G.name.label("a"), cast(k("''"), Text).label("b"), k("0").label("n"), k("''").label("c"),
               k("''").label("d")).where(account_id(_G.account_id)),
        select(k("'a'"), _A.account_id, _A.id, _A.ip, cast(_A.tag, Text), _A.mask, k("''"), k("''"))
        .where(account_id(_A.account_id)),
        select(k("'p'"), _P.account_id, _P.id, _P.name, _P.value, k("0"), _P.category, _P.permission)
        .where(account_id(_P.account_id)),
    )


def _account_query() -> Any:
    """One account with its three lists in one statement: the account row LEFT JOINed to
    the union of its lists (one row per list item, or one row of NULLs for an account
    without any); each branch of the union finds the account id by its unique key itself,
    so no backend has to push the join condition into the union."""
    key = (ACCOUNTS.c.username == bindparam("u"), ACCOUNTS.c.domain == bindparam("d"))
    account_id = select(ACCOUNTS.c.id).where(*key).scalar_subquery()
    lists = lists_query(lambda column: column == account_id).subquery("l")
    return (
        select(ACCOUNTS, lists.c.kind.label("l_kind"), lists.c.a.label("l_a"), lists.c.b.label("l_b"),
               lists.c.n.label("l_n"), lists.c.c.label("l_c"), lists.c.d.label("l_d"))
        .select_from(ACCOUNTS.outerjoin(lists, lists.c.account_id == ACCOUNTS.c.id))
        .where(*key)
        .order_by(lists.c.kind, lists.c.ord)
    )


#: the account ``u``@``d`` with its lists (see _account_query)
ACCOUNT = Prepared(_account_query())
#: which of an account or an alias holds the address ``u``@``d``
TAKEN = Prepared(union_all(
    select(literal_column("'account'").label("what")).where(
        m.SipAccount.username == bindparam("u"), m.SipAccount.domain == bindparam("d")),
    select(literal_column("'alias'")).where(m.SipAlias.username == bindparam("u"), m.SipAlias.domain == bindparam("d")),
))
#: the owner of domain ``d``
DOMAIN = Prepared(select(m.SipDomain.domain, m.SipDomain.customer, m.SipDomain.reseller).where(
    m.SipDomain.domain == bindparam("d")))

#: every column but the key, as an addAccount writes them
COLUMNS = [c.key for c in ACCOUNTS.columns if c.key != "id"]
_INSERT = ACCOUNTS.insert().values({key: bindparam(key) for key in COLUMNS})
_INSERT_RETURNING = Prepared(_INSERT.returning(ACCOUNTS.c.id))
_INSERT_PLAIN = Prepared(_INSERT)
_INSERT_LISTS = tuple(
    Prepared(table.insert().values({c.key: bindparam(c.key) for c in table.columns if c.key != "id"}))
    for table in (_G.__table__, _A.__table__, _P.__table__)
)
_INSERT_CHANGE = Prepared(ChangeLogEntry.__table__.insert().values(
    topic=bindparam("topic"), key=bindparam("key"), at=bindparam("at")))


def insert_account(conn: Connection, values: dict[str, Any], groups: list[dict], acl: list[dict],
                   properties: list[dict]) -> int:
    """INSERT an account (``values`` has every column of COLUMNS) and its lists (dicts of
    their columns without ``account_id``); the new account's id."""
    if supports_returning(conn):
        account_id = _INSERT_RETURNING.returning(conn, values).id
    else:
        account_id = _INSERT_PLAIN.run(conn, values)
    for insert, items in zip(_INSERT_LISTS, (groups, acl, properties), strict=True):
        if items:
            insert.run_many(conn, [dict(item, account_id=account_id) for item in items])
    return account_id


def record_change(conn: Connection, topic: str, key: str, at: Any) -> None:
    """The change_log row :func:`ngnpro.models.changes.record_change` writes, prepared."""
    _INSERT_CHANGE.run(conn, {"topic": topic, "key": key.lower(), "at": at})
