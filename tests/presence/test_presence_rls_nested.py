"""RFC 4662 section 5 nested lists (a nested RLMI document per nested list, its own version,
full then partial state) and RFC 4826 ``entry-ref``/``external`` references, resolved from
the XCAP documents in SQL within the subscriber's own and the global tree only."""

from __future__ import annotations

import pytest

from ngnpro.models import XcapDocument
from ngnpro.models.changes import TOPIC_XCAP, Change
from sipproxy.presence import rls
from sipproxy.presence.pidf import XmlError
from sipproxy.presence.service import PresenceService

from .messages import request
from .support import Account, Txn, inbound
from .test_presence_pidf import doc
from .test_presence_policy import ALL, rule, rules
from .test_presence_rls import expand, flat, related

ROOT = "http://xcap.example.com/xcap-root/"
RLS_NS = ("xmlns='urn:ietf:params:xml:ns:rls-services' xmlns:rl='urn:ietf:params:xml:ns:resource-lists'")
RL_NS = "xmlns='urn:ietf:params:xml:ns:resource-lists'"
CAROL = ("rls-services", "carol@example.com", "index")
CAROL_LISTS = ("resource-lists", "carol@example.com", "index")


def service(body: str, uri: str = "sip:carol-l@example.com") -> str:
    return f"<rls-services {RLS_NS}><service uri='{uri}'><list name='top'>{body}</list></service></rls-services>"


def lists(body: str) -> str:
    return f"<resource-lists {RL_NS}>{body}</resource-lists>"


def test_entry_ref_and_external_are_resolved_within_own_and_global_trees():
    own = f"{ROOT}resource-lists/users/sip:carol@example.com/index/~~/resource-lists/list%5b@name=%22work%22%5d"
    shared = f"{ROOT}resource-lists/global/index/~~/resource-lists/list%5B@name=%22staff%22%5D"
    docs = {
        CAROL: service(
            "<rl:entry-ref ref='resource-lists/users/sip:carol@example.com/index/~~/resource-lists/"
            "list%5b@name=%22work%22%5d/entry%5b@uri=%22sip:eve@example.com%22%5d'>"
            "<rl:display-name>Evie</rl:display-name></rl:entry-ref>"
            f"<rl:external anchor='{own}'><rl:display-name>Work</rl:display-name></rl:external>"
            f"<rl:external anchor='{shared}'/>"
            # not followed: another server, another user's tree, a path that selects nothing
            "<rl:external anchor='http://xcap.elsewhere.example/xcap-root/resource-lists/users/"
            "sip:carol@example.com/index/~~/resource-lists/list%5b@name=%22work%22%5d'/>"
            f"<rl:external anchor='{ROOT}resource-lists/users/sip:bob@example.com/index'/>"
            "<rl:entry-ref ref='resource-lists/users/sip:bob@example.com/index/~~/resource-lists/list/entry'/>"
            f"<rl:external anchor='{ROOT}resource-lists/global/index/~~/resource-lists/list%5B@name=%22none%22%5D'/>"),
        CAROL_LISTS: lists("<list name='work'><entry uri='sip:eve@example.com'><display-name>Eve</display-name>"
                           "</entry><entry uri='sip:dave@example.com'/></list>"),
        ("resource-lists", "", "index"): lists("<list name='staff'><entry uri='sip:u1@example.com'/></list>"),
        ("resource-lists", "bob@example.com", "index"): lists("<list><entry uri='sip:secret@example.com'/></list>"),
    }
    tree, read = expand(docs, "sip:carol-l@example.com", root=ROOT)
    assert flat(tree) == [("sip:eve@example.com", "Evie"),
                          ("Work", [("sip:eve@example.com", "Eve"), ("sip:dave@example.com", "")]),
                          (shared, [("sip:u1@example.com", "")])]
    assert tree.members[1].uri == own  # an external's nested list is named by its anchor
    assert tree.resources() == ("eve@example.com", "dave@example.com", "u1@example.com")
    assert read == {"rls-services/carol@example.com/index", "resource-lists/carol@example.com/index",
                    "resource-lists//index"}  # (bob's document never read)


def test_reference_cycles_are_skipped_and_bounds_hold():
    me = f"{ROOT}resource-lists/users/sip:carol@example.com/index/~~/resource-lists/list%5b@name=%22a%22%5d"
    other = me.replace("%22a%22", "%22b%22")
    docs = {CAROL: service(f"<rl:external anchor='{me}'/>"),
            CAROL_LISTS: lists(f"<list name='a'><entry uri='sip:bob@example.com'/><external anchor='{other}'/></list>"
                               f"<list name='b'><entry uri='sip:dave@example.com'/><external anchor='{me}'/>"
                               f"<external anchor='{other}'/></list>")}
    tree, _ = expand(docs, "sip:carol-l@example.com", root=ROOT)
    assert flat(tree) == [(me, [("sip:bob@example.com", ""), (other, [("sip:dave@example.com", "")])])]
    # a chain of lists deeper than MAX_DEPTH through externals
    chain = "".join(f"<list name='c{i}'><external anchor='{me.replace('%22a%22', f'%22c{i + 1}%22')}'/></list>"
                    for i in range(rls.MAX_DEPTH + 2))
    docs = {CAROL: service(f"<rl:external anchor='{me.replace('%22a%22', '%22c0%22')}'/>"), CAROL_LISTS: lists(chain)}
    with pytest.raises(XmlError, match="too deep"):
        expand(docs, "sip:carol-l@example.com", root=ROOT)
    # the same 150-entry list referenced twice counts twice: over MAX_RESOURCES
    many = "".join(f"<entry uri='sip:u{i}@example.com'/>" for i in range(150))
    big = me.replace("%22a%22", "%22big%22")
    docs = {CAROL: service(f"<rl:external anchor='{big}'/><rl:list name='x'><rl:external anchor='{big}'/></rl:list>"),
            CAROL_LISTS: lists(f"<list name='big'>{many}</list>")}
    with pytest.raises(XmlError, match="over"):
        expand(docs, "sip:carol-l@example.com", root=ROOT)


def _add(sessions, auid: str, xui: str, text: str, filename: str = "index") -> None:  # noqa: ANN001
    with sessions() as s, s.begin():
        row = s.query(XcapDocument).filter_by(auid=auid, xui=xui, filename=filename).first()
        if row is None:
            s.add(XcapDocument(auid=auid, xui=xui, filename=filename, document=text, etag="e"))
        else:
            row.document = text


def _nested(notify) -> tuple:  # noqa: ANN001
    """The outer RLMI root, its resources by URI -> (instance, nested root or None, parts)."""
    root, parts = related(notify.body, notify.headers.get("content-type"))
    out = {}
    for resource in root:
        instance = resource.find(f"{{{rls.RLMI_NS}}}instance")
        cid = instance.get("cid")
        ctype, data = parts.get(cid, ("", b""))
        inner = related(data, ctype) if ctype.startswith("multipart/related") else None
        out[resource.get("uri")] = (instance, inner, data)
    return root, out


def test_nested_list_rlmi_full_then_partial(world):
    agent, edge, sessions, _ = world
    family = (f"{ROOT}rls-services/users/sip:carol@example.com/index/~~/rls-services/"
              "service%5B@uri=%22sip:carol-l@example.com%22%5D/list%5B@name=%22top%22%5D/list%5B@name=%22family%22%5D")
    _add(sessions, *CAROL[:2], service("<rl:entry uri='sip:bob@example.com'/><rl:list name='family'>"
                                   "<rl:display-name>Family</rl:display-name><rl:entry uri='sip:dave@example.com'/>"
                                   "<rl:entry uri='sip:eve@example.com'/></rl:list>"))
    for who in ("bob", "dave"):
        _add(sessions, "pres-rules", f"{who}@example.com", rules(rule("all", "", "allow", ALL)))
        pub = request("PUBLISH", f"{who}@example.com", from_=f"{who}@example.com", body=doc("p", "open", f"{who} here"))
        agent.on_request(pub, Txn(pub), inbound(), Account(who))
    req = request("SUBSCRIBE", "carol-l@example.com", from_="carol@example.com", extra=("Supported: eventlist",))
    assert agent.on_request(req, Txn(req), inbound(), Account("carol")) is None
    (first,) = edge.notifies()
    root, members = _nested(first)
    assert (root.get("version"), root.get("fullState")) == ("0", "true")
    assert list(members) == ["sip:bob@example.com", family]
    instance, inner, _ = members[family]
    assert instance.get("state") == "active" and instance.get("id") == rls.instance_id(family)
    nested_root, nested_parts = inner
    assert nested_root.get("uri") == family and nested_root.getparent() is None
    assert (nested_root.get("version"), nested_root.get("fullState")) == ("0", "true")
    assert first.body.count(b"Family") == 1  # the nested list's name, in the outer document
    dave, eve = nested_root
    assert dave.find(f"{{{rls.RLMI_NS}}}instance").get("state") == "active"
    assert eve.find(f"{{{rls.RLMI_NS}}}instance").get("state") == "pending"
    assert b"dave here" in nested_parts[dave.find(f"{{{rls.RLMI_NS}}}instance").get("cid")][1]
    assert b"bob here" in members["sip:bob@example.com"][2]
    # dave publishes: the outer list reports the nested list alone, which reports dave alone
    etag = agent.store.publications("dave@example.com", agent.clock()).popitem()[0]
    pub = request("PUBLISH", "dave@example.com", from_="dave@example.com", body=doc("p", "closed", "dave away"),
                  extra=(f"SIP-If-Match: {etag}",))
    agent.on_request(pub, Txn(pub), inbound(), Account("dave"))
    (partial,) = edge.notifies()
    root, members = _nested(partial)
    assert (root.get("version"), root.get("fullState"), list(members)) == ("1", "false", [family])
    nested_root, nested_parts = members[family][1]
    assert (nested_root.get("version"), nested_root.get("fullState")) == ("1", "false")
    assert [r.get("uri") for r in nested_root] == ["sip:dave@example.com"] and b"dave away" in partial.body
    # bob publishes: the nested list is not in it, and keeps its version
    etag = agent.store.publications("bob@example.com", agent.clock()).popitem()[0]
    pub = request("PUBLISH", "bob@example.com", from_="bob@example.com", body=doc("p", "closed"),
                  extra=(f"SIP-If-Match: {etag}",))
    agent.on_request(pub, Txn(pub), inbound(), Account("bob"))
    root, members = _nested(edge.notifies()[0])
    assert (root.get("version"), list(members)) == ("2", ["sip:bob@example.com"])
    # eve moves to the top: a change of the list's shape is a full-state NOTIFY, each list one up
    _add(sessions, *CAROL[:2], service("<rl:entry uri='sip:bob@example.com'/><rl:entry uri='sip:eve@example.com'/>"
                                   "<rl:list name='family'><rl:entry uri='sip:dave@example.com'/></rl:list>"))
    agent.documents_changed("carol@example.com", frozenset({"rls-services"}))
    root, members = _nested(edge.notifies()[0])
    assert (root.get("version"), root.get("fullState")) == ("3", "true")
    assert list(members) == ["sip:bob@example.com", "sip:eve@example.com", family]
    nested_root = members[family][1][0]
    assert (nested_root.get("version"), nested_root.get("fullState")) == ("2", "true")
    assert [r.get("uri") for r in nested_root] == ["sip:dave@example.com"]
    agent.documents_changed("carol@example.com", frozenset({"rls-services"}))  # nothing changed: no NOTIFY
    assert edge.notifies() == []


def test_a_change_of_a_referenced_global_document_rereads_the_list(world):
    agent, edge, sessions, _ = world
    staff = f"{ROOT}resource-lists/global/shared/~~/resource-lists/list%5B@name=%22staff%22%5D"
    _add(sessions, *CAROL[:2], service(f"<rl:entry uri='sip:bob@example.com'/><rl:external anchor='{staff}'/>"))
    _add(sessions, "resource-lists", "", lists("<list name='staff'><entry uri='sip:dave@example.com'/></list>"),
         filename="shared")
    req = request("SUBSCRIBE", "carol-l@example.com", from_="carol@example.com", extra=("Supported: eventlist",))
    agent.on_request(req, Txn(req), inbound(), Account("carol"))
    root, members = _nested(edge.notifies()[0])
    assert [r.get("uri") for r in members[staff][1][0]] == ["sip:dave@example.com"]
    _add(sessions, "resource-lists", "", lists("<list name='staff'><entry uri='sip:dave@example.com'/>"
                                               "<entry uri='sip:zed@elsewhere.example'/></list>"), filename="shared")
    service_ = PresenceService(agent, sessions)
    service_.apply([Change(1, TOPIC_XCAP, "resource-lists//shared"), Change(2, TOPIC_XCAP, "resource-lists//other")])
    full, backend = edge.notifies()
    root, members = _nested(full)
    assert (root.get("version"), root.get("fullState")) == ("1", "true")
    nested_root = members[staff][1][0]
    assert nested_root.get("version") == "1"
    assert [r.get("uri") for r in nested_root] == ["sip:dave@example.com", "sip:zed@elsewhere.example"]
    # the back-end subscriptions follow: one for the new foreign member
    assert backend.method == "SUBSCRIBE" and str(backend.uri) == "sip:zed@elsewhere.example"
