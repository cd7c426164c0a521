"""The two presence agents a run measures, provisioned alike: the same accounts, and for
each publisher a pres-rules document allowing exactly its watchers (one ``<one id>`` per
watcher, the tuple and its note shown).

* ours: ``python -m sipproxy`` from this tree (sipbench's OurProxy: SQLite, digest MD5),
  the documents as ``XcapDocument`` rows (auid ``pres-rules``, file ``index``), as the XCAP
  server stores them;
* Kamailio 5.6 with presence + presence_xml (scripts/bench/kamailio-presence.cfg), the
  tables from its shipped SQL schema, the same documents in its ``xcap`` table (doc_type 2,
  pres-rules) that presence_xml's integrated XCAP mode reads.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

from sipbench.common import BENCH_DIR, DOMAIN, free_port, wait_sip
from sipbench.servers import KAMAILIO_SQL, OurProxy, Server, missing_packages, sqlite_busy_shim

KAMAILIO_PRESENCE_CFG = BENCH_DIR / "kamailio-presence.cfg"
PRESENCE_MODULES = ("presence", "presence_xml")
RULES = ('<?xml version="1.0" encoding="UTF-8"?>\n<cr:ruleset xmlns:cr="urn:ietf:params:xml:ns:common-policy" '
         'xmlns:pr="urn:ietf:params:xml:ns:pres-rules"><cr:rule id="watchers"><cr:conditions><cr:identity>'
         "{ones}</cr:identity></cr:conditions><cr:actions><pr:sub-handling>allow</pr:sub-handling>"
         "</cr:actions><cr:transformations><pr:provide-services><pr:all-services/></pr:provide-services>"
         "<pr:provide-persons><pr:all-persons/></pr:provide-persons><pr:provide-all-attributes/>"
         "</cr:transformations></cr:rule></cr:ruleset>")


def accounts(publishers: int, watchers: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(publishers, watchers) as (user, clear-text password)."""
    return ([(f"p{i:03d}", f"pw-p{i:03d}") for i in range(publishers)],
            [(f"w{i:04d}", f"pw-w{i:04d}") for i in range(watchers)])


def rules(watchers: list[str]) -> str:
    """A publisher's pres-rules: allow these watchers (``user`` names), show everything."""
    return RULES.format(ones="".join(f'<cr:one id="sip:{w}@{DOMAIN}"/>' for w in watchers))


def documents(pubs: list[tuple[str, str]], subs: list[tuple[str, str]],
              watchers_of: Callable[[int], list[int]]) -> list[tuple[str, str]]:
    """(publisher, its pres-rules document) for every publisher."""
    return [(u, rules([subs[w][0] for w in watchers_of(i)])) for i, (u, _) in enumerate(pubs)]


def kamailio_missing() -> str | None:
    """Why Kamailio's presence agent cannot run here (None: it can), installing the Debian
    packages first when run as root."""
    missing = missing_packages(["kamailio", "db_sqlite"])
    if not missing and not all(glob.glob(f"/usr/lib/*/kamailio/modules/{m}.so") for m in PRESENCE_MODULES):
        missing = _install_presence_modules()
    if missing:
        return f"missing Debian packages: {' '.join(missing)} (run as root to install them)"
    if not (KAMAILIO_SQL / "presence-create.sql").exists():
        return f"no {KAMAILIO_SQL / 'presence-create.sql'} to create the presence tables from"
    return None


def _install_presence_modules() -> list[str]:
    """apt-get the presence modules when root (Debian starts no service for them)."""
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing kamailio-presence-modules", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                        "kamailio-presence-modules"], env=env, check=False, stdout=subprocess.DEVNULL)
    if all(glob.glob(f"/usr/lib/*/kamailio/modules/{m}.so") for m in PRESENCE_MODULES):
        return []
    return ["kamailio-presence-modules"]


class OurPresence(OurProxy):
    """Our proxy (OurProxy: this tree's code, MD5 digest) with the pres-rules documents in
    its database before the first SUBSCRIBE."""

    def __init__(self, work: Path, pubs: list[tuple[str, str]], subs: list[tuple[str, str]],
                 docs: list[tuple[str, str]], workers: int = 2) -> None:
        super().__init__(work, pubs + subs, workers=workers)
        from ngnpro.models import open_database
        from ngnpro.models.xcap import XcapDocument

        engine, factory = open_database(self.db_url)
        with factory() as s, s.begin():
            for user, doc in docs:
                s.add(XcapDocument(auid="pres-rules", xui=f"{user}@{DOMAIN}", filename="index", document=doc,
                                   etag=hashlib.md5(doc.encode()).hexdigest()))
        engine.dispose()


class KamailioPresence(Server):
    """Kamailio 5.6's presence agent, 4 UDP workers as the SIP bench's Kamailio, on SQLite
    with its busy-timeout shim (sipbench's sqlite_busy.c) as our proxy's SQLite has one."""

    def __init__(self, work: Path, pubs: list[tuple[str, str]], subs: list[tuple[str, str]],
                 docs: list[tuple[str, str]], subs_db_mode: int = 1) -> None:
        self.port = free_port()
        db = work / "kamailio.sqlite"
        con = sqlite3.connect(db)
        con.executescript(
            "CREATE TABLE version (table_name VARCHAR(32) NOT NULL, table_version INTEGER DEFAULT 0 "
            "NOT NULL, CONSTRAINT version_table_name_idx UNIQUE (table_name));"
            "INSERT INTO version VALUES ('version', 1);")
        for name in ("auth_db", "presence"):
            con.executescript((KAMAILIO_SQL / f"{name}-create.sql").read_text())
        con.executemany("INSERT INTO subscriber (username, domain, password) VALUES (?, ?, ?)",
                        [(u, DOMAIN, p) for u, p in pubs + subs])
        con.executemany(
            "INSERT INTO xcap (username, domain, doc, doc_type, etag, source, doc_uri, port) "
            "VALUES (?, ?, ?, 2, ?, 1, ?, 0)",
            [(u, DOMAIN, doc.encode(), hashlib.md5(doc.encode()).hexdigest(),
              f"/xcap-root/pres-rules/users/sip:{u}@{DOMAIN}/index") for u, doc in docs])
        con.commit()
        con.execute("PRAGMA journal_mode=WAL")
        con.close()
        rundir = work / "kamailio-run"
        rundir.mkdir()
        env = dict(os.environ)
        shim = sqlite_busy_shim(work)
        if shim:
            env["LD_PRELOAD"] = str(shim)
        self.logfile = work / "kamailio.log"
        self.log = open(self.logfile, "wb")
        binary = shutil.which("kamailio") or "/usr/sbin/kamailio"
        self.proc = subprocess.Popen(
            [binary, "-f", str(KAMAILIO_PRESENCE_CFG), "-DD", "-E", "-n", "4", "-m", "256", "-M", "16",
             "-l", f"udp:127.0.0.1:{self.port}", "-Y", str(rundir), "-P", str(rundir / "k.pid"),
             "-A", f'DBURL="sqlite://{db}"', "-A", f'SERVERADDR="sip:127.0.0.1:{self.port}"',
             "-A", f"SUBSDBMODE={subs_db_mode}"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
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
