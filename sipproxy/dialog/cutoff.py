"""When an established call must end: the prepaid balance and the longest call allowed, sans-I/O.

A prepaid account pays for its calls from one balance (the guide's "prepaid" flow: the
call is cut when the credit runs out).  At answer the proxy works out how long the call may
last; when the account has other prepaid calls going, they all draw on the same balance, so
the time left is the same for all of them: the longest ``T`` for which

    sum over the account's calls of price_i(elapsed_i + T)  <=  balance

(``price_i`` the call's tariff, ``elapsed_i`` how long it has been up).  A call answered, or
one that ends, changes the sum, so the deadlines of the others are worked out again then: a
second call shortens the first one's, a call that ends lengthens the others'.  Tariffs are
step functions (a connect fee, then a price per started increment), so ``T`` is found by
bisection over whole seconds.

The balance is debited once per call, at its end (:mod:`sipproxy.dialog.prepaid`): what
this module decides is only *when* the proxy ends the call itself, with BYE both ways.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import NamedTuple

__all__ = ["Charge", "NO_LIMIT", "time_left"]

#: the longest any call may be given, seconds (a day): the search's upper end
NO_LIMIT = 86_400


class Charge(NamedTuple):
    """One call drawing on a balance: its price for a duration in whole seconds, and how
    long it has been up (seconds; 0 for the call being answered)."""

    price: Callable[[int], Decimal]
    elapsed: float


def _total(calls: Sequence[Charge], more: int) -> Decimal:
    return sum((c.price(int(c.elapsed) + more) for c in calls), Decimal(0))


def time_left(balance: Decimal, calls: Sequence[Charge], cap: int = NO_LIMIT) -> int:
    """Whole seconds the ``calls`` may all go on before their price together passes
    ``balance`` (0: already at or past it), at most ``cap``."""
    if not calls or balance <= 0:
        return 0
    if _total(calls, cap) <= balance:
        return cap
    if _total(calls, 0) > balance:
        return 0
    low, high = 0, cap  # price(low) <= balance < price(high)
    while high - low > 1:
        mid = (low + high) // 2
        if _total(calls, mid) <= balance:
            low = mid
        else:
            high = mid
    return low
