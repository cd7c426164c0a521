"""``python -m ngnpro``: the provisioning server, and ``db upgrade`` for the schema alone."""

from __future__ import annotations

import argparse
import logging
import sys

from ngnpro.models.config import Config, ConfigError, load_config


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ngnpro", description="NGNPro-compatible provisioning server")
    parser.add_argument("--config", help="platform TOML config file (default: built-in defaults)")
    sub = parser.add_subparsers(dest="command")
    db = sub.add_parser("db", help="database schema management")
    db.add_argument("action", choices=["upgrade", "current"])
    db.add_argument("--config", dest="db_config", help="platform TOML config file")
    sub.add_parser("default-config", help="print a config file with every key and its default")
    return parser.parse_args(argv)


def _setup_logging(config: Config) -> None:
    logging.basicConfig(
        level=getattr(logging, config["logging"]["level"].upper()),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        config = load_config(getattr(args, "db_config", None) or args.config)
    except ConfigError as exc:
        print(f"ngnpro: configuration error: {exc}", file=sys.stderr)
        return 2
    _setup_logging(config)
    if args.command == "default-config":
        from ngnpro.models.config import default_toml

        sys.stdout.write(default_toml())
        return 0
    if args.command == "db":
        return _db(config, args.action)
    try:
        from ngnpro.server import serve
    except ImportError as exc:  # the SOAP server is not installed in this tree
        print(f"ngnpro: cannot start the SOAP server: {exc}", file=sys.stderr)
        return 1
    return serve(config)


def _db(config: Config, action: str) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from ngnpro.models.database import current_revision, make_engine, upgrade

    try:
        engine = make_engine(config.database_url)
        if action == "upgrade":
            head = upgrade(engine)
            print(f"database at revision {head}")
        else:
            print(current_revision(engine) or "empty")
    except SQLAlchemyError as exc:
        print(f"ngnpro: database error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
