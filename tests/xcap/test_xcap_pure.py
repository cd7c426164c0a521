"""The pure parts without a server: request URIs, preconditions, the error documents."""

from __future__ import annotations

import pytest
from lxml import etree

from ngnpro.xcap.errors import ERROR_NS, HttpError, XcapError
from ngnpro.xcap.operations import preconditions
from ngnpro.xcap.uri import UriError, XcapUri, parse_uri

ROOT = "/xcap-root/"


@pytest.mark.parametrize("path, expected", [
    ("/xcap-root/resource-lists/users/sip:alice@Example.COM/index",
     XcapUri("resource-lists", "alice@example.com", "index")),
    ("/xcap-root/resource-lists/users/alice%40example.com/index",
     XcapUri("resource-lists", "alice@example.com", "index")),
    ("/xcap-root/pres-rules/users/sips:bob@example.com/a/b.xml",
     XcapUri("pres-rules", "bob@example.com", "a/b.xml")),
    ("/xcap-root/xcap-caps/global/index", XcapUri("xcap-caps", None, "index")),
    ("/xcap-root/resource-lists/users/sip:a@b/index/~~/resource-lists/list%5B@name=%22x%2Fy%22%5D",
     XcapUri("resource-lists", "a@b", "index", 'resource-lists/list[@name="x/y"]')),
])
def test_uris(path, expected) -> None:
    assert parse_uri(path, ROOT) == expected


@pytest.mark.parametrize("path", [
    "/other/resource-lists/global/index", "/xcap-root/resource-lists/users/sip:alice@example.com",
    "/xcap-root/resource-lists/users/alice/index", "/xcap-root/resource-lists/global/",
    "/xcap-root/resource-lists/users/sip:a@b/../index", "/xcap-root/-bad/global/index",
    "/xcap-root/resource-lists/users/sip:a@b/index/~~", "/xcap-root/resource-lists/users/sip:a@b/%ff",
    "/xcap-root/resource-lists/users/sip:a@b/" + "x" * 191,
])
def test_bad_uris(path) -> None:
    with pytest.raises(UriError):
        parse_uri(path, ROOT)


def test_preconditions() -> None:
    assert preconditions("GET", "abc", None, '"abc"') is True
    assert preconditions("GET", "abc", None, 'W/"abc"') is True
    assert preconditions("GET", "abc", None, '"x", "y"') is False
    assert preconditions("PUT", None, None, "*") is False
    assert preconditions("PUT", "abc", '"x", "abc"', None) is False
    for method, etag, im, inm in (("PUT", "abc", '"x"', None), ("PUT", None, "*", None),
                                  ("PUT", "abc", None, "*"), ("DELETE", "abc", None, '"abc"')):
        with pytest.raises(HttpError) as err:
            preconditions(method, etag, im, inm)
        assert err.value.status == 412


def test_error_document() -> None:
    doc = XcapError("uniqueness-failure", "taken \x01", exists=[("/a/b/@c", ["x-2"])]).document()
    root = etree.fromstring(doc)
    assert root.tag == f"{{{ERROR_NS}}}xcap-error"
    failure = root[0]
    assert failure.tag == f"{{{ERROR_NS}}}uniqueness-failure" and failure.get("phrase") == "taken \ufffd"
    assert failure[0].get("field") == "/a/b/@c" and failure[0][0].text == "x-2"
    ancestor = etree.fromstring(XcapError("no-parent", ancestor="http://h/r").document())[0][0]
    assert ancestor.tag == f"{{{ERROR_NS}}}ancestor" and ancestor.text == "http://h/r"
    with pytest.raises(ValueError):
        XcapError("no-such-error")
