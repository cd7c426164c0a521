"""Fixtures for the XCAP tests: one real ``python -m ngnpro`` per test session and database
backend (SQLite, and each server of MSP_TEST_DATABASE_URLS), every table emptied before a
test, and the accounts alice, bob (example.com) and carol (example.org) provisioned with
MD5 and SHA-256 HA1 as the SOAP port stores them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DB_IDS, DB_PARAMS, module_database
from tests.ngnpro.conftest import NGNProServer, start_ngnpro
from tests.xcap.client import XcapClient

ROOT = "/xcap-root"
MAX_DOCUMENT = 65536
PASSWORDS = {"alice@example.com": "alice-pw", "bob@example.com": "bob-pw", "carol@example.org": "carol-pw"}


def _start(tmp: Path, url: str) -> NGNProServer:
    return start_ngnpro(tmp, url, xcap_root=ROOT + "/", xcap_max_document=MAX_DOCUMENT)


@pytest.fixture(scope="session", params=DB_PARAMS, ids=DB_IDS)
def xcap_module_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NGNProServer]:
    tmp = tmp_path_factory.mktemp("xcap")
    with module_database(request.param, tmp) as url:
        server = _start(tmp, url)
        try:
            yield server
        finally:
            server.service.stop()
            server.close()


def provision(server: NGNProServer) -> None:
    from ngnpro.models.sip import SipAccount, SipDomain

    with server.sessionmaker()() as s:
        for domain in ("example.com", "example.org"):
            s.add(SipDomain(domain=domain))
        s.flush()
        for aor, password in PASSWORDS.items():
            user, domain = aor.split("@")
            text = f"{user}:{domain}:{password}".encode()
            s.add(SipAccount(username=user, domain=domain, password=password, ha1=hashlib.md5(text).hexdigest(),
                             ha1_sha256=hashlib.sha256(text).hexdigest()))
        s.commit()


@pytest.fixture
def xcap_server(xcap_module_server: NGNProServer) -> NGNProServer:
    xcap_module_server.wipe()
    provision(xcap_module_server)
    return xcap_module_server


def client_for(server: NGNProServer, aor: str | None, algorithm: str = "MD5", password: str | None = None) -> XcapClient:
    base = f"{server.base}{ROOT}"
    if aor is None:
        return XcapClient(base)
    user, domain = aor.split("@")
    return XcapClient(base, user, domain, PASSWORDS[aor] if password is None else password, algorithm)


@pytest.fixture
def alice(xcap_server: NGNProServer) -> XcapClient:
    return client_for(xcap_server, "alice@example.com")


@pytest.fixture
def bob(xcap_server: NGNProServer) -> XcapClient:
    return client_for(xcap_server, "bob@example.com")
