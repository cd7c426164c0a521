"""Running the proxy: logging, worker processes, signals, and a stop that always ends.

``run(config, build)`` is what ``python -m sipproxy`` does once the configuration is valid:
one process (``workers = 1``) or a supervisor forking that many workers, each assembled by
``build`` (:func:`sipproxy.app.build`, handed in: the runtime does not import the wiring).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from ngnpro.models.config import Config
from sipproxy.registrar.cache import ChangeCounters

__all__ = ["run", "serve", "setup_logging", "tune_gc", "STOP_GRACE"]


class _Formatter(logging.Formatter):
    """The standard format, with the time stamp's text made once per second (a call's
    info line otherwise spent a good part of its cost in ``localtime``/``strftime``)."""

    _second = -1
    _text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        second = int(record.created)
        if second != self._second:
            self._text = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = second
        return self.default_msec_format % (self._text, record.msecs)


def setup_logging(config: Config, worker: int | None = None) -> None:
    tag = f"[{worker}] " if worker is not None else ""
    # the format names no source line, thread or process: skip gathering them per record
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(f"%(asctime)s %(name)s {tag}%(levelname)s %(message)s"))
    from gevent import monkey

    if monkey.is_module_patched("threading"):
        # gevent's RLock is Python code, taken twice per record; a worker is one OS thread
        # and a record is written without yielding, so the C lock does the same job
        handler.lock = monkey.get_original("_thread", "RLock")()
    logging.basicConfig(level=getattr(logging, config["logging"]["level"].upper()),
                        handlers=[handler], force=True)


def run(config: Config, build: Callable[..., Any]) -> int:
    """Serve until SIGTERM/SIGINT: in this process, or in ``[sipproxy] workers`` forked ones."""
    setup_logging(config)
    log = logging.getLogger("sipproxy")
    from sipproxy.sip import build as sip_build

    # (`python -m sipproxy --version` says it too; docs/sipproxy.md "Compiled message layer")
    log.info("starting; SIP message layer: %s", sip_build())
    workers = config["sipproxy"]["workers"]
    secret = os.urandom(32)
    if workers == 1:
        return serve(config, build, secret, None)
    # the workers' mailboxes (see sipproxy.runtime.edge), opened here so every worker knows them
    # all -- and kept open here, so a restarted worker finds its own again
    import _socket

    mailboxes = []
    for _ in range(workers):
        box = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
        box.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVBUF, 4 << 20)
        box.bind(("127.0.0.1", 0))
        mailboxes.append(box)
    # what each worker changed of the location table, in memory they all map (see
    # sipproxy.registrar.cache.ChangeCounters): made here, before they fork
    counters = ChangeCounters(workers) if config["sipproxy"]["location_cache"] > 0 else None
    # the digest nonce-counts, in memory they all map: any worker accepts any nonce the
    # proxy issued, none accepts a count another one used (sipproxy.auth.nonces)
    from sipproxy.auth.nonces import SharedNonceCounts

    nonces = SharedNonceCounts(lifetime=config["sipproxy"]["nonce_lifetime"])
    # PIKE's counts and blocks, likewise (sipproxy.auth.pikeshare)
    pike = None
    if config["sipproxy"]["pike_requests"] > 0:
        from sipproxy.auth.pikeshare import PikeTable

        pike = PikeTable(workers)
    from sqlalchemy.orm import configure_mappers

    from ngnpro.models.prefork import supervise

    # once, before the fork: otherwise each worker's first request waits ~50 ms for it
    configure_mappers()
    log.info("starting %d workers", workers)
    return supervise(workers, lambda n: serve(config, build, secret, n, mailboxes, counters, nonces, pike), log)


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the hot path.  Every message allocates many
    small objects, so with the default thresholds a collection ran every few messages and
    the older generations took along the whole heap of modules, SQLAlchemy metadata and
    caches built at start-up: freeze that (never scanned again) and collect young
    objects less often.  Reference counting still frees almost everything at once."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(20000, 20, 50)


def serve(config: Config, build: Callable[..., Any], secret: bytes, worker: int | None, mailboxes: list | None = None,
           counters: ChangeCounters | None = None, nonces: Any = None, pike: Any = None) -> int:
    import gevent
    import gevent.event
    from sqlalchemy.exc import SQLAlchemyError

    if worker is not None:
        setup_logging(config, worker)
    log = logging.getLogger("sipproxy")
    try:
        core, _proxy, services = build(config, secret, worker or 0, mailboxes, counters, nonces, pike)
        core.bind()
    except SQLAlchemyError as exc:
        print(f"sipproxy: database error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"sipproxy: cannot listen: {exc}", file=sys.stderr)
        return 1
    directory, location, dialogs, routing = services
    tune_gc()
    directory.start()
    routing.start()
    location.start()
    dialogs.start()
    accounting = getattr(_proxy, "events", None)  # sipproxy.accounting.service.Accounting
    if accounting is not None:
        accounting.start()
    presence = getattr(_proxy, "presence", None)  # sipproxy.presence.agent.PresenceAgent
    follower = None
    if presence is not None and not worker:  # one follower per proxy: its changes are claimed in SQL
        # (what it does -- re-deciding, xcap-diff, expiry -- is claimed by conditional updates,
        # so several proxies on one database notify once; the workers of one need not all poll)
        from sipproxy.presence.service import PresenceService

        follower = PresenceService(presence, presence.store.sessions,
                                   refresh_interval=config["database"]["poll_interval"])
        follower.start()
    core.start()
    log.info("listening on %s", ", ".join(str(lst) for lst in (*core.transports.listeners, *core.transports.own_udp)))
    done = gevent.event.Event()
    handlers = [gevent.signal_handler(sig, done.set) for sig in (signal.SIGTERM, signal.SIGINT)]
    done.wait()
    # A stop must end the process: a step that hangs (a database that stopped answering, a
    # greenlet that will not die) is logged with where it hung, and the worker exits anyway.
    main = gevent.getcurrent()
    watchdog = gevent.spawn_later(STOP_GRACE, _stuck, main, log)
    signal.alarm(int(STOP_GRACE) + 5)  # even if the hub itself is stuck (SIGALRM ends us)
    core.stop()
    dialogs.stop()
    if accounting is not None:
        accounting.stop()  # what is not sent yet stays in the queue file for the next start
    if follower is not None:
        follower.stop()
    directory.stop()
    routing.stop()
    location.stop()
    watchdog.kill()
    signal.alarm(0)
    del handlers
    log.info("stopped")
    return 0


#: seconds a stopping worker may take (flushing write-backs, closing connections)
STOP_GRACE = 8.0


def _stuck(main, log: logging.Logger) -> None:  # noqa: ANN001 - a greenlet
    import traceback

    where = "".join(traceback.format_stack(main.gr_frame)) if main.gr_frame is not None else "?"
    log.error("stopping took over %.0f s; exiting anyway. It was at:\n%s", STOP_GRACE, where)
    logging.shutdown()
    os._exit(1)


