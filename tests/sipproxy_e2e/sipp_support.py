"""Support for the end-to-end tests: a provisioned database, a proxy process, sipp runs."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import time
from pathlib import Path

from sqlalchemy.orm import Session

from ngnpro.models import SipAccount, SipDomain
from ngnpro.models.database import open_database
from tests.helpers import ROOT, Service, free_port, require_tool, write_config

SCENARIOS = ROOT / "tests" / "sipp"
DOMAIN = "example.com"
USERS = {"alice": "secret-a", "bob": "secret-b"}


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def provision(db_url: str, domain: str = DOMAIN, users: dict[str, str] = USERS) -> None:
    """Create the domain and accounts as ngnpro would (HA1 hashes only)."""
    engine, sessions = open_database(db_url)
    with sessions() as s, s.begin():
        assert isinstance(s, Session)
        s.add(SipDomain(domain=domain))
        s.flush()
        for user, pw in users.items():
            s.add(SipAccount(
                username=user, domain=domain, ha1=_md5(f"{user}:{domain}:{pw}"),
                ha1b=_md5(f"{user}@{domain}:{domain}:{pw}"),
                ha1_sha256=hashlib.sha256(f"{user}:{domain}:{pw}".encode()).hexdigest(),
            ))
    engine.dispose()


class ProxyProcess:
    """``python -m sipproxy`` on a free port (UDP and TCP), stopped by ``stop()``."""

    def __init__(self, tmp: Path, db_url: str, port: int | None = None,
                 sections: dict[str, dict] | None = None, **extra: object) -> None:
        self.tmp = tmp
        for attempt in range(3):  # another test may grab a free port before we bind it
            self.port = port or free_port()
            self.config = write_config(tmp / "msp.toml", {
                "database": {"url": db_url, "poll_interval": 0.1},
                "logging": {"level": "debug"},
                "sipproxy": {"listen": [f"udp:127.0.0.1:{self.port}", f"tcp:127.0.0.1:{self.port}"],
                             "digest_algorithms": ["MD5"],  # sipp does MD5 only
                             "media_relay": "never", **extra},
                **(sections or {}),
            })
            self.service = Service("sipproxy", self.config)
            try:
                self.service.wait_tcp("127.0.0.1", self.port)
                self._wait_workers(int(extra.get("workers", 1)))  # type: ignore[call-overload]
                return
            except RuntimeError:
                self.service.stop()
                if port or attempt == 2 or "in use" not in self.output():
                    raise

    def _wait_workers(self, workers: int, timeout: float = 30.0) -> None:
        """Until every worker listens: a client whose first packet reached a worker while
        its siblings were still starting would land on another one once they all bind
        (SO_REUSEPORT spreads by the sender's address over the sockets bound)."""
        deadline = time.monotonic() + timeout
        while self.output().count("INFO listening on ") < workers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"not every sipproxy worker is listening:\n{self.output()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.service.stop()

    def output(self) -> str:
        return self.service.log_path.read_text(errors="replace")


class Sipp:
    """One sipp process running a scenario of tests/sipp, against the proxy."""

    def __init__(self, tmp: Path, name: str, scenario: str, proxy_port: int, *,
                 rows: list[str] | None = None, transport: str = "u1", port: int | None = None,
                 server: bool = False, timeout: int = 15, extra: tuple[str, ...] = (),
                 ip: str = "127.0.0.1", calls: int = 1) -> None:
        sipp = require_tool("sipp")
        self.port = port or free_port(host=ip)
        self.name = name
        self.tmp = tmp
        args = [sipp]
        if not server:
            args.append(f"127.0.0.1:{proxy_port}")
        args += ["-sf", str(SCENARIOS / scenario), "-i", ip, "-p", str(self.port),
                 "-t", transport, "-m", str(calls), "-nostdin", "-timeout", f"{timeout}s",
                 "-timeout_error", "-trace_err", "-trace_msg", "-message_file",
                 str(tmp / f"{name}.msg"), "-error_file", str(tmp / f"{name}.err"), *extra]
        if rows is not None:
            inf = tmp / f"{name}.csv"
            inf.write_text("SEQUENTIAL\n" + "\n".join(rows) + "\n")
            args += ["-inf", str(inf)]
        self.log = open(tmp / f"{name}.out", "wb")
        self.proc = subprocess.Popen(args, cwd=tmp, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        if server:
            _wait_bound(self.port, transport, ip)

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9
        finally:
            self.log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def finals(self) -> set[tuple[str, int]]:
        """(CSeq, status) of the final responses this sipp received, from its ``-trace_msg``
        log (a set: a retransmitted response counts once)."""
        out = set()
        for block in (self.tmp / f"{self.name}.msg").read_text(errors="replace").split("\n\n"):
            lines = block.strip().splitlines()
            if lines and lines[0].startswith("SIP/2.0 ") and not lines[0].startswith("SIP/2.0 1"):
                cseq = next((ln.split(":", 1)[1].strip() for ln in lines if ln.lower().startswith("cseq:")), "")
                out.add((cseq, int(lines[0].split()[1])))
        return out

    def report(self) -> str:
        out = []
        for ext in ("out", "err", "msg"):
            p = self.tmp / f"{self.name}.{ext}"
            if p.exists():
                out.append(f"--- {p.name}\n" + p.read_text(errors="replace")[-4000:])
        return "\n".join(out)


def _wait_bound(port: int, transport: str, ip: str = "127.0.0.1", timeout: float = 10) -> None:
    """Until sipp has bound its port (a bind attempt on the same port fails)."""
    kind = socket.SOCK_DGRAM if transport.startswith("u") else socket.SOCK_STREAM
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind((ip, port))
        except OSError:
            return
        finally:
            s.close()
        time.sleep(0.05)
    raise TimeoutError(f"sipp did not bind port {port}")


def auth_row(user: str, password: str, domain: str = DOMAIN) -> str:
    return f"{user};{domain};[authentication username={user} password={password}]"


def call_row(user: str, password: str, to_user: str, from_domain: str = DOMAIN,
             to_domain: str = DOMAIN) -> str:
    return (f"{user};{from_domain};[authentication username={user} password={password}];"
            f"{to_user};{to_domain}")
