"""A small central system built on the `ocpp` package's ChargePoint class: the independent peer for sim tests.

It records everything the charge points send, answers per spec (transaction ids from a counter,
the same id for a resent StartTransaction), and lets a test call the charge points.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint as OcppChargePoint
from ocpp.v16 import call_result
from ocpp.v16.enums import Action
from websockets.asyncio.server import Server, ServerConnection, serve


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Record:
    boots: list[str] = field(default_factory=list)
    statuses: list[tuple[str, int, str]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    starts: dict[tuple[str, int, str], int] = field(default_factory=dict)  # (cp, connector, timestamp) -> tx id
    start_messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    stops: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    meter_values: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    heartbeats: int = 0
    other: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)


class CsmsChargePoint(OcppChargePoint):
    def __init__(self, cp_id: str, ws: ServerConnection, csms: Csms) -> None:
        super().__init__(cp_id, ws, response_timeout=10)
        self.csms = csms

    @property
    def rec(self) -> Record:
        return self.csms.record

    def journal(self, action: str, payload: dict[str, Any]) -> None:
        """Append a received transaction message to the journal file before answering it."""
        if self.csms.journal is not None:
            with self.csms.journal.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"cp": self.id, "action": action, **payload}, default=str) + "\n")

    @on(Action.boot_notification)
    def on_boot(self, **kw: Any) -> call_result.BootNotification:
        self.rec.boots.append(self.id)
        return call_result.BootNotification(current_time=now(), interval=self.csms.heartbeat_s, status="Accepted")

    @on(Action.heartbeat)
    def on_heartbeat(self, **kw: Any) -> call_result.Heartbeat:
        self.rec.heartbeats += 1
        return call_result.Heartbeat(current_time=now())

    @on(Action.status_notification)
    def on_status(self, connector_id: int, status: str, **kw: Any) -> call_result.StatusNotification:
        self.rec.statuses.append((self.id, connector_id, status))
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_tag: str, **kw: Any) -> call_result.Authorize:
        self.rec.authorizations.append(id_tag)
        return call_result.Authorize(id_tag_info={"status": self.csms.tag_status(id_tag)})

    @on(Action.start_transaction)
    def on_start(self, connector_id: int, id_tag: str, timestamp: str, **kw: Any) -> call_result.StartTransaction:
        message = {"connector_id": connector_id, "id_tag": id_tag, "timestamp": timestamp, **kw}
        self.rec.start_messages.append((self.id, message))
        self.journal("StartTransaction", message)
        key = (self.id, connector_id, timestamp)
        if key not in self.rec.starts:  # idempotent for a resent StartTransaction
            self.rec.starts[key] = next(self.csms.tx_ids)
        return call_result.StartTransaction(
            transaction_id=self.rec.starts[key], id_tag_info={"status": self.csms.tag_status(id_tag)}
        )

    @on(Action.stop_transaction)
    def on_stop(self, **kw: Any) -> call_result.StopTransaction:
        self.rec.stops.append((self.id, kw))
        self.journal("StopTransaction", kw)
        return call_result.StopTransaction(id_tag_info={"status": "Accepted"})

    @on(Action.meter_values)
    def on_meter_values(self, **kw: Any) -> call_result.MeterValues:
        self.rec.meter_values.append((self.id, kw))
        self.journal("MeterValues", kw)
        return call_result.MeterValues()

    @on(Action.diagnostics_status_notification)
    def on_diag(self, **kw: Any) -> call_result.DiagnosticsStatusNotification:
        self.rec.other.append((self.id, "DiagnosticsStatusNotification", kw))
        return call_result.DiagnosticsStatusNotification()

    @on(Action.firmware_status_notification)
    def on_fw(self, **kw: Any) -> call_result.FirmwareStatusNotification:
        self.rec.other.append((self.id, "FirmwareStatusNotification", kw))
        return call_result.FirmwareStatusNotification()


class Csms:
    """Start with `async with Csms() as csms:`; `csms.url`, `csms.connected[cp_id]`, `csms.record`."""

    def __init__(self, port: int, heartbeat_s: int = 300, tx_start: int = 1, journal: Path | None = None) -> None:
        self.port = port
        self.journal = journal
        self.heartbeat_s = heartbeat_s
        self.record = Record()
        self.connected: dict[str, CsmsChargePoint] = {}
        self.tx_ids = itertools.count(tx_start)
        self.blocked_tags: set[str] = set()
        self._server: Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    def tag_status(self, tag: str) -> str:
        return "Blocked" if tag in self.blocked_tags else "Accepted"

    async def _handler(self, ws: ServerConnection) -> None:
        if ws.subprotocol != "ocpp1.6":
            await ws.close()
            return
        assert ws.request is not None
        cp = CsmsChargePoint(ws.request.path.rstrip("/").split("/")[-1], ws, self)
        self.connected[cp.id] = cp
        try:
            await cp.start()
        except Exception:
            pass
        finally:
            if self.connected.get(cp.id) is cp:
                del self.connected[cp.id]

    async def start(self) -> None:
        self._server = await serve(self._handler, "127.0.0.1", self.port, subprotocols=["ocpp1.6"])

    async def stop(self) -> None:
        """Go away abruptly, like a killed process: close the listener and drop every connection."""
        if self._server is not None:
            self._server.close(close_connections=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None
        self.connected.clear()

    async def __aenter__(self) -> Csms:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_for(self, predicate: Any, timeout: float = 10.0, step: float = 0.02) -> None:
        """Poll until predicate() is true; fail the test with a clear message after `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() > deadline:
                raise AssertionError(f"condition not met within {timeout} s")
            await asyncio.sleep(step)


async def _serve_forever(port: int, journal: Path, tx_start: int) -> None:
    async with Csms(port, tx_start=tx_start, journal=journal):
        await asyncio.Event().wait()


if __name__ == "__main__":  # a CSMS process to kill -9: python -m tests.sim.csms PORT JOURNAL TX_START
    asyncio.run(_serve_forever(int(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])))
