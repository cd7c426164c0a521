"""A real FreeRADIUS (Debian ``freeradius``) for the accounting tests, run by the test
itself: ``radiusd -f -X`` with a configuration written into a temporary folder -- an
accounting listener on a loopback port, one client (127.0.0.1 with the test's secret) and
the ``detail`` module writing every record it accepts to a file the test reads.

Its dictionary is the server's own with the shipped ``dictionary.msp`` added.  FreeRADIUS's
main dictionary includes ``dictionary.columbia_university``, whose vendor attributes take
the names ``Sip-Method`` and ``Sip-Translated-Request-URI``: like OpenSIPS's dictionary,
ours needs that include left out (docs/accounting.md says so for operators), so the test's
dictionary folder is the system one with that line commented out (``radiusd -D``).
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from tests.helpers import ROOT, free_port, require_tool

SYSTEM_DICTIONARIES = Path("/usr/share/freeradius")
DICTIONARY_MSP = ROOT / "sipproxy" / "accounting" / "dictionary.msp"
#: the records of the NAS itself, not of a call (RFC 2866 Acct-Status-Type 7 and 8)
NAS_KINDS = ("Accounting-On", "Accounting-Off")

_CONF = """\
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = {dir}/log
raddbdir = {dir}
radacctdir = {dir}/radacct
name = freeradius
confdir = ${{raddbdir}}
modconfdir = ${{confdir}}/mods-config
run_dir = {dir}/run
db_dir = ${{raddbdir}}
libdir = /usr/lib/freeradius
pidfile = ${{run_dir}}/radiusd.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 1024
hostname_lookups = no
log {{
  destination = stdout
}}
security {{
  allow_core_dumps = no
  max_attributes = 200
  reject_delay = 0
  status_server = no
}}
thread pool {{
  start_servers = 1
  max_servers = 1
  min_spare_servers = 1
  max_spare_servers = 1
}}
modules {{
  detail {{
    filename = {dir}/detail
    escape_filenames = no
    permissions = 0600
    header = "%t"
  }}
}}
client loopback {{
  ipaddr = 127.0.0.1
  secret = {secret}
}}
server default {{
  listen {{
    type = acct
    ipaddr = 127.0.0.1
    port = {port}
  }}
  accounting {{
    detail
  }}
}}
"""


class FreeRadius:
    """``radiusd -f -X`` on 127.0.0.1:``port`` (UDP); ``records()`` reads its detail file."""

    def __init__(self, folder: Path, secret: str = "testing123", port: int | None = None) -> None:
        self.binary = require_tool("freeradius")
        self.dir = folder
        self.secret = secret
        self.port = port or free_port()
        for sub in ("log", "run", "radacct", "dict"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        dicts = folder / "dict"
        for f in SYSTEM_DICTIONARIES.glob("dictionary.*"):
            if not (dicts / f.name).exists():
                (dicts / f.name).symlink_to(f)
        main = (SYSTEM_DICTIONARIES / "dictionary").read_text()
        (dicts / "dictionary").write_text(
            re.sub(r"^\$INCLUDE dictionary\.columbia_university", r"#\g<0>", main, flags=re.M))
        (folder / "dictionary").write_text(f"$INCLUDE {DICTIONARY_MSP}\n")
        (folder / "radiusd.conf").write_text(_CONF.format(dir=folder, secret=secret, port=self.port))
        self.detail = folder / "detail"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> FreeRadius:
        self.starts += 1
        self.log = self.dir / f"radiusd.{self.starts}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [self.binary, "-f", "-X", "-d", str(self.dir), "-D", str(self.dir / "dict")],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if "Ready to process requests" in self.log.read_text(errors="replace"):
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        output = self.log.read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"FreeRADIUS did not start:\n{output}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def records(self, calls_only: bool = False) -> list[dict[str, str]]:
        """The detail file's records: attribute name -> value (quotes removed).
        ``calls_only``: without the proxy's Accounting-On/-Off (the calls' records)."""
        if not self.detail.exists():
            return []
        out = []
        for block in self.detail.read_text(errors="replace").split("\n\n"):
            lines = [ln for ln in block.splitlines() if ln.strip()]
            if len(lines) < 2:
                continue
            rec: dict[str, str] = {}
            for ln in lines[1:]:
                name, sep, value = ln.strip().partition(" = ")
                if sep:
                    value = value.strip()
                    if len(value) >= 2 and value[0] == value[-1] == '"':
                        value = value[1:-1]
                    rec[name] = value
            if not (calls_only and rec.get("Acct-Status-Type") in NAS_KINDS):
                out.append(rec)
        return out

    def wait_for(self, predicate, timeout: float = 15.0,  # noqa: ANN001
                 calls_only: bool = False) -> list[dict[str, str]]:
        """The records once ``predicate(records)`` holds (AssertionError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            recs = self.records(calls_only)
            if predicate(recs):
                return recs
            if time.monotonic() > deadline:
                raise AssertionError(f"FreeRADIUS did not log the expected records; it has {recs}")
            time.sleep(0.1)
