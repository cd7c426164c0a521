"""CustomerPort (``urn:AGProjects:NGNPro:Customer``): customers, resellers and their properties.

Also the worked example of how a port is written (see ``ngnpro/soap/__init__.py``).

Who may do what (API.md 1.5, 5.3): the engine admin sees everything; a reseller (its own
credentials, or the admin impersonating it) sees itself and its sub-customers (``reseller``
equal to its id); a plain customer sees only itself.  Only the unscoped engine admin may
create resellers or move an account to another reseller; a login may not change its own
``impersonate``.  Properties carry a ``permission`` (``admin``, ``reseller``, ``customer``):
a caller changes only those at or below its level.
"""

from __future__ import annotations

import datetime as _dt
import re
from decimal import Decimal
from typing import Any

from spyne import rpc
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, selectinload

from ngnpro.models.changes import TOPIC_CUSTOMER, record_change
from ngnpro.models.customer import Customer
from ngnpro.models.customer import CustomerProperty as CustomerPropertyRow
from ngnpro.models.rating import forget_entities
from ngnpro.soap import NS_CUSTOMER, NS_TYPES, PortService, call_context
from ngnpro.soap.context import Scope
from ngnpro.soap.faults import (
    CUSTOMER_EXISTS,
    CUSTOMER_NOT_FOUND,
    INVALID_VALUE,
    PERMISSION_DENIED,
    NGNProError,
)
from ngnpro.soap.query import run_query
from ngnpro.soap.types import Array, Boolean, ComplexModel, Double, Integer, OrderBy, Range, Unicode

# ------------------------------------------------------------------------------ types


class CustomerPropertyModel(ComplexModel):
    __namespace__ = NS_TYPES
    __type_name__ = "CustomerProperty"
    _type_info = [("name", Unicode), ("value", Unicode), ("category", Unicode), ("permission", Unicode)]


CustomerPropertyArray = Array(CustomerPropertyModel)

#: (wire member, ORM column, spyne type) in wire order.
FIELDS: list[tuple[str, str, Any]] = [
    ("id", "id", Integer),
    ("reseller", "reseller", Integer),
    ("customer", "customer", Integer),
    ("resellerActive", "reseller_active", Boolean),
    ("impersonate", "impersonate", Integer),
    ("username", "username", Unicode),
    ("password", "password", Unicode),
    ("firstName", "first_name", Unicode),
    ("lastName", "last_name", Unicode),
    ("organization", "organization", Unicode),
    ("companyCode", "company_code", Unicode),
    ("tel", "tel", Unicode),
    ("fax", "fax", Unicode),
    ("mobile", "mobile", Unicode),
    ("enum", "enum", Unicode),
    ("sip", "sip", Unicode),
    ("email", "email", Unicode),
    ("billingEmail", "billing_email", Unicode),
    ("web", "web", Unicode),
    ("address", "address", Unicode),
    ("billingAddress", "billing_address", Unicode),
    ("postcode", "postcode", Unicode),
    ("city", "city", Unicode),
    ("state", "state", Unicode),
    ("country", "country", Unicode),
    ("timezone", "timezone", Unicode),
    ("language", "language", Unicode),
    ("vatNumber", "vat_number", Unicode),
    ("bankAccount", "bank_account", Unicode),
    ("balance", "balance", Double),
    ("credit", "credit", Double),
]

#: fields a caller may set freely on its visible accounts
_EDITABLE = [f for f in FIELDS if f[0] not in ("id", "reseller", "customer", "resellerActive", "impersonate", "username")]
#: maximum lengths of text columns (Text columns get a generous cap)
_MAXLEN = {"username": 64, "password": 255, "tel": 64, "fax": 64, "mobile": 64, "enum": 64, "postcode": 64,
           "country": 64, "timezone": 64, "language": 32, "vatNumber": 64, "address": 4000, "billingAddress": 4000}


class CustomerAccount(ComplexModel):
    __namespace__ = NS_TYPES
    __type_name__ = "CustomerAccount"
    _type_info = [(name, t) for name, _, t in FIELDS] + [
        ("properties", CustomerPropertyArray),
        ("changeDate", Unicode),
    ]


class CustomerFilter(ComplexModel):
    __namespace__ = NS_TYPES
    __type_name__ = "CustomerFilter"
    _type_info = [
        ("username", Unicode), ("firstName", Unicode), ("lastName", Unicode),
        ("organization", Unicode), ("tel", Unicode), ("email", Unicode), ("web", Unicode),
        ("city", Unicode), ("country", Unicode), ("only_resellers", Unicode),
        ("customer", Integer), ("reseller", Integer),
    ]


class CustomerQuery(ComplexModel):
    __namespace__ = NS_TYPES
    __type_name__ = "CustomerQuery"
    _type_info = [("filter", CustomerFilter), ("orderBy", OrderBy), ("range", Range)]


class CustomerQueryResult(ComplexModel):
    __namespace__ = NS_TYPES
    __type_name__ = "CustomerQueryResult"
    _type_info = [("total", Integer), ("accounts", Array(CustomerAccount))]


# ------------------------------------------------------------------------------ helpers

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
_LEVELS = {"customer": 0, "reseller": 1, "admin": 2}


def _level(scope: Scope) -> int:
    if scope.admin:
        return 2
    return 1 if scope.reseller_active else 0


def _prop_level(permission: str | None) -> int:
    return _LEVELS.get((permission or "").strip().lower(), 0)


def _changed(value: Any) -> str:
    if isinstance(value, _dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return ""


def _property(p: CustomerPropertyRow) -> dict[str, str]:
    return {"name": p.name, "value": p.value, "category": p.category, "permission": p.permission}


def to_wire(row: Customer) -> dict[str, Any]:
    """An ORM Customer as the wire CustomerAccount (a dict of plain values: the encoder
    takes dicts, and they are cheaper than spyne instances)."""
    acc: dict[str, Any] = {}
    for name, col, _ in FIELDS:
        value = getattr(row, col)
        if isinstance(value, Decimal):
            value = float(value)
        acc[name] = value if value is not None else ""
    acc["resellerActive"] = bool(row.reseller_active)
    acc["properties"] = [_property(p) for p in row.properties]
    acc["changeDate"] = _changed(row.change_date)
    return acc


def _text(field: str, value: Any, limit: int | None = None) -> str:
    text = "" if value is None else str(value)
    limit = limit or _MAXLEN.get(field, 255)
    if len(text) > limit:
        raise NGNProError(INVALID_VALUE, f"Invalid value for {field}: longer than {limit} characters")
    return text


def _number(field: str, value: Any) -> Decimal:
    try:
        d = Decimal(str(value))
    except Exception:
        raise NGNProError(INVALID_VALUE, f"Invalid value for {field}: not a number") from None
    if not d.is_finite() or abs(d) >= Decimal(10) ** 10:
        raise NGNProError(INVALID_VALUE, f"Invalid value for {field}: out of range")
    return d


def _apply_fields(row: Customer, account: Any, fields: list[tuple[str, str, Any]]) -> None:
    for name, col, typ in fields:
        value = getattr(account, name, None)
        if value is None:
            continue
        if name == "password" and value == "" and row.password:
            continue  # an omitted password on update keeps the old one
        if typ is Double:
            setattr(row, col, _number(name, value))
        else:
            setattr(row, col, _text(name, value))


def _check_username(username: Any) -> str:
    if not isinstance(username, str) or not _USERNAME.match(username):
        raise NGNProError(INVALID_VALUE, "Invalid value for username: 1-64 letters, digits or ._@+- expected")
    return username


def _load(session: Any, scope: Scope, customer_id: Any) -> Customer:
    if not isinstance(customer_id, int) or customer_id <= 0:
        raise NGNProError(CUSTOMER_NOT_FOUND, f"Customer {customer_id!r} does not exist")
    row = session.get(Customer, customer_id, options=[joinedload(Customer.properties)])
    if row is None:
        raise NGNProError(CUSTOMER_NOT_FOUND, f"Customer {customer_id} does not exist")
    scope.check(row)
    return row


def _set_properties(session: Any, row: Customer, props: list[Any] | None, scope: Scope, replace: bool) -> None:
    """Upsert ``props`` (and with ``replace`` drop the ones not listed) within the caller's level."""
    level = _level(scope)
    existing = {p.name: p for p in row.properties}
    wanted: dict[str, Any] = {}
    for i, p in enumerate(props or []):
        if p is None or not getattr(p, "name", None):
            raise NGNProError(INVALID_VALUE, f"Invalid value for properties[{i}].name: a name is required")
        wanted[_text(f"properties[{i}].name", p.name, 128)] = p
    for name, p in wanted.items():
        value = _text(f"property {name} value", p.value, 65535)
        category = _text(f"property {name} category", p.category, 32)
        permission = (p.permission or "").strip().lower()
        if permission and permission not in _LEVELS:
            raise NGNProError(INVALID_VALUE, f"Invalid value for property {name} permission: admin, reseller or customer")
        old = existing.get(name)
        if old is not None and (old.value, old.category, old.permission) == (value, category or old.category, permission or old.permission):
            continue
        needed = max(_prop_level(permission), _prop_level(old.permission) if old is not None else 0)
        if needed > level:
            raise NGNProError(PERMISSION_DENIED, f"Permission denied: property {name} needs {permission or old.permission} rights")
        if old is None:
            row.properties.append(CustomerPropertyRow(name=name, value=value, category=category, permission=permission))
        else:
            old.value, old.category = value, category or old.category
            old.permission = permission or old.permission
    if replace:
        for name, old in existing.items():
            if name not in wanted:
                if _prop_level(old.permission) > level:
                    continue  # a property the caller cannot see changed stays
                row.properties.remove(old)


def _impersonate_target(session: Any, scope: Scope, value: Any) -> int:
    """``impersonate`` names the account whose credentials a login uses (API.md 1.5), so a
    scoped caller may only point it at an account it can see itself."""
    target = max(int(value or 0), 0)
    if target and not scope.unscoped:
        row = session.get(Customer, target)
        if row is None or not scope.allows(row):
            raise NGNProError(PERMISSION_DENIED, f"Permission denied: impersonate {target} is outside your accounts")
    return target


def _count_subs(session: Any, customer_id: int) -> int:
    return session.execute(
        select(func.count()).select_from(Customer).where(Customer.reseller == customer_id, Customer.id != customer_id)
    ).scalar_one()


def _query(ctx: Any, query: Any, resellers_only: bool) -> dict[str, Any]:
    c = call_context(ctx)
    filters: dict[str, Any] = {
        "username": Customer.username, "firstName": Customer.first_name, "lastName": Customer.last_name,
        "organization": Customer.organization, "tel": Customer.tel, "email": Customer.email,
        "web": Customer.web, "city": Customer.city, "country": Customer.country,
        "customer": Customer.id, "reseller": Customer.reseller,
        "only_resellers": lambda stmt, v: stmt.where(Customer.reseller_active.is_(True)) if str(v) == "1" else stmt,
    }
    stmt = select(Customer).options(selectinload(Customer.properties))  # not one query per account
    flt = getattr(query, "filter", None)
    if resellers_only and not getattr(flt, "customer", None):
        stmt = stmt.where(Customer.reseller_active.is_(True))
    orders = {
        "changeDate": Customer.change_date, "username": Customer.username, "firstName": Customer.first_name,
        "lastName": Customer.last_name, "organization": Customer.organization, "customer": Customer.id,
    }
    total, rows = run_query(c.session, stmt, query, filters=filters, orders=orders, scope=c.scope, model=Customer)
    return {"total": total, "accounts": [to_wire(r) for r in rows]}


# ------------------------------------------------------------------------------ the port


class CustomerPort(PortService):
    __port_namespace__ = NS_CUSTOMER

    @rpc(CustomerAccount, _returns=CustomerAccount)
    def addAccount(ctx, account):  # noqa: N805 - spyne passes the method context first
        """Create a customer or reseller; answers the stored account (its ``id`` is new)."""
        c = call_context(ctx)
        scope = c.scope
        if account is None:
            raise NGNProError(INVALID_VALUE, "Invalid value for account: a CustomerAccount is required")
        if not scope.unscoped and not scope.reseller_active:
            raise NGNProError(PERMISSION_DENIED, "Permission denied: only administrators and resellers add customers")
        username = _check_username(account.username)
        if c.session.execute(select(Customer.id).where(Customer.username == username)).first():
            raise NGNProError(CUSTOMER_EXISTS, f"Customer username {username} already exists")
        row = Customer(username=username)
        _apply_fields(row, account, _EDITABLE)
        if scope.unscoped:
            row.reseller_active = bool(account.resellerActive)
            row.reseller = max(int(account.reseller or 0), 0)
            row.customer = max(int(account.customer or 0), 0)
            if row.reseller and not row.reseller_active:
                parent = c.session.get(Customer, row.reseller)
                if parent is None or not parent.reseller_active:
                    raise NGNProError(INVALID_VALUE, f"Invalid value for reseller: {row.reseller} is not a reseller")
        else:
            if account.resellerActive:
                raise NGNProError(PERMISSION_DENIED, "Permission denied: only administrators create resellers")
            if account.reseller not in (None, 0, scope.reseller_id):
                raise NGNProError(PERMISSION_DENIED, "Permission denied: reseller must be your own id")
            row.customer, row.reseller = scope.owner_defaults()
        row.impersonate = _impersonate_target(c.session, scope, account.impersonate)
        c.session.add(row)
        try:
            c.session.flush()
        except IntegrityError:
            raise NGNProError(CUSTOMER_EXISTS, f"Customer username {username} already exists") from None
        if row.reseller_active and not row.reseller:
            row.reseller = row.id  # a top-level reseller owns itself: its scope includes it
        _set_properties(c.session, row, account.properties, scope, replace=True)
        c.session.flush()
        record_change(c.session, TOPIC_CUSTOMER, str(row.id))
        return to_wire(row)

    @rpc(CustomerAccount)
    def updateAccount(ctx, account):  # noqa: N805
        """Change an account (usually the object getAccount answered, edited)."""
        c = call_context(ctx)
        scope = c.scope
        if account is None or account.id is None:
            raise NGNProError(INVALID_VALUE, "Invalid value for account.id: the customer id is required")
        row = _load(c.session, scope, account.id)
        if account.username not in (None, "") and account.username != row.username:
            username = _check_username(account.username)
            if c.session.execute(select(Customer.id).where(Customer.username == username, Customer.id != row.id)).first():
                raise NGNProError(CUSTOMER_EXISTS, f"Customer username {username} already exists")
            row.username = username
        for name, col in (("balance", "balance"), ("credit", "credit")):
            value = getattr(account, name)
            if value is None or _number(name, value) == getattr(row, col):
                continue
            if not (scope.unscoped or (scope.reseller_active and row.id != scope.login_id)):
                raise NGNProError(PERMISSION_DENIED, f"Permission denied: {name} is set by the administrator or reseller")
        _apply_fields(row, account, _EDITABLE)
        for name, col in (("reseller", "reseller"), ("customer", "customer"), ("resellerActive", "reseller_active")):
            value = getattr(account, name)
            if value is None or (value == getattr(row, col)):
                continue
            if not scope.unscoped:
                raise NGNProError(PERMISSION_DENIED, f"Permission denied: {name} can only be changed by the administrator")
            setattr(row, col, bool(value) if name == "resellerActive" else max(int(value), 0))
        if account.impersonate is not None and account.impersonate != row.impersonate:
            if not scope.admin and row.id == scope.login_id:
                raise NGNProError(PERMISSION_DENIED, "Permission denied: a login cannot change its own impersonate")
            row.impersonate = _impersonate_target(c.session, scope, account.impersonate)
        if account.properties is not None:
            _set_properties(c.session, row, account.properties, scope, replace=True)
        c.session.flush()
        record_change(c.session, TOPIC_CUSTOMER, str(row.id))

    @rpc(Integer)
    def deleteAccount(ctx, id):  # noqa: N805, A002 - the wire name is "id"
        """Delete an account and its properties; a reseller with customers cannot go."""
        c = call_context(ctx)
        row = _load(c.session, c.scope, id)
        if row.id == c.scope.login_id and not c.scope.admin:
            raise NGNProError(PERMISSION_DENIED, "Permission denied: a login cannot delete itself")
        subs = _count_subs(c.session, row.id)
        if subs:
            raise NGNProError(INVALID_VALUE, f"Customer {row.id} still has {subs} customers; delete them first")
        c.session.delete(row)
        record_change(c.session, TOPIC_CUSTOMER, str(row.id))
        forget_entities(c.session, customer=row.id)

    @rpc(Integer, _returns=CustomerAccount)
    def getAccount(ctx, id):  # noqa: N805, A002
        c = call_context(ctx)
        return to_wire(_load(c.session, c.scope, id))

    @rpc(CustomerQuery, _returns=CustomerQueryResult)
    def getCustomers(ctx, query):  # noqa: N805
        return _query(ctx, query, resellers_only=False)

    @rpc(CustomerQuery, _returns=CustomerQueryResult)
    def getResellers(ctx, query):  # noqa: N805
        """Accounts with ``resellerActive``; with ``filter.customer`` set, that account whatever it is
        (the UI fetches its login account this way)."""
        return _query(ctx, query, resellers_only=True)

    @rpc(Integer, CustomerPropertyArray)
    def setProperties(ctx, customer, properties):  # noqa: N805
        """Add or change the listed properties; properties not listed are kept."""
        c = call_context(ctx)
        row = _load(c.session, c.scope, customer)
        _set_properties(c.session, row, properties, c.scope, replace=False)
        c.session.flush()
        record_change(c.session, TOPIC_CUSTOMER, str(row.id))

    @rpc(Integer, _returns=CustomerPropertyArray)
    def getProperties(ctx, customer):  # noqa: N805
        c = call_context(ctx)
        row = _load(c.session, c.scope, customer)
        return [_property(p) for p in row.properties]
