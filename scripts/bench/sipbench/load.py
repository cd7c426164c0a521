"""The load: sipp processes sharing an offered rate, one load point measured with the
server's CPU time around it, and the rate climb that finds a set-up's best clean rate.

Every system climbs from the same start rate, and the climb only stops below the cap
(``max_rate``) when a point fails: a figure the cap stopped is flagged ``capped`` so that
the report can print it as "≥" (a cap is not a ceiling).  The 503s each point drew are
counted from sipp's error log (every unexpected response is written there with its status
line), so the report can say how many 503s each system sent.
"""

from __future__ import annotations

import csv
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from .common import SIPP_DIR, cpu_seconds, free_port, uptime_load, write_injection

#: how sipp writes an unexpected 503 (or one after the call died) into its error log
_REFUSED = b"received 'SIP/2.0 503 "


def caller_scenario(work: Path, field: int) -> Path:
    """uac_auth.xml calling the number of the injection file's ``field`` instead of ``-s``."""
    path = work / f"uac_auth_field{field}.xml"
    path.write_text((SIPP_DIR / "uac_auth.xml").read_text().replace("[service]", f"[field{field}]"))
    return path


def checking_uas(work: Path, name: str, expect: str) -> Path:
    """uas.xml answering only an INVITE that matches the POSIX ERE ``expect`` (searched in
    the whole message, so ``^`` is the request line); anything else gets 404, which the
    caller's sipp counts as a failed call: a wrongly routed call fails the point."""
    src = (SIPP_DIR / "uas.xml").read_text()
    head, invite, rest = src.partition('<recv request="INVITE" crlf="true"/>')
    body, timewait, tail = rest.partition("<timewait")
    if not invite or not timewait:
        raise RuntimeError("tests/sipp/uas.xml changed: cannot add the routing check")
    check = f'''<recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="{expect}" search_in="msg" check_it="false" assign_to="routed"/>
    </action>
  </recv>
  <nop test="routed" next="routed_ok"/>
  <send>
    <![CDATA[

      SIP/2.0 404 Wrongly Routed
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag02[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <recv request="ACK" next="routed_end"/>
  <label id="routed_ok"/>'''
    path = work / f"uas_{name}.xml"
    path.write_text(head + check + body + '<label id="routed_end"/>\n  ' + timewait + tail)
    return path


def sipp_uas(work: Path, name: str, scenario: Path, host: str, port: int) -> subprocess.Popen:
    return subprocess.Popen(
        ["sipp", "-sf", str(scenario), "-i", host, "-p", str(port),
         "-nostdin", "-trace_err", "-error_file", str(work / f"{name}-err.log")],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


class Load:
    """``procs`` sipp processes sharing the offered rate, each with its own fixed local port
    (so re-registrations refresh one binding per process instead of piling up new ones)
    and its own slice of the users.  Several source ports also let a proxy whose workers
    share the port with SO_REUSEPORT spread the load over them, as real phones would."""

    def __init__(self, work: Path, accounts: list[tuple[str, str]], procs: int,
                 keep: bool = False) -> None:
        self.work = work
        self.procs = procs
        self.keep = keep
        self.ports = [free_port() for _ in range(procs)]
        self.injections = [
            write_injection(work / f"users-{n}.csv", accounts[n::procs]) for n in range(procs)
        ]

    def run(self, scenario: str, server: tuple[str, int], rate: float, seconds: float,
            extra: list[str]) -> dict:
        """One load point: ``rate`` calls/s in total for ``seconds``.  ``scenario``: a file
        of tests/sipp, or a path.  ``refused``: the 503 responses sipp received."""
        procs = len(self.ports)
        sf = Path(scenario) if os.path.isabs(scenario) else SIPP_DIR / scenario
        scenario = sf.stem
        per = max(1, int(rate / procs))
        total = per * max(1, int(seconds))
        running = []
        stamp = time.time_ns()
        for n, port in enumerate(self.ports):
            stf = self.work / f"stat-{scenario}-{int(rate)}-{stamp}-{n}.csv"
            err = self.work / f"err-{scenario}-{int(rate)}-{stamp}-{n}.log"
            cmd = [
                "sipp", "-sf", str(sf), "-i", "127.0.0.1", "-p", str(port),
                "-inf", str(self.injections[n]),
                "-r", str(per), "-rp", "1000", "-m", str(total), "-l", str(max(100, per * 5)),
                "-nostdin", "-recv_timeout", "8000", "-timeout", f"{int(seconds * 3 + 30)}s",
                "-trace_stat", "-stf", str(stf), "-fd", "1", "-trace_err",
                "-error_file", str(err), "-max_recv_loops", "10000",
                *extra, f"{server[0]}:{server[1]}",
            ]
            with open(self.work / f"sipp-{n}.out", "wb") as out:
                proc = subprocess.Popen(cmd, cwd=self.work, stdout=subprocess.DEVNULL, stderr=out)
            running.append((proc, stf, err))
        started = time.monotonic()
        ok = failed = refused = 0
        broken = []
        for n, (proc, stf, err) in enumerate(running):
            if proc.wait() not in (0, 1):  # 255, 254: sipp's own fatal error (a socket it could not bind)
                broken.append(f"sipp {n} exit {proc.returncode}: "
                              + (self.work / f"sipp-{n}.out").read_text(errors="replace")[-300:].strip())
            rows = list(csv.reader(stf.open(), delimiter=";")) if stf.exists() else []
            if len(rows) >= 2:
                col = {name: i for i, name in enumerate(rows[0])}
                ok += int(rows[-1][col["SuccessfulCall(C)"]])
                failed += int(rows[-1][col["FailedCall(C)"]])
            elif not broken or not broken[-1].startswith(f"sipp {n} "):
                broken.append(f"sipp {n} exit {proc.returncode}: wrote no statistics")
            if err.exists():
                refused += err.read_bytes().count(_REFUSED)
                if not self.keep:
                    err.unlink()
        return {"rate": per * procs, "total": total * procs, "ok": ok, "failed": failed,
                "refused": refused, "elapsed": time.monotonic() - started, "broken": broken}

    def new_ports(self) -> None:
        """Fresh local ports for the sipp processes (after one could not bind its own)."""
        self.ports = [free_port() for _ in self.ports]


#: ``check(result) -> problem or None``, run after a point (e.g. the accounting records)
Check = Callable[[dict], "str | None"]


def climb(label: str, load: Load, scenario: str, server: tuple[str, int], pid: int, start: float,
          seconds: float, extra: list[str], max_rate: float, per_call_hold: float = 0.0,
          refine: int = 2, side_pid: int | None = None, check: Check | None = None) -> dict:
    """Raise the offered rate x1.5 until a point fails (halving first while nothing passed),
    then bisect ``refine`` times between the best clean rate and the failed one (a x1.5 step
    alone leaves up to a third of the capacity unmeasured, for either system); return the
    best clean point.  Clean: every call completed, none failed, sipp kept the pace (the
    point ended within 3 s of its nominal length plus the call hold) and ``check`` found
    nothing.  The last step before ``max_rate`` measures ``max_rate`` itself; a climb that
    passed it stops there with ``capped`` set: the figure is a floor, not a ceiling."""
    best: dict | None = None
    failed: dict | None = None
    capped = False
    rate = min(start, max_rate)
    refused = 0
    #: the clean points' CPU per call by rate (tests climbing from the same start share rates)
    clean_cpu: dict[int, float] = {}
    while True:
        res, clean = _point(label, load, scenario, server, pid, rate, seconds, extra, per_call_hold,
                            side_pid, check)
        refused += res["refused"]
        if clean:
            clean_cpu[res["rate"]] = res["cpu_per_call_ms"]
            best = res
            if rate >= max_rate:
                capped = True
                break
            rate = min(round(rate * 1.5), max_rate)
            continue
        if best is None and rate > 10:
            rate = round(rate / 2)  # nothing clean yet: look lower
            continue
        failed = res
        break
    for _ in range(refine if best is not None and failed is not None else 0):
        rate = round((best["rate"] + failed["rate"]) / 2)
        if rate - best["rate"] < load.procs:  # the rate is split over the sipp processes
            break
        res, clean = _point(label, load, scenario, server, pid, rate, seconds, extra, per_call_hold,
                            side_pid, check)
        refused += res["refused"]
        if clean:
            best = res
            clean_cpu[res["rate"]] = res["cpu_per_call_ms"]
        else:
            failed = res
    best = dict(best or {"rate": 0, "achieved": 0.0, "cpu_per_call_ms": float("nan"),
                         "server_cpu_pct": 0.0})
    best.update(clean_cpu=clean_cpu, capped=capped, refused_total=refused,
                failed_at=failed["rate"] if failed else None,
                failed_why=failed["why"] if failed else "",
                failed_cpu_pct=failed["server_cpu_pct"] if failed else float("nan"),
                load=uptime_load())
    return best


def _point(label: str, load: Load, scenario: str, server: tuple[str, int], pid: int, rate: float,
           seconds: float, extra: list[str], per_call_hold: float,
           side_pid: int | None = None, check: Check | None = None) -> tuple[dict, bool]:
    """One load point with the server's CPU time around it; (result, clean).  ``side_pid``:
    a helper server (enumdns, FreeRADIUS) whose CPU is measured apart
    (``side_cpu_per_call_ms``): it is not the proxy's cost, and both systems share it."""
    start = getattr(check, "start", None)
    if start is not None:
        start()
    cpu0 = cpu_seconds(pid)
    side0 = cpu_seconds(side_pid) if side_pid else 0.0
    res = load.run(scenario, server, rate, seconds, extra)
    if res["broken"]:
        # the load generator failed, not the server: say so, and measure the point again
        print(f"  {label}: the load generator failed ({'; '.join(res['broken'])}); again on new ports",
              flush=True)
        load.new_ports()
        time.sleep(1.0)
        settle(pid)
        if start is not None:
            start()
        cpu0 = cpu_seconds(pid)
        side0 = cpu_seconds(side_pid) if side_pid else 0.0
        res = load.run(scenario, server, rate, seconds, extra)
        if res["broken"]:
            raise RuntimeError(f"the load generator failed twice: {'; '.join(res['broken'])}")
    used = cpu_seconds(pid) - cpu0
    res["cpu_per_call_ms"] = used * 1000 / max(res["ok"], 1)
    if side_pid:
        res["side_cpu_per_call_ms"] = (cpu_seconds(side_pid) - side0) * 1000 / max(res["ok"], 1)
    res["server_cpu_pct"] = used / max(res["elapsed"] - per_call_hold, 0.001) * 100
    late = res["elapsed"] - (seconds + per_call_hold)
    why = []
    if res["failed"]:
        why.append(f"{res['failed']} failed")
    if res["ok"] + res["failed"] < res["total"]:
        why.append(f"{res['total'] - res['ok'] - res['failed']} unfinished")
    if late > 3:
        why.append(f"{late:.0f} s behind schedule")
    if res["refused"]:
        why.append(f"{res['refused']} x 503")
    problem = check(res) if check else None
    if problem:
        why.append(problem)
    clean = res["failed"] == 0 and res["ok"] == res["total"] and late <= 3 and not problem
    res["why"] = ", ".join(why)
    res["achieved"] = res["rate"]
    side = f", side cpu/call={res['side_cpu_per_call_ms']:.3f} ms" if side_pid else ""
    print(f"  {label} {Path(scenario).stem} {res['rate']:>7.0f}/s: ok={res['ok']}/{res['total']} "
          f"failed={res['failed']} 503s={res['refused']} in {res['elapsed']:.1f} s, server cpu/call="
          f"{res['cpu_per_call_ms']:.3f} ms, server cpu={res['server_cpu_pct']:.0f}%{side} "
          f"{'clean' if clean else 'FAIL (' + res['why'] + ')'} (load {uptime_load()})", flush=True)
    time.sleep(1.0)
    if not clean:
        settle(pid)
    return res, clean


def settle(pid: int, limit: float = 45.0) -> None:
    """After an overloaded point, wait until the server is idle again (under 5 % of a core
    for a second): its transactions keep retransmitting for up to 32 s (64*T1), and a point
    measured on top of that would measure the last one's backlog -- for either system."""
    deadline = time.monotonic() + limit
    waited = 0.0
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(1.0)
        waited += 1.0
        if cpu_seconds(pid) - before < 0.05:
            break
    print(f"    (server idle again after {waited:.0f} s)", flush=True)
