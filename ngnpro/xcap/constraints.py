"""The rules of each application usage that a schema cannot say (RFC 4825 section 8.2.5
step "constraints"): uniqueness of names and URIs among siblings, and what a URI must look
like.  Pure functions of an lxml tree; each raises ``XcapError`` (``uniqueness-failure``
with the field and an unused alternative value, or ``constraint-failure``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from lxml import etree

from .errors import XcapError
from .selector import element_children, position_path

CP = "urn:ietf:params:xml:ns:common-policy"
OCP = "urn:oma:xml:xdm:common-policy"
RL = "urn:ietf:params:xml:ns:resource-lists"
RLS = "urn:ietf:params:xml:ns:rls-services"

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S")
_HTTP = re.compile(r"https?://[^\s/?#]+", re.I)

#: a usage's rules: (root element, default namespace, values other documents hold)
Check = Callable[[etree._Element, str, Iterable[str]], None]


def alternative(value: str, taken: Iterable[str]) -> str:
    """A value like ``value`` that is not taken: ``friends`` -> ``friends-2``,
    ``sip:a@example.com`` -> ``sip:a-2@example.com``."""
    used = set(taken)
    head, at, tail = value.partition("@") if "@" in value else (value, "", "")
    for n in range(2, 10_000):
        candidate = f"{head}-{n}{at}{tail}"
        if candidate not in used:
            return candidate
    return value + "-x"


def unique(elements: list[etree._Element], attr: str, default_ns: str, taken: Iterable[str] = ()) -> None:
    """``attr`` of ``elements`` (siblings) must differ; ``taken`` are values used elsewhere."""
    seen = set(taken)
    for el in elements:
        value = el.get(attr)
        if value is None:
            continue
        if value in seen:
            values = {e.get(attr) for e in elements if e.get(attr) is not None} | seen
            field = f"{position_path(el, default_ns)}/@{attr}"
            raise XcapError("uniqueness-failure", f"{attr} {value!r} is already used",
                            exists=[(field, [alternative(value, values)])])
        seen.add(value)


def _is_uri(value: str) -> bool:
    return bool(_SCHEME.match(value))


def _require(condition: bool, phrase: str) -> None:
    if not condition:
        raise XcapError("constraint-failure", phrase)


# -- common policy: pres-rules and the OMA variant ------------------------------------------------


def common_policy(root: etree._Element, default_ns: str, taken: Iterable[str] = ()) -> None:
    """Rule ids unique in the ruleset (RFC 4745 section 7); identities are URIs
    (RFC 5025 section 3.1); OMA external lists are HTTP URIs of the XCAP server."""
    unique([r for r in element_children(root) if r.tag == f"{{{CP}}}rule"], "id", default_ns)
    for one in root.iter(f"{{{CP}}}one"):
        _require(_is_uri(one.get("id", "")), f"identity {one.get('id')!r} is not a URI")
    for exc in root.iter(f"{{{CP}}}except"):
        if exc.get("id") is not None:
            _require(_is_uri(exc.get("id", "")), f"except id {exc.get('id')!r} is not a URI")
    for entry in root.iter(f"{{{OCP}}}entry"):
        _require(bool(_HTTP.match(entry.get("anc", ""))), f"external list {entry.get('anc')!r} is not an HTTP URI")


# -- resource lists and RLS services -------------------------------------------------------------


def _list_rules(lst: etree._Element, default_ns: str) -> None:
    """RFC 4826 section 3.4.5, for one list and, recursively, the lists in it."""
    kids = element_children(lst)
    unique([k for k in kids if k.tag == f"{{{RL}}}list"], "name", default_ns)
    entries = [k for k in kids if k.tag == f"{{{RL}}}entry"]
    for entry in entries:
        _require(_is_uri(entry.get("uri", "")), f"entry uri {entry.get('uri')!r} is not a URI")
    unique(entries, "uri", default_ns)
    refs = [k for k in kids if k.tag == f"{{{RL}}}entry-ref"]
    for ref in refs:
        value = ref.get("ref", "")
        _require(not _SCHEME.match(value) and not value.startswith("/") and bool(value),
                 f"entry-ref {value!r} is not a relative path below the XCAP root")
    unique(refs, "ref", default_ns)
    externals = [k for k in kids if k.tag == f"{{{RL}}}external"]
    for ext in externals:
        _require(bool(_HTTP.match(ext.get("anchor", ""))), f"external anchor {ext.get('anchor')!r} is not an HTTP URI")
    unique(externals, "anchor", default_ns)
    for k in kids:
        if k.tag in (f"{{{RL}}}list", f"{{{RLS}}}list"):
            _list_rules(k, default_ns)


def resource_lists(root: etree._Element, default_ns: str, taken: Iterable[str] = ()) -> None:
    """Names of sibling lists, URIs of a list's entries, refs and anchors are unique."""
    _list_rules(root, default_ns)


def service_uris(root: etree._Element) -> list[str]:
    """The ``uri`` of each service of an rls-services document."""
    return [s.get("uri", "") for s in element_children(root) if s.tag == f"{{{RLS}}}service"]


def rls_services(root: etree._Element, default_ns: str, taken: Iterable[str] = ()) -> None:
    """Service URIs unique (in the document, and against ``taken``: those of every other
    rls-services document of the server, RFC 4826 section 4.4.3); resource-list references
    are HTTP URIs; inline lists follow the resource-lists rules."""
    services = [s for s in element_children(root) if s.tag == f"{{{RLS}}}service"]
    for service in services:
        _require(_is_uri(service.get("uri", "")), f"service uri {service.get('uri')!r} is not a URI")
    unique(services, "uri", default_ns, taken)
    for service in services:
        for child in element_children(service):
            if child.tag == f"{{{RLS}}}resource-list":
                _require(bool(_HTTP.match((child.text or "").strip())), "resource-list is not an HTTP URI")
            elif child.tag == f"{{{RLS}}}list":
                _list_rules(child, default_ns)
