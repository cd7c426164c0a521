"""``python -m mediaproxy.msrp --config F``: the MSRP relay (RFC 4976)."""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()  # before ssl and socket are used: the TLS contexts below must be gevent's

import argparse  # noqa: E402
import ipaddress  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import ssl  # noqa: E402
import sys  # noqa: E402

from ngnpro.models.config import Config, ConfigError, load_config, parse_hostport  # noqa: E402

from .server import Listener  # noqa: E402


def listeners_of(config: Config) -> list[Listener]:
    """The ``[msrprelay] listen`` entries, checked against the TLS and loopback settings."""
    section = config["msrprelay"]
    out = []
    for i, entry in enumerate(section["listen"]):
        kind, _, rest = entry.partition(":")
        kind = kind.lower()
        host, port = parse_hostport(rest, f"msrprelay.listen[{i}]")
        if kind in ("tcp", "ws"):
            if not section["allow_loopback_tcp"]:
                raise ConfigError(f"msrprelay.listen[{i}]: {kind}: needs msrprelay.allow_loopback_tcp = true "
                                  "(plain TCP is for tests on loopback)")
            try:
                loopback = ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = host == "localhost"
            if not loopback:
                raise ConfigError(f"msrprelay.listen[{i}]: {kind}: is allowed on a loopback address only")
        elif not section["tls_cert"] or not section["tls_key"]:
            raise ConfigError(f"msrprelay.tls_cert: {kind}: listeners need msrprelay.tls_cert and msrprelay.tls_key")
        out.append(Listener(kind, host, port))
    if not out:
        raise ConfigError("msrprelay.listen: no listener")
    return out


def tls_contexts(section: dict) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    server = None
    if section["tls_cert"]:
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            server.load_cert_chain(section["tls_cert"], section["tls_key"])
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"msrprelay.tls_cert: cannot load the certificate and key: {exc}") from None
    client = ssl.create_default_context(cafile=section["tls_ca_file"] or None)
    return server, client


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mediaproxy.msrp", description="MSRP relay (RFC 4976)")
    parser.add_argument("--config", help="platform TOML config file (default: built-in defaults)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        section = config["msrprelay"]
        listeners = listeners_of(config)
        server_ctx, client_ctx = tls_contexts(section)
        if section["min_expires"] > section["max_expires"]:
            raise ConfigError("msrprelay.min_expires: larger than msrprelay.max_expires")
    except ConfigError as exc:
        print(f"mediaproxy.msrp: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=getattr(logging, config["logging"]["level"].upper()),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    from ngnpro.models.digest import DigestAuth

    from .accounts import Accounts
    from .auth import Authenticator
    from .forwarding import Reservations
    from .server import RelayServer

    accounts = Accounts(config.database_url)
    digest = DigestAuth(nonce_lifetime=section["nonce_lifetime"], algorithms=section["digest_algorithms"])

    def authenticator(reservations: Reservations) -> Authenticator:
        return Authenticator(digest, reservations, accounts.ha1, accounts.domain_of, section["realm"],
                             section["min_expires"], section["max_expires"], section["advertised_host"])

    acm = None
    if section["control"]:
        from .acm import AcmSessions

        endpoints = {}
        for lst in listeners:
            scheme = {"tls": "msrps", "tcp": "msrp"}.get(lst.kind)
            if scheme and scheme not in endpoints:
                endpoints[scheme] = (section["advertised_host"] or lst.host, lst.port)
        if not endpoints:
            print("mediaproxy.msrp: configuration error: msrprelay.control: the ACM needs a tls: or tcp: listener",
                  file=sys.stderr)
            return 2
        from ..store import SummaryStore

        store = SummaryStore(config.database_url)
        acm = AcmSessions(endpoints, section["acm_idle_timeout"], on_end=store.put,
                          name=f"msrp-acm {section['control']}"[:128])
    relay = RelayServer(listeners, authenticator, tls_context=server_ctx, client_context=client_ctx,
                        idle_timeout=section["idle_timeout"], transaction_timeout=section["transaction_timeout"],
                        max_connections=section["max_connections"],
                        max_connections_per_ip=section["max_connections_per_ip"],
                        max_head_bytes=section["max_head_bytes"], max_headers=section["max_headers"],
                        allow_loopback_tcp=section["allow_loopback_tcp"], acm=acm,
                        own_hosts=tuple(h.lower() for h in (section["advertised_host"],) if h))
    try:
        relay.start()
        if acm is not None:
            from .control import serve_control

            host, port = parse_hostport(section["control"], "msrprelay.control")
            control = serve_control(acm, host, port)
            logging.getLogger("mediaproxy.msrp").info("ACM control on %s:%d", host, control.server_port)
    except OSError as exc:
        print(f"mediaproxy.msrp: cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return 1
    import gevent

    def _stop(signum: int, frame: object) -> None:
        gevent.spawn(relay.stop)

    gevent.signal_handler(signal.SIGTERM, _stop, None, None)
    gevent.signal_handler(signal.SIGINT, _stop, None, None)
    try:
        relay.serve_forever()
    finally:
        accounts.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
