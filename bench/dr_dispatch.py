"""Benchmark: OpenADR event becoming active → new setpoints for every port of the 20-port workplace site.

An openleadr VTN on loopback sends SIMPLE level-2 events (delivered ahead of their start, as utilities
do) to two VENs running side by side in one process:

- `evsite` — `Ven(align=True)`: wakes at the event's start instant;
- baseline `periodic 1 s` — the same VEN evaluating events on a fixed 1 s tick (`align=False`), the way
  a naive controller loop checks its schedule.

Per event, the latency is: event start (dtstart + startafter offset; no randomisation here) → the
`dr_limit` signal on the bus → `SiteLimits` + `allocate_fair` computed new setpoints for all 20 ports
(all plugged in). Putting them on the OCPP wire is the OCPP server's part and is not timed here.
Target (issue 7): ≤ 1 s to setpoints.

    .venv/bin/python bench/dr_dispatch.py [--events 12]

Prints a table and writes bench/results/dr_dispatch.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import random
import socket
import statistics
import sys
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from evsite.control.allocate import Demand, allocate_fair
from evsite.control.signals import SiteLimits
from evsite.control.tree import build_tree
from evsite.grid.openadr import Ven
from evsite.grid.sim_vtn import SimVtn
from evsite.runtime.events import EventBus, SiteSignal
from evsite.site import load_site

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "dr_dispatch.json"
SITE = ROOT / "src" / "evsite" / "examples" / "workplace-20.yaml"
TARGET_S = 1.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def measure(n_events: int) -> dict[str, list[float]]:
    site = load_site(SITE)
    tree = build_tree(site)
    demand = Demand.all_busy(tree)
    port = free_port()
    latencies: dict[str, list[float]] = {"evsite": [], "periodic 1 s": []}
    starts: dict[str, datetime] = {}
    async with SimVtn(port=port, poll_s=1.0, report_s=60.0) as vtn:
        buses = {name: EventBus() for name in latencies}
        vens = {
            name: Ven(
                site,
                buses[name],
                settings=site.demand_response.model_copy(  # type: ignore[union-attr]
                    update={"vtn_url": vtn.url, "ven_name": f"bench-{i}"}
                ),
                tick_s=1.0,
                align=(name == "evsite"),
            )
            for i, name in enumerate(latencies)
        }

        async def follow(name: str) -> None:
            limits = SiteLimits(site, tree)
            async with buses[name].subscribe() as queue:
                while True:
                    event = await queue.get()
                    if not (isinstance(event, SiteSignal) and event.kind == "dr_limit" and event.current_a):
                        continue
                    limits.update(event)
                    setpoints = allocate_fair(tree, demand, limits.limits(datetime.now(UTC)))
                    done = datetime.now(UTC)
                    assert setpoints.shape[0] == tree.n_ports
                    key = f"{name}:{len(latencies[name])}"
                    if key in starts:
                        latencies[name].append((done - starts[key]).total_seconds())

        tasks = [asyncio.create_task(v.run()) for v in vens.values()]
        tasks += [asyncio.create_task(follow(name)) for name in latencies]
        rng = random.Random(3)
        await asyncio.sleep(2.0)  # registration
        for k in range(n_events):
            start = datetime.now(UTC) + timedelta(seconds=1.5 + rng.random())  # arrives ≥ 1 poll ahead
            for i, name in enumerate(latencies):
                starts[f"{name}:{k}"] = start
                # whole seconds: openleadr writes xCal durations without fractions
                vtn.add_event(f"bench-{i}", start=start, intervals=[(timedelta(seconds=1), 2.0)])
            await asyncio.sleep((start - datetime.now(UTC)).total_seconds() + 1.6)
        for task in tasks:
            task.cancel()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, Exception):
                raise result
    return latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=12)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    warnings.simplefilter("ignore")
    for name in ("openleadr", "apscheduler", "aiohttp"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    t0 = time.perf_counter()
    latencies = asyncio.run(measure(args.events))
    wall = time.perf_counter() - t0
    rows: dict[str, dict[str, Any]] = {}
    for name, values in latencies.items():
        rows[name] = {
            "events": len(values),
            "p50_s": round(statistics.median(values), 4),
            "p95_s": round(pct(values, 0.95), 4),
            "max_s": round(max(values), 4),
        }
    base, ours = rows["periodic 1 s"], rows["evsite"]
    ratio = base["p50_s"] / ours["p50_s"] if ours["p50_s"] > 0 else float("inf")
    print(f"DR event active → setpoints for 20 ports ({args.events} events, loopback VTN, wall {wall:.1f} s)")
    print(f"{'variant':<14}{'events':>8}{'p50 s':>10}{'p95 s':>10}{'max s':>10}")
    for name, row in rows.items():
        print(f"{name:<14}{row['events']:>8}{row['p50_s']:>10.4f}{row['p95_s']:>10.4f}{row['max_s']:>10.4f}")
    verdict = "met" if ours["max_s"] <= TARGET_S else "MISSED"
    print(f"baseline / evsite (p50): {ratio:.0f}×; target max ≤ {TARGET_S} s: {verdict}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "dr_dispatch",
                "site": SITE.name,
                "events": args.events,
                "rows": rows,
                "baseline": "periodic 1 s",
                "ratio_p50": round(ratio, 1),
                "target_s": TARGET_S,
                "target_met": ours["max_s"] <= TARGET_S,
                "python": sys.version.split()[0],
                "machine": platform.machine(),
                "measured": datetime.now(UTC).isoformat(timespec="seconds"),
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
