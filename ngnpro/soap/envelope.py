"""Reading a request envelope safely; fault documents for requests that never reach a method.

Requests come from the network, so parsing refuses what XML can be abused with: a DOCTYPE
(hence every entity, internal or external: billion laughs, XXE), processing of network
resources, deeper nesting than any NGNPro message needs, and bodies larger than the limit
(checked by the server before parsing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree

from ngnpro.recycle import note_failure

from .const import NS_SOAP_ENV
from .faults import INVALID_REQUEST, SERVER_ERROR, NGNProError
from .writer import fault

#: Deepest element nesting accepted (the deepest NGNPro message needs about 10).
MAX_DEPTH = 48

#: No DTD, no entity expansion, no network, no huge trees (libxml2's depth/size limits stay on).
_PARSER = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False,
                          remove_comments=True, remove_pis=True, collect_ids=False)
_WITH_ID = etree.XPath("//*[@id]")
#: an ``id`` attribute somewhere in the body (only then are multi-references looked for)
_ID_ATTRIBUTE = re.compile(rb"\sid\s*=")
_DEPTH_PROBES: dict[int, etree.XPath] = {}


def _too_deep(root: etree._Element, limit: int) -> bool:
    """Whether any element lies deeper than ``limit`` (the root being at depth 1): one
    XPath step per level, evaluated by libxml2, which stops at the document's own depth."""
    probe = _DEPTH_PROBES.get(limit)
    if probe is None:
        probe = _DEPTH_PROBES[limit] = etree.XPath("boolean(" + "/*" * (limit + 1) + ")")
    return bool(probe(root))


@dataclass
class ParsedRequest:
    root: etree._Element
    header: list[etree._Element]
    method: etree._Element
    ids: dict[str, etree._Element] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return etree.QName(self.method).namespace or ""

    @property
    def name(self) -> str:
        return etree.QName(self.method).localname


def _refuse(why: str) -> NGNProError:
    return NGNProError(INVALID_REQUEST, f"Invalid request: {why}")


def parse_request(body: bytes, max_depth: int = MAX_DEPTH) -> ParsedRequest:
    """Parse and check one SOAP 1.1 request envelope; raise fault 9003 when it is unusable."""
    if not body or not body.strip():
        raise _refuse("empty body")
    head = body[:4096].lstrip()
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body or head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _refuse("DOCTYPE and entity declarations are not allowed")
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        # libxml2's name dictionary full (or memory short): answered as before, and the
        # worker retires after the answer (ngnpro.recycle)
        note_failure(exc, "the SOAP decoder")
        raise _refuse(f"malformed XML ({str(exc)[:120]})") from None
    except MemoryError as exc:
        note_failure(exc, "the SOAP decoder")
        raise NGNProError(SERVER_ERROR, "Internal server error (out of memory)") from None
    if root is None:
        raise _refuse("empty document")
    if root.getroottree().docinfo.doctype:
        raise _refuse("DOCTYPE and entity declarations are not allowed")
    # libxml2 stops at 256 levels by itself; NGNPro messages need about 10 (and a body with
    # fewer start tags than the limit cannot nest deeper than it)
    if body.count(b"<") > max_depth and _too_deep(root, max_depth):
        raise _refuse(f"elements nested deeper than {max_depth}")
    ids = {el.get("id"): el for el in _WITH_ID(root)} if _ID_ATTRIBUTE.search(body) else {}
    if root.tag != f"{{{NS_SOAP_ENV}}}Envelope":
        raise _refuse("not a SOAP 1.1 Envelope")
    header: list[etree._Element] = []
    body_el = None
    for child in root:
        if child.tag == f"{{{NS_SOAP_ENV}}}Header":
            header = [h for h in child if isinstance(h.tag, str)]
        elif child.tag == f"{{{NS_SOAP_ENV}}}Body":
            body_el = child
    if body_el is None:
        raise _refuse("no SOAP Body")
    calls = [c for c in body_el if isinstance(c.tag, str)]
    if not calls:
        raise _refuse("empty SOAP Body")
    # SOAP 1.1 5.2.1: further body entries are independent elements referenced by href
    return ParsedRequest(root, header, calls[0], ids)


def fault_bytes(error: NGNProError | None = None, code: int = SERVER_ERROR, message: str = "Internal server error") -> bytes:
    """A complete fault response document."""
    if error is not None:
        code, message = error.code, error.message
    return fault(code, message, "Client" if code in (INVALID_REQUEST, 9001, 9002) else "Server")
