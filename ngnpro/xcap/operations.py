"""GET, PUT and DELETE on an XCAP document, without I/O (RFC 4825 section 8).

Each function takes the stored document (bytes, or None when there is none), the node
selector of the request and, for PUT, the body and its content type; it returns what to
answer and, for a write, the whole new document to store.  It works on a parsed copy, so
an error anywhere leaves the stored document as it was: the caller writes nothing.

The rules of section 8.2 are kept literally: a PUT of an element replaces the element the
URI selects, or creates it under the parent the URI's steps but the last select (409
``no-parent`` naming the closest existing ancestor when there is none); either way, the
URI must select the new element afterwards (``cannot-insert`` otherwise), so that a GET of
the same URI returns what was put.  A DELETE must leave the URI selecting nothing
(``cannot-delete``).  Every write is then checked against the usage's schema and rules.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from lxml import etree

from .errors import HttpError, XcapError
from .selector import (
    NodeSelector,
    Step,
    attribute_key,
    deepest_existing,
    element_children,
    quote_selector,
    select,
)
from .usages import Usage
from .xmlsafe import parse_att_value, parse_document, parse_fragment, parser

EL_TYPE = "application/xcap-el+xml"
ATT_TYPE = "application/xcap-att+xml"
NS_TYPE = "application/xcap-ns+xml"

#: values other documents hold that a write must not repeat (RLS service URIs), asked only
#: when the usage needs them
Taken = Callable[[], Iterable[str]]


def _nothing() -> Iterable[str]:
    return ()


@dataclass(frozen=True)
class Result:
    """What to answer; ``document`` is the new document to store (a write), ``deleted``
    that the document goes."""

    status: int
    body: bytes = b""
    content_type: str = ""
    document: bytes | None = None
    deleted: bool = False


def media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def _stored(document: bytes) -> etree._Element:
    return etree.fromstring(document, parser())


def _serialize(root: etree._Element) -> bytes:
    return etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")


def _one(root: etree._Element, steps: tuple[Step, ...]) -> etree._Element:
    found = select(root, steps)
    if len(found) != 1:
        raise HttpError(404, "the node selector selects no element" if not found
                        else "the node selector selects more than one element")
    return found[0]


def _no_parent(root: etree._Element | None, selector: NodeSelector, document_uri: str) -> XcapError:
    depth = 0 if root is None else deepest_existing(root, selector.steps[:-1] if not selector.terminal
                                                    else selector.steps)
    ancestor = document_uri if depth == 0 else f"{document_uri}/~~/{quote_selector(selector.text(depth))}"
    if root is None:
        ancestor = document_uri.rsplit("/", 1)[0]
    return XcapError("no-parent", "the parent of the selected node does not exist", ancestor=ancestor)


def escape_att(value: str) -> bytes:
    """An attribute value as ``application/xcap-att+xml`` carries it (AttValue's text)."""
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
            .replace("\r", "&#13;").replace("\n", "&#10;").replace("\t", "&#9;").encode("utf-8"))


# -- GET ----------------------------------------------------------------------------------------


def get(usage: Usage, document: bytes, selector: NodeSelector | None) -> Result:
    """The document, or the element / attribute / namespace bindings the selector names."""
    if selector is None:
        return Result(200, document, usage.mime)
    root = _stored(document)
    el = _one(root, selector.steps)
    if selector.attribute is not None:
        value = el.get(attribute_key(selector.attribute))
        if value is None:
            raise HttpError(404, "the element has no such attribute")
        return Result(200, escape_att(value), ATT_TYPE)
    if selector.is_namespace:
        bindings = etree.Element(el.tag, nsmap=el.nsmap)
        return Result(200, etree.tostring(bindings, encoding="UTF-8"), NS_TYPE)
    return Result(200, etree.tostring(el, with_tail=False, encoding="UTF-8"), EL_TYPE)


# -- PUT ----------------------------------------------------------------------------------------


def put(usage: Usage, document: bytes | None, selector: NodeSelector | None, body: bytes, content_type: str,
        document_uri: str, taken: Taken = _nothing) -> Result:
    """Create or replace the document or the node the selector names (201 / 200)."""
    mtype = media_type(content_type)
    if selector is None:
        if mtype != usage.mime:
            raise HttpError(415, f"a {usage.auid} document is {usage.mime}")
        tree = parse_document(body)
        usage.validate(tree.getroot(), taken() if usage.auid == "rls-services" else ())
        return Result(201 if document is None else 200, document=body)
    if selector.is_namespace:
        raise HttpError(405, "namespace bindings are read-only", [("Allow", "GET, HEAD")])
    if selector.attribute is not None:
        if mtype != ATT_TYPE:
            raise HttpError(415, f"an attribute is {ATT_TYPE}")
        value = parse_att_value(body)
        if document is None:
            raise _no_parent(None, selector, document_uri)
        root = _stored(document)
        status = _put_attribute(root, selector, value, document_uri)
    else:
        if mtype != EL_TYPE:
            raise HttpError(415, f"an element is {EL_TYPE}")
        if document is None:
            parse_fragment(body, {})  # a bad body is reported before the missing parent
            raise _no_parent(None, selector, document_uri)
        root = _stored(document)
        root, status = _put_element(root, selector, body, document_uri)
    usage.validate(root, taken() if usage.auid == "rls-services" else ())
    return Result(status, document=_serialize(root))


def _put_attribute(root: etree._Element, selector: NodeSelector, value: str, document_uri: str) -> int:
    found = select(root, selector.steps)
    if not found:
        raise _no_parent(root, selector, document_uri)
    if len(found) > 1:
        raise HttpError(404, "the node selector selects more than one element")
    el = found[0]
    key = attribute_key(selector.attribute)  # type: ignore[arg-type]
    status = 200 if el.get(key) is not None else 201
    el.set(key, value)
    if select(root, selector.steps) != [el]:
        raise XcapError("cannot-insert", "the request URI would no longer select the element")
    return status


def _put_element(root: etree._Element, selector: NodeSelector, body: bytes,
                 document_uri: str) -> tuple[etree._Element, int]:
    steps = selector.steps
    found = select(root, steps)
    if len(found) > 1:
        raise HttpError(404, "the node selector selects more than one element")
    if found:
        old = found[0]
        parent = old.getparent()
        new = parse_fragment(body, (parent if parent is not None else old).nsmap)
        if parent is None:  # the root element: the new one becomes a document of its own
            root = new = copy.deepcopy(new)
        else:
            new.tail = old.tail
            parent.replace(old, new)
        status = 200
    else:
        parents = select(root, steps[:-1]) if len(steps) > 1 else []
        if len(parents) != 1:
            if len(steps) == 1:
                raise XcapError("cannot-insert", "a document has one root element")
            raise _no_parent(root, selector, document_uri)
        parent = parents[0]
        new = parse_fragment(body, parent.nsmap)
        _insert(parent, steps[-1], new)
        status = 201
    after = select(root, steps)
    if len(after) != 1 or after[0] is not new:
        raise XcapError("cannot-insert", "the request URI would not select the element put")
    return root, status


def _insert(parent: etree._Element, step: Step, new: etree._Element) -> None:
    """Place ``new`` among ``parent``'s children where ``step`` looks for it: as the n-th
    of its name for a position, else after the last sibling of its name (or last)."""
    kids = element_children(parent)
    same = [c for c in kids if step.matches_name(c)] if step.name is not None else kids
    if step.position is not None:
        n = step.position
        if n < 1 or n - 1 > len(same):
            raise XcapError("cannot-insert", f"there are fewer than {n - 1} such elements before position {n}")
        if n == 1 and same:
            new.tail = same[0].getprevious().tail if same[0].getprevious() is not None else parent.text
            same[0].addprevious(new)
            return
        if n > 1:
            _after(same[n - 2], new)
            return
    elif same:
        _after(same[-1], new)
        return
    if kids:
        _after(kids[-1], new)
    else:
        parent.append(new)


def _after(previous: etree._Element, new: etree._Element) -> None:
    """Insert ``new`` right after ``previous``, indented like it."""
    new.tail = previous.tail
    previous.addnext(new)


# -- DELETE ---------------------------------------------------------------------------------------


def delete(usage: Usage, document: bytes, selector: NodeSelector | None, taken: Taken = _nothing) -> Result:
    """Delete the document, or the element / attribute the selector names."""
    if selector is None:
        return Result(200, deleted=True)
    if selector.is_namespace:
        raise HttpError(405, "namespace bindings are read-only", [("Allow", "GET, HEAD")])
    root = _stored(document)
    el = _one(root, selector.steps)
    if selector.attribute is not None:
        key = attribute_key(selector.attribute)
        if el.get(key) is None:
            raise HttpError(404, "the element has no such attribute")
        del el.attrib[key]
        again = select(root, selector.steps)
        if len(again) == 1 and again[0].get(key) is not None:
            raise XcapError("cannot-delete", "the request URI would still select an attribute")
    else:
        parent = el.getparent()
        if parent is None:
            raise XcapError("cannot-delete", "the root element cannot be deleted (delete the document)")
        _remove(parent, el)
        if select(root, selector.steps):
            raise XcapError("cannot-delete", "the request URI would select another element afterwards")
    usage.validate(root, taken() if usage.auid == "rls-services" else ())
    return Result(200, document=_serialize(root))


def _remove(parent: etree._Element, el: etree._Element) -> None:
    """Remove ``el`` but keep the white space before it where it was."""
    previous = el.getprevious()
    if el.tail and previous is not None:
        previous.tail = el.tail
    elif el.tail:
        parent.text = el.tail
    parent.remove(el)


# -- preconditions ----------------------------------------------------------------------------------


def _tags(value: str) -> list[str] | None:
    """The entity tags of an If-Match / If-None-Match value; None for ``*``."""
    if value.strip() == "*":
        return None
    tags = []
    for part in value.split(","):
        part = part.strip()
        if part.startswith("W/"):
            part = part[2:]
        if len(part) >= 2 and part[0] == part[-1] == '"':
            tags.append(part[1:-1])
        elif part:
            tags.append(part)
    return tags


def preconditions(method: str, etag: str | None, if_match: str | None, if_none_match: str | None) -> bool:
    """Check If-Match / If-None-Match against the document's tag (None: no document).
    Raises 412 for a failed condition; returns True when a GET is answered 304."""
    if if_match is not None:
        tags = _tags(if_match)
        if etag is None or (tags is not None and etag not in tags):
            raise HttpError(412, "If-Match does not match the document's entity tag")
    if if_none_match is not None:
        tags = _tags(if_none_match)
        matched = etag is not None and (tags is None or etag in tags)
        if matched:
            if method in ("GET", "HEAD"):
                return True
            raise HttpError(412, "If-None-Match matches the document's entity tag")
    return False
