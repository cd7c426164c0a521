"""``[radius]``: one server or a list (failover order), the port defaulting to 1813, and
clear errors that name the key; a queue file that cannot be opened stops sipproxy in one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ngnpro.models.config import ConfigError, radius_servers, validate
from tests.helpers import ROOT


@pytest.mark.parametrize("server, expected", [
    ("", []),
    ("10.0.0.5", [("10.0.0.5", 1813)]),
    ("radius.example.com:1646", [("radius.example.com", 1646)]),
    (["10.0.0.5", "10.0.0.6:1850", "[2001:db8::1]:1813", "2001:db8::2"],
     [("10.0.0.5", 1813), ("10.0.0.6", 1850), ("2001:db8::1", 1813), ("2001:db8::2", 1813)]),
])
def test_servers_in_failover_order(server, expected):
    config = validate({"radius": {"server": server, "secret": "s"}})
    assert radius_servers(config["radius"]) == expected


@pytest.mark.parametrize("radius, message", [
    ({"server": "10.0.0.5"}, "radius.secret: a RADIUS server is set but no shared secret"),
    ({"server": "10.0.0.5:0", "secret": "s"}, "radius.server: port 0 out of range"),
    ({"server": ["10.0.0.5", ""], "secret": "s"}, "radius.server[1]: empty server address"),
    ({"server": 1813, "secret": "s"}, "radius.server: expected HOST[:PORT] or a list of them"),
    ({"interim_interval": -1}, "radius.interim_interval: -1 out of range"),
    ({"timeout": 0}, "radius.timeout: 0 out of range"),
    ({"retries": 11}, "radius.retries: 11 out of range"),
])
def test_bad_radius_settings_are_named(radius, message):
    with pytest.raises(ConfigError) as err:
        validate({"radius": radius})
    assert message in str(err.value)


def test_unusable_queue_file_is_a_configuration_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    cfg = tmp_path / "msp.toml"
    cfg.write_text(f'[radius]\nserver = "127.0.0.1"\nsecret = "s"\nqueue = "{blocker}/q.sqlite"\n')
    proc = subprocess.run([sys.executable, "-m", "sipproxy", "--config", str(cfg)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sipproxy: configuration error: radius.queue: cannot open")


def test_accounting_on_off_name_the_first_specific_ipv4_listener():
    """NAS-IP-Address of Accounting-On/-Off: a wildcard or an IPv6 listener names no NAS;
    the first specific IPv4 one does; none at all: NAS-Identifier alone."""
    from sipproxy.app import _nas_ip
    from sipproxy.sip.addressing import Listener

    assert _nas_ip([Listener("udp", "0.0.0.0", 5060), Listener("tls", "[2001:db8::1]", 5061),
                    Listener("tcp", "192.0.2.10", 5060), Listener("udp", "192.0.2.11", 5060)]) == "192.0.2.10"
    assert _nas_ip([Listener("udp", "::", 5060), Listener("udp", "0.0.0.0", 5060)]) == ""
    assert _nas_ip([]) == ""
