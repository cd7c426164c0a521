"""The configuration contract: defaults, and errors that name the problem in one line."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest

from ngnpro.models.config import DEFAULTS, ConfigError, default_toml, load_config, validate


def test_empty_file_gives_every_default(tmp_path):
    path = tmp_path / "empty.toml"
    path.write_text("")
    config = load_config(path)
    assert config["database"]["url"] == "sqlite:///var/msp.sqlite"
    assert config["ngnpro"]["listen"] == "127.0.0.1:9200"
    assert config["enumdns"]["enum_tlds"] == ["e164.arpa"]
    assert config["sipproxy"]["listen"] == ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]
    assert config["sipproxy"]["media_relay"] == "nat"
    assert config["mediaproxy"]["port_range"] == [50000, 60000]
    assert config["radius"]["server"] == ""


def test_contract_keys_of_design_md_exist():
    contract = {
        "database": ["url"],
        "ngnpro": ["listen", "admin_username", "admin_password"],
        "enumdns": ["listen", "enum_tlds"],
        "sipproxy": ["listen", "domains", "country_code", "siteconfig", "enum_servers",
                     "dns_servers", "media_relay", "media_relays"],
        "mediaproxy": ["control", "relay_ip", "port_range", "media_timeout"],
        "radius": ["server", "secret"],
    }
    for section, keys in contract.items():
        for key in keys:
            assert key in DEFAULTS[section], f"{section}.{key}"


def test_default_toml_round_trips():
    assert validate(tomllib.loads(default_toml())).data == DEFAULTS


def test_values_override_defaults(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[sipproxy]\ndomains = ["Example.COM"]\nmedia_relay = "always"\n'
                    '[mediaproxy]\nport_range = [40000, 40100]\n')
    config = load_config(path)
    assert config["sipproxy"]["domains"] == ["example.com"]
    assert config["sipproxy"]["media_relay"] == "always"
    assert config["mediaproxy"]["port_range"] == [40000, 40100]
    assert config["ngnpro"]["listen"] == "127.0.0.1:9200"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[bogus]\nx = 1\n", "unknown section [bogus]"),
        ("[ngnpro]\nlisten_port = 1\n", "unknown key ngnpro.listen_port"),
        ('[ngnpro]\nlisten = "127.0.0.1:70000"\n', "ngnpro.listen: port 70000 out of range"),
        ('[ngnpro]\nlisten = "127.0.0.1"\n', "ngnpro.listen: expected HOST:PORT"),
        ("[mediaproxy]\nmedia_timeout = \"30\"\n", "mediaproxy.media_timeout: expected an integer"),
        ('[database]\nurl = "nonsense"\n', "database.url: 'nonsense' is not a database URL"),
        ('[database]\nurl = "oracle://x/y"\n', "database.url: unsupported database 'oracle'"),
        ('[sipproxy]\nlisten = ["sctp:127.0.0.1:5060"]\n', "sipproxy.listen[0]: expected udp:HOST:PORT"),
        ('[sipproxy]\nmedia_relay = "sometimes"\n', "sipproxy.media_relay: expected one of"),
        ("[mediaproxy]\nport_range = [6000, 5000]\n", "mediaproxy.port_range: expected [LOW, HIGH]"),
        ('[mediaproxy]\nrelay_ip = "not-an-ip"\n', "mediaproxy.relay_ip: 'not-an-ip' is not an IP address"),
        ("ngnpro = 1\n", "[ngnpro] must be a table"),
        ("[ngnpro\n", "config file"),
    ],
)
def test_bad_config_is_named(tmp_path, text, expected):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert expected in str(err.value)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[ngnpro]\nlisten_port = 1\n", "unknown key ngnpro.listen_port"),
        ('[database]\nurl = "nonsense"\n', "is not a database URL"),
        ('[enumdns]\nlisten = "127.0.0.1:0"\n', "port 0 out of range"),
    ],
)
def test_cli_bad_config_exits_with_one_line(tmp_path, text, expected):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "ngnpro", "db", "upgrade", "--config", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert expected in lines[0]
    assert "Traceback" not in proc.stderr


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_every_key_is_documented():
    from pathlib import Path

    from ngnpro.models.config import SCHEMA

    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    for section, keys in SCHEMA.items():
        assert f"## [{section}]" in doc, section
        body = doc.split(f"## [{section}]", 1)[1].split("\n## ", 1)[0]
        for key in keys:
            assert f"| `{key}` |" in body, f"{section}.{key} is not in docs/configuration.md"
