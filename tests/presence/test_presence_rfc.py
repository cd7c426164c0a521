"""RFC 6665 notifier rules and RFC 3903 publication decisions, without any I/O."""

from __future__ import annotations

from sipproxy.presence import publication, subscription
from sipproxy.presence.subscription import Settings

from .messages import request
from .test_presence_pidf import doc

SETTINGS = Settings(min_expires=60, max_expires=3600, default_expires=600, max_body=4096)


def test_expires_granted_capped_and_423():
    assert subscription.granted_expires(request("SUBSCRIBE", "bob@example.com"), SETTINGS) == 600
    assert subscription.granted_expires(request("SUBSCRIBE", "bob@example.com", expires=99999), SETTINGS) == 3600
    assert subscription.granted_expires(request("SUBSCRIBE", "bob@example.com", expires=0), SETTINGS) == 0
    short = subscription.granted_expires(request("SUBSCRIBE", "bob@example.com", expires=10), SETTINGS)
    assert short.status == 423 and short.headers.get("min-expires") == "60"


def test_event_header():
    assert subscription.parse_event("Presence;id=7") == ("presence", "7")
    assert subscription.parse_event(None) == ("", "")


def test_notify_is_built_in_the_dialog_with_rising_cseq():
    req = request("SUBSCRIBE", "bob@example.com", extra=("Record-Route: <sip:192.0.2.2;lr>",))
    sub = subscription.new_subscription(req, "presence", "", "bob@example.com", "carol@example.com",
                                        "<sip:127.0.0.1:5060>", "udp:192.0.2.5:5062", 600, 1000.0)
    assert sub.to_tag.startswith(subscription.TAG_PREFIX)
    first = subscription.build_notify(sub, 1100.0)
    second = subscription.build_notify(sub, 1100.0, b"<x/>", "application/pidf+xml")
    assert first.cseq == (1, "NOTIFY") and second.cseq == (2, "NOTIFY")
    assert first.from_.tag == sub.to_tag and first.to.tag == "ft1" and first.call_id == req.call_id
    assert str(first.uri) == "sip:carol@192.0.2.5:5062"
    assert first.headers.get("route") == "<sip:192.0.2.2;lr>"
    assert first.headers.get("subscription-state") == "pending;expires=500"
    sub.state, sub.reason = "terminated", "probation"
    third = subscription.build_notify(sub, 1100.0)
    assert third.headers.get("subscription-state") == "terminated;reason=probation;retry-after=60"
    assert subscription.ends_subscription(481) and subscription.ends_subscription(408)
    assert not subscription.ends_subscription(200) and not subscription.ends_subscription(500)


def publish(etag: str = "", body: bytes = b"", expires: int | None = 600, event: str = "presence"):
    extra = (f"SIP-If-Match: {etag}",) if etag else ()
    return request("PUBLISH", "bob@example.com", from_="bob@example.com", event=event, expires=expires,
                   body=body, extra=extra)


def test_publish_initial_refresh_modify_remove_and_stale_tag():
    now = 1000.0
    first = publication.handle_publish(publish(body=doc("a", "open")), "bob@example.com", {}, now, SETTINGS)
    assert first.response.status == 200 and first.action == "insert" and first.changed
    tag = first.response.headers.get("sip-etag")
    assert tag == first.publication.etag and first.response.headers.get("expires") == "600"
    current = {tag: first.publication}
    refresh = publication.handle_publish(publish(tag), "bob@example.com", current, now + 10, SETTINGS)
    assert refresh.action == "update" and not refresh.changed
    assert refresh.publication.etag != tag and refresh.publication.document == first.publication.document
    modify = publication.handle_publish(publish(tag, doc("a", "closed")), "bob@example.com", current, now, SETTINGS)
    assert modify.action == "update" and modify.changed and "closed" in modify.publication.document
    remove = publication.handle_publish(publish(tag, expires=0), "bob@example.com", current, now, SETTINGS)
    assert remove.action == "remove" and remove.old_etag == tag and remove.response.status == 200
    stale = publication.handle_publish(publish("nope"), "bob@example.com", current, now, SETTINGS)
    assert stale.response.status == 412 and stale.action == ""
    lapsed = publication.handle_publish(publish(tag), "bob@example.com", current, now + 601, SETTINGS)
    assert lapsed.response.status == 412


def test_publish_refusals():
    now = 1000.0
    assert publication.handle_publish(publish(body=doc("a", "open"), event="dialog"), "b", {}, now,
                                      SETTINGS).response.status == 489
    assert publication.handle_publish(publish(body=doc("a", "open"), expires=5), "b", {}, now,
                                      SETTINGS).response.status == 423
    assert publication.handle_publish(publish(), "b", {}, now, SETTINGS).response.status == 400
    xxe = (b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:b@x"><note>&x;</note></presence>')
    bad = publication.handle_publish(publish(body=xxe), "b", {}, now, SETTINGS)
    assert bad.response.status == 400 and bad.action == ""
    big = publication.handle_publish(publish(body=doc("a", "open", "x" * 5000)), "b", {}, now, SETTINGS)
    assert big.response.status == 413


def test_change_feed_names_the_trees_whose_documents_changed():
    from ngnpro.models.changes import Change
    from sipproxy.presence.service import changed_trees

    changes = [Change(1, "xcap", "pres-rules/bob@example.com/index"), Change(2, "sip_account", "bob@example.com"),
               Change(3, "xcap", "resource-lists/sip:carol@example.com/index"),
               Change(4, "xcap", "pres-rules/bob@example.com/index"), Change(5, "xcap", "malformed")]
    assert changed_trees(changes) == {"bob@example.com": {"pres-rules"}, "carol@example.com": {"resource-lists"}}


def test_the_service_hands_each_change_to_the_agent():
    from ngnpro.models.changes import Change
    from sipproxy.presence.service import PresenceService

    calls = []

    class Agent:
        def state_changed(self, presentity):  # noqa: ANN001, ANN202
            calls.append(("state", presentity))

        def account_changed(self, account):  # noqa: ANN001, ANN202
            calls.append(("account", account))

        def documents_changed(self, xui, auids):  # noqa: ANN001, ANN202
            calls.append(("documents", xui, sorted(auids)))

    service = object.__new__(PresenceService)  # (no change feed: apply() alone)
    service.agent = Agent()
    service.apply([Change(1, "presence", "bob@example.com"), Change(2, "sip_account", "eve@example.com"),
                   Change(3, "xcap", "pidf-manipulation/bob@example.com/index"),
                   Change(4, "xcap", "pres-rules/bob@example.com/index"), Change(5, "presence", "bob@example.com")])
    assert calls == [("account", "eve@example.com"), ("state", "bob@example.com"),
                     ("documents", "bob@example.com", ["pidf-manipulation", "pres-rules"])]


def test_accept():
    def req(*accept: str):  # noqa: ANN202
        return request("SUBSCRIBE", "bob@example.com", extra=tuple(f"Accept: {a}" for a in accept))

    assert subscription.accepts(req(), "application/pidf+xml")  # no Accept: the default type
    assert subscription.accepts(req("application/pidf+xml;q=1, text/plain"), "application/pidf+xml")
    assert subscription.accepts(req("application/*"), "application/pidf+xml")
    assert not subscription.accepts(req("application/xpidf+xml"), "application/pidf+xml")
    assert subscription.accepts(req("multipart/related", "application/rlmi+xml, application/pidf+xml"),
                                "multipart/related", "application/rlmi+xml", "application/pidf+xml")
