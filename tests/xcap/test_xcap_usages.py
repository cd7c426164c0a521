"""Every application usage over HTTP: PUT, GET and DELETE of whole documents, the schema and
the usage's uniqueness and URI rules, the generated xcap-caps and xcap-directory, and the
change feed that tells the presence agent of each write."""

from __future__ import annotations

import time

import pytest
from lxml import etree

from ngnpro.models.changes import TOPIC_XCAP, ChangeFeed
from ngnpro.models.xcap import XcapDocument
from tests.helpers import count_rows
from tests.xcap.conftest import client_for
from tests.xcap.documents import RESOURCE_LISTS, RL_NS, RLS_SERVICES, USAGE_DOCUMENTS

RL = "application/resource-lists+xml"


def _stored(server, auid: str, xui: str = "alice@example.com", filename: str = "index") -> XcapDocument | None:
    from sqlalchemy import select

    with server.sessionmaker()() as s:
        return s.execute(select(XcapDocument).where(XcapDocument.auid == auid, XcapDocument.xui == xui,
                                                    XcapDocument.filename == filename)).scalar_one_or_none()


@pytest.mark.parametrize("auid", sorted(USAGE_DOCUMENTS))
def test_usage_put_get_replace_delete(xcap_server, alice, auid) -> None:
    mime, doc = USAGE_DOCUMENTS[auid]
    path = alice.user_path(auid)
    assert alice.get(path).status == 404
    created = alice.put(path, doc, mime)
    assert created.status == 201, created.body
    assert created.etag
    got = alice.get(path)
    assert (got.status, got.content_type, got.body) == (200, mime, doc.encode())
    assert got.etag == created.etag
    row = _stored(xcap_server, auid)
    assert row is not None and row.document == doc and f'"{row.etag}"' == created.etag
    replaced = alice.put(path, doc, mime)  # the same bytes: still a write, a new tag
    assert replaced.status == 200 and replaced.etag != created.etag
    gone = alice.delete(path)
    assert gone.status == 200
    assert alice.get(path).status == 404
    assert _stored(xcap_server, auid) is None


@pytest.mark.parametrize("auid", sorted(USAGE_DOCUMENTS))
def test_usage_schema_is_checked(xcap_server, alice, auid) -> None:
    mime, doc = USAGE_DOCUMENTS[auid]
    root = etree.fromstring(doc.encode())
    etree.SubElement(root, f"{{{root.nsmap.get(None) or root.nsmap.get('cr')}}}no-such-element")
    bad = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    reply = alice.put(alice.user_path(auid), bad, mime)
    assert reply.status == 409
    assert etree.QName(reply.error()).localname == "schema-validation-error"
    assert reply.error().get("phrase")
    assert _stored(xcap_server, auid) is None


def test_wrong_content_type_is_415(xcap_server, alice) -> None:
    reply = alice.put(alice.user_path("resource-lists"), RESOURCE_LISTS, "application/xml")
    assert reply.status == 415
    assert _stored(xcap_server, "resource-lists") is None


def _uniqueness(reply) -> tuple[str, list[str]]:
    assert reply.status == 409, reply.body
    err = reply.error()
    assert etree.QName(err).localname == "uniqueness-failure"
    exists = err.find(f"{{{err.nsmap[None]}}}exists")
    return exists.get("field"), [a.text for a in exists]


def test_resource_lists_list_names_are_unique(xcap_server, alice) -> None:
    doc = RESOURCE_LISTS.replace('name="work"', 'name="friends"')
    field, alts = _uniqueness(alice.put(alice.user_path("resource-lists"), doc, RL))
    assert field == "/resource-lists/list[2]/@name"
    assert alts == ["friends-2"]
    assert _stored(xcap_server, "resource-lists") is None


def test_resource_lists_entry_uris_are_unique_in_a_list(xcap_server, alice) -> None:
    doc = RESOURCE_LISTS.replace("sip:carol@example.org", "sip:bob@example.com")
    field, alts = _uniqueness(alice.put(alice.user_path("resource-lists"), doc, RL))
    assert field == "/resource-lists/list[1]/entry[2]/@uri"
    assert alts == ["sip:bob-2@example.com"]
    # the same URI in two different lists is fine
    ok = RESOURCE_LISTS.replace("sip:dave@example.com", "sip:bob@example.com")
    assert alice.put(alice.user_path("resource-lists"), ok, RL).status == 201


def test_resource_lists_uri_rules(xcap_server, alice) -> None:
    for bad in (RESOURCE_LISTS.replace("sip:dave@example.com", "dave"),
                RESOURCE_LISTS.replace('<entry uri="sip:dave@example.com"/>',
                                       '<external anchor="ftp://example.com/x"/>'),
                RESOURCE_LISTS.replace('<entry uri="sip:dave@example.com"/>',
                                       '<entry-ref ref="http://example.com/other"/>')):
        reply = alice.put(alice.user_path("resource-lists"), bad, RL)
        assert reply.status == 409
        assert etree.QName(reply.error()).localname == "constraint-failure", reply.body
    assert _stored(xcap_server, "resource-lists") is None


def test_rls_service_uris_are_unique_in_the_document_and_on_the_server(xcap_server, alice, bob) -> None:
    mime = "application/rls-services+xml"
    doc = RLS_SERVICES.replace("sip:alice-team@example.com", "sip:alice-buddies@example.com")
    field, alts = _uniqueness(alice.put(alice.user_path("rls-services"), doc, mime))
    assert field == "/rls-services/service[2]/@uri" and alts == ["sip:alice-buddies-2@example.com"]
    assert alice.put(alice.user_path("rls-services"), RLS_SERVICES, mime).status == 201
    # bob may not take a service URI alice's document holds (RFC 4826 4.4.3)
    bobs = RLS_SERVICES.replace("alice-team", "bob-team")
    field, alts = _uniqueness(bob.put(bob.user_path("rls-services"), bobs, mime))
    assert field == "/rls-services/service[1]/@uri" and alts == ["sip:alice-buddies-2@example.com"]
    assert _stored(xcap_server, "rls-services", "bob@example.com") is None
    # alice rewriting her own document does not collide with itself
    assert alice.put(alice.user_path("rls-services"), RLS_SERVICES, mime).status == 200


def test_rls_inline_list_follows_the_resource_list_rules(xcap_server, alice) -> None:
    doc = RLS_SERVICES.replace('<rl:entry uri="sip:bob@example.com"/>',
                               '<rl:entry uri="sip:bob@example.com"/><rl:entry uri="sip:bob@example.com"/>')
    field, _ = _uniqueness(alice.put(alice.user_path("rls-services"), doc, "application/rls-services+xml"))
    assert field == "/rls-services/service[2]/list[1]/rl:entry[2]/@uri"


def test_pres_rules_rule_ids_unique_and_identities_uris(xcap_server, alice) -> None:
    mime, doc = USAGE_DOCUMENTS["pres-rules"]
    field, alts = _uniqueness(alice.put(alice.user_path("pres-rules"), doc.replace("block-carol", "allow-bob"), mime))
    assert field == "/ruleset/rule[2]/@id"
    assert alts == ["allow-bob-2"]
    reply = alice.put(alice.user_path("pres-rules"), doc.replace('id="sip:bob@example.com"', 'id="bob"'), mime)
    assert etree.QName(reply.error()).localname == "constraint-failure"


def test_xcap_caps_is_global_generated_and_read_only(xcap_server, alice) -> None:
    anonymous = client_for(xcap_server, None)
    reply = anonymous.get(f"{anonymous.root}/xcap-caps/global/index")
    assert reply.status == 200 and reply.content_type == "application/xcap-caps+xml" and reply.etag
    ns = "urn:ietf:params:xml:ns:xcap-caps"
    auids = {a.text for a in reply.xml().iter(f"{{{ns}}}auid")}
    assert {"xcap-caps", "resource-lists", "rls-services", "pres-rules", "org.openmobilealliance.pres-rules",
            "pidf-manipulation", "org.openmobilealliance.xcap-directory"} <= auids
    assert RL_NS in {n.text for n in reply.xml().iter(f"{{{ns}}}namespace")}
    assert anonymous.get(f"{anonymous.root}/xcap-caps/global/index",
                         headers={"If-None-Match": reply.etag}).status == 304
    put = anonymous.put(f"{anonymous.root}/xcap-caps/global/index", reply.body, "application/xcap-caps+xml")
    assert put.status == 405 and "GET" in put.headers["allow"]
    auid = anonymous.get(f"{anonymous.root}/xcap-caps/global/index/~~/xcap-caps/auids/auid[1]")
    assert auid.status == 200 and auid.content_type == "application/xcap-el+xml"


def test_global_trees_are_read_only(xcap_server, alice) -> None:
    path = f"{alice.root}/resource-lists/global/index"
    assert alice.get(path).status == 404
    assert alice.put(path, RESOURCE_LISTS, RL).status == 405
    assert alice.delete(path).status == 405
    assert count_rows(xcap_server.db_url, XcapDocument) == 0


def test_xcap_directory_lists_the_users_documents(xcap_server, alice, bob) -> None:
    assert alice.put(alice.user_path("resource-lists"), RESOURCE_LISTS, RL).status == 201
    pr = alice.put(alice.user_path("pres-rules"), *reversed(USAGE_DOCUMENTS["pres-rules"]))
    assert pr.status == 201
    assert bob.put(bob.user_path("resource-lists"), RESOURCE_LISTS, RL).status == 201
    path = alice.user_path("org.openmobilealliance.xcap-directory", "directory.xml")
    reply = alice.get(path)
    assert reply.status == 200 and reply.content_type == "application/vnd.oma.xcap-directory+xml"
    ns = "urn:oma:xml:xdm:xcap-directory"
    entries = {f.get("auid"): [e.attrib for e in f] for f in reply.xml().iter(f"{{{ns}}}folder")}
    assert len(entries["resource-lists"]) == 1 and len(entries["pres-rules"]) == 1
    assert entries["rls-services"] == []
    assert f'"{entries["pres-rules"][0]["etag"]}"' == pr.etag
    assert entries["resource-lists"][0]["uri"].endswith("/resource-lists/users/sip:alice@example.com/index")
    assert int(entries["resource-lists"][0]["size"]) == len(RESOURCE_LISTS.encode())
    assert alice.put(path, reply.body, "application/vnd.oma.xcap-directory+xml").status == 405
    assert bob.get(path).status == 403


def test_every_write_is_in_the_change_feed_at_once(xcap_server, alice) -> None:
    feed = ChangeFeed(xcap_server.sessionmaker())
    path = alice.user_path("resource-lists")
    alice.put(path, RESOURCE_LISTS, RL)
    renamed = alice.put(alice.user_path("resource-lists", node="resource-lists/list[2]/@name"), "job",
                        "application/xcap-att+xml")
    assert renamed.status == 200
    alice.delete(path)
    alice.put(path, "<broken", RL)  # refused: no change
    deadline, seen = time.monotonic() + 1.0, []
    while time.monotonic() < deadline and len(seen) < 3:
        seen += [c for c in feed.poll() if c.topic == TOPIC_XCAP]
        time.sleep(0.05)
    assert [c.key for c in seen] == ["resource-lists/alice@example.com/index"] * 3
    time.sleep(0.1)
    assert [c for c in feed.poll() if c.topic == TOPIC_XCAP] == []
