"""Fixtures for the ngnpro tests: a real ``python -m ngnpro`` per test session and database
backend, with every table emptied before each test (a fresh database without paying a
server start per test).

``ngnpro_server`` gives ``.url`` (``http://127.0.0.1:PORT/ngnpro/``), ``.db_url``,
``.sessionmaker()`` (a SQLAlchemy sessionmaker on the same database), ``.admin`` (the auth
dict of the engine admin), ``.output()`` (the server's log) and ``.config_path``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DB_IDS, DB_PARAMS, module_database
from tests.helpers import Service, free_port, write_config
from tests.ngnpro.harness import ADMIN


@dataclass
class NGNProServer:
    url: str
    host: str
    port: int
    db_url: str
    config_path: Path
    service: Any
    admin: dict = field(default_factory=lambda: dict(ADMIN))
    _engine: Any = None
    _sessionmaker: Any = None

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def sessionmaker(self) -> Any:
        if self._sessionmaker is None:
            from ngnpro.models.database import make_engine, session_factory

            self._engine = make_engine(self.db_url)
            self._sessionmaker = session_factory(self._engine)
        return self._sessionmaker

    def output(self) -> str:
        return self.service.output()

    def wipe(self) -> None:
        """Empty every table (schema and migration state stay)."""
        import ngnpro.models  # noqa: F401 - registers every table
        from ngnpro.models.base import Base

        self.sessionmaker()
        with self._engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def start_ngnpro(tmp: Path, db_url: str, **ngnpro_keys: Any) -> NGNProServer:
    """Start ``python -m ngnpro`` on a free loopback port against ``db_url``."""
    port = free_port()
    keys = {"listen": f"127.0.0.1:{port}", "admin_username": ADMIN["username"],
            "admin_password": ADMIN["password"]}
    keys.update(ngnpro_keys)
    cfg = write_config(tmp / "msp.toml", {"database": {"url": db_url}, "ngnpro": keys,
                                          "logging": {"level": "info"}})
    svc = Service("ngnpro", cfg)
    svc.wait_tcp("127.0.0.1", port)
    scheme = "https" if keys.get("tls_cert") else "http"
    return NGNProServer(url=f"{scheme}://127.0.0.1:{port}/ngnpro/", host="127.0.0.1", port=port, db_url=db_url,
                        config_path=cfg, service=svc)


@pytest.fixture(scope="session", params=DB_PARAMS, ids=DB_IDS)
def ngnpro_module_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NGNProServer]:
    """One server per test session and backend (use ``ngnpro_server`` in tests)."""
    tmp = tmp_path_factory.mktemp("ngnpro")
    with module_database(request.param, tmp) as url:
        server = start_ngnpro(tmp, url)
        try:
            yield server
        finally:
            server.service.stop()
            server.close()


@pytest.fixture
def ngnpro_server(ngnpro_module_server: NGNProServer) -> NGNProServer:
    """The running server, on a database emptied for this test."""
    ngnpro_module_server.wipe()
    return ngnpro_module_server


@pytest.fixture
def db(db_url: str) -> Iterator[Any]:
    """A sessionmaker on a fresh database holding resellers 10 and 20 and customer 11 of
    reseller 10, for the logic tests (see ``tests/ngnpro/logic.py``)."""
    from ngnpro.models.customer import Customer
    from ngnpro.models.database import open_database

    engine, factory = open_database(db_url)
    with factory() as s:
        s.add_all([
            Customer(id=10, username="r10", reseller_active=True),
            Customer(id=11, username="c11", reseller=10),
            Customer(id=20, username="r20", reseller_active=True),
        ])
        s.commit()
    yield factory
    engine.dispose()
