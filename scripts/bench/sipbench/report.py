"""The BENCHMARKS.md text of a run, and writing it into the script's own subsections.

Every figure in the SIP comparison tables comes from here: the tables are written by the
script (``--write``), never by hand, so a reader can rerun the command printed above them.
A rate whose climb reached the cap without failing is printed "≥" (the cap, not the
system, ended it), and a ratio with such a figure says which way it can only move.
"""

from __future__ import annotations

import argparse
import datetime as _dt

from .common import ROOT, WARM_PASSES, machine, median, uptime_load

MY_HEADING = "### Registrations and calls with digest auth vs Kamailio (`scripts/bench/sipproxy`)"
ONE_SOURCE_HEADING = ("### From one source address: every sipp process's load from one socket "
                      "(`scripts/bench/sipproxy --sipp-procs 1`)")
ROUTED_HEADING = "### Calls through LCR and ENUM beside plain calls (`scripts/bench/sipproxy --tests call,lcr,enum`)"
NAN = float("nan")


def command(args: argparse.Namespace) -> str:
    """The command line of this run, as a reader would type it again."""
    return " ".join(["scripts/bench/sipproxy", *args.argv])


def _fig(results: dict, key: str, test: str, field: str) -> float:
    value = results.get(key, {}).get(test, {}).get(field, NAN)
    return NAN if value is None else value


def _capped(results: dict, key: str, test: str) -> bool:
    return bool(results.get(key, {}).get(test, {}).get("capped"))


def _rate(value: float, capped: bool) -> str:
    if value != value:
        return "–"
    return f"{'≥ ' if capped else ''}{value:,.0f}"


def _ms(value: float) -> str:
    return "–" if value != value else f"{value:.3f}"


def _failure(res: dict) -> str:
    """Where a climb stopped: the first failed point (after bisection: the lowest), what
    failed and the server's CPU then, so a generator-bound failure shows as one."""
    if not res:
        return "–"
    if res.get("capped"):
        return "none: the cap was reached"
    if res.get("failed_at") is None:
        return "–"
    return (f"{res['failed_at']:,}/s: {res.get('failed_why') or 'failed'} "
            f"(server CPU {res.get('failed_cpu_pct', NAN):.0f} %)")


def report(rounds: list[dict[str, dict]], args: argparse.Namespace, lines_of: list, load_before: str) -> str:
    """One row per set-up and round, the medians over the rounds, and the ratios of the
    medians for the pairs that do the same work."""
    several = len(rounds) > 1
    shown = [s for s in lines_of if any(s.key in r for r in rounds)]
    capped_any = any(res.get("capped") for r in rounds for tests in r.values() if isinstance(tests, dict)
                     for res in tests.values() if isinstance(res, dict))
    out = [
        f"Measured {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC on {machine()}, loopback, load from "
        f"{args.sipp_procs} sipp 3.6 processes.  Load average (1/5/15 min) {load_before} before the "
        f"run, {uptime_load()} at its end.  Every set-up's rate climbs from the same start "
        f"({args.start['register']:,.0f} registrations/s, {args.start['call']:,.0f} calls/s) x1.5 until a "
        f"point fails, then {args.refine} bisection steps between the last clean and the failed rate; "
        f"points of {args.seconds:g} s.  The climb's caps: {args.max_register:,.0f} registrations/s, "
        f"{args.max_call:,.0f} calls/s; "
        + ("figures marked ≥ reached their cap without failing (a floor, not a ceiling).  "
           if capped_any else "no climb reached its cap.  ")
        + "The best clean point is shown: every "
        "call completed and answered by the registered UAS (it checks the Request-URI), 0 failed, "
        "sipp on schedule, and on the accounting lines exactly one Start and one Stop record per "
        "call in FreeRADIUS's detail file."
        + (f"  {len(rounds)} rounds, every other one running the set-ups in the reverse order."
           if several else ""),
        "",
        f"Command: `{command(args)}`",
        "",
        "| set-up | what it persists and accounts |",
        "|---|---|",
    ]
    out += [f"| {s.label} | {s.work} |" for s in shown]
    out += [
        "",
        "| set-up | registrations/s (digest) | calls/s (digest, 0 failed) | CPU ms per registration "
        "| CPU ms per call | 503s sent in the climb (register / call) | first failed point: registrations "
        "| first failed point: calls |",
        "|---|---:|---:|---:|---:|---|---|---|",
    ]
    for n, results in enumerate(rounds):
        tag = f", round {n + 1}" if several else ""
        for s in shown:
            if s.key not in results:
                continue
            r = results[s.key]
            reg, call = r.get("register", {}), r.get("call", {})
            lost = [f"{test}: {r[test]['db_errors']}" for test in ("register", "call")
                    if r.get(test, {}).get("db_errors")]
            note = (f" (Kamailio's failed database writes at the best point, {', '.join(lost)}; "
                    f"{r.get('log_errors', 0)} ERROR lines in all)") if lost else ""
            out.append(
                f"| {s.label}{tag} | {_rate(_fig(results, s.key, 'register', 'achieved'), _capped(results, s.key, 'register'))} "
                f"| {_rate(_fig(results, s.key, 'call', 'achieved'), _capped(results, s.key, 'call'))} "
                f"| {_ms(_fig(results, s.key, 'register', 'cpu_per_call_ms'))} "
                f"| {_ms(_fig(results, s.key, 'call', 'cpu_per_call_ms'))} "
                f"| {reg.get('refused_total', '–')} / {call.get('refused_total', '–')}"
                + (f" (the proxy's own count, whole run: {r['refused_logged']})"
                   if r.get("refused_logged") is not None else "") + " "
                f"| {_failure(reg)} | {_failure(call)}{note} |")

    def med(key: str, test: str, field: str) -> float:
        return median([_fig(r, key, test, field) for r in rounds])

    def any_capped(key: str, test: str) -> bool:
        return any(_capped(r, key, test) for r in rounds)

    if several:
        for s in shown:
            out.append(
                f"| **{s.label}, median** | {_rate(med(s.key, 'register', 'achieved'), any_capped(s.key, 'register'))} "
                f"| {_rate(med(s.key, 'call', 'achieved'), any_capped(s.key, 'call'))} "
                f"| {_ms(med(s.key, 'register', 'cpu_per_call_ms'))} | {_ms(med(s.key, 'call', 'cpu_per_call_ms'))} "
                "| | | |")

    def ratio(a: str, b: str, test: str, per_cpu: bool = False) -> str:
        if per_cpu:  # work per CPU-second: the inverse ratio of CPU per item
            x, y = med(b, test, "cpu_per_call_ms"), med(a, test, "cpu_per_call_ms")
            return f"{x / y:.2f}" if x == x and y == y and y else "–"
        x, y = med(a, test, "achieved"), med(b, test, "achieved")
        if not (x == x and y == y and y):
            return "–"
        up, down = any_capped(a, test), any_capped(b, test)
        if up and down:
            return "n/a (both capped)"
        return f"{'≥ ' if up else '≤ ' if down else ''}**{x / y:.2f}**"

    names = {s.key: s.label for s in shown}
    pairs = [(a, b, f"{names[a]} / {names[b]}") for a, b in (
        ("sipproxy", "kamailio-write-back"), ("sipproxy", "kamailio-write-through"),
        ("sipproxy", "kamailio-memory"), ("sipproxy-acc", "kamailio-acc"))
        if a in names and b in names]
    pairs += [(a, b, f"accounting on / off, {what}") for a, b, what in (
        ("sipproxy-acc", "sipproxy", "sipproxy (target: calls ≥ 0.85)"),
        ("kamailio-acc", "kamailio-write-back", "Kamailio write-back")) if a in names and b in names]
    if pairs:
        out += ["", f"Ratios of the {'medians' if several else 'figures'}:", "",
                "| | registrations/s | calls/s | registrations per CPU-second | calls per CPU-second |",
                "|---|---:|---:|---:|---:|"]
        for a, b, label in pairs:
            out.append(f"| {label} | {ratio(a, b, 'register')} | {ratio(a, b, 'call')} "
                       f"| {ratio(a, b, 'register', True)} | {ratio(a, b, 'call', True)} |")
    radius = [(names[k], med(k, "call", "side_cpu_per_call_ms")) for k in ("sipproxy-acc", "kamailio-acc")
              if k in names]
    out += [
        "",
        f"Calls hold {args.hold_ms} ms.  CPU is user+system time of the server's processes (all "
        "workers) during the point, divided by the completed calls or registrations; FreeRADIUS "
        "and the sipp processes are not counted.  503s: the responses with status 503 that sipp "
        "received over all points of the climb (a clean point has none); our proxy sends them from "
        "its overload control, on as shipped.  The first failed point gives what failed there and "
        "the server's CPU (100 % = one core): a failure with the server far from busy is the load "
        "generator's limit rather than the server's.  Kamailio configuration: "
        "`scripts/bench/kamailio.cfg` (the set-up chosen with defines).  Kamailio's db_sqlite "
        "sets no busy timeout: with 4 workers a write that meets another worker's lock fails at "
        "once (\"database is locked\") and the write is lost, so its SQLite set-ups run with "
        "`scripts/bench/sipbench/sqlite_busy.c` preloaded, giving its connections the 30 s busy "
        "timeout and synchronous=NORMAL our proxy's have; should writes still fail, the table gives their number at "
        "the best point (such a point counts as clean when every call succeeded)."
        + ("  FreeRADIUS's own CPU per call at the best point: "
           + ", ".join(f"{n} {v:.3f} ms" for n, v in radius) + "." if radius else ""),
    ]
    return "\n".join(out)


def report_routed(rounds: list[dict[str, dict]], args: argparse.Namespace) -> str:
    """The routed calls (``lcr``, ``enum``) beside the plain ``call`` of the same run."""
    def fig(results: dict, test: str, key: str) -> float:
        return _fig(results, "sipproxy", test, key)

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if a == a and b == b and b else "n/a"

    tests = [t for t in ("call", "lcr", "enum") if t in args.tests]
    several = len(rounds) > 1
    lines = [
        f"Measured {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC on {machine()}, loopback, "
        f"sipproxy with {args.workers} worker process{'es' if args.workers > 1 else ''}, load from "
        f"{args.sipp_procs} sipp 3.6 processes; points of {args.seconds:g} s, the same climb for "
        f"each test ({args.refine} bisection steps), the best clean point (every call completed "
        "and answered by the right UAS, 0 failed) is shown.  Load average (1/5/15 min, as "
        f"`uptime`) at the end of each test's climb; {uptime_load()} at the end of the run.",
        "",
        f"Command: `{command(args)}`",
        "",
        "| | calls/s (digest, 0 failed) | / plain call | CPU ms per call (best point) | / plain call "
        "| CPU ms per call at the common rate | / plain call | enumdns CPU ms per call | load average |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    names = {"call": "end-point to end-point (plain call)", "lcr": "end-point to PSTN (LCR)",
             "enum": "ENUM-routed call"}

    def common_rate(results: dict) -> int | None:
        """The highest rate at which every test had a clean point: CPU per call compared at
        the same load (the best points are at different rates, and the CPU per call falls
        as the rate rises: the fixed costs spread over more calls).  None: no such rate."""
        rates = [set(results.get("sipproxy", {}).get(t, {}).get("clean_cpu", {})) for t in tests]
        both = set.intersection(*rates) if rates else set()
        return max(both) if both else None

    def cpu_near(results: dict, test: str, rate: int | None, target: float) -> tuple[float, int | None]:
        """(CPU ms per call, rate) of ``test`` at ``rate``, or else at its clean rate
        nearest ``target`` (a climb that had to look lower first has other rates)."""
        points = results["sipproxy"].get(test, {}).get("clean_cpu", {})
        if rate is None and points:
            rate = min(points, key=lambda r: (abs(r - target), r))
        return points.get(rate, NAN), rate

    for n, results in enumerate(rounds):
        if "sipproxy" not in results:
            continue
        tag = f", round {n + 1}" if several else ""
        base_rate, base_cpu = fig(results, "call", "achieved"), fig(results, "call", "cpu_per_call_ms")
        same = common_rate(results)
        target = min((fig(results, t, "achieved") for t in tests), default=0.0)
        for test in tests:
            rate, cpu = fig(results, test, "achieved"), fig(results, test, "cpu_per_call_ms")
            side = fig(results, test, "side_cpu_per_call_ms")
            at, at_rate = cpu_near(results, test, same, target)
            at_base, _ = cpu_near(results, "call", same, target)
            lines.append(
                f"| {names[test]}{tag} | {_rate(rate, _capped(results, 'sipproxy', test))} "
                f"| {'' if test == 'call' else ratio(rate, base_rate)} "
                f"| {cpu:.2f} | {'' if test == 'call' else ratio(cpu, base_cpu)} "
                f"| {at:.2f}{f' ({at_rate}/s)' if at_rate else ''} "
                f"| {'' if test == 'call' else ratio(at, at_base)} "
                f"| {f'{side:.3f}' if side == side else ''} "
                f"| {results['sipproxy'].get(test, {}).get('load', '')} |")
    measured = [r for r in rounds if "sipproxy" in r]
    if len(measured) > 1:
        for test in tests:
            rates = [fig(r, test, "achieved") for r in measured]
            cpus = [fig(r, test, "cpu_per_call_ms") for r in measured]
            rate_ratios = [fig(r, test, "achieved") / fig(r, "call", "achieved") for r in measured
                           if fig(r, "call", "achieved")]
            cpu_ratios = [fig(r, test, "cpu_per_call_ms") / fig(r, "call", "cpu_per_call_ms") for r in measured
                          if fig(r, "call", "cpu_per_call_ms")]
            lines.append(
                f"| **{names[test]}, median** | {median(rates):.0f} "
                f"| {'' if test == 'call' else f'{median(rate_ratios):.2f} (median of the rounds)'} "
                f"| {median(cpus):.2f} "
                f"| {'' if test == 'call' else f'{median(cpu_ratios):.2f}'} | | | | |")
    lines.append("")
    lines.append(
        f"Calls hold {args.hold_ms} ms.  \"/ plain call\": the test's figure divided by the plain call's of the "
        "same round (the target: rates within 20 %, a ratio of 0.80 or more).  \"The common rate\": the "
        "highest offered rate every test of the round passed cleanly (the climbs share their "
        "rates), where the CPU per call compares the same load -- the best points are at "
        "different rates, and the CPU per call falls as the rate rises (when a climb had to "
        "look lower first and shares no rate, each test's clean point nearest the lowest best "
        f"rate, its rate shown).  Each test starts with {WARM_PASSES} unmeasured passes over the 1,000 "
        "callers at 200 calls/s (the proxy's caches warm, as a running proxy has them: each "
        "worker has its own DNS cache and a sipp process's calls do not keep to one worker, so "
        f"about 1/{2 ** WARM_PASSES} of the numbers are still looked up in the first point); every "
        "other round runs the tests in the reverse order (the host's speed drifts within "
        "minutes).  CPU is user+system "
        "time of the proxy's processes (all workers) per completed call; enumdns runs apart and "
        "its CPU is shown apart.  LCR: callers in `free-pstn` dial `020NNNNNNN` at the proxy's "
        "domain -> route `003120` -> carrier -> gateway (a sipp UAS on 127.0.0.2, rule `0031` "
        "strip 4 prepend `0`).  ENUM: callers dial `+3130NNNNNNN`, 1,000 numbers in our enumdns "
        "(TTL 3600 s, so after a number's first call the proxy's DNS cache answers) mapped to "
        "`sip:uas@bench.example`.")
    return "\n".join(lines)


def write_benchmarks(text: str, heading: str = MY_HEADING) -> None:
    """Replace our own subsection of the sipproxy section (other subsections stay); a new
    one goes after the last of ours there is (the Kamailio comparison first)."""
    path = ROOT / "BENCHMARKS.md"
    content = path.read_text()
    head = "## sipproxy (registrar + proxy) vs Kamailio"
    section = content.index(head) + len(head)
    block = f"{heading}\n\n{text}\n"
    if heading != MY_HEADING and heading not in content and MY_HEADING in content:
        after = content.index(MY_HEADING)
        ends = [i for i in (content.find("\n## ", after + 1), content.find("\n### ", after + 1)) if i >= 0]
        end = min(ends) + 1 if ends else len(content)
        content = content[:end] + block + ("\n" if end < len(content) else "") + content[end:]
    elif heading in content:
        start = content.index(heading)
        ends = [i for i in (content.find("\n## ", start + 1), content.find("\n### ", start + 1)) if i >= 0]
        end = min(ends) + 1 if ends else len(content)
        content = content[:start] + block + ("\n" if end < len(content) else "") + content[end:]
    else:
        rest = content[section:]
        placeholder = "\n\nNot measured yet.\n"
        if rest.startswith(placeholder):
            rest = rest[len(placeholder):]
        content = content[:section] + "\n\n" + block + rest
    path.write_text(content)
