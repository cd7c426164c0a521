"""``python -m ngnpro``: the NGNPro SOAP server on a gevent WSGI server.

HTTP behaviour follows what the PEAR client needs (API.md 1.2): every response has a
``Content-Length`` body, ``Content-Type: text/xml; charset=utf-8``, and faults come with
status 500 (a 4xx would make the client throw the fault detail away).  The connection is
closed after the response (the PEAR client sends HTTP/1.0 ``Connection: close`` and reads
until EOF) unless the client asked to keep it: HTTP/1.1 without ``Connection: close`` (PHP's
SoapClient) or HTTP/1.0 with ``Connection: keep-alive``.  SOAP is served at ``/ngnpro/`` and
``/``; the WSDL at ``/ngnpro/wsdl``, ``/wsdl`` and ``?wsdl``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from ngnpro.models.config import Config, parse_hostport
from ngnpro.models.prefork import supervise

log = logging.getLogger("ngnpro.server")

SOAP_PATHS = ("/", "/ngnpro", "/ngnpro/")
WSDL_PATHS = ("/wsdl", "/ngnpro/wsdl", "/ngnpro/wsdl/")
XML = "text/xml; charset=utf-8"
#: Set in the WSGI environ by the handler when a kept-alive connection has served long
#: enough: the response then says ``Connection: close`` (see _handler_class).
LAST_REQUEST = "ngnpro.last_request"
_HOST = re.compile(r"^[A-Za-z0-9.\-]{1,253}(:\d{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:\d{1,5})?$")


class NGNProWsgi:
    """The WSGI application: size limit, routing of paths, and the dispatcher."""

    def __init__(self, dispatcher: Any, max_body: int, wsdl: Any, ports: set[str], xcap: Any = None) -> None:
        self.dispatcher = dispatcher
        self.xcap = xcap  # ngnpro.xcap.app.XcapApp: the paths under [ngnpro] xcap_root
        self.max_body = max_body
        self.wsdl = wsdl  # callable(base_url, port name or None) -> bytes
        self.ports = ports
        self._wsdl_cache: dict[tuple[str, str | None], bytes] = {}

    def __call__(self, environ: dict, start_response: Any) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/") or "/"
        query = environ.get("QUERY_STRING", "")
        if self.xcap is not None and self.xcap.owns(path):
            return self.xcap(environ, start_response)
        if method in ("GET", "HEAD") and (path in WSDL_PATHS or query.lower().startswith("wsdl")):
            return self._send_wsdl(environ, start_response, method == "HEAD", None)
        if method in ("GET", "HEAD") and path.rstrip("/").rpartition("/")[0] in ("/wsdl", "/ngnpro/wsdl"):
            port = path.rstrip("/").rpartition("/")[2]
            if port in self.ports:
                return self._send_wsdl(environ, start_response, method == "HEAD", port)
        if method in ("GET", "HEAD") and path.endswith("/soap-encoding.xsd") and path.count("/") <= 3:
            from ngnpro.soap.wsdl import SOAP_ENCODING_XSD

            reply = self._reply(start_response, "200 OK", SOAP_ENCODING_XSD)
            return [] if method == "HEAD" else reply
        if path not in SOAP_PATHS:
            return self._reply(start_response, "404 Not Found", b"not found\n", "text/plain")
        if method != "POST":
            return self._reply(start_response, "405 Method Not Allowed", b"POST SOAP requests here\n", "text/plain",
                               [("Allow", "POST")])
        from ngnpro.soap.envelope import fault_bytes
        from ngnpro.soap.faults import INVALID_REQUEST, NGNProError

        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            length = -1
        stream = environ["wsgi.input"]
        body = b"" if length > self.max_body else stream.read(length) if length >= 0 else stream.read(self.max_body + 1)
        if length > self.max_body or len(body) > self.max_body:
            log.info("refused a request of more than %d bytes from %s", self.max_body, environ.get("REMOTE_ADDR"))
            if length <= DRAIN_FACTOR * self.max_body:
                _discard(stream, length)
            _abandon_input(stream)
            err = NGNProError(INVALID_REQUEST, f"Invalid request: body larger than {self.max_body} bytes")
            return self._reply(start_response, "500 Internal Server Error", fault_bytes(err))
        status, out = self.dispatcher.handle(body)
        return self._reply(start_response, "200 OK" if status == 200 else "500 Internal Server Error", out,
                           keep_alive=_keep_alive(environ))

    def _send_wsdl(self, environ: dict, start_response: Any, head: bool, port: str | None) -> list[bytes]:
        scheme = environ.get("wsgi.url_scheme", "http")
        host = environ.get("HTTP_HOST") or ""
        if not _HOST.match(host):
            host = f"{environ.get('SERVER_NAME', '127.0.0.1')}:{environ.get('SERVER_PORT', '')}"
        base = f"{scheme}://{host}/ngnpro/"
        data = self._wsdl_cache.get((base, port))
        if data is None:
            if len(self._wsdl_cache) > 64:
                self._wsdl_cache.clear()
            data = self._wsdl_cache[(base, port)] = self.wsdl(base, port)
        reply = self._reply(start_response, "200 OK", data)
        return [] if head else reply

    @staticmethod
    def _reply(start_response: Any, status: str, body: bytes, ctype: str = XML,
               extra: list[tuple[str, str]] | None = None, keep_alive: bool = False) -> list[bytes]:
        headers = [("Content-Type", ctype), ("Content-Length", str(len(body)))]
        if not keep_alive:
            headers.append(("Connection", "close"))
        start_response(status, headers + extra if extra else headers)
        return [body]


def _keep_alive(environ: dict) -> bool:
    """Whether the client asked to keep the connection for further requests (HTTP/1.1
    unless ``Connection: close``; HTTP/1.0 only with ``Connection: keep-alive``)."""
    if environ.get(LAST_REQUEST):
        return False
    tokens = environ.get("HTTP_CONNECTION", "").lower()
    if environ.get("SERVER_PROTOCOL") == "HTTP/1.1":
        return "close" not in tokens
    return "keep-alive" in tokens


#: A declared body up to this many times ``max_body_bytes`` is read and discarded before the
#: fault is sent: closing a socket with unread data makes the kernel reset the connection,
#: and a client that sent a body a little over the limit would lose its answer.  Larger
#: bodies are not read at all (see _abandon_input).
DRAIN_FACTOR = 4


def _discard(stream: Any, length: int) -> None:
    left = length
    while left > 0:
        chunk = stream.read(min(65536, left))
        if not chunk:
            return
        left -= len(chunk)


def _abandon_input(stream: Any) -> None:
    """Keep gevent from reading (and discarding) the rest of a refused body before it closes
    the connection: an attacker could otherwise stream gigabytes into a worker."""
    if hasattr(stream, "content_length") and hasattr(stream, "position"):
        stream.content_length = stream.position
        stream.chunked_input = False


def build_app(config: Config, sessionmaker: Any) -> NGNProWsgi:
    from ngnpro.ports import SERVICES
    from ngnpro.soap.application import Dispatcher, Runtime
    from ngnpro.soap.wsdl import generate_wsdl, port_wsdl_names

    dispatcher = Dispatcher(SERVICES, Runtime(config=config, sessionmaker=sessionmaker))
    names = port_wsdl_names(dispatcher.apps)

    def wsdl(base: str, port: str | None) -> bytes:
        return generate_wsdl(dispatcher.apps, base, names[port] if port else None)

    from ngnpro.xcap.app import XcapApp

    xcap = XcapApp(config, sessionmaker, dispatcher.runtime.write_lock, _keep_alive)
    return NGNProWsgi(dispatcher, config["ngnpro"]["max_body_bytes"], wsdl, set(names), xcap)


def serve(config: Config) -> int:
    """Open (and upgrade) the database, bind, then serve with ``[ngnpro] workers`` processes
    until SIGTERM/SIGINT; returns the exit status."""
    from gevent import monkey

    monkey.patch_all()
    from sqlalchemy.exc import SQLAlchemyError

    from ngnpro.models.database import open_database
    from ngnpro.xcap import app as _xcap_app  # noqa: F401 - its nonce key, made once for every worker

    section = config["ngnpro"]
    host, port = parse_hostport(section["listen"], "ngnpro.listen")
    ssl_args: dict[str, str] = {}
    if section["tls_cert"] or section["tls_key"]:
        if not (section["tls_cert"] and section["tls_key"]):
            print("ngnpro: configuration error: ngnpro.tls_cert and ngnpro.tls_key must be set together", flush=True)
            return 2
        ssl_args = {"certfile": section["tls_cert"], "keyfile": section["tls_key"]}
    try:
        engine, _ = open_database(config.database_url)  # schema upgrade, once, before forking
        url = engine.url.render_as_string(hide_password=True)
        engine.dispose()
    except SQLAlchemyError as exc:
        log.error("cannot open the database: %s", str(exc).splitlines()[0])
        return 1
    try:
        sock = _bind(host, port)
    except OSError as exc:
        log.error("cannot listen on %s: %s", section["listen"], exc)
        return 1
    workers = section["workers"]
    scheme = "https" if ssl_args else "http"
    bracket = f"[{host}]" if ":" in host else host
    log.info("NGNPro SOAP server listening on %s://%s:%d/ngnpro/ (WSDL at /ngnpro/wsdl), %d worker%s, database %s",
             scheme, bracket, sock.getsockname()[1], workers, "s" if workers > 1 else "", url)
    if workers == 1:
        return _worker(config, sock, ssl_args)
    return supervise(workers, lambda i: _worker(config, sock, ssl_args, f"worker {i}"), log)


#: Connections served at once by one worker; more wait in the listen backlog.
MAX_CONNECTIONS = 512
#: A client silent this long while sending its request is dropped (slow-client protection).
IDLE_TIMEOUT = 20.0
#: No connection lives longer than this, however it trickles (a request takes milliseconds).
CONNECTION_DEADLINE = 120.0
#: A kept-alive connection takes no new request after this long, so that the deadline
#: above never cuts a request short: its last response says ``Connection: close``.
KEEP_ALIVE_FOR = CONNECTION_DEADLINE / 2


#: an HTTP header name (RFC 9110 token)
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_MAX_LINE = 65536
_MAX_HEADERS = 100


class RequestHeaders:
    """A request's header fields, as gevent's handler reads them (``get``, ``getheader``,
    ``typeheader``, ``headers`` lines, ``del``, ``status``): what ``http.client.parse_headers``
    gives, without running the e-mail parser over every request's few plain lines."""

    __slots__ = ("_fields", "status")

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._fields = fields
        self.status = ""

    def get(self, name: str, default: Any = None) -> Any:
        name = name.lower()
        for key, value in self._fields:
            if key.lower() == name:
                return value
        return default

    getheader = get

    def __delitem__(self, name: str) -> None:
        name = name.lower()
        self._fields = [(k, v) for k, v in self._fields if k.lower() != name]

    @property
    def typeheader(self) -> str | None:
        return self.get("content-type")

    @property
    def headers(self) -> Any:
        for key, value in self._fields:
            yield f"{key}: {value}\r\n"


def read_headers(fp: Any) -> Any:
    """The header fields of a request from ``fp`` up to the blank line.  Plain ``Name:
    value`` lines are read here; anything else (folded lines, a line without a colon...)
    goes to ``http.client.parse_headers`` as gevent does it, with the same limits."""
    lines = []
    while True:
        line = fp.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            broken = RequestHeaders([])
            broken.status = "Line too long"
            return broken
        if line in (b"\r\n", b"\n", b""):
            break
        lines.append(line)
        if len(lines) > _MAX_HEADERS:
            from http.client import HTTPException

            raise HTTPException(f"got more than {_MAX_HEADERS} headers")
    fields = []
    for line in lines:
        text = line.decode("iso-8859-1")
        key, colon, value = text.partition(":")
        if not colon or not _TOKEN.match(key) or text[0] in " \t":
            from io import BytesIO

            from gevent.pywsgi import headers_factory

            return headers_factory(BytesIO(b"".join(lines) + b"\r\n"))
        fields.append((key, value.lstrip(" \t").rstrip("\r\n")))
    return RequestHeaders(fields)


def _handler_class() -> Any:
    """gevent's WSGI handler with per-read and per-connection time limits, so that clients
    sending slowly cannot pin every greenlet of the pool; a kept-alive connection is closed
    after a response once it is ``KEEP_ALIVE_FOR`` old."""
    import contextlib
    import socket
    import time

    import gevent
    from gevent.pywsgi import WSGIHandler

    class Handler(WSGIHandler):
        reuse_until = 0.0

        def handle(self) -> None:
            if self.socket is not None:
                self.socket.settimeout(IDLE_TIMEOUT)
                # a kept-alive connection must not wait for the client's delayed ACK
                # before the body that follows the headers goes out (Nagle)
                with contextlib.suppress(OSError):
                    self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.reuse_until = time.monotonic() + KEEP_ALIVE_FOR
            with gevent.Timeout(CONNECTION_DEADLINE, False):
                super().handle()

        def MessageClass(self, fp: Any, *args: Any) -> Any:  # noqa: N802 - gevent's name
            return read_headers(fp)

        def _write_with_headers(self, data: bytes) -> None:
            """gevent's, but the status line, headers and body leave in one send: two
            sends cost the client two wake-ups per response (with TCP_NODELAY, or a delayed
            ACK without it) and both sides a system call more."""
            self.headers_sent = True
            self.finalize_headers()
            towrite = bytearray(b"HTTP/1.1 ")
            towrite += self.status
            towrite += b"\r\n"
            for header, value in self.response_headers:
                towrite += header
                towrite += b": "
                towrite += value
                towrite += b"\r\n"
            towrite += b"\r\n"
            if data and not self.response_use_chunked:
                towrite += data
                self._sendall(towrite)
            else:
                self._sendall(towrite)
                self._write(data)

        def get_environ(self) -> dict:
            environ = super().get_environ()
            # the request target as sent, still percent-encoded: XCAP URIs may hold an
            # encoded "/" that PATH_INFO's decoding would turn into a separator
            environ["RAW_URI"] = self.path
            if time.monotonic() > self.reuse_until:
                environ[LAST_REQUEST] = True
            return environ

    return Handler


def _bind(host: str, port: int) -> Any:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


def _worker(config: Config, sock: Any, ssl_args: dict[str, str], name: str = "") -> int:
    """One serving process: its own engine, the WSGI app on the shared listening socket."""
    import signal

    import gevent
    import gevent.event
    from gevent.pool import Pool
    from gevent.pywsgi import WSGIServer

    from ngnpro.models.database import open_database

    engine, sessionmaker = open_database(config.database_url, migrate=False)
    app = build_app(config, sessionmaker)
    server = WSGIServer(sock, app, spawn=Pool(MAX_CONNECTIONS), log=None, handler_class=_handler_class(),
                        error_log=logging.getLogger("ngnpro.http"), **ssl_args)
    server.start()
    stop = gevent.event.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(sig, stop.set)
    stop.wait()
    log.info("stopping%s", f" {name}" if name else "")
    server.stop(timeout=5)
    app.dispatcher.runtime.connections.close()
    engine.dispose()
    return 0


