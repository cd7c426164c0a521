"""Fault injection: one of two media relays dies (SIGKILL) while it carries calls.

What the platform promises: the calls it carried end -- both parties get a BYE from the
proxy with ``Reason: SIP ;cause=503;text="Media relay failed"`` and the dialog rows go --
while the calls on the other relay go on untouched; new calls go to the other relay; and the
relay's return is noticed (the proxy probes it, logs ``media relay ... is back``) and new
calls use it again.
"""

from __future__ import annotations

import socket
import time

from tests.helpers import Service, free_port, write_config
from tests.sipproxy_e2e.sipp_support import ProxyProcess, provision

from .sipua import UA, media_of

USERS = {"alice": "secret-a", "bob": "secret-b"}


def _relay(tmp, url, name, control, low):
    media = {"control": f"127.0.0.1:{control}", "relay_ip": "127.0.0.1",
             "port_range": [low, low + 40], "media_timeout": 600}
    cfg = write_config(tmp / f"{name}.toml", {"database": {"url": url}, "mediaproxy": media})
    return Service("mediaproxy", cfg, log=tmp / f"{name}.log").wait_tcp("127.0.0.1", control)


def _range(port: int, low: int) -> bool:
    return low <= port <= low + 40


class _TwoRelays:
    """Two relays (``media_relays``, ``media_relay = "always"``), a proxy and alice and bob."""

    def __init__(self, tmp) -> None:  # noqa: ANN001
        self.url = url = f"sqlite:///{tmp / 'msp.sqlite'}"
        provision(url, users=USERS)
        self.c1, c2 = free_port(), free_port()
        self.low1 = low1 = free_port(socket.SOCK_DGRAM) & ~1
        low2 = low1 + 200 if low1 < 60000 else low1 - 200
        self.relays = {1: _relay(tmp, url, "relay1", self.c1, low1), 2: _relay(tmp, url, "relay2", c2, low2)}
        self.lows = {1: low1, 2: low2}
        self.proxy = ProxyProcess(tmp, url, media_relay="always",
                                  media_relays=[f"127.0.0.1:{self.c1}", f"127.0.0.1:{c2}"],
                                  sections={"mediaproxy": {"control": f"127.0.0.1:{self.c1}"}})
        self.alice = UA("alice", USERS["alice"], self.proxy.port)
        self.bob = UA("bob", USERS["bob"], self.proxy.port)

    def relay_of(self, answer) -> int:  # noqa: ANN001
        """Which relay (1 or 2) an answer's SDP names, by its port range."""
        _ip, port = media_of(answer.body)
        return next(n for n, low in self.lows.items() if _range(port, low))

    def stop(self) -> None:
        self.alice.close()
        self.bob.close()
        self.proxy.stop()
        for relay in self.relays.values():
            relay.stop()


def test_relay_death_ends_its_calls_and_new_calls_use_the_other(tmp_path):
    two = _TwoRelays(tmp_path)
    url, c1, low1, relays, proxy, alice, bob, relay_of = (
        two.url, two.c1, two.low1, two.relays, two.proxy, two.alice, two.bob, two.relay_of)
    try:
        assert bob.register().status == 200
        calls = []
        for _ in range(4):
            r, d = alice.call("bob")
            assert r is not None and r.status == 200
            calls.append((d, relay_of(r)))
        on = {n: [d for d, m in calls if m == n] for n in (1, 2)}
        assert len(on[1]) == 2 and len(on[2]) == 2, [m for _, m in calls]  # spread by load

        relays[1].proc.kill()
        relays[1].proc.wait()
        relays[1].stop()

        # the calls on the dead relay end: BYE with the Reason to both parties
        for d in on[1]:
            for ua in (alice, bob):
                bye = ua.wait_request("BYE", d.call_id, timeout=5)
                assert bye is not None, (ua.user, proxy.output()[-3000:])
                assert bye.headers.get("reason") == 'SIP ;cause=503;text="Media relay failed"'
        time.sleep(0.5)
        for d in on[2]:  # the others go on
            assert not alice.received("BYE", d.call_id) and not bob.received("BYE", d.call_id)
        assert f"media relay 127.0.0.1:{c1} ended with 2 calls on it" in proxy.output()

        # new calls go to the other relay
        for _ in range(2):
            r, d = alice.call("bob")
            assert r is not None and r.status == 200
            assert relay_of(r) == 2
            on[2].append(d)

        # the relay comes back on the same address: noticed, and used again
        relays[1] = _relay(tmp_path, url, "relay1b", c1, low1)
        deadline = time.monotonic() + 15
        while f"media relay 127.0.0.1:{c1} is back" not in proxy.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert f"media relay 127.0.0.1:{c1} is back" in proxy.output()
        r, d = alice.call("bob")
        assert r is not None and r.status == 200
        assert relay_of(r) == 1  # the fewest calls
        on[1] = [d]
        for d in on[1] + on[2]:  # every remaining call ends normally
            bye = alice.bye(d)
            assert bye is not None and bye.status == 200
        assert "Traceback" not in proxy.output()
    finally:
        two.stop()


def test_call_control_finds_a_dialog_whose_row_is_still_queued(sqlite_url):
    """A call answered less than the writer's 50 ms ago is not in the table yet; ending it
    (its relay died at once) must still find it."""
    from ngnpro.models.database import open_database
    from sipproxy.dialog.state import DialogInfo
    from sipproxy.dialog.store import DialogStore

    engine, sessions = open_database(sqlite_url)
    store = DialogStore(sessions)
    store.start()  # writes are queued for the writer greenlet (not run: nothing yields here)
    try:
        info = DialogInfo("c1", "ft", "tt", "alice@example.com", "bob@example.com",
                          "<sip:alice@127.0.0.1:5070>", "<sip:bob@127.0.0.1:5080>", 1)
        store.confirmed(info)
        assert store.find("c1") == [info]
        assert store.find("c2") == []
        store.ended("c1", "tt", "ft")
        assert store.find("c1") == []
    finally:
        store.stop()
        engine.dispose()


def test_a_relay_that_stops_answering_is_passed_over_within_its_timeout(tmp_path):
    """A relay frozen with its control connection open (SIGSTOP: the kernel still accepts and
    buffers, nobody answers): a new call waits at most the control timeout (2 s) for it, is
    put on the other relay, and connects; while frozen it gets no calls; once it answers
    again (SIGCONT) the proxy notices and uses it again."""
    import signal

    two = _TwoRelays(tmp_path)
    c1, relays, proxy, alice, bob, relay_of = two.c1, two.relays, two.proxy, two.alice, two.bob, two.relay_of
    try:
        assert bob.register().status == 200
        warm = [alice.call("bob") for _ in range(2)]  # both relays connected and used
        assert sorted(relay_of(r) for r, _ in warm) == [1, 2]
        relays[1].proc.send_signal(signal.SIGSTOP)
        took = []
        for _ in range(3):
            t0 = time.monotonic()
            r, d = alice.call("bob", timeout=8)
            took.append(time.monotonic() - t0)
            assert r is not None and r.status == 200, proxy.output()[-3000:]
            assert relay_of(r) == 2
            assert alice.bye(d).status == 200
        assert max(took) < 4.0, took  # one call waited out the 2 s timeout, no more
        assert f"media relay 127.0.0.1:{c1} unavailable (no answer)" in proxy.output()
        time.sleep(6)  # past a probe (retry_interval 5 s): connected, but it does not answer the ping
        assert f"media relay 127.0.0.1:{c1} is back" not in proxy.output()
        relays[1].proc.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 15
        while f"media relay 127.0.0.1:{c1} is back" not in proxy.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert f"media relay 127.0.0.1:{c1} is back" in proxy.output()
        # one warm call on each: two new calls go one to each (the fewest calls first)
        again = [alice.call("bob") for _ in range(2)]
        assert sorted(relay_of(r) for r, _ in again) == [1, 2]
        for _, d in warm + again:
            assert alice.bye(d).status == 200
        assert "Traceback" not in proxy.output()
    finally:
        relays[1].proc.send_signal(signal.SIGCONT)
        two.stop()
