"""The [msrprelay] section: defaults, and the refusals that name the key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ngnpro.models.config import ConfigError, load_config, validate
from tests.helpers import ROOT, write_config


def run_relay(tmp_path: Path, section: dict) -> subprocess.CompletedProcess[str]:
    config = write_config(tmp_path / "msp.toml", {"database": {"url": f"sqlite:///{tmp_path}/db.sqlite"},
                                                  "msrprelay": section})
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "mediaproxy.msrp", "--config", str(config)],
                          capture_output=True, text=True, timeout=30, env=env, cwd=tmp_path)


def test_defaults() -> None:
    section = load_config(None)["msrprelay"]
    assert section["listen"] == ["tls:0.0.0.0:2855"]
    assert section["allow_loopback_tcp"] is False
    assert section["digest_algorithms"] == ["SHA-256", "MD5"]


def test_listen_entries_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"msrprelay.listen\[0\]"):
        validate({"msrprelay": {"listen": ["udp:127.0.0.1:2855"]}})


@pytest.mark.parametrize("section, message", [
    ({"listen": ["tcp:127.0.0.1:2855"]}, "msrprelay.listen[0]: tcp: needs msrprelay.allow_loopback_tcp"),
    ({"listen": ["tcp:192.0.2.1:2855"], "allow_loopback_tcp": True},
     "msrprelay.listen[0]: tcp: is allowed on a loopback address only"),
    ({"listen": ["tls:127.0.0.1:2855"]}, "msrprelay.tls_cert: tls: listeners need"),
    ({"listen": ["wss:127.0.0.1:2855"], "tls_cert": "/nonexistent.pem", "tls_key": "/nonexistent.key"},
     "msrprelay.tls_cert: cannot load"),
])
def test_bad_config_exits_2_naming_the_key(tmp_path: Path, section: dict, message: str) -> None:
    result = run_relay(tmp_path, section)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_idle_connections_time_out(tmp_path: Path) -> None:
    """``idle_timeout``: a connection that sends nothing is closed; one that keeps sending
    is not (here empty SENDs to the relay's own URI, answered 481: traffic all the same)."""
    import socket
    import time

    from .client import MsrpClient
    from .conftest import start_relay

    relay = start_relay(tmp_path, idle_timeout=1)
    try:
        quiet = socket.create_connection(("127.0.0.1", relay.tcp))
        busy = MsrpClient("127.0.0.1", relay.tcp)
        assert busy.auth(relay.uri(), "alice", "alice-pw").code == 200
        t0 = time.monotonic()
        quiet.settimeout(5)
        while time.monotonic() - t0 < 1.8:
            _, responses = busy.send([relay.uri(), busy.uri], b"")
            assert responses[0].code == 481
            time.sleep(0.3)
        assert quiet.recv(1) == b""  # closed by the relay (it sent nothing)
        assert 0.9 <= time.monotonic() - t0 <= 3
        assert not busy.closed.is_set()
        quiet.close()
        busy.close()
    finally:
        relay.service.stop()
