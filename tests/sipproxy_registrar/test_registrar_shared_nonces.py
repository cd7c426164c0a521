"""The nonce-counts the workers share (sipproxy.auth.nonces): any worker accepts a nonce
another issued, no worker accepts a count already used anywhere, bounded memory never
reopens a replay, and a worker killed while holding the table's lock does not block the
others."""

from __future__ import annotations

import os
import signal
import time

from sipproxy.auth.nonces import WAYS, SharedNonceCounts
from sipproxy.sip import digest
from sipproxy.sip.digest import DigestAuth, NonceCounts

from .support import Clock
from .test_registrar_digest import REALM, _authorization, _challenge_nonce, _lookup


def test_windows_as_the_one_process_table():
    clock = Clock()
    for table in (SharedNonceCounts(sets=64, clock=clock), NonceCounts(clock=clock)):
        issued = int(clock.t)
        assert table.consume("n1", issued, 1)
        assert not table.consume("n1", issued, 1)  # a replay
        assert table.consume("n1", issued, 5) and table.consume("n1", issued, 3)  # out of order, once each
        assert not table.consume("n1", issued, 3)
        assert table.consume("n1", issued, 70)
        assert not table.consume("n1", issued, 6)  # 64 below the top: out of the window
        assert not table.consume("n2", issued, 0)
        assert len(table) == 1


def test_a_nonce_of_another_worker_is_accepted_once():
    shared = SharedNonceCounts(sets=64)
    a = DigestAuth(b"shared", issuer="1", counts=shared)
    b = DigestAuth(b"shared", issuer="2", counts=shared)
    _, nonce = _challenge_nonce(a)
    assert a.verify([_authorization(nonce)], method="REGISTER", realm=REALM, lookup=_lookup).ok
    again = b.verify([_authorization(nonce)], method="REGISTER", realm=REALM, lookup=_lookup)
    assert again.status == digest.STALE and again.reason == "nonce-count replayed"
    assert b.verify([_authorization(nonce, nc=2)], method="REGISTER", realm=REALM, lookup=_lookup).ok
    assert a.verify([_authorization(nonce, nc=3)], method="REGISTER", realm=REALM, lookup=_lookup).ok
    assert a.tracked_nonces == b.tracked_nonces == 1


def test_a_full_set_evicts_its_oldest_and_never_reopens_it():
    clock = Clock()
    table = SharedNonceCounts(sets=1, clock=clock)  # one set: WAYS nonces at most
    nonces = [f"nonce-{i}" for i in range(WAYS + 1)]
    for i, nonce in enumerate(nonces):
        assert table.consume(nonce, int(clock.t) + i, 1)
    assert len(table) == WAYS
    assert not table.consume(nonces[0], int(clock.t), 2)  # evicted: refused, whatever its count
    assert table.consume(nonces[-1], int(clock.t) + WAYS, 2)
    assert not table.consume("issued-before-the-floor", int(clock.t), 1)
    clock.t += 400  # all expired: their slots are free again, the floor does not move
    assert table.consume("late", int(clock.t), 1)


def test_the_workers_see_one_table():
    table = SharedNonceCounts(sets=64)
    issued = int(time.time())
    pid = os.fork()
    if pid == 0:  # a worker: uses counts 1 and 2
        os._exit(0 if table.consume("n", issued, 1) and table.consume("n", issued, 2) else 1)
    assert os.waitpid(pid, 0)[1] == 0
    assert not table.consume("n", issued, 1) and not table.consume("n", issued, 2)
    assert table.consume("n", issued, 3)


def test_a_worker_killed_holding_the_lock_does_not_block_the_others():
    import fcntl

    table = SharedNonceCounts(sets=64)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        fcntl.lockf(table._fd, fcntl.LOCK_EX)
        os.write(write, b"x")
        time.sleep(30)
        os._exit(0)
    os.read(read, 1)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    started = time.monotonic()
    assert table.consume("n", int(time.time()), 1)
    assert time.monotonic() - started < 1.0
    os.close(read)
    os.close(write)
