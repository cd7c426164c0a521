"""RLMI documents and the ``multipart/related`` bodies of list NOTIFYs (RFC 4662 section
5), nested lists included, as plain code.

Why a module of its own: what a list NOTIFY carries (which resources, which versions) is
decided by the list server; how it is written -- the RLMI document first (the ``start`` of
the ``multipart/related`` body, RFC 2387), a part per resource with state, and for a
nested list a ``multipart/related`` part of its own -- is fixed by RFC 4662 and does not
depend on where the state came from.

RFC 4662 points followed:

* 5.1/5.2: the root ``list`` names the list (``uri``), its ``version`` (one counter per
  list, one up with each RLMI document sent for that list) and ``fullState``.
* 5.3-5.5: a ``resource`` per member, with ``name`` and an ``instance`` (stable ``id``,
  ``state``, ``reason`` when terminated, ``cid`` of the part carrying its state).
* 5 (nested lists; the ``sip:ed-friends@stockholm.example.org`` resource of the examples
  in section 6): a nested list is a resource of the outer list whose instance ``cid``
  names a ``multipart/related`` part holding the nested list's own RLMI document (its own
  ``uri``, ``version`` and ``fullState``) and its members' parts.
* Content-IDs are unique in the whole body (RFC 2392): the same resource may be reported
  in two nested lists of one NOTIFY.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field

from lxml import etree

__all__ = ["RLMI_NS", "RLMI_TYPE", "Resource", "NestedList", "instance_id", "rlmi", "multipart"]

RLMI_NS = "urn:ietf:params:xml:ns:rlmi"
RLMI_TYPE = "application/rlmi+xml"


def instance_id(uri: str) -> str:
    """A resource's instance id: stable, so partial notifications name the same instance."""
    return hashlib.sha1(uri.encode()).hexdigest()[:12]


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


@dataclass
class NestedList:
    """A nested list as a resource of its parent (always ``active``: this server serves it)
    with the members this NOTIFY reports, under its own ``version`` and ``fullState``."""

    uri: str
    name: str = ""
    version: int = 0
    full: bool = True
    members: list[Resource | NestedList] = field(default_factory=list)

    @property
    def instance(self) -> str:
        return instance_id(self.uri)


Member = Resource | NestedList


def rlmi(list_uri: str, version: int, full: bool, members: list[Member], cids: dict[int, str]) -> bytes:
    """The RLMI document (RFC 4662 5.3) of ``members``; ``cids``: member index -> the
    Content-ID of its part (a nested list's, or a resource's state)."""
    root = etree.Element(f"{{{RLMI_NS}}}list", nsmap={None: RLMI_NS}, uri=list_uri, version=str(version),
                         fullState="true" if full else "false")
    for index, member in enumerate(members):
        element = etree.SubElement(root, f"{{{RLMI_NS}}}resource", uri=member.uri)
        if member.name:
            etree.SubElement(element, f"{{{RLMI_NS}}}name").text = member.name
        attrs = {"id": member.instance, "state": "active" if isinstance(member, NestedList) else member.state}
        if isinstance(member, Resource) and member.state == "terminated" and member.reason:
            attrs["reason"] = member.reason
        if index in cids:
            attrs["cid"] = cids[index]
        etree.SubElement(element, f"{{{RLMI_NS}}}instance", **attrs)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _related(list_uri: str, version: int, full: bool, members: list[Member], host: str, token: str,
             counter: Iterator[int]) -> tuple[bytes, str]:
    """One ``multipart/related`` body: its RLMI document, then a part per member with state
    (a nested list's part being a body like this one)."""
    parts: list[tuple[str, str, bytes]] = []
    cids: dict[int, str] = {}
    for index, member in enumerate(members):
        if isinstance(member, NestedList):
            data, ctype = _related(member.uri, member.version, member.full, member.members, host, token, counter)
        elif member.body:
            data, ctype = member.body, f'{member.content_type};charset="UTF-8"'
        else:
            continue
        cids[index] = f"{member.instance}.{next(counter)}.{token}@{host}"
        parts.append((cids[index], ctype, data))
    start = f"rlmi-{token}.{next(counter)}@{host}"
    parts.insert(0, (start, f'{RLMI_TYPE};charset="UTF-8"', rlmi(list_uri, version, full, members, cids)))
    boundary = f"rls-{token}-{next(counter)}"
    out = b""
    for cid, ctype, data in parts:
        out += (f"--{boundary}\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <{cid}>\r\n"
                f"Content-Type: {ctype}\r\n\r\n").encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f'multipart/related;type="{RLMI_TYPE}";start="<{start}>";boundary="{boundary}"'


def multipart(list_uri: str, version: int, full: bool, members: list[Member], cid_host: str) -> tuple[bytes, str]:
    """``(body, Content-Type)`` of a list NOTIFY: multipart/related (RFC 2387), the RLMI
    document first, then each member's state -- a nested list's as a nested
    multipart/related of the same shape (RFC 4662 section 5)."""
    return _related(list_uri, version, full, members, cid_host, secrets.token_hex(6), itertools.count())
