"""Events that cross module boundaries at run time, and the in-process bus that carries them.

The OCPP server, the Modbus/OpenADR/BACnet/MQTT adapters and the API never call the load
manager directly: they publish what they observed (a connector plugged in, a meter sample,
a demand-response limit) and subscribe to what they need. This keeps each adapter ignorant of
the others and lets tests feed the controller without any protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

log = logging.getLogger(__name__)

PhaseCurrents = dict[str, float]
"""Amperes by line name ("L1", "L2", "L3")."""


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ChargerConnected:
    charge_point_id: str
    connected: bool  # False when the WebSocket closed or liveness was lost
    at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class ConnectorStatus:
    """A connector's OCPP status (Available, Preparing, Charging, SuspendedEV, ...)."""

    charge_point_id: str
    connector_id: int
    status: str
    error_code: str = "NoError"
    at: datetime = field(default_factory=utcnow)

    @property
    def ev_present(self) -> bool:
        return self.status in {"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing", "Occupied"}


@dataclass(frozen=True)
class TransactionEvent:
    charge_point_id: str
    connector_id: int
    transaction_id: int
    kind: Literal["started", "stopped"]
    id_tag: str | None
    meter_wh: float
    at: datetime = field(default_factory=utcnow)
    reason: str | None = None


@dataclass(frozen=True)
class MeterSample:
    """One sampled reading from a charger connector (OCPP MeterValues) or a Modbus meter."""

    source: str  # charge point id, or meter id for Modbus meters
    connector_id: int  # 0 for a whole-charger or non-OCPP meter
    at: datetime
    energy_wh: float | None = None
    power_w: float | None = None
    current_a: PhaseCurrents = field(default_factory=dict)
    voltage_v: PhaseCurrents = field(default_factory=dict)
    transaction_id: int | None = None
    offered_a: float | None = None
    implausible: bool = False
    """A current or power in this reading failed the plausibility gate (`evsite.ocpp.plausibility`): the
    port's draw is unknown until a plausible reading arrives, and counts at its circuit's limit."""


@dataclass(frozen=True)
class SiteSignal:
    """A limit or measurement from outside the chargers that the load manager must respect.

    kind:
      - "building_load": non-EV current on `node` per line (from a site/panel meter)
      - "pv_surplus": available surplus current per line
      - "dr_limit": demand-response cap on `node` (amperes per line) until `until`
      - "manual_limit": an operator or BMS cap on `node`
    `stale=True` means the source stopped answering: fall back to the conservative value.
    """

    kind: Literal["building_load", "pv_surplus", "dr_limit", "manual_limit"]
    node: str
    current_a: PhaseCurrents
    source: str
    at: datetime = field(default_factory=utcnow)
    until: datetime | None = None
    stale: bool = False


@dataclass(frozen=True)
class SetpointResult:
    """What happened to one setpoint sent to a charger."""

    charge_point_id: str
    connector_id: int
    limit_a: float
    accepted: bool
    detail: str = ""
    at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class EvChargingNeeds:
    """What a car said it needs (ISO 15118 through OCPP 2.0.1 NotifyEVChargingNeeds), for its session.

    The load manager takes these as the session's deadline and energy unless an operator entered
    other values for the session: an operator's entry wins.
    """

    charge_point_id: str
    connector_id: int
    departure: datetime | None
    energy_wh: float | None
    max_current_a: float | None = None
    at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class FailsafeState:
    """Whether a charger took a fail-safe profile. One that refused every form charges at its nameplate
    when evsite is gone (OCPP 1.6 §3.13.6), so the others' fail-safe shares were recomputed around it and
    `lowered` names the connected chargers whose fail-safe was reinstalled lower."""

    charge_point_id: str
    refused: bool
    nameplate_a: float
    lowered: tuple[str, ...] = ()
    at: datetime = field(default_factory=utcnow)


Event = (
    ChargerConnected
    | ConnectorStatus
    | TransactionEvent
    | MeterSample
    | SiteSignal
    | SetpointResult
    | EvChargingNeeds
    | FailsafeState
)


class ChargerCommands(Protocol):
    """What the load manager and the API may ask of the chargers (implemented by the OCPP server)."""

    async def set_connector_limit(self, charge_point_id: str, connector_id: int, limit_a: float) -> bool:
        """Install a current limit (A per phase; 0 pauses). True once the charger accepted it."""
        ...

    def connected_charge_points(self) -> list[str]: ...

    async def change_availability(self, charge_point_id: str, connector_id: int, kind: str) -> str:
        """ChangeAvailability ("Operative" / "Inoperative"): the charger's answer (Accepted, Scheduled, Rejected)."""
        ...

    async def remote_stop(self, charge_point_id: str, transaction_id: int) -> str:
        """RemoteStopTransaction: the charger's answer (Accepted, Rejected)."""
        ...

    def controller_alive(self, valid_s: float) -> None:
        """The load manager just completed a control cycle and vouches for the site for `valid_s` seconds.

        Chargers run above their fail-safe caps only while this keeps coming: a steady site sends no
        setpoints for long stretches, so silence on the command path cannot mean "controller gone".
        """
        ...


class EventBus:
    """In-process publish/subscribe. Slow subscribers lose the oldest events, never block publishers."""

    def __init__(self, queue_size: int = 10_000) -> None:
        self._queues: set[asyncio.Queue[Event]] = set()
        self._queue_size = queue_size

    def publish(self, event: Event) -> None:
        for queue in self._queues:
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                log.warning("event subscriber is slow; dropped its oldest event")
            queue.put_nowait(event)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(self._queue_size)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)
