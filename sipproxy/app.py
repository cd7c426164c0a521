"""``python -m sipproxy --config F``: the SIP proxy and registrar.

Start-up order matters: the configuration is validated first (a bad one is one line on
stderr and exit status 2), then the database is opened and migrated, then every listening
socket is bound -- before forking, so that with ``[sipproxy] workers`` > 1 each worker gets
its own SO_REUSEPORT socket on the same address while the digest nonce secret is shared.

This module is the wiring: :func:`build` assembles one proxy process from the configuration;
:mod:`sipproxy.runtime.workers` runs it (logging, worker processes, signals, stopping).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ngnpro.models.config import Config, ConfigError, load_config
from sipproxy.registrar.cache import ChangeCounters
from sipproxy.routing.hooks import HookError, Hooks

#: seconds a SQLite statement waits for another writer's lock before failing
SQLITE_BUSY_TIMEOUT = 0.25


def version() -> str:
    """``msp-routing 0.1.0, message layer compiled (mypyc)`` (or ``pure Python``): what
    ``--version`` prints."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    from sipproxy.sip import build

    try:
        number = dist_version("msp-routing")
    except PackageNotFoundError:  # (run from a source tree that was never installed)
        number = "unknown"
    return f"msp-routing {number}, message layer {build()}"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sipproxy", description="SIP proxy and registrar")
    parser.add_argument("--config", help="platform TOML config file (default: built-in defaults)")
    parser.add_argument("--version", action="store_true",
                        help="print the version and whether the message layer is compiled, and exit")
    return parser.parse_args(argv)


def build(config: Config, secret: bytes | None = None, worker: int = 0,  # noqa: ANN201
          mailboxes: list | None = None, counters: ChangeCounters | None = None, nonces: Any = None,
          pike: Any = None):
    """Assemble one proxy process from the configuration (sockets not bound yet);
    ``nonces``: the digest nonce-counts the workers share (sipproxy.auth.nonces); ``pike``:
    their PIKE table (sipproxy.auth.pikeshare)."""
    from ngnpro.models.database import open_database
    from sipproxy.dialog.prepaid import PrepaidCalls
    from sipproxy.dialog.store import DialogStore
    from sipproxy.directory.routing import RoutingData
    from sipproxy.directory.store import Directory
    from sipproxy.proxy.proxy import Proxy
    from sipproxy.registrar.cache import LookupCache
    from sipproxy.registrar.location import LocationStore
    from sipproxy.registrar.registrar import Registrar
    from sipproxy.routing.numbers import NumberPlan
    from sipproxy.routing.pipeline import Router
    from sipproxy.runtime.dns import DnsResolver
    from sipproxy.runtime.edge import Core
    from sipproxy.sip.digest import DigestAuth

    section = config["sipproxy"]
    # SQLite waits for another writer's lock by busy-waiting in the C library, which blocks
    # the whole worker (every call in progress) while it lasts: wait briefly, then answer
    # 503 (see sipproxy.proxy.unavailable) instead of the driver's default 30 s
    sqlite = config.database_url.startswith("sqlite")
    _engine, sessions = open_database(
        config.database_url, **({"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT}} if sqlite else {}))
    directory = Directory(sessions, section["domains"],
                          refresh_interval=config["database"]["poll_interval"],
                          quota_refresh=section["quota_refresh"])
    cache = LookupCache(section["location_cache"], shared=counters) if section["location_cache"] > 0 else None
    location = LocationStore(sessions, write_back=section["location_write_back"], cache=cache)
    # challenges offer the configured algorithms, or MD5 alone to a client learnt not to do
    # SHA-256 (digest_adaptive, see sipproxy.auth.ordering): baresip 1.0 gives up on any
    # challenge naming SHA-256, sipp answers the first challenge and knows only MD5
    auth = DigestAuth(secret, nonce_lifetime=section["nonce_lifetime"],
                      algorithms=tuple(section["digest_algorithms"]) or ("SHA-256", "MD5"), counts=nonces)
    registrar = Registrar.from_config(section, directory, location, auth)
    core = Core(section["listen"], tls_cert=section["tls_cert"], tls_key=section["tls_key"],
                reuse_port=section["workers"] > 1, worker=worker, workers=section["workers"],
                mailboxes=mailboxes, worker_ports=section["worker_ports"])
    if cache is not None and counters is not None:
        # contacts added or removed here: the sibling workers' cached look-ups no longer match
        counters.worker = worker
        location.on_change = counters.bump
    if section["overload_delay"] > 0:
        from sipproxy.runtime.overload import Overload

        core.overload = Overload(section["overload_delay"] / 1000.0, section["overload_retry_after"])
    prepaid = PrepaidCalls(_engine, max_duration=section["max_call_duration"])
    dialogs = DialogStore(sessions, prepaid=prepaid, max_duration=section["max_call_duration"])
    routing = RoutingData(sessions, refresh_interval=config["database"]["poll_interval"])
    dns = DnsResolver.from_config(config, transports={lst.transport for lst in core.transports.listeners})
    core.dns = dns
    router = Router(directory, location, core, Hooks(section["siteconfig"]),
                    server_domain=section["server_domain"], data=routing, resolver=dns,
                    plan=NumberPlan.from_config(section),
                    emergency_numbers=section["emergency_numbers"],
                    outgoing_timeout=section["outgoing_timeout"],
                    caller_id_header=section["caller_id_header"],
                    max_diversions=section["max_diversions"])
    router.rating = prepaid.rate
    proxy = Proxy(core, directory, registrar, dialogs, router, media=_media(config),
                  failover_timeout=section["failover_timeout"],
                  session_expires=section["session_expires"], session_min_se=section["session_min_se"],
                  events=_accounting(config, sessions, worker, core.transports.listeners),
                  presence=_presence(config, core, sessions, directory))
    if section["pike_requests"] > 0:
        from sipproxy.auth.pike import Pike
        from sipproxy.auth.pikeshare import SharedPike

        # trusted peers and PSTN gateways (by source address) are never counted
        limits = (section["pike_requests"], section["pike_window"], section["pike_block"])
        exempt = {"exempt": section["pike_exempt"],
                  "trusted": lambda ip: router.trusted_source(ip)[0] is not None}
        core.enable_pike(Pike(*limits, **exempt) if pike is None
                         else SharedPike(*limits, table=pike, worker=worker, **exempt))
    dialogs.on_deadline = proxy.calls.on_deadline
    core.tu = proxy
    return core, proxy, (directory, location, dialogs, routing)


def _presence(config: Config, core, sessions, directory):  # noqa: ANN001, ANN202 - PresenceAgent | None
    """The presence agent at the proxy's seam unless ``[sipproxy] presence = false``."""
    section = config["sipproxy"]
    if not section["presence"]:
        return None
    from sipproxy.presence.agent import PresenceAgent
    from sipproxy.presence.store import PresenceStore
    from sipproxy.presence.subscription import Settings

    settings = Settings(min_expires=section["presence_min_expires"],
                        max_expires=section["presence_max_expires"],
                        default_expires=section["presence_default_expires"],
                        max_per_watcher=section["presence_max_subscriptions_per_watcher"],
                        max_per_presentity=section["presence_max_subscriptions_per_publisher"],
                        max_body=section["presence_max_pidf_bytes"])
    return PresenceAgent(core, PresenceStore(sessions), directory, settings, xcap_root=_xcap_root(config))


def _xcap_root(config: Config) -> str:
    """The XCAP root URI xcap-diff documents name: ngnpro's listen address and its
    ``xcap_root`` path (``/xcap-root/`` where the key is absent), https with TLS."""
    ngnpro = config["ngnpro"]
    path = str(ngnpro.get("xcap_root", "/xcap-root/") or "/xcap-root/")
    path = ("/" + path.lstrip("/")).rstrip("/") + "/"
    scheme = "https" if ngnpro.get("tls_cert") and ngnpro.get("tls_key") else "http"
    return f"{scheme}://{ngnpro['listen']}{path}"


def _accounting(config: Config, sessions, worker: int, listeners=()):  # noqa: ANN001, ANN202 - Accounting | None
    """The accounting at the proxy's seam: the ``accounting`` table's rows (``[sipproxy]
    accounting``, on by default: the monthly quota and SipPort's getCalls read them) and,
    when ``[radius] server`` is set, the RADIUS records; None when neither (the proxy then
    does no accounting work at all).  Worker 0 sends the queued records and rows, and its
    Accounting-On/-Off name the first IPv4 address the proxy listens on (``listeners``)."""
    from ngnpro.models.config import radius_servers

    radius = config["radius"]
    servers = radius_servers(radius)
    if not servers and not config["sipproxy"]["accounting"]:
        return None
    from sipproxy.accounting.radius import RadiusClient, RecordQueue
    from sipproxy.accounting.service import Accounting
    from sipproxy.accounting.store import AccountingStore

    client = RadiusClient(servers, radius["secret"], timeout=radius["timeout"],
                          retries=radius["retries"]) if servers else None
    return Accounting(RecordQueue(radius["queue"]), client, AccountingStore(sessions),
                      interim_interval=radius["interim_interval"],
                      nas_identifier=radius["nas_identifier"], nas_ip=_nas_ip(listeners), drain=worker == 0)


def _nas_ip(listeners) -> str:  # noqa: ANN001 - sipproxy.sip.addressing.Listener
    """The first listener address that is a specific IPv4 address (RADIUS's NAS-IP-Address
    is IPv4; a wildcard names no NAS), else "" (NAS-Identifier alone names it)."""
    import ipaddress

    for lst in listeners:
        try:
            ip = ipaddress.ip_address(str(lst.host).strip("[]"))
        except ValueError:
            continue
        if ip.version == 4 and not ip.is_unspecified:
            return str(ip)
    return ""


def _check_radius_queue(config: Config) -> None:
    """With RADIUS accounting on, the queue file must open (a configuration error if not)."""
    from ngnpro.models.config import radius_servers

    radius = config["radius"]
    if not radius_servers(radius) and not config["sipproxy"]["accounting"]:
        return
    import sqlite3

    from sipproxy.accounting.radius import RecordQueue

    try:
        RecordQueue(radius["queue"]).close()
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"radius.queue: cannot open {radius['queue']!r}: {exc}") from None


def _media(config: Config):  # noqa: ANN202 - ProxyMedia | CombinedMedia | None
    """The media relay client at the proxy's seam, unless ``media_relay = "never"``; with
    the MSRP ACM beside it when one is configured (``msrp_acm``, or the ``[msrprelay]
    control`` address)."""
    policy = config["sipproxy"]["media_relay"]
    if policy == "never":
        return None
    from sipproxy.media.relay import MediaRelays, ProxyMedia

    rtp = ProxyMedia(MediaRelays.from_config(config), policy)
    acm_address = config["sipproxy"]["msrp_acm"] or config["msrprelay"]["control"]
    if not acm_address:
        return rtp
    from sipproxy.media.acm import AcmClient, CombinedMedia, ProxyAcm

    return CombinedMedia(rtp, ProxyAcm(AcmClient(acm_address), policy))


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.version:
        print(version())
        return 0
    try:
        config = load_config(args.config)
        section = config["sipproxy"]
        if any(s.startswith("tls:") for s in section["listen"]) and not (
                section["tls_cert"] and section["tls_key"]):
            raise ConfigError("sipproxy.listen: a tls: listener needs sipproxy.tls_cert and sipproxy.tls_key")
        for key in ("tls_cert", "tls_key"):
            if section[key] and not os.path.isfile(section[key]):
                raise ConfigError(f"sipproxy.{key}: file {section[key]!r} not found")
        Hooks(section["siteconfig"])  # a broken site hook stops the start, in one line
        _check_radius_queue(config)
    except (ConfigError, HookError) as exc:
        print(f"sipproxy: configuration error: {exc}", file=sys.stderr)
        return 2

    from gevent import monkey

    monkey.patch_all()  # database drivers written in Python cooperate with the hub
    from sipproxy.runtime.workers import run

    return run(config, build)


if __name__ == "__main__":
    sys.exit(main())
