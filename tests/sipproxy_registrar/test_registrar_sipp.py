"""REGISTER through ``python -m sipproxy`` driven by real sipp processes (tests/sipp/).

Good credentials register (UDP and TCP) and the binding is in the location table with the
source address; a wrong password is answered with a new 401 challenge and stores nothing;
credentials of one user used to register another get 403; a blocked account gets 403.
A restarted proxy still lists a binding made before the restart.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ngnpro.models import open_database
from sipproxy.registrar.location import LocationStore
from tests.helpers import Service, free_port, require_tool, write_config

from .support import DOMAIN, provision

SIPP = Path(__file__).resolve().parents[1] / "sipp"


@pytest.fixture
def proxy(tmp_path: Path):
    require_tool("sipp")
    url = f"sqlite:///{tmp_path / 'msp.sqlite'}"
    engine, factory = provision(url, {"alice": "pw-alice", "bob": "pw-bob", "eve": "pw-eve"}, blocked=("eve",))
    engine.dispose()
    port = free_port()
    cfg = write_config(tmp_path / "msp.toml", {
        "database": {"url": url},
        # sipp 3.6 answers the first challenge and only knows MD5.
        "sipproxy": {"listen": [f"udp:127.0.0.1:{port}", f"tcp:127.0.0.1:{port}"], "digest_algorithms": ["MD5"]},
    })
    svc = Service("sipproxy", cfg).wait_tcp("127.0.0.1", port)
    yield svc, port, url, cfg
    svc.stop()


def sipp_register(tmp_path: Path, port: int, lines: list[str], transport: str = "u1") -> tuple[int, str]:
    """Run register_auth.xml for each injection line; returns (exit status, error log)."""
    inf = tmp_path / f"users-{free_port()}.csv"
    inf.write_text("SEQUENTIAL\n" + "\n".join(lines) + "\n")
    err = inf.with_suffix(".err")
    proc = subprocess.run(
        ["sipp", "-sf", str(SIPP / "register_auth.xml"), "-inf", str(inf), "-m", str(len(lines)),
         "-t", transport, "-i", "127.0.0.1", "-p", str(free_port()), "-nostdin", "-recv_timeout", "5000",
         "-timeout", "30s", "-trace_err", "-error_file", str(err), f"127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    return proc.returncode, err.read_text(errors="replace") if err.exists() else ""


def bindings(url: str, user: str) -> list:
    engine, factory = open_database(url, migrate=False)
    try:
        return LocationStore(factory).lookup(user, DOMAIN)
    finally:
        engine.dispose()


def test_register_good_wrong_mismatch_blocked(proxy, tmp_path: Path) -> None:  # noqa: ANN001
    svc, port, url, _ = proxy
    status, err = sipp_register(tmp_path, port, [f"alice;{DOMAIN};[authentication username=alice password=pw-alice]"])
    assert status == 0, err + svc.output()
    [b] = bindings(url, "alice")
    assert b.contact.startswith("sip:alice@127.0.0.1:") and b.received.startswith("udp:127.0.0.1:")
    assert 3590 < b.expires - b.modified <= 3600  # Expires: 3600 of the scenario

    status, err = sipp_register(tmp_path, port, [f"bob;{DOMAIN};[authentication username=bob password=wrong]"])
    assert status != 0 and "SIP/2.0 401" in err and "nonce=" in err
    assert bindings(url, "bob") == []

    # alice's (valid) credentials used to register bob's address-of-record.
    status, err = sipp_register(tmp_path, port, [f"bob;{DOMAIN};[authentication username=alice password=pw-alice]"])
    assert status != 0 and "SIP/2.0 403" in err
    assert bindings(url, "bob") == []

    status, err = sipp_register(tmp_path, port, [f"eve;{DOMAIN};[authentication username=eve password=pw-eve]"])
    assert status != 0 and "SIP/2.0 403" in err
    assert bindings(url, "eve") == []

    log = svc.output()
    assert "REGISTER alice@example.com" in log and "200 OK" in log
    assert "REGISTER bob@example.com" in log and "403" in log


def test_register_over_tcp_and_restart(proxy, tmp_path: Path) -> None:  # noqa: ANN001
    svc, port, url, cfg = proxy
    status, err = sipp_register(tmp_path, port, [f"bob;{DOMAIN};[authentication username=bob password=pw-bob]"], "t1")
    assert status == 0, err + svc.output()
    [b] = bindings(url, "bob")
    assert b.received.startswith("tcp:127.0.0.1:")
    svc.stop()
    # A new proxy process on the same database sees the binding and refreshes it in place.
    again = Service("sipproxy", cfg).wait_tcp("127.0.0.1", port)
    try:
        assert [x.contact for x in bindings(url, "bob")] == [b.contact]
        status, err = sipp_register(tmp_path, port, [f"alice;{DOMAIN};[authentication username=alice password=pw-alice]"])
        assert status == 0, err + again.output()
        assert len(bindings(url, "alice")) == 1 and len(bindings(url, "bob")) == 1
    finally:
        again.stop()
