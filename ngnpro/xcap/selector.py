"""XCAP node selectors (RFC 4825 section 6.3 and 6.4), parsed and applied to an lxml tree.

Pure: no I/O, no HTTP.  A selector such as
``resource-lists/list[@name="friends"]/entry[2]/@uri`` is parsed once into steps (name,
position, attribute test) and a terminal (attribute or namespace selector); applying it is
a walk from the document's root element.  Unprefixed element names are in the application
usage's default namespace; prefixes come from the request's ``xmlns()`` bindings (section
6.4); unprefixed attribute names are in no namespace, as in XML.

A malformed selector or an unbound prefix is a :class:`SelectorError` (the server answers
400).  Whether a selector selects nothing or more than one element is for the caller to
judge: GET answers 404 for both, PUT creates in the first case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from lxml import etree

#: Steps, attribute values and bindings are bounded: a selector is a path into a document
#: of at most ``xcap_max_document`` bytes, never a program.
MAX_STEPS = 64
MAX_SELECTOR = 4096

_NCNAME = r"[^\W\d][\w.\-]*"
_QNAME = rf"(?:{_NCNAME}:)?{_NCNAME}"
_STEP = re.compile(
    rf"(?P<name>\*|{_QNAME})"
    r"(?:\[(?P<pos>[0-9]{1,9})\])?"
    rf"(?:\[@(?P<attr>{_QNAME})=(?P<value>\"[^\"<]*\"|'[^'<]*')\])?\Z"
)
_ATTRIBUTE = re.compile(rf"@(?P<name>{_QNAME})\Z")
_BINDING = re.compile(rf"\s*xmlns\(\s*(?P<prefix>{_NCNAME})\s*=\s*(?P<ns>[^)\s{{}}\x00-\x1f\x7f]+)\s*\)")
_REFERENCE = re.compile(r"&(?:#[0-9]{1,7}|#x[0-9A-Fa-f]{1,6}|amp|lt|gt|quot|apos);")
_PREDEFINED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


class SelectorError(ValueError):
    """A node selector or namespace binding that does not follow RFC 4825's grammar."""


#: (namespace or None, local name)
Name = tuple[str | None, str]


@dataclass(frozen=True)
class Step:
    """One location step: ``name`` None is the ``*`` wildcard."""

    name: Name | None
    position: int | None = None
    attr: Name | None = None
    value: str | None = None
    text: str = ""

    def matches_name(self, el: etree._Element) -> bool:
        if self.name is None:
            return True
        return _name_of(el) == self.name


@dataclass(frozen=True)
class NodeSelector:
    """Element steps and, optionally, a terminal: ``("attribute", name)`` or
    ``("namespace", None)``."""

    steps: tuple[Step, ...]
    terminal: tuple[str, Name | None] | None = None

    @property
    def attribute(self) -> Name | None:
        return self.terminal[1] if self.terminal and self.terminal[0] == "attribute" else None

    @property
    def is_namespace(self) -> bool:
        return bool(self.terminal and self.terminal[0] == "namespace")

    def text(self, upto: int | None = None) -> str:
        """The element selector's first ``upto`` steps as written (for ancestors)."""
        return "/".join(s.text for s in self.steps[:upto])


def parse_bindings(query: str) -> dict[str, str]:
    """The ``xmlns(prefix=namespace)`` bindings of a request's query (section 6.4)."""
    out: dict[str, str] = {}
    pos = 0
    query = query.strip()
    while pos < len(query):
        m = _BINDING.match(query, pos)
        if m is None:
            raise SelectorError(f"bad namespace binding at {query[pos:pos + 40]!r}")
        out[m.group("prefix")] = m.group("ns")
        pos = m.end()
    return out


def parse(text: str, default_ns: str | None, bindings: dict[str, str] | None = None) -> NodeSelector:
    """Parse a node selector (the part of the request URI after ``~~``, percent-decoded)."""
    bindings = bindings or {}
    if len(text) > MAX_SELECTOR:
        raise SelectorError("node selector too long")
    if text.startswith("/"):
        text = text[1:]
    parts = _split(text)
    if not parts or len(parts) > MAX_STEPS:
        raise SelectorError("empty node selector" if not parts else "too many steps")
    terminal: tuple[str, Name | None] | None = None
    last = parts[-1]
    if last == "namespace::*":
        terminal = ("namespace", None)
        parts = parts[:-1]
    else:
        m = _ATTRIBUTE.match(last)
        if m:
            terminal = ("attribute", _resolve(m.group("name"), None, bindings))
            parts = parts[:-1]
    if not parts:
        raise SelectorError("a node selector starts with the root element")
    steps = []
    for part in parts:
        m = _STEP.match(part)
        if m is None:
            raise SelectorError(f"bad step {part[:80]!r}")
        name = None if m.group("name") == "*" else _resolve(m.group("name"), default_ns, bindings)
        pos = int(m.group("pos")) if m.group("pos") is not None else None
        attr = value = None
        if m.group("attr") is not None:
            attr = _resolve(m.group("attr"), None, bindings)
            value = _att_value(m.group("value")[1:-1])
        steps.append(Step(name, pos, attr, value, part))
    return NodeSelector(tuple(steps), terminal)


def _split(text: str) -> list[str]:
    """Split on ``/`` outside brackets and quotes (attribute values may hold ``/``)."""
    parts, start, depth, quote_char = [], 0, 0, ""
    for i, c in enumerate(text):
        if quote_char:
            if c == quote_char:
                quote_char = ""
        elif c in "\"'" and depth:
            quote_char = c
        elif c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
            if depth < 0:
                raise SelectorError("unbalanced ']'")
        elif c == "/" and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if quote_char or depth:
        raise SelectorError("unterminated predicate")
    parts.append(text[start:])
    if any(not p for p in parts):
        raise SelectorError("empty step")
    return parts


def _resolve(qname: str, default_ns: str | None, bindings: dict[str, str]) -> Name:
    prefix, colon, local = qname.partition(":")
    if not colon:
        ns, local = default_ns, qname
    elif prefix not in bindings:
        raise SelectorError(f"prefix {prefix!r} is not bound by an xmlns() in the query")
    else:
        ns = bindings[prefix]
    try:  # what \w lets through but XML names do not take
        etree.QName(ns, local)
    except ValueError:
        raise SelectorError(f"{qname!r} is not an XML name") from None
    return (ns, local)


def _att_value(raw: str) -> str:
    """An AttValue's text with its references resolved (a bare ``&`` is an error)."""
    out, pos = [], 0
    while True:
        amp = raw.find("&", pos)
        if amp < 0:
            out.append(raw[pos:])
            return "".join(out)
        m = _REFERENCE.match(raw, amp)
        if m is None:
            raise SelectorError("'&' in an attribute value must start a reference")
        out.append(raw[pos:amp])
        ref = m.group(0)[1:-1]
        if ref.startswith("#"):
            try:
                out.append(chr(int(ref[2:], 16) if ref[1] == "x" else int(ref[1:])))
            except (ValueError, OverflowError):
                raise SelectorError(f"bad character reference &{ref};") from None
        else:
            out.append(_PREDEFINED[ref])
        pos = m.end()


# -- applying -------------------------------------------------------------------------------------


def _name_of(el: etree._Element) -> Name:
    q = etree.QName(el)
    return (q.namespace, q.localname)


def element_children(el: etree._Element) -> list[etree._Element]:
    """The element children (comments and processing instructions do not count)."""
    return [c for c in el if isinstance(c.tag, str)]


def _apply_step(parents: list[etree._Element], step: Step) -> list[etree._Element]:
    out = []
    for parent in parents:
        kids = [c for c in element_children(parent) if step.matches_name(c)]
        out.extend(_filter(kids, step))
    return out


def _filter(kids: list[etree._Element], step: Step) -> list[etree._Element]:
    if step.position is not None:
        kids = kids[step.position - 1:step.position] if step.position >= 1 else []
    if step.attr is not None:
        key = _attr_key(step.attr)
        kids = [c for c in kids if c.get(key) == step.value]
    return kids


def _attr_key(name: Name) -> str:
    return f"{{{name[0]}}}{name[1]}" if name[0] else name[1]


def select(root: etree._Element, steps: tuple[Step, ...]) -> list[etree._Element]:
    """The elements ``steps`` select in the document whose root element is ``root``."""
    if not steps:
        return []
    current = _filter([root] if steps[0].matches_name(root) else [], steps[0])
    for step in steps[1:]:
        if not current:
            break
        current = _apply_step(current, step)
    return current


def deepest_existing(root: etree._Element, steps: tuple[Step, ...]) -> int:
    """How many leading steps select exactly one element (the closest existing ancestor of
    what ``steps`` would select: RFC 4825's ``no-parent`` names it)."""
    n = 0
    for i in range(1, len(steps) + 1):
        if len(select(root, steps[:i])) != 1:
            break
        n = i
    return n


def attribute_key(name: Name) -> str:
    """The lxml (Clark notation) key of an attribute name."""
    return _attr_key(name)


def position_path(el: etree._Element, default_ns: str | None) -> str:
    """A selector that names ``el`` by position (``/resource-lists/list[2]/entry[1]``), for
    the ``field`` of a uniqueness failure; names outside the default namespace carry the
    prefix the document gives them."""
    steps = []
    node: etree._Element | None = el
    while node is not None:
        ns, local = _name_of(node)
        wildcard = ns != default_ns and not node.prefix
        name = "*" if wildcard else local if ns == default_ns else f"{node.prefix}:{local}"
        parent = node.getparent()
        if parent is None:
            steps.append(name)
        else:
            same = [c for c in element_children(parent) if wildcard or _name_of(c) == (ns, local)]
            steps.append(f"{name}[{same.index(node) + 1}]")
        node = parent
    return "/" + "/".join(reversed(steps))


def quote_selector(text: str) -> str:
    """A node selector as it goes into a URI (RFC 4825 section 6: percent-encode what a
    path segment cannot carry)."""
    return quote(text, safe="/@:=*'!$&()+,;~-._")
