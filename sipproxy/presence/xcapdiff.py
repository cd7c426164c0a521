"""XCAP document change notification (RFC 5875, the ``xcap-diff`` event package).

Why: a client that keeps copies of its XCAP documents (buddy list, pres-rules) learns that
one changed -- whichever client, server or proxy changed it -- and which entity tag it had
and has, so it fetches only what moved.  The first NOTIFY lists every document of the
user's tree (``new-etag`` each); later ones the documents that changed
(``previous-etag`` and ``new-etag``; a removed document has no ``new-etag``).
"""

from __future__ import annotations

from lxml import etree

__all__ = ["XCAP_DIFF_NS", "CONTENT_TYPE", "diff", "xcap_diff"]

XCAP_DIFF_NS = "urn:ietf:params:xml:ns:xcap-diff"
CONTENT_TYPE = "application/xcap-diff+xml"


def diff(old: dict[str, str], new: dict[str, str]) -> list[tuple[str, str | None, str | None]]:
    """``(auid/filename, previous etag, new etag)`` for every document that changed."""
    out = []
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            out.append((name, old.get(name), new.get(name)))
    return out


def xcap_diff(xcap_root: str, xui: str, changes: list[tuple[str, str | None, str | None]]) -> bytes:
    """The xcap-diff document for ``changes`` in ``xui``'s tree (``sel`` relative to the root)."""
    root = etree.Element(f"{{{XCAP_DIFF_NS}}}xcap-diff", nsmap={None: XCAP_DIFF_NS}, **{"xcap-root": xcap_root})
    for name, previous, new in changes:
        auid, _, filename = name.partition("/")
        attrs = {"sel": f"{auid}/users/sip:{xui}/{filename}"}
        if previous is not None:
            attrs["previous-etag"] = previous
        if new is not None:
            attrs["new-etag"] = new
        etree.SubElement(root, f"{{{XCAP_DIFF_NS}}}document", **attrs)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
