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
