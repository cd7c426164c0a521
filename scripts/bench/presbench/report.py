"""The BENCHMARKS.md text of a presence run, and writing it into its own section.

Every figure comes from here (``--write``), never typed by hand: a reader can rerun the
command printed above the table.  Two rows per system: the first point of its climb
(light load: the latency a watcher sees when nothing queues) and its best clean point
(the highest PUBLISH rate with every NOTIFY delivered, right, and p99 under the limit).
"""

from __future__ import annotations

import argparse
import datetime as _dt

from sipbench.common import ROOT, machine, uptime_load

HEADING = "## Presence (PUBLISH to NOTIFY, `scripts/bench/presence`) vs Kamailio"


def command(args: argparse.Namespace) -> str:
    """The command line of this run, as a reader would type it again."""
    return " ".join(["scripts/bench/presence", *args.argv])


def _f(value: float, digits: int = 1) -> str:
    return "–" if value != value else f"{value:,.{digits}f}"


def _row(label: str, which: str, p: dict | None) -> str:
    if not p:
        return f"| {label} | {which} | – | – | – | – | – | – | – |"
    return (f"| {label} | {which} | {p['rate']:,.0f} | {p['notify_per_s']:,.0f} | {_f(p['p50_ms'])} | "
            f"{_f(p['p99_ms'])} | {p['lost']} / {p['wrong']} | {p['server_cpu'] * 100:.0f} % | "
            f"{_f(p['cpu_ms_per_notify'], 3)} |")


def _failure(res: dict) -> str:
    if res.get("capped"):
        return "none: the cap was reached"
    f = res.get("failed")
    if not f:
        return "–"
    return (f"{f['rate']:,.0f} PUBLISH/s: {f['problem']} (NOTIFY/s {f['notify_per_s']:,.0f}, "
            f"server CPU {f['server_cpu'] * 100:.0f} %)")


def report(results: dict[str, dict], args: argparse.Namespace, load_before: str,
           kamailio_note: str | None) -> str:
    """The section's text: what was measured, the table, where each climb stopped, the
    ratios, and Kamailio's absence explained when it did not run."""
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
        f"steps; a point where the load generator fell behind its schedule fails as the generator's.  Latency: from the first "
        f"send of the PUBLISH to each watcher's NOTIFY carrying its note; every NOTIFY body is "
        f"checked (lost / wrong: a (note, watcher) pair never delivered / a note of another "
        f"publisher).  CPU per NOTIFY is all the server's processes over the point, PUBLISH "
        f"handling included.",
        "",
        "```",
        f"# {command(args)}",
        "| system | point | PUBLISH/s | NOTIFY/s | p50 ms | p99 ms | lost / wrong | server CPU | "
        "CPU ms per NOTIFY |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results.values():
        label = res["label"]
        first = min(res["points"], key=lambda p: p["rate"]) if res["points"] else None
        out.append(_row(label, "first", first if first and not first["problem"] else None))
        out.append(_row(label, "best clean", res["best"]))
    out.append("```")
    out.append("")
    for res in results.values():
        errors = (f"; {res['log_errors']} ERROR lines in its log" if res.get("log_errors") is not None else "")
        retrans = sum(p["retransmits"] for p in res["points"] if not p["problem"])
        out.append(f"- {res['label']}: climb stopped at {_failure(res)}; {retrans} UDP retransmissions "
                   f"by the load generator over the clean points{errors}; set-up: {res['work']}.")
    ours, kam = results.get("sipproxy", {}).get("best"), results.get("kamailio", {}).get("best")
    if ours and kam:
        out.append(f"- Ratios (ours / Kamailio) at the best clean points: NOTIFY/s "
                   f"{ours['notify_per_s'] / kam['notify_per_s']:.2f}x, CPU per NOTIFY "
                   f"{ours['cpu_ms_per_notify'] / kam['cpu_ms_per_notify']:.2f}x.")
    if kamailio_note:
        out.append(f"- Kamailio not measured: {kamailio_note}.")
    gen = [p for r in results.values() for p in r["points"]]
    if gen:
        out.append(f"- Load generator: schedule lag p99 at most {max(p['lag_p99_ms'] for p in gen):.1f} ms, "
                   f"its CPU at most {max(p['loadgen_cpu'] for p in gen) * 100:.0f} % of a core.")
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
