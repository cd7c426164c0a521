"""Resource lists (RFC 4662 event notification for lists, RFC 4826 ``rls-services`` and
``resource-lists`` documents), as plain code.

Why: one SUBSCRIBE with ``Supported: eventlist`` to a list URI stands for a subscription
to each resource of the list; the list server answers with one NOTIFY per change that
carries a ``multipart/related`` body -- an RLMI document naming each resource, its
instance and state, then the PIDF of each resource it reports on.  Here: finding the list
(the subscriber's ``rls-services`` service for that URI, its resources inline or by a
``resource-list`` reference into a ``resource-lists`` document, nested lists flattened),
and building the RLMI document and the multipart body.  The agent does the rest.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from urllib.parse import unquote

from lxml import etree

from sipproxy.presence.pidf import XmlError, parse_xml

__all__ = ["RLMI_NS", "RLMI_TYPE", "MAX_RESOURCES", "Resource", "Service", "find_service",
           "parse_list_reference", "list_entries", "instance_id", "rlmi", "multipart"]

RLMI_NS = "urn:ietf:params:xml:ns:rlmi"
RLMI_TYPE = "application/rlmi+xml"
#: resources one list may expand to, and how deep lists may nest (bounds a hostile list)
MAX_RESOURCES = 200
MAX_DEPTH = 8


@dataclass(frozen=True)
class Service:
    """An ``rls-services`` service: inline entries, or a reference to a resource list."""

    uri: str
    entries: tuple[tuple[str, str], ...] = ()  # (uri, display name) when inline
    reference: str = ""  # a resource-list URI otherwise
    packages: tuple[str, ...] = ()


@dataclass
class Resource:
    """One resource as an RLMI document reports it."""

    uri: str
    name: str = ""
    state: str = "pending"  # active, pending, terminated
    reason: str = ""
    body: bytes = b""  # its PIDF, when there is state to give
    content_type: str = "application/pidf+xml"

    @property
    def instance(self) -> str:
        return instance_id(self.uri)


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _same(a: str, b: str) -> bool:
    def norm(u: str) -> str:
        u = u.strip()
        for scheme in ("sip:", "sips:", "pres:"):
            if u.lower().startswith(scheme):
                u = u[len(scheme):]
        user, at, host = u.partition("@")
        return f"{user}@{host.lower()}" if at else u.lower()
    return norm(a) == norm(b)


def _entries(element: etree._Element, out: list[tuple[str, str]], depth: int) -> None:
    """Entries of a ``list`` element, nested lists flattened (depth- and count-bounded)."""
    if depth > MAX_DEPTH:
        raise XmlError("resource lists nested too deep")
    for child in element:
        name = _local(child)
        if name == "entry" and child.get("uri"):
            display = next((c.text or "" for c in child if _local(c) == "display-name"), "")
            if not any(_same(u, child.get("uri", "")) for u, _ in out):
                out.append((child.get("uri", ""), display.strip()))
                if len(out) > MAX_RESOURCES:
                    raise XmlError(f"resource list over {MAX_RESOURCES} resources")
        elif name == "list":
            _entries(child, out, depth + 1)


def find_service(document: str | bytes, list_uri: str) -> Service | None:
    """The service of ``list_uri`` in an ``rls-services`` document, or None."""
    root = parse_xml(document, 1 << 20)
    if _local(root) != "rls-services":
        raise XmlError("not an rls-services document")
    for service in root:
        if _local(service) != "service" or not _same(service.get("uri", ""), list_uri):
            continue
        packages = tuple((p.text or "").strip() for pk in service if _local(pk) == "packages"
                         for p in pk if _local(p) == "package")
        for child in service:
            if _local(child) == "resource-list":
                return Service(service.get("uri", ""), reference=(child.text or "").strip(), packages=packages)
            if _local(child) == "list":
                entries: list[tuple[str, str]] = []
                _entries(child, entries, 0)
                return Service(service.get("uri", ""), tuple(entries), packages=packages)
        return Service(service.get("uri", ""), packages=packages)
    return None


def parse_list_reference(reference: str) -> tuple[str, str, list[str]]:
    """``(xui, filename, list names)`` of a ``resource-list`` URI such as
    ``http://xcap.example.com/xcap-root/resource-lists/users/sip:joe@example.com/index/~~/
    resource-lists/list%5b@name=%22friends%22%5d`` (no names: the whole document)."""
    text = unquote(reference)
    document, _, node = text.partition("/~~/")
    marker = "resource-lists/users/"
    at = document.find(marker)
    if at < 0:
        raise XmlError("resource-list reference outside a users' resource-lists tree")
    xui, _, filename = document[at + len(marker):].partition("/")
    if xui.startswith("sip:"):
        xui = xui[4:]
    names = []
    for step in [s for s in node.split("/") if s][1:]:  # (the first step is the root element)
        _, _, predicate = step.partition("[@name=")
        names.append(predicate.rstrip("]").strip("\"'"))
    return xui.lower(), filename or "index", names


def list_entries(document: str | bytes, names: list[str]) -> list[tuple[str, str]]:
    """The entries of the list ``names`` selects in a ``resource-lists`` document (every
    list of the document when ``names`` is empty), nested lists flattened."""
    root = parse_xml(document, 1 << 20)
    if _local(root) != "resource-lists":
        raise XmlError("not a resource-lists document")
    element = root
    for name in names:
        element = next((c for c in element if _local(c) == "list" and c.get("name") == name), None)
        if element is None:
            return []
    out: list[tuple[str, str]] = []
    _entries(element, out, 0)
    return out


def instance_id(uri: str) -> str:
    """A resource's instance id: stable, so partial notifications name the same instance."""
    return hashlib.sha1(uri.encode()).hexdigest()[:12]


def rlmi(list_uri: str, version: int, full: bool, resources: list[Resource], cid_host: str) -> bytes:
    """The RLMI document (RFC 4662 5.3) of ``resources``."""
    root = etree.Element(f"{{{RLMI_NS}}}list", nsmap={None: RLMI_NS}, uri=list_uri, version=str(version),
                         fullState="true" if full else "false")
    for res in resources:
        element = etree.SubElement(root, f"{{{RLMI_NS}}}resource", uri=res.uri)
        if res.name:
            etree.SubElement(element, f"{{{RLMI_NS}}}name").text = res.name
        attrs = {"id": res.instance, "state": res.state}
        if res.state == "terminated" and res.reason:
            attrs["reason"] = res.reason
        if res.body:
            attrs["cid"] = f"{res.instance}@{cid_host}"
        etree.SubElement(element, f"{{{RLMI_NS}}}instance", **attrs)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def multipart(list_uri: str, version: int, full: bool, resources: list[Resource],
              cid_host: str) -> tuple[bytes, str]:
    """``(body, Content-Type)`` of a list NOTIFY: multipart/related (RFC 2387), the RLMI
    document first (the ``start``), then each resource's state."""
    boundary = "rls-" + secrets.token_hex(8)
    start = f"rlmi-{secrets.token_hex(4)}@{cid_host}"
    parts = [(start, RLMI_TYPE, rlmi(list_uri, version, full, resources, cid_host))]
    parts += [(f"{r.instance}@{cid_host}", r.content_type, r.body) for r in resources if r.body]
    out = b""
    for cid, ctype, data in parts:
        out += (f"--{boundary}\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <{cid}>\r\n"
                f'Content-Type: {ctype};charset="UTF-8"\r\n\r\n').encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f'multipart/related;type="{RLMI_TYPE}";start="<{start}>";boundary="{boundary}"'
