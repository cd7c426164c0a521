"""``python -m enumdns --config F``: the authoritative ENUM and zone DNS server."""

from __future__ import annotations

import argparse
import logging
import sys

from ngnpro.models.config import ConfigError, load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m enumdns", description="authoritative ENUM/DNS server")
    parser.add_argument("--config", help="platform TOML config file (default: built-in defaults)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"enumdns: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=getattr(logging, config["logging"]["level"].upper()),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    from sqlalchemy.exc import SQLAlchemyError

    from .server import serve

    try:
        return serve(config)
    except SQLAlchemyError as exc:
        print(f"enumdns: database error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
