"""The errors an XCAP request can end in.

``XcapError`` is a conflict that RFC 4825 section 11 names: the answer is an
``application/xcap-error+xml`` document (status 409 unless said otherwise), so a client
can tell *why* its write was refused and, for a uniqueness failure, what value it may use
instead.  ``HttpError`` is every other refusal (404, 412, 415, ...), which has no body of
its own beyond a line of text.  Both are exceptions so that the pure operations can stop
anywhere; the WSGI edge turns them into responses, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from lxml import etree

ERROR_NS = "urn:ietf:params:xml:ns:xcap-error"
ERROR_TYPE = "application/xcap-error+xml"

#: the error elements of RFC 4825 section 11.2 whose content is empty
SIMPLE = frozenset({
    "not-well-formed", "not-utf-8", "not-xml-frag", "not-xml-att-value", "schema-validation-error",
    "cannot-insert", "cannot-delete", "constraint-failure", "no-parent", "uniqueness-failure",
})


class HttpError(Exception):
    """A refusal without an xcap-error body: status line, a line of text, extra headers."""

    def __init__(self, status: int, reason: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = list(headers)


class XcapError(Exception):
    """A conflict of RFC 4825 section 11, rendered as an xcap-error document."""

    def __init__(self, kind: str, phrase: str = "", status: int = 409, *,
                 ancestor: str | None = None, exists: Iterable[tuple[str, Sequence[str]]] = ()) -> None:
        if kind not in SIMPLE:
            raise ValueError(f"unknown xcap-error {kind!r}")
        super().__init__(f"{kind}: {phrase}" if phrase else kind)
        self.kind = kind
        self.phrase = phrase
        self.status = status
        self.ancestor = ancestor
        self.exists = list(exists)

    def document(self) -> bytes:
        """The ``xcap-error`` document of this error (RFC 4825 section 11.2)."""
        root = etree.Element(f"{{{ERROR_NS}}}xcap-error", nsmap={None: ERROR_NS})
        el = etree.SubElement(root, f"{{{ERROR_NS}}}{self.kind}")
        if self.phrase:
            el.set("phrase", _printable(self.phrase))
        if self.kind == "no-parent" and self.ancestor is not None:
            etree.SubElement(el, f"{{{ERROR_NS}}}ancestor").text = _printable(self.ancestor)
        for field, alternatives in self.exists:
            ex = etree.SubElement(el, f"{{{ERROR_NS}}}exists", field=_printable(field))
            for alt in alternatives:
                etree.SubElement(ex, f"{{{ERROR_NS}}}alt-value").text = _printable(alt)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _printable(text: str) -> str:
    """``text`` with the characters XML cannot carry replaced (a phrase may quote a
    client's bad input, which must not make our own answer unserializable)."""
    return "".join(c if c in "\t\n\r" or (" " <= c <= "\ud7ff") or ("\ue000" <= c <= "\ufffd")
                   or c >= "\U00010000" else "\ufffd" for c in text)
