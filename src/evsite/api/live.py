"""The API's live picture of the site, kept current from the event bus.

One subscriber folds every event into small in-memory structures (connector status, last meter
sample, setpoint history, open sessions, latest signals, recent events, alerts) so that reads and
the live stream never touch the database on the hot path. The load manager's own snapshot, when
present, replaces the node/line numbers derived here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from evsite.api import topology
from evsite.api.runtime import NodeLine, SiteRuntime
from evsite.runtime.events import (
    ChargerConnected,
    ConnectorStatus,
    Event,
    FailsafeState,
    MeterSample,
    SetpointResult,
    SiteSignal,
    TransactionEvent,
)

EVENT_HISTORY = 500
SETPOINT_HISTORY = 100
CLOSED_SESSIONS = 10_000
EXCURSION_ALERT_S = 15.0
"""A node above its limit for longer than this raises an alert (EVs take up to ~15 s to follow)."""


CONTROL_ALERTS = {"charger-noncompliant", "meter-mismatch", "charger-suspended", "demand-peak-raised"}
"""Alert kinds the load manager raises itself (mirrored on every tick, cleared when it drops them)."""


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ConnectorLive:
    status: str = "Unknown"
    error_code: str = "NoError"
    status_at: datetime | None = None
    setpoint_a: float | None = None
    setpoint_accepted: bool | None = None
    offered_a: float | None = None
    current_a: dict[str, float] = field(default_factory=dict)
    power_w: float | None = None
    energy_wh: float | None = None
    sample_at: datetime | None = None
    transaction_id: int | None = None
    id_tag: str | None = None
    start_wh: float | None = None
    started_at: datetime | None = None
    priority: int = 1
    departure: datetime | None = None
    energy_request_wh: float | None = None
    setpoints: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=SETPOINT_HISTORY))

    @property
    def drawn_a(self) -> float:
        return max(self.current_a.values(), default=0.0)

    @property
    def session_wh(self) -> float | None:
        if self.transaction_id is None or self.start_wh is None or self.energy_wh is None:
            return None
        return max(0.0, self.energy_wh - self.start_wh)


@dataclass
class SessionRecord:
    transaction_id: int
    charge_point_id: str
    connector_id: int
    id_tag: str | None
    started_at: datetime
    start_wh: float
    stopped_at: datetime | None = None
    stop_wh: float | None = None
    reason: str | None = None

    @property
    def energy_wh(self) -> float | None:
        return None if self.stop_wh is None else max(0.0, self.stop_wh - self.start_wh)


@dataclass
class ManualLimit:
    node: str
    limit_a: float
    until: datetime
    set_by: str
    set_at: datetime = field(default_factory=now)


@dataclass
class Alert:
    key: str
    # charger-offline | profile-rejected | failsafe-refused | meter-stale | limit-excursion | charger-noncompliant
    # | meter-mismatch | charger-suspended | demand-peak-raised
    kind: str
    severity: str  # warning | critical
    message: str
    since: datetime
    active: bool = True
    cleared_at: datetime | None = None


class LiveState:
    """Folds bus events into the site's current state; `run()` is the subscriber task."""

    def __init__(self, runtime: SiteRuntime) -> None:
        self.runtime = runtime
        self.site = runtime.site
        self.nodes = topology.nodes(runtime.site)
        self._chain = {c.id: topology.ancestors(self.nodes, c.id) for c in runtime.site.circuits}
        self.connected: dict[str, bool] = {e.id: False for e in runtime.site.evse}
        self.connectors: dict[tuple[str, int], ConnectorLive] = {
            (e.id, c.id): ConnectorLive() for e in runtime.site.evse for c in e.connectors
        }
        self.sessions: dict[int, SessionRecord] = {}
        self._closed: deque[int] = deque()
        self.signals: dict[tuple[str, str], SiteSignal] = {}
        self.meter_samples: dict[str, deque[MeterSample]] = {}
        self.events: deque[dict[str, Any]] = deque(maxlen=EVENT_HISTORY)
        self.alerts: dict[str, Alert] = {}
        self.manual_limit: ManualLimit | None = None
        self._event_seq = 0
        self._message_times: deque[float] = deque()
        self._over_since: dict[tuple[str, str], datetime] = {}
        self.longest_excursion_s = 0.0
        self.peak: dict[str, float] = {}
        self._ready = asyncio.Event()

    # ------------------------------------------------------------------ subscriber

    async def run(self) -> None:
        async with self.runtime.bus.subscribe() as queue:
            self._ready.set()
            while True:
                self.apply(await queue.get())

    async def ready(self) -> None:
        await self._ready.wait()

    async def watch(self, period_s: float = 1.0) -> None:
        """Periodic checks that no event triggers: stale meters, excursions, expired overrides."""
        while True:
            self.tick()
            await asyncio.sleep(period_s)

    def apply(self, event: Event) -> None:
        self._message_times.append(time.monotonic())
        match event:
            case ChargerConnected():
                self.connected[event.charge_point_id] = event.connected
                key = f"offline:{event.charge_point_id}"
                if event.connected:
                    self._clear(key)
                else:
                    self._raise(key, "charger-offline", "warning", f"Charger {event.charge_point_id} is offline")
                    # #14: what it last reported no longer describes it: unknown until it reports again.
                    for (cp, _), live in self.connectors.items():
                        if cp == event.charge_point_id:
                            live.status, live.current_a, live.power_w = "Unknown", {}, None
            case ConnectorStatus():
                live = self._connector(event.charge_point_id, event.connector_id)
                live.status, live.error_code, live.status_at = event.status, event.error_code, event.at
                self.connected.setdefault(event.charge_point_id, True)
                if not self.connected[event.charge_point_id]:
                    self.connected[event.charge_point_id] = True
                    self._clear(f"offline:{event.charge_point_id}")
            case MeterSample():
                self._sample(event)
            case TransactionEvent():
                self._transaction(event)
            case SetpointResult():
                live = self._connector(event.charge_point_id, event.connector_id)
                live.setpoint_a, live.setpoint_accepted = event.limit_a, event.accepted
                live.setpoints.append(
                    {"at": event.at, "limit_a": event.limit_a, "accepted": event.accepted, "detail": event.detail}
                )
                key = f"rejected:{event.charge_point_id}:{event.connector_id}"
                if event.accepted:
                    self._clear(key)
                else:
                    text = f"Charger {event.charge_point_id} rejected a {event.limit_a:g} A profile {event.detail}"
                    self._raise(key, "profile-rejected", "warning", text.strip())
            case SiteSignal():
                self._signal(event)
            case FailsafeState():
                key = f"failsafe-refused:{event.charge_point_id}"
                if not event.refused:
                    self._clear(key)
                else:
                    lowered = ", ".join(event.lowered) or "none connected"
                    text = (
                        f"Charger {event.charge_point_id} refuses every fail-safe profile: without evsite it draws its "
                        f"{event.nameplate_a:g} A nameplate; the others' fail-safe shares were lowered ({lowered})"
                    )
                    self._raise(key, "failsafe-refused", "critical", text)
        if not isinstance(event, MeterSample):
            self._record(event)

    def _connector(self, charge_point_id: str, connector_id: int) -> ConnectorLive:
        return self.connectors.setdefault((charge_point_id, connector_id), ConnectorLive())

    def _sample(self, sample: MeterSample) -> None:
        key = (sample.source, sample.connector_id)
        if key in self.connectors or sample.source in self.connected:
            live = self._connector(*key)
            live.sample_at = sample.at
            live.current_a = dict(sample.current_a)
            live.power_w = sample.power_w
            if sample.energy_wh is not None:
                live.energy_wh = sample.energy_wh
                if live.transaction_id is not None and live.start_wh is None:
                    live.start_wh = sample.energy_wh
            if sample.offered_a is not None:
                live.offered_a = sample.offered_a
            self._clear(f"stale:{sample.source}:{sample.connector_id}")
        else:
            history = self.meter_samples.setdefault(sample.source, deque(maxlen=600))
            history.append(sample)
            self._clear(f"stale:{sample.source}:0")

    def _transaction(self, event: TransactionEvent) -> None:
        live = self._connector(event.charge_point_id, event.connector_id)
        if event.kind == "started":
            live.transaction_id, live.id_tag, live.start_wh, live.started_at = (
                event.transaction_id,
                event.id_tag,
                event.meter_wh,
                event.at,
            )
            live.energy_wh = event.meter_wh
            self.sessions.setdefault(
                event.transaction_id,
                SessionRecord(
                    event.transaction_id, event.charge_point_id, event.connector_id, event.id_tag, event.at,
                    event.meter_wh,
                ),
            )  # fmt: skip
            return
        record = self.sessions.get(event.transaction_id)
        if record is None:  # stop without a start we saw: keep it, flagged by its missing start energy
            record = SessionRecord(
                event.transaction_id, event.charge_point_id, event.connector_id, event.id_tag, event.at, event.meter_wh
            )
            self.sessions[event.transaction_id] = record
        if record.stopped_at is None:
            record.stopped_at, record.stop_wh, record.reason = event.at, event.meter_wh, event.reason
            self._closed.append(event.transaction_id)
            while len(self._closed) > CLOSED_SESSIONS:
                self.sessions.pop(self._closed.popleft(), None)
        if live.transaction_id == event.transaction_id:
            live.transaction_id, live.start_wh, live.started_at = None, None, None
            live.departure, live.energy_request_wh = None, None

    def _signal(self, signal: SiteSignal) -> None:
        self.signals[(signal.kind, signal.node)] = signal
        key = f"stale:{signal.source}:0"
        if signal.stale:
            self._raise(key, "meter-stale", "warning", f"{signal.kind} source {signal.source} stopped answering")
        else:
            self._clear(key)

    def _record(self, event: Event) -> None:
        self._event_seq += 1
        self.events.append(event_json(event, self._event_seq))

    def events_since(self, seq: int) -> list[dict[str, Any]]:
        return [e for e in self.events if e["seq"] > seq]

    @property
    def last_seq(self) -> int:
        return self._event_seq

    # ------------------------------------------------------------------ alerts

    def _raise(self, key: str, kind: str, severity: str, message: str) -> None:
        alert = self.alerts.get(key)
        if alert is None or not alert.active:
            self.alerts[key] = Alert(key, kind, severity, message, now())

    def _clear(self, key: str) -> None:
        alert = self.alerts.get(key)
        if alert is not None and alert.active:
            alert.active, alert.cleared_at = False, now()

    def tick(self) -> None:
        at = now()
        interval = timedelta(seconds=3 * self.site.control.meter_value_interval_s)
        for (cp, conn), live in self.connectors.items():
            if live.transaction_id is not None and live.sample_at is not None and at - live.sample_at > interval:
                self._raise(f"stale:{cp}:{conn}", "meter-stale", "warning", f"No meter values from {cp}/{conn}")
        for meter in self.site.meters:
            history = self.meter_samples.get(meter.id)
            stale_after = timedelta(seconds=meter.modbus.stale_after_s if meter.modbus else 60)
            if history and at - history[-1].at > stale_after:
                self._raise(f"stale:{meter.id}:0", "meter-stale", "warning", f"Meter {meter.id} readings are stale")
        if self.manual_limit is not None and self.manual_limit.until <= at:
            # The load manager keeps a manual cap until it is cleared, so expiry is announced here.
            node, self.manual_limit = self.manual_limit.node, None
            self.runtime.bus.publish(SiteSignal("manual_limit", node, {}, "api:expired", until=at))
        self._control_alerts()
        for row in self.node_lines():
            key = (row.node, row.line)
            self.peak[f"{row.node}:{row.line}"] = max(self.peak.get(f"{row.node}:{row.line}", 0.0), row.measured_a)
            if row.measured_a > row.limit_a + 1e-6:
                since = self._over_since.setdefault(key, at)
                seconds = (at - since).total_seconds()
                self.longest_excursion_s = max(self.longest_excursion_s, seconds)
                if seconds >= EXCURSION_ALERT_S:
                    text = f"{row.node} {row.line} at {row.measured_a:.1f} A over its {row.limit_a:g} A limit"
                    self._raise(f"excursion:{row.node}:{row.line}", "limit-excursion", "critical", text)
            else:
                self._over_since.pop(key, None)
                self._clear(f"excursion:{row.node}:{row.line}")

    def _control_alerts(self) -> None:
        """Mirror the load manager's own alerts (a charger drawing beyond its setpoint, a meter gap)."""
        source = getattr(self.runtime.control, "alerts", None)
        if source is None:
            return
        raised = {a["key"]: a for a in source()}
        for key, alert in raised.items():
            self._raise(key, alert["kind"], alert["severity"], alert["message"])
        for key, alert in self.alerts.items():
            if alert.active and alert.kind in CONTROL_ALERTS and key not in raised:
                self._clear(key)

    # ------------------------------------------------------------------ derived views

    def messages_per_s(self, window_s: float = 10.0) -> float:
        cutoff = time.monotonic() - window_s
        while self._message_times and self._message_times[0] < cutoff:
            self._message_times.popleft()
        return len(self._message_times) / window_s

    def effective_limit(self, node: str, design_limit: float) -> float:
        """Design limit capped by a live manual override or DR limit on the node."""
        limit = design_limit
        at = now()
        if self.manual_limit is not None and self.manual_limit.node == node and self.manual_limit.until > at:
            limit = min(limit, self.manual_limit.limit_a)
        dr = self.signals.get(("dr_limit", node))
        if dr is not None and dr.current_a and (dr.until is None or dr.until > at):
            limit = min(limit, min(dr.current_a.values()))
        return limit

    def node_lines(self) -> list[NodeLine]:
        """Limit, measured and allocated current per node and line (from the control loop when it runs)."""
        control = self.runtime.control
        if control is not None:
            return control.node_lines()
        measured: dict[tuple[str, str], float] = {}
        allocated: dict[tuple[str, str], float] = {}
        for evse in self.site.evse:
            circuit = self.site.circuit(evse.circuit)
            lines = tuple(str(x) for x in circuit.lines)
            for connector in evse.connectors:
                live = self.connectors.get((evse.id, connector.id))
                if live is None:
                    continue
                drawn = topology.line_currents(evse, lines, live.current_a)
                setpoint = live.setpoint_a if live.setpoint_a is not None and live.transaction_id is not None else 0.0
                alloc = topology.line_currents(evse, lines, {"L1": setpoint, "L2": setpoint, "L3": setpoint})
                for node_id in self._chain.get(circuit.id, []):
                    for line, amps in drawn.items():
                        measured[(node_id, line)] = measured.get((node_id, line), 0.0) + amps
                    for line, amps in alloc.items():
                        allocated[(node_id, line)] = allocated.get((node_id, line), 0.0) + amps
        rows = []
        for node in self.nodes:
            limit = self.effective_limit(node.id, node.limit_a)
            for line in node.lines:
                rows.append(
                    NodeLine(
                        node.id, line, limit, round(measured.get((node.id, line), 0.0), 2),
                        round(allocated.get((node.id, line), 0.0), 2),
                    )
                )  # fmt: skip
        return rows

    def setpoint(self, charge_point_id: str, connector_id: int) -> float | None:
        control = self.runtime.control
        if control is not None:
            value = control.setpoints().get((charge_point_id, connector_id))
            if value is not None:
                return value
        live = self.connectors.get((charge_point_id, connector_id))
        return None if live is None else live.setpoint_a


def event_json(event: Event, seq: int) -> dict[str, Any]:
    """A JSON-ready dict of an event with its type name and a sequence number for the live stream."""
    body: dict[str, Any] = {"seq": seq, "type": type(event).__name__}
    for name, value in vars(event).items():
        body[name] = value.isoformat() if isinstance(value, datetime) else value
    return body


async def run_tasks(live: LiveState) -> list[asyncio.Task[None]]:
    tasks = [asyncio.create_task(live.run(), name="api-live"), asyncio.create_task(live.watch(), name="api-watch")]
    await live.ready()
    return tasks


async def stop_tasks(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
