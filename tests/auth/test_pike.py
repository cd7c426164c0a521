"""PIKE flood detection (sipproxy.auth.pike): the sliding window counter and the block."""

from __future__ import annotations

import pytest

from ngnpro.models.config import ConfigError, validate
from sipproxy.auth.pike import BLOCK, DROP, PASS, Pike
from sipproxy.auth.pikeshare import PikeTable, SharedPike


def _shared(*args, **kw) -> SharedPike:  # noqa: ANN002, ANN003
    return SharedPike(*args, table=PikeTable(1, 4096), worker=0, **kw)


#: one process's PIKE, and the workers' shared one run by a single worker: the same decisions
each_pike = pytest.mark.parametrize("make", [Pike, _shared], ids=["one-process", "shared"])


@each_pike
def test_a_source_over_the_rate_is_blocked_once_then_dropped_until_the_block_ends(make):
    pike = make(5, 1.0, 10.0)
    assert [pike.check("192.0.2.1", 0.1 * i) for i in range(5)] == [PASS] * 5
    assert pike.check("192.0.2.1", 0.5) == BLOCK  # the 6th within a second
    assert pike.check("192.0.2.1", 0.6) == DROP
    assert pike.check("192.0.2.2", 0.6) == PASS  # another source is not affected
    assert pike.check("192.0.2.1", 9.0) == DROP
    assert pike.check("192.0.2.1", 10.6) == PASS  # the block is over
    assert pike.drops == 3


@each_pike
def test_a_steady_rate_under_the_limit_passes(make):
    pike = make(10, 1.0, 60.0)
    # 8 requests a second for a minute: the sliding estimate never goes over 10
    assert all(pike.check("192.0.2.1", i / 8) == PASS for i in range(8 * 60))


@each_pike
def test_the_window_slides_over_the_previous_one(make):
    pike = make(10, 1.0, 60.0)
    for i in range(10):
        assert pike.check("192.0.2.1", 0.9 + i * 0.001) == PASS  # 10 at the end of window 1
    # early in window 2 most of window 1 still counts: the 11th is one too many
    assert pike.check("192.0.2.1", 1.1) == BLOCK


@each_pike
def test_exempt_addresses_networks_and_trusted_peers_are_never_counted(make):
    pike = make(1, 1.0, 60.0, exempt=["192.0.2.9", "198.51.100.0/24"], trusted=lambda ip: ip == "203.0.113.5")
    for ip in ("192.0.2.9", "198.51.100.77", "203.0.113.5"):
        assert all(pike.check(ip, 0.01 * i) == PASS for i in range(50))
    assert pike.check("192.0.2.1", 0.0) == PASS and pike.check("192.0.2.1", 0.01) == BLOCK


def test_idle_sources_are_forgotten_and_memory_is_bounded():
    pike = Pike(100, 1.0, 5.0, capacity=1000)
    for i in range(500):
        pike.check(f"10.0.{i // 256}.{i % 256}", 0.0)
    assert pike.tracked() == 500
    pike.check("192.0.2.1", 5.0)  # a sweep: the others were idle for two windows
    assert pike.tracked() == 1
    for i in range(3000):
        pike.check(f"10.1.{i // 256}.{i % 256}", 6.0)
    assert pike.tracked() <= 1000


def test_the_pike_settings_are_checked():
    section = validate({"sipproxy": {"pike_requests": 30, "pike_exempt": ["192.0.2.1", "2001:db8::/32"]}})["sipproxy"]
    assert section["pike_requests"] == 30 and section["pike_window"] == 2.0 and section["pike_block"] == 120.0
    with pytest.raises(ConfigError, match="sipproxy.pike_exempt\\[0\\]"):
        validate({"sipproxy": {"pike_exempt": ["not-an-address"]}})
    with pytest.raises(ConfigError, match="sipproxy.pike_requests"):
        validate({"sipproxy": {"pike_requests": -1}})
    assert Pike(30, 2.0, 120.0, exempt=section["pike_exempt"]).exempt("2001:db8::5")


def test_the_workers_requests_add_up_and_a_block_stops_every_worker():
    """A source whose sockets the kernel spread over two workers: five requests each is
    ten, over a limit of eight, though neither worker alone saw more than five."""
    table = PikeTable(2, 4096)
    w0 = SharedPike(8, 1.0, 10.0, table=table, worker=0)
    w1 = SharedPike(8, 1.0, 10.0, table=table, worker=1)
    verdicts = []
    for i in range(5):
        verdicts += [w0.check("192.0.2.1", 0.1 * i), w1.check("192.0.2.1", 0.1 * i + 0.05)]
    assert verdicts[:8] == [PASS] * 8 and verdicts[8] == BLOCK
    assert w1.check("192.0.2.1", 0.6) == DROP and w0.check("192.0.2.1", 5.0) == DROP
    assert w0.check("192.0.2.2", 0.6) == PASS  # another source is not affected
    assert w1.check("192.0.2.1", 10.5) == PASS  # the block is over for both


def test_a_shared_slot_never_blocks_another_address():
    """One bucket: two addresses take turns in the slot and each count restarts; neither
    is blocked by the other's requests."""
    table = PikeTable(1, 1)
    pike = SharedPike(3, 1.0, 10.0, table=table, worker=0)
    for i in range(20):
        assert pike.check("192.0.2.1" if i % 2 else "192.0.2.2", 0.01 * i) == PASS
    assert pike.tracked() == 1


def test_the_table_is_shared_with_forked_workers():
    import os

    table = PikeTable(2, 4096)
    pid = os.fork()
    if pid == 0:  # worker 1 sends five requests from the address
        pike = SharedPike(8, 1.0, 10.0, table=table, worker=1)
        os._exit(0 if all(pike.check("192.0.2.7", 100.0 + 0.01 * i) == PASS for i in range(5)) else 1)
    assert os.waitpid(pid, 0)[1] == 0
    pike = SharedPike(8, 1.0, 10.0, table=table, worker=0)
    assert [pike.check("192.0.2.7", 100.1 + 0.01 * i) for i in range(4)] == [PASS, PASS, PASS, BLOCK]
