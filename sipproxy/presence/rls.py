"""Resource lists (RFC 4662 event notification for lists, RFC 4826 ``rls-services`` and
``resource-lists`` documents): finding a list and expanding it, as plain code.

Why: one SUBSCRIBE with ``Supported: eventlist`` to a list URI stands for a subscription
to each resource of the list.  Here: finding the subscriber's ``rls-services`` service for
that URI and expanding its members into a tree -- entries, nested lists (kept as lists:
RFC 4662 section 5 reports a nested list as a resource of its own with a nested RLMI
document), and the references RFC 4826 allows:

* ``resource-list`` (4.2, the service's members by reference): an XCAP URI of a list in a
  ``resource-lists`` document of the subscriber's own tree (or a global one).  As before,
  the host is not checked (clients write their XCAP server's address, which may be another
  name of this one); only the path below ``resource-lists/`` is read.
* ``entry-ref`` (3.2.2): a reference to an ``entry``, relative to the XCAP root.
* ``external`` (3.2.3): a list by absolute XCAP URI (``anchor``); it becomes a nested list
  whose URI is the anchor.  Only URIs under this server's XCAP root are followed.

References are read from the XCAP documents in SQL through ``fetch`` (the caller's, so this
module does no I/O) and only into the subscriber's own tree or a global tree; anything else
(another server, another user's tree, a bad path) is skipped and logged at debug level --
nothing is ever fetched over HTTP.  A reference to a list being expanded (a cycle) is
skipped; nesting stops at :data:`MAX_DEPTH` and the tree at :data:`MAX_RESOURCES` members
(entries and nested lists), both raising :class:`XmlError` as a hostile list would.

An inline nested list has no URI of its own in RFC 4826 (a ``list`` has a ``name``); it
is given the XCAP URI that selects it (RFC 4825 6.3 node selector, the form a
``resource-list`` element uses to name a list), e.g. ``.../resource-lists/users/
sip:joe@example.com/index/~~/resource-lists/list%5B@name=%22friends%22%5D/list%5B@name=
%22far%22%5D`` -- unique, stable while the list keeps its name, and readable by XCAP.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from lxml import etree

from sipproxy.presence.pidf import XmlError, parse_xml
from sipproxy.presence.rlmi import (
    RLMI_NS,
    RLMI_TYPE,
    NestedList,
    Resource,
    instance_id,
    multipart,
    rlmi,
)

__all__ = ["RLMI_NS", "RLMI_TYPE", "MAX_RESOURCES", "MAX_DEPTH", "Resource", "NestedList", "Entry", "ListNode",
           "Expander", "parse_path", "select", "instance_id", "rlmi", "multipart", "member_id"]

log = logging.getLogger("sipproxy.presence")

#: members (entries and nested lists) one list may expand to, and how deep lists may nest
#: (bounds a hostile list)
MAX_RESOURCES = 200
MAX_DEPTH = 8
_MAX_DOCUMENT = 1 << 20

#: fetch(auid, xui, filename) -> the document, or None (``xui`` empty: the global tree)
Fetch = Callable[[str, str, str], "str | None"]


def member_id(uri: str) -> str:
    """``sip:Bob@Example.com`` -> ``Bob@example.com`` (a list subscription's resources)."""
    for scheme in ("sip:", "sips:", "pres:"):
        if uri.lower().startswith(scheme):
            uri = uri[len(scheme):]
            break
    user, at, host = uri.strip().partition("@")
    return f"{user}@{host.lower()}" if at else uri.strip().lower()


@dataclass(frozen=True)
class Entry:
    """A resource of a list: its URI and display name."""

    uri: str
    name: str = ""


@dataclass
class ListNode:
    """A list: the service itself (its URI the service URI) or a nested list."""

    uri: str
    name: str = ""
    members: list[Entry | ListNode] = field(default_factory=list)

    def resources(self) -> tuple[str, ...]:
        """The ``user@domain`` of every entry of the tree, once each, in document order."""
        seen: dict[str, None] = {}
        for member in self.members:
            if isinstance(member, ListNode):
                seen.update(dict.fromkeys(member.resources()))
            else:
                seen[member_id(member.uri)] = None
        return tuple(seen)

    def to_json(self) -> dict[str, Any]:
        return {"uri": self.uri, "name": self.name,
                "members": [m.to_json() if isinstance(m, ListNode) else [m.uri, m.name] for m in self.members]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ListNode:
        return cls(data.get("uri", ""), data.get("name", ""),
                   [cls.from_json(m) if isinstance(m, dict) else Entry(m[0], m[1]) for m in data.get("members", ())])


def _local(element: Any) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _display(element: etree._Element) -> str:
    return next(((c.text or "").strip() for c in element if _local(c) == "display-name"), "")


def _same(a: str, b: str) -> bool:
    return member_id(a) == member_id(b)


# -- XCAP paths (RFC 4825 section 6), read without importing the XCAP server ------------

_STEP = re.compile(r"(?:[\w.-]+:)?([\w.-]+|\*)(?:\[(?:@(?:[\w.-]+:)?([\w.-]+)=(?:\"([^\"]*)\"|'([^']*)')|(\d+))\])?\Z")


def _split_steps(node: str) -> list[str]:
    """A node selector's steps: split at ``/`` outside quotes (an attribute value may hold one)."""
    steps, current, quote_char = [], "", ""
    for char in node:
        if quote_char:
            quote_char = "" if char == quote_char else quote_char
        elif char in "\"'":
            quote_char = char
        elif char == "/":
            steps.append(current)
            current = ""
            continue
        current += char
    steps.append(current)
    return [s for s in steps if s]


def parse_path(path: str) -> tuple[str, str, str, list[tuple[str, str, str, int]]]:
    """``(auid, xui, filename, steps)`` of a percent-encoded path below the XCAP root such as
    ``resource-lists/users/sip:joe@example.com/index/~~/resource-lists/list%5b@name=%22f%22%5d``
    (``xui`` empty for ``global``); each step is ``(name, attribute, value, position)``."""
    document, sep, node = path.lstrip("/").partition("/~~/")
    try:
        segments = [unquote(s, errors="strict") for s in document.split("/")]
        node = unquote(node, errors="strict")
    except UnicodeDecodeError:
        raise XmlError("an XCAP path that is not UTF-8") from None
    if len(segments) >= 3 and segments[1] == "global":
        xui, rest = "", segments[2:]
    elif len(segments) >= 4 and segments[1] == "users":
        xui, rest = member_id(segments[2]), segments[3:]
        if "@" not in xui:
            raise XmlError("an XUI is user@domain")
    else:
        raise XmlError("an XCAP path is AUID/global/FILE or AUID/users/XUI/FILE")
    if any(p in ("", ".", "..") for p in rest):
        raise XmlError("a bad XCAP file name")
    steps = []
    for step in _split_steps(node) if sep else []:
        match = _STEP.match(step)
        if match is None:
            raise XmlError(f"an unsupported node selector step {step[:40]!r}")
        name, attribute, v1, v2, position = match.groups()
        steps.append((name, attribute or "", v1 if v1 is not None else (v2 or ""), int(position or 0)))
    return segments[0], xui, "/".join(rest), steps


def select(root: etree._Element, steps: list[tuple[str, str, str, int]]) -> etree._Element | None:
    """The element ``steps`` select in the document ``root`` (the root itself for none)."""
    if not steps:
        return root
    name = steps[0][0]
    if name not in ("*", _local(root)):
        return None
    element = root
    for name, attribute, value, position in steps[1:]:
        found = [c for c in element if isinstance(c.tag, str) and name in ("*", _local(c))]
        if attribute:
            found = [c for c in found if c.get(attribute) == value]
        if position:
            found = found[position - 1:position]
        if not found:
            return None
        element = found[0]
    return element


def _node_path(element: etree._Element) -> str:
    """The node selector of ``element`` (by ``name`` for a list, ``uri`` for a service,
    else by position among its namesakes when it has any)."""
    steps = []
    while element is not None:
        name, parent = _local(element), element.getparent()
        if name == "list" and element.get("name"):
            steps.append(f'{name}[@name="{element.get("name")}"]')
        elif name == "service" and element.get("uri"):
            steps.append(f'{name}[@uri="{element.get("uri")}"]')
        elif parent is not None and sum(1 for c in parent if _local(c) == name) > 1:
            steps.append(f"{name}[{[c for c in parent if _local(c) == name].index(element) + 1}]")
        else:
            steps.append(name)
        element = parent
    return "/".join(reversed(steps))


class Expander:
    """Expands one list of ``owner`` (``user@domain``); ``read`` then holds the documents it
    read or tried to read (``auid/xui/filename``, lowercased as the change feed names them),
    so that a change of any of them re-reads the list."""

    def __init__(self, fetch: Fetch, owner: str, xcap_root: str) -> None:
        self.fetch = fetch
        self.owner = member_id(owner)
        self.root = xcap_root.rstrip("/") + "/"
        self.read: set[str] = set()
        self._documents: dict[str, etree._Element | None] = {}
        self._open: list[etree._Element] = []  # the elements being expanded: a reference to one is a cycle
        self._count = 0

    def document(self, auid: str, xui: str, filename: str) -> etree._Element | None:
        key = f"{auid}/{xui}/{filename}".lower()
        self.read.add(key)
        if key not in self._documents:
            text = self.fetch(auid, xui, filename)
            self._documents[key] = parse_xml(text, _MAX_DOCUMENT) if text is not None else None
        return self._documents[key]

    # -- the service -----------------------------------------------------------------------

    def service(self, list_uri: str, package: str = "presence") -> ListNode | None:
        """The members of the service ``list_uri`` in the owner's ``rls-services`` document;
        None when there is no such service for ``package`` (or no document)."""
        root = self.document("rls-services", self.owner, "index")
        if root is None:
            return None
        if _local(root) != "rls-services":
            raise XmlError("not an rls-services document")
        for service in root:
            if _local(service) != "service" or not _same(service.get("uri", ""), list_uri):
                continue
            packages = [(p.text or "").strip() for pk in service if _local(pk) == "packages"
                        for p in pk if _local(p) == "package"]
            if packages and package not in packages:
                return None
            node = ListNode(service.get("uri", ""))
            for child in service:
                if _local(child) == "resource-list":
                    found = self._locate((child.text or "").strip(), lenient=True)
                    if found is not None and _local(found[0]) in ("list", "resource-lists"):
                        self._members(found[0], node, 0, found[1])
                    break
                if _local(child) == "list":
                    self._members(child, node, 0, ("rls-services", self.owner, "index"))
                    break
            return node
        return None

    # -- members ---------------------------------------------------------------------------

    def _add(self, node: ListNode, member: Entry | ListNode) -> None:
        if isinstance(member, Entry) and any(isinstance(m, Entry) and _same(m.uri, member.uri)
                                             for m in node.members):
            return
        self._count += 1
        if self._count > MAX_RESOURCES:
            raise XmlError(f"resource list over {MAX_RESOURCES} resources")
        node.members.append(member)

    def _members(self, element: etree._Element, node: ListNode, depth: int, where: tuple[str, str, str]) -> None:
        """Expand the children of ``element`` (a ``list``, or a ``resource-lists`` root whose
        lists become nested lists) of the document ``where`` into ``node``."""
        if depth > MAX_DEPTH:
            raise XmlError("resource lists nested too deep")
        self._open.append(element)
        try:
            for child in element:
                name = _local(child)
                if name == "entry" and child.get("uri"):
                    self._add(node, Entry(child.get("uri", "").strip(), _display(child)))
                elif name == "entry-ref" and child.get("ref"):
                    target = self._entry_ref(child.get("ref", ""))
                    if target is not None:
                        self._add(node, Entry(target.get("uri", "").strip(), _display(child) or _display(target)))
                elif name == "list":
                    nested = ListNode(self._uri(where, child), _display(child))
                    self._add(node, nested)
                    self._members(child, nested, depth + 1, where)
                elif name == "external" and child.get("anchor"):
                    self._external(child, node, depth)
        finally:
            self._open.pop()

    def _external(self, child: etree._Element, node: ListNode, depth: int) -> None:
        anchor = child.get("anchor", "").strip()
        found = self._locate(anchor, lenient=False)
        if found is None:
            return
        target, where = found
        if _local(target) not in ("list", "resource-lists"):
            log.debug("list of %s: external %s names no list: skipped", self.owner, anchor)
            return
        if any(target is e for e in self._open):
            log.debug("list of %s: external %s refers back to a list that holds it: skipped", self.owner, anchor)
            return
        nested = ListNode(anchor, _display(child))
        self._add(node, nested)
        self._members(target, nested, depth + 1, where)

    def _entry_ref(self, ref: str) -> etree._Element | None:
        path = ref.strip()
        root_path = "/" + self.root.split("://", 1)[-1].partition("/")[2]
        if path.startswith(root_path):
            path = path[len(root_path):]
        found = self._resolve(path, ref)
        if found is None:
            return None
        if _local(found[0]) != "entry" or not found[0].get("uri"):
            log.debug("list of %s: entry-ref %s names no entry: skipped", self.owner, ref)
            return None
        return found[0]

    def _locate(self, uri: str, lenient: bool) -> tuple[etree._Element, tuple[str, str, str]] | None:
        """The element an absolute XCAP URI selects, with its document; None (logged) when it
        is not on this server's XCAP root (``lenient``: any host, the path found by its
        ``resource-lists/`` step), not in the owner's or a global tree, or not there."""
        if uri.lower().startswith(self.root.lower()):
            path: str | None = uri[len(self.root):]
        elif lenient and "/resource-lists/" in uri.partition("://")[2]:
            rest = uri.partition("://")[2]
            path = rest[rest.index("/resource-lists/") + 1:]
        else:
            path = None
        if path is None:
            log.debug("list of %s: %s is not on this XCAP server: skipped", self.owner, uri)
            return None
        return self._resolve(path, uri)

    def _resolve(self, path: str, uri: str) -> tuple[etree._Element, tuple[str, str, str]] | None:
        try:
            auid, xui, filename, steps = parse_path(path)
        except XmlError as exc:
            log.debug("list of %s: %s cannot be read (%s): skipped", self.owner, uri, exc)
            return None
        if xui not in ("", self.owner):
            log.debug("list of %s: %s is in another user's tree: skipped", self.owner, uri)
            return None
        root = self.document(auid, xui, filename)
        element = select(root, steps) if root is not None else None
        if element is None:
            log.debug("list of %s: %s selects nothing: skipped", self.owner, uri)
            return None
        return element, (auid, xui, filename)

    def _uri(self, where: tuple[str, str, str], element: etree._Element) -> str:
        """The XCAP URI of a nested list (see the module's docstring)."""
        auid, xui, filename = where
        tree = f"users/sip:{xui}" if xui else "global"
        return (f"{self.root}{quote(auid)}/{quote(tree, safe='/:@')}/{quote(filename, safe='/')}/~~/"
                f"{quote(_node_path(element), safe='/:@=')}")
