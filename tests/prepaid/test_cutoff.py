"""How long prepaid calls sharing a balance may last (sipproxy.dialog.cutoff), sans-I/O."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from ngnpro.models.tariff import Rate, call_price, max_duration
from sipproxy.dialog.cutoff import NO_LIMIT, Charge, time_left

CENT_A_SECOND = Rate(prefix="31", price_per_minute=Decimal("0.60"), increment=1)
PER_MINUTE = Rate(prefix="31", price_per_minute=Decimal("1.20"), connect_fee=Decimal("0.10"), increment=60)


def _charge(rate: Rate, elapsed: float = 0.0) -> Charge:
    return Charge(lambda s: call_price(rate, s), elapsed)


def test_one_call_lasts_what_the_balance_pays():
    assert time_left(Decimal("0.05"), [_charge(CENT_A_SECOND)]) == 5
    # the connect fee once, then 1.20 a started minute: one minute 1.30, two 2.50
    assert time_left(Decimal("2.50"), [_charge(PER_MINUTE)]) == 120
    assert time_left(Decimal("2.49"), [_charge(PER_MINUTE)]) == 60
    assert time_left(Decimal("1.29"), [_charge(PER_MINUTE)]) == 0
    for balance in ("1.30", "2.49", "2.50", "7.77"):
        assert time_left(Decimal(balance), [_charge(PER_MINUTE)]) == max_duration(PER_MINUTE, Decimal(balance))


def test_parallel_calls_share_the_balance():
    # 0.10 at a cent a second: one call 10 s; two calls from now 5 s each
    assert time_left(Decimal("0.10"), [_charge(CENT_A_SECOND)]) == 10
    assert time_left(Decimal("0.10"), [_charge(CENT_A_SECOND), _charge(CENT_A_SECOND)]) == 5
    # the first call has run 4 s (0.04): 0.06 left for two calls, 3 s each
    assert time_left(Decimal("0.10"), [_charge(CENT_A_SECOND, 4.0), _charge(CENT_A_SECOND)]) == 3


def test_nothing_left_and_no_limit():
    assert time_left(Decimal(0), [_charge(CENT_A_SECOND)]) == 0
    assert time_left(Decimal("0.03"), [_charge(CENT_A_SECOND, 3.0)]) == 0
    free = Rate(prefix="", price_per_minute=Decimal(0))
    assert time_left(Decimal("1"), [_charge(free)]) == NO_LIMIT


rates = st.builds(
    Rate, prefix=st.just("31"),
    price_per_minute=st.decimals("0.0001", "5", places=4),
    connect_fee=st.decimals("0", "1", places=4),
    increment=st.sampled_from([1, 6, 30, 60]),
    min_duration=st.sampled_from([0, 30, 60]),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(rates, st.integers(0, 600)), min_size=1, max_size=3),
       st.decimals("0", "50", places=4))
def test_time_left_is_the_longest_the_balance_pays(calls, balance):
    charges = [_charge(rate, elapsed) for rate, elapsed in calls]
    left = time_left(balance, charges)

    def total(more: int) -> Decimal:
        return sum((call_price(rate, elapsed + more) for rate, elapsed in calls), Decimal(0))

    if left == 0:
        assert balance <= 0 or total(0) > balance or total(1) > balance
    else:
        assert total(left) <= balance
        if left < NO_LIMIT:
            assert total(left + 1) > balance
