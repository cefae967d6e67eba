"""What the API reads and drives: a small bundle of optional run-time parts.

The API is written against these narrow interfaces rather than the concrete OCPP server, control
loop or VEN, so it serves whatever a process has: a bare site model (design-time use), a replay
database, or the full live stack of `evsite serve` / `evsite demo`. A missing part makes its
endpoints answer 404 "not configured" instead of failing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, runtime_checkable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from evsite.runtime.events import ChargerCommands, EventBus
from evsite.site.model import Site

ResetKind = Literal["Soft", "Hard"]
AvailabilityKind = Literal["Operative", "Inoperative"]
TriggerKind = Literal[
    "BootNotification", "DiagnosticsStatusNotification", "FirmwareStatusNotification", "Heartbeat",
    "MeterValues", "StatusNotification",
]  # fmt: skip


@runtime_checkable
class ChargerActions(Protocol):
    """Operator actions on one charger (implemented by the OCPP server). Each returns the charger's status word."""

    async def remote_start(self, charge_point_id: str, connector_id: int, id_tag: str) -> str: ...
    async def remote_stop(self, charge_point_id: str, transaction_id: int) -> str: ...
    async def reset(self, charge_point_id: str, kind: ResetKind) -> str: ...
    async def unlock(self, charge_point_id: str, connector_id: int) -> str: ...
    async def change_availability(self, charge_point_id: str, connector_id: int, kind: AvailabilityKind) -> str: ...
    async def trigger_message(self, charge_point_id: str, message: TriggerKind, connector_id: int | None) -> str: ...
    async def get_configuration(self, charge_point_id: str) -> Mapping[str, str | None]: ...
    async def change_configuration(self, charge_point_id: str, key: str, value: str) -> str: ...


@dataclass(frozen=True)
class NodeLine:
    """One node's state on one line, as the load manager sees it this cycle."""

    node: str
    line: str
    limit_a: float
    measured_a: float
    allocated_a: float


@runtime_checkable
class ControlState(Protocol):
    """A read-only view of the load manager (evsite.control.ControlLoop adapts to this)."""

    @property
    def policy(self) -> str: ...
    def node_lines(self) -> list[NodeLine]: ...
    def setpoints(self) -> Mapping[tuple[str, int], float]:
        """Current allocation per (charge point, connector) in amperes."""
        ...

    def cycle_time_s(self) -> float | None:
        """Duration of the last allocation cycle."""
        ...


@runtime_checkable
class SessionPlanner(Protocol):
    """Optional control inputs per connector: priority class and departure/energy requests."""

    def set_priority(self, charge_point_id: str, connector_id: int, priority: int) -> None: ...
    def set_request(
        self, charge_point_id: str, connector_id: int, departure: datetime | None, energy_wh: float | None
    ) -> None: ...


@dataclass(frozen=True)
class DrEvent:
    """A demand-response event as the VEN knows it."""

    event_id: str
    start: datetime
    end: datetime | None
    status: str  # far | near | active | completed | cancelled
    opt: Literal["optIn", "optOut"]
    signal: str  # SIMPLE level, kW, or fraction as text
    limit_a: float | None = None


@runtime_checkable
class DemandResponse(Protocol):
    """The OpenADR VEN as the API needs it."""

    def events(self) -> list[DrEvent]: ...
    async def set_opt(self, event_id: str, opt: Literal["optIn", "optOut"]) -> bool:
        """Send the opt choice to the VTN; False when the event is unknown."""
        ...


SessionFactory = async_sessionmaker[AsyncSession]


@dataclass
class SiteRuntime:
    """Everything the API may use. Only `site` is required."""

    site: Site
    bus: EventBus = field(default_factory=EventBus)
    commands: ChargerCommands | None = None
    actions: ChargerActions | None = None
    db: SessionFactory | None = None
    control: ControlState | None = None
    planner: SessionPlanner | None = None
    demand_response: DemandResponse | None = None
    # Optional extras looked up lazily: design-check report and billing statements (callables so the API
    # does not import those modules when they are not wanted).
    design_report: Callable[[Site, Literal["json", "html"]], Any] | None = None
    oneline_svg: Callable[[Site], str] | None = None
    statements: Callable[[Site, str], Any] | None = None
    cluster_status: Callable[[], Awaitable[dict[str, Any]]] | None = None
    """#16: the cluster as its buckets show it (nodes, site leaders and epochs, chargers per node)."""
    cluster_metrics: Callable[[], dict[str, float]] | None = None
    """#16: this node's part (leads, epoch seen, chargers held, stale setpoints refused) for /metrics."""
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    parts: dict[str, bool] = field(default_factory=dict)
    """Which parts of the stack run (shown on the dashboard and in the demo summary)."""
