"""Writing responses: SOAP 1.1 section 5 values as XML text, strict as the PHP parser needs.

``xsi:type`` on every scalar, ``xsi:type="SOAP-ENC:Array"`` then ``SOAP-ENC:arrayType`` on
every list (never ``offset``; PHP reads attributes in document order), struct items typed
with their struct type, ``None`` members left out (API.md 1.8).

The text is built as strings from a plan computed once per model class rather than as an
lxml tree: a response is a few dozen elements whose names and attributes are all known in
advance, and creating an element object for each cost more than the rest of a getAccount
call.  Only element text varies, and it is escaped here exactly as libxml2 would write it
(``&``, ``<``, ``>``, carriage return), with the characters XML 1.0 cannot carry dropped.
"""

from __future__ import annotations

import datetime as _dt
import re
from decimal import Decimal as _PyDecimal
from typing import Any

from spyne.model import ModelBase
from spyne.model.primitive import Boolean, Decimal, Double, Float, Integer, Unicode

from .const import NS_PRESENCE_TYPES, NS_SOAP_ENC, NS_SOAP_ENV, NS_TYPES, NS_XSD, NS_XSI
from .encoding import array_item, is_array, is_struct, struct_members, xsd_name

#: Prefixes used in responses; the Envelope declares all of them (``ns2`` is the port).
PREFIXES = {
    "SOAP-ENV": NS_SOAP_ENV,
    "SOAP-ENC": NS_SOAP_ENC,
    "xsd": NS_XSD,
    "xsi": NS_XSI,
    "ns1": NS_TYPES,
    "ns3": NS_PRESENCE_TYPES,
}
_PREFIX_OF = {uri: p for p, uri in PREFIXES.items()}
_TRUE = {"true", "1", "yes", "on"}

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def escape(text: str) -> str:
    """Element text as libxml2 writes it; characters XML 1.0 cannot carry are dropped
    rather than failing the whole response."""
    if not text.isprintable():  # rare: newlines, tabs, control or unassigned characters
        text = _CONTROL.sub("", text)
        if "\r" in text:
            text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            return text.replace("\r", "&#13;")
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def type_qname(cls: Any) -> str:
    """``prefix:Name`` of a struct type for ``xsi:type``/``arrayType``."""
    prefix = _PREFIX_OF.get(cls.get_namespace(), "ns1")
    return f"{prefix}:{cls.get_type_name()}"


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
    if isinstance(value, bool):
        return Boolean
    if isinstance(value, int):
        return Integer
    if isinstance(value, float | _PyDecimal):
        return Double
    return Unicode


# --------------------------------------------------------------------------- plans

#: plan kinds
_SCALAR, _ARRAY, _STRUCT = 0, 1, 2
#: scalar kinds with a fast path (type(value) is str / int)
_STR, _INT, _OTHER = 0, 1, 2


class _Plan:
    """How values of one model class are written."""

    __slots__ = ("kind", "scalar", "xsi", "item", "item_type", "members")

    def __init__(self, cls: Any) -> None:
        self.scalar = _OTHER
        self.xsi = ""
        self.item = None
        self.item_type = ""
        self.members: tuple = ()
        if is_array(cls):
            self.kind = _ARRAY
            item = array_item(cls)
            self.item = item
            if is_struct(item):
                self.item_type = type_qname(item)
            elif is_array(item):
                self.item_type = "SOAP-ENC:Array"
            else:
                self.item_type = xsd_name(item)
        elif is_struct(cls):
            self.kind = _STRUCT
            self.xsi = type_qname(cls)
        else:
            self.kind = _SCALAR
            if isinstance(cls, type) and issubclass(cls, ModelBase):
                if issubclass(cls, Boolean):
                    pass
                elif issubclass(cls, Integer):
                    self.scalar = _INT
                elif not issubclass(cls, Float | Double | Decimal):
                    self.scalar = _STR


_PLANS: dict[Any, _Plan] = {}


def _plan(cls: Any) -> _Plan:
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = _Plan(cls)
        if plan.kind == _STRUCT:
            # members are planned after the struct's own entry exists: types may recurse
            plan.members = tuple(
                (name, member, _plan(member), f'<{name} xsi:type="', f"</{name}>")
                for name, member in struct_members(cls).items()
            )
    return plan


# --------------------------------------------------------------------------- writing

def write(out: list[str], name: str, cls: Any, value: Any) -> None:
    """Append ``<name>`` holding ``value`` (typed by ``cls``, or guessed when ``cls`` is
    None) to ``out``; a None value writes nothing."""
    if value is None:
        return
    if cls is None:
        _untyped(out, name, value)
        return
    _write(out, name, cls, _plan(cls), value, f'<{name} xsi:type="', f"</{name}>")


def _write(out: list[str], name: str, cls: Any, plan: _Plan, value: Any, open_: str, close: str) -> None:
    kind = plan.kind
    if kind == _SCALAR:
        if plan.scalar == _STR and type(value) is str:
            out.append(f'{open_}xsd:string">{escape(value)}{close}')
        elif plan.scalar == _INT and type(value) is int:
            out.append(f'{open_}xsd:int">{value}{close}')
        else:
            xtype, text = format_scalar(cls, value)
            out.append(f'{open_}{xtype}">{escape(text)}{close}')
    elif kind == _STRUCT:
        start = len(out)
        out.append("")
        get = value.get if isinstance(value, dict) else None
        for member, member_cls, member_plan, m_open, m_close in plan.members:
            v = get(member) if get is not None else getattr(value, member, None)
            if v is None:
                continue
            if member_plan.kind == _SCALAR:  # the hot path: most of a response is typed scalars
                s = member_plan.scalar
                if s == _STR and type(v) is str:
                    out.append(f'{m_open}xsd:string">{escape(v)}{m_close}')
                    continue
                if s == _INT and type(v) is int:
                    out.append(f'{m_open}xsd:int">{v}{m_close}')
                    continue
            _write(out, member, member_cls, member_plan, v, m_open, m_close)
        if len(out) == start + 1:
            out[start] = f'{open_}{plan.xsi}"/>'
        else:
            out[start] = f'{open_}{plan.xsi}">'
            out.append(close)
    else:
        items = value if isinstance(value, list) else list(value or ())
        head = f'{open_}SOAP-ENC:Array" SOAP-ENC:arrayType="{plan.item_type}[{len(items)}]"'
        if not items:
            out.append(head + "/>")
            return
        out.append(head + ">")
        item_cls = plan.item
        item_plan = _plan(item_cls)
        for item in items:
            if item is None:
                out.append("<item/>")
            else:
                _write(out, "item", item_cls, item_plan, item, '<item xsi:type="', "</item>")
        out.append(close)


def _untyped(out: list[str], name: str, value: Any) -> None:
    """A value without a declared model: lists become arrays of their common scalar type."""
    if isinstance(value, list | tuple):
        items = list(value)
        out.append(f'<{name} xsi:type="SOAP-ENC:Array" SOAP-ENC:arrayType="{_common_scalar(items)}[{len(items)}]"')
        if not items:
            out.append("/>")
            return
        out.append(">")
        for item in items:
            if item is None:
                out.append("<item/>")
            else:
                _untyped(out, "item", item)
        out.append(f"</{name}>")
        return
    xtype, text = format_scalar(None, value)
    out.append(f'<{name} xsi:type="{xtype}">{escape(text)}</{name}>')


def _common_scalar(items: list[Any]) -> str:
    kinds = {xsd_name(_guess(i)) for i in items if i is not None}
    return kinds.pop() if len(kinds) == 1 else "xsd:anyType"


# --------------------------------------------------------------------------- documents

_XML_DECLARATION = "<?xml version='1.0' encoding='UTF-8'?>\n"


def _envelope_head(port_ns: str | None) -> str:
    decls = "".join(f' xmlns:{p}="{uri}"' for p, uri in PREFIXES.items())
    if port_ns:
        decls += f' xmlns:ns2="{escape(port_ns).replace(chr(34), "&quot;")}"'
    return (f"{_XML_DECLARATION}<SOAP-ENV:Envelope{decls}"
            f' SOAP-ENV:encodingStyle="{NS_SOAP_ENC}"><SOAP-ENV:Body>')


_HEADS: dict[str | None, str] = {}
_TAIL = "</SOAP-ENV:Body></SOAP-ENV:Envelope>"


def envelope_head(port_ns: str | None) -> str:
    """Start of a response document up to and including ``<SOAP-ENV:Body>``; ``ns2`` is
    the port namespace."""
    head = _HEADS.get(port_ns)
    if head is None:
        head = _HEADS[port_ns] = _envelope_head(port_ns)
    return head


def response(port_ns: str, method: str, cls: Any, value: Any) -> bytes:
    """The whole response document of ``method``: its wrapper holding one ``return`` part,
    or an empty wrapper when there is nothing to return."""
    out = [envelope_head(port_ns)]
    if cls is None or value is None:
        out.append(f"<ns2:{method}Response/>")
    else:
        out.append(f"<ns2:{method}Response>")
        write(out, "return", cls, value)
        out.append(f"</ns2:{method}Response>")
    out.append(_TAIL)
    return "".join(out).encode("utf-8")


def fault(code: int, message: str, faultcode: str = "Server", port_ns: str | None = None) -> bytes:
    """A fault document with ``detail/exception/{errorcode, errorstring}`` (API.md 1.9)."""
    text = escape(message)
    return (
        f"{envelope_head(port_ns)}<SOAP-ENV:Fault><faultcode>SOAP-ENV:{faultcode}</faultcode>"
        f"<faultstring>{text}</faultstring><detail><exception xsi:type=\"ns1:NGNProException\">"
        f'<errorcode xsi:type="xsd:int">{int(code)}</errorcode>'
        f'<errorstring xsi:type="xsd:string">{text}</errorstring></exception></detail>'
        f"</SOAP-ENV:Fault>{_TAIL}"
    ).encode()
