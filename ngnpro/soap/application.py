"""The NGNPro application: the registered service classes, one spyne Application per port.

Method names collide across ports (``addAccount`` is in Sip, Customer and Voicemail), and
a spyne Application keys methods by ``{tns}name``; so each port namespace gets its own
Application whose ``tns`` *is* the port namespace, and :class:`Dispatcher` routes a request
to the right one by the namespace of its method element -- the same (namespace, name) key
the PHP client relies on (API.md 1.1).  Everything here is sans-I/O: bytes in, bytes out.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from spyne.application import Application
from spyne.context import MethodContext
from spyne.evmgr import EventManager
from spyne.server import ServerBase

from ngnpro.recycle import note_failure

from .connections import ConnectionCache
from .const import PORT_NAMES
from .context import RequestState
from .envelope import fault_bytes, parse_request
from .faults import INVALID_REQUEST, NGNProError
from .protocol import RpcEncodedSoap11
from .service import PortService
from .writelock import WriteLock

log = logging.getLogger("ngnpro.soap")


@dataclass
class Runtime:
    """What the running methods need from the process: config and the database (each call
    is one transaction on a connection of ``engine``, the sessionmaker's engine unless
    given, taken from and given back to ``connections``)."""

    config: Any
    sessionmaker: Any
    engine: Any = None
    connections: Any = None
    write_lock: Any = None

    def __post_init__(self) -> None:
        if self.engine is None and self.sessionmaker is not None:
            self.engine = self.sessionmaker.kw["bind"]
        if self.connections is None and self.engine is not None:
            self.connections = ConnectionCache(self.engine)
        if self.write_lock is None:
            self.write_lock = WriteLock(self.engine)


class PortServer(ServerBase):
    """spyne's server pipeline for one port's Application (no transport of its own)."""

    transport = "http://schemas.xmlsoap.org/soap/http"


class QuickMethodContext(MethodContext):
    """spyne's MethodContext without its attribute guard: spyne checks every one of the
    fifty-odd attribute assignments of a call against a "frozen" flag that only protects
    against typos in user code (which keeps its own data in ``udc`` here)."""

    __setattr__ = object.__setattr__


class QuietEventManager(EventManager):
    """spyne's event manager without the empty handler set it builds for each of the dozen
    events fired per call when nothing listens (as nothing does here); listeners still
    run when added."""

    def fire_event(self, event_name: str, ctx: Any, *args: Any, **kwargs: Any) -> None:
        handlers = self.handlers.get(event_name)
        if handlers:
            for handler in handlers:
                handler(ctx, *args, **kwargs)


def _quiet_events(app: Application) -> None:
    managers = [app.event_manager, app.in_protocol.event_manager, app.out_protocol.event_manager]
    for descriptors in app.interface.service_method_map.values():
        for d in descriptors:
            managers.extend(d.event_managers)
    for em in managers:
        if type(em) is EventManager:
            em.__class__ = QuietEventManager


def build_applications(services: Iterable[type[PortService]]) -> dict[str, Application]:
    """One spyne Application per port namespace, from the registered service classes."""
    by_ns: dict[str, list[type[PortService]]] = defaultdict(list)
    for svc in services:
        ns = getattr(svc, "__port_namespace__", "")
        if not ns:
            raise ValueError(f"{svc.__name__} does not set __port_namespace__")
        by_ns[ns].append(svc)
    apps = {}
    for ns, classes in by_ns.items():
        name = PORT_NAMES.get(ns, ns.rpartition(":")[2] + "Port")
        apps[ns] = Application(
            classes, tns=ns, name=name, in_protocol=RpcEncodedSoap11(), out_protocol=RpcEncodedSoap11(),
        )
        _quiet_events(apps[ns])
    return apps


class Dispatcher:
    """Routes one request body to its port and returns ``(http_status, response_bytes)``."""

    def __init__(self, services: Iterable[type[PortService]], runtime: Runtime) -> None:
        # spyne logs every fault with its traceback; faults are ordinary answers here and
        # PortService logs the unexpected ones itself; spyne's own debug output is noise here
        logging.getLogger("spyne").setLevel(logging.WARNING)
        for name in ("spyne.application", "spyne.application.client", "spyne.application.server",
                     "spyne.server", "spyne.protocol.soap.soap11.invalid"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        self.services = list(services)
        self.apps = build_applications(self.services)
        self.servers = {ns: PortServer(app) for ns, app in self.apps.items()}
        for server in self.servers.values():
            _quiet_events(server.app)
            if type(server.event_manager) is EventManager:
                server.event_manager.__class__ = QuietEventManager
        self.runtime = runtime

    def methods(self) -> set[tuple[str, str]]:
        """Every (port namespace, method name) served."""
        return {
            (ns, key.rpartition("}")[2])
            for ns, app in self.apps.items()
            for key in app.interface.service_method_map
        }

    def handle(self, body: bytes) -> tuple[int, bytes]:
        started = time.monotonic()
        try:
            parsed = parse_request(body)
        except NGNProError as exc:
            log.info("refused request: %s", exc.message)
            return 500, fault_bytes(exc)
        ns, name = parsed.namespace, parsed.name
        server = self.servers.get(ns)
        if server is None:
            where = f"{{{ns}}}{name}" if ns else f"unqualified <{name}>"
            log.info("unknown method %s", where)
            return 500, fault_bytes(NGNProError(INVALID_REQUEST, f"Invalid request: unknown method {where}"))
        ctx = QuickMethodContext(server, MethodContext.SERVER)
        ctx.udc = RequestState(runtime=self.runtime)
        ctx.transport.parsed_request = parsed
        ctx.in_string = [body]
        try:
            contexts = server.generate_contexts(ctx)
            p_ctx = contexts[0]
            if p_ctx.in_error is None:
                server.get_in_object(p_ctx)
            if p_ctx.in_error is not None:
                p_ctx.out_error = p_ctx.in_error
            else:
                server.get_out_object(p_ctx)
            server.get_out_string(p_ctx)
            out = b"".join(p_ctx.out_string)
        except Exception as exc:
            if not note_failure(exc, f"{name}'s decoding"):
                log.exception("%s: cannot build the response", name)
            return 500, fault_bytes()
        finally:
            ctx.udc = None
        if p_ctx.in_error is not None:
            note_failure(p_ctx.in_error, f"{name}'s decoding")
        status = 500 if p_ctx.out_error is not None else 200
        if log.isEnabledFor(logging.DEBUG):
            outcome = "ok" if status == 200 else f"fault {getattr(p_ctx.out_error, 'code', 9000)}"
            log.debug("%s %s: %s in %.1f ms", PORT_NAMES.get(ns, ns), name, outcome,
                      (time.monotonic() - started) * 1000)
        return status, out
