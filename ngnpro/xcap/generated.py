"""The documents the server writes itself: xcap-caps (RFC 4825 section 12, global,
``xcap-caps/global/index``) and the OMA xcap-directory (a user's documents,
``org.openmobilealliance.xcap-directory/users/XUI/directory.xml``).

Pure: they are built from the usage table and from rows the caller read.  Their entity tag
is a hash of the content, so it changes exactly when the listing does.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

from lxml import etree

from .usages import USAGES, XCAP_CAPS, XCAP_DIRECTORY

CAPS_NS = "urn:ietf:params:xml:ns:xcap-caps"
DIRECTORY_NS = "urn:oma:xml:xdm:xcap-directory"
CAPS_FILE = "index"
DIRECTORY_FILE = "directory.xml"
#: namespaces of the documents this server validates (xcap-caps lists them)
NAMESPACES = (
    "urn:ietf:params:xml:ns:common-policy", "urn:ietf:params:xml:ns:pres-rules",
    "urn:oma:xml:xdm:common-policy", "urn:oma:xml:prs:pres-rules",
    "urn:ietf:params:xml:ns:resource-lists", "urn:ietf:params:xml:ns:rls-services",
    "urn:ietf:params:xml:ns:pidf", CAPS_NS, DIRECTORY_NS, "urn:ietf:params:xml:ns:xcap-error",
)


@dataclass(frozen=True)
class Listed:
    """One stored document of a user, as the directory shows it."""

    auid: str
    filename: str
    etag: str
    updated: _dt.datetime
    size: int


def content_etag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def caps() -> bytes:
    """The xcap-caps document: every AUID, no extensions, the namespaces."""
    root = etree.Element(f"{{{CAPS_NS}}}xcap-caps", nsmap={None: CAPS_NS})
    auids = etree.SubElement(root, f"{{{CAPS_NS}}}auids")
    for auid in USAGES:
        etree.SubElement(auids, f"{{{CAPS_NS}}}auid").text = auid
    etree.SubElement(root, f"{{{CAPS_NS}}}extensions")
    namespaces = etree.SubElement(root, f"{{{CAPS_NS}}}namespaces")
    for ns in NAMESPACES:
        etree.SubElement(namespaces, f"{{{CAPS_NS}}}namespace").text = ns
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def directory(base: str, xui: str, documents: Iterable[Listed]) -> bytes:
    """The xcap-directory of ``xui``: one folder per stored usage, one entry per document
    with its URI (under ``base``, the XCAP root URL), entity tag, change time and size."""
    root = etree.Element(f"{{{DIRECTORY_NS}}}xcap-directory", nsmap={None: DIRECTORY_NS})
    folders: dict[str, etree._Element] = {}
    for auid, usage in USAGES.items():
        if usage.writable and auid not in (XCAP_CAPS, XCAP_DIRECTORY):
            folders[auid] = etree.SubElement(root, f"{{{DIRECTORY_NS}}}folder", auid=auid)
    for doc in sorted(documents, key=lambda d: (d.auid, d.filename)):
        folder = folders.get(doc.auid)
        if folder is None:
            continue
        uri = f"{base}{quote(doc.auid)}/users/{quote('sip:' + xui, safe=':@')}/{quote(doc.filename)}"
        updated = doc.updated if doc.updated.tzinfo else doc.updated.replace(tzinfo=_dt.UTC)
        etree.SubElement(folder, f"{{{DIRECTORY_NS}}}entry", uri=uri, etag=doc.etag,
                         attrib={"last-modified": updated.isoformat().replace("+00:00", "Z"),
                                 "size": str(doc.size)})
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
