"""The XCAP server's WSGI application, mounted by ngnpro's HTTP server under
``[ngnpro] xcap_root``: authentication, size limits, preconditions, and the dispatch of
GET / PUT / DELETE to the pure operations and the SQL store.

Users' trees (``ROOT/AUID/users/XUI/...``) answer only their owner, authenticated by HTTP
digest (RFC 7616, MD5 and SHA-256) against the SIP account's stored HA1, with the
account's domain as realm: the same credentials the phone registers with.  Global trees
are read-only and need no credentials.  Every answer carries the document's entity tag
when there is a document; every refusal leaves the database as it was.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

from sqlalchemy.exc import SQLAlchemyError

from ngnpro.models.config import Config
from ngnpro.models.digest import MALFORMED, STALE, DigestAuth, parse_credentials

from . import generated
from .errors import ERROR_TYPE, HttpError, XcapError
from .operations import Result, delete, get, preconditions, put
from .selector import SelectorError, parse, parse_bindings
from .store import Stored, XcapStore
from .uri import UriError, XcapUri, parse_uri
from .usages import XCAP_CAPS, XCAP_DIRECTORY, Usage, usage

log = logging.getLogger("ngnpro.xcap")

#: the nonce key, made before the server forks its workers (see ngnpro.server.serve)
SECRET = os.urandom(32)
_READ_ONLY = [("Allow", "GET, HEAD")]
_ALL = [("Allow", "GET, HEAD, PUT, DELETE")]


class XcapApp:
    """WSGI application for the paths under the XCAP root."""

    def __init__(self, config: Config, sessionmaker: Any, write_lock: Any = None,
                 keep_alive: Callable[[dict], bool] = lambda environ: False) -> None:
        section = config["ngnpro"]
        self.root: str = section["xcap_root"]
        self.max_document: int = section["xcap_max_document"]
        self.store = XcapStore(sessionmaker, write_lock)
        self.auth = DigestAuth(SECRET)
        self.keep_alive = keep_alive

    def owns(self, path: str) -> bool:
        return path.startswith(self.root)

    def __call__(self, environ: dict, start_response: Any) -> list[bytes]:
        state: dict[str, Any] = {"etag": None}
        head = environ.get("REQUEST_METHOD") == "HEAD"
        try:
            result = self._handle(environ, state)
            return self._reply(environ, start_response, result.status, result.body, result.content_type,
                               state["etag"], head=head)
        except XcapError as exc:
            return self._reply(environ, start_response, exc.status, exc.document(), ERROR_TYPE, state["etag"],
                               head=head)
        except HttpError as exc:
            return self._reply(environ, start_response, exc.status, (exc.reason + "\n").encode(), "text/plain",
                               state["etag"], exc.headers, head=head)
        except SelectorError as exc:
            return self._reply(environ, start_response, 400, f"bad node selector: {exc}\n".encode(), "text/plain",
                               None, head=head)
        except UriError as exc:
            return self._reply(environ, start_response, 404, f"{exc}\n".encode(), "text/plain", None, head=head)
        except SQLAlchemyError as exc:
            log.error("database error: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return self._reply(environ, start_response, 503, b"database unavailable\n", "text/plain", None,
                               [("Retry-After", "5")], head=head)
        except Exception:  # a bug of ours: logged here, never a traceback to the client
            log.exception("XCAP request %s %s failed", environ.get("REQUEST_METHOD"), environ.get("RAW_URI"))
            return self._reply(environ, start_response, 500, b"internal error\n", "text/plain", None, head=head)

    # -- the request --------------------------------------------------------------------------

    def _handle(self, environ: dict, state: dict[str, Any]) -> Result:
        method = environ.get("REQUEST_METHOD", "GET")
        uri = self._uri(environ)
        use = usage(uri.auid)
        if use is None or (uri.xui is None and not use.global_) or (uri.xui is not None and not use.users):
            raise HttpError(404, "no such application usage or tree")
        if method not in ("GET", "HEAD", "PUT", "DELETE"):
            raise HttpError(405, "XCAP takes GET, PUT and DELETE", _ALL)
        if method in ("PUT", "DELETE") and (uri.xui is None or not use.writable):
            raise HttpError(405, "this document is read-only", _READ_ONLY)
        if uri.xui is not None:
            self._authenticate(environ, method, uri.xui)
        selector = parse(uri.node, use.namespace, parse_bindings(uri.query)) if uri.node else None
        body = self._body(environ) if method == "PUT" else b""
        if_match, if_none_match = environ.get("HTTP_IF_MATCH"), environ.get("HTTP_IF_NONE_MATCH")
        doc_uri = self._base(environ) + quote(uri.document_path, safe="/:@")
        if not use.writable:
            document = self._generated(environ, use, uri)
            state["etag"] = generated.content_etag(document)
            if preconditions(method, state["etag"], if_match, if_none_match):
                return Result(304)
            return get(use, document, selector)
        if method in ("GET", "HEAD"):
            stored = self.store.read(uri.auid, uri.xui, uri.filename)
            state["etag"] = stored.etag if stored else None
            if preconditions(method, state["etag"], if_match, if_none_match):
                return Result(304)
            if stored is None:
                raise HttpError(404, "no such document")
            return get(use, stored.document, selector)

        def operation(current: Stored | None, taken: Callable[[], list[str]]) -> Result:
            state["etag"] = current.etag if current else None
            preconditions(method, state["etag"], if_match, if_none_match)
            if method == "DELETE":
                if current is None:
                    raise HttpError(404, "no such document")
                return delete(use, current.document, selector, taken)
            return put(use, current.document if current else None, selector, body,
                       environ.get("CONTENT_TYPE", ""), doc_uri, taken)

        result, state["etag"] = self.store.write(uri.auid, uri.xui, uri.filename, operation)
        return result

    def _uri(self, environ: dict) -> XcapUri:
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or quote(environ.get("PATH_INFO", "/"))
        if raw[:8].lower().startswith(("http://", "https://")):  # absolute-form request target
            raw = "/" + raw.split("://", 1)[1].partition("/")[2]
        path = raw.partition("?")[0]
        try:
            query = unquote(environ.get("QUERY_STRING", ""), errors="strict")
        except UnicodeDecodeError:
            raise SelectorError("the query is not UTF-8") from None
        return parse_uri(path, self.root, query)

    def _authenticate(self, environ: dict, method: str, xui: str) -> None:
        """Digest against the account of the tree's owner; 401 (challenge), 403 (another
        user) or 400 (malformed credentials)."""
        domain = xui.rpartition("@")[2]

        def lookup(username: str, algorithm: str) -> str | None:
            user, at, realm = username.rpartition("@")
            if at and realm.lower() != domain:
                return None
            return self.store.ha1(user if at else username, domain, algorithm)

        header = environ.get("HTTP_AUTHORIZATION")
        creds = parse_credentials(header) if header else None
        target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        if creds is not None and target and creds.uri != target:
            # the response covers the uri parameter: credentials for another resource
            # must not reach this one (RFC 7616 section 3.4.6)
            raise HttpError(400, "the credentials' uri is not the request's")
        result = self.auth.verify([header] if header else [], method=method, realm=domain, lookup=lookup)
        if result.status == MALFORMED:
            raise HttpError(400, "malformed credentials")
        if not result.ok:
            raise HttpError(401, "authentication required", self.auth.challenge(domain, stale=result.status == STALE))
        user, at, _ = result.username.rpartition("@")
        if f"{user if at else result.username}@{domain}" != xui:
            raise HttpError(403, "a user may only reach the documents of its own tree")

    def _body(self, environ: dict) -> bytes:
        from ngnpro.server import DRAIN_FACTOR, _abandon_input, _discard

        stream = environ["wsgi.input"]
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            raise HttpError(400, "bad Content-Length") from None
        if length > self.max_document:
            if length <= DRAIN_FACTOR * self.max_document:
                _discard(stream, length)
            _abandon_input(stream)
            raise HttpError(413, f"a document is at most {self.max_document} bytes")
        body = stream.read(length) if length >= 0 else stream.read(self.max_document + 1)
        if len(body) > self.max_document:
            _abandon_input(stream)
            raise HttpError(413, f"a document is at most {self.max_document} bytes")
        return body

    def _generated(self, environ: dict, use: Usage, uri: XcapUri) -> bytes:
        if use.auid == XCAP_CAPS and uri.filename == generated.CAPS_FILE:
            return generated.caps()
        if use.auid == XCAP_DIRECTORY and uri.xui is not None and uri.filename == generated.DIRECTORY_FILE:
            return generated.directory(self._base(environ), uri.xui, self.store.listing(uri.xui))
        raise HttpError(404, "no such document")

    def _base(self, environ: dict) -> str:
        from ngnpro.server import _HOST

        host = environ.get("HTTP_HOST") or ""
        if not _HOST.match(host):
            host = f"{environ.get('SERVER_NAME', '127.0.0.1')}:{environ.get('SERVER_PORT', '')}"
        return f"{environ.get('wsgi.url_scheme', 'http')}://{host}{self.root}"

    def _reply(self, environ: dict, start_response: Any, status: int, body: bytes, ctype: str, etag: str | None,
               extra: list[tuple[str, str]] | None = None, head: bool = False) -> list[bytes]:
        if status == 304:
            body, ctype = b"", ""
        headers = [("Content-Length", str(len(body)))]
        if ctype:
            headers.append(("Content-Type", ctype))
        if etag:
            headers.append(("ETag", f'"{etag}"'))
        if status == 413 or not self.keep_alive(environ):  # 413: the rest of the body is unread
            headers.append(("Connection", "close"))
        start_response(f"{status} {_REASONS.get(status, 'Error')}", headers + (extra or []))
        return [] if head or status == 304 else [body]


_REASONS = {200: "OK", 201: "Created", 304: "Not Modified", 400: "Bad Request", 401: "Unauthorized",
            403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
            412: "Precondition Failed", 413: "Content Too Large", 415: "Unsupported Media Type",
            500: "Internal Server Error", 503: "Service Unavailable"}
