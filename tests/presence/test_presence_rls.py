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


def expand(docs: dict, list_uri: str, owner: str = "carol@example.com",
           root: str = "http://xcap.example.com/xcap-root/") -> tuple:
    """The tree of ``owner``'s list ``list_uri`` with ``docs`` ((auid, xui, filename) -> text)
    as the XCAP store, and the documents read."""
    expander = rls.Expander(lambda a, x, f: docs.get((a, x, f)), owner, root)
    return expander.service(list_uri), expander.read


def flat(node) -> list:  # noqa: ANN001
    return [(m.uri, m.name) if isinstance(m, rls.Entry) else (m.name or m.uri, flat(m)) for m in node.members]


def test_find_service_inline_and_by_reference():
    docs = {("rls-services", "carol@example.com", "index"): RLS_DOC,
            ("resource-lists", "carol@example.com", "index"): LISTS_DOC}
    inline, read = expand(docs, "sip:carol-inline@example.com")
    assert read == {"rls-services/carol@example.com/index"}
    (bob, nested) = inline.members
    assert bob == rls.Entry("sip:bob@example.com", "Bob")
    assert nested.members == [rls.Entry("sip:dave@example.com")]
    assert nested.uri == ("http://xcap.example.com/xcap-root/rls-services/users/sip:carol@example.com/index/~~/"
                          "rls-services/service%5B@uri=%22sip:carol-inline@example.com%22%5D/list%5B@name=%22inline%22%5D/"
                          "list%5B@name=%22nested%22%5D")
    assert inline.resources() == ("bob@example.com", "dave@example.com")
    ref, read = expand(docs, "sip:carol-friends@example.com")
    assert "resource-lists/carol@example.com/index" in read
    assert flat(ref) == [("sip:bob@example.com", ""), ("sip:dave@example.com", ""),
                         (ref.members[2].uri, [("sip:zed@elsewhere.example", "")])]
    assert ref.members[2].uri.endswith("/~~/resource-lists/list%5B@name=%22friends%22%5D/list%5B@name=%22far%22%5D")
    assert expand(docs, "sip:nothing@example.com")[0] is None
    # another user's resource-lists is not the subscriber's to read: an empty list
    other = {**docs, ("rls-services", "carol@example.com", "index"): RLS_DOC.replace(
        "sip:carol@example.com/index", "sip:bob@example.com/index")}
    assert expand(other, "sip:carol-friends@example.com")[0].members == []


def test_hostile_lists_are_refused():
    def lists(body: str) -> dict:
        return {("rls-services", "carol@example.com", "index"): (
            "<rls-services xmlns='urn:ietf:params:xml:ns:rls-services' "
            "xmlns:rl='urn:ietf:params:xml:ns:resource-lists'>"
            f"<service uri='sip:l@example.com'><list>{body}</list></service></rls-services>")}
    deep = "<rl:list>" * 20 + "</rl:list>" * 20
    with pytest.raises(XmlError, match="too deep"):
        expand(lists(deep), "sip:l@example.com")
    many = "".join(f"<rl:entry uri='sip:u{i}@example.com'/>" for i in range(rls.MAX_RESOURCES + 1))
    with pytest.raises(XmlError, match="over"):
        expand(lists(many), "sip:l@example.com")
    with pytest.raises(XmlError):
        expand({("rls-services", "carol@example.com", "index"): '<!DOCTYPE x [<!ENTITY a "b">]><rls-services/>'},
               "sip:x@y")


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


def related(body: bytes, ctype: str) -> tuple:
    """A multipart/related body: its RLMI root (the ``start`` part, checked to be first) and
    its other parts by Content-ID -> (Content-Type, data)."""
    params = dict(p.strip().split("=", 1) for p in ctype.split(";")[1:])
    boundary, start = params["boundary"].strip('"'), params["start"].strip('"').strip("<>")
    assert ctype.startswith("multipart/related;") and params["type"].strip('"') == rls.RLMI_TYPE
    chunks = body.split(f"--{boundary}".encode())
    assert chunks[0] == b"" and chunks[-1].strip() == b"--"
    parts = {}
    for chunk in chunks[1:-1]:
        head, data = chunk[2:].split(b"\r\n\r\n", 1)
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        parts[headers["Content-ID"].strip("<>")] = (headers["Content-Type"], data[:-2])
    assert next(iter(parts)) == start and parts[start][0].startswith(rls.RLMI_TYPE)
    return etree.fromstring(parts.pop(start)[1]), parts


def states_of(root, parts: dict, out: dict | None = None) -> dict:  # noqa: ANN001
    """Resource URI -> state of an RLMI document and the nested lists it carries, flattened
    (a nested list's own resource left out); every cid must name a part."""
    out = {} if out is None else out
    for resource in root:
        instance = resource.find(f"{{{rls.RLMI_NS}}}instance")
        cid = instance.get("cid")
        if cid is not None:
            ctype, data = parts[cid]
            if ctype.startswith("multipart/related"):
                states_of(*related(data, ctype), out)
                continue
        out[resource.get("uri")] = instance.get("state")
    return out


def _rlmi(notify):  # noqa: ANN001, ANN202
    root, parts = related(notify.body, notify.headers.get("content-type"))
    return root, states_of(root, parts), notify.body


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
