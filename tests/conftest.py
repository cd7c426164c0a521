"""Fixtures shared by every test: the database URLs the suite runs on.

``db_url`` runs a test once on SQLite and once on every server named by
``MSP_TEST_DATABASE_URLS`` (space-separated SQLAlchemy URLs).  Each test gets a database
holding the current schema and no rows, so tests never see each other's rows; the schema is
migrated once per session and backend and cloned per test (see ``_Templates``).
``empty_db_url`` gives a database without any table, for migration tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

SERVER_URLS = os.environ.get("MSP_TEST_DATABASE_URLS", "").split()


def _backend_id(url: str) -> str:
    return make_url(url).get_backend_name()


DB_PARAMS = ["sqlite"] + SERVER_URLS
DB_IDS = ["sqlite"] + [_backend_id(u) for u in SERVER_URLS]


class _Templates:
    """One migrated database per backend and test session, reused cheaply by each test:
    SQLite by copying the file, MariaDB and PostgreSQL by emptying the session's database
    before each test."""

    def __init__(self, tmp_factory: pytest.TempPathFactory) -> None:
        self.tmp_factory = tmp_factory
        self.made: dict[str, object] = {}
        self.closers: list = []

    def _migrate(self, url: str) -> None:
        from ngnpro.models.database import open_database

        engine, _ = open_database(url)
        engine.dispose()

    def sqlite(self) -> Path:
        if "sqlite" not in self.made:
            path = self.tmp_factory.mktemp("template") / "template.sqlite"
            self._migrate(f"sqlite:///{path}")
            self.made["sqlite"] = path
        return self.made["sqlite"]  # type: ignore[return-value]

    def server(self, base_url: str) -> str:
        if base_url not in self.made:
            scratch = scratch_database(base_url)
            url = scratch.__enter__()
            self.closers.append(scratch)
            self._migrate(url)
            self.made[base_url] = url
        return self.made[base_url]  # type: ignore[return-value]

    def close(self) -> None:
        for scratch in self.closers:
            scratch.__exit__(None, None, None)


@pytest.fixture(scope="session")
def _db_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Templates]:
    templates = _Templates(tmp_path_factory)
    yield templates
    templates.close()


@pytest.fixture(params=DB_PARAMS, ids=DB_IDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path, _db_templates: _Templates) -> Iterator[str]:
    """A URL of a database of its own holding the current schema and no rows, on each
    backend under test."""
    if request.param == "sqlite":
        target = tmp_path / "msp.sqlite"
        shutil.copyfile(_db_templates.sqlite(), target)
        yield f"sqlite:///{target}"
        return
    url = _db_templates.server(request.param)
    _empty_server_database(url)
    yield url


def _empty_server_database(url: str) -> None:
    """Delete every row in one transaction (one fsync; far cheaper than TRUNCATE or a new
    database per test on MariaDB and PostgreSQL)."""
    from ngnpro.models import Base

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
    finally:
        engine.dispose()


@pytest.fixture(params=DB_PARAMS, ids=DB_IDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of a brand-new database without any table, on each backend under test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'msp.sqlite'}"
        return
    with scratch_database(request.param) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path, _db_templates: _Templates) -> str:
    """A SQLite database of its own with the current schema."""
    target = tmp_path / "msp.sqlite"
    shutil.copyfile(_db_templates.sqlite(), target)
    return f"sqlite:///{target}"


class scratch_database:
    """Context manager: create ``msp_<random>`` on the server of ``base_url``, drop it after."""

    def __init__(self, base_url: str) -> None:
        self.base = make_url(base_url)
        self.name = "msp_" + uuid.uuid4().hex[:12]

    def __enter__(self) -> str:
        self.admin = create_engine(self.base, isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            if self.base.get_backend_name() == "postgresql":
                conn.execute(text(f'CREATE DATABASE "{self.name}" ENCODING \'UTF8\' TEMPLATE template0'))
            else:
                conn.execute(text(f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
        return self.base.set(database=self.name).render_as_string(hide_password=False)

    def __exit__(self, *exc: object) -> None:
        with self.admin.connect() as conn:
            if self.base.get_backend_name() == "postgresql":
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
            else:
                conn.execute(text(f"DROP DATABASE IF EXISTS `{self.name}`"))
        self.admin.dispose()


@contextlib.contextmanager
def module_database(param: str, folder: Path) -> Iterator[str]:
    """The database a test module's platform runs on, for one ``DB_PARAMS`` entry: a SQLite
    file in ``folder``, or a scratch database on that server (dropped afterwards)."""
    if param == "sqlite":
        yield f"sqlite:///{folder / 'msp.sqlite'}"
        return
    with scratch_database(param) as url:
        yield url
