"""SOAP 1.1 section 5 encoding ("rpc/encoded") between lxml elements and Python values.

Sans-I/O: no spyne pipeline, no sockets, just values typed by spyne model classes.

Decoding is tolerant in the ways API.md sections 1.6 and 7 demand: values with or without
``xsi:type``; nested structs untyped; ``SOAP-ENC:Array`` with ``item`` children (any name),
``arrayType`` (even the unprefixed ``Struct[n]``), ``offset`` and ``position``; empty arrays
``xsd:anyType[0]`` (also where a struct is expected); nulls as empty untyped elements;
numbers as strings; booleans as ``0/1/true/false``; ``href``/``id`` multi-references;
unknown struct members ignored.  A value that cannot be coerced is fault 1040 naming the
field.

Responses are written by :mod:`ngnpro.soap.writer`.
"""

from __future__ import annotations

import math
import re
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

from .const import NS_SOAP_ENC, NS_XSI
from .faults import INVALID_REQUEST, INVALID_VALUE, NGNProError

XSI_TYPE = f"{{{NS_XSI}}}type"
XSI_NIL = f"{{{NS_XSI}}}nil"
ENC_ARRAY_TYPE = f"{{{NS_SOAP_ENC}}}arrayType"
ENC_OFFSET = f"{{{NS_SOAP_ENC}}}offset"
ENC_POSITION = f"{{{NS_SOAP_ENC}}}position"

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


_MEMBERS: dict[Any, dict[str, Any]] = {}


def struct_members(cls: Any) -> dict[str, Any]:
    """Members of the struct model ``cls`` by name (spyne merges the class hierarchy on
    every call; the result is kept per class)."""
    members = _MEMBERS.get(cls)
    if members is None:
        members = _MEMBERS[cls] = cls.get_flat_type_info(cls)
    return members


#: what a model class is, for the decoder: one of these, worked out once per class
_SCALAR, _ARRAY, _STRUCT = 0, 1, 2
#: scalar kinds
_TEXT, _BOOL, _INT, _FLOAT, _OTHER = 0, 1, 2, 3, 4
_KINDS: dict[Any, tuple[int, int]] = {}


def _model_kind(cls: Any) -> tuple[int, int]:
    kind = _KINDS.get(cls)
    if kind is None:
        if is_array(cls):
            kind = (_ARRAY, _OTHER)
        elif is_struct(cls):
            kind = (_STRUCT, _OTHER)
        elif cls is None or not isinstance(cls, type) or not issubclass(cls, ModelBase):
            kind = (_SCALAR, _TEXT)
        elif issubclass(cls, Boolean):
            kind = (_SCALAR, _BOOL)
        elif issubclass(cls, Integer):
            kind = (_SCALAR, _INT)
        elif issubclass(cls, Float | Double | Decimal):
            kind = (_SCALAR, _FLOAT)
        elif issubclass(cls, DateTime | Date):
            kind = (_SCALAR, _OTHER)
        else:
            kind = (_SCALAR, _TEXT)
        _KINDS[cls] = kind
    return kind


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
        self.visits += 1
        if self.visits > MAX_VISITS:
            raise NGNProError(INVALID_REQUEST, "Invalid request: too many elements")
        if el.get("href") is not None:
            el = self.resolve(el)
        nil = el.get(XSI_NIL)
        if nil is not None and nil.strip().lower() in ("true", "1"):
            return None
        kind, scalar = _model_kind(cls)
        if kind == _SCALAR:
            if len(el) == 0 and el.get(ENC_ARRAY_TYPE) is None:  # the common case, quickly
                text = el.text
                xtype = el.get(XSI_TYPE)
                if xtype is None or xtype.rpartition(":")[2] != "Array":
                    if text is None or text == "":
                        return "" if xtype is not None and scalar == _TEXT else None
                    if scalar == _TEXT:
                        return text
            return self._scalar(cls, el, path)
        if kind == _STRUCT:
            return self._struct(cls, el, path)
        return self._array(cls, el, path)

    def _children(self, el: etree._Element) -> list[etree._Element]:
        if len(el) == 0:
            return []
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
        values = inst.__dict__ if type(inst).__setattr__ is object.__setattr__ else None
        for child in children:
            name = child.tag.rpartition("}")[2]
            member = members.get(name)
            if member is None:
                continue  # unknown or round-tripped read-only member: ignored (API.md 7)
            value = self.decode(member, child, f"{path}.{name}" if path else name)
            if values is not None:
                values[name] = value
            else:
                setattr(inst, name, value)
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
