"""The servers a SIP benchmark run starts: Kamailio in one of its set-ups, our proxy (this
tree's code, whatever the virtualenv's editable install points at), our enumdns for the
routed tests, and FreeRADIUS for the accounting lines.

Kamailio's set-ups (scripts/bench/kamailio.cfg, chosen with defines): ``memory`` is the
configuration ANCHORS.md measured (usrloc in memory, no dialog module); ``write-through``
and ``write-back`` do the persistent work our proxy does -- usrloc in a SQLite database
(``db_mode`` 1 and 2) and the dialog module with its table (``db_mode`` 1 and 2) -- and
``accounting`` adds the acc module writing its table and sending RADIUS to the same
FreeRADIUS our proxy's accounting line uses.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from .common import (
    BENCH_DIR,
    DOMAIN,
    ENUM_RANGE,
    GATEWAY_IP,
    LCR_ROUTE_PREFIX,
    ROOT,
    enum_number,
    free_port,
    wait_sip,
)

KAMAILIO_CFG = BENCH_DIR / "kamailio.cfg"
KAMAILIO_SQL = Path("/usr/share/kamailio/db_sqlite")
RADIUS_SECRET = "benchsecret"
#: program or Kamailio module -> the Debian package that brings it
PACKAGES = {
    "sipp": "sip-tester", "kamailio": "kamailio", "db_sqlite": "kamailio-sqlite-modules",
    "acc_radius": "kamailio-radius-modules", "freeradius": "freeradius",
}
#: Kamailio's usrloc and dialog ``db_mode`` in each of its set-ups (None: in memory, no dialog)
KAMAILIO_MODES = {"memory": None, "write-through": 1, "write-back": 2, "accounting": 2}


def _present(name: str) -> bool:
    if name in ("db_sqlite", "acc_radius"):
        return bool(glob.glob(f"/usr/lib/*/kamailio/modules/{name}.so"))
    return bool(shutil.which(name) or os.path.exists(f"/usr/sbin/{name}"))


def missing_packages(names: list[str], install: bool = True) -> list[str]:
    """The Debian packages still missing for ``names``, after installing them with apt-get
    when run as root (as scripts/test does for the tests' peers)."""
    missing = sorted({PACKAGES[n] for n in names if not _present(n)})
    if missing and install and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing {' '.join(missing)}", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                       env=env, check=False, stdout=subprocess.DEVNULL)
        for svc in ("kamailio", "freeradius"):  # Debian starts them on install; we run our own
            if shutil.which("systemctl"):
                subprocess.run(["systemctl", "stop", svc], check=False, capture_output=True)
        missing = sorted({PACKAGES[n] for n in names if not _present(n)})
    return missing


class Server:
    proc: subprocess.Popen
    port: int
    log = None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.log:
            self.log.close()


# -- FreeRADIUS ------------------------------------------------------------------------------

class Radius(Server):
    """FreeRADIUS as tests/accounting/freeradius.py sets it up (loopback, the shipped
    dictionary, the ``detail`` file), but run for throughput: no debug mode (``-X`` is
    single-threaded and prints every packet) and four threads.  ``records()`` counts the
    Start and Stop records the detail file holds, so the bench can check that every call
    of a clean point was accounted once."""

    def __init__(self, work: Path) -> None:
        from tests.accounting.freeradius import FreeRadius

        folder = work / "freeradius"
        self.fr = FreeRadius(folder, secret=RADIUS_SECRET)
        conf = folder / "radiusd.conf"
        text = conf.read_text()
        for key in ("start_servers", "max_servers", "min_spare_servers", "max_spare_servers"):
            text = text.replace(f"{key} = 1\n", f"{key} = 4\n")
        conf.write_text(text)
        self.port = self.fr.port
        self.log = open(work / "freeradius.log", "wb")
        self.proc = subprocess.Popen(
            [self.fr.binary, "-f", "-d", str(folder), "-D", str(folder / "dict")],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while "Ready to process requests" not in (work / "freeradius.log").read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("FreeRADIUS did not start: "
                                   + (work / "freeradius.log").read_text(errors="replace")[-2000:])
            time.sleep(0.1)

    def records(self) -> tuple[int, int]:
        """(Start, Stop) records in the detail file so far."""
        try:
            data = self.fr.detail.read_bytes()
        except OSError:
            return 0, 0
        return data.count(b"Acct-Status-Type = Start\n"), data.count(b"Acct-Status-Type = Stop\n")


# -- Kamailio --------------------------------------------------------------------------------

def kamailio_db(path: Path, accounts: list[tuple[str, str]], mode: str) -> None:
    """The SQLite database of a Kamailio set-up: the subscribers, and the tables of the
    modules that write (location, dialog, acc) when the set-up persists."""
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE version (table_name VARCHAR(32) NOT NULL, table_version INTEGER DEFAULT 0 "
        "NOT NULL, CONSTRAINT version_table_name_idx UNIQUE (table_name));"
        "INSERT INTO version VALUES ('version', 1);"
    )
    scripts = ["auth_db"]
    if KAMAILIO_MODES[mode] is not None:
        scripts += ["usrloc", "dialog"]
    if mode == "accounting":
        scripts.append("acc")
    for name in scripts:
        con.executescript((KAMAILIO_SQL / f"{name}-create.sql").read_text())
    con.executemany("INSERT INTO subscriber (username, domain, password) VALUES (?, ?, ?)",
                    [(u, DOMAIN, p) for u, p in accounts + [("uas", "uaspw")]])
    con.commit()
    # the journal our proxy's SQLite runs with (ngnpro.models.database: WAL)
    con.execute("PRAGMA journal_mode=WAL")
    con.close()


def radcli_config(work: Path, port: int) -> Path:
    """The radcli client configuration acc_radius reads: FreeRADIUS on ``port`` with the
    bench's secret, and radcli's dictionary plus Kamailio's SIP attributes."""
    folder = work / "radcli"
    folder.mkdir(exist_ok=True)
    (folder / "servers").write_text(f"127.0.0.1 {RADIUS_SECRET}\n127.0.0.1:{port} {RADIUS_SECRET}\n")
    (folder / "dictionary").write_text(
        "$INCLUDE /etc/radcli/dictionary\n$INCLUDE /etc/radcli/dictionary.sip\n"
        "VALUE Acct-Status-Type Failed 15\nVALUE Service-Type Sip-Session 15\n")
    conf = folder / "radiusclient.conf"
    conf.write_text(
        f"authserver 127.0.0.1:{port}\nacctserver 127.0.0.1:{port}\nservers {folder / 'servers'}\n"
        f"dictionary {folder / 'dictionary'}\ndefault_realm\nradius_timeout 5\nradius_retries 3\n"
        "bindaddr *\n")
    return conf


def sqlite_busy_shim(work: Path) -> Path | None:
    """sqlite_busy.c built into ``work`` (once): the LD_PRELOAD shim giving Kamailio's
    SQLite connections our proxy's busy timeout.  None when it cannot be built (no gcc):
    Kamailio then runs without it, and its failed writes show in the report."""
    out = work / "sqlite_busy.so"
    if out.exists():
        return out
    lib = next(iter(glob.glob("/usr/lib/*/libsqlite3.so.0") + glob.glob("/lib/*/libsqlite3.so.0")), None)
    cc = shutil.which("gcc") or shutil.which("cc")
    if not lib or not cc:
        return None
    done = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(out), str(Path(__file__).with_name("sqlite_busy.c")),
                           lib, "-ldl"], capture_output=True, text=True)
    if done.returncode != 0:
        print(f"sqlite_busy.c did not build: {done.stderr[-500:]}", file=sys.stderr)
        return None
    return out


class Kamailio(Server):
    """Kamailio 5.6 with scripts/bench/kamailio.cfg in set-up ``mode`` (KAMAILIO_MODES),
    4 UDP workers as in ANCHORS.md.  ``radius_port``: FreeRADIUS for ``accounting``."""

    def __init__(self, work: Path, accounts: list[tuple[str, str]], mode: str = "memory",
                 radius_port: int | None = None) -> None:
        self.port = free_port()
        db = work / "kamailio.sqlite"
        kamailio_db(db, accounts, mode)
        rundir = work / "kamailio-run"
        rundir.mkdir()
        binary = shutil.which("kamailio") or "/usr/sbin/kamailio"
        defines = ["-A", f'DBURL="sqlite://{db}"']
        db_mode = KAMAILIO_MODES[mode]
        if db_mode is not None:
            defines += ["-A", "WITH_DB", "-A", f"DBMODE={db_mode}"]
        if mode == "accounting":
            if radius_port is None:
                raise ValueError("Kamailio's accounting set-up needs FreeRADIUS")
            defines += ["-A", "WITH_ACC", "-A", f'RADCFG="{radcli_config(work, radius_port)}"']
        env = dict(os.environ)
        self.busy_shim = sqlite_busy_shim(work.parent) if db_mode is not None else None
        if self.busy_shim:
            env["LD_PRELOAD"] = str(self.busy_shim)
        self.log = open(work / "kamailio.log", "wb")
        self.logfile = work / "kamailio.log"
        self.proc = subprocess.Popen(
            [binary, "-f", str(KAMAILIO_CFG), "-DD", "-E", "-n", "4", "-m", "256", "-M", "16",
             "-l", f"udp:127.0.0.1:{self.port}", "-Y", str(rundir), "-P", str(rundir / "k.pid"),
             *defines],
            stdout=self.log, stderr=subprocess.STDOUT, env=env,
        )
        try:
            wait_sip(("127.0.0.1", self.port))
        except Exception:
            self.stop()
            raise

    def errors(self) -> int:
        """ERROR lines Kamailio logged (a failed database write shows here first)."""
        try:
            return self.logfile.read_bytes().count(b"ERROR:")
        except OSError:
            return 0


# -- our proxy -------------------------------------------------------------------------------

def service_env() -> dict[str, str]:
    """The environment of the services started here: this tree's code (a worktree too),
    not wherever the virtualenv's editable install points."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=path)


def has_accounting_switch() -> bool:
    """Whether this tree's proxy knows ``[sipproxy] accounting`` (the accounting table
    written without RADIUS, on by default): the plain line then turns it off."""
    from ngnpro.models.config import SCHEMA

    return "accounting" in SCHEMA.get("sipproxy", {})


def provision_routing(factory, accounts: list[tuple[str, str]], gateway_port: int) -> None:  # noqa: ANN001
    """The ``lcr`` and ``enum`` set-up: the callers in ``free-pstn``; route 003120 ->
    carrier -> the gateway UAS with its rule; the ENUM range and the callers' numbers, each
    mapped to sip:uas@DOMAIN."""
    from sqlalchemy import select

    from ngnpro.models import SipAccount
    from ngnpro.models.e164 import EnumMapping, EnumNumber, EnumRange
    from ngnpro.models.lcr import Carrier, Gateway, GatewayRule, Route
    from ngnpro.models.sip import SipAccountGroup

    callers = {u for u, _ in accounts}
    with factory() as s, s.begin():
        for acc in s.execute(select(SipAccount).where(SipAccount.domain == DOMAIN)).scalars():
            if acc.username in callers:
                s.add(SipAccountGroup(account_id=acc.id, name="free-pstn"))
        carrier = Carrier(name="bench-carrier")
        s.add(carrier)
        s.flush()
        gateway = Gateway(carrier_id=carrier.id, name="bench-gw", transport="udp", ip=GATEWAY_IP,
                          port=gateway_port)
        s.add(gateway)
        s.flush()
        # 0031201234567 -> 0201234567: the national form the callers dialled
        s.add(GatewayRule(gateway_id=gateway.id, prefix="0031", strip=4, prepend="0"))
        s.add(Route(carrier_id=carrier.id, prefix=LCR_ROUTE_PREFIX, priority=10))
        rng = EnumRange(prefix=ENUM_RANGE, tld="e164.arpa", ttl=3600)
        s.add(rng)
        s.flush()
        for u, _ in accounts:
            s.add(EnumNumber(number=enum_number(int(u[1:]))[1:], tld="e164.arpa", range_id=rng.id,
                             mappings=[EnumMapping(type="sip", mapto=f"sip:uas@{DOMAIN}", ttl=3600,
                                                   priority=10)]))


class EnumDns(Server):
    """Our enumdns on the bench's database, on a free port (UDP and TCP)."""

    def __init__(self, work: Path, db_url: str, port: int) -> None:
        self.port = port
        cfg = work / "enumdns.toml"
        cfg.write_text(f'[database]\nurl = "{db_url}"\n\n[enumdns]\nlisten = "127.0.0.1:{port}"\n')
        self.log = open(work / "enumdns.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "enumdns", "--config", str(cfg)], cwd=work,
                                     stdout=self.log, stderr=subprocess.STDOUT, env=service_env())
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"enumdns did not start: {(work / 'enumdns.log').read_text()[-2000:]}") from None
                time.sleep(0.2)


class OurProxy(Server):
    """``python -m sipproxy`` on a fresh SQLite database with the same users (HA1 only),
    its configuration as shipped except what the bench must set (listen address, workers,
    MD5 digest as Kamailio offers) and, per line, the accounting."""

    def __init__(self, work: Path, accounts: list[tuple[str, str]], workers: int = 2,
                 overload_delay: float | None = None, gateway_port: int | None = None,
                 enum_port: int | None = None, radius_port: int | None = None) -> None:
        """``gateway_port``: provision the routed tests (LCR to a gateway on
        GATEWAY_IP:gateway_port, ENUM numbers); ``enum_port``: enumdns's port;
        ``radius_port``: account every call to FreeRADIUS there (and in the ``accounting``
        table); without it the proxy does no accounting work at all."""
        from ngnpro.models import SipAccount, SipDomain, open_database
        from sipproxy.sip.digest import ha1

        self.port = free_port()
        db_url = f"sqlite:///{work / 'msp.sqlite'}"
        engine, factory = open_database(db_url)
        with factory() as s, s.begin():
            s.add(SipDomain(domain=DOMAIN))
            s.flush()
            for u, p in accounts + [("uas", "uaspw")]:
                s.add(SipAccount(
                    username=u, domain=DOMAIN, ha1=ha1(u, DOMAIN, p),
                    ha1b=ha1(f"{u}@{DOMAIN}", DOMAIN, p), ha1_sha256=ha1(u, DOMAIN, p, "SHA-256"),
                ))
        if gateway_port is not None:
            provision_routing(factory, accounts, gateway_port)
        engine.dispose()
        self.db_url = db_url
        cfg = work / "msp.toml"
        accounting = ""
        if radius_port is None and has_accounting_switch():
            accounting = "accounting = false\n"
        cfg.write_text(
            f'[database]\nurl = "{db_url}"\n\n[sipproxy]\nlisten = ["udp:127.0.0.1:{self.port}"]\n'
            f"workers = {workers}\n"
            # Kamailio's challenge offers MD5 only, and sipp answers MD5 only: same here.
            'digest_algorithms = ["MD5"]\n'
            + accounting
            + (f"overload_delay = {overload_delay}\n" if overload_delay is not None else "")
            # the numbers are Dutch-style (+31); enum_servers left empty: [enumdns] listen
            + ('country_code = "31"\n' if gateway_port is not None else "")
            + (f'\n[enumdns]\nlisten = "127.0.0.1:{enum_port}"\n' if enum_port is not None else "")
            + (f'\n[radius]\nserver = "127.0.0.1:{radius_port}"\nsecret = "{RADIUS_SECRET}"\n'
               f'queue = "{work / "radius-queue.sqlite"}"\n' if radius_port is not None else "")
        )
        self.logfile = work / "sipproxy.log"
        self.log = open(self.logfile, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sipproxy", "--config", str(cfg)], cwd=work,
            stdout=self.log, stderr=subprocess.STDOUT, env=service_env(),
        )
        try:
            wait_sip(("127.0.0.1", self.port), timeout=60)
        except Exception:
            self.stop()
            raise

    def refused_logged(self) -> int | None:
        """The 503s the proxy's overload control says it sent (each worker's stop line), to
        set beside sipp's count; None when no worker logged its line."""
        found = re.findall(r"overload control: .*?(\d+) new requests refused with 503",
                           self.logfile.read_text(errors="replace"))
        return sum(int(n) for n in found) if found else None
