"""``python -m mediaproxy --config F``: the RTP/UDP media relay and its control server."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import TYPE_CHECKING, Literal

from ngnpro.models.config import ConfigError, load_config, parse_hostport

if TYPE_CHECKING:
    from .kernel import KernelPath


def start_kernel(setting: bool | str, relay_ip: str, control_port: int) -> KernelPath | None | Literal[False]:
    """The kernel path if it can run, else ``None`` (user space) with one log line saying
    why; ``False`` when ``kernel_forwarding = true`` asked for it and it cannot run (the
    operator asked for it explicitly, so that is an error, not a silent fallback)."""
    import shutil

    from .kernel import KernelError, KernelPath, decide, has_net_admin

    log = logging.getLogger("mediaproxy")
    use, why = decide(setting, relay_ip, has_net_admin(), shutil.which("nft"))
    if use:
        kernel = KernelPath(relay_ip, f"mediaproxy_{control_port}", background=True)
        try:
            kernel.start()
        except KernelError as exc:
            use, why = False, str(exc)
        else:
            log.info("kernel forwarding on: locked flows are forwarded by nftables (table %s)", kernel.table)
            return kernel
    if setting is True:
        print(f"mediaproxy: kernel_forwarding = true, but the kernel path cannot run: {why}", file=sys.stderr)
        return False
    if setting == "auto":
        log.warning("kernel forwarding off, relaying in user space: %s", why)
    return None


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

    kernel = start_kernel(section["kernel_forwarding"], section["relay_ip"], port)
    if kernel is False:
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
