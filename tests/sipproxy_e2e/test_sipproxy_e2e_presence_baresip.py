"""End to end with a real presence client: baresip 1.0 (Debian) with its presence module.

carol's baresip registers, PUBLISHes its own state (PIDF) and subscribes to its contact bob
(``presence=p2p``: a SUBSCRIBE to bob's address, through the proxy).  Without rules bob's
agent keeps her pending; bob's pres-rules then allow her (written as the XCAP server writes
them) and bob publishes through sipp: baresip gets the NOTIFY with bob's state.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from ngnpro.models import PresencePublication, PresenceSubscription, open_database
from tests.conftest import DB_IDS, DB_PARAMS, module_database
from tests.helpers import require_tool

from .sipp_support import ProxyProcess, provision
from .test_sipproxy_e2e_presence import PIDF, RULES, _publish, _write_rules

USERS = {"bob": "pw-b", "carol": "pw-c"}


@pytest.fixture(scope="module", params=DB_PARAMS, ids=DB_IDS)
def proxy(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("baresip")
    with module_database(request.param, tmp) as url:
        provision(url, users=USERS)
        p = ProxyProcess(tmp, url)
        p.url = url
        yield p
        p.stop()


def _rows(url: str, *columns):  # noqa: ANN002, ANN202
    engine, sessions = open_database(url, migrate=False)
    with sessions() as s:
        out = [tuple(r) for r in s.execute(select(*columns)).all()]
    engine.dispose()
    return out


def _until(what, timeout: float, why):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(why())


def test_baresip_publishes_and_watches(proxy, tmp_path: Path):
    baresip = require_tool("baresip")
    conf = tmp_path / "conf"
    # baresip writes its default configuration into an empty folder; the presence module is
    # in it, commented out
    subprocess.run([baresip, "-f", str(conf), "-t", "1"], stdin=subprocess.DEVNULL, capture_output=True,
                   timeout=30, cwd=tmp_path)
    config = (conf / "config").read_text()
    assert "#module_app\t\tpresence.so" in config
    config = config.replace("#module_app\t\tpresence.so", "module_app\t\tpresence.so")
    (conf / "config").write_text(config.replace("#sip_listen\t\t0.0.0.0:5060", "sip_listen\t\t127.0.0.1:0"))
    (conf / "accounts").write_text(
        f'<sip:carol@example.com>;auth_pass=pw-c;outbound="sip:127.0.0.1:{proxy.port}";pubint=60\n')
    (conf / "contacts").write_text('"Bob" <sip:bob@example.com>;presence=p2p\n')
    log = tmp_path / "baresip.out"
    out = log.open("wb")
    phone = subprocess.Popen([baresip, "-f", str(conf), "-s"], stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT, cwd=tmp_path)

    def report() -> str:
        return log.read_text(errors="replace")[-4000:] + "\n--- proxy\n" + proxy.output()[-4000:]

    try:
        published = _until(lambda: [d for (p, d) in _rows(proxy.url, PresencePublication.presentity,
                                                           PresencePublication.document)
                                     if p == "carol@example.com" and "<basic>open</basic>" in d],
                           15, report)
        assert "urn:ietf:params:xml:ns:pidf" in published[0]
        _until(lambda: ("carol@example.com", "bob@example.com", "pending") in _rows(
            proxy.url, PresenceSubscription.watcher, PresenceSubscription.presentity, PresenceSubscription.state),
            15, report)
        _write_rules(proxy.url, RULES.replace("IDENTITIES", '<cr:one id="sip:carol@example.com"/>'), "b1")
        _until(lambda: ("carol@example.com", "active") in _rows(
            proxy.url, PresenceSubscription.watcher, PresenceSubscription.state), 5, report)
        _publish(tmp_path, proxy, "publish", PIDF)
        _until(lambda: "Busy coding" in log.read_text(errors="replace"), 5, report)
    finally:
        phone.terminate()
        try:
            phone.wait(10)
        except subprocess.TimeoutExpired:
            phone.kill()
            phone.wait()
        out.close()
    trace = log.read_text(errors="replace")
    at = trace.index("<note>Busy coding</note>")
    notify = trace[trace.rindex("NOTIFY sip:carol", 0, at):]
    assert "Subscription-State: active" in notify.split("<note>")[0] and "CSeq: 3 NOTIFY" in notify
    after = notify.split("<note>Busy coding</note>", 1)[1]
    assert "SIP/2.0 200 OK" in after.split("NOTIFY sip:")[0]  # baresip took it
    # on stopping, baresip unsubscribes (Expires 0): the final NOTIFY, the row gone
    assert "Subscription-State: terminated;reason=timeout" in after
    _until(lambda: not [w for (w,) in _rows(proxy.url, PresenceSubscription.watcher) if w == "carol@example.com"],
           3, report)
