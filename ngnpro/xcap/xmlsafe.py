"""Parsing what clients send: documents, element fragments and attribute values.

Every body is hostile until parsed: the parser resolves no entities, loads no DTD, reads
nothing from the network and refuses a document type declaration outright, so that XXE
(external entities reading local files or URLs) and entity expansion bombs ("billion
laughs") never get as far as libxml2's entity machinery.  Bodies must be UTF-8 (RFC 4825
section 8.2.1); anything else is ``not-utf-8``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from lxml import etree

from .errors import XcapError

#: a DTD, internal subset included, or an entity declaration anywhere: refused unparsed
_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.I)
#: the encoding an XML declaration names
_DECL_ENCODING = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
#: the wrapper element fragments are parsed inside (its prefix is never a client's)
_WRAP_NS = "urn:x-msp:xcap-fragment-wrapper"
_WRAP_PREFIX = "msp-xcap-wrapper"
#: XML 1.0 Char (section 2.2); anything else cannot be an attribute value
_NOT_CHAR = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_REFERENCE = re.compile(r"&(?:#[0-9]+|#x[0-9A-Fa-f]+|[A-Za-z_][\w.\-]*);")
_PREDEFINED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


def parser() -> etree.XMLParser:
    """A parser that cannot be made to read files, fetch URLs or expand entities."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_blank_text=False, collect_ids=False)


def check_utf8(body: bytes) -> str:
    """The body as text; ``not-utf-8`` when it is not UTF-8 or declares another encoding."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise XcapError("not-utf-8", "the body is not UTF-8") from None
    declared = _DECL_ENCODING.match(body)
    if declared and declared.group(1).upper().replace(b"_", b"-") not in (b"UTF-8", b"UTF8"):
        raise XcapError("not-utf-8", "the XML declaration names an encoding other than UTF-8")
    return text


def refuse_dtd(body: bytes, kind: str) -> None:
    """Refuse a body that declares a DTD or entities (no XCAP document needs one)."""
    if _DTD.search(body):
        raise XcapError(kind, "a document type or entity declaration is not allowed")


def parse_document(body: bytes) -> etree._ElementTree:
    """A whole document; ``not-utf-8`` or ``not-well-formed`` otherwise."""
    check_utf8(body)
    refuse_dtd(body, "not-well-formed")
    try:
        tree = etree.ElementTree(etree.fromstring(body, parser()))
    except etree.XMLSyntaxError as exc:
        raise XcapError("not-well-formed", _first_line(exc)) from None
    if tree.docinfo.doctype:
        raise XcapError("not-well-formed", "a document type declaration is not allowed")
    return tree


def parse_fragment(body: bytes, nsmap: Mapping[str | None, str]) -> etree._Element:
    """One element (``application/xcap-el+xml``, RFC 4825 section 7.4), whose prefixes may
    be those in scope where it goes (``nsmap``); ``not-xml-frag`` unless the body is exactly
    one element and white space."""
    text = check_utf8(body)
    refuse_dtd(body, "not-xml-frag")
    if text.lstrip().startswith("<?xml"):
        raise XcapError("not-xml-frag", "an XML declaration is not allowed in an element")
    decls = "".join(
        f' xmlns="{_attr(ns)}"' if prefix is None else f' xmlns:{prefix}="{_attr(ns)}"'
        for prefix, ns in nsmap.items() if prefix != _WRAP_PREFIX
    )
    wrapped = f'<{_WRAP_PREFIX}:w xmlns:{_WRAP_PREFIX}="{_WRAP_NS}"{decls}>{text}</{_WRAP_PREFIX}:w>'
    try:
        wrapper = etree.fromstring(wrapped.encode("utf-8"), parser())
    except etree.XMLSyntaxError as exc:
        raise XcapError("not-xml-frag", _first_line(exc)) from None
    elements = [c for c in wrapper if isinstance(c.tag, str)]
    others = [c for c in wrapper if not isinstance(c.tag, str)]
    stray = (wrapper.text or "").strip() or any((c.tail or "").strip() for c in wrapper)
    if len(elements) != 1 or others or stray:
        raise XcapError("not-xml-frag", "the body must be exactly one element")
    element = elements[0]
    element.tail = None
    return element


def parse_att_value(body: bytes) -> str:
    """An attribute value (``application/xcap-att+xml``): the text between the quotes of
    an AttValue, with its references resolved; ``not-xml-att-value`` otherwise."""
    text = check_utf8(body)
    if "<" in text or _NOT_CHAR.search(text):
        raise XcapError("not-xml-att-value", "'<' and control characters are not allowed")
    out, pos = [], 0
    for m in re.finditer("&", text):
        ref = _REFERENCE.match(text, m.start())
        if ref is None:
            raise XcapError("not-xml-att-value", "'&' must start a character or entity reference")
        out.append(text[pos:m.start()])
        out.append(_resolve(ref.group(0)))
        pos = ref.end()
    out.append(text[pos:])
    return "".join(out)


def _resolve(ref: str) -> str:
    body = ref[1:-1]
    if body.startswith("#"):
        try:
            char = chr(int(body[2:], 16) if body[1:2] == "x" else int(body[1:]))
        except (ValueError, OverflowError):
            raise XcapError("not-xml-att-value", f"bad character reference {ref}") from None
        if _NOT_CHAR.match(char):
            raise XcapError("not-xml-att-value", f"{ref} is not an XML character")
        return char
    if body not in _PREDEFINED:
        raise XcapError("not-xml-att-value", f"unknown entity {ref}")
    return _PREDEFINED[body]


def _attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or ["not well-formed"])[0][:200]
