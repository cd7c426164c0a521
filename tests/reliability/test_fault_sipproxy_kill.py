"""Fault injection: sipproxy is killed with SIGKILL and started again.

What the platform promises: registrations are kept (they are in the ``location`` table,
committed before each 200 OK; a refresh still waiting for the write-back keeps the binding's
earlier expiry), and the in-dialog requests of calls set up before the kill are still
routed -- the phones send them along the Record-Route set, which names the proxy's address,
not a process, and the restarted proxy relays them statelessly from the Route headers.  The
dialog rows written before the kill are found and deleted by the BYEs.
"""

from __future__ import annotations

import time

from ngnpro.models import Dialog, Location
from tests.helpers import count_rows
from tests.sipproxy_e2e.sipp_support import ProxyProcess, provision

from .sipua import UA

PHONES = {f"phone{n}": f"pw-{n}" for n in range(20)}
USERS = {"alice": "secret-a", "bob": "secret-b", "carol": "secret-c", **PHONES}


def test_sigkill_keeps_registrations_and_routes_calls_set_up_before(tmp_path):
    url = f"sqlite:///{tmp_path / 'msp.sqlite'}"
    provision(url, users=USERS)
    proxy = ProxyProcess(tmp_path, url, location_write_back=1.0)
    uas = []
    try:
        alice, bob, carol = (UA(u, USERS[u], proxy.port) for u in ("alice", "bob", "carol"))
        phones = [UA(u, pw, proxy.port) for u, pw in PHONES.items()]
        uas = [alice, bob, carol, *phones]
        for ua in uas:
            r = ua.register()
            assert r is not None and r.status == 200, (ua.user, r and r.status)
        # two calls up before the kill: one the caller ends, one the callee ends
        r1, call1 = alice.call("bob")
        r2, call2 = carol.call("bob")
        assert r1 is not None and r1.status == 200 and r2 is not None and r2.status == 200
        # a refresh of every phone (pending in the write-back when the kill comes)
        for ua in phones:
            assert ua.register().status == 200
        deadline = time.monotonic() + 5
        while count_rows(url, Dialog) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert count_rows(url, Dialog) == 2

        proxy.service.proc.kill()  # SIGKILL: nothing flushed, nothing closed
        proxy.service.proc.wait()
        proxy.service.stop()
        assert count_rows(url, Location) == len(uas)  # every binding is in the table

        proxy = ProxyProcess(tmp_path, url, port=proxy.port, location_write_back=1.0)

        # in-dialog requests of the calls set up before: routed by the new process
        bye = alice.bye(call1)
        assert bye is not None and bye.status == 200, bye and bye.status
        assert bob.received("BYE", call1.call_id)
        bob_side = bob.callee_dialog(call2.call_id)
        bye = bob.bye(bob_side)
        assert bye is not None and bye.status == 200, bye and bye.status
        assert carol.received("BYE", call2.call_id)
        deadline = time.monotonic() + 5
        while count_rows(url, Dialog) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert count_rows(url, Dialog) == 0  # the rows written before the kill are gone

        # registrations kept: calls reach phones that registered before the kill, and
        # their refreshes are accepted without a new registration
        for callee in ("bob", "phone0", "phone19"):
            r, d = alice.call(callee)
            assert r is not None and r.status == 200, (callee, r and r.status)
            assert alice.bye(d).status == 200
        for ua in phones[:5]:
            assert ua.register().status == 200
        assert count_rows(url, Location) == len(uas)
        assert "Traceback" not in proxy.output()
    finally:
        for ua in uas:
            ua.close()
        proxy.stop()
