"""Benchmark: many chargers on one evsite server process — memory, and a reconnect storm.

1. N chargers connect (in waves), boot (the server then reads their configuration and installs
   the fail-safe and lift profiles), and keep sending Heartbeat and MeterValues every
   `--interval` seconds. The server's RSS is read from /proc once all are connected and again
   after the traffic period. Targets: 1,000 chargers ≤ 200 MiB; 10,000 held (RSS reported).
2. Reconnect storm: every charger drops its connection and comes back at a random moment within
   10 s, replaying a queued StartTransaction + StopTransaction. All must be answered, and the
   database must hold exactly one transaction per charger.

Baseline: the server's RSS when idle (started, no charger connected) in the same run.

    .venv/bin/python bench/ocpp_connections.py [--counts 1000 10000] [--interval 10] [--traffic 20]

Writes bench/results/ocpp_connections.json.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ocpp_harness import LightCharger, free_port, meter_values_frame, rss_mib, start_server, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "ocpp_connections.json"
TARGET_RSS_MIB_AT_1000 = 200.0
BOOT = {"chargePointVendor": "Bench", "chargePointModel": "Light"}


async def connect_all(clients: list[LightCharger], wave: int = 250) -> None:
    for i in range(0, len(clients), wave):
        await asyncio.gather(*(c.connect() for c in clients[i : i + wave]))
        await asyncio.gather(
            *(
                c.call_frame(orjson.dumps([2, c.next_id(), "BootNotification", BOOT]).decode())
                for c in clients[i : i + wave]
            )
        )


async def traffic(clients: list[LightCharger], interval: float, duration: float) -> int:
    sent = 0
    stop = time.monotonic() + duration

    async def one(client: LightCharger, k: int) -> None:
        nonlocal sent
        await asyncio.sleep(random.uniform(0, interval))
        n = 0
        while time.monotonic() < stop:
            n += 1
            await client.call_frame(orjson.dumps([2, client.next_id(), "Heartbeat", {}]).decode())
            await client.call_frame(meter_values_frame(client.next_id(), k * 100_000 + n, tx=k + 1))
            sent += 2
            await asyncio.sleep(interval)

    await asyncio.gather(*(one(c, k) for k, c in enumerate(clients)))
    return sent


async def reconnect_storm(clients: list[LightCharger], window: float = 10.0) -> dict[str, Any]:
    await asyncio.gather(*(c.close() for c in clients))
    started = time.monotonic()
    t0 = datetime(2026, 6, 1, tzinfo=UTC)

    async def back(client: LightCharger, k: int) -> bool:
        await asyncio.sleep(random.uniform(0, window))
        for _attempt in range(20):
            try:
                await client.connect()
                break
            except Exception:
                await asyncio.sleep(0.5)
        start = {
            "connectorId": 1,
            "idTag": "STORM",
            "meterStart": 0,
            "timestamp": (t0 + timedelta(seconds=k)).isoformat(),
        }
        answer = await client.call_frame(orjson.dumps([2, client.next_id(), "StartTransaction", start]).decode())
        tx = answer[2]["transactionId"]
        stop = {
            "transactionId": tx,
            "meterStop": 1000,
            "timestamp": (t0 + timedelta(seconds=k, minutes=30)).isoformat(),
        }
        answer = await client.call_frame(orjson.dumps([2, client.next_id(), "StopTransaction", stop]).decode())
        return bool(answer[0] == 3)

    served = await asyncio.gather(*(back(c, k) for k, c in enumerate(clients)), return_exceptions=True)
    return {
        "chargers": len(clients),
        "served": sum(1 for s in served if s is True),
        "seconds_until_all_served": time.monotonic() - started,
    }


async def scenario(port: int, count: int, interval: float, duration: float, pid: int) -> dict[str, Any]:
    clients = [LightCharger(f"ws://127.0.0.1:{port}/ocpp", f"CONN-{i:05d}") for i in range(count)]
    t = time.monotonic()
    await connect_all(clients)
    connect_s = time.monotonic() - t
    await asyncio.sleep(3)  # let the post-boot profile installation finish
    rss_connected = rss_mib(pid)
    messages = await traffic(clients, interval, duration)
    rss_traffic = rss_mib(pid)
    profiles = sum(c.server_calls.get("SetChargingProfile", 0) for c in clients)
    storm = await reconnect_storm(clients)
    await asyncio.gather(*(c.close() for c in clients))
    return {
        "chargers": count,
        "connect_and_boot_s": connect_s,
        "rss_connected_mib": rss_connected,
        "rss_after_traffic_mib": rss_traffic,
        "traffic_messages": messages,
        "profiles_installed": profiles,
        "storm": storm,
    }


def run(count: int, interval: float, duration: float, workdir: Path) -> dict[str, Any]:
    port, db = free_port(), workdir / f"conn-{count}.db"
    server = start_server("evsite", port, db)
    try:
        time.sleep(1)
        idle = rss_mib(server.pid)
        result = asyncio.run(scenario(port, count, interval, duration, server.pid))
        result["rss_idle_mib"] = idle
    finally:
        server.terminate()
        server.wait(10)
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT COUNT(*), COUNT(DISTINCT charger_id) FROM ocpp_transactions WHERE id_tag='STORM'")
        result["storm"]["transactions_stored"], result["storm"]["chargers_with_transaction"] = rows.fetchone()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--traffic", type=float, default=20.0)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in args.counts:
            results.append(run(count, args.interval, args.traffic, Path(tmp)))
    print(f"\nevsite server process, chargers with Heartbeat + MeterValues every {args.interval:g} s")
    print(
        f"{'chargers':>8} {'idle RSS':>9} {'connected':>10} {'w/ traffic':>11} {'KiB/charger':>12}"
        f" {'storm served':>13} {'storm s':>8} {'tx stored':>10}"
    )
    for r in results:
        per = 1024 * (r["rss_after_traffic_mib"] - r["rss_idle_mib"]) / r["chargers"]
        storm = r["storm"]
        print(
            f"{r['chargers']:>8} {r['rss_idle_mib']:>8.0f}M {r['rss_connected_mib']:>9.0f}M"
            f" {r['rss_after_traffic_mib']:>10.0f}M"
            f" {per:>12.0f} {storm['served']:>6}/{storm['chargers']:<6} {storm['seconds_until_all_served']:>8.1f}"
            f" {storm['transactions_stored']:>10}"
        )
    at_1000 = next((r for r in results if r["chargers"] == 1000), None)
    if at_1000:
        ok = at_1000["rss_after_traffic_mib"] <= TARGET_RSS_MIB_AT_1000
        print(
            f"1,000 chargers: {at_1000['rss_after_traffic_mib']:.0f} MiB"
            f" (target ≤ {TARGET_RSS_MIB_AT_1000:g}) {'PASS' if ok else 'FAIL'}"
        )
    write_results(
        RESULTS,
        {
            "benchmark": "ocpp_connections",
            "baseline": "same server process, idle (no charger connected)",
            "interval_s": args.interval,
            "traffic_s": args.traffic,
            "results": results,
            "target_rss_mib_at_1000": TARGET_RSS_MIB_AT_1000,
        },
    )


if __name__ == "__main__":
    main()
