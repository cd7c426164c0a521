"""Entity tags and conditional requests, digest authentication (MD5, SHA-256, a wrong
password), the user scoping of trees, and hostile bodies (XXE, billion laughs, oversize,
not UTF-8): each refusal leaves the stored document as it was."""

from __future__ import annotations

import pytest
from lxml import etree

from ngnpro.models.xcap import XcapDocument
from tests.helpers import count_rows
from tests.xcap.conftest import MAX_DOCUMENT, client_for
from tests.xcap.documents import RESOURCE_LISTS

RL = "application/resource-lists+xml"


@pytest.fixture
def lists(xcap_server, alice):
    reply = alice.put(alice.user_path("resource-lists"), RESOURCE_LISTS, RL)
    assert reply.status == 201
    return alice


def _unchanged(client, before) -> None:
    after = client.get(client.user_path("resource-lists"))
    assert (after.status, after.body, after.etag) == (200, before.body, before.etag)


def test_if_match_and_if_none_match(lists) -> None:
    path = lists.user_path("resource-lists")
    current = lists.get(path)
    stale = '"0123456789abcdef"'
    assert lists.get(path, headers={"If-None-Match": current.etag}).status == 304
    not_modified = lists.get(path, headers={"If-None-Match": "*"})
    assert not_modified.status == 304 and not_modified.etag == current.etag and not_modified.body == b""
    assert lists.get(path, headers={"If-None-Match": stale}).status == 200
    assert lists.put(path, RESOURCE_LISTS, RL, headers={"If-Match": stale}).status == 412
    assert lists.put(path, RESOURCE_LISTS, RL, headers={"If-None-Match": "*"}).status == 412
    assert lists.delete(path, headers={"If-Match": stale}).status == 412
    node = lists.user_path("resource-lists", node="resource-lists/list[2]/@name")
    assert lists.put(node, "x", "application/xcap-att+xml", headers={"If-Match": stale}).status == 412
    assert lists.get(path, headers={"If-Match": stale}).status == 412
    _unchanged(lists, current)
    ok = lists.put(node, "x", "application/xcap-att+xml", headers={"If-Match": f'{stale}, {current.etag}'})
    assert ok.status == 200 and ok.etag != current.etag
    assert lists.put(path, RESOURCE_LISTS, RL, headers={"If-Match": current.etag}).status == 412  # now stale
    assert lists.put(path, RESOURCE_LISTS, RL, headers={"If-Match": "*"}).status == 200
    # a document that does not exist: If-Match fails, If-None-Match: * creates
    other = lists.user_path("resource-lists", "other")
    assert lists.put(other, RESOURCE_LISTS, RL, headers={"If-Match": "*"}).status == 412
    assert lists.put(other, RESOURCE_LISTS, RL, headers={"If-None-Match": "*"}).status == 201


def test_etag_on_element_reads_and_errors(lists) -> None:
    doc = lists.get(lists.user_path("resource-lists"))
    el = lists.get(lists.user_path("resource-lists", node="resource-lists/list[1]"))
    assert el.etag == doc.etag
    err = lists.put(lists.user_path("resource-lists", node="resource-lists/list[1]/entry[9]"), "<entry uri='sip:a@b'/>",
                    "application/xcap-el+xml")
    assert err.status == 409 and err.etag == doc.etag


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_digest_with_the_sip_credentials(xcap_server, algorithm) -> None:
    client = client_for(xcap_server, "alice@example.com", algorithm)
    path = client.user_path("resource-lists")
    first = client.request("PUT", path, RESOURCE_LISTS.encode(), RL, auth=False)
    assert first.status == 401
    algorithms = {c.split("algorithm=")[1].split(",")[0].strip() for c in first.challenges}
    assert algorithms == {"MD5", "SHA-256"}
    assert all('realm="example.com"' in c for c in first.challenges)
    assert client.put(path, RESOURCE_LISTS, RL).status == 201


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_wrong_password_is_refused(xcap_server, algorithm) -> None:
    client = client_for(xcap_server, "alice@example.com", algorithm, password="guess")
    reply = client.put(client.user_path("resource-lists"), RESOURCE_LISTS, RL)
    assert reply.status == 401 and reply.challenges
    assert count_rows(xcap_server.db_url, XcapDocument) == 0


def test_unknown_user_and_malformed_credentials(xcap_server) -> None:
    ghost = client_for(xcap_server, "alice@example.com")
    ghost.user, ghost.username = "ghost", "ghost"
    assert ghost.get(ghost.user_path("resource-lists")).status == 401
    alice = client_for(xcap_server, "alice@example.com")
    bad = alice.get(alice.user_path("resource-lists"), auth=False,
                    headers={"Authorization": 'Digest realm="example.com", username="alice", nonce'})
    assert bad.status == 400
    # credentials computed for another URI are not taken for this one
    first = alice.request("GET", alice.user_path("pres-rules"), auth=False)
    other = alice.authorization(first.challenges, "GET", alice.user_path("pres-rules"))
    moved = alice.get(alice.user_path("resource-lists"), auth=False, headers={"Authorization": other})
    assert moved.status == 400


def test_users_reach_only_their_own_tree(lists, xcap_server, bob) -> None:
    before = lists.get(lists.user_path("resource-lists"))
    alices = bob.user_path("resource-lists", xui="sip:alice@example.com")
    assert bob.get(alices).status == 403
    assert bob.put(alices, RESOURCE_LISTS, RL).status == 403
    assert bob.delete(alices).status == 403
    dir_ = bob.user_path("org.openmobilealliance.xcap-directory", "directory.xml", xui="sip:alice@example.com")
    assert bob.get(dir_).status == 403
    # carol, authenticated in her domain, is not the owner of alice@example.org's tree
    carol = client_for(xcap_server, "carol@example.org")
    assert carol.get(carol.user_path("resource-lists", xui="sip:alice@example.org")).status == 403
    _unchanged(lists, before)
    # the XUI's forms name one tree: with or without sip:, any case of the domain
    same = lists.get(lists.user_path("resource-lists", xui="alice@EXAMPLE.com"))
    assert same.status == 200 and same.body == before.body


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE resource-lists [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="&xxe;"/></resource-lists>"""

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]>
<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="&lol9;"/></resource-lists>"""


def test_xxe_and_billion_laughs_are_refused(lists) -> None:
    before = lists.get(lists.user_path("resource-lists"))
    for body in (XXE, LAUGHS):
        reply = lists.put(lists.user_path("resource-lists"), body, RL)
        assert reply.status == 409
        assert etree.QName(reply.error()).localname == "not-well-formed"
        assert b"root:" not in reply.body
        frag = lists.put(lists.user_path("resource-lists", node="resource-lists/list[3]"),
                         body.split(b"?>", 1)[1], "application/xcap-el+xml")
        assert etree.QName(frag.error()).localname == "not-xml-frag"
    entity = lists.put(lists.user_path("resource-lists", node="resource-lists/list[3]"),
                       '<list name="&xxe;"/>', "application/xcap-el+xml")
    assert etree.QName(entity.error()).localname == "not-xml-frag"
    _unchanged(lists, before)


def test_oversize_body_is_413(lists) -> None:
    before = lists.get(lists.user_path("resource-lists"))
    entries = "".join(f'<entry uri="sip:u{i}@example.com"/>' for i in range(MAX_DOCUMENT // 30))
    big = RESOURCE_LISTS.replace("<list name=\"work\">", f"<list name=\"work\">{entries}")
    assert len(big) > MAX_DOCUMENT
    too_big = lists.put(lists.user_path("resource-lists"), big, RL)
    assert too_big.status == 413 and too_big.headers["connection"] == "close"
    _unchanged(lists, before)
    # a body without Content-Length (chunked) is bounded the same way
    chunked = lists.request("PUT", lists.user_path("resource-lists"), iter([big.encode()]), RL)
    assert chunked.status == 413
    _unchanged(lists, before)
    # under the limit is taken
    fits = RESOURCE_LISTS.replace("<list name=\"work\">",
                                  f"<list name=\"work\">{entries[:entries.rfind('<entry', 0, MAX_DOCUMENT - 1000)]}")
    assert MAX_DOCUMENT - 1100 < len(fits) <= MAX_DOCUMENT
    assert lists.put(lists.user_path("resource-lists"), fits, RL).status == 200


def test_not_utf8_and_not_well_formed(lists) -> None:
    before = lists.get(lists.user_path("resource-lists"))
    latin = RESOURCE_LISTS.replace("Friends", "Fr\u00e9nds").encode("latin-1")
    assert etree.QName(lists.put(lists.user_path("resource-lists"), latin, RL).error()).localname == "not-utf-8"
    declared = RESOURCE_LISTS.replace('encoding="UTF-8"', 'encoding="ISO-8859-1"')
    assert etree.QName(lists.put(lists.user_path("resource-lists"), declared, RL).error()).localname == "not-utf-8"
    broken = lists.put(lists.user_path("resource-lists"), RESOURCE_LISTS[:-30], RL)
    assert etree.QName(broken.error()).localname == "not-well-formed"
    att = lists.put(lists.user_path("resource-lists", node="resource-lists/list[2]/@name"), b"\xff\xfe",
                    "application/xcap-att+xml")
    assert etree.QName(att.error()).localname == "not-utf-8"
    _unchanged(lists, before)


def test_methods_and_paths(lists) -> None:
    path = lists.user_path("resource-lists")
    assert lists.request("POST", path, b"x", RL).status == 405
    assert lists.get(lists.user_path("no-such-auid")).status == 404
    assert lists.get(f"{lists.root}/resource-lists/users/sip:alice@example.com").status == 404
    assert lists.get(f"{lists.root}/resource-lists/elsewhere/x/index").status == 404
    head = lists.request("HEAD", path)
    assert head.status == 200 and head.body == b"" and head.etag
