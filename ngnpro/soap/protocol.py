"""The spyne protocol for SOAP 1.1 rpc/encoded (section 5) that NGNPro clients speak.

A subclass of spyne's :class:`~spyne.protocol.soap.Soap11`: spyne still finds the method
(``{port namespace}name`` against the application's interface), calls the user code and
carries faults; this class replaces what is document/literal in its parent -- reading the
envelope (safely), decoding the parameters and the ``auth`` header by the declared models,
and writing the encoded response with exactly one return part (API.md 1.3-1.9).
"""

from __future__ import annotations

import logging
from typing import Any

from lxml import etree
from spyne.model.complex import ComplexModel
from spyne.model.fault import Fault
from spyne.model.primitive import Boolean, Integer, Unicode
from spyne.protocol.soap import Soap11

from .context import RequestState
from .encoding import Decoder
from .envelope import parse_request
from .faults import INVALID_REQUEST, SERVER_ERROR, NGNProError
from .writer import fault, response

log = logging.getLogger("ngnpro.soap")


class AuthHeader(ComplexModel):
    """The ``auth`` header; qualified or not, ``actor``/``mustUnderstand`` ignored."""

    __namespace__ = "urn:AGProjects:NGNPro"
    __type_name__ = "auth"
    _type_info = [("username", Unicode), ("password", Unicode), ("admin", Boolean), ("impersonate", Integer)]


def fault_code(error: Any) -> tuple[int, str, str]:
    """``(errorcode, message, faultcode)`` for any fault spyne hands the serializer."""
    if isinstance(error, NGNProError):
        return error.code, error.message, error.faultcode
    if isinstance(error, Fault):
        fc = str(error.faultcode or "Server")
        if fc.startswith("Client"):
            if "ResourceNotFound" in fc:
                return INVALID_REQUEST, f"Invalid request: unknown method {error.faultstring}", "Client"
            return INVALID_REQUEST, f"Invalid request: {error.faultstring}", "Client"
    return SERVER_ERROR, "Internal server error", "Server"


class RpcEncodedSoap11(Soap11):
    """SOAP 1.1 section-5 encoding in and out, as the NGNPro PHP client needs it."""

    mime_type = "text/xml; charset=utf-8"

    def __init__(self, app: Any = None) -> None:
        super().__init__(app, validator=None, xml_declaration=True, cleanup_namespaces=False)

    # ---------------------------------------------------------------- in
    def create_in_document(self, ctx: Any, charset: str | None = None) -> None:
        parsed = getattr(ctx.transport, "parsed_request", None)
        if parsed is None:
            parsed = parse_request(b"".join(ctx.in_string))
        ctx.in_document = parsed

    def decompose_incoming_envelope(self, ctx: Any, message: Any = None) -> None:
        parsed = ctx.in_document
        ctx.in_header_doc = parsed.header
        ctx.in_body_doc = parsed.method
        ctx.method_request_string = f"{{{parsed.namespace}}}{parsed.name}"

    def generate_method_contexts(self, ctx: Any) -> list[Any]:
        """spyne copies the context once per method bound to the request's name, for
        auxiliary methods; an NGNPro name has exactly one, which gets the context itself."""
        handles = self.get_call_handles(ctx)
        if len(handles) != 1:
            return super().generate_method_contexts(ctx)
        ctx.descriptor = handles[0]
        return [ctx]

    def deserialize(self, ctx: Any, message: Any) -> None:
        self.event_manager.fire_event("before_deserialize", ctx)
        parsed = ctx.in_document
        decoder = Decoder(parsed.ids)
        state = ctx.udc
        for h in ctx.in_header_doc or ():
            if etree.QName(h).localname == "auth":
                auth = decoder.decode(AuthHeader, h, "auth")
                if isinstance(state, RequestState):
                    state.auth = {k: getattr(auth, k) for k in ("username", "password", "admin", "impersonate")}
                break
        ctx.in_object = self.decode_params(decoder, ctx.descriptor.in_message, ctx.in_body_doc)
        self.event_manager.fire_event("after_deserialize", ctx)

    @staticmethod
    def decode_params(decoder: Decoder, in_message: Any, method_el: etree._Element) -> list[Any]:
        """Parameters by name; children with other names (PHP's ``param0``) fill the rest in order."""
        params, by_name = _params(in_message)
        values: dict[str, Any] = {}
        leftovers = []
        for child in method_el:
            tag = child.tag
            if not isinstance(tag, str):
                continue
            local = tag.rpartition("}")[2]
            cls = by_name.get(local)
            if cls is not None and local not in values:
                values[local] = decoder.decode(cls, child, local)
            else:
                leftovers.append(child)
        free = [(n, c) for n, c in params if n not in values]
        for (name, cls), child in zip(free, leftovers, strict=False):
            values[name] = decoder.decode(cls, child, name)
        return [values.get(name) for name, _ in params]

    # ---------------------------------------------------------------- out
    def serialize(self, ctx: Any, message: Any) -> None:
        """The response as text pieces in ``ctx.out_document`` (see :mod:`.writer`)."""
        self.event_manager.fire_event("before_serialize", ctx)
        port_ns = self.app.tns if self.app is not None else None
        if ctx.out_error is not None:
            code, text, faultcode = fault_code(ctx.out_error)
            ctx.out_document = fault(code, text, faultcode, port_ns)
        else:
            name = ctx.descriptor.name if ctx.descriptor is not None else "response"
            cls = _return_type(ctx.descriptor)
            value = ctx.out_object[0] if ctx.out_object else None
            ctx.out_document = response(port_ns, name, cls, value)
        self.event_manager.fire_event("after_serialize", ctx)

    def create_out_string(self, ctx: Any, charset: str | None = None) -> None:
        ctx.out_string = [ctx.out_document]


_PARAMS: dict[Any, tuple[list[tuple[str, Any]], dict[str, Any]]] = {}


def _params(in_message: Any) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
    """A method's parameters in order and by name (computed once per method)."""
    entry = _PARAMS.get(in_message)
    if entry is None:
        params = list(in_message.get_flat_type_info(in_message).items())
        entry = _PARAMS[in_message] = (params, dict(params))
    return entry


_RETURN_TYPES: dict[Any, Any] = {}


def _return_type(descriptor: Any) -> Any:
    """The model of a method's one return part, None for a void method (computed once)."""
    if descriptor is None:
        return None
    try:
        return _RETURN_TYPES[descriptor]
    except KeyError:
        out = descriptor.out_message
        info = list(out.get_flat_type_info(out).values())
        cls = _RETURN_TYPES[descriptor] = info[0] if info else None
        return cls
