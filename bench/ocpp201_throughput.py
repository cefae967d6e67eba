"""Benchmark: validated OCPP 2.0.1 TransactionEvent(Updated) with meter values, end to end per second
(parsed, validated, handled, persisted with a commit, answered), evsite vs a baseline central system
built the usual way on the `ocpp` package's v201 `ChargePoint` (default jsonschema validation, one
commit per message into the same sample tables). Same run, same machine, same SQLite settings.

    .venv/bin/python bench/ocpp201_throughput.py [--chargers 100] [--seconds 8] [--repeat 2]

Each station first starts a transaction (TransactionEvent Started), then sends Updated events with one
sample of three measurands, waiting for each answer as OCPP-J requires. Afterwards the sampled values
in each database are counted: every acknowledged event must be stored (3 values each). Writes
bench/results/ocpp201_throughput.json. Target: ≥ 10×.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ocpp_harness import cpu_seconds, free_port, rss_mib, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "ocpp201_throughput.json"
TARGET_RATIO = 10.0
_BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def event_frame(unique_id: str, tx: str, seq: int, kind: str = "Updated") -> str:
    """A TransactionEvent with one sample (register, power, current); `seq` (µs) makes the timestamp unique."""
    stamp = (_BASE + timedelta(microseconds=seq)).isoformat().replace("+00:00", "Z")
    sampled = [
        {"value": 1000 + seq / 1000, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}},
        {"value": 3300.0, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}},
        {"value": 16.0, "measurand": "Current.Import", "phase": "L1", "unitOfMeasure": {"unit": "A"}},
    ]
    payload = {
        "eventType": kind,
        "timestamp": stamp,
        "triggerReason": "MeterValuePeriodic",
        "seqNo": seq,
        "transactionInfo": {"transactionId": tx, "chargingState": "Charging"},
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [{"timestamp": stamp, "sampledValue": sampled}],
    }
    return orjson.dumps([2, unique_id, "TransactionEvent", payload]).decode()


# --------------------------------------------------------------------------- servers


async def serve_evsite(port: int, db: Path) -> None:
    from evsite.ocpp.server import CentralSystem, ServerSettings
    from evsite.store.ocpp import OcppStore

    store = await OcppStore.open(f"sqlite+aiosqlite:///{db}")
    settings = ServerSettings(port=port, accept_unknown=True, unknown_status="Accepted", heartbeat_interval_s=60)
    cs = CentralSystem(store, None, settings=settings)
    await cs.start()
    await asyncio.Event().wait()


async def serve_baseline(port: int, db: Path) -> None:
    from ocpp.routing import on
    from ocpp.v201 import ChargePoint, call_result
    from websockets.asyncio.server import serve

    from evsite.store.ocpp import OcppStore
    from evsite.store.samples import SampleWriter

    store = await OcppStore.open(f"sqlite+aiosqlite:///{db}")  # same schema and SQLite settings
    engine, samples = store.engine, SampleWriter()

    class BaselineCsms(ChargePoint):
        @on("TransactionEvent")
        async def on_transaction_event(
            self, event_type: str, transaction_info: dict[str, Any], meter_value: list[dict[str, Any]] | None = None,
            **_: Any,
        ) -> Any:  # fmt: skip
            rows = []
            for entry in meter_value or []:
                stamp = datetime.fromisoformat(entry["timestamp"])
                for sv in entry["sampled_value"]:
                    rows.append(
                        {
                            "charger_id": self.id,
                            "connector_id": 1,
                            "transaction_id": 1,
                            "timestamp": stamp,
                            "measurand": sv.get("measurand", "Energy.Active.Import.Register"),
                            "phase": sv.get("phase", ""),
                            "location": sv.get("location", "Outlet"),
                            "context": sv.get("context", "Sample.Periodic"),
                            "unit": sv.get("unit_of_measure", {}).get("unit", ""),
                            "format": "Raw",
                            "value": str(sv["value"]),
                            "value_num": float(sv["value"]),
                        }
                    )
            async with engine.begin() as conn:
                new = await conn.run_sync(lambda sync: samples.write(sync, rows))
            samples.remember(new)
            return call_result.TransactionEvent()

    async def handler(ws: Any) -> None:
        cp = BaselineCsms(ws.request.path.rsplit("/", 1)[-1], ws)
        with contextlib.suppress(Exception):
            await cp.start()

    async with serve(handler, "127.0.0.1", port, subprotocols=["ocpp2.0.1"], compression=None, ping_interval=None):
        await asyncio.Event().wait()


def start_server(kind: str, port: int, db: Path) -> Any:
    import socket
    import subprocess

    proc = subprocess.Popen([sys.executable, __file__, "serve", kind, str(port), str(db)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{kind} server did not start")


# --------------------------------------------------------------------------- load


class Station:
    """A raw 2.0.1 station: one CALL at a time; answers server CALLs it cannot know with a CallError."""

    def __init__(self, url: str, cp_id: str) -> None:
        self.url, self.cp_id, self.ws = url, cp_id, None
        self._waiter: asyncio.Future[list[Any]] | None = None
        self._n = 0

    async def connect(self) -> None:
        from websockets.asyncio.client import connect

        self.ws = await connect(
            f"{self.url}/{self.cp_id}", subprotocols=["ocpp2.0.1"], compression=None, ping_interval=None,  # type: ignore[list-item]
            open_timeout=60,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(Exception):
            async for frame in self.ws:
                message = orjson.loads(frame)
                if message[0] == 2:
                    await self.ws.send(orjson.dumps([4, message[1], "NotSupported", "", {}]).decode())
                elif self._waiter is not None and not self._waiter.done():
                    self._waiter.set_result(message)

    async def call(self, frame: str) -> list[Any]:
        assert self.ws is not None
        self._waiter = asyncio.get_running_loop().create_future()
        await self.ws.send(frame)
        return await asyncio.wait_for(self._waiter, 60)

    def next_id(self) -> str:
        self._n += 1
        return str(self._n)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        self._reader.cancel()


async def drive(port: int, chargers: int, seconds: float, server_pid: int, warmup: float = 1.0) -> dict[str, Any]:
    stations = [Station(f"ws://127.0.0.1:{port}/ocpp", f"B201-{i:04d}") for i in range(chargers)]
    await asyncio.gather(*(s.connect() for s in stations))
    counter, acked, measuring, stop = 0, 0, False, False
    latencies: list[float] = []

    async def loop(station: Station) -> None:
        nonlocal counter, acked
        counter += 1
        answer = await station.call(event_frame(station.next_id(), f"TX-{station.cp_id}", counter, "Started"))
        if answer[0] != 3:
            raise RuntimeError(f"unexpected answer {answer}")
        while not stop:
            counter += 1
            t = time.perf_counter()
            answer = await station.call(event_frame(station.next_id(), f"TX-{station.cp_id}", counter))
            if answer[0] != 3:
                raise RuntimeError(f"unexpected answer {answer}")
            if measuring:
                acked += 1
                latencies.append(time.perf_counter() - t)

    tasks = [asyncio.create_task(loop(s)) for s in stations]
    await asyncio.sleep(warmup)
    measuring = True
    started, cpu0 = time.perf_counter(), cpu_seconds(server_pid)
    await asyncio.sleep(seconds)
    measuring = False
    elapsed, cpu = time.perf_counter() - started, cpu_seconds(server_pid) - cpu0
    stop = True
    await asyncio.gather(*tasks)
    await asyncio.gather(*(s.close() for s in stations))
    latencies.sort()
    return {
        "msgs_per_s": acked / elapsed,
        "server_cpu_s": cpu,
        "msgs_per_server_cpu_s": acked / cpu if cpu else None,
        "messages_total": counter,
        "latency_p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else None,
        "latency_p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else None,
    }


def run(kind: str, chargers: int, seconds: float, workdir: Path) -> dict[str, Any]:
    port, db = free_port(), workdir / f"{kind}-{time.monotonic_ns()}.db"
    server = start_server(kind, port, db)
    try:
        result = asyncio.run(drive(port, chargers, seconds, server.pid))
        result["server_rss_mib"] = rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(10)
    with sqlite3.connect(db) as conn:
        stored = conn.execute(
            "SELECT COALESCE(SUM(l.size), 0) FROM ocpp_samples s JOIN ocpp_sample_layouts l ON l.id = s.layout_id"
        ).fetchone()[0]
    result["values_stored"], result["values_expected"] = stored, 3 * result["messages_total"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chargers", type=int, default=100)
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
    print(f"\n2.0.1 TransactionEvent(Updated), {args.chargers} stations, {args.seconds:g} s, best of {args.repeat}")
    print(f"{'server':<10} {'msg/s':>8} {'msg/CPU-s':>10} {'p50 ms':>8} {'p99 ms':>8} {'stored/expected':>24} RSS MiB")
    for kind, r in results.items():
        print(
            f"{kind:<10} {r['msgs_per_s']:>8.0f} {r['msgs_per_server_cpu_s'] or 0:>10.0f} {r['latency_p50_ms']:>8.1f}"
            f" {r['latency_p99_ms']:>8.1f} {r['values_stored']:>12}/{r['values_expected']:<11}"
            f" {r['server_rss_mib']:.1f}"
        )
    cpu_ratio = (results["evsite"]["msgs_per_server_cpu_s"] or 0) / (results["baseline"]["msgs_per_server_cpu_s"] or 1)
    verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
    print(f"ratio evsite/baseline: {ratio:.1f}x wall, {cpu_ratio:.1f}x per server CPU-s (target ≥ 10x) {verdict}")
    write_results(
        RESULTS,
        {
            "benchmark": "ocpp201_throughput",
            "baseline": "ocpp.v201.ChargePoint central system, default validation, commit per message",
            "chargers": args.chargers,
            "seconds": args.seconds,
            "results": results,
            "all_runs": runs,
            "ratio": ratio,
            "ratio_per_server_cpu_s": cpu_ratio,
            "target_ratio": TARGET_RATIO,
            "pass": ratio >= TARGET_RATIO,
        },
    )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "serve":
        kind, port, db = sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
        if kind == "evsite":
            from evsite.ocpp.commands import run_event_loop

            run_event_loop(serve_evsite(port, db))
        else:
            asyncio.run(serve_baseline(port, db))
    else:
        main()
