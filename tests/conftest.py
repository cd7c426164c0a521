"""Fixtures shared by every test: the database URLs the suite runs on.

``db_url`` runs a test once on SQLite and once on every server named by
``MSP_TEST_DATABASE_URLS`` (space-separated SQLAlchemy URLs).  Each test gets a database of
its own (a fresh file, or a fresh database created on the server and dropped afterwards) so
tests never see each other's rows and can run side by side.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

SERVER_URLS = os.environ.get("MSP_TEST_DATABASE_URLS", "").split()


def _backend_id(url: str) -> str:
    return make_url(url).get_backend_name()


DB_PARAMS = ["sqlite"] + SERVER_URLS
DB_IDS = ["sqlite"] + [_backend_id(u) for u in SERVER_URLS]


@pytest.fixture(params=DB_PARAMS, ids=DB_IDS)
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # noqa: ANN001
    """A URL of an empty database of its own, on each backend under test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'msp.sqlite'}"
        return
    with scratch_database(request.param) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path) -> str:  # noqa: ANN001
    return f"sqlite:///{tmp_path / 'msp.sqlite'}"


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
