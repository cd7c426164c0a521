"""Fuzz target: NGNPro SOAP request envelopes -- the rpc/encoded decoder the provisioning
server runs on every request body (`ngnpro.soap.envelope.parse_request`, then the parameters
and the ``auth`` header decoded by the method's declared models with
`ngnpro.soap.encoding.Decoder`, as `RpcEncodedSoap11.deserialize` does).

Properties: only `NGNProError` (the fault the server answers with); the time bound; every
decoded parameter written back with the encoder (`ngnpro.soap.writer.write`, section-5
encoding) into a request envelope decodes to the same value.
"""

from __future__ import annotations

import datetime as _dt
import logging

from lxml import etree
from spyne.model.complex import ComplexModelBase

from fuzz._common import check, expect_only, time_bound
from ngnpro.ports import SERVICES
from ngnpro.soap.application import build_applications
from ngnpro.soap.const import NS_SOAP_ENC
from ngnpro.soap.encoding import Decoder, struct_members
from ngnpro.soap.envelope import parse_request
from ngnpro.soap.faults import NGNProError
from ngnpro.soap.protocol import AuthHeader, RpcEncodedSoap11, _params
from ngnpro.soap.writer import PREFIXES, write

logging.getLogger("spyne").setLevel(logging.CRITICAL)
APPS = build_applications(SERVICES)


def method_of(parsed):
    """The in-message model of the method a request names, or None (an unknown method)."""
    app = APPS.get(parsed.namespace)
    if app is None:
        return None
    descriptors = app.interface.service_method_map.get(f"{{{parsed.namespace}}}{parsed.name}")
    return descriptors[0].in_message if descriptors else None


def plain(value):
    """A decoded value as plain data (structs as dicts of their set members), for comparing."""
    if isinstance(value, ComplexModelBase):
        members = struct_members(type(value))
        return {k: plain(getattr(value, k, None)) for k in members if getattr(value, k, None) is not None}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, _dt.datetime | _dt.date):
        return str(value)
    return value


def decode(parsed, in_message) -> tuple[list, dict | None]:
    decoder = Decoder(parsed.ids)
    auth = None
    for h in parsed.header:
        if etree.QName(h).localname == "auth":
            a = decoder.decode(AuthHeader, h, "auth")
            auth = {k: getattr(a, k) for k in ("username", "password", "admin", "impersonate")}
            break
    return RpcEncodedSoap11.decode_params(decoder, in_message, parsed.method), auth


def envelope(ns: str, method: str, params: list[tuple[str, object, object]]) -> bytes:
    out: list[str] = []
    for name, cls, value in params:
        write(out, name, cls, value)
    decls = "".join(f' xmlns:{p}="{uri}"' for p, uri in PREFIXES.items())
    return (f'<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope{decls} xmlns:ns2="{ns}"'
            f' SOAP-ENV:encodingStyle="{NS_SOAP_ENC}"><SOAP-ENV:Body><ns2:{method}>{"".join(out)}'
            f"</ns2:{method}></SOAP-ENV:Body></SOAP-ENV:Envelope>").encode()


def TestOneInput(data: bytes) -> None:  # noqa: N802
    with time_bound():
        parsed = expect_only((NGNProError,), parse_request, data)
        if parsed is None:
            return
        in_message = method_of(parsed)
        if in_message is None:
            return  # answered "unknown method"
        decoded = expect_only((NGNProError,), decode, parsed, in_message)
        if decoded is None:
            return
        values, _auth = decoded
        params, _ = _params(in_message)
        triples = [(name, cls, value) for (name, cls), value in zip(params, values, strict=True)]
        written = envelope(parsed.namespace, parsed.name, triples)
        again = expect_only((), parse_request, written)
        values2, _ = expect_only((), decode, again, in_message)
        check([plain(v) for v in values2] == [plain(v) for v in values],
              f"written and decoded again, the parameters change:\n{[plain(v) for v in values]!r}\n"
              f"{[plain(v) for v in values2]!r}\n{written[:600]!r}")


if __name__ == "__main__":
    from fuzz.run import main_for

    main_for(__name__)
