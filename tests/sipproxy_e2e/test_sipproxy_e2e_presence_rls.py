"""End to end: the resource list server (RFC 4662) with a list of three resources, one of
them served by a second proxy instance (another domain, its own database).

carol's ``rls-services`` names ``sip:carol-buddies@example.com``, whose members are in her
``resource-lists`` document (by reference): bob (local, allows carol, has published), dave
(local, no rules: pending) and, in the nested list ``far``, zed of the other proxy (allows
carol).  carol (sipp) subscribes once with ``Supported: eventlist`` and gets the full
state (RLMI version 0: bob active with his PIDF, dave pending, the nested list's own RLMI
document with zed pending), then -- once the list server's own SUBSCRIBE
to zed is answered by the other proxy's NOTIFY -- a partial NOTIFY with zed active.  When
she unsubscribes, the list server ends its subscription on the other proxy too.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from ngnpro.models import PresenceSubscription, XcapDocument, open_database
from tests.conftest import DB_IDS, DB_PARAMS, module_database

from .sipp_support import ProxyProcess, Sipp, call_row, provision
from .test_sipproxy_e2e_presence import PIDF, RULES, _notify, _publish, _subscriber

USERS = {"bob": "pw-b", "carol": "pw-c", "dave": "pw-d"}


@pytest.fixture(scope="module", params=DB_PARAMS, ids=DB_IDS)
def proxies(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rls")
    (tmp / "far").mkdir()
    far_url = f"sqlite:///{tmp / 'far' / 'far.sqlite'}"
    provision(far_url, domain="127.0.0.1", users={"zed": "pw-z"})
    with module_database(request.param, tmp) as url:
        provision(url, users=USERS)
        far = ProxyProcess(tmp / "far", far_url)
        try:
            near = ProxyProcess(tmp, url)
        except Exception:
            far.stop()
            raise
        near.url, far.url = url, far_url
        yield near, far
        near.stop()
        far.stop()


def _document(url: str, auid: str, xui: str, text: str) -> None:
    engine, sessions = open_database(url, migrate=False)
    with sessions() as s, s.begin():
        s.add(XcapDocument(auid=auid, xui=xui, filename="index", document=text, etag=f"{auid}-1"))
    engine.dispose()


def _subscriptions(url: str) -> list[tuple[str, str, str]]:
    engine, sessions = open_database(url, migrate=False)
    with sessions() as s:
        rows = s.execute(select(PresenceSubscription.watcher, PresenceSubscription.presentity,
                                PresenceSubscription.action)).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def test_list_of_three_with_a_foreign_resource(proxies, tmp_path):
    near, far = proxies
    zed = f"zed@127.0.0.1:{far.port}"
    _document(near.url, "rls-services", "carol@example.com", """<?xml version="1.0"?>
<rls-services xmlns="urn:ietf:params:xml:ns:rls-services">
 <service uri="sip:carol-buddies@example.com">
  <resource-list>http://127.0.0.1:9200/xcap-root/resource-lists/users/sip:carol@example.com/index/~~/resource-lists/list%5b@name=%22buddies%22%5d</resource-list>
  <packages><package>presence</package></packages>
 </service>
</rls-services>""")
    _document(near.url, "resource-lists", "carol@example.com", f"""<?xml version="1.0"?>
<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">
 <list name="buddies"><entry uri="sip:bob@example.com"><display-name>Bob</display-name></entry>
  <entry uri="sip:dave@example.com"/><list name="far"><entry uri="sip:{zed}"/></list></list>
</resource-lists>""")
    allow_carol = RULES.replace("IDENTITIES", '<cr:one id="sip:carol@example.com"/>')
    _document(near.url, "pres-rules", "bob@example.com", allow_carol)
    _document(far.url, "pres-rules", "zed@127.0.0.1", allow_carol)
    _publish(tmp_path, near, "publish", PIDF)
    scenario = _subscriber(tmp_path, "carol_rls", "presence",
                           "application/pidf+xml, application/rlmi+xml, multipart/related", [
        _notify("active", "fullState=.true. version=.0.|version=.0. fullState=.true."),
        _notify("active", f"resource uri=.sip:{zed}...instance id=.[0-9a-f]+. state=.active."),
    ], pause_ms=500, supported="eventlist")
    carol = Sipp(tmp_path, "carol", scenario, near.port, rows=[call_row("carol", "pw-c", "carol-buddies")])
    assert carol.wait() == 0, (f"{carol.report()}\n--- near\n{near.output()[-5000:]}"
                               f"\n--- far\n{far.output()[-3000:]}")
    trace = (tmp_path / "carol.msg").read_text(errors="replace")
    first = trace[trace.index("fullState"):]
    assert "Require: eventlist" in trace and "multipart/related" in trace
    assert 'uri="sip:bob@example.com"><name>Bob</name>' in first
    assert 'uri="sip:dave@example.com"><instance' in first and 'state="pending"' in first
    assert "Busy coding" in first  # bob's PIDF, a part of the multipart body
    # the nested list "far": a resource of the outer list, its own RLMI document (RFC 4662 5)
    assert first.count('list%5B@name=%22far%22%5D" version="0" fullState="true"') == 1
    assert 'fullState="false"' in trace  # the partial one, zed's
    deadline = time.monotonic() + 5  # the list server's own subscription on the far side ends
    while time.monotonic() < deadline and _subscriptions(far.url):
        time.sleep(0.1)
    assert _subscriptions(far.url) == []
    assert [r for r in _subscriptions(near.url) if r[2] in ("rls", "rls-backend")] == []
    assert "list server: subscribing to " + zed in near.output()
    assert "subscription carol@example.com -> zed@127.0.0.1 (presence): active" in far.output()


def test_a_subscribe_to_another_domain_is_routed_out(proxies, tmp_path):
    """A subscriber's SUBSCRIBE to a user of another domain is not the agent's: it is
    challenged and routed out like any request, Record-Routed, and the far side's agent
    answers; the NOTIFYs and the in-dialog SUBSCRIBE follow the route set."""
    near, far = proxies
    zed = f"zed@127.0.0.1:{far.port}"
    engine, sessions = open_database(far.url, migrate=False)
    with sessions() as s, s.begin():  # (the list test may have written zed's rules already)
        if s.scalars(select(XcapDocument).where(XcapDocument.xui == "zed@127.0.0.1")).first() is None:
            s.add(XcapDocument(auid="pres-rules", xui="zed@127.0.0.1", filename="index", etag="z",
                               document=RULES.replace("IDENTITIES", '<cr:one id="sip:carol@example.com"/>')))
    engine.dispose()
    carol = Sipp(tmp_path, "carol", _subscriber(tmp_path, "carol_far", "presence", "application/pidf+xml", [
        _notify("active", "basic.closed..basic"),
    ]), near.port, rows=[f"carol;example.com;[authentication username=carol password=pw-c];zed;127.0.0.1:{far.port}"])
    assert carol.wait() == 0, f"{carol.report()}\n--- near\n{near.output()[-3000:]}\n--- far\n{far.output()[-3000:]}"
    trace = (tmp_path / "carol.msg").read_text(errors="replace")
    assert f"Record-Route: <sip:127.0.0.1:{near.port};lr>" in trace
    assert f"Route: <sip:127.0.0.1:{near.port};lr>" in trace  # the in-dialog SUBSCRIBE's
    assert f"subscription carol@example.com -> {zed}" not in near.output()  # not the near agent's
    assert far.output().count("subscription carol@example.com -> zed@127.0.0.1 (presence) terminated") >= 1
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and _subscriptions(far.url):
        time.sleep(0.1)
    assert _subscriptions(far.url) == []
