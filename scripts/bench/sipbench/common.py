"""Constants and small helpers shared by the SIP benchmark's modules: the subscribers and
their injection files, free ports, the CPU time of a process tree, a REGISTER for the UAS
and the "is it up" probe.  Nothing here measures anything by itself."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SIPP_DIR = ROOT / "tests" / "sipp"
BENCH_DIR = ROOT / "scripts" / "bench"
DOMAIN = "bench.example"
USERS = 1000
#: the PSTN gateway of the ``lcr`` test: a sipp UAS on its own loopback address
GATEWAY_IP = "127.0.0.2"
#: the LCR route (00+E.164 form) and the national numbers the ``lcr`` callers dial
LCR_ROUTE_PREFIX = "003120"
#: the ENUM range (E.164 digits) of the numbers the ``enum`` callers dial
ENUM_RANGE = "3130"
#: the routed tests, only our proxy runs them
ROUTED = ("lcr", "enum")
#: unmeasured passes over the callers before each call test of a routed run
WARM_PASSES = 4


def national_number(i: int) -> str:
    """The national number caller ``i`` dials in the ``lcr`` test (+3120..., nobody's)."""
    return f"020{i:07d}"


def enum_number(i: int) -> str:
    """The E.164 number caller ``i`` dials in the ``enum`` test (ENUM -> sip:uas@DOMAIN)."""
    return f"+{ENUM_RANGE}{i:07d}"


def free_port() -> int:
    """A port free for UDP and TCP on 127.0.0.1 (our proxy and enumdns bind both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                t.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


def free_port_on(host: str) -> int:
    """A UDP port free on ``host`` (a loopback address of its own)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def users() -> list[tuple[str, str]]:
    """The 1,000 subscribers of ANCHORS.md's set-up: (user, clear-text password)."""
    return [(f"u{i:04d}", f"pw{i:04d}x") for i in range(USERS)]


def write_injection(path: Path, accounts: list[tuple[str, str]]) -> Path:
    """One caller a line: user;domain;auth;national number (lcr);E.164 number (enum)."""
    lines = ["SEQUENTIAL"]
    lines += [f"{u};{DOMAIN};[authentication username={u} password={p}];"
              f"{national_number(int(u[1:]))};{enum_number(int(u[1:]))}" for u, p in accounts]
    path.write_text("\n".join(lines) + "\n")
    return path


# -- process CPU accounting ------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    out = [pid]
    try:
        children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                                  text=True).stdout.split()
    except OSError:
        return out
    for c in children:
        out += _tree(int(c))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and all its descendants (worker processes):
    a server's cost is all of its processes, whichever does the work."""
    total = 0.0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


def uptime_load() -> str:
    """The machine's load averages (1/5/15 min), as ``uptime`` shows them."""
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> str:
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f", {kb / 1048576:.0f} GiB"
    except (OSError, AttributeError):
        pass
    return f"{os.cpu_count()} cores{mem}"


def median(values: list[float]) -> float:
    """The median of the numbers that are not NaN (NaN when none are)."""
    values = sorted(v for v in values if v == v)
    if not values:
        return float("nan")
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


# -- a tiny UDP registration (to put the sipp UAS in the location service) -------------------

def register_contact(server: tuple[str, int], user: str, password: str, contact_port: int) -> int:
    """REGISTER user -> 401 -> REGISTER with digest -> final status (MD5, qop=auth).

    Sent from ``contact_port`` itself (before the UAS binds it), so the source address is
    the Contact: a proxy doing NAT traversal would otherwise route to the source."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", contact_port))
    sock.settimeout(5)
    lport = sock.getsockname()[1]
    call_id = f"bench-{time.time_ns()}"
    auth = ""
    status = 0
    try:
        for cseq in (1, 2):
            msg = (
                f"REGISTER sip:{DOMAIN} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK{time.time_ns()}\r\n"
                f"From: <sip:{user}@{DOMAIN}>;tag=b{cseq}\r\nTo: <sip:{user}@{DOMAIN}>\r\n"
                f"Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n"
                f"Contact: <sip:{user}@127.0.0.1:{contact_port}>\r\nExpires: 3600\r\n"
                f"Max-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n"
            )
            sock.sendto(msg.encode(), server)
            while True:
                data = sock.recv(65535).decode("utf-8", "replace")
                status = int(data.split(" ", 2)[1])
                if status >= 200:
                    break
            if status != 401:
                return status
            m = re.search(r"WWW-Authenticate:\s*Digest\s+([^\r\n]*algorithm=MD5[^\r\n]*)", data, re.I) or \
                re.search(r"WWW-Authenticate:\s*Digest\s+([^\r\n]*)", data, re.I)
            params = dict(re.findall(r'(\w+)="?([^",]*)"?', m.group(1)))
            realm, nonce = params["realm"], params["nonce"]
            uri = f"sip:{DOMAIN}"
            ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
            ha2 = hashlib.md5(f"REGISTER:{uri}".encode()).hexdigest()
            resp = hashlib.md5(f"{ha1}:{nonce}:00000001:abcdef:auth:{ha2}".encode()).hexdigest()
            auth = (f'Authorization: Digest username="{user}", realm="{realm}", nonce="{nonce}", '
                    f'uri="{uri}", response="{resp}", algorithm=MD5, qop=auth, nc=00000001, '
                    f'cnonce="abcdef"\r\n')
        return status
    finally:
        sock.close()


def wait_sip(server: tuple[str, int], timeout: float = 20.0) -> None:
    """Wait until something answers an OPTIONS on ``server`` (any response will do)."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.3)
        port = s.getsockname()[1]
        while time.monotonic() < deadline:
            msg = (f"OPTIONS sip:{server[0]}:{server[1]} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{time.time_ns()}\r\n"
                   f"From: <sip:ping@{DOMAIN}>;tag=p\r\nTo: <sip:{server[0]}>\r\n"
                   f"Call-ID: ping{time.time_ns()}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                   f"Content-Length: 0\r\n\r\n")
            s.sendto(msg.encode(), server)
            try:
                s.recv(65535)
                return
            except OSError:
                time.sleep(0.2)
    raise TimeoutError(f"no SIP answer from {server}")
