"""Benchmark: SetChargingProfile fan-out latency — from the request to the last CallResult.

The load manager changes the limits of many chargers at once; this measures how long until every
charger has answered. evsite: `CentralSystem.set_connector_limit` for every charger (builds the
profile, validates it, sends it, waits for the answer, records it in the store). Baseline in the
same run: a central system on the `ocpp` package, `ChargePoint.call(call.SetChargingProfile(...))`
for every charger (validation on, no store). Chargers run in a separate process and answer at
once. Targets: p99 ≤ 50 ms for 20 chargers, ≤ 1 s for 1,000.

    .venv/bin/python bench/ocpp_fanout.py [--sizes 20 1000] [--rounds 100 30]

Writes bench/results/ocpp_fanout.json.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contextlib

from ocpp_harness import LightCharger, free_port, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "ocpp_fanout.json"
TARGETS_S = {20: 0.050, 1000: 1.0}


async def run_clients(url: str, count: int) -> None:
    clients = [LightCharger(url, f"FAN-{i:05d}") for i in range(count)]
    for i in range(0, count, 200):
        await asyncio.gather(*(c.connect() for c in clients[i : i + 200]))
    boot = {"chargePointVendor": "Bench", "chargePointModel": "Fan"}
    await asyncio.gather(
        *(c.call_frame(orjson.dumps([2, c.next_id(), "BootNotification", boot]).decode()) for c in clients)
    )
    await asyncio.Event().wait()


def spawn_clients(url: str, count: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, "clients", url, str(count)])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def wait_for(predicate: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("chargers did not come up")
        await asyncio.sleep(0.1)


async def evsite_fanout(count: int, rounds: int, workdir: Path) -> list[float]:
    from evsite.ocpp.server import CentralSystem, ServerSettings
    from evsite.store.ocpp import OcppStore

    store = await OcppStore.open(f"sqlite+aiosqlite:///{workdir / f'fan-{count}.db'}")
    settings = ServerSettings(port=0, accept_unknown=True, unknown_status="Accepted", lift_lease_s=0)
    cs = CentralSystem(store, None, settings=settings)
    await cs.start()
    clients = spawn_clients(f"ws://127.0.0.1:{cs.port}/ocpp", count)
    try:
        await wait_for(lambda: sum(s.setup_done.is_set() for s in cs.sessions.values()) == count)
        ids = cs.connected_charge_points()
        times = []
        for r in range(rounds + 3):
            limit = 6.0 + (r % 20)
            t = time.perf_counter()
            accepted = await asyncio.gather(*(cs.set_connector_limit(cp, 1, limit) for cp in ids))
            if r >= 3:  # the first rounds warm up
                times.append(time.perf_counter() - t)
            assert all(accepted)
        return times
    finally:
        clients.kill()
        clients.wait()
        await cs.stop()
        await store.close()


async def baseline_fanout(count: int, rounds: int) -> list[float]:
    from ocpp.v16 import ChargePoint, call
    from ocpp.v16.datatypes import ChargingProfile, ChargingSchedule, ChargingSchedulePeriod
    from ocpp.v16.enums import ChargingProfileKindType, ChargingProfilePurposeType, ChargingRateUnitType
    from websockets.asyncio.server import serve

    logging.getLogger("ocpp").setLevel(logging.CRITICAL)  # it logs each unhandled BootNotification
    points: dict[str, ChargePoint] = {}

    async def handler(ws: Any) -> None:
        cp = ChargePoint(ws.request.path.rsplit("/", 1)[-1], ws)
        points[cp.id] = cp
        with contextlib.suppress(Exception):
            await cp.start()

    port = free_port()
    async with serve(handler, "127.0.0.1", port, subprotocols=["ocpp1.6"], compression=None):
        clients = spawn_clients(f"ws://127.0.0.1:{port}/ocpp", count)
        try:
            await wait_for(lambda: len(points) == count)
            await asyncio.sleep(1)
            times = []
            for r in range(rounds + 3):
                limit = 6.0 + (r % 20)
                profile = ChargingProfile(
                    charging_profile_id=101,
                    stack_level=1,
                    charging_profile_purpose=ChargingProfilePurposeType.tx_default_profile,
                    charging_profile_kind=ChargingProfileKindType.absolute,
                    charging_schedule=ChargingSchedule(
                        charging_rate_unit=ChargingRateUnitType.amps,
                        charging_schedule_period=[ChargingSchedulePeriod(start_period=0, limit=limit)],
                        start_schedule="2026-01-01T00:00:00Z",
                    ),
                )
                t = time.perf_counter()
                answers = await asyncio.gather(
                    *(
                        cp.call(call.SetChargingProfile(connector_id=1, cs_charging_profiles=profile))
                        for cp in points.values()
                    )
                )
                if r >= 3:
                    times.append(time.perf_counter() - t)
                assert all(a.status == "Accepted" for a in answers)
            return times
        finally:
            clients.kill()
            clients.wait()


def summary(times: list[float]) -> dict[str, float]:
    return {
        "p50_ms": 1000 * statistics.median(times),
        "p99_ms": 1000 * percentile(times, 0.99),
        "max_ms": 1000 * max(times),
        "rounds": len(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 1000])
    parser.add_argument("--rounds", type=int, nargs="+", default=[200, 30])
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for size, rounds in zip(args.sizes, args.rounds, strict=True):
            ours = summary(asyncio.run(evsite_fanout(size, rounds, Path(tmp))))
            base = summary(asyncio.run(baseline_fanout(size, rounds)))
            results.append({"chargers": size, "evsite": ours, "baseline": base})
    print("\nSetChargingProfile fan-out, request → last CallResult (chargers in a separate process)")
    print(
        f"{'chargers':>8} {'evsite p50':>11} {'evsite p99':>11} {'baseline p50':>13} {'baseline p99':>13}"
        f" {'p99 ratio':>10} {'target':>8}"
    )
    for r in results:
        target = TARGETS_S.get(r["chargers"])
        ok = "" if target is None else ("PASS" if r["evsite"]["p99_ms"] <= 1000 * target else "FAIL")
        ratio = r["baseline"]["p99_ms"] / r["evsite"]["p99_ms"]
        target_text = f"{1000 * target:.0f} ms" if target else "-"
        print(
            f"{r['chargers']:>8} {r['evsite']['p50_ms']:>9.1f}ms {r['evsite']['p99_ms']:>9.1f}ms"
            f" {r['baseline']['p50_ms']:>11.1f}ms {r['baseline']['p99_ms']:>11.1f}ms {ratio:>9.2f}x"
            f" {target_text:>8} {ok}"
        )
    write_results(
        RESULTS,
        {
            "benchmark": "ocpp_fanout",
            "baseline": "ocpp.v16.ChargePoint.call(SetChargingProfile) per charger, default validation, no store",
            "results": results,
            "targets_s": TARGETS_S,
        },
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "clients":
        asyncio.run(run_clients(sys.argv[2], int(sys.argv[3])))
    else:
        main()
