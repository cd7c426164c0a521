"""The BENCHMARKS.md text of a presence run, and writing it into its own section.

Every figure comes from here (``--write``), never typed by hand: a reader can rerun the
command printed above the table.  Two rows per system: the first point of its climb
(light load: the latency a watcher sees when nothing queues) and its best clean point
(the highest PUBLISH rate with every NOTIFY delivered, right, and p99 under the limit).
"""

from __future__ import annotations

import argparse
import datetime as _dt

from sipbench.common import ROOT, machine, median, uptime_load

HEADING = "## Presence (PUBLISH to NOTIFY, `scripts/bench/presence`) vs Kamailio"


def command(args: argparse.Namespace) -> str:
    """The command line of this run, as a reader would type it again."""
    return " ".join(["scripts/bench/presence", *args.argv])


def _f(value: float, digits: int = 1) -> str:
    return "–" if value != value else f"{value:,.{digits}f}"


def _row(label: str, which: str, p: dict | None, floor: bool = False) -> str:
    if not p:
        return f"| {label} | {which} | – | – | – | – | – | – | – |"
    ge = "≥ " if floor else ""
    return (f"| {label} | {which} | {ge}{p['rate']:,.0f} | {ge}{p['notify_per_s']:,.0f} | {_f(p['p50_ms'])} | "
            f"{_f(p['p99_ms'])} | {p['lost']} / {p['wrong']} | {p['server_cpu'] * 100:.0f} % | "
            f"{_f(p['cpu_ms_per_notify'], 3)} |")


def floor(res: dict) -> bool:
    """Whether the best clean point is a floor, not the system's ceiling: the climb reached
    its cap, or stopped only because the load generator fell behind its schedule."""
    f = res.get("failed")
    return res.get("capped", False) or bool(f and f["problem"].startswith("load generator"))


def _failure(res: dict) -> str:
    if res.get("capped"):
        return "none: the cap was reached"
    f = res.get("failed")
    if not f:
        return "–"
    return (f"{f['rate']:,.0f} PUBLISH/s: {f['problem']} (NOTIFY/s {f['notify_per_s']:,.0f}, server CPU "
            f"{f['server_cpu'] * 100:.0f} %, load generator CPU {f['loadgen_cpu'] * 100:.0f} %)")


def _median(values: list[float]) -> float:
    return median([v for v in values if v == v])


def report(rounds: list[dict[str, dict]], args: argparse.Namespace, load_before: str,
           kamailio_note: str | None) -> str:
    """The section's text: what was measured, the table (per round: the lowest point and
    the best clean point of each system), where each climb stopped, the ratios of the
    medians, and Kamailio's absence explained when it did not run."""
    wpp = args.watchers // args.publishers
    out = [
        f"Measured {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC on {machine()}, loopback, the load "
        f"generator (scripts/bench/presbench/ua.py, one asyncio process, {args.sockets} UDP sockets) on "
        f"the same machine.  Load average (1/5/15 min) {load_before} before the run, {uptime_load()} at "
        f"its end.  {args.publishers:,} publishers and {args.watchers:,} watchers: watcher *w* subscribes "
        f"to publisher *w* mod {args.publishers} ({args.watchers:,} subscriptions, {wpp} watchers per "
        f"publisher), each publisher's pres-rules document allowing exactly its watchers and showing "
        f"the tuple with its note.  Digest MD5 on every request (nonces reused with the next "
        f"nonce-count).  A point publishes at a fixed rate for {args.seconds:g} s, the publishers in "
        f"turn, each PUBLISH a modify (SIP-If-Match) with a note of its own; the climb starts at "
        f"{args.start:,.0f} PUBLISH/s and goes x1.5 until a point loses a NOTIFY, delivers a wrong "
        f"note, fails a PUBLISH or has p99 above {args.max_p99:,.0f} ms, then {args.refine} bisection "
        f"steps; a point where the load generator fell behind its schedule fails as the generator's "
        f"(the best clean figure is then a floor, marked ≥).  Latency: from the first "
        f"send of the PUBLISH to each watcher's NOTIFY carrying its note; every NOTIFY body is "
        f"checked (lost / wrong: a (note, watcher) pair never delivered / a NOTIFY without its "
        f"publisher's note).  NOTIFY/s: the NOTIFYs owed that arrived, over the time from the "
        f"first PUBLISH to the last of them.  CPU per NOTIFY is all the server's processes over "
        f"the point, PUBLISH handling included.  {len(rounds)} round(s), every other one in the reverse order.",
        "",
        "```",
        f"# {command(args)}",
        "| system | round, point | PUBLISH/s | NOTIFY/s | p50 ms | p99 ms | lost / wrong | server CPU | "
        "CPU ms per NOTIFY |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, results in enumerate(rounds, 1):
        for res in results.values():
            first = min(res["points"], key=lambda p: p["rate"]) if res["points"] else None
            out.append(_row(res["label"], f"{n}, first", first if first and not first["problem"] else None))
            out.append(_row(res["label"], f"{n}, best clean", res["best"], floor(res)))
    out.append("```")
    out.append("")
    for n, results in enumerate(rounds, 1):
        for res in results.values():
            errors = (f"; {res['log_errors']} ERROR lines in its log" if res.get("log_errors") is not None else "")
            retrans = sum(p["retransmits"] for p in res["points"] if not p["problem"])
            challenged = sum(p["challenges"] for p in res["points"] if not p["problem"])
            repeats = sum(p.get("notify_repeats", 0) for p in res["points"] if not p["problem"])
            idle = f"; server CPU idle (subscribed, nothing published) {res['idle_cpu'] * 100:.1f} %"
            out.append(f"- Round {n}, {res['label']}: climb stopped at {_failure(res)}; {retrans} UDP "
                       f"retransmissions, {challenged} digest challenges of a reused nonce (each one "
                       f"round trip more, in the latency) and {repeats} NOTIFYs received again (the "
                       f"server missed the 200) over the clean points{idle}{errors}.")
    for key in ("sipproxy", "kamailio"):
        res = next((r[key] for r in rounds if key in r), None)
        if res:
            out.append(f"- {res['label']}: {res['work']}.")
    bests = {key: [r[key]["best"] for r in rounds if key in r and r[key]["best"]] for key in ("sipproxy", "kamailio")}
    if bests["sipproxy"] and bests["kamailio"]:
        rate = {k: _median([p["notify_per_s"] for p in v]) for k, v in bests.items()}
        cpu = {k: _median([p["cpu_ms_per_notify"] for p in v]) for k, v in bests.items()}
        kam_floor = any(floor(r["kamailio"]) for r in rounds if "kamailio" in r)
        our_floor = any(floor(r["sipproxy"]) for r in rounds if "sipproxy" in r)
        sign = "≤ " if kam_floor and not our_floor else "≥ " if our_floor and not kam_floor else ""
        if kam_floor and our_floor:
            sign = "~ (both floors) "
        out.append(f"- Ratios of the medians (ours / Kamailio) at the best clean points: NOTIFY/s "
                   f"{sign}{rate['sipproxy'] / rate['kamailio']:.2f}x, CPU per NOTIFY "
                   f"{cpu['sipproxy'] / cpu['kamailio']:.2f}x (lower is better for ours).")
    if kamailio_note:
        out.append(f"- Kamailio not measured: {kamailio_note}.")
    gen = [p for r in rounds for res in r.values() for p in res["points"] if not p["problem"]]
    if gen:
        out.append(f"- Load generator on the clean points: schedule lag p99 at most "
                   f"{max(p['lag_p99_ms'] for p in gen):.1f} ms, its CPU at most "
                   f"{max(p['loadgen_cpu'] for p in gen) * 100:.0f} % of a core.")
    return "\n".join(out)


def write_benchmarks(text: str) -> None:
    """Replace the Presence section of BENCHMARKS.md (a new one goes at the end)."""
    path = ROOT / "BENCHMARKS.md"
    content = path.read_text()
    block = f"{HEADING}\n\n{text}\n"
    if HEADING in content:
        start = content.index(HEADING)
        end = content.find("\n## ", start + 1)
        end = end + 1 if end >= 0 else len(content)
        content = content[:start] + block + ("\n" if end < len(content) else "") + content[end:]
    else:
        content = content.rstrip("\n") + "\n\n" + block
    path.write_text(content)
