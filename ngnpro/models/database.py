"""Engines, sessions and schema upgrades for the one shared database.

Each service calls :func:`open_database` at start: it connects, then brings the schema to
the newest Alembic revision under a lock (a file lock for SQLite, an advisory lock on
PostgreSQL and MariaDB) so that services started together do not race each other.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("msp.database")
# Alembic announces every plugin and context at INFO; one line per actual upgrade is enough.
for _name in ("alembic.runtime.plugins", "alembic.runtime.migration"):
    logging.getLogger(_name).setLevel(logging.WARNING)

MIGRATIONS = Path(__file__).with_name("migrations")


def make_engine(url: str, **kwargs) -> Engine:
    """An engine tuned per backend: SQLite in WAL mode with foreign keys on, a parent folder
    created for its file; MariaDB in utf8mb4; pre-ping on servers so a restarted database
    does not break a long-running service."""
    u = make_url(url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        db = u.database or ""
        if db and db != ":memory:" and not db.startswith("file:"):
            Path(db).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {}).setdefault("timeout", 30)
        engine = create_engine(u, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            if db and db != ":memory:":
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    if backend in ("mysql", "mariadb"):
        if "charset" not in u.query:
            u = u.update_query_dict({"charset": "utf8mb4"})
        kwargs.setdefault("pool_recycle", 3600)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(u, **kwargs)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextlib.contextmanager
def _schema_lock(engine: Engine) -> Iterator[None]:
    backend = engine.url.get_backend_name()
    if backend == "sqlite":
        db = engine.url.database or ""
        if not db or db == ":memory:":
            yield
            return
        lock_path = Path(db).expanduser().resolve().with_suffix(".lock")
        with open(lock_path, "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return
    with engine.connect() as conn:
        if backend == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(727001)"))
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(727001)"))
                conn.commit()
        else:
            conn.execute(text("SELECT GET_LOCK('msp_schema', 120)"))
            try:
                yield
            finally:
                conn.execute(text("SELECT RELEASE_LOCK('msp_schema')"))


def alembic_config(url: str):  # noqa: ANN201 - alembic.config.Config
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine) -> str | None:
    """Bring the schema to the newest revision; a no-op when it is already there."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    url = engine.url.render_as_string(hide_password=False)
    cfg = alembic_config(url)
    head = ScriptDirectory.from_config(cfg).get_current_head()
    with _schema_lock(engine):
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
        if current != head:
            log.info("database schema %s -> %s", current or "empty", head)
            cfg.attributes["engine"] = engine
            command.upgrade(cfg, "head")
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def open_database(url: str, migrate: bool = True, **engine_kwargs) -> tuple[Engine, sessionmaker[Session]]:
    """Connect and (by default) upgrade the schema: what every service does at start."""
    engine = make_engine(url, **engine_kwargs)
    if migrate:
        upgrade(engine)
    return engine, session_factory(engine)


