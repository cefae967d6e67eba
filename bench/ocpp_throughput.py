"""Benchmark: validated MeterValues handled end to end per second (parsed, validated, handled,
persisted with a commit, answered), evsite vs a baseline central system built the usual way on
the `ocpp` package's `ChargePoint` (default validation, one commit per message). Same run, same
machine, same SQLite settings (WAL, synchronous=FULL), same load generator. Target: ≥ 10×.

    .venv/bin/python bench/ocpp_throughput.py [--chargers 100] [--seconds 10]

Each charger sends MeterValues (one sample, three measurands) and waits for the answer before
sending the next, as OCPP-J requires. Afterwards the rows in each database are counted: every
acknowledged message must be stored (3 rows each). Writes bench/results/ocpp_throughput.json.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ocpp_harness import LightCharger, cpu_seconds, free_port, meter_values_frame, rss_mib, start_server, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "ocpp_throughput.json"
TARGET_RATIO = 10.0


async def drive(port: int, chargers: int, seconds: float, server_pid: int, warmup: float = 1.0) -> dict[str, Any]:
    clients = [LightCharger(f"ws://127.0.0.1:{port}/ocpp", f"BENCH-{i:04d}") for i in range(chargers)]
    await asyncio.gather(*(c.connect() for c in clients))
    acked = 0
    measuring = False
    stop = False
    latencies: list[float] = []
    counter = 0

    async def loop(client: LightCharger) -> None:
        nonlocal acked, counter
        while not stop:
            counter += 1
            frame = meter_values_frame(client.next_id(), counter)
            t = time.perf_counter()
            answer = await client.call_frame(frame)
            if answer[0] != 3:
                raise RuntimeError(f"unexpected answer {answer}")
            if measuring:
                acked += 1
                latencies.append(time.perf_counter() - t)

    tasks = [asyncio.create_task(loop(c)) for c in clients]
    await asyncio.sleep(warmup)
    measuring = True
    started, cpu0 = time.perf_counter(), cpu_seconds(server_pid)
    await asyncio.sleep(seconds)
    measuring = False
    elapsed, cpu = time.perf_counter() - started, cpu_seconds(server_pid) - cpu0
    stop = True
    await asyncio.gather(*tasks)
    total_sent = counter
    await asyncio.gather(*(c.close() for c in clients))
    latencies.sort()
    return {
        "msgs_per_s": acked / elapsed,
        "server_cpu_s": cpu,
        "msgs_per_server_cpu_s": acked / cpu if cpu else None,
        "acked_in_window": acked,
        "messages_total": total_sent,
        "latency_p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else None,
        "latency_p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else None,
    }


def run(kind: str, chargers: int, seconds: float, workdir: Path) -> dict[str, Any]:
    port, db = free_port(), workdir / f"{kind}-{time.monotonic_ns()}.db"
    server = start_server(kind, port, db)
    try:
        result = asyncio.run(drive(port, chargers, seconds, server.pid))
        result["server_rss_mib"] = rss_mib(server.pid)
        result["server_pid"] = server.pid
    finally:
        server.terminate()
        server.wait(10)
    with sqlite3.connect(db) as conn:
        rows = conn.execute(  # sampled values stored (each sample row holds its layout's count)
            "SELECT COALESCE(SUM(l.size), 0) FROM ocpp_samples s JOIN ocpp_sample_layouts l ON l.id = s.layout_id"
        ).fetchone()[0]
    result["rows_stored"] = rows
    result["rows_expected"] = 3 * result["messages_total"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chargers", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=2, help="alternate runs per server; the best counts")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "evsite": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            for kind in runs:
                runs[kind].append(run(kind, args.chargers, args.seconds, Path(tmp)))
    results = {kind: max(rs, key=lambda r: r["msgs_per_s"]) for kind, rs in runs.items()}
    ratio = results["evsite"]["msgs_per_s"] / results["baseline"]["msgs_per_s"]
    cpu_ratio = results["evsite"]["msgs_per_server_cpu_s"] / results["baseline"]["msgs_per_server_cpu_s"]
    print(f"\nMeterValues end to end, {args.chargers} chargers, {args.seconds:g} s window, best of {args.repeat},")
    print("SQLite WAL synchronous=FULL, server and load generator in separate processes")
    header = f"{'server':<10} {'msg/s':>8} {'msg/CPU-s':>10} {'p50 ms':>8} {'p99 ms':>8} {'rows stored/expected':>22}"
    print(header + f" {'RSS MiB':>8}")
    for kind, r in results.items():
        stored = f"{r['rows_stored']}/{r['rows_expected']}"
        print(
            f"{kind:<10} {r['msgs_per_s']:>8.0f} {r['msgs_per_server_cpu_s']:>10.0f} {r['latency_p50_ms']:>8.1f}"
            f" {r['latency_p99_ms']:>8.1f} {stored:>22} {r['server_rss_mib']:>8.1f}"
        )
    verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
    print(
        f"ratio evsite/baseline: {ratio:.1f}x wall, {cpu_ratio:.1f}x per server CPU-second"
        f" (target ≥ {TARGET_RATIO:g}x) {verdict}"
    )
    for kind, rs in runs.items():
        for r in rs:
            if r["rows_stored"] != r["rows_expected"]:
                print(f"WARNING: {kind} stored {r['rows_stored']} rows, expected {r['rows_expected']}")
    write_results(
        RESULTS,
        {
            "benchmark": "ocpp_throughput",
            "baseline": "ocpp.v16.ChargePoint central system, default validation, commit per message",
            "chargers": args.chargers,
            "seconds": args.seconds,
            "repeat": args.repeat,
            "results": results,
            "all_runs": runs,
            "ratio": ratio,
            "ratio_per_server_cpu_s": cpu_ratio,
            "target_ratio": TARGET_RATIO,
            "pass": ratio >= TARGET_RATIO,
        },
    )


if __name__ == "__main__":
    main()
