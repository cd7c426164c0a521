"""Clients for the ngnpro tests: PHP's SoapClient (non-WSDL rpc/encoded and WSDL mode), zeep,
and raw envelopes shaped like the PEAR client's (API.md 1.7).

Every helper talks to a real server over loopback; nothing here imports the server code.

* ``php_call(url, "Customer", "getAccount", {"id": 5})`` -> the decoded result as PHP sees it
  (printed by PHP as JSON: a PHP list becomes a Python list, a stdClass a dict).  ``args``
  is either a dict ``{param name: value}`` (dicts become PHP objects, lists PHP lists) or a
  string of PHP code evaluating to the parameter array (e.g. ``"[new SoapParam(5, 'id')]"``).
  A fault raises :class:`SoapFaultError` with ``.code`` (the errorcode) and ``.message``.
* ``php_wsdl_call(url, "Customer", "getAccount", {"id": 5})``: the same through the port's WSDL.
* ``zeep_client(url)`` and ``zeep_port(client, "Customer")``: a zeep service proxy; pass
  ``_soapheaders=zeep_auth()`` for credentials.
* ``raw_call(url, envelope)`` -> ``(http_status, lxml root or None)``; ``fault_code(root)``;
  ``envelope(port, method, params_xml, auth=...)`` builds a PEAR-style request.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import textwrap
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from tests.helpers import require_php_soap

ADMIN = {"username": "admin", "password": "admin-secret", "admin": True}

NS_ENV = "http://schemas.xmlsoap.org/soap/envelope/"


class SoapFaultError(Exception):
    """A SOAP fault as a client saw it: ``code`` is detail/exception/errorcode."""

    def __init__(self, code: int | None, message: str, faultstring: str = "") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.faultstring = faultstring


def port_ns(port: str) -> str:
    """``"Customer"``/``"CustomerPort"`` -> ``urn:AGProjects:NGNPro:Customer``; full URNs pass through."""
    if ":" in port:
        return port
    name = port[:-4] if port.endswith("Port") else port
    if name == "Presence":
        return "urn:AGProjects:SoapSIMPLEProxy:Presence"
    return f"urn:AGProjects:NGNPro:{name}"


def port_name(port: str) -> str:
    return port.rpartition(":")[2].removesuffix("Port") + "Port"


def _php_str(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _php_args(args: dict[str, Any] | str | None) -> str:
    if args is None:
        return "[]"
    if isinstance(args, str):
        return args
    parts = []
    for name, value in args.items():
        parts.append(f"new SoapParam(json_decode({_php_str(json.dumps(value))}), {_php_str(name)})")
    return "[" + ", ".join(parts) + "]"


def _php_auth(auth: dict[str, Any] | None) -> str:
    if auth is None:
        return ""
    fields = []
    for key in ("username", "password", "admin", "impersonate"):
        if key not in auth:
            continue
        v = auth[key]
        if isinstance(v, bool):
            fields.append(f'<{key} xsi:type="xsd:boolean">{"true" if v else "false"}</{key}>')
        elif isinstance(v, int):
            fields.append(f'<{key} xsi:type="xsd:int">{v}</{key}>')
        else:
            text = str(v).replace("&", "&amp;").replace("<", "&lt;")
            fields.append(f'<{key} xsi:type="xsd:string">{text}</{key}>')
    xml = "<auth>" + "".join(fields) + "</auth>"
    # XSD_ANYXML puts the element as is: an unqualified <auth>, as the PEAR client sends it
    return f"$client->__setSoapHeaders([new SoapHeader('urn:unused', 'auth', new SoapVar({_php_str(xml)}, XSD_ANYXML))]);"


_PHP_RUN = """
try {{
    $result = $client->__soapCall({method}, {args});
    echo json_encode(['ok' => true, 'result' => $result, 'is_list' => is_array($result) && array_is_list($result)]);
}} catch (SoapFault $f) {{
    $d = isset($f->detail) ? $f->detail : null;
    $code = ($d && isset($d->exception) && isset($d->exception->errorcode)) ? $d->exception->errorcode : null;
    $text = ($d && isset($d->exception) && isset($d->exception->errorstring)) ? $d->exception->errorstring : $f->getMessage();
    echo json_encode(['ok' => false, 'faultcode' => $f->faultcode, 'faultstring' => $f->getMessage(),
                      'errorcode' => $code, 'errorstring' => $text]);
}}
"""


def _run_php(code: str, timeout: float = 30.0) -> Any:
    php = require_php_soap()
    proc = subprocess.run([php, "-d", "display_errors=stderr", "-d", "error_reporting=E_ALL"],
                          input="<?php\n" + code, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"php failed ({proc.returncode}):\n{proc.stderr}\n{proc.stdout}\n--- code ---\n{code}")
    out = json.loads(proc.stdout)
    if not out["ok"]:
        code_ = out.get("errorcode")
        raise SoapFaultError(int(code_) if code_ not in (None, "") else None, out.get("errorstring") or "",
                             out.get("faultstring") or "")
    return out["result"]


def php_call(url: str, port: str, method: str, args: dict[str, Any] | str | None = None,
             auth: dict[str, Any] | None = ADMIN) -> Any:
    """Call ``method`` with PHP's SoapClient in non-WSDL rpc/encoded mode; return what PHP decoded."""
    code = textwrap.dedent(f"""
        $client = new SoapClient(null, ['location' => {_php_str(url)}, 'uri' => {_php_str(port_ns(port))},
            'style' => SOAP_RPC, 'use' => SOAP_ENCODED, 'connection_timeout' => 10, 'exceptions' => true]);
        {_php_auth(auth)}
    """) + _PHP_RUN.format(method=_php_str(method), args=_php_args(args))
    return _run_php(code)


def php_call_is_list(url: str, port: str, method: str, args: dict[str, Any] | str | None = None,
                     member: str | None = None, auth: dict[str, Any] | None = ADMIN) -> bool:
    """Whether PHP decoded the result (or its ``member``) as a PHP list (``array_is_list``)."""
    pick = "$result" if member is None else f"$result->{member}"
    code = textwrap.dedent(f"""
        $client = new SoapClient(null, ['location' => {_php_str(url)}, 'uri' => {_php_str(port_ns(port))},
            'style' => SOAP_RPC, 'use' => SOAP_ENCODED, 'exceptions' => true]);
        {_php_auth(auth)}
        $result = $client->__soapCall({_php_str(method)}, {_php_args(args)});
        $v = {pick};
        echo json_encode(['ok' => true, 'result' => is_array($v) && array_is_list($v)]);
    """)
    return _run_php(code)


def php_wsdl_call(url: str, port: str, method: str, args: dict[str, Any] | str | None = None,
                  auth: dict[str, Any] | None = ADMIN) -> Any:
    """Call through the port's WSDL (``<url>wsdl/<Port>``) in PHP's WSDL mode."""
    wsdl = url.rstrip("/") + "/wsdl/" + port_name(port)
    code = textwrap.dedent(f"""
        ini_set('soap.wsdl_cache_enabled', '0');
        $client = new SoapClient({_php_str(wsdl)}, ['exceptions' => true, 'cache_wsdl' => WSDL_CACHE_NONE,
            'features' => SOAP_SINGLE_ELEMENT_ARRAYS]);
        {_php_auth(auth)}
    """) + _PHP_RUN.format(method=_php_str(method), args=_php_args(args))
    return _run_php(code)


# ------------------------------------------------------------------------------------- zeep

def zeep_client(url: str) -> Any:
    """A zeep Client on the server's WSDL (every port)."""
    from zeep import Client, Settings
    from zeep.transports import Transport

    return Client(url.rstrip("/") + "/wsdl", settings=Settings(strict=False, xml_huge_tree=False),
                  transport=Transport(timeout=10, operation_timeout=10))


def zeep_port(client: Any, port: str) -> Any:
    """The service proxy of one port (``"Customer"``), bound to the server's URL."""
    return client.bind("NGNProService", port_name(port))


def zeep_auth(username: str = ADMIN["username"], password: str = ADMIN["password"], admin: bool = True,
              impersonate: int | None = None) -> list[Any]:
    """``_soapheaders`` value carrying the ``auth`` header (unqualified, as PEAR sends it)."""
    auth = etree.Element("auth")
    for key, value in (("username", username), ("password", password),
                       ("admin", "true" if admin else "false"), ("impersonate", impersonate)):
        if value is not None:
            etree.SubElement(auth, key).text = str(value)
    return [auth]


def zeep_fault(exc: Any) -> int | None:
    """errorcode of a zeep Fault."""
    detail = getattr(exc, "detail", None)
    if detail is None:
        return None
    el = detail.find(".//errorcode")
    return int(el.text) if el is not None and el.text else None


# ------------------------------------------------------------------------------------- raw

def xml_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def auth_xml(auth: dict[str, Any] | None = ADMIN, attrs: str = "") -> str:
    """The ``auth`` header element as PEAR writes it (unqualified, typed children)."""
    if auth is None:
        return ""
    parts = []
    for key in ("username", "password", "admin", "impersonate"):
        if key in auth:
            v = auth[key]
            t = "boolean" if isinstance(v, bool) else "int" if isinstance(v, int) else "string"
            text = ("true" if v else "false") if isinstance(v, bool) else xml_escape(str(v))
            parts.append(f'<{key} xsi:type="xsd:{t}">{text}</{key}>')
    return f"<auth{attrs}>" + "".join(parts) + "</auth>"


def envelope(port: str, method: str, params_xml: str = "", auth: dict[str, Any] | None = ADMIN,
             header_xml: str | None = None) -> str:
    """A request shaped like API.md 1.7: ns4 = types, ns5 = the port, CRLF between elements."""
    header = header_xml if header_xml is not None else auth_xml(auth)
    head = f"<SOAP-ENV:Header>\r\n{header}\r\n</SOAP-ENV:Header>\r\n" if header else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\r\n'
        '<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"'
        ' xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
        ' xmlns:SOAP-ENC="http://schemas.xmlsoap.org/soap/encoding/"'
        f' xmlns:ns4="urn:AGProjects:NGNPro" xmlns:ns5="{port_ns(port)}"'
        ' SOAP-ENV:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">\r\n'
        f"{head}<SOAP-ENV:Body>\r\n<ns5:{method}>{params_xml}</ns5:{method}>\r\n</SOAP-ENV:Body>\r\n"
        "</SOAP-ENV:Envelope>\r\n"
    )


def http_post(url: str, body: bytes, headers: dict[str, str] | None = None,
              timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
    """POST like PEAR does (HTTP/1.0 semantics, SOAPAction "", Connection: close)."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    hdrs = {"Content-Type": "text/xml; charset=UTF-8", "SOAPAction": '""', "Connection": "close",
            "User-Agent": "PEAR-SOAP 0.11.0-beta"}
    hdrs.update(headers or {})
    try:
        conn.request("POST", u.path or "/", body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def raw_call(url: str, envelope_xml: str | bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """POST an envelope; ``(status, lxml root)`` (root None when the body is not XML)."""
    body = envelope_xml.encode("utf-8") if isinstance(envelope_xml, str) else envelope_xml
    status, _, data = http_post(url, body, headers)
    try:
        root = etree.fromstring(data)
    except etree.XMLSyntaxError:
        root = None
    return status, root


def fault_code(root: Any) -> int | None:
    """detail/exception/errorcode of a fault response; None when it is not a fault."""
    if root is None:
        return None
    el = root.find(f"{{{NS_ENV}}}Body/{{{NS_ENV}}}Fault/detail/exception/errorcode")
    return int(el.text) if el is not None else None


def result_element(root: Any) -> Any:
    """The single return part of a response (None for a void response)."""
    body = root.find(f"{{{NS_ENV}}}Body")
    wrapper = body[0]
    assert len(wrapper) <= 1, "a response wrapper must hold at most one part"
    return wrapper[0] if len(wrapper) else None


# ------------------------------------------------------------------------------ PEAR-style

def pear_value(name: str, value: Any) -> str:
    """XML for one value the way the PEAR client serializes PHP values (API.md 1.6):
    typed scalars, untyped nested structs, lists as SOAP-ENC:Array with ``Struct[n]`` or
    ``xsd:T[n]`` and ``offset="[0]"``, empty lists as ``xsd:anyType[0]``, None as an empty element."""
    if value is None:
        return f"<{name}/>"
    if isinstance(value, bool):
        return f'<{name} xsi:type="xsd:boolean">{"true" if value else "false"}</{name}>'
    if isinstance(value, int):
        return f'<{name} xsi:type="xsd:int">{value}</{name}>'
    if isinstance(value, float):
        return f'<{name} xsi:type="xsd:float">{value!r}</{name}>'
    if isinstance(value, dict):
        return f"<{name}>" + "".join(pear_value(k, v) for k, v in value.items()) + f"</{name}>"
    if isinstance(value, list | tuple):
        if not value:
            return f'<{name} xsi:type="SOAP-ENC:Array" SOAP-ENC:arrayType="xsd:anyType[0]"/>'
        if all(isinstance(v, dict) for v in value):
            kind = "Struct"
        elif all(isinstance(v, str) for v in value):
            kind = "xsd:string"
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            kind = "xsd:int"
        else:
            kind = "xsd:anyType"
        items = "".join(pear_value("item", v) for v in value)
        return (f'<{name} xsi:type="SOAP-ENC:Array" SOAP-ENC:arrayType="{kind}[{len(value)}]"'
                f' SOAP-ENC:offset="[0]">{items}</{name}>')
    return f'<{name} xsi:type="xsd:string">{xml_escape(str(value))}</{name}>'


_XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
_ENC_ARRAY = "{http://schemas.xmlsoap.org/soap/encoding/}arrayType"


def decode_value(el: Any) -> Any:
    """A response element as Python: lists for SOAP arrays, dicts for structs, typed scalars."""
    xtype = el.get(_XSI_TYPE) or ""
    if el.get(_ENC_ARRAY) is not None or xtype.rpartition(":")[2] == "Array":
        return [decode_value(c) for c in el]
    if len(el):
        return {etree.QName(c).localname: decode_value(c) for c in el}
    text = el.text or ""
    kind = xtype.rpartition(":")[2]
    if kind in ("int", "integer", "long", "short"):
        return int(text)
    if kind == "boolean":
        return text in ("true", "1")
    if kind in ("double", "float", "decimal"):
        return float(text)
    return text


def call(url: str, port: str, method: str, params: dict[str, Any] | None = None,
         auth: dict[str, Any] | None = ADMIN, typed: dict[str, str] | None = None) -> Any:
    """A fast PEAR-shaped call from Python: ``call(url, "Customer", "getAccount", {"id": 5})``.

    ``typed`` gives top-level params an ``xsi:type`` (``{"account": "CustomerAccount"}``) as the
    PEAR stubs do.  Returns the decoded return part (None for void); a fault raises
    :class:`SoapFaultError`."""
    xml = []
    for name, value in (params or {}).items():
        part = pear_value(name, value)
        if typed and name in typed and part.startswith(f"<{name}>"):
            part = f'<{name} xsi:type="ns4:{typed[name]}">' + part[len(name) + 2:]
        xml.append(part)
    status, root = raw_call(url, envelope(port, method, "\r\n".join(xml), auth=auth))
    if root is None:
        raise RuntimeError(f"HTTP {status} without an XML body")
    code = fault_code(root)
    if code is not None or root.find(f"{{{NS_ENV}}}Body/{{{NS_ENV}}}Fault") is not None:
        raise SoapFaultError(code, root.findtext(".//errorstring") or "", root.findtext(".//faultstring") or "")
    assert status == 200, status
    ret = result_element(root)
    return None if ret is None else decode_value(ret)


def zeep_list(client: Any, type_name: str, items: list[Any]) -> list[Any]:
    """A SOAP-encoded list argument for zeep: zeep writes soapenc arrays through ``xsd:any``,
    so each item goes as an ``<item>`` element of the named type
    (``zeep_list(client, "CustomerProperty", [{"name": "a", "value": "1"}])``)."""
    from zeep import xsd

    if ":" in type_name or type_name in ("string", "int"):
        qname = type_name if type_name.startswith("{") else f"{{http://www.w3.org/2001/XMLSchema}}{type_name}"
        item_type = client.get_type(qname)
    else:
        item_type = client.get_type(f"{{urn:AGProjects:NGNPro}}{type_name}")
    element = xsd.Element("item", item_type)
    out = []
    for value in items:
        if isinstance(value, dict):
            value = item_type(**value)
        out.append(xsd.AnyObject(element, value))
    return out
