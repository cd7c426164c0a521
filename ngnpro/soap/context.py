"""What a port method sees of the call: its database transaction, who is calling, the config.

``c = call_context(ctx)`` inside an ``@rpc`` method of a :class:`~ngnpro.soap.service.PortService`
gives ``c.session`` (an ORM Session in the call's one transaction: the framework commits after
the method returns and rolls back when it raises -- methods never commit), ``c.connection``
(the same transaction for Core statements), ``c.scope`` and ``c.config``.

:class:`Scope` is the caller's visibility (API.md 1.5 and 5.3):

* engine admin without ``impersonate``: everything (``customer_id``/``reseller_id`` None);
* engine admin with ``impersonate=N``, or customer ``N`` logged in with its own credentials:
  a reseller (``resellerActive``) sees records whose ``reseller`` is N; a plain customer
  sees records whose ``customer`` is N.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_
from sqlalchemy.orm import Session

from ngnpro.models.config import Config
from ngnpro.models.customer import Customer

from .faults import PERMISSION_DENIED, NGNProError

__all__ = ["Scope", "CallContext", "call_context", "RequestState"]


@dataclass(frozen=True)
class Scope:
    """Who the caller is and which records it may see and change."""

    #: engine admin credentials were given (scoped only when impersonating)
    admin: bool = False
    #: records must have ``customer == customer_id`` (a plain customer's view); None = any
    customer_id: int | None = None
    #: records must have ``reseller == reseller_id`` (a reseller's view); None = any
    reseller_id: int | None = None
    #: customer ids this login may see; None = all
    visible_ids: frozenset[int] | None = None
    #: the CustomerAccount id the call acts as (login or impersonated), 0 for the bare admin
    login_id: int = 0
    #: that account has ``resellerActive``
    reseller_active: bool = False
    #: the reseller of a plain customer login (its new records get it); 0 = none
    parent_reseller: int = 0
    #: the login's CustomerProperty values (name -> value), for flags such as ``pstn_access``
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def unscoped(self) -> bool:
        return self.customer_id is None and self.reseller_id is None

    def apply(self, stmt: Any, model: Any) -> Any:
        """Add the WHERE clauses that keep ``stmt`` on ``model`` inside this scope."""
        if self.unscoped:
            return stmt
        if model is Customer:
            if self.reseller_id is not None:
                return stmt.where(or_(Customer.id == self.reseller_id, Customer.reseller == self.reseller_id))
            return stmt.where(Customer.id == self.customer_id)
        if self.reseller_id is not None and hasattr(model, "reseller"):
            stmt = stmt.where(model.reseller == self.reseller_id)
        if self.customer_id is not None and hasattr(model, "customer"):
            stmt = stmt.where(model.customer == self.customer_id)
        return stmt

    def allows(self, record: Any) -> bool:
        if self.unscoped:
            return True
        if isinstance(record, Customer):
            return self.visible_ids is None or record.id in self.visible_ids
        if self.reseller_id is not None and getattr(record, "reseller", self.reseller_id) != self.reseller_id:
            return False
        if self.customer_id is not None and getattr(record, "customer", self.customer_id) != self.customer_id:
            return False
        return True

    def check(self, record: Any) -> None:
        """Raise 9002 when ``record`` lies outside this scope."""
        if not self.allows(record):
            raise NGNProError(PERMISSION_DENIED, "Permission denied: the record belongs to another customer")

    def owner_defaults(self) -> tuple[int, int]:
        """``(customer, reseller)`` for a new record created by this caller (0 = unset)."""
        if self.reseller_id is not None:
            return (self.customer_id or self.reseller_id, self.reseller_id)
        if self.customer_id is not None:
            return (self.customer_id, self.parent_reseller or self.customer_id)
        return (0, 0)

    def require_reseller_or_admin(self) -> None:
        """PSTN objects (peers, carriers, gateways, rules, routes): admins and resellers only."""
        if self.unscoped or self.reseller_active:
            return
        raise NGNProError(PERMISSION_DENIED, "Permission denied: only administrators and resellers may do this")

    def require_admin(self) -> None:
        if not (self.admin and self.unscoped):
            raise NGNProError(PERMISSION_DENIED, "Permission denied: only the engine administrator may do this")


class CallContext:
    """One call's transaction, caller and config.

    ``connection`` is the call's transaction (begun by the framework, committed after the
    method returns, rolled back when it faults).  ``session`` is an ORM Session joined to
    that same transaction, made on first use: hot methods that work with Core statements
    on ``connection`` alone do not pay for a Session they never use."""

    __slots__ = ("connection", "scope", "config", "_session", "_write_lock")

    def __init__(self, connection: Any, scope: Scope | None, config: Config, write_lock: Any = None) -> None:
        self.connection = connection
        self.scope: Scope = scope  # type: ignore[assignment] - set by the framework before the method runs
        self.config = config
        self._session: Session | None = None
        self._write_lock = write_lock

    def writing(self) -> None:
        """Call just before the call's first write statement on a hot write path: on SQLite
        it waits for the other workers' writes (see :mod:`ngnpro.soap.writelock`); the
        framework lets go after the commit."""
        if self._write_lock is not None:
            self._write_lock.acquire()

    @property
    def session(self) -> Session:
        if self._session is None:
            # joined to the call's transaction: the Session flushes into it but never
            # commits it ("rollback_only": its rollback does roll the call back)
            self._session = Session(bind=self.connection, expire_on_commit=False,
                                    join_transaction_mode="rollback_only")
        return self._session

    @property
    def session_open(self) -> bool:
        return self._session is not None


@dataclass
class RequestState:
    """Per-request data the framework keeps on spyne's ``ctx.udc``."""

    runtime: Any
    auth: dict[str, Any] | None = None
    call: CallContext | None = None


def call_context(ctx: Any) -> CallContext:
    """The :class:`CallContext` of the running call (``ctx`` is spyne's MethodContext)."""
    state = getattr(ctx, "udc", None)
    if not isinstance(state, RequestState) or state.call is None:
        raise RuntimeError("call_context() used outside a PortService method")
    return state.call
