"""Store a load-manager replay in the site's database, as a live run through the OCPP server would.

`evsite replay` drives the real controller with modelled EVs. With a recorder attached, each visit
becomes what the site's chargers would have sent: a StartTransaction when the car plugs in, a
MeterValues element every `meter_value_interval_s` while it is plugged in (energy register, power,
current per line), and a StopTransaction with the final register when it leaves. They go through the
same `OcppStore` methods the OCPP server's handlers call, so billing (`evsite bill`) and the
dashboard read replayed sessions exactly as they read live ones.

Each charger's register continues from the last stop stored before the replay starts (or from a
fixed per-charger value on an empty database), so replaying the same period again finds the same
transactions and samples and adds nothing. Cars still plugged in when the replay ends keep an open
transaction, as they would on a live site.
"""

from __future__ import annotations

import asyncio
import math
import zlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import func, select

from evsite.store.ocpp import TRANSACTIONS, OcppStore
from evsite.store.samples import ENERGY

if TYPE_CHECKING:
    from evsite.control.replay import Replay
    from evsite.control.scenarios import Session

LINE_NAMES = ("L1", "L2", "L3")
FLUSH_ROWS = 10_000  # sampled values per commit while the replay runs


class ReplayRecorder:
    """Receives a replay's plug-ins, samples and departures and stores them (see the module docstring)."""

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self.store = self._run(OcppStore.open(url, schema=schema, synchronous="NORMAL"))
        self.url = url
        self._replay: Replay | None = None
        self._interval = 60.0
        self._next_sample = 0.0
        self._registers: dict[tuple[str, int], float] = {}
        self._open: dict[int, tuple[int, float, str]] = {}  # port → (transaction id, register at start, id tag)
        self._pending: list[dict[str, Any]] = []
        self.transactions = 0
        self.samples = 0
        self.first: datetime | None = None
        self.last: datetime | None = None

    def _run(self, coro: Any) -> Any:
        return self._loop.run_until_complete(coro)

    def attach(self, replay: Replay) -> None:
        """Bind to a replay before it runs (ports, voltages, start time, the site's sampling interval)."""
        self._replay = replay
        replay.recorder = self
        self._interval = float(replay.site.control.meter_value_interval_s)
        keys = sorted({(port.charge_point_id, port.connector_id) for port in replay.tree.ports})
        self._registers = self._run(self._start_registers(keys, replay.scenario.start))

    async def _start_registers(self, keys: list[tuple[str, int]], start: datetime) -> dict[tuple[str, int], float]:
        """Each connector's register at the replay's start: its last stop before then, else a fixed value."""
        stmt = (
            select(TRANSACTIONS.c.charger_id, TRANSACTIONS.c.connector_id, func.max(TRANSACTIONS.c.meter_stop))
            .where(TRANSACTIONS.c.stop_time <= start, TRANSACTIONS.c.meter_stop.is_not(None))
            .group_by(TRANSACTIONS.c.charger_id, TRANSACTIONS.c.connector_id)
        )
        async with self.store.engine.connect() as conn:
            last = {(r[0], r[1]): float(r[2]) for r in await conn.execute(stmt)}
        return {k: last.get(k, float(100_000 + zlib.crc32(f"{k[0]}/{k[1]}".encode()) % 5_000_000)) for k in keys}

    def _at(self, t: float) -> datetime:
        assert self._replay is not None
        return self._replay.scenario.start + timedelta(seconds=round(t, 3))

    def _port(self, port: int) -> tuple[str, int]:
        assert self._replay is not None
        p = self._replay.tree.ports[port]
        return p.charge_point_id, p.connector_id

    # ------------------------------------------------------------------ the replay's hooks

    def plugged(self, port: int, session: Session, t: float) -> None:
        key = self._port(port)
        register = math.floor(self._registers[key])
        tag = session.id_tag or "REPLAY"
        at = self._at(t)
        tx = self._run(self.store.start_transaction(key[0], key[1], tag, "Accepted", register, at, None))
        self._open[port] = (tx, float(register), tag)
        self.transactions += 1
        self.first = min(self.first or at, at)

    def sample(self, t: float, per_line: np.ndarray, delivered_wh: np.ndarray, present: np.ndarray) -> None:
        if t < self._next_sample:
            return
        self._next_sample = (math.floor(t / self._interval) + 1) * self._interval
        assert self._replay is not None
        volts = self._replay.ctrl.needs.volts
        at = self._at(t)
        for p in present:
            port = int(p)
            if port not in self._open:
                continue
            tx, start, _ = self._open[port]
            charger, connector = self._port(port)
            amps = float(per_line[port].max())
            lines = self._replay.tree.ports[port].lines
            values = [
                (ENERGY, "", "Wh", str(math.floor(start + float(delivered_wh[port])))),
                ("Power.Active.Import", "", "W", f"{amps * float(volts[port]):.0f}"),
                *(("Current.Import", LINE_NAMES[line], "A", f"{float(per_line[port, line]):.1f}") for line in lines),
            ]
            self._pending += _rows(charger, connector, tx, at, "Sample.Periodic", values)
            self.samples += 1
        self.last = at
        if len(self._pending) >= FLUSH_ROWS:
            self.flush()

    def unplugged(self, port: int, t: float, delivered_wh: float) -> None:
        if port not in self._open:
            return
        tx, start, tag = self._open.pop(port)
        key = self._port(port)
        register = math.floor(start + delivered_wh)
        self._registers[key] = float(register)
        at = self._at(t)
        self.flush()  # the session's samples are committed before its stop, as a charger sends them
        end = _rows(key[0], key[1], tx, at, "Transaction.End", [(ENERGY, "", "Wh", str(register))])
        self._run(self.store.stop_transaction(key[0], tx, register, at, "EVDisconnected", tag, end))
        self.last = max(self.last or at, at)

    # ------------------------------------------------------------------ lifecycle

    def flush(self) -> None:
        if self._pending:
            rows, self._pending = self._pending, []
            self._run(self.store.add_meter_values(rows))

    def close(self) -> dict[str, Any]:
        """Commit what is pending, close the store; returns what was written (for `--json`)."""
        self.flush()
        self._run(self.store.close())
        self._loop.close()
        return {
            "database": self.url,
            "transactions": self.transactions,
            "open_transactions": len(self._open),
            "meter_samples": self.samples,
            "first": self.first.isoformat() if self.first else None,
            "last": self.last.isoformat() if self.last else None,
        }


def _rows(
    charger: str, connector: int, tx: int, at: datetime, context: str, values: list[tuple[str, str, str, str]]
) -> list[dict[str, Any]]:
    """Sampled-value rows as the OCPP server builds them from a MeterValue element."""
    return [
        {
            "charger_id": charger,
            "connector_id": connector,
            "transaction_id": tx,
            "timestamp": at,
            "measurand": measurand,
            "phase": phase,
            "location": "Outlet",
            "context": context,
            "unit": unit,
            "format": "Raw",
            "value": value,
        }
        for measurand, phase, unit, value in values
    ]
