"""Real clients against ``python -m sipproxy`` with the DEFAULT digest settings (challenges
offer SHA-256 and MD5 -- a client that cannot do SHA-256 is learnt and offered MD5 alone,
sipproxy.auth.ordering).

* baresip 1.0 (Debian 12), default configuration but for its account line: it cannot do
  SHA-256 and gives up when any challenge names it ("Register: Function not implemented"),
  then retries 30-60 s later -- challenged with MD5 alone then, it registers.
* A client written here that does SHA-256 (the response computed with hashlib) registers
  with SHA-256, and after that the challenges to it still lead with SHA-256.
* sipp (topmost challenge only, MD5 only): its first run fails, the next run for the same
  account (from another port) registers.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import time
from pathlib import Path

import pytest

from ngnpro.models import open_database
from sipproxy.auth.ordering import PATIENCE
from sipproxy.registrar.location import LocationStore
from tests.helpers import Service, free_port, require_tool, write_config

from .support import DOMAIN, provision

SIPP = Path(__file__).resolve().parents[1] / "sipp"
USERS = {"alice": "pw-alice", "bob": "pw-bob", "carol": "pw-carol"}


@pytest.fixture
def proxy(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'msp.sqlite'}"
    engine, _ = provision(url, USERS)
    engine.dispose()
    port = free_port()
    # no digest_algorithms / digest_adaptive: the defaults are what is tested
    cfg = write_config(tmp_path / "msp.toml", {
        "database": {"url": url},
        "logging": {"level": "debug"},  # the 401s too
        "sipproxy": {"listen": [f"udp:127.0.0.1:{port}", f"tcp:127.0.0.1:{port}"]},
    })
    svc = Service("sipproxy", cfg).wait_tcp("127.0.0.1", port)
    yield svc, port, url
    svc.stop()


def bindings(url: str, user: str) -> list:
    engine, factory = open_database(url, migrate=False)
    try:
        return LocationStore(factory).lookup(user, DOMAIN)
    finally:
        engine.dispose()


def register_lines(log: str, user: str) -> list[str]:
    return [ln for ln in log.splitlines() if f"REGISTER {user}@{DOMAIN} from " in ln]


# -- baresip ---------------------------------------------------------------------------------


def test_baresip_registers_with_default_settings(proxy, tmp_path: Path) -> None:  # noqa: ANN001
    baresip = require_tool("baresip")
    svc, port, url = proxy
    conf = tmp_path / "baresip"
    # baresip writes its default config (and templates) into an empty config directory
    subprocess.run([baresip, "-f", str(conf), "-t", "1"], stdin=subprocess.DEVNULL,
                   capture_output=True, timeout=30, cwd=tmp_path)
    assert (conf / "config").exists()
    (conf / "accounts").write_text(
        f'<sip:alice@{DOMAIN}>;auth_pass={USERS["alice"]};outbound="sip:127.0.0.1:{port}"\n')
    out = (tmp_path / "baresip.out").open("wb")
    phone = subprocess.Popen([baresip, "-f", str(conf), "-s"], stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        # first attempt: SHA-256 offered, baresip gives up; it retries after 30-60 s
        deadline = time.monotonic() + 100
        while not (registered := bindings(url, "alice")):
            assert phone.poll() is None, (tmp_path / "baresip.out").read_text(errors="replace")
            assert time.monotonic() < deadline, (
                "baresip did not register:\n" + (tmp_path / "baresip.out").read_text(errors="replace")
                + svc.output())
            time.sleep(0.5)
    finally:
        phone.terminate()
        try:
            phone.wait(10)
        except subprocess.TimeoutExpired:
            phone.kill()
            phone.wait()
        out.close()  # (baresip unregisters as it stops)
    [b] = registered
    # (its default config binds to the host's own address, whatever it is)
    assert b.user_agent.startswith("baresip") and b.received.startswith("udp:")
    trace = (tmp_path / "baresip.out").read_text(errors="replace")
    # what happened: one failed attempt at the challenges offering SHA-256 (baresip 1.0 gives
    # up on any challenge naming an algorithm it does not know), then MD5 alone
    assert trace.count("Function not implemented") == 1, trace
    first, _, after = trace.partition("Function not implemented")
    assert first.index("algorithm=SHA-256") < first.index("algorithm=MD5")
    assert "algorithm=MD5" in after and "algorithm=SHA-256" not in after
    assert "Authorization: Digest" in after
    lines = register_lines(svc.output(), "alice")
    assert any(": 200 OK" in ln for ln in lines), svc.output()


# -- a SHA-256 client --------------------------------------------------------------------------


class Sha256Phone:
    """A UDP client that answers the SHA-256 challenge (RFC 7616/8760, qop=auth)."""

    def __init__(self, proxy_port: int, user: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]
        self.proxy = ("127.0.0.1", proxy_port)
        self.user = user
        self.cseq = 0
        self.nc = 0

    def close(self) -> None:
        self.sock.close()

    def request(self, authorization: str = "") -> tuple[int, list[tuple[str, str]]]:
        """Send a REGISTER; the response's status and headers."""
        self.cseq += 1
        text = (f"REGISTER sip:{DOMAIN} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};rport;branch=z9hG4bKsha{self.port}.{self.cseq}\r\n"
                f"From: <sip:{self.user}@{DOMAIN}>;tag=f{self.port}\r\nTo: <sip:{self.user}@{DOMAIN}>\r\n"
                f"Call-ID: sha-{self.port}\r\nCSeq: {self.cseq} REGISTER\r\n"
                f"Contact: <sip:{self.user}@127.0.0.1:{self.port}>\r\nExpires: 600\r\nMax-Forwards: 70\r\n"
                f"{authorization}User-Agent: sha256-test\r\nContent-Length: 0\r\n\r\n")
        self.sock.sendto(text.encode(), self.proxy)
        while True:
            data = self.sock.recv(65535).decode()
            head = data.split("\r\n\r\n")[0].split("\r\n")
            status = int(head[0].split()[1])
            if status >= 200:
                return status, [(n.strip().lower(), v.strip()) for n, _, v in (ln.partition(":") for ln in head[1:])]

    def answer(self, challenges: list[str], password: str) -> str:
        """Authorization for the SHA-256 challenge, computed here with hashlib."""
        [chal] = [c for c in challenges if "algorithm=SHA-256" in c]
        params = dict(p.strip().split("=", 1) for p in chal.removeprefix("Digest ").split(","))
        realm, nonce = params["realm"].strip('"'), params["nonce"].strip('"')
        self.nc += 1
        nc, cnonce, uri = f"{self.nc:08x}", "0a4f113b", f"sip:{DOMAIN}"

        def h(s: str) -> str:
            return hashlib.sha256(s.encode()).hexdigest()

        response = h(f"{h(f'{self.user}:{realm}:{password}')}:{nonce}:{nc}:{cnonce}:auth:{h(f'REGISTER:{uri}')}")
        return (f'Authorization: Digest username="{self.user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
                f'response="{response}", algorithm=SHA-256, qop=auth, nc={nc}, cnonce="{cnonce}"\r\n')


def test_sha256_client_authenticates_with_sha256_and_keeps_it(proxy) -> None:  # noqa: ANN001
    svc, port, url = proxy
    phone = Sha256Phone(port, "bob")
    try:
        for _ in range(3):  # a registration, then refreshes that start without credentials
            status, headers = phone.request()
            assert status == 401
            challenges = [v for n, v in headers if n == "www-authenticate"]
            # SHA-256 first (RFC 8760), MD5 still offered
            assert [c.rsplit("algorithm=", 1)[1] for c in challenges] == ["SHA-256", "MD5"]
            status, _ = phone.request(phone.answer(challenges, USERS["bob"]))
            assert status == 200, svc.output()
        # a wrong password in SHA-256 is refused like any wrong password
        status, headers = phone.request()
        wrong = phone.answer([v for n, v in headers if n == "www-authenticate"], "not-it")
        assert phone.request(wrong)[0] == 401
    finally:
        phone.close()
    [b] = bindings(url, "bob")
    assert b.user_agent == "sha256-test"
    assert sum(": 200 OK" in ln for ln in register_lines(svc.output(), "bob")) == 3


# -- sipp ------------------------------------------------------------------------------------


def sipp_register(tmp_path: Path, port: int, user: str) -> tuple[int, str]:
    inf = tmp_path / f"users-{free_port()}.csv"
    inf.write_text(f"SEQUENTIAL\n{user};{DOMAIN};[authentication username={user} password={USERS[user]}]\n")
    err = inf.with_suffix(".err")
    proc = subprocess.run(
        ["sipp", "-sf", str(SIPP / "register_auth.xml"), "-inf", str(inf), "-m", "1",
         "-t", "u1", "-i", "127.0.0.1", "-p", str(free_port()), "-nostdin", "-recv_timeout", "5000",
         "-timeout", "30s", "-trace_err", "-error_file", str(err), f"127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    return proc.returncode, err.read_text(errors="replace") if err.exists() else ""


def test_sipp_registers_with_default_settings_on_its_second_run(proxy, tmp_path: Path) -> None:  # noqa: ANN001
    require_tool("sipp")
    svc, port, url = proxy
    status, err = sipp_register(tmp_path, port, "carol")
    assert status != 0  # SHA-256 on top: sipp cannot answer it
    assert bindings(url, "carol") == []
    # run again a little later (a new request without credentials counts as the client's
    # failure only PATIENCE seconds after the challenge), from another port: the account
    # remembers the unanswered challenge
    time.sleep(PATIENCE)
    status, err = sipp_register(tmp_path, port, "carol")
    assert status == 0, err + svc.output()
    [b] = bindings(url, "carol")
    assert b.received.startswith("udp:127.0.0.1:")
