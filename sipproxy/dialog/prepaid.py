"""Prepaid calls in SQL: the tariff at call start, the deadline at answer, the debit at the end.

The guide's prepaid flow: a prepaid account may call the PSTN while its balance pays, and
the call is cut when the credit runs out.  Three moments, each one SQL transaction on the
shared database, so every worker and every proxy sharing it agrees:

* **call start** (:meth:`PrepaidCalls.rate`): the rate of the destination for the paying
  account (``ngnpro.models.rating``: its entity profiles, longest prefix); routing refuses
  the call when there is none, or when the balance does not cover its first increment;
* **answer** (:meth:`PrepaidCalls.answered`): the dialog row is written at once (not in the
  dialog store's next batch; it replaces the call's ``early`` row), with the account's row
  locked, and the deadline of every prepaid call of the account is worked out again
  (:func:`sipproxy.dialog.cutoff.time_left`: parallel calls share the balance);
* **end** (:meth:`PrepaidCalls.debit_in`, inside the dialog store's transaction that marks
  the dialog terminated): the price of the call (``ngnpro.models.tariff.call_price``) is
  taken from the balance, never below zero, with a credit-history line.  The row changes
  from ``confirmed`` to ``terminated`` in the same transaction, so a second BYE, the other
  party's BYE or another worker finds nothing left to debit: once per call, also when the
  proxy restarted during the call (the row and its tariff are in SQL).

The account's row is locked first (an ``UPDATE`` that changes nothing: a row lock on
MariaDB and PostgreSQL, the write lock on SQLite), so two calls answered or ended at the same
moment see each other's balance and deadlines.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, and_, insert, select, update

from ngnpro.models import CreditEntry, Dialog, SipAccount
from ngnpro.models.rating import load_rating
from ngnpro.models.tariff import Rate, call_price, entity_keys, first_increment_price, rate_for
from sipproxy.dialog.cutoff import NO_LIMIT, Charge, time_left

log = logging.getLogger("sipproxy.prepaid")

__all__ = ["PrepaidCalls", "Rated", "encode_tariff", "decode_tariff", "ACTION_CALL"]

#: the credit-history action of a call's debit
ACTION_CALL = "Call"

_D = Dialog.__table__
_A = SipAccount.__table__
_C = CreditEntry.__table__


class Rated(NamedTuple):
    """A payer's standing for one call: whether it is prepaid, its balance, the call's
    rating to keep with the dialog (None: no rate for the number) and what the first
    increment costs."""

    prepaid: bool
    balance: Decimal
    tariff: str | None
    first_increment: Decimal


def encode_tariff(rate: Rate, number: str) -> str:
    """What the dialog row keeps of a prepaid call's rating: the rate and the number."""
    data = {k: str(v) if isinstance(v, Decimal) else v for k, v in asdict(rate).items()}
    data["number"] = number
    return json.dumps(data, separators=(",", ":"))


def decode_tariff(text: str) -> tuple[Rate, str]:
    data = json.loads(text)
    number = data.pop("number", "")
    for key in ("price_per_minute", "connect_fee"):
        data[key] = Decimal(data[key])
    return Rate(**data), number


def _split(sip_id: str) -> tuple[str, str]:
    user, _, domain = sip_id.partition("@")
    return user, domain


def _seconds(start: _dt.datetime, end: _dt.datetime) -> int:
    """Whole seconds between answer and end, rounded like the accounting's session time."""
    return max(0, int((end - start).total_seconds() + 0.5))


class PrepaidCalls:
    """The prepaid account's side of a call (see the module docstring).  ``max_duration``:
    the longest call allowed at all (seconds, 0: no limit), the cap of every deadline."""

    def __init__(self, engine: Engine, *, max_duration: float = 0.0,
                 clock: Callable[[], _dt.datetime] | None = None) -> None:
        self.engine = engine
        self.max_duration = max_duration
        self._now = clock or (lambda: _dt.datetime.now(_dt.UTC).replace(tzinfo=None))

    # -- call start ---------------------------------------------------------------------

    def rate(self, payer: str, number: str) -> Rated | None:
        """What routing needs to admit a call of account ``payer`` (a SipId) to ``number``
        (E.164, the ``+`` optional) now, and what prices it: None when there is no such
        account.  Postpaid accounts are rated too (the accounting row's price, which the
        monthly quota adds up)."""
        user, domain = _split(payer)
        with self.engine.connect() as conn:
            row = conn.execute(select(_A.c.customer, _A.c.reseller, _A.c.timezone, _A.c.prepaid, _A.c.balance)
                               .where(_A.c.username == user, _A.c.domain == domain)).first()
            if row is None:
                return None
            keys = entity_keys(user, domain, row.customer or 0, row.reseller or 0)
            data = load_rating(conn, keys, number)
        rate = rate_for(data, keys, number, self._now(), row.timezone or "")
        balance, prepaid = Decimal(row.balance or 0), bool(row.prepaid)
        if rate is None:
            return Rated(prepaid, balance, None, Decimal(0))
        return Rated(prepaid, balance, encode_tariff(rate, number), first_increment_price(rate))

    # -- answer -------------------------------------------------------------------------

    def answered(self, row: dict[str, Any]) -> _dt.datetime | None:
        """Write the established prepaid call's dialog ``row`` (the dialog store's column
        values, ``tariff`` set) and work out the deadlines of the payer's prepaid calls;
        answers this call's deadline (None: the payer is not prepaid any more, or the call
        costs nothing per minute and has no other limit).  The row replaces the call's
        early row; it is written also when the payer's account is gone (the call is up:
        it counts and can be ended, just not cut off by a balance)."""
        now = self._now()
        payer = row["billing_party"]
        with self.engine.begin() as conn:
            locked = self._lock(conn, payer)
            conn.execute(_D.delete().where(_D.c.call_id == row["call_id"], _D.c.from_tag == row["from_tag"]))
            conn.execute(insert(_D), [{**row, "connect_time": now, "start_time": now}])
            if not locked:
                return None
            deadlines = self._reschedule(conn, payer, now)
        deadline = deadlines.get((row["call_id"], row["from_tag"]))
        log.info("prepaid call %s of %s answered: cut off at %s", row["call_id"], payer,
                 deadline.isoformat(timespec="seconds") if deadline else "no limit")
        return deadline

    def confirmed_in(self, conn: Connection, call_id: str, from_tag: str, payer: str) -> None:
        """In the caller's transaction: the prepaid call ``call_id`` / ``from_tag`` of
        ``payer`` was confirmed there (its early row, by a proxy restarted while it rang):
        answered now, and the deadlines of all the payer's prepaid calls worked out again,
        the payer's row locked first -- what :meth:`answered` does for a call it writes."""
        locked = self._lock(conn, payer)
        now = self._now()
        conn.execute(update(_D).where(_D.c.call_id == call_id, _D.c.from_tag == from_tag,
                                      _D.c.state == "confirmed").values(connect_time=now))
        if locked:
            self._reschedule(conn, payer, now)

    def _lock(self, conn: Connection, payer: str) -> bool:
        """Lock the payer's row for this transaction; False when there is no such account."""
        user, domain = _split(payer)
        touched = conn.execute(update(_A).where(_A.c.username == user, _A.c.domain == domain)
                               .values(balance=_A.c.balance))
        return touched.rowcount == 1

    def _balance(self, conn: Connection, payer: str) -> tuple[int, bool, Decimal] | None:
        user, domain = _split(payer)
        row = conn.execute(select(_A.c.id, _A.c.prepaid, _A.c.balance).where(
            _A.c.username == user, _A.c.domain == domain)).first()
        return (row.id, bool(row.prepaid), Decimal(row.balance or 0)) if row is not None else None

    def _reschedule(self, conn: Connection, payer: str, now: _dt.datetime) -> dict[tuple[str, str], _dt.datetime | None]:
        """Give every confirmed prepaid call of ``payer`` the same, new deadline: when their
        prices together reach the balance (capped by ``max_duration`` from each answer)."""
        account = self._balance(conn, payer)
        rows = conn.execute(select(_D.c.id, _D.c.call_id, _D.c.from_tag, _D.c.tariff, _D.c.connect_time).where(
            _D.c.billing_party == payer, _D.c.state == "confirmed", _D.c.tariff != "")).all()
        if not rows or account is None:
            return {}
        charges = []
        for r in rows:
            rate, _ = decode_tariff(r.tariff)
            charges.append(Charge(lambda s, rate=rate: call_price(rate, s),
                                  (now - (r.connect_time or now)).total_seconds()))
        left = time_left(account[2], charges) if account[1] else NO_LIMIT
        out: dict[tuple[str, str], _dt.datetime | None] = {}
        for r in rows:
            ends = [now + _dt.timedelta(seconds=left)] if left < NO_LIMIT else []
            if self.max_duration > 0:
                ends.append((r.connect_time or now) + _dt.timedelta(seconds=self.max_duration))
            deadline = min(ends) if ends else None
            conn.execute(update(_D).where(_D.c.id == r.id).values(deadline=deadline))
            out[(r.call_id, r.from_tag)] = deadline
        return out

    # -- end ------------------------------------------------------------------------------

    def debit_in(self, conn: Connection, call_id: str, tags: set[str], end: _dt.datetime | None = None) -> int:
        """In the caller's transaction: end the confirmed prepaid dialogs of ``call_id``
        matching ``tags`` (state ``terminated``, ``end_time``) and debit their payers.
        Answers how many calls were debited (``end``: when the call ended; now)."""
        end = end or self._now()
        rows = conn.execute(select(_D.c.id, _D.c.from_tag, _D.c.to_tag, _D.c.billing_party, _D.c.tariff,
                                   _D.c.connect_time).where(
            _D.c.call_id == call_id, _D.c.state == "confirmed", _D.c.tariff != "")).all()
        debited = 0
        for r in rows:
            if not tags & {r.from_tag, r.to_tag}:
                continue
            payer = r.billing_party
            self._lock(conn, payer)
            claimed = conn.execute(update(_D).where(and_(_D.c.id == r.id, _D.c.state == "confirmed"))
                                   .values(state="terminated", end_time=end, deadline=None)).rowcount
            if claimed != 1:
                continue  # another BYE or worker took it first
            rate, number = decode_tariff(r.tariff)
            seconds = _seconds(r.connect_time or end, end)
            self._debit(conn, payer, call_price(rate, seconds), call_id,
                        f"{number} {seconds} s" if number else f"{seconds} s", end)
            self._reschedule(conn, payer, end)
            debited += 1
        return debited

    def _debit(self, conn: Connection, payer: str, price: Decimal, call_id: str, what: str,
               when: _dt.datetime) -> None:
        account = self._balance(conn, payer)
        if account is None:
            log.warning("prepaid call %s: the account %s is gone; %s not debited", call_id, payer, price)
            return
        account_id, prepaid, balance = account
        if not prepaid:
            log.info("call %s: %s is not prepaid any more; %s not debited", call_id, payer, price)
            return
        taken = min(price, max(balance, Decimal(0)))
        new = balance - taken
        conn.execute(update(_A).where(_A.c.id == account_id).values(balance=new))
        conn.execute(insert(_C), [{"account_id": account_id, "date": when, "action": ACTION_CALL,
                                   "description": what[:255], "value": -taken, "balance": new,
                                   "session": call_id[:255]}])
        if taken < price:
            log.warning("prepaid call %s of %s cost %s but only %s was left", call_id, payer, price, taken)
        log.info("prepaid call %s of %s debited %s (%s): balance %s", call_id, payer, taken, what, new)
