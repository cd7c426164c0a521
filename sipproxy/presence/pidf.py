"""PIDF (RFC 3863) documents: a hardened XML reader, the composition of several devices'
publications into one document, the neutral document of polite-block, and the
presence-rules transformations (RFC 5025 section 3.3) applied to what a watcher sees.

Why hardened: every document here comes from the network (a PUBLISH body, an XCAP
document).  The reader refuses any DOCTYPE (so no entity is ever declared: no XXE, no
billion laughs), never loads a DTD or anything from the network, and refuses a document
over the configured size before parsing it.  RPID (RFC 4480) and any other extension
elements are passed through untouched: the agent composes and filters, it does not
interpret them.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field

from lxml import etree

__all__ = ["PIDF_NS", "DM_NS", "RPID_NS", "XmlError", "parse_xml", "parse_pidf", "compose",
           "neutral", "Transformations", "transform", "serialise"]

PIDF_NS = "urn:ietf:params:xml:ns:pidf"
DM_NS = "urn:ietf:params:xml:ns:pidf:data-model"
RPID_NS = "urn:ietf:params:xml:ns:pidf:rpid"
CONTENT_TYPE = "application/pidf+xml"

_TUPLE = f"{{{PIDF_NS}}}tuple"
_NOTE = f"{{{PIDF_NS}}}note"
_PERSON = f"{{{DM_NS}}}person"
_DEVICE = f"{{{DM_NS}}}device"

#: a markup declaration that could declare entities or pull in a DTD
_DECLARATION = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_PARSER_OPTIONS = dict(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                       huge_tree=False, remove_pis=True, remove_comments=True)


class XmlError(ValueError):
    """A document refused: malformed, too large, or carrying a DTD (the 400's reason)."""


def parse_xml(data: bytes | str, max_bytes: int = 65536) -> etree._Element:
    """The root element of ``data``, parsed without DTDs, entities or network access.

    Raises :class:`XmlError` for a document over ``max_bytes``, one with a DOCTYPE or
    ENTITY declaration (refused before parsing and checked again after, for encodings the
    byte scan cannot read), or one that is not well-formed."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise XmlError(f"document over {max_bytes} bytes")
    if _DECLARATION.search(raw):
        raise XmlError("DTDs and entity declarations are not accepted")
    parser = etree.XMLParser(**_PARSER_OPTIONS)  # a parser per call: lxml parsers keep state
    try:
        root = etree.fromstring(raw, parser)
    except etree.XMLSyntaxError as exc:
        raise XmlError(f"malformed XML: {exc}") from None
    info = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None:
        raise XmlError("DTDs and entity declarations are not accepted")
    return root


def parse_pidf(data: bytes | str, max_bytes: int = 65536) -> etree._Element:
    """A PIDF ``<presence>`` root (with an ``entity``), or :class:`XmlError`."""
    root = parse_xml(data, max_bytes)
    if root.tag != f"{{{PIDF_NS}}}presence":
        raise XmlError("not a PIDF document (root must be presence in " + PIDF_NS + ")")
    if not root.get("entity"):
        raise XmlError("PIDF presence element without entity")
    return root


def serialise(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _empty(entity: str) -> etree._Element:
    return etree.Element(f"{{{PIDF_NS}}}presence", nsmap={None: PIDF_NS, "dm": DM_NS, "rpid": RPID_NS},
                         entity=entity)


def compose(entity: str, documents: list[etree._Element]) -> etree._Element:
    """One document for ``entity`` from several publications (oldest first).

    Why this way: each device publishes its own tuples; a watcher wants them all.  Tuples
    and devices are kept from every publication (a repeated ``id`` keeps the newest), the
    person element(s) and presence-level notes of the newest publication that has them win
    (the user's latest statement of activity/mood), other extension elements are kept."""
    out = _empty(entity)
    tuples: dict[str, etree._Element] = {}
    devices: dict[str, etree._Element] = {}
    persons: list[etree._Element] = []
    notes: list[etree._Element] = []
    others: list[etree._Element] = []
    for doc in documents:
        doc_persons, doc_notes = [], []
        for child in doc:
            if not isinstance(child.tag, str):
                continue
            if child.tag == _TUPLE:
                tuples[child.get("id") or f"t{len(tuples)}"] = child
            elif child.tag == _DEVICE:
                devices[child.get("id") or f"d{len(devices)}"] = child
            elif child.tag == _PERSON:
                doc_persons.append(child)
            elif child.tag == _NOTE:
                doc_notes.append(child)
            else:
                others.append(child)
        if doc_persons:
            persons = doc_persons
        if doc_notes:
            notes = doc_notes
    # PIDF's schema: tuples, then notes, then extensions
    for element in [*tuples.values(), *notes, *persons, *devices.values(), *others]:
        out.append(copy.deepcopy(element))
    return out


def neutral(entity: str) -> etree._Element:
    """What a politely blocked watcher sees (RFC 5025 3.2.1): one closed tuple, nothing else."""
    out = _empty(entity)
    tup = etree.SubElement(out, _TUPLE, id="neutral")
    status = etree.SubElement(tup, f"{{{PIDF_NS}}}status")
    etree.SubElement(status, f"{{{PIDF_NS}}}basic").text = "closed"
    return out


@dataclass
class Transformations:
    """The union of the matching rules' presence transformations (RFC 5025 3.3).

    Each ``provide-*`` element is a set of selectors: ``"all"`` or ``(kind, value)`` pairs
    (``("service-uri", "sip:..")``, ``("occurrence-id", "t1")``, ``("class", "work")``,
    ``("deviceID", "urn:..")``); attributes are person/tuple child elements named by their
    local name (``activities``, ``mood``, ``note``...)."""

    services: set = field(default_factory=set)
    persons: set = field(default_factory=set)
    devices: set = field(default_factory=set)
    attributes: set[str] = field(default_factory=set)
    all_attributes: bool = False

    def merge(self, other: Transformations) -> None:
        self.services |= other.services
        self.persons |= other.persons
        self.devices |= other.devices
        self.attributes |= other.attributes
        self.all_attributes = self.all_attributes or other.all_attributes

    def key(self) -> tuple:
        """A hashable value equal for equal transformations (watchers granted the same see
        the same document: it is transformed once per state change)."""
        return (frozenset(self.services), frozenset(self.persons), frozenset(self.devices),
                frozenset(self.attributes), self.all_attributes)

    def text(self) -> str:
        """A short form for the subscription row (what the watcher was granted)."""
        parts = []
        for name, values in (("services", self.services), ("persons", self.persons), ("devices", self.devices)):
            if values:
                parts.append(name + "=" + ("all" if "all" in values else str(len(values))))
        if self.all_attributes:
            parts.append("all-attributes")
        elif self.attributes:
            parts.append("attributes=" + ",".join(sorted(self.attributes)))
        return " ".join(parts)[:255]


def _class_of(element: etree._Element) -> str:
    found = element.find(f"{{{RPID_NS}}}class")
    return (found.text or "").strip() if found is not None else ""


def _selected(selectors: set, element: etree._Element, kind: str) -> bool:
    if "all" in selectors:
        return True
    if ("occurrence-id", element.get("id") or "") in selectors:
        return True
    klass = _class_of(element)
    if klass and ("class", klass) in selectors:
        return True
    if kind == "tuple":
        contact = element.find(f"{{{PIDF_NS}}}contact")
        uri = (contact.text or "").strip() if contact is not None else ""
        if uri and ("service-uri", uri) in selectors:
            return True
        scheme = uri.split(":", 1)[0] if ":" in uri else ""
        if scheme and ("service-uri-scheme", scheme) in selectors:
            return True
    if kind == "device":
        dev = element.find(f"{{{DM_NS}}}deviceID")
        if dev is not None and ("deviceID", (dev.text or "").strip()) in selectors:
            return True
    return False


#: person/tuple/device children never withheld (identity and time, not information)
_KEPT = {"status", "basic", "timestamp", "contact", "deviceID"}


def _strip_attributes(element: etree._Element, t: Transformations) -> None:
    if t.all_attributes:
        return
    for child in list(element):
        if not isinstance(child.tag, str):
            continue
        name = etree.QName(child).localname
        if name in _KEPT or name in t.attributes:
            continue
        element.remove(child)


def transform(document: etree._Element, t: Transformations) -> etree._Element:
    """The part of ``document`` the transformations let a watcher see (a new tree).

    RFC 5025's privacy default: what no ``provide-*`` element names is withheld --
    tuples need ``provide-services``, persons ``provide-persons``, devices
    ``provide-devices``; within them, attributes need ``provide-all-attributes`` or their
    own ``provide-<name>`` (presence-level notes: ``provide-note``)."""
    out = etree.Element(document.tag, nsmap=document.nsmap, entity=document.get("entity", ""))
    for child in document:
        if not isinstance(child.tag, str):
            continue
        if child.tag == _TUPLE:
            keep = _selected(t.services, child, "tuple")
        elif child.tag == _PERSON:
            keep = _selected(t.persons, child, "person")
        elif child.tag == _DEVICE:
            keep = _selected(t.devices, child, "device")
        elif child.tag == _NOTE:
            keep = t.all_attributes or "note" in t.attributes
        else:
            keep = t.all_attributes
        if keep:
            element = copy.deepcopy(child)
            if child.tag != _NOTE:
                _strip_attributes(element, t)
            out.append(element)
    return out
