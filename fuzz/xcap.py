"""Fuzz target: the XCAP server's decoders (`ngnpro.xcap`): the node selector and its
namespace bindings (`selector.parse`, `parse_bindings`), a document (`xmlsafe.parse_document`),
an element body (`parse_fragment`), an attribute value (`parse_att_value`), and the
operations that apply a selector to a document (`operations.get` / `put` / `delete`).

Input: the first line is a node selector with an optional ``?query``; the rest is the
document (and, cut at the first ``\\x00``, an element body to PUT).

Properties: each decoder returns or raises its own error (`SelectorError`, `XcapError`,
`HttpError`), nothing else, within the time bound; a selector's steps, written back, parse
to the same selector; an element a GET returns, put back at the same URI, is a
replacement (200) after which a GET returns the same element (RFC 4825 section 8.2.5's
idempotency); a DELETE that succeeds leaves the URI selecting nothing.
"""

from __future__ import annotations

from fuzz._common import check, expect_only, time_bound
from ngnpro.xcap import operations, selector
from ngnpro.xcap.errors import HttpError, XcapError
from ngnpro.xcap.usages import Usage
from ngnpro.xcap.xmlsafe import parse_att_value, parse_document, parse_fragment

RL_NS = "urn:ietf:params:xml:ns:resource-lists"
#: a usage without a schema or rules: the operations' own properties, whatever the document
FREE = Usage("fuzz", "application/resource-lists+xml", RL_NS)
ERRORS = (XcapError, HttpError)

DOCUMENT = (f'<?xml version="1.0" encoding="UTF-8"?>\n<resource-lists xmlns="{RL_NS}" xmlns:x="urn:x">'
            '<list name="friends"><entry uri="sip:bob@example.com"><display-name>Bob</display-name></entry>'
            '<entry uri="sip:carol@example.org" x:tag="a/b"/></list><list name="work"/></resource-lists>')
SEEDS = [
    f'resource-lists/list[@name="friends"]/entry[2]\n{DOCUMENT}'.encode(),
    f'/resource-lists/list[1]/entry[@uri="sip:bob@example.com"]/@uri\n{DOCUMENT}'.encode(),
    f'r:resource-lists/*[2]?xmlns(r={RL_NS})\n{DOCUMENT}\x00<list name="w2"/>'.encode(),
    f'resource-lists/list[1]/entry[1][@x:tag="a/b"]?xmlns(x=urn:x)xmlns(y=urn:y)\n{DOCUMENT}'.encode(),
    f'resource-lists/list/namespace::*\n{DOCUMENT}'.encode(),
    f'resource-lists/list[2]/entry[1]\n{DOCUMENT}\x00<entry uri="sip:new@example.com"/>'.encode(),
    b'resource-lists/list[@name="a&amp;b"]\n<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>',
]


def _roundtrip(sel: selector.NodeSelector, bindings: dict[str, str]) -> None:
    text = "/".join(s.text for s in sel.steps)
    if sel.terminal:
        text += "/namespace::*" if sel.is_namespace else ""
    again = expect_only((selector.SelectorError,), selector.parse, text, RL_NS, bindings)
    check(again is not None and again.steps == sel.steps, f"steps changed through {text!r}")


def TestOneInput(data: bytes) -> None:  # noqa: N802
    head, _, rest = data.partition(b"\n")
    doc, _, body = rest.partition(b"\x00")
    text = head.decode("utf-8", "replace")
    path, _, query = text.partition("?")
    with time_bound():
        bindings = expect_only((selector.SelectorError,), selector.parse_bindings, query)
        if bindings is None:
            bindings = {}
        sel = expect_only((selector.SelectorError,), selector.parse, path, RL_NS, bindings)
        tree = expect_only((XcapError,), parse_document, doc)
        expect_only((XcapError,), parse_fragment, body, {"x": "urn:x", None: RL_NS})
        expect_only((XcapError,), parse_att_value, body)
        if sel is None:
            return
        _roundtrip(sel, bindings)
        if tree is None:
            return
        document = doc
        got = expect_only(ERRORS, operations.get, FREE, document, sel)
        if got is not None and got.content_type == operations.EL_TYPE:
            put = expect_only(ERRORS, operations.put, FREE, document, sel, got.body, operations.EL_TYPE, "u")
            check(put is not None and put.status == 200, f"a GET's element did not PUT back: {path!r}")
            again = operations.get(FREE, put.document, sel)
            check(again.body == got.body, f"PUT then GET changed the element at {path!r}")
        if body:
            expect_only(ERRORS, operations.put, FREE, document, sel, body,
                        operations.ATT_TYPE if sel.attribute else operations.EL_TYPE, "u")
        deleted = expect_only(ERRORS, operations.delete, FREE, document, sel)
        if deleted is not None and deleted.document is not None and not sel.attribute:
            check(not selector.select(parse_document(deleted.document).getroot(), sel.steps),
                  f"the URI still selects after DELETE {path!r}")


if __name__ == "__main__":
    from fuzz.run import main_for

    main_for(__name__)
