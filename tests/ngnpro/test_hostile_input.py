"""Hostile and malformed requests are refused cleanly, change nothing, and the server lives on."""

from __future__ import annotations

import socket
import time

import pytest
from sqlalchemy import func, select

from ngnpro.models.customer import Customer
from tests.ngnpro.harness import (
    ADMIN,
    auth_xml,
    envelope,
    fault_code,
    http_post,
    php_call,
    raw_call,
)

NS_HEAD = ('<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"'
           ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
           ' xmlns:ns5="urn:AGProjects:NGNPro:Customer">')


def _alive(server) -> None:
    status, root = raw_call(server.url, envelope("Customer", "getCustomers", "<query/>"))
    assert status == 200, "server no longer answers"


def _customers(server) -> int:
    with server.sessionmaker()() as s:
        return s.execute(select(func.count()).select_from(Customer)).scalar_one()


def _add_xml(username: str) -> str:
    return (f'<account><username xsi:type="xsd:string">{username}</username>'
            '<password xsi:type="xsd:string">pw</password></account>')


def test_billion_laughs_refused(ngnpro_server) -> None:
    lol = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    body = (f'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY l0 "lol">{lol}]>' + NS_HEAD +
            f'<SOAP-ENV:Body><ns5:addAccount>{_add_xml("&l9;")}</ns5:addAccount></SOAP-ENV:Body></SOAP-ENV:Envelope>')
    t0 = time.monotonic()
    status, root = raw_call(ngnpro_server.url, body)
    assert status == 500 and fault_code(root) == 9003
    assert time.monotonic() - t0 < 5
    assert _customers(ngnpro_server) == 0
    _alive(ngnpro_server)


def test_external_entity_refused(ngnpro_server) -> None:
    body = ('<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>' + NS_HEAD +
            f'<SOAP-ENV:Body><ns5:addAccount>{_add_xml("&x;")}</ns5:addAccount></SOAP-ENV:Body></SOAP-ENV:Envelope>')
    status, _, data = http_post(ngnpro_server.url, body.encode())
    assert status == 500 and b"root:" not in data and b"9003" in data
    assert _customers(ngnpro_server) == 0


def test_doctype_without_entities_refused(ngnpro_server) -> None:
    body = '<?xml version="1.0"?><!DOCTYPE SOAP-ENV:Envelope SYSTEM "http://127.0.0.1:9/x.dtd">' + envelope(
        "Customer", "getCustomers", "<query/>").split("?>", 1)[1]
    status, root = raw_call(ngnpro_server.url, body)
    assert status == 500 and fault_code(root) == 9003


def test_body_over_the_limit_refused(ngnpro_server) -> None:
    pad = "x" * (1024 * 1024 + 10)
    status, root = raw_call(ngnpro_server.url, envelope("Customer", "addAccount", _add_xml("big") + f"<pad>{pad}</pad>"))
    assert status == 500 and fault_code(root) == 9003
    assert _customers(ngnpro_server) == 0


def test_declared_oversize_answered_without_reading_the_body(ngnpro_server) -> None:
    with socket.create_connection((ngnpro_server.host, ngnpro_server.port), timeout=10) as s:
        s.sendall(b"POST /ngnpro/ HTTP/1.0\r\nContent-Type: text/xml\r\nContent-Length: 50000000\r\n\r\n<x")
        data = _read_all(s)
    assert data.startswith(b"HTTP/1.1 500") or data.startswith(b"HTTP/1.0 500")
    assert b"9003" in data


@pytest.mark.parametrize("levels", [100, 5000])
def test_deep_nesting_refused(ngnpro_server, levels: int) -> None:
    deep = "<a>" * levels + "</a>" * levels
    status, root = raw_call(ngnpro_server.url, envelope("Customer", "addAccount", _add_xml("deep") + deep))
    assert status == 500 and fault_code(root) == 9003
    assert _customers(ngnpro_server) == 0
    _alive(ngnpro_server)


@pytest.mark.parametrize("body", [
    b"", b"not xml at all", b"<unclosed>", b"<a/>",
    b'<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"/>',
    b'<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body/></SOAP-ENV:Envelope>',
    "<?xml version='1.0' encoding='UTF-16'?><a/>".encode("utf-16"),
    b"\xff\xfe\x00garbage",
])
def test_malformed_requests_fault_9003(ngnpro_server, body: bytes) -> None:
    status, root = raw_call(ngnpro_server.url, body)
    assert status == 500 and fault_code(root) == 9003


def test_invalid_utf8_is_refused(ngnpro_server) -> None:
    body = envelope("Customer", "addAccount", _add_xml("bad\udcff")).encode("utf-8", "surrogateescape")
    status, root = raw_call(ngnpro_server.url, body)
    assert status == 500 and fault_code(root) == 9003
    assert _customers(ngnpro_server) == 0


def test_unknown_method_and_namespace(ngnpro_server) -> None:
    status, root = raw_call(ngnpro_server.url, envelope("Customer", "dropEverything", ""))
    assert status == 500 and fault_code(root) == 9003
    status, root = raw_call(ngnpro_server.url, envelope("urn:evil:Port", "getAccount", "<id>1</id>"))
    assert status == 500 and fault_code(root) == 9003


def test_unqualified_update_customer_quirk_faults_cleanly(ngnpro_server) -> None:
    """API.md 7: the import path sends <updateCustomer> without namespace nor auth header."""
    added = php_call(ngnpro_server.url, "Customer", "addAccount", {"account": {"username": "imp", "password": "pw",
                                                                               "firstName": "Before"}})
    body = ('<?xml version="1.0" encoding="UTF-8"?>' + NS_HEAD + "<SOAP-ENV:Body><updateCustomer><item>"
            f'<id xsi:type="xsd:int">{added["id"]}</id><username xsi:type="xsd:string">imp</username>'
            '<firstName xsi:type="xsd:string">After</firstName></item></updateCustomer></SOAP-ENV:Body>'
            "</SOAP-ENV:Envelope>")
    status, root = raw_call(ngnpro_server.url, body)
    assert status == 500 and fault_code(root) == 9003
    assert "updateCustomer" in root.findtext(".//faultstring")
    assert php_call(ngnpro_server.url, "Customer", "getAccount", {"id": added["id"]})["firstName"] == "Before"


NASTY = ["'; DROP TABLE customers; --", 'a"b\\c', "100%_off", "<tag>&amp;", "Robert'); DELETE FROM x;--",
         "ünïcødé ✓", "line1\nline2", "\\x00"]


def test_sql_metacharacters_stored_literally(ngnpro_server) -> None:
    url = ngnpro_server.url
    fields = ["firstName", "lastName", "organization", "email", "web", "city", "address", "vatNumber", "password"]
    ids = []
    for i, nasty in enumerate(NASTY):
        account = {f: nasty for f in fields}
        account.update(username=f"user{i}", properties=[{"name": "note", "value": nasty, "category": nasty}])
        ids.append(php_call(url, "Customer", "addAccount", {"account": account})["id"])
    for i, nasty in enumerate(NASTY):
        got = php_call(url, "Customer", "getAccount", {"id": ids[i]})
        for f in fields:
            assert got[f] == nasty, f
        assert got["properties"][0]["value"] == nasty
    # a filter made of metacharacters matches only literally (plus LIKE wildcards)
    res = php_call(url, "Customer", "getCustomers", {"query": {"filter": {"firstName": "'; DROP TABLE customers; --"}}})
    assert res["total"] == 1
    res = php_call(url, "Customer", "getCustomers", {"query": {"filter": {"organization": "100%"}}})
    assert res["total"] == 1
    assert _customers(ngnpro_server) == len(NASTY)


def test_sql_metacharacters_in_auth(ngnpro_server) -> None:
    auth = {"username": "' OR '1'='1", "password": "' OR '1'='1", "admin": False}
    status, root = raw_call(ngnpro_server.url, envelope("Customer", "getCustomers", "<query/>", auth=auth))
    assert status == 500 and fault_code(root) == 9001


def test_missing_auth_header_is_9001_and_changes_nothing(ngnpro_server) -> None:
    status, root = raw_call(ngnpro_server.url, envelope("Customer", "addAccount", _add_xml("noauth"), auth=None))
    assert status == 500 and fault_code(root) == 9001
    assert _customers(ngnpro_server) == 0


def _read_all(s: socket.socket) -> bytes:
    chunks = []
    while True:
        data = s.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


@pytest.mark.parametrize("version", ["HTTP/1.0", "HTTP/1.1"])
def test_http_framing_content_length_and_close(ngnpro_server, version: str) -> None:
    body = envelope("Customer", "getCustomers", "<query/>").encode()
    # as PEAR sends it (HTTP/1.0, no keep-alive); an HTTP/1.1 client asks for the close
    # (without it, it keeps the connection: test_soap_server.py)
    close = "Connection: close\r\n" if version == "HTTP/1.1" else ""
    req = (f"POST /ngnpro/ {version}\r\nHost: 127.0.0.1\r\nContent-Type: text/xml; charset=UTF-8\r\n"
           f'SOAPAction: ""\r\n{close}Content-Length: {len(body)}\r\n\r\n').encode() + body
    with socket.create_connection((ngnpro_server.host, ngnpro_server.port), timeout=10) as s:
        s.sendall(req)
        data = _read_all(s)  # the server must close: this returns only at EOF
    head, _, payload = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert " 200 " in lines[0]
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert headers["content-type"] == "text/xml; charset=utf-8"
    assert int(headers["content-length"]) == len(payload)
    assert headers["connection"].lower() == "close"
    assert "transfer-encoding" not in headers


def test_chunked_request_body(ngnpro_server) -> None:
    body = envelope("Customer", "getCustomers", "<query/>").encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 100]), body[i:i + 100]) for i in range(0, len(body), 100))
    req = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
           + chunks + b"0\r\n\r\n")
    with socket.create_connection((ngnpro_server.host, ngnpro_server.port), timeout=10) as s:
        s.sendall(req)
        data = _read_all(s)
    assert b" 200 " in data.split(b"\r\n", 1)[0]


def test_other_paths_and_methods(ngnpro_server) -> None:
    for req, code in ((b"GET /ngnpro/ HTTP/1.0\r\n\r\n", b"405"), (b"GET /etc/passwd HTTP/1.0\r\n\r\n", b"404"),
                      (b"POST /other HTTP/1.0\r\nContent-Length: 0\r\n\r\n", b"404")):
        with socket.create_connection((ngnpro_server.host, ngnpro_server.port), timeout=10) as s:
            s.sendall(req)
            assert code in _read_all(s).split(b"\r\n", 1)[0]


def test_fault_for_bad_values_changes_nothing(ngnpro_server) -> None:
    params = ('<account><username xsi:type="xsd:string">val</username><balance xsi:type="xsd:string">lots</balance>'
              "</account>")
    status, root = raw_call(ngnpro_server.url, envelope("Customer", "addAccount", params))
    assert status == 500 and fault_code(root) == 1040
    assert "balance" in root.findtext(".//errorstring")
    assert _customers(ngnpro_server) == 0


def test_auth_header_with_entities_in_credentials(ngnpro_server) -> None:
    status, root = raw_call(ngnpro_server.url, envelope(
        "Customer", "getCustomers", "<query/>", header_xml=auth_xml(dict(ADMIN, password="a&b<c"))))
    assert status == 500 and fault_code(root) == 9001


def test_chunked_oversize_refused(ngnpro_server) -> None:
    piece = b"x" * 65536
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    with socket.create_connection((ngnpro_server.host, ngnpro_server.port), timeout=10) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(20):  # 1.25 MiB, more than max_body_bytes; the client never ends the body
                s.sendall(chunk)
        except OSError:
            pass  # the server may close while we are still sending
        try:
            data = _read_all(s)
        except ConnectionResetError:
            data = None  # closed with our unread bytes pending: TCP resets; also a refusal
    if data is not None:
        assert b" 500 " in data.split(b"\r\n", 1)[0] and b"9003" in data
    _alive(ngnpro_server)
