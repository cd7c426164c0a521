"""The presence agent with its SQL store and a recording edge: SUBSCRIBE -> 200 + NOTIFY,
PUBLISH -> NOTIFYs, pres-rules changes, winfo, expiry, 481, flood bounds, xcap-diff."""

from __future__ import annotations

from sqlalchemy import select

from ngnpro.models import PresencePublication, PresenceSubscription, SipAccount, XcapDocument
from sipproxy.presence.agent import PresenceAgent
from sipproxy.sip.parser import Response

from .messages import request
from .support import Account, Txn, inbound
from .test_presence_pidf import doc
from .test_presence_policy import ALL, rule, rules


def subscribe(agent, watcher="carol", target="bob@example.com", event="presence", **kw):  # noqa: ANN001, ANN201
    req = request("SUBSCRIBE", target, from_=f"{watcher}@example.com", event=event, **kw)
    out = agent.on_request(req, Txn(req), inbound(), Account(watcher))
    return req, out


def write_rules(sessions, owner: str, document: str, etag: str = "r1") -> None:  # noqa: ANN001
    with sessions() as s, s.begin():
        row = s.scalars(select(XcapDocument).where(XcapDocument.xui == owner)).first()
        if row is None:
            s.add(XcapDocument(auid="pres-rules", xui=owner, filename="index", document=document, etag=etag))
        else:
            row.document, row.etag = document, etag


def test_pending_watcher_confirmed_by_rules_then_sees_published_state(world):
    agent, edge, sessions, clock = world
    req = request("PUBLISH", "bob@example.com", from_="bob@example.com", expires=600,
                  body=doc("phone", "open", "Busy coding"))
    assert agent.on_request(req, Txn(req), inbound(), Account("bob")) is None  # answered by the agent
    published = edge.responses[-1]
    assert published.status == 200 and published.headers.get("sip-etag")
    # bob watches his own watchers
    _, out = subscribe(agent, "bob", event="presence.winfo")
    assert out is None and edge.responses[-1].status == 200
    (winfo_first,) = edge.notifies()
    assert b'state="full"' in winfo_first.body and winfo_first.headers.get("event") == "presence.winfo"
    # carol subscribes: no rules yet -> pending, a NOTIFY without state
    _, out = subscribe(agent, "carol")
    assert out is None and edge.responses[-1].status == 200
    pending, winfo_partial = edge.notifies()
    assert pending.headers.get("subscription-state").startswith("pending;expires=")
    assert pending.body == b"" and pending.cseq == (1, "NOTIFY")
    assert b'status="pending"' in winfo_partial.body and b'state="partial"' in winfo_partial.body
    assert b"sip:carol@example.com" in winfo_partial.body and b'version="1"' in winfo_partial.body
    # bob allows carol: the pending subscription becomes active with bob's state
    write_rules(sessions, "bob@example.com",
                rules(rule("c", '<identity><one id="sip:carol@example.com"/></identity>', "allow", ALL)))
    agent.documents_changed("bob@example.com")
    active, winfo_active = edge.notifies()
    assert active.headers.get("subscription-state").startswith("active;expires=")
    assert active.cseq == (2, "NOTIFY") and b"Busy coding" in active.body
    assert b'status="active"' in winfo_active.body and b'version="2"' in winfo_active.body
    # a new PUBLISH (modification) reaches carol
    etag = published.headers.get("sip-etag")
    req = request("PUBLISH", "bob@example.com", from_="bob@example.com", expires=600,
                  body=doc("phone", "closed", "Gone home"), extra=(f"SIP-If-Match: {etag}",))
    assert agent.on_request(req, Txn(req), inbound(), Account("bob")) is None
    assert edge.responses[-1].status == 200
    (update,) = edge.notifies()
    assert b"Gone home" in update.body and update.cseq == (3, "NOTIFY")
    # bob blocks carol: terminated;reason=rejected, the row is gone
    write_rules(sessions, "bob@example.com",
                rules(rule("c", '<identity><one id="sip:carol@example.com"/></identity>', "block")), "r2")
    agent.documents_changed("bob@example.com")
    rejected, winfo_gone = edge.notifies()
    assert rejected.headers.get("subscription-state") == "terminated;reason=rejected"
    assert b'event="rejected"' in winfo_gone.body
    with sessions() as s:
        assert s.scalars(select(PresenceSubscription.watcher).where(
            PresenceSubscription.event == "presence")).all() == []


def test_polite_block_is_active_with_a_neutral_document(world):
    agent, edge, sessions, _ = world
    write_rules(sessions, "bob@example.com",
                rules(rule("d", '<identity><one id="sip:dave@example.com"/></identity>', "polite-block")))
    req = request("PUBLISH", "bob@example.com", from_="bob@example.com", body=doc("phone", "open", "Secret"))
    agent.on_request(req, Txn(req), inbound(), Account("bob"))
    subscribe(agent, "dave")
    (notify,) = edge.notifies()
    assert notify.headers.get("subscription-state").startswith("active;")
    assert b"<basic>closed</basic>" in notify.body and b"Secret" not in notify.body


def test_block_refresh_unsubscribe_and_alias(world):
    agent, edge, sessions, clock = world
    write_rules(sessions, "bob@example.com", rules(rule("e", '<identity><one id="sip:eve@example.com"/></identity>',
                                                        "block")))
    _, refused = subscribe(agent, "eve")
    assert refused.status == 403
    req, _ = subscribe(agent, "carol", target="robert@example.com",  # an alias of bob
                       extra=("Record-Route: <sip:192.0.2.2;lr>",))
    ok = edge.responses[-1]
    assert ok.status == 200 and ok.headers.get("expires") == "600"
    assert ok.headers.get("record-route") == "<sip:192.0.2.2;lr>"  # RFC 3261 12.1.1
    edge.notifies()
    with sessions() as s:
        assert s.scalars(select(PresenceSubscription.presentity)).all() == ["bob@example.com"]
    to_tag = ok.to.tag
    clock.now += 100
    refresh = request("SUBSCRIBE", "127.0.0.1:5060", from_="carol@example.com", to="robert@example.com",
                      call_id=req.call_id, cseq=2, to_tag=to_tag, expires=300)
    assert agent.owns(refresh)
    assert agent.in_dialog(refresh, Txn(refresh), inbound()) is None
    assert edge.responses[-1].status == 200 and edge.responses[-1].headers.get("expires") == "300"
    (again,) = edge.notifies()
    assert again.headers.get("subscription-state") == "pending;expires=300" and again.cseq == (2, "NOTIFY")
    old = request("SUBSCRIBE", "127.0.0.1:5060", from_="carol@example.com", call_id=req.call_id, cseq=2,
                  to_tag=to_tag, expires=300)
    assert agent.in_dialog(old, Txn(old), inbound()).status == 500  # CSeq not above the last
    end = request("SUBSCRIBE", "127.0.0.1:5060", from_="carol@example.com", call_id=req.call_id, cseq=3,
                  to_tag=to_tag, expires=0)
    agent.in_dialog(end, Txn(end), inbound())
    (final,) = edge.notifies()
    assert final.headers.get("subscription-state") == "terminated;reason=timeout"
    unknown = request("SUBSCRIBE", "127.0.0.1:5060", from_="carol@example.com", call_id=req.call_id, cseq=4,
                      to_tag=to_tag, expires=300)
    assert agent.in_dialog(unknown, Txn(unknown), inbound()).status == 481


def test_bad_requests(world):
    agent, edge, _, _ = world
    assert subscribe(agent, "carol", event="dialog")[1].status == 489
    assert subscribe(agent, "carol", expires=5)[1].status == 423
    assert subscribe(agent, "carol", target="nobody@example.com")[1].status == 404
    assert subscribe(agent, "carol", event="presence.winfo")[1].status == 403  # not carol's winfo
    req = request("PUBLISH", "bob@example.com", from_="carol@example.com", body=doc("a", "open"))
    assert agent.on_request(req, Txn(req), inbound(), Account("carol")).status == 403
    assert edge.sent == []


def test_subscription_flood_is_bounded(world):
    agent, edge, sessions, _ = world
    statuses = []
    for _ in range(5):
        _, out = subscribe(agent, "carol")
        statuses.append(out.status if out is not None else edge.responses[-1].status)
    assert statuses == [200, 200, 200, 503, 503]
    with sessions() as s:
        assert len(s.scalars(select(PresenceSubscription.id)).all()) == 3


def test_481_or_timeout_to_notify_ends_and_expiry_sweeps(world):
    agent, edge, sessions, clock = world
    subscribe(agent, "carol")
    subscribe(agent, "dave")
    carol_txn, dave_txn = edge.sent
    edge.sent.clear()
    # what the proxy's response handling calls with the NOTIFY transaction's user data
    dave_txn.user_data.answered(Response(200))
    carol_txn.user_data.answered(Response(481))
    with sessions() as s:
        assert s.scalars(select(PresenceSubscription.watcher)).all() == ["dave@example.com"]
    clock.now += 601
    agent.sweep()
    (final,) = edge.notifies()
    assert final.headers.get("subscription-state") == "terminated;reason=timeout"
    assert str(final.to.uri) == "sip:dave@example.com"
    with sessions() as s:
        assert s.scalars(select(PresenceSubscription.id)).all() == []
    subscribe(agent, "eve")
    (eve_txn,) = edge.sent
    edge.sent.clear()
    eve_txn.user_data.failed(408)  # no answer at all
    with sessions() as s:
        assert s.scalars(select(PresenceSubscription.id)).all() == []


def test_publication_expiry_renotifies(world):
    agent, edge, sessions, clock = world
    write_rules(sessions, "bob@example.com", rules(rule("all", "", "allow", ALL)))
    req = request("PUBLISH", "bob@example.com", from_="bob@example.com", expires=120, body=doc("p", "open", "Here"))
    agent.on_request(req, Txn(req), inbound(), Account("bob"))
    subscribe(agent, "carol")
    (first,) = edge.notifies()
    assert b"Here" in first.body
    clock.now += 121
    agent.sweep()
    (after,) = edge.notifies()
    assert b"Here" not in after.body and b"closed" in after.body
    with sessions() as s:
        assert s.scalars(select(PresencePublication.id)).all() == []


def test_xcap_diff_lists_old_and_new_etags(world):
    agent, edge, sessions, _ = world
    write_rules(sessions, "carol@example.com", rules(), "e1")
    subscribe(agent, "carol", target="carol@example.com", event="xcap-diff")
    (first,) = edge.notifies()
    assert b'sel="pres-rules/users/sip:carol@example.com/index"' in first.body and b'new-etag="e1"' in first.body
    write_rules(sessions, "carol@example.com", rules(rule("x", "", "allow")), "e2")
    agent.documents_changed("carol@example.com")
    (change,) = edge.notifies()
    assert b'previous-etag="e1"' in change.body and b'new-etag="e2"' in change.body
    assert change.headers.get("content-type") == "application/xcap-diff+xml"


def test_a_rule_naming_an_alias_names_the_watcher(world):
    agent, edge, sessions, _ = world
    write_rules(sessions, "carol@example.com",
                rules(rule("r", '<identity><one id="sip:robert@example.com"/></identity>', "allow", ALL)))
    subscribe(agent, "bob", target="carol@example.com")  # bob is also robert@example.com
    (notify,) = edge.notifies()
    assert notify.headers.get("subscription-state").startswith("active;")
    subscribe(agent, "eve", target="carol@example.com")
    (other,) = edge.notifies()
    assert other.headers.get("subscription-state").startswith("pending;")


def test_a_removed_account_ends_its_subscriptions_with_noresource(world):
    agent, edge, sessions, _ = world
    subscribe(agent, "carol", target="dave@example.com")
    subscribe(agent, "dave", target="dave@example.com", event="presence.winfo")
    edge.notifies()
    agent.account_changed("dave@example.com")  # still there: nothing happens
    assert edge.notifies() == []
    with sessions() as s, s.begin():
        s.delete(s.scalars(select(SipAccount).where(SipAccount.username == "dave")).one())
    agent.account_changed("dave@example.com")
    states = sorted(n.headers.get("subscription-state") for n in edge.notifies())
    assert states == ["terminated;reason=noresource", "terminated;reason=noresource"]
    with sessions() as s:
        assert s.scalars(select(PresenceSubscription.id)).all() == []


def test_two_proxies_following_the_same_change_notify_once(world):
    """Both proxies on one database see the same XCAP change: the re-decision and the
    xcap-diff are claimed by a conditional update, so the watcher hears of it once."""
    from .support import Directory, Edge

    agent, edge, sessions, clock = world
    other_edge = Edge()
    other = PresenceAgent(other_edge, agent.store.__class__(sessions), Directory(), agent.settings,
                          xcap_root=agent.xcap_root, clock=clock)
    subscribe(agent, "carol")
    subscribe(agent, "bob", target="bob@example.com", event="xcap-diff")
    edge.notifies()
    write_rules(sessions, "bob@example.com",
                rules(rule("c", '<identity><one id="sip:carol@example.com"/></identity>', "allow", ALL)), "r7")
    other.documents_changed("bob@example.com")
    agent.documents_changed("bob@example.com")
    sent = other_edge.notifies() + edge.notifies()
    events = sorted(n.headers.get("event") for n in sent)
    assert events == ["presence", "xcap-diff"]


def test_pidf_manipulation_state_is_composed_and_notified(world):
    """RFC 4827: the state a user sets through XCAP joins its published state."""
    agent, edge, sessions, _ = world
    write_rules(sessions, "bob@example.com", rules(rule("all", "", "allow", ALL)))
    subscribe(agent, "carol")
    (first,) = edge.notifies()
    assert b"On holiday" not in first.body
    with sessions() as s, s.begin():
        s.add(XcapDocument(auid="pidf-manipulation", xui="bob@example.com", filename="index", etag="m1",
                           document=doc("xcap", "closed", "On holiday").decode()))
    agent.documents_changed("bob@example.com", frozenset({"pidf-manipulation"}))
    (second,) = edge.notifies()
    assert b"On holiday" in second.body
    req = request("PUBLISH", "bob@example.com", from_="bob@example.com", body=doc("phone", "open", "Back early"))
    agent.on_request(req, Txn(req), inbound(), Account("bob"))
    (third,) = edge.notifies()  # both: the XCAP tuple and the phone's, the newest note
    assert b'id="xcap"' in third.body and b'id="phone"' in third.body and b"Back early" in third.body


def test_a_subscriber_that_cannot_read_pidf_gets_406(world):
    agent, edge, _, _ = world
    _, out = subscribe(agent, "carol", extra=("Accept: application/xpidf+xml",))
    assert out.status == 406 and out.headers.get("accept") == "application/pidf+xml"
    assert edge.sent == []
