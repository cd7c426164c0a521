"""``python -m sipproxy --config F``: the SIP proxy and registrar.

Start-up order matters: the configuration is validated first (a bad one is one line on
stderr and exit status 2), then the database is opened and migrated, then every listening
socket is bound -- before forking, so that with ``[sipproxy] workers`` > 1 each worker gets
its own SO_REUSEPORT socket on the same address while the digest nonce secret is shared.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time

from ngnpro.models.config import Config, ConfigError, load_config
from sipproxy.registrar.cache import ChangeCounters


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sipproxy", description="SIP proxy and registrar")
    parser.add_argument("--config", help="platform TOML config file (default: built-in defaults)")
    return parser.parse_args(argv)


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


def _setup_logging(config: Config, worker: int | None = None) -> None:
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


def build(config: Config, secret: bytes | None = None, worker: int = 0,  # noqa: ANN201
          mailboxes: list | None = None, counters: ChangeCounters | None = None):
    """Assemble one proxy process from the configuration (sockets not bound yet)."""
    from ngnpro.models.database import open_database
    from sipproxy.dialog.store import DialogStore
    from sipproxy.directory.store import Directory
    from sipproxy.proxy.proxy import Proxy
    from sipproxy.registrar.cache import LookupCache
    from sipproxy.registrar.location import LocationStore
    from sipproxy.registrar.registrar import Registrar
    from sipproxy.routing.pipeline import Router
    from sipproxy.runtime.edge import Core
    from sipproxy.sip.digest import DigestAuth

    section = config["sipproxy"]
    _engine, sessions = open_database(config.database_url)
    directory = Directory(sessions, section["domains"],
                          refresh_interval=config["database"]["poll_interval"])
    cache = LookupCache(section["location_cache"], shared=counters) if section["location_cache"] > 0 else None
    location = LocationStore(sessions, write_back=section["location_write_back"], cache=cache)
    # challenges offer the configured algorithms, or MD5 alone to a client learnt not to do
    # SHA-256 (digest_adaptive, see sipproxy.auth.ordering): baresip 1.0 gives up on any
    # challenge naming SHA-256, sipp answers the first challenge and knows only MD5
    auth = DigestAuth(secret, nonce_lifetime=section["nonce_lifetime"],
                      algorithms=tuple(section["digest_algorithms"]) or ("SHA-256", "MD5"))
    registrar = Registrar.from_config(section, directory, location, auth)
    core = Core(section["listen"], tls_cert=section["tls_cert"], tls_key=section["tls_key"],
                reuse_port=section["workers"] > 1, worker=worker, workers=section["workers"],
                mailboxes=mailboxes)
    if cache is not None and counters is not None:
        # contacts added or removed here: the sibling workers' cached look-ups no longer match
        counters.worker = worker
        location.on_change = counters.bump
    if section["overload_delay"] > 0:
        from sipproxy.runtime.overload import Overload

        core.overload = Overload(section["overload_delay"] / 1000.0, section["overload_retry_after"])
    dialogs = DialogStore(sessions)
    router = Router(directory, location, core)
    proxy = Proxy(core, directory, registrar, dialogs, router, media=_media(config))
    core.tu = proxy
    return core, proxy, (directory, location, dialogs)


def _media(config: Config):  # noqa: ANN202 - ProxyMedia | None
    """The media relay client at the proxy's seam, unless ``media_relay = "never"``."""
    policy = config["sipproxy"]["media_relay"]
    if policy == "never":
        return None
    from sipproxy.media.relay import MediaRelays, ProxyMedia

    return ProxyMedia(MediaRelays.from_config(config), policy)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        config = load_config(args.config)
        section = config["sipproxy"]
        if any(s.startswith("tls:") for s in section["listen"]) and not (
                section["tls_cert"] and section["tls_key"]):
            raise ConfigError("sipproxy.listen: a tls: listener needs sipproxy.tls_cert and sipproxy.tls_key")
        for key in ("tls_cert", "tls_key"):
            if section[key] and not os.path.isfile(section[key]):
                raise ConfigError(f"sipproxy.{key}: file {section[key]!r} not found")
    except ConfigError as exc:
        print(f"sipproxy: configuration error: {exc}", file=sys.stderr)
        return 2

    from gevent import monkey

    monkey.patch_all()  # database drivers written in Python cooperate with the hub
    _setup_logging(config)
    log = logging.getLogger("sipproxy")
    workers = config["sipproxy"]["workers"]
    secret = os.urandom(32)
    if workers == 1:
        return _serve(config, secret, None)
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
    from sqlalchemy.orm import configure_mappers

    from ngnpro.models.prefork import supervise

    # once, before the fork: otherwise each worker's first request waits ~50 ms for it
    configure_mappers()
    log.info("starting %d workers", workers)
    return supervise(workers, lambda n: _serve(config, secret, n, mailboxes, counters), log)


def _tune_gc() -> None:
    """Keep the cyclic garbage collector off the hot path.  Every message allocates many
    small objects, so with the default thresholds a collection ran every few messages and
    the older generations took along the whole heap of modules, SQLAlchemy metadata and
    caches built at start-up: freeze that (never scanned again) and collect young
    objects less often.  Reference counting still frees almost everything at once."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(20000, 20, 50)


def _serve(config: Config, secret: bytes, worker: int | None, mailboxes: list | None = None,
           counters: ChangeCounters | None = None) -> int:
    import gevent
    import gevent.event
    from sqlalchemy.exc import SQLAlchemyError

    if worker is not None:
        _setup_logging(config, worker)
    log = logging.getLogger("sipproxy")
    try:
        core, _proxy, services = build(config, secret, worker or 0, mailboxes, counters)
        core.bind()
    except SQLAlchemyError as exc:
        print(f"sipproxy: database error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"sipproxy: cannot listen: {exc}", file=sys.stderr)
        return 1
    directory, location, dialogs = services
    _tune_gc()
    directory.start()
    location.start()
    dialogs.start()
    core.start()
    log.info("listening on %s", ", ".join(str(lst) for lst in core.transports.listeners))
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
    directory.stop()
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


if __name__ == "__main__":
    sys.exit(main())
