"""RFC 4662 / RFC 4826: finding a list, the RLMI document and the multipart body; the list
server in the agent (full state, then partial on a PUBLISH or a rules change)."""

from __future__ import annotations

import pytest
from lxml import etree
from sqlalchemy import select

from ngnpro.models import PresenceSubscription, XcapDocument
from sipproxy.presence import rls
from sipproxy.presence.pidf import XmlError
from sipproxy.sip.parser import make_response, parse_message

from .messages import request
from .support import Account, Txn, inbound
from .test_presence_pidf import doc
from .test_presence_policy import ALL, rule, rules

RLS_DOC = """<?xml version="1.0"?>
<rls-services xmlns="urn:ietf:params:xml:ns:rls-services" xmlns:rl="urn:ietf:params:xml:ns:resource-lists">
 <service uri="sip:carol-inline@example.com">
  <list name="inline"><rl:entry uri="sip:bob@example.com"><rl:display-name>Bob</rl:display-name></rl:entry>
   <rl:list name="nested"><rl:entry uri="sip:dave@example.com"/></rl:list></list>
  <packages><package>presence</package></packages>
 </service>
 <service uri="sip:carol-friends@example.com">
  <resource-list>http://xcap.example.com/xcap-root/resource-lists/users/sip:carol@example.com/index/~~/resource-lists/list%5b@name=%22friends%22%5d</resource-list>
  <packages><package>presence</package></packages>
 </service>
</rls-services>"""
LISTS_DOC = """<?xml version="1.0"?>
<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">
 <list name="friends"><entry uri="sip:bob@example.com"/><entry uri="sip:dave@example.com"/>
  <list name="far"><entry uri="sip:zed@elsewhere.example"/></list></list>
 <list name="work"><entry uri="sip:eve@example.com"/></list>
</resource-lists>"""


FAR = (b'<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:zed@elsewhere.example">'
       b'<tuple id="z"><status><basic>open</basic></status></tuple><note>Far away</note></presence>')


def test_find_service_inline_and_by_reference():
    inline = rls.find_service(RLS_DOC, "sip:carol-inline@example.com")
    assert inline.entries == (("sip:bob@example.com", "Bob"), ("sip:dave@example.com", ""))
    ref = rls.find_service(RLS_DOC, "sip:carol-friends@example.com")
    assert ref.entries == () and ref.packages == ("presence",)
    assert rls.parse_list_reference(ref.reference) == ("carol@example.com", "index", ["friends"])
    assert rls.list_entries(LISTS_DOC, ["friends"]) == [
        ("sip:bob@example.com", ""), ("sip:dave@example.com", ""), ("sip:zed@elsewhere.example", "")]
    assert rls.find_service(RLS_DOC, "sip:nothing@example.com") is None


def test_hostile_lists_are_refused():
    deep = "<resource-lists xmlns='urn:ietf:params:xml:ns:resource-lists'>" + "<list>" * 20 + "</list>" * 20 + \
           "</resource-lists>"
    with pytest.raises(XmlError, match="too deep"):
        rls.list_entries(deep, [])
    many = "<resource-lists xmlns='urn:ietf:params:xml:ns:resource-lists'><list>" + "".join(
        f"<entry uri='sip:u{i}@example.com'/>" for i in range(rls.MAX_RESOURCES + 1)) + "</list></resource-lists>"
    with pytest.raises(XmlError, match="over"):
        rls.list_entries(many, [])
    with pytest.raises(XmlError):
        rls.find_service('<!DOCTYPE x [<!ENTITY a "b">]><rls-services/>', "sip:x@y")


def test_multipart_body_with_rlmi_first():
    body, ctype = rls.multipart("sip:l@example.com", 3, False, [
        rls.Resource("sip:bob@example.com", "Bob", "active", body=b"<presence/>"),
        rls.Resource("sip:eve@example.com", state="terminated", reason="rejected")], "example.com")
    assert ctype.startswith('multipart/related;type="application/rlmi+xml";start="<rlmi-')
    boundary = ctype.split('boundary="')[1].rstrip('"')
    parts = body.split(f"--{boundary}".encode())
    assert parts[-1].strip() == b"--" and len(parts) == 4  # preamble, rlmi, pidf, end
    rlmi_head, rlmi_xml = parts[1].split(b"\r\n\r\n", 1)
    assert b"application/rlmi+xml" in rlmi_head and ctype.split("start=\"")[1].split('"')[0].encode() in rlmi_head
    root = etree.fromstring(rlmi_xml.strip())
    assert root.get("version") == "3" and root.get("fullState") == "false"
    bob, eve = root
    bob_instance = bob.find(f"{{{rls.RLMI_NS}}}instance")
    assert bob_instance.get("state") == "active"
    assert f"Content-ID: <{bob_instance.get('cid')}>".encode() in parts[2]
    eve_instance = eve.find(f"{{{rls.RLMI_NS}}}instance")
    assert eve_instance.get("reason") == "rejected" and eve_instance.get("cid") is None


def _rlmi(notify):  # noqa: ANN001, ANN202
    boundary = notify.headers.get("content-type").split('boundary="')[1].rstrip('"')
    parts = notify.body.split(f"--{boundary}".encode())
    root = etree.fromstring(parts[1].split(b"\r\n\r\n", 1)[1].strip())
    states = {r.get("uri"): r.find(f"{{{rls.RLMI_NS}}}instance").get("state") for r in root}
    return root, states, notify.body


def test_list_subscription_full_then_partial(world):
    agent, edge, sessions, _ = world
    with sessions() as s, s.begin():
        s.add(XcapDocument(auid="rls-services", xui="carol@example.com", filename="index", document=RLS_DOC,
                           etag="a"))
        s.add(XcapDocument(auid="resource-lists", xui="carol@example.com", filename="index", document=LISTS_DOC,
                           etag="b"))
        s.add(XcapDocument(auid="pres-rules", xui="bob@example.com", filename="index",
                           document=rules(rule("c", '<identity><one id="sip:carol@example.com"/></identity>',
                                               "allow", ALL)), etag="c"))
    pub = request("PUBLISH", "bob@example.com", from_="bob@example.com", body=doc("p", "open", "At lunch"))
    agent.on_request(pub, Txn(pub), inbound(), Account("bob"))
    # without Supported: eventlist -> 421
    req = request("SUBSCRIBE", "carol-friends@example.com", from_="carol@example.com")
    assert agent.on_request(req, Txn(req), inbound(), Account("carol")).status == 421
    req = request("SUBSCRIBE", "carol-friends@example.com", from_="carol@example.com",
                  extra=("Supported: eventlist",))
    assert agent.on_request(req, Txn(req), inbound(), Account("carol")) is None
    ok = edge.responses[-1]
    assert ok.status == 200 and ok.headers.get("require") == "eventlist"
    (first_txn, backend_txn) = edge.sent
    first = first_txn.request
    edge.sent.clear()
    root, states, body = _rlmi(first)
    assert root.get("fullState") == "true" and root.get("version") == "0"
    assert states == {"sip:bob@example.com": "active", "sip:dave@example.com": "pending",
                      "sip:zed@elsewhere.example": "pending"}
    assert b"At lunch" in body
    # the foreign resource: a SUBSCRIBE of the list server's own, on carol's behalf
    backend = backend_txn.request
    assert backend.method == "SUBSCRIBE" and str(backend.uri) == "sip:zed@elsewhere.example"
    assert str(backend.from_.uri) == "sip:carol@example.com" and backend.from_.tag.startswith("rl-")
    assert backend.headers.get("event") == "presence" and backend.to.tag is None
    backend_txn.user_data.answered(make_response(backend, 200, to_tag="far1", headers=[
        ("Contact", "<sip:zed@192.0.2.9:5070>"), ("Expires", "3600")]))
    far_notify = parse_message((
        "NOTIFY sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9:5070;branch=z9hG4bK-far1\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:zed@elsewhere.example>;tag=far1\r\nTo: {backend.headers.get('from')}\r\n"
        f"Call-ID: {backend.call_id}\r\nCSeq: 1 NOTIFY\r\nContact: <sip:zed@192.0.2.9:5070>\r\n"
        "Event: presence\r\nSubscription-State: active;expires=3600\r\n"
        f"Content-Type: application/pidf+xml\r\nContent-Length: {len(FAR)}\r\n\r\n").encode() + FAR)
    assert agent.owns(far_notify)
    assert agent.in_dialog(far_notify, Txn(far_notify), inbound()) is None
    assert edge.responses[-1].status == 200
    (far,) = edge.notifies()
    root, states, body = _rlmi(far)
    assert states == {"sip:zed@elsewhere.example": "active"} and root.get("version") == "1"
    assert b"Far away" in body
    stray = parse_message(far_notify.to_bytes().replace(b"tag=far1", b"tag=other"))
    assert agent.in_dialog(stray, Txn(stray), inbound()).status == 481  # a fork's NOTIFY
    # bob publishes again: one NOTIFY for the list, with bob alone
    etag = agent.store.publications("bob@example.com", agent.clock()).popitem()[0]
    pub = request("PUBLISH", "bob@example.com", from_="bob@example.com", body=doc("p", "closed", "Back soon"),
                  extra=(f"SIP-If-Match: {etag}",))
    agent.on_request(pub, Txn(pub), inbound(), Account("bob"))
    (partial,) = edge.notifies()
    root, states, body = _rlmi(partial)
    assert root.get("fullState") == "false" and root.get("version") == "2"
    assert states == {"sip:bob@example.com": "active"} and b"Back soon" in body
    # dave allows carol: the list hears of it
    with sessions() as s, s.begin():
        s.add(XcapDocument(auid="pres-rules", xui="dave@example.com", filename="index",
                           document=rules(rule("all", "", "allow", ALL)), etag="d"))
    agent.documents_changed("dave@example.com")
    (dave,) = edge.notifies()
    root, states, _ = _rlmi(dave)
    assert states == {"sip:dave@example.com": "active"} and root.get("version") == "3"
    # the list changes: a full-state NOTIFY with the new members
    with sessions() as s, s.begin():
        row = s.scalars(select(XcapDocument).where(XcapDocument.auid == "resource-lists")).one()
        row.document = LISTS_DOC.replace('<entry uri="sip:dave@example.com"/>', "")
    agent.documents_changed("carol@example.com")
    (relisted,) = edge.notifies()
    root, states, _ = _rlmi(relisted)
    assert root.get("fullState") == "true" and root.get("version") == "4"
    assert states == {"sip:bob@example.com": "active", "sip:zed@elsewhere.example": "active"}
    with sessions() as s:
        row = s.scalars(select(PresenceSubscription).where(PresenceSubscription.action == "rls")).one()
        assert row.resources == "\nbob@example.com\nzed@elsewhere.example\n" and row.version == 4
    # carol ends the list subscription: the back-end one ends too (SUBSCRIBE, Expires 0)
    end = request("SUBSCRIBE", "127.0.0.1:5060", from_="carol@example.com", call_id=req.call_id, cseq=2,
                  to_tag=ok.to.tag, expires=0)
    agent.in_dialog(end, Txn(end), inbound())
    final, unsubscribe = edge.notifies()
    assert final.headers.get("subscription-state") == "terminated;reason=timeout"
    assert unsubscribe.method == "SUBSCRIBE" and unsubscribe.headers.get("expires") == "0"
    assert unsubscribe.to.tag == "far1" and str(unsubscribe.uri) == "sip:zed@192.0.2.9:5070"
    assert unsubscribe.cseq[0] == backend.cseq[0] + 1
    with sessions() as s:
        assert s.scalars(select(PresenceSubscription.id)).all() == []


def test_unknown_list_is_404(world):
    agent, edge, _, _ = world
    req = request("SUBSCRIBE", "nolist@example.com", from_="carol@example.com", extra=("Supported: eventlist",))
    assert agent.on_request(req, Txn(req), inbound(), Account("carol")).status == 404


def test_a_list_of_100_gets_one_notify_per_change(world):
    agent, edge, sessions, _ = world
    entries = "".join(f'<rl:entry uri="sip:u{i}@example.com"/>' for i in range(100))
    with sessions() as s, s.begin():
        s.add(XcapDocument(auid="rls-services", xui="carol@example.com", filename="index", etag="a", document=(
            '<rls-services xmlns="urn:ietf:params:xml:ns:rls-services" '
            'xmlns:rl="urn:ietf:params:xml:ns:resource-lists"><service uri="sip:carol-all@example.com">'
            f'<list name="all">{entries}</list></service></rls-services>')))
    req = request("SUBSCRIBE", "carol-all@example.com", from_="carol@example.com", extra=("Supported: eventlist",))
    agent.on_request(req, Txn(req), inbound(), Account("carol"))
    (full,) = edge.notifies()
    assert len(_rlmi(full)[1]) == 100
    for i in (7, 42, 99):
        pub = request("PUBLISH", f"u{i}@example.com", from_=f"u{i}@example.com", body=doc("p", "open"))
        agent.on_request(pub, Txn(pub), inbound(), Account(f"u{i}"))
        (one,) = edge.notifies()  # one NOTIFY per change, naming that resource alone
        assert list(_rlmi(one)[1]) == [f"sip:u{i}@example.com"]
