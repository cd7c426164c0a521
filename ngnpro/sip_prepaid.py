"""SipPort prepaid: balance top-ups, vouchers, prepaid status and the credit history.

A balance change and its credit-history line are written in the same transaction, with
the account row locked (``SELECT ... FOR UPDATE`` on servers; SQLite serialises writers),
so two concurrent top-ups never lose one another.  A voucher is claimed by a conditional
UPDATE, so it can be spent once even when two calls race for it.
"""

from __future__ import annotations

from decimal import Decimal

from spyne import Array, Double, Integer, Unicode, rpc
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ngnpro import sip_types as t
from ngnpro.models import sip as m
from ngnpro.sip_accounts import find_account, touch
from ngnpro.soap import NS_SIP, PortService, call_context
from ngnpro.soap.context import Scope
from ngnpro.soap.faults import INVALID_VOUCHER, NO_DATA, NGNProError

#: credit-history actions
ACTION_BALANCE = "Add balance"
ACTION_VOUCHER = "Prepaid card"
DEFAULT_HISTORY = 200
MAX_HISTORY = 5000
_CENT = Decimal("0.0001")


def credit(session: Session, account: m.SipAccount, amount: Decimal, action: str, description: str) -> t.BalanceChange:
    """Move ``account``'s balance by ``amount`` and log it in its credit history."""
    old = Decimal(account.balance or 0)
    new = (old + amount).quantize(_CENT)
    if abs(new) >= Decimal("1e9"):
        raise t.invalid("value", "the balance would be out of range")
    account.balance = new
    session.add(m.CreditEntry(
        account_id=account.id, date=m.utcnow(), action=action, description=description,
        value=amount, balance=new,
    ))
    touch(session, account)
    return t.BalanceChange(old_balance=float(old), new_balance=float(new))


def add_balance(
    session: Session, scope: Scope, sip_id: t.SipId | None, value: float | None, description: str | None
) -> t.BalanceChange:
    amount = Decimal(repr(t.money(value, "value"))).quantize(_CENT)
    text = t.text(description, "description", 255)
    account = find_account(session, scope, sip_id, for_update=True)
    return credit(session, account, amount, ACTION_BALANCE, text)


def add_balance_from_voucher(
    session: Session, scope: Scope, sip_id: t.SipId | None, card: t.PrepaidCard | None
) -> t.BalanceChange:
    """Spend voucher ``card`` (matched by number, and by id when one is given) on the account.

    Unknown cards, and cards of another reseller, are "not found" (2000); a used or empty
    card is an invalid voucher (2001)."""
    if card is None:
        raise t.invalid("card", "missing")
    number = t.text(card.number, "card.number", 64).strip()
    if not number:
        raise t.invalid("card.number", "missing")
    card_id = t.integer(card.id, "card.id")
    account = find_account(session, scope, sip_id, for_update=True)
    stmt = select(m.PrepaidCard).where(m.PrepaidCard.number == number)
    if card_id:
        stmt = stmt.where(m.PrepaidCard.id == card_id)
    row = session.execute(stmt).scalar_one_or_none()
    if row is None or (row.reseller and row.reseller != account.reseller):
        raise NGNProError(NO_DATA, f"Prepaid card {number} does not exist")
    if row.used_by:
        raise NGNProError(INVALID_VOUCHER, f"Prepaid card {number} was already used")
    if not row.value or row.value <= 0:
        raise NGNProError(INVALID_VOUCHER, f"Prepaid card {number} has no credit")
    claimed = session.execute(
        update(m.PrepaidCard)
        .where(m.PrepaidCard.id == row.id, m.PrepaidCard.used_by == "")
        .values(used_by=account.aor, used_date=m.utcnow())
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        raise NGNProError(INVALID_VOUCHER, f"Prepaid card {number} was already used")
    return credit(session, account, Decimal(row.value), ACTION_VOUCHER, f"Prepaid card {number}")


def get_prepaid_status(session: Session, scope: Scope, sip_ids: list[t.SipId] | None) -> list[t.PrepaidStatus]:
    """One item per requested account, in request order."""
    out = []
    for i, sip_id in enumerate(sip_ids or []):
        if sip_id is None:
            raise t.invalid(f"sipIds[{i}]", "missing")
        account = find_account(session, scope, sip_id)
        out.append(t.PrepaidStatus(
            id=t.SipId(username=account.username, domain=account.domain),
            balance=float(account.balance or 0), prepaid=int(bool(account.prepaid)),
        ))
    return out


def get_credit_history(session: Session, scope: Scope, sip_id: t.SipId | None, count: int | None) -> t.CreditHistory:
    """The newest ``count`` (default 200) balance movements, newest first."""
    limit = t.integer(count, "count", 0, MAX_HISTORY) or DEFAULT_HISTORY
    account = find_account(session, scope, sip_id)
    rows = session.execute(
        select(m.CreditEntry).where(m.CreditEntry.account_id == account.id)
        .order_by(m.CreditEntry.date.desc(), m.CreditEntry.id.desc()).limit(limit)
    ).scalars().all()
    return t.CreditHistory(entries=[
        t.CreditEntry(
            date=t.fmt_date(r.date), action=r.action, description=r.description,
            value=float(r.value), balance=float(r.balance), session=r.session,
        )
        for r in rows
    ])


# --- the SipPort methods --------------------------------------------------------------------


class SipPrepaidPort(PortService):
    """SipPort: balance, vouchers, prepaid status and credit history."""

    __port_namespace__ = NS_SIP

    @rpc(t.SipId, Double, Unicode, _returns=t.BalanceChange)
    def addBalance(ctx, sipId, value, description):  # noqa: N802, N803, N805 - wire names
        c = call_context(ctx)
        return add_balance(c.session, c.scope, sipId, value, description)

    @rpc(t.SipId, t.PrepaidCard, _returns=t.BalanceChange)
    def addBalanceFromVoucher(ctx, sipId, card):  # noqa: N802, N803, N805
        c = call_context(ctx)
        return add_balance_from_voucher(c.session, c.scope, sipId, card)

    @rpc(t.SipIdArray, _returns=Array(t.PrepaidStatus))
    def getPrepaidStatus(ctx, sipIds):  # noqa: N802, N803, N805
        c = call_context(ctx)
        return get_prepaid_status(c.session, c.scope, sipIds)

    @rpc(t.SipId, Integer, _returns=t.CreditHistory)
    def getCreditHistory(ctx, sipId, count):  # noqa: N802, N803, N805
        c = call_context(ctx)
        return get_credit_history(c.session, c.scope, sipId, count)
