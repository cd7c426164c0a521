"""An XCAP client for the tests: ``http.client`` plus an HTTP digest implementation written
from RFC 7616 (MD5 and SHA-256, qop=auth), independent of the server's code.

``XcapClient(base, user, domain, password, algorithm)``; ``request(method, path, body,
content_type, headers)`` returns a :class:`Reply` (status, headers, body, and ``xml`` /
``error`` for lxml views).  A 401 is answered, on the same connection, with credentials for the challenge of
the client's algorithm.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from lxml import etree

ERROR_NS = "urn:ietf:params:xml:ns:xcap-error"
_PARAM = re.compile(r'(\w+)=("([^"]*)"|[^\s,]+)')


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    challenges: list[str]

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def xml(self) -> etree._Element:
        return etree.fromstring(self.body)

    def error(self) -> etree._Element:
        """The first child of the xcap-error document (the condition)."""
        assert self.content_type == "application/xcap-error+xml", (self.status, self.content_type, self.body)
        root = self.xml()
        assert root.tag == f"{{{ERROR_NS}}}xcap-error"
        return root[0]


def _h(algorithm: str, text: str) -> str:
    fn = hashlib.sha256 if algorithm.upper().startswith("SHA-256") else hashlib.md5
    return fn(text.encode()).hexdigest()


class XcapClient:
    def __init__(self, base: str, user: str | None = None, domain: str = "", password: str = "",
                 algorithm: str = "MD5") -> None:
        self.base = base.rstrip("/")
        parts = urlsplit(self.base)
        self.host, self.port, self.root = parts.hostname, parts.port, parts.path
        self.user, self.domain, self.password, self.algorithm = user, domain, password, algorithm
        self.username = user
        self.requests = 0

    def user_path(self, auid: str, filename: str = "index", node: str | None = None, xui: str | None = None) -> str:
        xui = xui or f"sip:{self.user}@{self.domain}"
        path = f"{self.root}/{auid}/users/{quote(xui, safe=':@')}/{filename}"
        if node is not None:
            path += "/~~/" + quote(node, safe="/@:=*'!$()+,;~-._")
        return path

    def _send(self, conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None,
              headers: dict[str, str]) -> Reply:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        challenges = [v for k, v in resp.getheaders() if k.lower() == "www-authenticate"]
        self.requests += 1
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data, challenges)

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
                headers: dict[str, str] | None = None, auth: bool = True) -> Reply:
        hdrs = dict(headers or {})
        if content_type:
            hdrs["Content-Type"] = content_type
        chunks = None if body is None or isinstance(body, bytes) else list(body)  # sent chunked, twice
        # one connection for the challenge and the answer, as clients do: it stays with one
        # server worker, whose nonce it answers (another worker would call it stale)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            reply = self._send(conn, method, path, body if chunks is None else iter(chunks), hdrs)
            if reply.status != 401 or not auth or self.user is None:
                return reply
            if reply.headers.get("connection", "").lower() == "close":
                conn.close()
            hdrs["Authorization"] = self.authorization(reply.challenges, method, path)
            return self._send(conn, method, path, body if chunks is None else iter(chunks), hdrs)
        finally:
            conn.close()

    def authorization(self, challenges: list[str], method: str, uri: str) -> str:
        chosen = None
        for challenge in challenges:
            params = {m.group(1).lower(): m.group(3) if m.group(3) is not None else m.group(2)
                      for m in _PARAM.finditer(challenge)}
            if params.get("algorithm", "MD5").upper() == self.algorithm.upper():
                chosen = params
        assert chosen is not None, f"no {self.algorithm} challenge in {challenges}"
        alg, realm, nonce = self.algorithm, chosen["realm"], chosen["nonce"]
        cnonce, nc = os.urandom(8).hex(), "00000001"
        ha1 = _h(alg, f"{self.username}:{realm}:{self.password}")
        ha2 = _h(alg, f"{method}:{uri}")
        response = _h(alg, f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        return (f'Digest username="{self.username}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
                f'response="{response}", algorithm={alg}, qop=auth, nc={nc}, cnonce="{cnonce}"')

    # shorthands

    def get(self, path: str, **kw) -> Reply:
        return self.request("GET", path, **kw)

    def put(self, path: str, body: bytes | str, content_type: str, **kw) -> Reply:
        data = body.encode() if isinstance(body, str) else body
        return self.request("PUT", path, data, content_type, **kw)

    def delete(self, path: str, **kw) -> Reply:
        return self.request("DELETE", path, **kw)
