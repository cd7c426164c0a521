"""WSDL 1.1 for every registered port, rpc/encoded, generated from the spyne models.

spyne's own WSDL writer produces document/literal for one namespace; NGNPro is
rpc/encoded over several method namespaces, so this module writes it directly from the
same method descriptors the dispatcher serves -- the published contract cannot drift from
the code (a test compares the two).  The SOAP-encoding schema is referenced with a
``schemaLocation`` next to the WSDL (``soap-encoding.xsd``) so that WSDL tools never fetch
it from the internet.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from .const import NS_SOAP_ENC, NS_TYPES, NS_WSDL, NS_WSDL_SOAP, NS_XSD, PORT_NAMES
from .encoding import array_item, is_array, is_struct, struct_members, xsd_name

SOAP_HTTP = "http://schemas.xmlsoap.org/soap/http"
ENC_XSD_NAME = "soap-encoding.xsd"

_W = f"{{{NS_WSDL}}}"
_S = f"{{{NS_WSDL_SOAP}}}"
_X = f"{{{NS_XSD}}}"


def _type_prefixes(namespaces: list[str]) -> dict[str, str]:
    out = {NS_TYPES: "tns"}
    for i, ns in enumerate(sorted(n for n in namespaces if n != NS_TYPES)):
        out[ns] = f"t{i + 1}"
    return out


class _Collector:
    """Walks the models reachable from the methods: structs by namespace, arrays by name."""

    def __init__(self) -> None:
        self.structs: dict[tuple[str, str], Any] = {}
        self.arrays: dict[str, Any] = {}

    def array_name(self, cls: Any) -> str:
        item = array_item(cls)
        if is_struct(item):
            base = item.get_type_name()
        elif is_array(item):
            base = self.array_name(item)
        else:
            base = xsd_name(item).split(":")[1]
        return "ArrayOf" + base[:1].upper() + base[1:]

    def add(self, cls: Any) -> None:
        if is_array(cls):
            name = self.array_name(cls)
            if name not in self.arrays:
                self.arrays[name] = cls
                self.add(array_item(cls))
        elif is_struct(cls):
            key = (cls.get_namespace(), cls.get_type_name())
            if key not in self.structs:
                self.structs[key] = cls
                for member in struct_members(cls).values():
                    self.add(member)


def _ref(cls: Any, col: _Collector, prefixes: dict[str, str]) -> str:
    if is_array(cls):
        return f"tns:{col.array_name(cls)}"
    if is_struct(cls):
        return f"{prefixes[cls.get_namespace()]}:{cls.get_type_name()}"
    return xsd_name(cls)


def _methods(app: Any) -> list[Any]:
    found = {}
    for key, descriptors in app.interface.service_method_map.items():
        found[key.rpartition("}")[2]] = descriptors[0]
    return [found[k] for k in sorted(found)]


def _params(message: Any) -> list[tuple[str, Any]]:
    return list(message.get_flat_type_info(message).items())


def port_wsdl_names(apps: dict[str, Any]) -> dict[str, str]:
    """WSDL port name (``SipPort``) -> namespace, for the per-port WSDL URLs."""
    return {PORT_NAMES.get(ns, ns.rpartition(":")[2] + "Port"): ns for ns in apps}


def generate_wsdl(apps: dict[str, Any], location: str, only: str | None = None) -> bytes:
    """The WSDL of every port in ``apps`` (namespace -> spyne Application), served at ``location``.

    ``only`` (a port namespace) restricts it to one port: WSDL clients that merge the
    operations of every port into one table (PHP's SoapClient does) need that, because
    method names repeat across ports."""
    from .protocol import AuthHeader

    if only is not None:
        apps = {ns: app for ns, app in apps.items() if ns == only}

    col = _Collector()
    col.add(AuthHeader)
    for app in apps.values():
        for d in _methods(app):
            for _, cls in _params(d.in_message) + _params(d.out_message):
                col.add(cls)
    type_ns = sorted({ns for ns, _ in col.structs} | {NS_TYPES})
    prefixes = _type_prefixes(type_ns)
    nsmap = {None: NS_WSDL, "wsdl": NS_WSDL, "soap": NS_WSDL_SOAP, "xsd": NS_XSD, "soapenc": NS_SOAP_ENC}
    nsmap.update({p: ns for ns, p in prefixes.items()})
    port_prefix = {}
    for i, ns in enumerate(sorted(apps)):
        port_prefix[ns] = f"p{i + 1}"
        nsmap[f"p{i + 1}"] = ns
    defs = etree.Element(_W + "definitions", nsmap=nsmap, name="NGNPro", targetNamespace=NS_TYPES)
    etree.SubElement(defs, _W + "documentation").text = (
        "NGNPro-compatible provisioning API: SOAP 1.1 rpc/encoded; every port is served at one URL "
        "and told apart by the namespace of the method element."
    )

    types = etree.SubElement(defs, _W + "types")
    for ns in type_ns:
        schema = etree.SubElement(types, _X + "schema", targetNamespace=ns)
        etree.SubElement(schema, _X + "import", namespace=NS_SOAP_ENC, schemaLocation=ENC_XSD_NAME)
        etree.SubElement(schema, _X + "import", namespace=NS_WSDL)
        for other in type_ns:
            if other != ns:
                etree.SubElement(schema, _X + "import", namespace=other)
        for (sns, name), cls in sorted(col.structs.items()):
            if sns != ns:
                continue
            ct = etree.SubElement(schema, _X + "complexType", name=name)
            seq = etree.SubElement(ct, _X + "all")
            for member, mcls in struct_members(cls).items():
                etree.SubElement(seq, _X + "element", name=member, type=_ref(mcls, col, prefixes),
                                 minOccurs="0", nillable="true")
        if ns == NS_TYPES:
            for name, cls in sorted(col.arrays.items()):
                ct = etree.SubElement(schema, _X + "complexType", name=name)
                cc = etree.SubElement(ct, _X + "complexContent")
                rs = etree.SubElement(cc, _X + "restriction", base="soapenc:Array")
                at = etree.SubElement(rs, _X + "attribute", ref="soapenc:arrayType")
                at.set(_W + "arrayType", _ref(array_item(cls), col, prefixes) + "[]")

    auth_msg = etree.SubElement(defs, _W + "message", name="authHeader")
    etree.SubElement(auth_msg, _W + "part", name="auth", type=_ref(AuthHeader, col, prefixes))
    for ns in sorted(apps):
        port = PORT_NAMES.get(ns, ns.rpartition(":")[2] + "Port")
        for d in _methods(apps[ns]):
            req = etree.SubElement(defs, _W + "message", name=f"{port}.{d.name}")
            for pname, pcls in _params(d.in_message):
                etree.SubElement(req, _W + "part", name=pname, type=_ref(pcls, col, prefixes))
            resp = etree.SubElement(defs, _W + "message", name=f"{port}.{d.name}Response")
            outs = _params(d.out_message)
            if outs:
                etree.SubElement(resp, _W + "part", name="return", type=_ref(outs[0][1], col, prefixes))

    for ns in sorted(apps):
        port = PORT_NAMES.get(ns, ns.rpartition(":")[2] + "Port")
        pt = etree.SubElement(defs, _W + "portType", name=port)
        for d in _methods(apps[ns]):
            op = etree.SubElement(pt, _W + "operation", name=d.name)
            if d.doc:
                etree.SubElement(op, _W + "documentation").text = " ".join(d.doc.split())
            etree.SubElement(op, _W + "input", message=f"tns:{port}.{d.name}")
            etree.SubElement(op, _W + "output", message=f"tns:{port}.{d.name}Response")

    for ns in sorted(apps):
        port = PORT_NAMES.get(ns, ns.rpartition(":")[2] + "Port")
        binding = etree.SubElement(defs, _W + "binding", name=port.replace("Port", "Binding"), type=f"tns:{port}")
        etree.SubElement(binding, _S + "binding", style="rpc", transport=SOAP_HTTP)
        for d in _methods(apps[ns]):
            op = etree.SubElement(binding, _W + "operation", name=d.name)
            etree.SubElement(op, _S + "operation", soapAction="", style="rpc")
            for io in ("input", "output"):
                el = etree.SubElement(op, _W + io)
                etree.SubElement(el, _S + "body", use="encoded", namespace=ns, encodingStyle=NS_SOAP_ENC)
                if io == "input" and port != "PresencePort":
                    etree.SubElement(el, _S + "header", message="tns:authHeader", part="auth", use="encoded",
                                     namespace=NS_TYPES, encodingStyle=NS_SOAP_ENC)

    service = etree.SubElement(defs, _W + "service", name="NGNProService")
    for ns in sorted(apps):
        port = PORT_NAMES.get(ns, ns.rpartition(":")[2] + "Port")
        p = etree.SubElement(service, _W + "port", name=port, binding=f"tns:{port.replace('Port', 'Binding')}")
        etree.SubElement(p, _S + "address", location=location)
    return etree.tostring(defs, xml_declaration=True, encoding="UTF-8", pretty_print=True)


#: A minimal SOAP 1.1 encoding schema (the parts WSDL tools resolve: Array and its attributes).
SOAP_ENCODING_XSD = f"""<?xml version="1.0" encoding="UTF-8"?>
<xsd:schema xmlns:xsd="{NS_XSD}" targetNamespace="{NS_SOAP_ENC}">
  <!-- no QName here refers to this namespace itself, so WSDL tools (zeep) never try to
       fetch the original from the internet -->
  <xsd:attribute name="arrayType" type="xsd:string"/>
  <xsd:attribute name="offset" type="xsd:string"/>
  <xsd:attribute name="position" type="xsd:string"/>
  <xsd:complexType name="Array">
    <xsd:sequence><xsd:any namespace="##any" minOccurs="0" maxOccurs="unbounded" processContents="lax"/></xsd:sequence>
    <xsd:anyAttribute namespace="##any" processContents="lax"/>
  </xsd:complexType>
  <xsd:complexType name="Struct">
    <xsd:sequence><xsd:any namespace="##any" minOccurs="0" maxOccurs="unbounded" processContents="lax"/></xsd:sequence>
    <xsd:anyAttribute namespace="##any" processContents="lax"/>
  </xsd:complexType>
</xsd:schema>
""".encode()


#: Where the published WSDL says the server is (the default ``[ngnpro] listen``).
DEFAULT_LOCATION = "http://127.0.0.1:9200/ngnpro/"


def main(argv: list[str] | None = None) -> int:
    """``python -m ngnpro.soap.wsdl [FOLDER]``: write ``ngnpro.wsdl`` (every registered port)
    and ``soap-encoding.xsd`` into FOLDER (default: the repository's ``wsdl/``)."""
    import argparse
    from pathlib import Path

    from ngnpro.ports import SERVICES

    from .application import build_applications

    parser = argparse.ArgumentParser(prog="python -m ngnpro.soap.wsdl", description=main.__doc__)
    parser.add_argument("folder", nargs="?", default=str(Path(__file__).resolve().parents[2] / "wsdl"))
    parser.add_argument("--location", default=DEFAULT_LOCATION, help="soap:address of every port")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    apps = build_applications(SERVICES)
    (folder / "ngnpro.wsdl").write_bytes(generate_wsdl(apps, args.location))
    (folder / ENC_XSD_NAME).write_bytes(SOAP_ENCODING_XSD)
    count = sum(len(app.interface.service_method_map) for app in apps.values())
    print(f"wrote {folder / 'ngnpro.wsdl'}: {len(apps)} ports, {count} operations")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
