"""Benchmark: per-node overhead of cluster mode (#16) on validated MeterValues per second.

Same server, same run, alternating: `evsite` (one process, as `evsite serve`) and `evsite-cluster` (the
same central system as a cluster gateway: each charger's ownership written to NATS KV with a command
subscription, each meter sample published on the JetStream events stream). Same load generator as
bench/ocpp_throughput.py. Target: cluster ≥ 70 % of the single-process figure.

    PYTHONPATH=src .venv/bin/python bench/cluster_overhead.py [--chargers 300] [--seconds 8] [--repeat 2]

Needs NATS with JetStream on 127.0.0.1:4222. Writes bench/results/cluster_overhead.json. The buckets and
streams of the servers' namespaces (bench<pid>) are deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ocpp_harness import write_results
from ocpp_throughput import run

RESULTS = Path(__file__).resolve().parent / "results" / "cluster_overhead.json"
TARGET = 0.70


async def drop_bench_namespaces(servers: list[int]) -> None:
    import nats

    nc = await nats.connect("nats://127.0.0.1:4222")
    js = nc.jetstream()
    mine = re.compile(r"(KV_bench(?P<a>\d+)_\w+|BENCH(?P<b>\d+)_EVENTS)")
    for info in await js.streams_info():
        match = mine.fullmatch(info.config.name or "")
        if match and int(match["a"] or match["b"]) in servers:
            await js.delete_stream(info.config.name)
    await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chargers", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {"evsite": [], "evsite-cluster": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            for kind in runs:
                runs[kind].append(run(kind, args.chargers, args.seconds, Path(tmp)))
    asyncio.run(drop_bench_namespaces([r["server_pid"] for r in runs["evsite-cluster"]]))
    best = {kind: max(rs, key=lambda r: r["msgs_per_s"]) for kind, rs in runs.items()}
    ratio = best["evsite-cluster"]["msgs_per_s"] / best["evsite"]["msgs_per_s"]
    for kind, r in best.items():
        print(
            f"{kind:<15} {r['msgs_per_s']:>8.0f} msg/s  {r['msgs_per_server_cpu_s']:>8.0f} msg/CPU-s"
            f"  p99 {r['latency_p99_ms']:.1f} ms  RSS {r['server_rss_mib']:.0f} MiB"
            f"  rows {r['rows_stored']}/{r['rows_expected']}"
        )
    print(f"cluster / single: {ratio:.2f} (target ≥ {TARGET:.2f}) {'PASS' if ratio >= TARGET else 'FAIL'}")
    write_results(
        RESULTS,
        {
            "benchmark": "cluster_overhead",
            "chargers": args.chargers,
            "seconds": args.seconds,
            "repeat": args.repeat,
            "results": best,
            "all_runs": runs,
            "ratio": ratio,
            "target_ratio": TARGET,
        },
    )


if __name__ == "__main__":
    main()
