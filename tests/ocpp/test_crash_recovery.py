"""`kill -9` of the server in the middle of transactions, then restart and charger replay:
every acknowledged transaction and meter value is in the database exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import free_port

from .conftest import EXAMPLES

CHARGERS = [f"WP-{n:02d}" for n in range(1, 11)]
SESSIONS = 3
SAMPLES = 8
BASE = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
# sampled values stored for a charger, and how many distinct meter times they carry
SAMPLE_COUNT = """
    SELECT COALESCE(SUM(l.size), 0), COUNT(DISTINCT s.at_s * 1000000 + s.at_us)
    FROM ocpp_samples s
    JOIN ocpp_sample_series r ON r.id = s.series_id
    JOIN ocpp_sample_layouts l ON l.id = s.layout_id
    WHERE r.charger_id = ?
"""


def start_server(port: int, db: Path) -> subprocess.Popen[bytes]:
    code = "from evsite.cli import app; app()"
    args = [
        sys.executable,
        "-c",
        code,
        "serve",
        str(EXAMPLES / "workplace-20.yaml"),
        "--ocpp-port",
        str(port),
        "--db",
        f"sqlite+aiosqlite:///{db}",
        "--log-level",
        "WARNING",
        "--api-port",
        str(free_port()),
        "--no-integrations",  # the site's Modbus meters and VTN are not simulated here
    ]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class ReplayingCharger:
    """Sends its messages in order; a message not acknowledged when the link drops is resent."""

    def __init__(self, cp_id: str, port: int) -> None:
        self.cp_id = cp_id
        self.url = f"ws://127.0.0.1:{port}/ocpp/{cp_id}"
        self.acked_tx: list[int] = []
        self.acked_samples: list[str] = []
        self.n = 0

    async def _send(self, ws: Any, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        self.n += 1
        await ws.send(orjson.dumps([2, f"{self.cp_id}-{self.n}", action, payload]).decode())
        while True:
            msg = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
            if msg[0] == 2:  # the server's own CALLs (configuration, profiles): answer them
                answer = {"configurationKey": []} if msg[2] == "GetConfiguration" else {"status": "Accepted"}
                await ws.send(orjson.dumps([3, msg[1], answer]).decode())
            elif msg[1] == f"{self.cp_id}-{self.n}":
                assert msg[0] == 3, msg
                return dict(msg[2])

    async def deliver(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        while True:
            try:
                if self.ws is None:
                    self.ws = await connect(self.url, subprotocols=["ocpp1.6"], open_timeout=2)
                return await self._send(self.ws, action, payload)
            except (OSError, ConnectionClosed, InvalidStatus, TimeoutError):
                self.ws = None
                await asyncio.sleep(0.2)

    async def run(self) -> None:
        self.ws: Any = None
        for s in range(SESSIONS):
            t0 = BASE + timedelta(hours=s)
            start = {"connectorId": 1, "idTag": "CARD", "meterStart": s * 10_000, "timestamp": t0.isoformat()}
            tx = (await self.deliver("StartTransaction", start))["transactionId"]
            self.acked_tx.append(tx)
            for k in range(SAMPLES):
                stamp = (t0 + timedelta(minutes=k + 1)).isoformat()
                value = {"value": str(s * 10_000 + k), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
                payload = {
                    "connectorId": 1,
                    "transactionId": tx,
                    "meterValue": [{"timestamp": stamp, "sampledValue": [value]}],
                }
                await self.deliver("MeterValues", payload)
                self.acked_samples.append(stamp)
            stop = {
                "transactionId": tx,
                "meterStop": s * 10_000 + 5000,
                "timestamp": (t0 + timedelta(minutes=30)).isoformat(),
            }
            await self.deliver("StopTransaction", stop)
        if self.ws is not None:
            await self.ws.close()


async def test_kill_9_mid_transactions_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    port, db = free_port(), tmp_path / "crash.db"
    server = start_server(port, db)
    chargers = [ReplayingCharger(cp, port) for cp in CHARGERS]
    try:
        tasks = [asyncio.create_task(c.run()) for c in chargers]
        # Kill the server once some (but not all) messages were acknowledged.
        for _ in range(200):
            await asyncio.sleep(0.05)
            if sum(len(c.acked_samples) for c in chargers) >= 40:
                break
        acked_before = {c.cp_id: (list(c.acked_tx), list(c.acked_samples)) for c in chargers}
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        # Everything acknowledged before the crash is already on disk.
        with sqlite3.connect(db) as conn:
            for cp_id, (txs, samples) in acked_before.items():
                stored_tx = {
                    r[0] for r in conn.execute("SELECT id FROM ocpp_transactions WHERE charger_id=?", (cp_id,))
                }
                assert set(txs) <= stored_tx
                stored = conn.execute(SAMPLE_COUNT, (cp_id,)).fetchone()[0]
                assert stored >= len(samples)
        assert sum(len(s) for _, s in acked_before.values()) < len(CHARGERS) * SESSIONS * SAMPLES, "killed too late"
        server = start_server(port, db)
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    finally:
        server.kill()
        server.wait(10)
    with sqlite3.connect(db) as conn:
        for c in chargers:
            rows = conn.execute(
                "SELECT id, meter_stop FROM ocpp_transactions WHERE charger_id=? ORDER BY id", (c.cp_id,)
            ).fetchall()
            assert [r[0] for r in rows] == c.acked_tx  # one row per session, no duplicate starts
            assert all(r[1] is not None for r in rows)
            samples = conn.execute(SAMPLE_COUNT, (c.cp_id,)).fetchone()
            assert samples == (SESSIONS * SAMPLES, SESSIONS * SAMPLES)


class ReplayingStation(ReplayingCharger):
    """The same, speaking OCPP 2.0.1: boots once, then TransactionEvents Started, Updated…, Ended."""

    async def _send(self, ws: Any, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        self.n += 1
        await ws.send(orjson.dumps([2, f"{self.cp_id}-{self.n}", action, payload]).decode())
        while True:
            msg = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
            if msg[0] == 2:  # the server's setup calls: answer as a station with an empty device model
                request = msg[3]
                if msg[2] == "GetVariables":
                    items = request["getVariableData"]
                    answer: dict[str, Any] = {"getVariableResult": [_result(d, "UnknownVariable") for d in items]}
                elif msg[2] == "SetVariables":
                    answer = {"setVariableResult": [_result(d, "Accepted") for d in request["setVariableData"]]}
                else:
                    answer = {"status": "Accepted"}
                await ws.send(orjson.dumps([3, msg[1], answer]).decode())
            elif msg[1] == f"{self.cp_id}-{self.n}":
                assert msg[0] == 3, msg
                return dict(msg[2])

    async def deliver(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        while True:
            try:
                if self.ws is None:
                    self.ws = await connect(self.url, subprotocols=["ocpp2.0.1"], open_timeout=2)
                return await self._send(self.ws, action, payload)
            except (OSError, ConnectionClosed, InvalidStatus, TimeoutError):
                self.ws = None
                await asyncio.sleep(0.2)

    async def run(self) -> None:
        self.ws = None
        boot = {"chargingStation": {"model": "Pro 48", "vendorName": "ExampleCharge"}, "reason": "PowerUp"}
        assert (await self.deliver("BootNotification", boot))["status"] == "Accepted"
        for s in range(SESSIONS):
            t0, key = BASE + timedelta(hours=s), f"{self.cp_id}-tx-{s}"
            for seq in range(SAMPLES + 2):
                kind = "Started" if seq == 0 else "Ended" if seq == SAMPLES + 1 else "Updated"
                stamp = (t0 + timedelta(minutes=30 if kind == "Ended" else seq)).isoformat()
                value = {"value": s * 10_000 + seq, "measurand": "Energy.Active.Import.Register"}
                event = {
                    "eventType": kind,
                    "timestamp": stamp,
                    "triggerReason": "MeterValuePeriodic",
                    "seqNo": seq,
                    "transactionInfo": {"transactionId": key},
                    "evse": {"id": 1, "connectorId": 1},
                    "meterValue": [{"timestamp": stamp, "sampledValue": [value]}],
                }
                await self.deliver("TransactionEvent", event)
                self.acked_samples.append(stamp)
            self.acked_tx.append(s)
        if self.ws is not None:
            await self.ws.close()


def _result(item: dict[str, Any], status: str) -> dict[str, Any]:
    return {"attributeStatus": status, "component": item["component"], "variable": item["variable"]}


async def test_kill_9_mid_201_transactions_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    port, db = free_port(), tmp_path / "crash201.db"
    server = start_server(port, db)
    stations = [ReplayingStation(cp, port) for cp in CHARGERS]
    try:
        tasks = [asyncio.create_task(s.run()) for s in stations]
        for _ in range(200):
            await asyncio.sleep(0.05)
            if sum(len(s.acked_samples) for s in stations) >= 40:
                break
        acked = {s.cp_id: len(s.acked_samples) for s in stations}
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        with sqlite3.connect(db) as conn:  # everything acknowledged is on disk
            for cp_id, count in acked.items():
                assert conn.execute(SAMPLE_COUNT, (cp_id,)).fetchone()[0] >= count
        assert sum(acked.values()) < len(CHARGERS) * SESSIONS * (SAMPLES + 2), "killed too late"
        server = start_server(port, db)
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    finally:
        server.kill()
        server.wait(10)
    with sqlite3.connect(db) as conn:
        for s in stations:
            rows = conn.execute(
                "SELECT t.meter_start, t.meter_stop, l.station_tx_id FROM ocpp_transactions t"
                " JOIN ocpp201_transactions l ON l.transaction_id = t.id WHERE t.charger_id=? ORDER BY t.id",
                (s.cp_id,),
            ).fetchall()
            # one transaction per session (no duplicate from a replayed Started), each ended with its register
            assert rows == [(k * 10_000, k * 10_000 + SAMPLES + 1, f"{s.cp_id}-tx-{k}") for k in range(SESSIONS)]
            per_session = SAMPLES + 2
            assert conn.execute(SAMPLE_COUNT, (s.cp_id,)).fetchone() == (SESSIONS * per_session,) * 2
