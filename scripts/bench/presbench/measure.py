"""One system's measurement: subscribe every watcher, check the first NOTIFYs, then climb
the PUBLISH rate point by point until the latency or the losses break.

A point publishes at a fixed rate for a fixed time, the publishers taking turns (publisher
``k % P`` sends the ``k``-th PUBLISH, each with a note of its own).  After the last
PUBLISH it waits up to ``drain`` seconds for the NOTIFYs still owed, then checks every
(note, watcher) pair: each watcher of a publisher must receive a NOTIFY carrying each
note that publisher got 200 for (lost otherwise), and no NOTIFY may carry a note of
another publisher (wrong).  The latency of a pair is from the first send of the PUBLISH
(its challenge, if any, included) to the NOTIFY's arrival.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

from sipbench.common import cpu_seconds

from .ua import LoadGen


@dataclass
class Plan:
    """Who watches whom: watcher ``w`` subscribes to publisher ``w % publishers`` (so each
    publisher has watchers/publishers watchers, one subscription per watcher)."""

    publishers: int
    watchers: int

    def publisher_of(self, w: int) -> int:
        return w % self.publishers

    def watchers_of(self, p: int) -> list[int]:
        return list(range(p, self.watchers, self.publishers))


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    values = sorted(values)
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


async def set_up(gen: LoadGen, plan: Plan, concurrency: int = 50, wait: float = 15.0) -> dict:
    """Subscribe every watcher, then publish a first note per publisher: every watcher must
    end active with its publisher's note (the pres-rules documents allowed it)."""
    sem = asyncio.Semaphore(concurrency)

    async def one(w: int) -> int:
        # overload control may refuse part of the burst (503): the set-up is not measured,
        # so it backs off and tries again as a client told to retry would
        for attempt in range(8):
            async with sem:
                status, _ = await gen.subscribe(w, plan.publisher_of(w))
            if status != 503:
                break
            await asyncio.sleep(0.5 * (attempt + 1))
        return status

    async def first_publish(p: int, note: str) -> int:
        for attempt in range(8):
            status, _ = await gen.publish(p, note)
            if status != 503:
                break
            await asyncio.sleep(0.5 * (attempt + 1))
        return status

    t0 = time.monotonic()
    statuses = await asyncio.gather(*(one(w) for w in range(plan.watchers)))
    subscribe_s = time.monotonic() - t0
    bad = [s for s in statuses if s not in (200, 202)]
    if bad:
        raise RuntimeError(f"{len(bad)} SUBSCRIBEs failed (statuses {sorted(set(bad))})")
    gen.notifies.clear()
    notes = {p: f"init-{p}" for p in range(plan.publishers)}
    pubs = await asyncio.gather(*(first_publish(p, n) for p, n in notes.items()))
    if any(s != 200 for s in pubs):
        raise RuntimeError(f"first PUBLISHes: statuses {sorted(set(pubs))}")
    want = {(c, notes[p]) for c, (_, p) in gen.subscriptions.items()}
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        got = {(n.call_id, n.note) for n in gen.notifies if n.state == "active"}
        if want <= got:
            break
        await asyncio.sleep(0.2)
    got = {(n.call_id, n.note) for n in gen.notifies if n.state == "active"}
    missing = want - got
    states = sorted({n.state for n in gen.notifies})
    if missing:
        raise RuntimeError(f"{len(missing)} of {len(want)} watchers never got an active NOTIFY with "
                           f"their publisher's first note (NOTIFY states seen: {states})")
    return {"subscribe_s": subscribe_s, "watchers": plan.watchers, "publishers": plan.publishers}


async def point(gen: LoadGen, plan: Plan, rate: float, seconds: float, tag: str, pid: int,
                drain: float = 5.0) -> dict:
    """Publish at ``rate`` per second for ``seconds``; the figures of that point."""
    loop_cpu0, cpu0 = time.process_time(), cpu_seconds(pid)
    gen.notifies.clear()
    retrans0, challenges0, repeats0 = gen.retransmits, gen.challenges, gen.notify_repeats
    sent: dict[str, tuple[int, float]] = {}
    statuses: dict[str, int] = {}
    tasks: list[asyncio.Task] = []
    lags: list[float] = []
    skipped = 0
    total = max(1, int(rate * seconds))
    start = time.monotonic() + 0.05

    async def one(p: int, note: str) -> None:
        status, first = await gen.publish(p, note)
        statuses[note] = status
        sent[note] = (p, first)

    k = 0
    while k < total:
        now = time.monotonic()
        due = start + k / rate
        if due > now:
            await asyncio.sleep(due - now)
            continue
        while k < total and start + k / rate <= now:
            lags.append(now - (start + k / rate))
            p = k % plan.publishers
            if gen.publishers[p].busy:
                skipped += 1  # its last PUBLISH is still unanswered
            else:
                tasks.append(asyncio.create_task(one(p, f"{tag}-{k}")))
            k += 1
    await asyncio.gather(*tasks)
    published = time.monotonic()
    ok = {n for n, s in statuses.items() if s == 200}
    calls_of: dict[int, list[str]] = {}
    for c, (_, p) in gen.subscriptions.items():
        calls_of.setdefault(p, []).append(c)
    owed = {(c, n) for n in ok for c in calls_of.get(sent[n][0], [])}
    deadline = published + drain
    while time.monotonic() < deadline:
        if len(gen.notifies) >= len(owed) and owed <= {(x.call_id, x.note) for x in gen.notifies}:
            break
        await asyncio.sleep(0.2)
    end = time.monotonic()
    cpu = cpu_seconds(pid) - cpu0
    loop_cpu = time.process_time() - loop_cpu0
    latencies: list[float] = []
    wrong = 0
    delivered = 0
    seen: set[tuple[str, str]] = set()
    for n in gen.notifies:
        sub = gen.subscriptions.get(n.call_id)
        if sub is None or (n.note is not None and not n.note.startswith(f"{tag}-")):
            continue  # a late NOTIFY of an earlier point
        if n.note is None:
            wrong += 1  # a NOTIFY without the publisher's note: it withheld or lost it
            continue
        if n.note not in sent or sent[n.note][0] != sub[1]:
            wrong += 1
            continue
        delivered += 1
        if (n.call_id, n.note) in owed and (n.call_id, n.note) not in seen:
            seen.add((n.call_id, n.note))
            latencies.append(n.at - sent[n.note][1])
    lost = len(owed - seen)
    failed = total - skipped - len(ok)
    # NOTIFYs per second: from the first PUBLISH to the last NOTIFY owed that arrived
    last = max((n.at for n in gen.notifies if (n.call_id, n.note) in seen), default=published)
    span = max(last - start, seconds)
    return {
        "rate": rate, "seconds": seconds, "publishes": total, "accepted": len(ok), "failed": failed,
        "skipped": skipped, "owed": len(owed), "delivered": delivered, "lost": lost, "wrong": wrong,
        "terminated": sum(1 for n in gen.notifies if n.state == "terminated"),
        "p50_ms": percentile(latencies, 0.50) * 1000, "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": (max(latencies) * 1000) if latencies else math.nan,
        "notify_per_s": len(seen) / span, "server_cpu": cpu / (end - start),
        "cpu_ms_per_notify": cpu * 1000 / len(seen) if seen else math.nan,
        "lag_p99_ms": percentile(lags, 0.99) * 1000, "loadgen_cpu": loop_cpu / (end - start),
        "retransmits": gen.retransmits - retrans0, "challenges": gen.challenges - challenges0,
        "notify_repeats": gen.notify_repeats - repeats0,
    }


def verdict(res: dict, max_p99_ms: float, max_lag_ms: float = 50.0) -> str | None:
    """Why a point failed, or None: any loss, wrong note, failed or skipped PUBLISH, a p99
    latency above ``max_p99_ms``, or the load generator behind its schedule (then the
    point says nothing about the server, and the report shows it as the generator's)."""
    problems = []
    for key in ("lost", "wrong", "failed", "terminated"):
        if res[key]:
            problems.append(f"{res[key]} {key}")
    if res["skipped"] > 0.01 * res["publishes"]:
        problems.append(f"{res['skipped']} PUBLISHes skipped (publisher still waiting)")
    if not res["p99_ms"] <= max_p99_ms:
        problems.append(f"p99 {res['p99_ms']:.0f} ms > {max_p99_ms:.0f} ms")
    if res["lag_p99_ms"] > max_lag_ms:
        problems.append(f"load generator behind schedule (lag p99 {res['lag_p99_ms']:.0f} ms)")
    return "; ".join(problems) or None


async def climb(gen: LoadGen, plan: Plan, name: str, pid: int, start: float, seconds: float,
                max_p99_ms: float, cap: float, refine: int = 2, factor: float = 1.5) -> dict:
    """Points at ``start``, x``factor``... until one fails (or ``cap``), then ``refine``
    bisection steps between the last clean and the lowest failed rate: every point, the
    best clean one and the lowest failure."""
    points: list[dict] = []
    n = 0

    async def run(rate: float) -> dict:
        nonlocal n
        n += 1
        res = await point(gen, plan, rate, seconds, f"{name}{n}", pid)
        res["problem"] = verdict(res, max_p99_ms)
        points.append(res)
        print(f"  {name}: {rate:.0f} PUBLISH/s -> {res['notify_per_s']:.0f} NOTIFY/s, p50 "
              f"{res['p50_ms']:.1f} ms, p99 {res['p99_ms']:.1f} ms, lost {res['lost']}, wrong "
              f"{res['wrong']}, retransmits {res['retransmits']}, NOTIFY repeats {res['notify_repeats']}, server CPU {res['server_cpu'] * 100:.0f} %, "
              f"load generator CPU {res['loadgen_cpu'] * 100:.0f} %, {res['problem'] or 'clean'}", flush=True)
        await asyncio.sleep(1.0)  # let the last point's stragglers arrive before the next
        return res

    rate, good, bad = start, None, None
    while rate <= cap:
        res = await run(rate)
        if res["problem"]:
            bad = rate
            break
        good = rate
        rate = round(rate * factor, 1)
    for _ in range(refine if bad is not None and good is not None else 0):
        mid = round((good + bad) / 2, 1)
        if mid in (good, bad):
            break
        if (await run(mid))["problem"]:
            bad = mid
        else:
            good = mid
    clean = [p for p in points if not p["problem"]]
    failed = [p for p in points if p["problem"]]
    return {"points": points, "best": max(clean, key=lambda p: p["rate"]) if clean else None,
            "failed": min(failed, key=lambda p: p["rate"]) if failed else None,
            "capped": not failed}
