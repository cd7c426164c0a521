"""``python -m ngnpro``: the NGNPro SOAP server on a gevent WSGI server.

HTTP behaviour follows what the PEAR client needs (API.md 1.2): every response has a
``Content-Length`` body and ``Connection: close`` (the client reads until EOF and decodes no
chunks), ``Content-Type: text/xml; charset=utf-8``, and faults come with status 500 (a 4xx
would make the client throw the fault detail away).  SOAP is served at ``/ngnpro/`` and
``/``; the WSDL at ``/ngnpro/wsdl``, ``/wsdl`` and ``?wsdl``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from ngnpro.models.config import Config, parse_hostport

log = logging.getLogger("ngnpro.server")

SOAP_PATHS = ("/", "/ngnpro", "/ngnpro/")
WSDL_PATHS = ("/wsdl", "/ngnpro/wsdl", "/ngnpro/wsdl/")
XML = "text/xml; charset=utf-8"
_HOST = re.compile(r"^[A-Za-z0-9.\-]{1,253}(:\d{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:\d{1,5})?$")


class NGNProWsgi:
    """The WSGI application: size limit, routing of paths, and the dispatcher."""

    def __init__(self, dispatcher: Any, max_body: int, wsdl: Any, ports: set[str]) -> None:
        self.dispatcher = dispatcher
        self.max_body = max_body
        self.wsdl = wsdl  # callable(base_url, port name or None) -> bytes
        self.ports = ports
        self._wsdl_cache: dict[tuple[str, str | None], bytes] = {}

    def __call__(self, environ: dict, start_response: Any) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/") or "/"
        query = environ.get("QUERY_STRING", "")
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
            _abandon_input(stream)
            err = NGNProError(INVALID_REQUEST, f"Invalid request: body larger than {self.max_body} bytes")
            return self._reply(start_response, "500 Internal Server Error", fault_bytes(err))
        status, out = self.dispatcher.handle(body)
        return self._reply(start_response, "200 OK" if status == 200 else "500 Internal Server Error", out)

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
               extra: list[tuple[str, str]] | None = None) -> list[bytes]:
        headers = [("Content-Type", ctype), ("Content-Length", str(len(body))), ("Connection", "close")]
        start_response(status, headers + (extra or []))
        return [body]


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

    return NGNProWsgi(dispatcher, config["ngnpro"]["max_body_bytes"], wsdl, set(names))


def serve(config: Config) -> int:
    """Open the database, then serve until SIGTERM/SIGINT; returns the exit status."""
    from gevent import monkey

    monkey.patch_all()
    import signal

    import gevent
    from gevent.pool import Pool
    from gevent.pywsgi import WSGIServer
    from sqlalchemy.exc import SQLAlchemyError

    from ngnpro.models.database import open_database

    section = config["ngnpro"]
    host, port = parse_hostport(section["listen"], "ngnpro.listen")
    try:
        engine, sessionmaker = open_database(config.database_url)
    except SQLAlchemyError as exc:
        print(f"ngnpro: database error: {str(exc).splitlines()[0]}", flush=True)
        log.error("cannot open the database: %s", str(exc).splitlines()[0])
        return 1
    app = build_app(config, sessionmaker)
    ssl_args: dict[str, str] = {}
    if section["tls_cert"] or section["tls_key"]:
        if not (section["tls_cert"] and section["tls_key"]):
            log.error("ngnpro.tls_cert and ngnpro.tls_key must be set together")
            return 2
        ssl_args = {"certfile": section["tls_cert"], "keyfile": section["tls_key"]}
    try:
        server = WSGIServer((host, port), app, spawn=Pool(256), log=None, error_log=logging.getLogger("ngnpro.http"),
                            **ssl_args)
        server.start()
    except OSError as exc:
        log.error("cannot listen on %s: %s", section["listen"], exc)
        return 1
    scheme = "https" if ssl_args else "http"
    bracket = f"[{host}]" if ":" in host else host
    log.info("NGNPro SOAP server listening on %s://%s:%d/ngnpro/ (WSDL at /ngnpro/wsdl), database %s",
             scheme, bracket, server.server_port, engine.url.render_as_string(hide_password=True))
    stop = gevent.event.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(sig, stop.set)
    stop.wait()
    log.info("stopping")
    server.stop(timeout=5)
    engine.dispose()
    return 0
