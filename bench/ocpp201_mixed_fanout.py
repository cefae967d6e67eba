"""Benchmark: a limit change fanned out to a mixed fleet — half OCPP 1.6, half 2.0.1 — on one evsite server.

`CentralSystem.set_connector_limit` for every charger at once (what the load manager's dispatch
does after a limit change): builds the profile in the charger's version (TxDefaultProfile, as no
transaction runs), passes the 2.0.1 K01 guard, validates it against its version's schema, sends it,
waits for the answer and records it in the store. Time from the first request to the last CallResult.
Chargers run in two separate processes (1.6 and 2.0.1) and answer at once. Target: ≤ 1 s for 1,000.

    .venv/bin/python bench/ocpp201_mixed_fanout.py [--count 1000] [--rounds 20]

Writes bench/results/ocpp201_mixed_fanout.json.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ocpp201_connections import BOOT, Station
from ocpp_fanout import percentile, wait_for
from ocpp_harness import write_results

RESULTS = Path(__file__).resolve().parent / "results" / "ocpp201_mixed_fanout.json"
TARGET_S = 1.0


async def run_stations(url: str, count: int) -> None:
    stations = [Station(url, f"MIX201-{i:05d}") for i in range(count)]
    for i in range(0, count, 200):
        await asyncio.gather(*(s.connect() for s in stations[i : i + 200]))
        await asyncio.gather(*(s.call("BootNotification", BOOT) for s in stations[i : i + 200]))
    await asyncio.Event().wait()


async def fanout(count: int, rounds: int, workdir: Path) -> dict[str, Any]:
    from evsite.ocpp.server import CentralSystem, ServerSettings
    from evsite.ocpp.v201.session import StationSession
    from evsite.store.ocpp import OcppStore

    store = await OcppStore.open(f"sqlite+aiosqlite:///{workdir / 'mix.db'}")
    settings = ServerSettings(port=0, accept_unknown=True, unknown_status="Accepted", lift_lease_s=0)
    cs = CentralSystem(store, None, settings=settings)
    await cs.start()
    url = f"ws://127.0.0.1:{cs.port}/ocpp"
    half = count // 2
    here = Path(__file__).resolve().parent
    procs = [
        subprocess.Popen([sys.executable, str(here / "ocpp_fanout.py"), "clients", url, str(count - half)]),
        subprocess.Popen([sys.executable, __file__, "stations", url, str(half)]),
    ]
    try:
        await wait_for(lambda: sum(s.setup_done.is_set() for s in cs.sessions.values()) == count, timeout=300)
        ids = cs.connected_charge_points()
        v201 = sum(isinstance(cs.sessions[i], StationSession) for i in ids)
        times: list[float] = []
        for r in range(rounds + 3):
            limit = 6.0 + (r % 20)
            t = time.perf_counter()
            accepted = await asyncio.gather(*(cs.set_connector_limit(cp, 1, limit) for cp in ids))
            if r >= 3:  # the first rounds warm up
                times.append(time.perf_counter() - t)
            assert all(accepted), f"{accepted.count(False)} setpoints not accepted"
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        await cs.stop()
        await store.close()
    return {
        "chargers": len(ids),
        "ocpp201": v201,
        "ocpp16": len(ids) - v201,
        "p50_ms": 1000 * percentile(times, 0.5),
        "p99_ms": 1000 * percentile(times, 0.99),
        "max_ms": 1000 * max(times),
        "rounds": len(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(fanout(args.count, args.rounds, Path(tmp)))
    verdict = "PASS" if result["max_ms"] <= 1000 * TARGET_S else "FAIL"
    print(
        f"mixed fan-out to {result['chargers']} chargers ({result['ocpp16']} × 1.6, {result['ocpp201']} × 2.0.1):"
        f" p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms, max {result['max_ms']:.0f} ms"
        f" over {result['rounds']} rounds (target ≤ {1000 * TARGET_S:.0f} ms) {verdict}"
    )
    write_results(RESULTS, {"benchmark": "ocpp201_mixed_fanout", **result, "target_s": TARGET_S})


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "stations":
        asyncio.run(run_stations(sys.argv[2], int(sys.argv[3])))
    else:
        main()
