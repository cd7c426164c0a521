"""The ``auth`` header (API.md 1.5): who is calling, turned into a :class:`Scope`.

Variants: engine admin (``admin=true``) unscoped or with ``impersonate=N``; a customer or
reseller logging in with its own CustomerAccount credentials (``admin=false``).  Wrong
credentials are fault 9001 before the method runs, so nothing is changed.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ngnpro.models.config import Config
from ngnpro.models.customer import Customer, CustomerProperty

from .context import Scope
from .faults import AUTH_FAILED, NGNProError


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def scope_for_customer(session: Session, customer: Customer, admin: bool) -> Scope:
    """The scope of ``customer``: a reseller sees its sub-customers' records too."""
    props = dict(
        session.execute(
            select(CustomerProperty.name, CustomerProperty.value).where(CustomerProperty.customer_id == customer.id)
        ).all()
    )
    if customer.reseller_active:
        subs = session.execute(select(Customer.id).where(Customer.reseller == customer.id)).scalars()
        return Scope(
            admin=admin, reseller_id=customer.id, visible_ids=frozenset({customer.id, *subs}),
            login_id=customer.id, reseller_active=True, properties=props,
        )
    return Scope(
        admin=admin, customer_id=customer.id, visible_ids=frozenset({customer.id}),
        login_id=customer.id, parent_reseller=customer.reseller or 0, properties=props,
    )


def authenticate(session_of: Callable[[], Session], config: Config, auth: dict[str, Any] | None) -> Scope:
    """Check the ``auth`` header against the engine admin and the CustomerAccounts;
    ``session_of()`` gives the call's Session, asked for only when a look-up is needed
    (the unscoped admin needs none)."""
    if not auth:
        raise NGNProError(AUTH_FAILED, "Authentication failed: missing auth header")
    username = auth.get("username") or ""
    password = auth.get("password") or ""
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        raise NGNProError(AUTH_FAILED, "Authentication failed: username and password required")
    if _truthy(auth.get("admin")):
        section = config["ngnpro"]
        ok_user = _same(username, section["admin_username"])
        ok_pass = _same(password, section["admin_password"])
        if not (ok_user and ok_pass):
            raise NGNProError(AUTH_FAILED, "Authentication failed: wrong engine credentials")
        try:
            impersonate = int(auth.get("impersonate") or 0)
        except (TypeError, ValueError):
            raise NGNProError(AUTH_FAILED, "Authentication failed: impersonate must be a customer id") from None
        if not impersonate:
            return Scope(admin=True)
        session = session_of()
        target = session.get(Customer, impersonate)
        if target is None:
            raise NGNProError(AUTH_FAILED, f"Authentication failed: impersonated customer {impersonate} does not exist")
        return scope_for_customer(session, target, admin=True)
    session = session_of()
    customer = session.execute(select(Customer).where(Customer.username == username)).scalar_one_or_none()
    # compare anyway so a wrong username costs the same as a wrong password
    ok = _same(password, customer.password if customer is not None else "\0invalid")
    if customer is None or not ok or not customer.password:
        raise NGNProError(AUTH_FAILED, "Authentication failed: wrong username or password")
    return scope_for_customer(session, customer, admin=False)
