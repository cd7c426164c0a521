"""Fault injection: the database goes away while phones register and calls are up.

Each server test starts a private PostgreSQL or MariaDB (``dbservers``), provisions it,
runs ``python -m sipproxy`` on it, registers phones and sets up a call; then stops the
server.  What the platform promises while the database is away:

* calls in progress continue: in-dialog requests are relayed, a BYE ends its call;
* a new REGISTER (first registration or refresh) and a new INVITE are answered
  ``503 Service Unavailable`` with ``Retry-After`` at once -- never 500, 404, 480, a 200
  that was not stored, nor silence;
* the proxy logs the outage once, not a traceback per request.

After the server is back: registrations and calls work again within seconds, and no binding
is lost (every phone registered before is still reachable).  SQLite held by another writer
(a connection in an exclusive transaction) behaves the same way.
"""

from __future__ import annotations

import sqlite3
import time

import pytest

from ngnpro.models import Dialog, Location
from tests.conftest import scratch_database
from tests.helpers import count_rows
from tests.sipproxy_e2e.sipp_support import ProxyProcess, provision

from .dbservers import MariaDBServer, PostgresServer
from .sipua import UA

PHONES = {f"phone{n}": f"pw-{n}" for n in range(10)}
USERS = {"alice": "secret-a", "bob": "secret-b", "carol": "secret-c", "dave": "secret-d", **PHONES}
RECOVERY = 10.0  # seconds within which everything must work again


def _bindings(url: str) -> int:
    return count_rows(url, Location)


def _refused(r, what: str, proxy) -> None:
    assert r is not None, f"{what}: no answer while the database is away\n{proxy.output()[-3000:]}"
    assert r.status == 503, f"{what}: {r.status} {r.reason} while the database is away"
    assert r.headers.get("retry-after", "").isdigit(), f"{what}: 503 without Retry-After"


class _Outage:
    """Registered phones and a call up, then ``down()`` / ``up()`` of the database."""

    def __init__(self, tmp, url: str, **proxy_keys) -> None:
        self.url = url
        provision(url, users=USERS)
        self.proxy = ProxyProcess(tmp, url, **proxy_keys)
        port = self.proxy.port
        self.alice, self.bob, self.carol, self.dave = (UA(u, USERS[u], port) for u in ("alice", "bob", "carol", "dave"))
        self.phones = [UA(u, pw, port) for u, pw in PHONES.items()]
        self.uas = [self.alice, self.bob, self.carol, self.dave, *self.phones]

    def before(self) -> None:
        for ua in [self.bob, self.carol, *self.phones]:
            r = ua.register()
            assert r is not None and r.status == 200, (ua.user, r and r.status)
        self.registered = _bindings(self.url)
        r, self.call = self.alice.call("bob")
        assert r is not None and r.status == 200
        r, self.call2 = self.carol.call("bob")
        assert r is not None and r.status == 200
        time.sleep(0.2)  # the dialog rows are written

    def while_down(self, reads: bool = False) -> None:
        """``reads``: the database still answers reads (SQLite locked by a writer, in WAL
        mode): a refresh then waits in memory for the write-back (200, as always) and a call
        is routed (200); a new registration, which must be written, still gets 503."""
        proxy = self.proxy

        def refused_or_ok(r, what):
            if reads and r is not None and r.status == 200:
                return
            _refused(r, what, proxy)
        t0 = time.monotonic()
        # calls in progress continue
        self.alice.in_dialog(self.call, "INFO")
        r = self.alice.wait_response(self.call.call_id, "INFO")
        assert r is not None and r.status == 200, r and r.status
        bye = self.carol.bye(self.call2)
        assert bye is not None and bye.status == 200, bye and bye.status
        # new registrations, refreshes and calls: 503 with Retry-After
        _refused(self.dave.register(), "a new REGISTER", proxy)
        refused_or_ok(self.phones[0].register(), "a REGISTER refresh")
        for callee in ("carol", "phone1"):
            r, d = self.alice.call(callee)
            refused_or_ok(r, f"a new INVITE to {callee}")
            if d is not None:
                assert self.alice.bye(d).status == 200
        for ua in self.phones[2:6]:  # the outage goes on: still 503, each answered at once
            time.sleep(0.4)
            t1 = time.monotonic()
            refused_or_ok(ua.register(), "a REGISTER refresh later in the outage")
            assert time.monotonic() - t1 < 2
        time.sleep(1.0)
        _refused(self.dave.register(), "a new REGISTER later in the outage", proxy)
        assert time.monotonic() - t0 < 15  # nothing waited for the database

    def after(self) -> float:
        """Seconds until a REGISTER and a call work again; then every binding is checked."""
        t0 = time.monotonic()
        while True:
            r = self.dave.register(timeout=2)
            if r is not None and r.status == 200:
                break
            assert time.monotonic() - t0 < RECOVERY, f"REGISTER still {r and r.status} after {RECOVERY}s"
            time.sleep(0.2)
        while True:
            r, d = self.alice.call("carol", timeout=2)
            if r is not None and r.status == 200:
                assert self.alice.bye(d).status == 200
                break
            assert time.monotonic() - t0 < RECOVERY, f"INVITE still {r and r.status} after {RECOVERY}s"
            time.sleep(0.2)
        took = time.monotonic() - t0
        # the BYE relayed during the outage removed its call's row once the database was back
        while count_rows(self.url, Dialog, call_id=self.call2.call_id) and time.monotonic() - t0 < RECOVERY:
            time.sleep(0.1)
        assert count_rows(self.url, Dialog, call_id=self.call2.call_id) == 0
        assert count_rows(self.url, Dialog, call_id=self.call.call_id) == 1
        # the call set up before the outage still ends normally
        bye = self.alice.bye(self.call)
        assert bye is not None and bye.status == 200
        # no binding lost: every phone is reachable, and refreshes are accepted
        assert _bindings(self.url) == self.registered + 1  # and dave's new one
        for ua in self.phones:
            r, d = self.alice.call(ua.user)
            assert r is not None and r.status == 200, (ua.user, r and r.status)
            assert self.alice.bye(d).status == 200
            assert ua.register().status == 200
        out = self.proxy.output()
        assert "Traceback" not in out, out[-4000:]
        return took

    def close(self) -> None:
        for ua in self.uas:
            ua.close()
        self.proxy.stop()


@pytest.mark.parametrize("server", [PostgresServer, MariaDBServer], ids=["postgresql", "mariadb"])
def test_database_restart(server, tmp_path):
    db = server()
    scratch = scratch_database(db.url)
    url = scratch.__enter__()
    outage = None
    try:
        outage = _Outage(tmp_path, url)
        outage.before()
        db.stop()
        outage.while_down()
        db.start()
        took = outage.after()
        print(f"{server.__name__}: working again {took:.1f}s after the restart")
        log = outage.proxy.output()
        assert log.count("sipproxy.database WARNING database unavailable") == 1, log[-4000:]  # once per outage
        assert log.count("sipproxy.database WARNING database answering again") == 1
    finally:
        if outage is not None:
            outage.close()
        db.close()


def test_sqlite_locked_by_another_writer(tmp_path):
    path = tmp_path / "msp.sqlite"
    url = f"sqlite:///{path}"
    outage = _Outage(tmp_path, url)
    try:
        outage.before()
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            outage.while_down(reads=True)
        finally:
            other.execute("ROLLBACK")
            other.close()
        outage.after()
    finally:
        outage.close()
