"""End to end: the presence agent of ``python -m sipproxy`` with sipp as phones.

* bob PUBLISHes his state; bob watches his watchers (presence.winfo); carol subscribes to
  bob and waits (pending) until bob's pres-rules -- written to the XCAP documents table
  and recorded in the change feed, as the XCAP server does -- allow her; she is then
  active and sees bob's published note; winfo showed her pending, then active;
* polite-block: dave is active but sees a neutral (closed) document;
* a PUBLISH carrying an XXE PIDF gets 400 and changes nothing;
* a SUBSCRIBE flood is bounded by ``presence_max_subscriptions_per_watcher`` (503).

Runs on SQLite and on each server of ``MSP_TEST_DATABASE_URLS``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from ngnpro.models import (
    PresencePublication,
    PresenceSubscription,
    XcapDocument,
    open_database,
    record_change,
)
from tests.conftest import DB_IDS, DB_PARAMS, module_database

from .sipp_support import SCENARIOS, ProxyProcess, Sipp, auth_row, call_row, provision

USERS = {"bob": "pw-b", "carol": "pw-c", "dave": "pw-d", "eve": "pw-e", "frank": "pw-f"}
PIDF_NS = 'xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" ' \
          'xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid"'
PIDF = (f'<?xml version="1.0" encoding="UTF-8"?><presence {PIDF_NS} entity="sip:bob@example.com">'
        '<tuple id="phone"><status><basic>open</basic></status><contact>sip:bob@127.0.0.1</contact></tuple>'
        '<note>Busy coding</note><dm:person id="p1"><rpid:activities><rpid:meeting/></rpid:activities>'
        '</dm:person></presence>')
RULES = ('<?xml version="1.0" encoding="UTF-8"?><cr:ruleset xmlns:cr="urn:ietf:params:xml:ns:common-policy" '
         'xmlns:pr="urn:ietf:params:xml:ns:pres-rules">'
         '<cr:rule id="friends"><cr:conditions><cr:identity>IDENTITIES</cr:identity></cr:conditions>'
         '<cr:actions><pr:sub-handling>allow</pr:sub-handling></cr:actions><cr:transformations>'
         '<pr:provide-services><pr:all-services/></pr:provide-services>'
         '<pr:provide-persons><pr:all-persons/></pr:provide-persons><pr:provide-all-attributes/>'
         '</cr:transformations></cr:rule>'
         '<cr:rule id="polite"><cr:conditions><cr:identity><cr:one id="sip:dave@example.com"/></cr:identity>'
         '</cr:conditions><cr:actions><pr:sub-handling>polite-block</pr:sub-handling></cr:actions></cr:rule>'
         '</cr:ruleset>')


@pytest.fixture(scope="module", params=DB_PARAMS, ids=DB_IDS)
def proxy(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("presence")
    with module_database(request.param, tmp) as url:
        provision(url, users=USERS)
        p = ProxyProcess(tmp, url, presence_max_subscriptions_per_watcher=3, presence_max_pidf_bytes=4096)
        p.url = url
        yield p
        p.stop()


def _notify(state: str, body: str | None = None) -> str:
    """A sipp step: receive a NOTIFY whose Subscription-State starts with ``state`` (and
    whose body matches the POSIX regexp ``body``: no quotes or angle brackets, ``.`` stands in), answer 200."""
    checks = f'<ereg regexp="^ *{state}" search_in="hdr" header="Subscription-State:" check_it="true" assign_to="s"/>'
    if body is not None:
        checks += f'<ereg regexp="{body}" search_in="body" check_it="true" assign_to="b"/>'
    return (f'  <recv request="NOTIFY"><action>{checks}</action></recv>\n'
            '  <send><![CDATA[\n\n      SIP/2.0 200 OK\n      [last_Via:]\n      [last_From:]\n'
            '      [last_To:]\n      [last_Call-ID:]\n      [last_CSeq:]\n      Content-Length: 0\n\n    ]]></send>\n')


def _subscriber(tmp: Path, name: str, event: str, accept: str, notifies: list[str], pause_ms: int = 300,
                supported: str = "") -> str:
    text = (SCENARIOS / "pres_subscriber.xml").read_text()
    if supported:  # on the initial SUBSCRIBE (both of its copies)
        text = text.replace("Accept: ACCEPT_TYPE", f"Accept: ACCEPT_TYPE\n      Supported: {supported}")
    text = text.replace("EVENT_PACKAGE", event).replace("ACCEPT_TYPE", accept)
    text = text.replace("PAUSE_MS", str(pause_ms)).replace("  <!--NOTIFIES-->\n", "".join(notifies))
    used = [v for v in ("s", "b") if f'assign_to="{v}"' in text]  # sipp refuses unused variables
    text = text.replace('<Reference variables="s3"/>', f'<Reference variables="{",".join(["s3", *used])}"/>')
    path = tmp / f"{name}.xml"
    path.write_text(text)
    return str(path)


def _publish(tmp: Path, proxy, name: str, body: str, status: int = 200) -> Sipp:
    path = tmp / f"{name}.xml"
    (tmp / f"{name}.pidf").write_text(body)  # sipp's [file] keyword: brackets in a body are keywords
    text = (SCENARIOS / "pres_publish.xml").read_text().replace("PIDF_BODY", f"[file name={tmp / name}.pidf]")
    path.write_text(text.replace('<recv response="200"/>', f'<recv response="{status}"/>'))
    sipp = Sipp(tmp, name, str(path), proxy.port, rows=[auth_row("bob", "pw-b")])
    assert sipp.wait() == 0, f"{sipp.report()}\n--- proxy\n{proxy.output()[-4000:]}"
    return sipp


def _wait_for(path: Path, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in {path.name}:\n" + (path.read_text(errors="replace")[-3000:]
                                                                if path.exists() else "(none)"))


def _write_rules(url: str, document: str, etag: str) -> None:
    """What the XCAP server does on a PUT: the document row and a change-feed entry."""
    engine, sessions = open_database(url, migrate=False)
    with sessions() as s, s.begin():
        row = s.scalars(select(XcapDocument).where(XcapDocument.xui == "bob@example.com",
                                                   XcapDocument.auid == "pres-rules")).first()
        if row is None:
            s.add(XcapDocument(auid="pres-rules", xui="bob@example.com", filename="index",
                               document=document, etag=etag))
        else:
            row.document, row.etag = document, etag
        record_change(s, "xcap", "pres-rules/bob@example.com/index")
    engine.dispose()


def _rows(url: str, model, *columns):  # noqa: ANN001, ANN202
    engine, sessions = open_database(url, migrate=False)
    with sessions() as s:
        out = s.execute(select(*[getattr(model, c) for c in columns])).all()
    engine.dispose()
    return [tuple(r) for r in out]


def test_watcher_confirmed_through_winfo_and_rules_then_sees_state_and_polite_block(proxy, tmp_path):
    _publish(tmp_path, proxy, "publish", PIDF)
    assert len(_rows(proxy.url, PresencePublication, "presentity")) == 1
    winfo = Sipp(tmp_path, "winfo", _subscriber(tmp_path, "winfo_sc", "presence.winfo",
                                                "application/watcherinfo+xml", [
        _notify("active", "state=.full."),
        _notify("active", "status=.pending..sip:carol@example.com"),
        _notify("active", "status=.active..sip:carol@example.com"),
    ]), proxy.port, rows=[call_row("bob", "pw-b", "bob")])
    _wait_for(tmp_path / "winfo.msg", 'state="full"')
    carol = Sipp(tmp_path, "carol", _subscriber(tmp_path, "carol_sc", "presence", "application/pidf+xml", [
        _notify("pending"),
        _notify("active", "Busy coding"),
    ], pause_ms=1500), proxy.port, rows=[call_row("carol", "pw-c", "bob")])
    _wait_for(tmp_path / "winfo.msg", 'status="pending"')
    assert ("carol@example.com", "pending") in _rows(proxy.url, PresenceSubscription, "watcher", "state")
    started = time.monotonic()
    _write_rules(proxy.url, RULES.replace("IDENTITIES", '<cr:one id="sip:carol@example.com"/>'), "r1")
    _wait_for(tmp_path / "carol.msg", "Busy coding", timeout=5)
    assert time.monotonic() - started < 1.5  # the rules' change is seen within the feed's second
    for sipp in (winfo, carol):
        assert sipp.wait() == 0, f"{sipp.report()}\n--- proxy\n{proxy.output()[-6000:]}"
    carol_trace = (tmp_path / "carol.msg").read_text(errors="replace")
    assert "<rpid:meeting/>" in carol_trace  # RPID passed through
    assert "Subscription-State: terminated;reason=timeout" in carol_trace
    # polite-block: dave is active, but sees a neutral document
    dave = Sipp(tmp_path, "dave", _subscriber(tmp_path, "dave_sc", "presence", "application/pidf+xml", [
        _notify("active", "<basic>closed</basic>"),
    ]), proxy.port, rows=[call_row("dave", "pw-d", "bob")])
    assert dave.wait() == 0, f"{dave.report()}\n--- proxy\n{proxy.output()[-6000:]}"
    dave_trace = (tmp_path / "dave.msg").read_text(errors="replace")
    assert "Busy coding" not in dave_trace and "meeting" not in dave_trace
    assert [w for (w,) in _rows(proxy.url, PresenceSubscription, "watcher") if w != "bob@example.com"] == []


XXE = ('<?xml version="1.0"?><!DOCTYPE presence [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
       f'<presence {PIDF_NS} entity="sip:bob@example.com"><note>&x;</note></presence>')
LAUGHS = ('<?xml version="1.0"?><!DOCTYPE presence [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
          '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
          f'<presence {PIDF_NS} entity="sip:bob@example.com"><note>&d;</note></presence>')
HUGE = PIDF.replace("Busy coding", "x" * 5000)


@pytest.mark.parametrize(("body", "status", "reason"), [
    (XXE, 400, "Bad PIDF"), (LAUGHS, 400, "Bad PIDF"), (HUGE, 413, "PIDF Document Too Large"),
    (PIDF.replace("urn:ietf:params:xml:ns:pidf", "urn:example:not-pidf"), 400, "Bad PIDF"),
], ids=["xxe", "billion-laughs", "oversize", "not-pidf"])
def test_bad_pidf_is_refused_and_changes_nothing(proxy, tmp_path, body, status, reason):
    before = _rows(proxy.url, PresencePublication, "etag", "document")
    sipp = _publish(tmp_path, proxy, "bad", body, status=status)
    trace = (tmp_path / "bad.msg").read_text(errors="replace")
    assert body[:60] in trace  # really sent
    assert f"SIP/2.0 {status} {reason}" in trace
    assert sipp.finals() >= {("2 PUBLISH", status)}
    assert _rows(proxy.url, PresencePublication, "etag", "document") == before
    assert "root:" not in trace


def test_subscription_flood_is_bounded(proxy, tmp_path):
    flood = Sipp(tmp_path, "flood", "pres_subscribe_once.xml", proxy.port,
                 rows=[call_row("eve", "pw-e", "frank")], extra=("-m", "3", "-l", "1"))
    assert flood.wait() == 0, f"{flood.report()}\n--- proxy\n{proxy.output()[-4000:]}"
    refused = tmp_path / "refused.xml"
    text = (SCENARIOS / "pres_subscribe_once.xml").read_text()
    refused.write_text(text[:text.index("  <!--ANSWER-->")] + '  <recv response="503"/>\n</scenario>\n')
    more = Sipp(tmp_path, "more", str(refused), proxy.port, rows=[call_row("eve", "pw-e", "frank")])
    assert more.wait() == 0, f"{more.report()}\n--- proxy\n{proxy.output()[-4000:]}"
    assert "SIP/2.0 503 Too Many Subscriptions" in (tmp_path / "more.msg").read_text(errors="replace")
    watchers = [w for (w,) in _rows(proxy.url, PresenceSubscription, "watcher")]
    assert watchers.count("eve@example.com") == 3


def test_message_summary_is_routed_and_authorized_like_any_request(proxy, tmp_path):
    """RFC 3842: the agent does not intercept message-summary; the SUBSCRIBE is challenged,
    then forked to the user's registered device, whose NOTIFY comes back along the
    Record-Route."""
    reg = Sipp(tmp_path, "reg", "e2e_register.xml", proxy.port, rows=[auth_row("bob", "pw-b")])
    assert reg.wait() == 0, reg.report()
    mailbox = Sipp(tmp_path, "mailbox", "mwi_uas.xml", proxy.port, port=reg.port, server=True)
    phone = Sipp(tmp_path, "phone", "mwi_uac.xml", proxy.port, rows=[call_row("carol", "pw-c", "bob")])
    assert phone.wait() == 0, f"{phone.report()}\n{mailbox.report()}\n--- proxy\n{proxy.output()[-4000:]}"
    assert mailbox.wait() == 0, mailbox.report()
    relayed = (tmp_path / "mailbox.msg").read_text(errors="replace")
    assert "Record-Route: <sip:127.0.0.1:" in relayed and "Proxy-Authorization" not in relayed
    assert ("1 SUBSCRIBE", 407) in phone.finals() and ("2 SUBSCRIBE", 200) in phone.finals()
    assert [r for r in _rows(proxy.url, PresenceSubscription, "event") if r[0] == "message-summary"] == []


def test_xcap_diff_after_a_document_change(proxy, tmp_path):
    """RFC 5875: carol subscribes to xcap-diff; a change of one of her documents (written
    by the XCAP server: a row and a change-feed entry) is told with both entity tags."""
    engine, sessions = open_database(proxy.url, migrate=False)
    with sessions() as s, s.begin():
        s.add(XcapDocument(auid="resource-lists", xui="carol@example.com", filename="index",
                           document="<resource-lists xmlns='urn:ietf:params:xml:ns:resource-lists'/>",
                           etag="rl-1"))
    carol = Sipp(tmp_path, "diff", _subscriber(tmp_path, "diff_sc", "xcap-diff", "application/xcap-diff+xml", [
        _notify("active", "sel=.resource-lists/users/sip:carol@example.com/index. new-etag=.rl-1."),
        _notify("active", "previous-etag=.rl-1. new-etag=.rl-2."),
    ]), proxy.port, rows=[call_row("carol", "pw-c", "carol")])
    _wait_for(tmp_path / "diff.msg", 'new-etag="rl-1"')
    with sessions() as s, s.begin():
        row = s.scalars(select(XcapDocument).where(XcapDocument.xui == "carol@example.com")).one()
        row.document, row.etag = "<resource-lists xmlns='urn:ietf:params:xml:ns:resource-lists'><list/>" \
                                 "</resource-lists>", "rl-2"
        record_change(s, "xcap", "resource-lists/carol@example.com/index")
    engine.dispose()
    assert carol.wait() == 0, f"{carol.report()}\n--- proxy\n{proxy.output()[-4000:]}"
    assert "Content-Type: application/xcap-diff+xml" in (tmp_path / "diff.msg").read_text(errors="replace")


def test_publication_life_cycle_and_what_a_watcher_sees(proxy, tmp_path):
    """RFC 3903 with sipp: publish, modify (the watcher is notified), refresh (not notified),
    remove (notified: closed), and a stale SIP-If-Match: 412."""
    _write_rules(proxy.url, RULES.replace("IDENTITIES", '<cr:one id="sip:frank@example.com"/>'), "r9")
    engine, sessions = open_database(proxy.url, migrate=False)
    with sessions() as s, s.begin():  # bob starts with no publication: closed
        s.execute(delete(PresencePublication))
    engine.dispose()
    frank = Sipp(tmp_path, "frank", _subscriber(tmp_path, "frank_sc", "presence", "application/pidf+xml", [
        _notify("active", "basic.closed..basic"),
        _notify("active", "At the desk"),
        _notify("active", "Out for lunch"),
        _notify("active", "basic.closed..basic"),
    ], pause_ms=300), proxy.port, rows=[call_row("frank", "pw-f", "bob")])
    _wait_for(tmp_path / "frank.msg", "Subscription-State: active")
    (tmp_path / "first.pidf").write_text(PIDF.replace("Busy coding", "At the desk"))
    (tmp_path / "second.pidf").write_text(PIDF.replace("Busy coding", "Out for lunch"))
    text = (SCENARIOS / "pres_publish_cycle.xml").read_text()
    text = text.replace("FIRST_BODY", f"[file name={tmp_path / 'first.pidf'}]")
    text = text.replace("SECOND_BODY", f"[file name={tmp_path / 'second.pidf'}]").replace("PAUSE_MS", "300")
    (tmp_path / "cycle.xml").write_text(text)
    cycle = Sipp(tmp_path, "cycle", str(tmp_path / "cycle.xml"), proxy.port, rows=[auth_row("bob", "pw-b")])
    assert cycle.wait() == 0, f"{cycle.report()}\n--- proxy\n{proxy.output()[-4000:]}"
    assert frank.wait() == 0, f"{frank.report()}\n--- proxy\n{proxy.output()[-4000:]}"
    assert cycle.finals() >= {("2 PUBLISH", 200), ("3 PUBLISH", 200), ("4 PUBLISH", 200),
                              ("5 PUBLISH", 200), ("6 PUBLISH", 412)}
    etags = [ln.split(":", 1)[1].strip() for ln in (tmp_path / "cycle.msg").read_text().splitlines()
             if ln.lower().startswith("sip-etag:")]
    # a new tag on every change, refresh included; the removal's 200 names the tag removed
    assert len(etags) == 4 and len(set(etags[:3])) == 3 and etags[3] == etags[2]
    assert "SIP/2.0 412 Conditional Request Failed" in (tmp_path / "cycle.msg").read_text()
    frank_trace = (tmp_path / "frank.msg").read_text(errors="replace")
    # four NOTIFYs with state, the refresh made none; the last (after the removal) is closed
    notifies = [b for b in frank_trace.split("NOTIFY sip:")[1:] if "Content-Type: application/pidf+xml" in b]
    assert len(notifies) == 4 and "Out for lunch" not in notifies[3] and "At the desk" not in notifies[3]
    assert _rows(proxy.url, PresencePublication, "etag") == []


def test_a_481_to_a_notify_ends_the_subscription(proxy, tmp_path):
    """RFC 6665 4.2.2: the subscriber says it knows no such dialog; the agent forgets it."""
    scenario = tmp_path / "forgetful.xml"
    text = (SCENARIOS / "pres_subscribe_once.xml").read_text()
    scenario.write_text(text.replace("SIP/2.0 200 OK", "SIP/2.0 481 Call/Transaction Does Not Exist"))
    sipp = Sipp(tmp_path, "forgetful", str(scenario), proxy.port, rows=[call_row("frank", "pw-f", "bob")])
    assert sipp.wait() == 0, sipp.report()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and ("frank@example.com",) in _rows(proxy.url, PresenceSubscription, "watcher"):
        time.sleep(0.05)
    assert ("frank@example.com",) not in _rows(proxy.url, PresenceSubscription, "watcher")
    assert "NOTIFY to frank@example.com answered 481: subscription to bob@example.com ended" in proxy.output()


def test_a_second_proxy_on_the_same_database_notifies_the_same_subscription(proxy, tmp_path):
    """Subscriptions live in SQL: carol subscribes through this proxy, bob publishes through
    another one sharing the database, and that one sends carol the NOTIFY, in her dialog,
    with the next CSeq."""
    _write_rules(proxy.url, RULES.replace("IDENTITIES", '<cr:one id="sip:carol@example.com"/>'), "r-shared")
    (tmp_path / "other").mkdir()
    other = ProxyProcess(tmp_path / "other", proxy.url)
    try:
        carol = Sipp(tmp_path, "carol", _subscriber(tmp_path, "carol_sc", "presence", "application/pidf+xml", [
            _notify("active"),
            _notify("active", "Written through the other proxy"),
        ]), proxy.port, rows=[call_row("carol", "pw-c", "bob")])
        _wait_for(tmp_path / "carol.msg", "Subscription-State: active")
        _publish(tmp_path, other, "publish", PIDF.replace("Busy coding", "Written through the other proxy"))
        assert carol.wait() == 0, f"{carol.report()}\n--- other\n{other.output()[-3000:]}"
    finally:
        other.stop()
    notifies = (tmp_path / "carol.msg").read_text(errors="replace").split("NOTIFY sip:")[1:]
    assert f"Via: SIP/2.0/UDP 127.0.0.1:{other.port};" in notifies[1] and "CSeq: 2 NOTIFY" in notifies[1]
    assert f"Via: SIP/2.0/UDP 127.0.0.1:{proxy.port};" in notifies[0]


def test_notifies_reach_a_tcp_watcher_over_its_own_connection(proxy, tmp_path):
    """A watcher over TCP gets its NOTIFYs over the connection it subscribed on (its
    Contact names no transport: without the connection they would go by UDP, unanswered)."""
    _write_rules(proxy.url, RULES.replace("IDENTITIES", '<cr:one id="sip:carol@example.com"/>'), "r-tcp")
    dave = Sipp(tmp_path, "dave_tcp", _subscriber(tmp_path, "dave_tcp_sc", "presence", "application/pidf+xml", [
        _notify("active", "basic.closed..basic"),
    ]), proxy.port, rows=[call_row("dave", "pw-d", "bob")], transport="t1")
    assert dave.wait() == 0, f"{dave.report()}\n--- proxy\n{proxy.output()[-3000:]}"
    trace = (tmp_path / "dave_tcp.msg").read_text(errors="replace")
    assert f"Via: SIP/2.0/TCP 127.0.0.1:{proxy.port};branch=z9hG4bKpa." in trace  # the NOTIFY, by TCP
