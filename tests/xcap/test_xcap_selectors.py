"""Element, attribute and namespace selectors over HTTP (RFC 4825 sections 6.3, 7 and 8):
GET, creation and replacement by PUT, DELETE, and the conflicts of section 8.2 (no-parent
with the closest ancestor, cannot-insert, cannot-delete, not-xml-frag, not-xml-att-value),
each leaving the stored document untouched."""

from __future__ import annotations

import pytest
from lxml import etree

from tests.xcap.documents import RESOURCE_LISTS, RL_NS, RLS_SERVICES

RL = "application/resource-lists+xml"
EL = "application/xcap-el+xml"
ATT = "application/xcap-att+xml"
Q = f"{{{RL_NS}}}"


@pytest.fixture
def lists(xcap_server, alice):
    reply = alice.put(alice.user_path("resource-lists"), RESOURCE_LISTS, RL)
    assert reply.status == 201
    return alice


def _doc(client) -> etree._Element:
    reply = client.get(client.user_path("resource-lists"))
    assert reply.status == 200
    return reply.xml()


def _uris(client, name: str = "friends") -> list[str]:
    lst = [x for x in _doc(client).iter(f"{Q}list") if x.get("name") == name][0]
    return [e.get("uri") for e in lst.iter(f"{Q}entry")]


def _error(reply) -> str:
    assert reply.status == 409, (reply.status, reply.body)
    return etree.QName(reply.error()).localname


@pytest.mark.parametrize("node, uri", [
    ("resource-lists/list[1]/entry[2]", "sip:carol@example.org"),
    ('resource-lists/list[@name="friends"]/entry[@uri="sip:carol@example.org"]', "sip:carol@example.org"),
    ('resource-lists/list[@name="friends"]/entry[1][@uri="sip:bob@example.com"]', "sip:bob@example.com"),
    ("resource-lists/*[2]/*[1]", "sip:dave@example.com"),
    ("resource-lists/list[2]/*[1]", "sip:dave@example.com"),
])
def test_get_element(lists, node, uri) -> None:
    reply = lists.get(lists.user_path("resource-lists", node=node))
    assert reply.status == 200 and reply.content_type == EL
    el = reply.xml()
    assert (el.tag, el.get("uri")) == (f"{Q}entry", uri)
    assert reply.etag == lists.get(lists.user_path("resource-lists")).etag


@pytest.mark.parametrize("node", [
    "resource-lists/list[3]", 'resource-lists/list[@name="nope"]', "resource-lists/list[1][@name=\"work\"]",
    "resource-lists/list", "other/list", "resource-lists/list[1]/@nope",
])
def test_get_nothing_or_several_is_404(lists, node) -> None:
    assert lists.get(lists.user_path("resource-lists", node=node)).status == 404


def test_namespace_bindings_in_the_query(lists) -> None:
    path = lists.user_path("resource-lists", node='r:resource-lists/r:list[@name="work"]/r:entry')
    reply = lists.get(f"{path}?xmlns(r={RL_NS})")
    assert reply.status == 200 and reply.xml().get("uri") == "sip:dave@example.com"
    assert lists.get(path).status == 400  # prefix r unbound
    # a prefix bound to another namespace selects nothing
    assert lists.get(f"{path}?xmlns(r=urn:example:other)").status == 404


def test_get_attribute_and_namespace_selector(lists) -> None:
    reply = lists.get(lists.user_path("resource-lists", node="resource-lists/list[2]/@name"))
    assert (reply.status, reply.content_type, reply.body) == (200, ATT, b"work")
    ns = lists.get(lists.user_path("resource-lists", node="resource-lists/list[1]/namespace::*"))
    assert ns.status == 200 and ns.content_type == "application/xcap-ns+xml"
    assert ns.xml().tag == f"{Q}list" and ns.xml().nsmap == {None: RL_NS}


def test_put_creates_element_after_its_siblings(lists) -> None:
    node = 'resource-lists/list[@name="friends"]/entry[@uri="sip:erin@example.com"]'
    path = lists.user_path("resource-lists", node=node)
    before = lists.get(lists.user_path("resource-lists")).etag
    reply = lists.put(path, '<entry uri="sip:erin@example.com"><display-name>Erin</display-name></entry>', EL)
    assert reply.status == 201 and reply.etag != before
    assert _uris(lists) == ["sip:bob@example.com", "sip:carol@example.org", "sip:erin@example.com"]
    got = lists.get(path)  # idempotent: the URI selects what was put
    assert got.status == 200 and got.xml().find(f"{Q}display-name").text == "Erin"
    again = lists.put(path, '<entry uri="sip:erin@example.com"/>', EL)  # now a replacement
    assert again.status == 200
    assert lists.get(path).xml().find(f"{Q}display-name") is None


def test_put_creates_by_position(lists) -> None:
    path = lists.user_path("resource-lists", node="resource-lists/list[1]/entry[1]")
    # entry[1] exists: a replacement
    assert lists.put(path, '<entry uri="sip:zed@example.com"/>', EL).status == 200
    assert _uris(lists) == ["sip:zed@example.com", "sip:carol@example.org"]
    third = lists.user_path("resource-lists", node="resource-lists/list[1]/entry[3]")
    assert lists.put(third, '<entry uri="sip:erin@example.com"/>', EL).status == 201
    assert _uris(lists)[2] == "sip:erin@example.com"
    fifth = lists.user_path("resource-lists", node="resource-lists/list[1]/entry[5]")
    assert _error(lists.put(fifth, '<entry uri="sip:x@example.com"/>', EL)) == "cannot-insert"
    new_list = lists.user_path("resource-lists", node='resource-lists/list[3][@name="new"]')
    assert lists.put(new_list, '<list name="new"/>', EL).status == 201
    assert [x.get("name") for x in _doc(lists)] == ["friends", "work", "new"]


def test_put_with_wildcard(lists) -> None:
    path = lists.user_path("resource-lists", node="resource-lists/list[2]/*[2]")
    assert lists.put(path, '<entry uri="sip:frank@example.com"/>', EL).status == 201
    assert _uris(lists, "work") == ["sip:dave@example.com", "sip:frank@example.com"]


def test_put_element_that_the_uri_would_not_select(lists) -> None:
    before = lists.get(lists.user_path("resource-lists"))
    node = 'resource-lists/list[@name="friends"]/entry[@uri="sip:erin@example.com"]'
    reply = lists.put(lists.user_path("resource-lists", node=node), '<entry uri="sip:other@example.com"/>', EL)
    assert _error(reply) == "cannot-insert"
    wrong_name = lists.put(lists.user_path("resource-lists", node="resource-lists/list[1]/entry[3]"),
                           '<external anchor="http://example.com/x"/>', EL)
    assert _error(wrong_name) == "cannot-insert"
    after = lists.get(lists.user_path("resource-lists"))
    assert (after.body, after.etag) == (before.body, before.etag)


def test_no_parent_names_the_closest_ancestor(lists) -> None:
    node = 'resource-lists/list[@name="friends"]/list[@name="inner"]/entry[@uri="sip:x@example.com"]'
    reply = lists.put(lists.user_path("resource-lists", node=node), '<entry uri="sip:x@example.com"/>', EL)
    assert _error(reply) == "no-parent"
    ancestor = reply.error()[0]
    assert etree.QName(ancestor).localname == "ancestor"
    assert ancestor.text.startswith("http://127.0.0.1:")
    assert ancestor.text.endswith("/xcap-root/resource-lists/users/sip:alice@example.com/index/~~/"
                                  "resource-lists/list%5B@name=%22friends%22%5D")
    top = lists.put(lists.user_path("resource-lists", node="nope/list"), '<list/>', EL)
    assert _error(top) == "no-parent"
    assert top.error()[0].text.endswith("/resource-lists/users/sip:alice@example.com/index")
    missing = lists.put(lists.user_path("resource-lists", "other", node="resource-lists/list"), '<list/>', EL)
    assert _error(missing) == "no-parent"


def test_put_element_body_must_be_one_element(lists) -> None:
    path = lists.user_path("resource-lists", node="resource-lists/list[1]/entry[3]")
    for body in ('<entry uri="sip:a@b"/><entry uri="sip:c@d"/>', "just text", '<entry uri="sip:a@b">',
                 '<?xml version="1.0"?><entry uri="sip:a@b"/>', "<p:entry uri='sip:a@b'/>"):
        assert _error(lists.put(path, body, EL)) == "not-xml-frag", body
    assert lists.put(path, '<entry uri="sip:a@b"/>', "application/xml").status == 415
    assert len(_uris(lists)) == 2


def test_put_element_uses_prefixes_in_scope(xcap_server, alice) -> None:
    mime = "application/rls-services+xml"
    assert alice.put(alice.user_path("rls-services"), RLS_SERVICES, mime).status == 201
    node = 'rls-services/service[2]/list/r:entry[@uri="sip:carol@example.org"]'
    path = alice.user_path("rls-services", node=node) + f"?xmlns(r={RL_NS})"
    reply = alice.put(path, '<rl:entry uri="sip:carol@example.org"/>', EL)  # rl: is bound in the document
    assert reply.status == 201, reply.body
    assert alice.get(path).xml().tag == f"{Q}entry"


def test_put_element_schema_checked(lists) -> None:
    path = lists.user_path("resource-lists", node="resource-lists/list[1]/entry[3]")
    assert _error(lists.put(path, '<entry/>', EL)) == "schema-validation-error"
    dup = lists.user_path("resource-lists", node='resource-lists/list[@name="work"]')
    assert _error(lists.put(dup, '<list name="friends"/>', EL)) == "cannot-insert"
    new = lists.user_path("resource-lists", node='resource-lists/list[3]')
    assert _error(lists.put(new, '<list name="friends"/>', EL)) == "uniqueness-failure"


def test_replace_root_element(lists) -> None:
    path = lists.user_path("resource-lists", node="resource-lists")
    assert lists.put(path, f'<resource-lists xmlns="{RL_NS}"/>', EL).status == 200
    assert len(_doc(lists)) == 0
    assert _error(lists.put(lists.user_path("resource-lists", node="other"), "<other/>", EL)) == "cannot-insert"


def test_attribute_create_replace_delete(lists) -> None:
    path = lists.user_path("resource-lists", node="resource-lists/list[2]/@name")
    assert lists.put(path, "job &amp; more", ATT).status == 200
    assert lists.get(path).body == b"job &amp; more"
    assert [x.get("name") for x in _doc(lists)] == ["friends", "job & more"]
    ext = lists.user_path("resource-lists", node="resource-lists/list[2]/entry[1]/@{urn:x}".replace("@{urn:x}",
                                                                                               "@x:note"))
    assert lists.put(ext + "?xmlns(x=urn:example:x)", "hello", ATT).status == 201
    assert lists.get(ext + "?xmlns(x=urn:example:x)").body == b"hello"
    assert lists.delete(ext + "?xmlns(x=urn:example:x)").status == 200
    assert lists.get(ext + "?xmlns(x=urn:example:x)").status == 404
    assert lists.delete(ext + "?xmlns(x=urn:example:x)").status == 404
    # a change that would unselect the element the URI names
    renamed = lists.user_path("resource-lists", node='resource-lists/list[@name="friends"]/@name')
    assert _error(lists.put(renamed, "buddies", ATT)) == "cannot-insert"
    # the element must exist
    missing = lists.user_path("resource-lists", node="resource-lists/list[7]/@name")
    assert _error(lists.put(missing, "x", ATT)) == "no-parent"
    for bad in ("a<b", "a & b", "a&bogus;b", "\x01"):
        assert _error(lists.put(path, bad, ATT)) == "not-xml-att-value", bad
    assert lists.put(path, "x", EL).status == 415
    # a required attribute cannot go
    required = lists.user_path("resource-lists", node="resource-lists/list[1]/entry[1]/@uri")
    assert _error(lists.delete(required)) == "schema-validation-error"


def test_delete_element(lists) -> None:
    path = lists.user_path("resource-lists", node='resource-lists/list[1]/entry[@uri="sip:bob@example.com"]')
    assert lists.delete(path).status == 200
    assert _uris(lists) == ["sip:carol@example.org"]
    assert lists.delete(path).status == 404
    # deleting entry[1] of a list of two would leave entry[1] selecting the other one
    assert _error(lists.delete(lists.user_path("resource-lists", node="resource-lists/list[1]/*[1]"))) \
        == "cannot-delete"
    assert _error(lists.delete(lists.user_path("resource-lists", node="resource-lists"))) == "cannot-delete"
    assert lists.delete(lists.user_path("resource-lists", node='resource-lists/list[@name="work"]')).status == 200
    assert [x.get("name") for x in _doc(lists)] == ["friends"]


def test_namespace_selector_is_read_only(lists) -> None:
    path = lists.user_path("resource-lists", node="resource-lists/namespace::*")
    assert lists.put(path, "<x/>", EL).status == 405
    assert lists.delete(path).status == 405


@pytest.mark.parametrize("node", ["resource-lists/list[", 'resource-lists/list[@name="x]', "resource-lists//list",
                                  "resource-lists/list[a]", "resource-lists/1list"])
def test_bad_selector_is_400(lists, node) -> None:
    assert lists.get(lists.user_path("resource-lists", node=node)).status == 400


def test_slashes_inside_attribute_values(lists) -> None:
    """A ``/`` in a predicate's value, sent as is or as ``%2F``, is not a step separator."""
    anchor = "http://xcap.example.com/xcap-root/resource-lists/users/sip:bob@example.com/index"
    node = f'resource-lists/list[2]/external[@anchor="{anchor}"]'
    created = lists.put(lists.user_path("resource-lists", node=node), f'<external anchor="{anchor}"/>', EL)
    assert created.status == 201, created.body
    plain = lists.get(lists.user_path("resource-lists", node=node))
    assert plain.status == 200 and plain.xml().get("anchor") == anchor
    encoded = lists.user_path("resource-lists") + "/~~/" + node.replace("/", "%2F").replace('"', "%22") \
        .replace("[", "%5B").replace("]", "%5D")
    assert lists.get(encoded).body == plain.body
