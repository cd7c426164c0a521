"""The platform's one configuration file (TOML), shared by every service.

Every key has a default so that an empty file runs the whole platform on SQLite and
loopback.  The schema below is the contract of DESIGN.md: other tools write these keys,
so keys are only ever added, never renamed.  Anything the schema does not know, or a value
of the wrong type or out of range, is a :class:`ConfigError` whose message names the key:
an operator must never start a half-configured platform.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ConfigError", "Config", "load_config", "parse_hostport", "radius_servers", "DEFAULTS",
           "default_toml"]


class ConfigError(Exception):
    """A configuration problem, with a message that names the offending key."""


Validator = Callable[[str, Any], Any]


def parse_hostport(value: str, key: str = "listen") -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT`` for IPv6) and check the port is 1..65535."""
    if not isinstance(value, str) or ":" not in value:
        raise ConfigError(f"{key}: expected HOST:PORT, got {value!r}")
    host, _, port_s = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise ConfigError(f"{key}: missing host in {value!r}")
    try:
        port = int(port_s)
    except ValueError:
        raise ConfigError(f"{key}: port {port_s!r} is not a number") from None
    if not 1 <= port <= 65535:
        raise ConfigError(f"{key}: port {port} out of range 1-65535")
    return host, port


def _str(key: str, v: Any) -> str:
    if not isinstance(v, str):
        raise ConfigError(f"{key}: expected a string, got {type(v).__name__}")
    return v


def _int(lo: int | None = None, hi: int | None = None) -> Validator:
    def check(key: str, v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{key}: expected an integer, got {type(v).__name__}")
        if lo is not None and v < lo or hi is not None and v > hi:
            raise ConfigError(f"{key}: {v} out of range {lo}-{hi}")
        return v

    return check


def _bool(key: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(f"{key}: expected true or false, got {v!r}")
    return v


def _bool_or(*choices: str) -> Validator:
    """true, false, or one of the named words (``"auto"``): a switch that grew a default
    which decides by itself, without breaking files that say true or false."""
    def check(key: str, v: Any) -> bool | str:
        if isinstance(v, bool) or v in choices:
            return v
        raise ConfigError(f"{key}: expected true, false or {' or '.join(repr(c) for c in choices)}, got {v!r}")

    return check


def _choice(*choices: str) -> Validator:
    def check(key: str, v: Any) -> str:
        if v not in choices:
            raise ConfigError(f"{key}: expected one of {', '.join(choices)}, got {v!r}")
        return v

    return check


def _list(item: Validator) -> Validator:
    def check(key: str, v: Any) -> list:
        if not isinstance(v, list):
            raise ConfigError(f"{key}: expected a list, got {type(v).__name__}")
        return [item(f"{key}[{i}]", x) for i, x in enumerate(v)]

    return check


def _hostport(key: str, v: Any) -> str:
    parse_hostport(_str(key, v), key)
    return v


def _msrp_listen(key: str, v: Any) -> str:
    """``[msrprelay] listen`` entries: tls:, tcp:, ws: or wss: HOST:PORT."""
    v = _str(key, v)
    proto, sep, rest = v.partition(":")
    if not sep or proto.lower() not in ("tls", "tcp", "ws", "wss"):
        raise ConfigError(f"{key}: expected tls:HOST:PORT, tcp:HOST:PORT, ws:HOST:PORT or wss:HOST:PORT, got {v!r}")
    parse_hostport(rest, key)
    return v


def _sip_listen(key: str, v: Any) -> str:
    v = _str(key, v)
    proto, sep, rest = v.partition(":")
    if not sep or proto.lower() not in ("udp", "tcp", "tls"):
        raise ConfigError(f"{key}: expected udp:HOST:PORT, tcp:HOST:PORT or tls:HOST:PORT, got {v!r}")
    parse_hostport(rest, key)
    return v


#: the RADIUS accounting port (RFC 2866), for a ``[radius] server`` given without one
RADIUS_ACCT_PORT = 1813


def _radius_host(key: str, v: Any) -> tuple[str, int]:
    v = _str(key, v).strip()
    if not v:
        raise ConfigError(f"{key}: empty server address")
    bare = v[1:-1] if v.startswith("[") and v.endswith("]") else v
    if ":" not in v or (v.count(":") > 1 and not v.startswith("[")):  # HOST, or a bare IPv6 address
        return bare, RADIUS_ACCT_PORT
    return parse_hostport(v, key)


def _radius_server(key: str, v: Any) -> str | list[str]:
    """``[radius] server``: "" (no RADIUS accounting), one HOST[:PORT], or a list of them
    (failover in order); the port defaults to 1813."""
    if isinstance(v, str):
        if v.strip():
            _radius_host(key, v)
        return v
    if isinstance(v, list):
        for i, item in enumerate(v):
            _radius_host(f"{key}[{i}]", item)
        return v
    raise ConfigError(f"{key}: expected HOST[:PORT] or a list of them, got {type(v).__name__}")


def radius_servers(section: dict[str, Any]) -> list[tuple[str, int]]:
    """The ``[radius] server`` setting as (host, port) pairs, in failover order."""
    value = section["server"]
    items = [value] if isinstance(value, str) else list(value)
    return [_radius_host("radius.server", x) for x in items if x.strip()]


def _ip(key: str, v: Any) -> str:
    try:
        ipaddress.ip_address(_str(key, v))
    except ValueError:
        raise ConfigError(f"{key}: {v!r} is not an IP address") from None
    return v


def _db_url(key: str, v: Any) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    v = _str(key, v)
    try:
        url = make_url(v)
    except ArgumentError:
        raise ConfigError(f"{key}: {v!r} is not a database URL") from None
    if url.get_backend_name() not in ("sqlite", "mysql", "mariadb", "postgresql"):
        raise ConfigError(f"{key}: unsupported database {url.get_backend_name()!r} (sqlite, mysql, postgresql)")
    return v


def _port_range(key: str, v: Any) -> list[int]:
    v = _list(_int(1024, 65535))(key, v)
    if len(v) != 2 or v[0] >= v[1]:
        raise ConfigError(f"{key}: expected [LOW, HIGH] with LOW < HIGH, got {v!r}")
    return v


def _network(key: str, v: Any) -> str:
    try:
        ipaddress.ip_network(_str(key, v).strip(), strict=False)
    except ValueError:
        raise ConfigError(f"{key}: {v!r} is not an IP address or network") from None
    return v


def _domain(key: str, v: Any) -> str:
    v = _str(key, v).lower()
    if not v or any(not label or len(label) > 63 for label in v.split(".")):
        raise ConfigError(f"{key}: {v!r} is not a domain name")
    return v


def _dial_string(key: str, v: Any) -> str:
    v = _str(key, v).strip()
    if not v or not all(ch.isdigit() or ch in "*#" for ch in v):
        raise ConfigError(f"{key}: {v!r} is not a dialled number (digits, * and #)")
    return v


def _digits(pattern: str, what: str) -> Validator:
    compiled = re.compile(pattern)

    def check(key: str, v: Any) -> str:
        v = _str(key, v)
        if not compiled.fullmatch(v):
            raise ConfigError(f"{key}: expected {what}, got {v!r}")
        return v

    return check


def _regexp(key: str, v: Any) -> str:
    v = _str(key, v)
    if not v:
        raise ConfigError(f"{key}: expected a regular expression, got an empty string")
    try:
        re.compile(v)
    except re.error as exc:
        raise ConfigError(f"{key}: {v!r} is not a regular expression ({exc})") from None
    return v


def _seconds(lo: float, hi: float) -> Validator:
    def check(key: str, v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ConfigError(f"{key}: expected a number of seconds, got {v!r}")
        if not lo <= v <= hi:
            raise ConfigError(f"{key}: {v} out of range {lo}-{hi}")
        return float(v)

    return check


def _log_level(key: str, v: Any) -> str:
    return _choice("debug", "info", "warning", "error")(key, str(v).lower())


#: section -> key -> (default, validator)
SCHEMA: dict[str, dict[str, tuple[Any, Validator]]] = {
    "database": {
        "url": ("sqlite:///var/msp.sqlite", _db_url),
        "poll_interval": (0.25, lambda k, v: _float_pos(k, v)),
    },
    "logging": {
        "level": ("info", _log_level),
    },
    "ngnpro": {
        "listen": ("127.0.0.1:9200", _hostport),
        "admin_username": ("admin", _str),
        "admin_password": ("admin", _str),
        "tls_cert": ("", _str),
        "tls_key": ("", _str),
        "store_clear_text_passwords": (True, _bool),
        "max_body_bytes": (1048576, _int(1024)),
        "workers": (1, _int(1, 64)),
        # a worker past this resident memory (MB) is replaced by a fresh fork; 0: never
        # (docs/reliability.md finding 5: libxml2's name dictionary never shrinks)
        "worker_max_rss": (160, _int(0, 1048576)),
        # a worker that has answered this many requests is replaced; 0: never
        "worker_max_requests": (0, _int(0, 10**9)),
        "xcap_root": ("/xcap-root/", lambda k, v: _xcap_root(k, v)),
        "xcap_max_document": (1048576, _int(1024, 64 * 1048576)),
        # lifetime (s) of a PresencePort publication (docs/presence.md "PresencePort")
        "presence_port_expires": (604800, _int(60, 31536000)),
    },
    "enumdns": {
        "listen": ("127.0.0.1:5353", _hostport),
        "enum_tlds": (["e164.arpa"], _list(_domain)),
        "workers": (1, _int(1, 64)),
        "soa_email": ("hostmaster.localhost", _str),
        "nameservers": ([], _list(_domain)),
        "cache_size": (200000, _int(100)),
    },
    "sipproxy": {
        "listen": (["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"], _list(_sip_listen)),
        "tls_cert": ("", _str),
        "tls_key": ("", _str),
        "domains": ([], _list(_domain)),
        "country_code": ("31", _digits(r"[1-9][0-9]{0,2}", "1 to 3 digits, the first not 0 (E.164 country code)")),
        "international_prefix": ("00", _digits(r"[0-9]{1,4}", "1 to 4 digits (the international call prefix)")),
        "pstn_regexp": ("00[1-9][0-9]{6,}", _regexp),
        "local_pstn_regexp": ("0[1-9][0-9]{4,}", _regexp),
        "siteconfig": ("siteconfig", _str),
        "server_domain": ("", lambda k, v: v if v == "" else _domain(k, v)),
        "outgoing_timeout": (60.0, _seconds(1, 3600)),
        "failover_timeout": (5.0, _seconds(0, 60)),
        "caller_id_header": ("pai", _choice("pai", "rpid")),
        "enum_servers": ([], _list(_hostport)),
        "dns_servers": ([], _list(_hostport)),
        "dns_timeout": (1.0, _seconds(0.05, 30)),
        "dns_cache_size": (10000, _int(100, 10000000)),
        "media_relay": ("nat", _choice("always", "nat", "never")),
        "media_relays": ([], _list(_hostport)),
        "msrp_acm": ("", lambda k, v: v if v == "" else _hostport(k, v)),
        "workers": (1, _int(1, 64)),
        # first of the per-worker UDP ports (worker n: worker_ports + n) named in our Via
        # and Record-Route, so that answers reach the worker that sent; 0: off
        "worker_ports": (0, _int(0, 65535)),
        "min_expires": (60, _int(1, 86400)),
        "max_expires": (3600, _int(1, 604800)),
        "default_expires": (3600, _int(1, 604800)),
        "nonce_lifetime": (300, _int(10, 86400)),
        "realm": ("", _str),
        "digest_algorithms": (["SHA-256", "MD5"], _list(_choice("SHA-256", "MD5"))),
        "digest_adaptive": (True, _bool),
        "digest_md5_only_domains": ([], _list(_domain)),
        "location_write_back": (1.0, lambda k, v: _float_pos(k, v)),
        "location_cache": (1.0, lambda k, v: _float_pos(k, v)),
        "overload_delay": (250.0, lambda k, v: _float_pos(k, v)),
        "overload_retry_after": (5, _int(1, 3600)),
        "emergency_numbers": (["112", "911"], _list(_dial_string)),
        "max_diversions": (5, _int(0, 99)),
        "quota_refresh": (5.0, _seconds(0, 3600)),
        "pike_requests": (0, _int(0, 1000000)),
        "pike_window": (2.0, _seconds(0.1, 3600)),
        "pike_block": (120.0, _seconds(1, 86400)),
        "pike_exempt": ([], _list(_network)),
        "max_call_duration": (0, _int(0, 604800)),
        "accounting": (True, _bool),
        "session_expires": (0, _int(0, 86400)),
        "session_min_se": (90, _int(1, 86400)),
        # presence agent (docs/presence.md "Presence agent")
        "presence": (True, _bool),
        "presence_min_expires": (60, _int(1, 86400)),
        "presence_max_expires": (3600, _int(1, 604800)),
        "presence_default_expires": (3600, _int(1, 604800)),
        "presence_max_subscriptions_per_watcher": (100, _int(1, 1000000)),
        "presence_max_subscriptions_per_publisher": (1000, _int(1, 1000000)),
        "presence_max_pidf_bytes": (65536, _int(512, 1048576)),
    },
    "mediaproxy": {
        "control": ("127.0.0.1:25060", _hostport),
        "relay_ip": ("127.0.0.1", _ip),
        "advertised_ip": ("", lambda k, v: v if v == "" else _ip(k, v)),
        "port_range": ([50000, 60000], _port_range),
        "media_timeout": (30, _int(1, 86400)),
        "kernel_forwarding": ("auto", _bool_or("auto")),
    },
    "msrprelay": {
        "listen": (["tls:0.0.0.0:2855"], _list(_msrp_listen)),
        "tls_cert": ("", _str),
        "tls_key": ("", _str),
        "tls_ca_file": ("", _str),
        "allow_loopback_tcp": (False, _bool),
        "advertised_host": ("", _str),
        "realm": ("", lambda k, v: v if v == "" else _domain(k, v)),
        "digest_algorithms": (["SHA-256", "MD5"], _list(_choice("SHA-256", "MD5"))),
        "nonce_lifetime": (300, _int(10, 86400)),
        "min_expires": (60, _int(1, 86400)),
        "max_expires": (3600, _int(1, 604800)),
        "idle_timeout": (300.0, _seconds(1, 86400)),
        "transaction_timeout": (30.0, _seconds(1, 600)),
        "max_connections": (1000, _int(1, 1000000)),
        "max_connections_per_ip": (64, _int(1, 1000000)),
        "max_head_bytes": (16384, _int(1024, 1048576)),
        "max_headers": (40, _int(8, 1000)),
        "control": ("", lambda k, v: v if v == "" else _hostport(k, v)),
        "acm_idle_timeout": (3600.0, _seconds(10, 604800)),
    },
    "radius": {
        "server": ("", _radius_server),
        "secret": ("", _str),
        "nas_identifier": ("msp", _str),
        "timeout": (2.0, _seconds(0.05, 60)),
        "retries": (2, _int(0, 10)),
        "interim_interval": (0, _int(0, 86400)),
        "queue": ("var/radius-queue.sqlite", _str),
    },
}


_XCAP_ROOT = re.compile(r"/(?:[A-Za-z0-9._~!$&'()*+,;=:@-]+/)+")


def _xcap_root(key: str, v: Any) -> str:
    """The XCAP root path (RFC 4825 section 6.1): ``/seg/.../``, beside the SOAP paths."""
    v = _str(key, v)
    if not v.endswith("/"):
        v += "/"
    if not _XCAP_ROOT.fullmatch(v):
        raise ConfigError(f"{key}: expected an absolute path such as /xcap-root/, got {v!r}")
    if v.split("/")[1] in ("ngnpro", "wsdl") or "~~" in v.split("/"):
        raise ConfigError(f"{key}: {v!r} is taken by the SOAP server's paths")
    return v


def _float_pos(key: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
        raise ConfigError(f"{key}: expected a non-negative number, got {v!r}")
    return float(v)


DEFAULTS: dict[str, dict[str, Any]] = {s: {k: d for k, (d, _) in keys.items()} for s, keys in SCHEMA.items()}


@dataclass(frozen=True)
class Config:
    """A validated configuration: ``config.section("sipproxy")["listen"]``."""

    data: dict[str, dict[str, Any]]
    path: str | None = None

    def section(self, name: str) -> dict[str, Any]:
        return self.data[name]

    def __getitem__(self, name: str) -> dict[str, Any]:
        return self.data[name]

    @property
    def database_url(self) -> str:
        return self.data["database"]["url"]


def validate(raw: dict[str, Any], path: str | None = None) -> Config:
    """Check ``raw`` against :data:`SCHEMA`, filling defaults; raises :class:`ConfigError`."""
    data = copy.deepcopy(DEFAULTS)
    for section, values in raw.items():
        if section not in SCHEMA:
            raise ConfigError(f"unknown section [{section}]")
        if not isinstance(values, dict):
            raise ConfigError(f"[{section}] must be a table")
        for key, value in values.items():
            if key not in SCHEMA[section]:
                raise ConfigError(f"unknown key {section}.{key}")
            data[section][key] = SCHEMA[section][key][1](f"{section}.{key}", value)
    _check_worker_ports(data["sipproxy"])
    radius = data["radius"]
    if radius_servers(radius) and not radius["secret"]:
        raise ConfigError("radius.secret: a RADIUS server is set but no shared secret")
    if radius_servers(radius) and not radius["queue"].strip():
        raise ConfigError("radius.queue: a RADIUS server is set but no queue file")
    return Config(data, path)


def _check_worker_ports(section: dict[str, Any]) -> None:
    """The per-worker ports must fit below 65536 and clash with no UDP listener's port."""
    base = section["worker_ports"]
    if not base:
        return
    last = base + section["workers"] - 1
    if base < 1024 or last > 65535:
        raise ConfigError(f"sipproxy.worker_ports: {base}-{last} (one port per worker) is not within 1024-65535")
    for spec in section["listen"]:
        proto, _, rest = spec.partition(":")
        if proto.lower() == "udp" and base <= parse_hostport(rest)[1] <= last:
            raise ConfigError(f"sipproxy.worker_ports: {base}-{last} (one port per worker) "
                              f"includes the port of listen address {spec}")


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Read and validate the TOML file at ``path`` (``None``: all defaults)."""
    if path is None:
        return validate({})
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {os.fspath(path)} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {os.fspath(path)}: {exc}") from None
    return validate(raw, os.fspath(path))


def default_toml() -> str:
    """The text of a default config file, with every contract key and its default."""
    lines = ["# MSP platform configuration. Every key is optional; these are the defaults.", ""]
    for section, keys in DEFAULTS.items():
        lines.append(f"[{section}]")
        for key, value in keys.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return str(v)
