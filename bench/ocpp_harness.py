"""Shared pieces of the OCPP benchmarks: server processes (evsite and a baseline) and light clients.

Servers run in their own process so that their CPU and memory are measured apart from the load
generator. Two kinds:

- `evsite`: `evsite.ocpp.server.CentralSystem` with its SQLite store (WAL, synchronous=FULL).
- `evsite-cluster`: the same, as a cluster gateway on the local NATS (bench/cluster_overhead.py).
- `baseline`: a central system built the usual way on the `ocpp` package — one
  `ocpp.v16.ChargePoint` per connection with its default (jsonschema) validation, a `@on`
  handler per action, and each MeterValues inserted and committed with SQLAlchemy into the same
  tables, on the same SQLite settings.

    python bench/ocpp_harness.py serve {evsite|evsite-cluster|baseline} PORT DB_PATH
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (all threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(kind: str, port: int, db: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "serve", kind, str(port), str(db)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{kind} server did not start: {proc.stderr.read().decode() if proc.stderr else ''}")


_STAMP_BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
"""Recent enough that the server's clock-window check does not flag every benchmark sample."""


def meter_values_frame(unique_id: str, n: int, tx: int = 1) -> str:
    """A MeterValues CALL with one sample of three measurands; `n` (in µs) makes its timestamp unique."""
    stamp = (_STAMP_BASE + timedelta(microseconds=n)).isoformat().replace("+00:00", "Z")
    sampled = [
        {
            "value": str(1000 + n),
            "measurand": "Energy.Active.Import.Register",
            "unit": "Wh",
            "context": "Sample.Periodic",
        },
        {"value": "7200.0", "measurand": "Power.Active.Import", "unit": "W", "context": "Sample.Periodic"},
        {"value": "30.0", "measurand": "Current.Import", "unit": "A", "phase": "L1", "context": "Sample.Periodic"},
    ]
    payload = {"connectorId": 1, "transactionId": tx, "meterValue": [{"timestamp": stamp, "sampledValue": sampled}]}
    return orjson.dumps([2, unique_id, "MeterValues", payload]).decode()


def answer_server_call(message: list[Any]) -> str:
    """A charge point's minimal valid answer to a central-system CALL."""
    action = message[2]
    payload: dict[str, Any] = {"configurationKey": []} if action == "GetConfiguration" else {"status": "Accepted"}
    return orjson.dumps([3, message[1], payload]).decode()


# --------------------------------------------------------------------------- servers


async def serve_evsite(port: int, db: Path, cluster: str | None = None) -> None:
    from evsite.ocpp.server import CentralSystem, ServerSettings
    from evsite.store.ocpp import OcppStore

    store = await OcppStore.open(f"sqlite+aiosqlite:///{db}")
    settings = ServerSettings(port=port, accept_unknown=True, unknown_status="Accepted", heartbeat_interval_s=60)
    cs = CentralSystem(store, None, settings=settings)
    if cluster is not None:  # #16: the same server as a cluster gateway (ownership in NATS KV, events on JetStream)
        from evsite.cluster import ClusterNode, ClusterSettings, Gateway

        node = ClusterNode(ClusterSettings(cluster, namespace=f"bench{os.getpid()}"))
        await node.start()
        gateway = Gateway(node, "bench", cs, cs.bus)
        await gateway.start()
        cs.observer = gateway
    await cs.start()
    await asyncio.Event().wait()


async def serve_baseline(port: int, db: Path) -> None:
    from ocpp.routing import on
    from ocpp.v16 import ChargePoint, call_result
    from ocpp.v16.enums import Action, RegistrationStatus
    from websockets.asyncio.server import serve

    from evsite.store.ocpp import OcppStore
    from evsite.store.samples import SampleWriter

    store = await OcppStore.open(f"sqlite+aiosqlite:///{db}")  # same schema and SQLite settings
    engine = store.engine
    samples = SampleWriter()  # the same compact sample tables, one transaction per message

    class BaselineCentralSystem(ChargePoint):
        @on(Action.boot_notification)
        async def on_boot(self, charge_point_vendor: str, charge_point_model: str, **_: Any) -> Any:
            return call_result.BootNotification(
                current_time=datetime.now(UTC).isoformat(), interval=300, status=RegistrationStatus.accepted
            )

        @on(Action.heartbeat)
        async def on_heartbeat(self) -> Any:
            return call_result.Heartbeat(current_time=datetime.now(UTC).isoformat())

        @on(Action.meter_values)
        async def on_meter_values(
            self, connector_id: int, meter_value: list[dict[str, Any]], transaction_id: int | None = None
        ) -> Any:
            rows = []
            for entry in meter_value:
                stamp = datetime.fromisoformat(entry["timestamp"])
                for sv in entry["sampled_value"]:
                    rows.append(
                        {
                            "charger_id": self.id,
                            "connector_id": connector_id,
                            "transaction_id": transaction_id,
                            "timestamp": stamp,
                            "measurand": sv.get("measurand", "Energy.Active.Import.Register"),
                            "phase": sv.get("phase", ""),
                            "location": sv.get("location", "Outlet"),
                            "context": sv.get("context", "Sample.Periodic"),
                            "unit": sv.get("unit", ""),
                            "format": sv.get("format", "Raw"),
                            "value": sv["value"],
                            "value_num": float(sv["value"]),
                        }
                    )
            async with engine.begin() as conn:
                new = await conn.run_sync(lambda sync: samples.write(sync, rows))
            samples.remember(new)
            return call_result.MeterValues()

    async def handler(ws: Any) -> None:
        cp = BaselineCentralSystem(ws.request.path.rsplit("/", 1)[-1], ws)
        with contextlib.suppress(Exception):
            await cp.start()

    async with serve(handler, "127.0.0.1", port, subprotocols=["ocpp1.6"], compression=None, ping_interval=None):
        await asyncio.Event().wait()


# --------------------------------------------------------------------------- light clients


class LightCharger:
    """A raw OCPP-J charge point for load generation: one CALL at a time, answers server CALLs."""

    def __init__(self, url: str, cp_id: str) -> None:
        self.url, self.cp_id = url, cp_id
        self.ws: Any = None
        self._n = 0
        self._waiter: asyncio.Future[list[Any]] | None = None
        self._reader: asyncio.Task[None] | None = None
        self.server_calls: dict[str, int] = {}

    async def connect(self) -> None:
        from websockets.asyncio.client import connect

        self.ws = await connect(
            f"{self.url}/{self.cp_id}", subprotocols=["ocpp1.6"], compression=None, ping_interval=None, open_timeout=60
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                message = orjson.loads(frame)
                if message[0] == 2:
                    self.server_calls[message[2]] = self.server_calls.get(message[2], 0) + 1
                    await self.ws.send(answer_server_call(message))
                elif self._waiter is not None and not self._waiter.done():
                    self._waiter.set_result(message)
        except Exception:
            pass

    async def call_frame(self, frame: str) -> list[Any]:
        self._waiter = asyncio.get_running_loop().create_future()
        await self.ws.send(frame)
        return await asyncio.wait_for(self._waiter, 60)

    def next_id(self) -> str:
        self._n += 1
        return f"{self._n}"

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "serve":
        kind, port, db = sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
        if kind in ("evsite", "evsite-cluster"):
            from evsite.ocpp.commands import run_event_loop

            cluster = "nats://127.0.0.1:4222" if kind == "evsite-cluster" else None
            run_event_loop(serve_evsite(port, db, cluster))  # as `evsite serve` runs it (uvloop when installed)
        else:
            asyncio.run(serve_baseline(port, db))  # the `ocpp` package's examples use asyncio.run
    else:
        raise SystemExit(__doc__)


def write_results(path: Path, payload: dict[str, Any]) -> None:
    """The benchmark's JSON under bench/results/, with the machine it ran on."""
    machine = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**payload, **machine}, indent=2) + "\n")
