"""Test support shared by every service's tests: free ports, external peers, service processes.

External peers (sipp, php, dig, ...) are real programs.  Outside CI a missing one skips the
test with the package to install; under CI (``CI=true``) a missing peer fails the test,
because CI's set-up installs them all.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: program -> Debian package that provides it (scripts/test installs these).
PEERS = {
    "sipp": "sip-tester",
    "php": "php-cli php-soap",
    "dig": "bind9-dnsutils",
    "dnsperf": "dnsperf",
    "freeradius": "freeradius",
    "radclient": "freeradius-utils",
    "kamailio": "kamailio",
    "pdns_server": "pdns-server pdns-backend-sqlite3",
    "rtpengine": "rtpengine-daemon",
    "nft": "nftables",
    "openssl": "openssl",
    "baresip": "baresip",
}

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str) -> str:
    """Path of an external program; skip (or fail under CI) when it is not installed."""
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path:
        return path
    why = f"{name} not installed (Debian package: {PEERS.get(name, name)}; scripts/test installs it)"
    if IN_CI:
        pytest.fail(why)
    pytest.skip(why)


def require_php_soap() -> str:
    php = require_tool("php")
    out = subprocess.run([php, "-m"], capture_output=True, text=True).stdout
    if "soap" not in out.lower().split():
        why = "PHP's SOAP extension is missing (Debian package php-soap)"
        if IN_CI:
            pytest.fail(why)
        pytest.skip(why)
    return php


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """A port free for both TCP and UDP on ``host`` (services often listen on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        try:
            with socket.socket(socket.AF_INET, other) as s2:
                s2.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


def wait_tcp(host: str, port: int, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def write_config(path: Path, sections: dict[str, dict]) -> Path:
    """Write a TOML config from nested dicts (strings, ints, bools and lists of them)."""

    def value(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return str(v)

    lines = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {value(v)}" for k, v in keys.items())
        lines.append("")
    path.write_text("\n".join(lines))
    return path


class Service:
    """A platform service started as ``python -m NAME --config F``, stopped on close."""

    def __init__(self, module: str, config: Path, args: Sequence[str] = (), log: Path | None = None):
        self.module = module
        self.log_path = log or config.with_name(f"{module}.log")
        self._log = open(self.log_path, "wb")
        # the service runs from the tree these tests belong to (a worktree too), not from
        # wherever the virtualenv's editable install points
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=path)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, "--config", str(config), *args],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=config.parent, env=env,
        )

    def wait_tcp(self, host: str, port: int, timeout: float = 30.0) -> Service:
        try:
            wait_tcp(host, port, timeout, self.proc)
        except Exception:
            raise RuntimeError(f"{self.module} did not start:\n{self.output()}") from None
        return self

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def frame(data: bytes) -> tuple[list[bytes], bytes, int]:
    """``data`` as one TCP stream through a fresh StreamFramer: (messages, the bytes left
    over, keepalive pings)."""
    from sipproxy.sip.framing import PING, StreamFramer

    framer = StreamFramer()
    items = framer.feed(data)
    messages = [item for item in items if item is not PING]
    return messages, bytes(framer.buffer), len(items) - len(messages)  # type: ignore[return-value]


def count_rows(url: str, model: object, **where: object) -> int:
    """Rows of ``model`` in the database at ``url`` whose columns equal ``where``'s values
    (a fresh engine: what another process wrote is seen)."""
    from sqlalchemy import create_engine, func, select

    engine = create_engine(url)
    try:
        with engine.connect() as c:
            q = select(func.count()).select_from(model)
            for k, v in where.items():
                q = q.where(getattr(model, k) == v)
            return c.execute(q).scalar_one()
    finally:
        engine.dispose()
