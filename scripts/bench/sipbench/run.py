"""The set-ups a run compares and one set-up's tests: start its server (and FreeRADIUS for
an accounting line), climb each test, stop everything.

A line is only a comparison when both systems do the same work, so each set-up says what
it persists and whether it accounts (``Setup.work``, printed in the report):
our proxy as shipped (overload control on) without accounting, and with accounting to a
real FreeRADIUS; Kamailio in memory (ANCHORS.md's set-up), write-through and write-back on
SQLite with the dialog module, and write-back with acc to its tables and RADIUS.
"""

from __future__ import annotations

import argparse
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .common import (
    GATEWAY_IP,
    ROUTED,
    USERS,
    WARM_PASSES,
    free_port,
    free_port_on,
    register_contact,
    users,
)
from .load import Load, caller_scenario, checking_uas, climb, sipp_uas
from .servers import EnumDns, Kamailio, OurProxy, Radius, Server, has_accounting_switch


@dataclass(frozen=True)
class Setup:
    key: str
    system: str  # "sipproxy" or "kamailio"
    mode: str  # Kamailio: servers.KAMAILIO_MODES; ours: "plain" or "accounting"
    tests: tuple[str, ...]  # of register, call: accounting changes calls only
    label: str
    work: str

    @property
    def accounting(self) -> bool:
        return self.mode == "accounting"


def setups(workers: int) -> list[Setup]:
    """Every set-up, in the order of a round (every other round runs them backwards): each
    of ours next to the Kamailio line it is compared with first, so the pairs are measured
    minutes apart, not half an hour."""
    ours = f"sipproxy ({workers} worker process{'es' if workers > 1 else ''})"
    plain_acc = ("no accounting (`[sipproxy] accounting = false`, no `[radius] server`)"
                 if has_accounting_switch() else "no accounting (no `[radius] server`)")
    persist = ("SQLite (WAL): a new binding written at once, refreshes written back every 1 s "
               "(`location_write_back`); every call's dialog row written in batches every 50 ms; "
               "overload control on as shipped (`overload_delay` 250 ms); an info log line per "
               "registration and per call, as shipped (Kamailio's set-ups log nothing)")
    sqlite = "SQLite (WAL, synchronous=NORMAL and a 30 s busy timeout, as ours)"
    return [
        Setup("sipproxy", "sipproxy", "plain", ("register", "call"), ours, f"{persist}; {plain_acc}"),
        Setup("kamailio-write-back", "kamailio", "write-back", ("register", "call"),
              "Kamailio 5.6, write-back",
              f"{sqlite}: usrloc `db_mode` 2 and dialog `db_mode` 2 (delayed), both flushed every "
              "1 s; no overload control (no pike/ratelimit); no accounting"),
        Setup("sipproxy-acc", "sipproxy", "accounting", ("call",), f"{ours}, accounting on",
              "as the plain line, plus accounting: every call's Start and Stop to FreeRADIUS "
              "(`[radius] server`) and its row in the `accounting` table"),
        Setup("kamailio-acc", "kamailio", "accounting", ("call",), "Kamailio 5.6, write-back, acc on",
              "as the write-back line, plus acc: the INVITE and BYE transactions written to its "
              "`acc` table (SQLite) and sent to the same FreeRADIUS (acc_radius)"),
        Setup("kamailio-write-through", "kamailio", "write-through", ("register", "call"),
              "Kamailio 5.6, write-through",
              f"{sqlite}: usrloc `db_mode` 1 (write-through) and dialog `db_mode` 1 (realtime); "
              "no overload control; no accounting"),
        Setup("kamailio-memory", "kamailio", "memory", ("register", "call"),
              "Kamailio 5.6, in memory",
              "usrloc in memory, no dialog module (ANCHORS.md's set-up); no overload control; "
              "no accounting"),
    ]


class RecordCheck:
    """After each point of an accounting line: every completed call has exactly one Start
    and one Stop record in FreeRADIUS's detail file -- nothing lost, nothing twice.  Records
    may trail the calls (our proxy sends from its queue), so up to ``wait`` seconds are
    given for them to arrive; ones still missing then fail the point."""

    def __init__(self, radius: Radius, wait: float = 15.0) -> None:
        self.radius = radius
        self.wait = wait
        self.base = (0, 0)

    def start(self) -> None:
        self.base = self.radius.records()

    def __call__(self, res: dict) -> str | None:
        deadline = time.monotonic() + self.wait
        while True:
            starts, stops = (n - b for n, b in zip(self.radius.records(), self.base, strict=True))
            if (starts >= res["ok"] and stops >= res["ok"]) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        res["records"] = (starts, stops)
        if starts == stops == res["ok"]:
            return None
        return f"RADIUS records {starts} Start / {stops} Stop for {res['ok']} calls"


class LogErrors:
    """After each point of a Kamailio line: how many ERROR lines Kamailio logged during it
    (``db_errors``).  Its db_sqlite sets no busy timeout, so with 4 workers a write that
    meets another worker's ("database is locked") is dropped: the point may be clean at the
    SIP level while Kamailio left part of its persistent work undone, and the report says
    how much.  It does not fail the point: what the caller sees decides that."""

    def __init__(self, server: Kamailio) -> None:
        self.server = server
        self.base = 0

    def start(self) -> None:
        self.base = self.server.errors()

    def __call__(self, res: dict) -> str | None:
        res["db_errors"] = self.server.errors() - self.base
        return None


class Checks:
    """Several checks after a point; the first problem found fails it."""

    def __init__(self, *checks) -> None:  # noqa: ANN002 - RecordCheck, LogErrors
        self.checks = [c for c in checks if c is not None]

    def start(self) -> None:
        for c in self.checks:
            c.start()

    def __call__(self, res: dict) -> str | None:
        problems = [p for p in (c(res) for c in self.checks) if p]
        return "; ".join(problems) or None


def bench_setup(setup: Setup, work: Path, args: argparse.Namespace, round_no: int = 0) -> dict:
    """Start ``setup``'s server, climb each of its tests (``args.tests``), stop it."""
    accounts = users()
    sub = work / setup.key
    sub.mkdir(parents=True)
    load = Load(sub, accounts, args.sipp_procs, keep=args.keep)
    print(f"{setup.key}: starting", flush=True)
    ours = setup.system == "sipproxy"
    routed = [t for t in ROUTED if t in args.tests] if setup.key == "sipproxy" else []
    gateway_port = free_port_on(GATEWAY_IP) if routed else None
    # the LCR flow asks ENUM first too (a number nobody has here): enumdns for both
    enum_port = free_port() if routed else None
    helpers: list[Server] = []
    radius = Radius(sub) if setup.accounting else None
    if radius:
        helpers.append(radius)
    try:
        radius_port = radius.port if radius else None
        server: Server = (
            OurProxy(sub, accounts, workers=args.workers, overload_delay=args.overload_delay,
                     gateway_port=gateway_port, enum_port=enum_port, radius_port=radius_port)
            if ours else Kamailio(sub, accounts, setup.mode, radius_port=radius_port))
    except Exception:
        for helper in helpers:
            helper.stop()
        raise
    out: dict = {}
    start = args.start
    try:
        addr = ("127.0.0.1", server.port)
        pid = server.proc.pid
        if "register" in args.tests and "register" in setup.tests:
            out["register"] = climb(setup.key, load, "register_auth.xml", addr, pid, start["register"],
                                    args.seconds, [], args.max_register, refine=args.refine,
                                    check=Checks(LogErrors(server) if isinstance(server, Kamailio) else None))
        calls = [t for t in ("call", *routed) if t in args.tests and (t in setup.tests or t in routed)]
        if calls:
            out.update(_calls(setup, server, sub, load, calls, routed, gateway_port, enum_port,
                              radius, helpers, args, round_no))
    finally:
        for helper in helpers:
            helper.stop()
        server.stop()
        if isinstance(server, Kamailio):
            out["log_errors"] = server.errors()
        if isinstance(server, OurProxy):
            out["refused_logged"] = server.refused_logged()
    return out


def _calls(setup: Setup, server: Server, sub: Path, load: Load, calls: list[str], routed: list[str],
           gateway_port: int | None, enum_port: int | None, radius: Radius | None,
           helpers: list[Server], args: argparse.Namespace, round_no: int) -> dict:
    """The call tests of one set-up, against a sipp UAS registered as ``uas`` (and the
    gateway UAS for LCR); each UAS checks the Request-URI it gets."""
    out: dict = {}
    addr = ("127.0.0.1", server.port)
    pid = server.proc.pid
    if enum_port is not None:
        helpers.append(EnumDns(sub, server.db_url, enum_port))
    uas_port = free_port()
    while uas_port in load.ports:  # the callers' sipp processes bind theirs at each point
        uas_port = free_port()
    status = register_contact(addr, "uas", "uaspw", uas_port)
    if status != 200:
        raise RuntimeError(f"{setup.key}: registering the UAS got {status}")
    # the registered UAS answers calls routed to its contact (plain calls, ENUM);
    # the gateway UAS calls for the number dialled (the To header's), national form
    uas_expect = rf"^INVITE sip:uas@127[.]0[.]0[.]1:{uas_port} SIP/2[.]0"
    gw_expect = (rf"^INVITE sip:(0[1-9][0-9]+)@{GATEWAY_IP.replace('.', '[.]')}:{gateway_port} "
                 r"SIP/2[.]0.*To: *.sip:\1@")
    uases = [sipp_uas(sub, "uas", checking_uas(sub, "registered", uas_expect), "127.0.0.1", uas_port)]
    if "lcr" in routed:
        uases.append(sipp_uas(sub, "gateway", checking_uas(sub, "gateway", gw_expect), GATEWAY_IP,
                              gateway_port))
    try:
        time.sleep(0.5)
        # UDP lets a 180 overtake the 200 through a multi-process proxy: sipp must not
        # count that reordering as a failed call (-abortunexp off); real failures still
        # fail by timeout or error response.
        extra = ["-d", str(args.hold_ms), "-default_behaviors", "all,-abortunexp"]
        scenarios = {"call": ("uac_auth.xml", ["-s", "uas"]),
                     "lcr": (str(caller_scenario(sub, 3)), []),
                     "enum": (str(caller_scenario(sub, 4)), [])}
        # the host's speed drifts within minutes: every other round runs the call tests
        # in the reverse order (plain call last), as the rounds alternate the set-ups
        for test in (calls if round_no % 2 == 0 else calls[::-1]):
            scenario, own = scenarios[test]
            if routed:
                # unmeasured passes over the callers, as a running proxy has its caches
                # (the ENUM answers: TTL 3600 s) warm; the same for every test.  Each
                # worker has its own DNS cache, and a new sipp process's calls do not keep
                # to the worker of the last one: each pass leaves about half of what the
                # last left uncached in a worker.
                for _ in range(WARM_PASSES):
                    warm = load.run(scenario, addr, 200, USERS / 200, own + extra)
                    print(f"  {setup.key} {test}: warm-up, {warm['ok']}/{warm['total']} calls answered",
                          flush=True)
                time.sleep(1.0)
            side = radius or (helpers[0] if test == "enum" and helpers else None)
            out[test] = climb(
                f"{setup.key} {test}", load, scenario, addr, pid, args.start["call"], args.seconds,
                own + extra, args.max_call, per_call_hold=args.hold_ms / 1000, refine=args.refine,
                side_pid=side.proc.pid if side else None,
                check=Checks(RecordCheck(radius) if radius else None,
                             LogErrors(server) if isinstance(server, Kamailio) else None),
            )
    finally:
        for uas in uases:
            uas.terminate()
            try:
                uas.wait(5)
            except subprocess.TimeoutExpired:
                uas.kill()
                uas.wait()
    return out
