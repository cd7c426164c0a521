"""End to end: NGNPro's PresencePort and the presence agent of ``python -m sipproxy`` on one
database, with sipp as carol's phone.

bob allows carol with ``setPolicy`` (the pres-rules document and its ``xcap`` change);
carol subscribes to bob through the proxy and is active at once; ``getWatchers`` shows
her; ``setPresenceInformation`` publishes bob's note, and carol's NOTIFY carries it within
a second (the change feed's ``presence`` topic); ``deletePresenceInformation`` takes it
back (closed).

Runs on SQLite and on each server of ``MSP_TEST_DATABASE_URLS``.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import DB_IDS, DB_PARAMS, module_database
from tests.ngnpro.conftest import start_ngnpro
from tests.ngnpro.harness import call, php_call

from .sipp_support import ProxyProcess, Sipp, call_row, provision
from .test_sipproxy_e2e_presence import _notify, _subscriber, _wait_for

USERS = {"bob": "pw-b", "carol": "pw-c"}
BOB = {"sipId": {"username": "bob", "domain": "example.com"}, "password": "pw-b"}
NOTE = "Lunch at the canteen"


@pytest.fixture(scope="module", params=DB_PARAMS, ids=DB_IDS)
def services(request, tmp_path_factory):
    """The proxy and ngnpro on the same database."""
    tmp = tmp_path_factory.mktemp("presence_port")
    with module_database(request.param, tmp) as url:
        provision(url, users=USERS)
        (tmp / "ngnpro").mkdir()
        ngnpro = start_ngnpro(tmp / "ngnpro", url)
        proxy = ProxyProcess(tmp, url)
        try:
            yield proxy, ngnpro
        finally:
            proxy.stop()
            ngnpro.service.stop()
            ngnpro.close()


def test_a_watcher_gets_the_note_set_through_presence_port_within_a_second(services, tmp_path):
    proxy, ngnpro = services
    php_call(ngnpro.url, "Presence", "setPolicy", {**BOB, "policy": {"allow": ["sip:carol@example.com"],
                                                                      "block": []}}, auth=None)
    carol = Sipp(tmp_path, "carol", _subscriber(tmp_path, "carol_sc", "presence", "application/pidf+xml", [
        _notify("active", "basic.closed..basic"),
        _notify("active", NOTE),
        _notify("active", "basic.closed..basic"),
    ], pause_ms=300), proxy.port, rows=[call_row("carol", "pw-c", "bob")])
    _wait_for(tmp_path / "carol.msg", "Subscription-State: active")
    assert call(ngnpro.url, "Presence", "getWatchers", BOB, auth=None) == ["sip:carol@example.com active"]
    started = time.monotonic()
    call(ngnpro.url, "Presence", "setPresenceInformation",
         {**BOB, "information": {"activity": "busy", "note": NOTE}}, auth=None)
    _wait_for(tmp_path / "carol.msg", NOTE, timeout=5)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"the NOTIFY came {elapsed:.2f} s after setPresenceInformation"
    assert call(ngnpro.url, "Presence", "getPresenceInformation", BOB, auth=None) == {"activity": "busy",
                                                                                        "note": NOTE}
    call(ngnpro.url, "Presence", "deletePresenceInformation", BOB, auth=None)
    assert carol.wait() == 0, f"{carol.report()}\n--- proxy\n{proxy.output()[-6000:]}"
    trace = (tmp_path / "carol.msg").read_text(errors="replace")
    notifies = [b for b in trace.split("NOTIFY sip:")[1:] if "Content-Type: application/pidf+xml" in b]
    assert len(notifies) == 3
    assert NOTE in notifies[1] and "<rpid:busy/>" in notifies[1]  # what the port published, RPID included
    assert NOTE not in notifies[2]  # deleted: closed again
