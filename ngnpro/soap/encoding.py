"""SOAP 1.1 section 5 encoding ("rpc/encoded") between lxml elements and Python values.

Sans-I/O: no spyne pipeline, no sockets, just values typed by spyne model classes.

Decoding is tolerant in the ways API.md sections 1.6 and 7 demand: values with or without
``xsi:type``; nested structs untyped; ``SOAP-ENC:Array`` with ``item`` children (any name),
``arrayType`` (even the unprefixed ``Struct[n]``), ``offset`` and ``position``; empty arrays
``xsd:anyType[0]`` (also where a struct is expected); nulls as empty untyped elements;
numbers as strings; booleans as ``0/1/true/false``; ``href``/``id`` multi-references;
unknown struct members ignored.  A value that cannot be coerced is fault 1040 naming the
field.

Encoding is strict in the ways the PHP parser needs (API.md 1.8): ``xsi:type`` on every
scalar, ``xsi:type="SOAP-ENC:Array"`` then ``SOAP-ENC:arrayType`` on every list (never
``offset``), struct items typed with their struct type.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from decimal import Decimal as _PyDecimal
from decimal import InvalidOperation
from typing import Any

from lxml import etree
from spyne.model import ModelBase
from spyne.model.complex import Array, ComplexModelBase
from spyne.model.primitive import (
    Boolean,
    Date,
    DateTime,
    Decimal,
    Double,
    Float,
    Integer,
)

from .const import NS_PRESENCE_TYPES, NS_SOAP_ENC, NS_TYPES, NS_XSD, NS_XSI
from .faults import INVALID_REQUEST, INVALID_VALUE, NGNProError

XSI_TYPE = f"{{{NS_XSI}}}type"
XSI_NIL = f"{{{NS_XSI}}}nil"
ENC_ARRAY_TYPE = f"{{{NS_SOAP_ENC}}}arrayType"
ENC_OFFSET = f"{{{NS_SOAP_ENC}}}offset"
ENC_POSITION = f"{{{NS_SOAP_ENC}}}position"

#: Prefixes used in responses; the Envelope declares all of them.
PREFIXES = {
    "SOAP-ENV": "http://schemas.xmlsoap.org/soap/envelope/",
    "SOAP-ENC": NS_SOAP_ENC,
    "xsd": NS_XSD,
    "xsi": NS_XSI,
    "ns1": NS_TYPES,
    "ns3": NS_PRESENCE_TYPES,
}
_PREFIX_OF = {uri: p for p, uri in PREFIXES.items()}

#: Longest list a request may carry (offset/position included).
MAX_ITEMS = 100_000
#: Missing items (offset/position gaps) a list may have.
MAX_GAP = 1000
#: Elements a request may make the decoder visit (href fan-out included).
MAX_VISITS = 500_000

_INDEX = re.compile(r"^\s*\[\s*(\d+)\s*\]\s*$")


# --------------------------------------------------------------------------- model kinds

def is_array(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, Array)


def array_item(cls: Any) -> Any:
    return next(iter(cls._type_info.values()))


def is_struct(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, ComplexModelBase) and not issubclass(cls, Array)


def struct_members(cls: Any) -> dict[str, Any]:
    return cls.get_flat_type_info(cls)


def xsd_name(cls: Any) -> str:
    """The ``xsi:type`` value written for values of the primitive ``cls``."""
    if cls is None:
        return "xsd:string"
    if issubclass(cls, Boolean):
        return "xsd:boolean"
    if issubclass(cls, Integer):
        return "xsd:int"
    if issubclass(cls, Float | Double | Decimal):
        return "xsd:double"
    return "xsd:string"


def type_qname(cls: Any) -> str:
    """``prefix:Name`` of a struct type for ``xsi:type``/``arrayType``."""
    prefix = _PREFIX_OF.get(cls.get_namespace(), "ns1")
    return f"{prefix}:{cls.get_type_name()}"


def _local(tag: Any) -> str:
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def _is_array_element(el: etree._Element) -> bool:
    if el.get(ENC_ARRAY_TYPE) is not None:
        return True
    t = el.get(XSI_TYPE)
    return bool(t) and t.rpartition(":")[2] == "Array"


def _declared_length(el: etree._Element) -> int | None:
    at = el.get(ENC_ARRAY_TYPE)
    if not at or "[" not in at:
        return None
    inner = at[at.rfind("[") + 1 : at.rfind("]")]
    try:
        return int(inner.split(",")[0]) if inner.strip() else None
    except ValueError:
        return None


# --------------------------------------------------------------------------- decoding

_BLANKS: dict[Any, tuple[Any, dict[str, None] | None]] = {}


def new_instance(cls: Any) -> Any:
    """An instance of the struct model ``cls`` with every member None.  spyne's constructor
    costs ~20x more (it walks every member for defaults), so it is used only for classes
    that declare defaults; instances of customized classes are made from the original."""
    entry = _BLANKS.get(cls)
    if entry is None:
        real = getattr(cls, "__orig__", None) or cls
        members = struct_members(real)
        has_defaults = any(getattr(m.Attributes, "default", None) is not None for m in members.values())
        entry = _BLANKS[cls] = (real, None if has_defaults else dict.fromkeys(members))
    real, blank = entry
    if blank is None:
        return real()
    inst = real.__new__(real)
    inst.__dict__.update(blank)
    return inst


class Decoder:
    """Turns request elements into Python values; one instance per request."""

    def __init__(self, ids: dict[str, etree._Element] | None = None) -> None:
        self.ids = ids or {}
        self.visits = 0

    def resolve(self, el: etree._Element) -> etree._Element:
        """Follow ``href="#id"`` (a few hops at most) to the element holding the value."""
        for _ in range(16):
            href = el.get("href")
            if href is None:
                return el
            target = self.ids.get(href.lstrip("#")) if href.startswith("#") else None
            if target is None:
                raise NGNProError(INVALID_REQUEST, f"Invalid request: unresolved reference {href[:64]!r}")
            el = target
        raise NGNProError(INVALID_REQUEST, "Invalid request: reference chain too long")

    def _visit(self) -> None:
        self.visits += 1
        if self.visits > MAX_VISITS:
            raise NGNProError(INVALID_REQUEST, "Invalid request: too many elements")

    def decode(self, cls: Any, el: etree._Element, path: str) -> Any:
        self._visit()
        el = self.resolve(el)
        if (el.get(XSI_NIL) or "").strip().lower() in ("true", "1"):
            return None
        if is_array(cls):
            return self._array(cls, el, path)
        if is_struct(cls):
            return self._struct(cls, el, path)
        return self._scalar(cls, el, path)

    def _children(self, el: etree._Element) -> list[etree._Element]:
        return [c for c in el if isinstance(c.tag, str)]

    def _array(self, cls: Any, el: etree._Element, path: str) -> list[Any] | None:
        children = self._children(el)
        if not children:
            if _is_array_element(el) or el.get(XSI_TYPE):
                return []
            if (el.text or "").strip():
                raise NGNProError(INVALID_VALUE, f"Invalid value for {path}: expected a list")
            return None
        item_cls = array_item(cls)
        declared = _declared_length(el)
        start = 0
        m = _INDEX.match(el.get(ENC_OFFSET) or "")
        if m:
            start = int(m.group(1))
        if declared is not None and declared > MAX_ITEMS or start > MAX_ITEMS or len(children) > MAX_ITEMS:
            raise NGNProError(INVALID_VALUE, f"Invalid value for {path}: list too long")
        items: dict[int, Any] = {}
        pos = start
        for child in children:
            p = _INDEX.match(child.get(ENC_POSITION) or "")
            if p:
                pos = int(p.group(1))
                if pos >= MAX_ITEMS:
                    raise NGNProError(INVALID_VALUE, f"Invalid value for {path}: list too long")
            items[pos] = self.decode(item_cls, child, f"{path}[{pos}]")
            pos += 1
        # the declared size is not honoured beyond the items sent: a tiny request must not
        # become a huge list of nulls; offset/position gaps are bounded the same way
        length = max(items) + 1 if items else 0
        if length - len(items) > MAX_GAP:
            raise NGNProError(INVALID_VALUE, f"Invalid value for {path}: sparse list with too many missing items")
        if length == len(items):
            return [items[i] for i in range(length)]
        return [items.get(i) for i in range(length)]

    def _struct(self, cls: Any, el: etree._Element, path: str) -> Any:
        children = self._children(el)
        inst = new_instance(cls)
        if not children:
            if (el.text or "").strip():
                raise NGNProError(INVALID_VALUE, f"Invalid value for {path}: expected a structure")
            return inst
        if _is_array_element(el):
            raise NGNProError(INVALID_VALUE, f"Invalid value for {path}: expected a structure, got a list")
        members = struct_members(cls)
        if (el.get(XSI_TYPE) or "").rpartition(":")[2] == "Map":
            children = self._map_entries(children)
        for child in children:
            name = _local(child.tag)
            member = members.get(name)
            if member is None:
                continue  # unknown or round-tripped read-only member: ignored (API.md 7)
            setattr(inst, name, self.decode(member, child, f"{path}.{name}" if path else name))
        return inst

    def _map_entries(self, items: list[etree._Element]) -> list[etree._Element]:
        """PHP's own SoapClient sends associative arrays as Apache ``Map``s of key/value
        items; present them as the struct members they stand for."""
        out = []
        for item in items:
            key = value = None
            for part in item:
                if _local(part.tag) == "key":
                    key = (self.resolve(part).text or "").strip()
                elif _local(part.tag) == "value":
                    value = part
            if key and value is not None and re.fullmatch(r"[A-Za-z_][\w.-]{0,127}", key):
                renamed = etree.Element(key, attrib=dict(value.attrib))
                renamed.text = value.text
                renamed.extend(list(value))
                out.append(renamed)
        return out

    def _scalar(self, cls: Any, el: etree._Element, path: str) -> Any:
        if self._children(el):
            if _is_array_element(el) or is_struct(cls) is False:
                raise NGNProError(INVALID_VALUE, f"Invalid value for {path}: expected a single value")
        if _is_array_element(el):
            if _declared_length(el) in (0, None):
                return None
        text = el.text
        typed = el.get(XSI_TYPE) is not None
        if text is None or text == "":
            return "" if typed and _is_text(cls) else None
        try:
            return coerce(cls, text)
        except (ValueError, InvalidOperation, OverflowError):
            shown = text if len(text) <= 40 else text[:40] + "..."
            raise NGNProError(INVALID_VALUE, f"Invalid value for {path}: {shown!r} is not {_kind(cls)}") from None


def _is_text(cls: Any) -> bool:
    return cls is None or not issubclass(cls, Boolean | Integer | Float | Double | Decimal | DateTime | Date)


def _kind(cls: Any) -> str:
    if issubclass(cls, Boolean):
        return "a boolean"
    if issubclass(cls, Integer):
        return "an integer"
    if issubclass(cls, Float | Double | Decimal):
        return "a number"
    return "valid"


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def coerce(cls: Any, text: str) -> Any:
    """Coerce the text of a scalar to the Python value of the model ``cls``."""
    if cls is None or not isinstance(cls, type) or not issubclass(cls, ModelBase):
        return text
    if issubclass(cls, Boolean):
        t = text.strip().lower()
        if t in _TRUE:
            return True
        if t in _FALSE:
            return False
        raise ValueError(text)
    if issubclass(cls, Integer):
        t = text.strip().lower()
        if t in ("true", "false"):
            return 1 if t == "true" else 0
        if len(t) > 40:
            raise ValueError(text)
        try:
            return int(t)
        except ValueError:
            f = float(t)
            if not f.is_integer():
                raise
            return int(f)
    if issubclass(cls, Float | Double | Decimal):
        t = text.strip()
        if len(t) > 64:
            raise ValueError(text)
        f = float(t)
        if math.isnan(f) or math.isinf(f):
            raise ValueError(text)
        return f
    return text


# --------------------------------------------------------------------------- encoding

def format_scalar(cls: Any, value: Any) -> tuple[str, str]:
    """``(xsi:type, text)`` of a scalar, typed by the declared model when there is one."""
    if isinstance(value, _dt.datetime):
        return "xsd:string", value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, _dt.date):
        return "xsd:string", value.isoformat()
    if cls is None or not isinstance(cls, type) or not issubclass(cls, ModelBase):
        cls = _guess(value)
    if issubclass(cls, Boolean):
        if isinstance(value, str):
            value = value.strip().lower() in _TRUE
        return "xsd:boolean", "true" if value else "false"
    if issubclass(cls, Integer):
        if isinstance(value, bool):
            return "xsd:int", "1" if value else "0"
        return "xsd:int", str(int(value if not isinstance(value, str) else (value.strip() or 0)))
    if issubclass(cls, Float | Double | Decimal):
        if isinstance(value, _PyDecimal):
            return "xsd:double", format(value, "f")
        return "xsd:double", repr(float(value))
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return "xsd:string", str(value)


def _guess(value: Any) -> Any:
    from spyne.model.primitive import Unicode

    if isinstance(value, bool):
        return Boolean
    if isinstance(value, int):
        return Integer
    if isinstance(value, float | _PyDecimal):
        return Double
    return Unicode


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(text: str) -> str:
    """XML 1.0 cannot carry control characters; drop them rather than fail the response."""
    if text.isprintable() or not _CONTROL.search(text):
        return text
    return _CONTROL.sub("", text)


def encode(parent: etree._Element, name: str, cls: Any, value: Any) -> etree._Element | None:
    """Append ``<name>`` holding ``value`` (typed by ``cls``) to ``parent``; None is omitted."""
    if value is None:
        return None
    plan = _plan(cls) if cls is not None else None
    if plan is not None and plan[0] == "scalar" and not isinstance(value, _dt.date):
        # the hot path: most of a response is typed scalars
        xtype, text = _format_known(plan[1], cls, value)
        el = etree.SubElement(parent, name, {XSI_TYPE: xtype})
        el.text = _xml_text(text)
        return el
    el = etree.SubElement(parent, name)
    fill(el, cls, value)
    return el


_PLANS: dict[Any, tuple] = {}


def _plan(cls: Any) -> tuple:
    """How values of ``cls`` are written, computed once per model class."""
    plan = _PLANS.get(cls)
    if plan is None:
        if is_array(cls):
            item = array_item(cls)
            if is_struct(item):
                item_type = type_qname(item)
            elif is_array(item):
                item_type = "SOAP-ENC:Array"
            else:
                item_type = xsd_name(item)
            plan = ("array", item, item_type)
        elif is_struct(cls):
            plan = ("struct", type_qname(cls), tuple(struct_members(cls).items()))
        elif isinstance(cls, type) and issubclass(cls, ModelBase):
            if issubclass(cls, Boolean):
                kind = "bool"
            elif issubclass(cls, Integer):
                kind = "int"
            elif issubclass(cls, Float | Double | Decimal):
                kind = "float"
            else:
                kind = "str"
            plan = ("scalar", kind)
        else:
            plan = ("scalar", None)
        _PLANS[cls] = plan
    return plan


def _format_known(kind: str | None, cls: Any, value: Any) -> tuple[str, str]:
    if kind == "str":
        if isinstance(value, str):
            return "xsd:string", value
        return "xsd:string", value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    if kind == "int" and type(value) is int:
        return "xsd:int", str(value)
    return format_scalar(cls, value)


def fill(el: etree._Element, cls: Any, value: Any) -> None:
    if cls is None and isinstance(value, list | tuple):
        items = list(value)
        el.set(XSI_TYPE, "SOAP-ENC:Array")
        el.set(ENC_ARRAY_TYPE, f"{_common_scalar(items)}[{len(items)}]")
        for item in items:
            child = etree.SubElement(el, "item")
            if item is not None:
                fill(child, None, item)
        return
    plan = _plan(cls) if cls is not None else ("scalar", None)
    if plan[0] == "array":
        _, item_cls, item_type = plan
        items = list(value or ())
        el.set(XSI_TYPE, "SOAP-ENC:Array")
        el.set(ENC_ARRAY_TYPE, f"{item_type}[{len(items)}]")
        for item in items:
            if item is None:
                etree.SubElement(el, "item")
            else:
                encode(el, "item", item_cls, item)
        return
    if plan[0] == "struct":
        el.set(XSI_TYPE, plan[1])
        if isinstance(value, dict):
            for member, member_cls in plan[2]:
                v = value.get(member)
                if v is not None:
                    encode(el, member, member_cls, v)
        else:
            for member, member_cls in plan[2]:
                v = getattr(value, member, None)
                if v is not None:
                    encode(el, member, member_cls, v)
        return
    xtype, text = format_scalar(cls, value)
    el.set(XSI_TYPE, xtype)
    el.text = _xml_text(text)


def _common_scalar(items: list[Any]) -> str:
    kinds = {xsd_name(_guess(i)) for i in items if i is not None}
    return kinds.pop() if len(kinds) == 1 else "xsd:anyType"
