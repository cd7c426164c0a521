"""``python -m mediaproxy --config F``: the RTP/UDP media relay and its control server."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from ngnpro.models.config import ConfigError, load_config, parse_hostport


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mediaproxy", description="RTP/UDP media relay")
    parser.add_argument("--config", help="platform TOML config file (default: built-in defaults)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        section = config["mediaproxy"]
        host, port = parse_hostport(section["control"], "mediaproxy.control")
    except ConfigError as exc:
        print(f"mediaproxy: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=getattr(logging, config["logging"]["level"].upper()),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    from .control import ControlServer
    from .relay import Relay
    from .store import SummaryStore

    kernel = None
    if section["kernel_forwarding"]:
        from .kernel import KernelError, KernelPath

        if ":" in section["relay_ip"]:
            print("mediaproxy: configuration error: mediaproxy.kernel_forwarding works with an IPv4 relay_ip only",
                  file=sys.stderr)
            return 2
        kernel = KernelPath(section["relay_ip"], f"mediaproxy_{port}")
        try:
            kernel.start()
        except KernelError as exc:
            print(f"mediaproxy: kernel forwarding unavailable: {exc}", file=sys.stderr)
            return 1
    store = SummaryStore(config.database_url)
    low, high = section["port_range"]
    relay = Relay(section["relay_ip"], (low, high), section["media_timeout"], on_end=store.put,
                  advertised_ip=section["advertised_ip"], kernel=kernel)
    try:
        server = ControlServer(relay, host, port)
    except OSError as exc:
        print(f"mediaproxy: cannot listen on {section['control']}: {exc.strerror}", file=sys.stderr)
        return 1

    def _stop(signum: int, frame: object) -> None:
        relay.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    logging.getLogger("mediaproxy").info(
        "relaying on %s ports %d-%d, control on %s:%d, media timeout %ss",
        section["relay_ip"], low, high, host, port, section["media_timeout"])
    try:
        relay.serve_forever()
    finally:
        server.close()
        relay.close()
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
