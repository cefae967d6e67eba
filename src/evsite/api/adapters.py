"""Adapters from the concrete run-time parts (OCPP server, control loop) to the API's small interfaces."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from evsite.api.runtime import AvailabilityKind, NodeLine, ResetKind, TriggerKind

if TYPE_CHECKING:
    from evsite.control.loop import ControlLoop
    from evsite.ocpp.server import CentralSystem


class OcppActions:
    """Operator actions through `evsite.ocpp.server.CentralSystem` sessions."""

    def __init__(self, central_system: CentralSystem) -> None:
        self.cs = central_system

    async def remote_start(self, charge_point_id: str, connector_id: int, id_tag: str) -> str:
        return await self.cs.session(charge_point_id).remote_start(id_tag, connector_id)

    async def remote_stop(self, charge_point_id: str, transaction_id: int) -> str:
        return await self.cs.session(charge_point_id).remote_stop(transaction_id)

    async def reset(self, charge_point_id: str, kind: ResetKind) -> str:
        return await self.cs.session(charge_point_id).reset(kind)

    async def unlock(self, charge_point_id: str, connector_id: int) -> str:
        return await self.cs.session(charge_point_id).unlock_connector(connector_id)

    async def change_availability(self, charge_point_id: str, connector_id: int, kind: AvailabilityKind) -> str:
        return await self.cs.session(charge_point_id).change_availability(connector_id, kind)

    async def trigger_message(self, charge_point_id: str, message: TriggerKind, connector_id: int | None) -> str:
        return await self.cs.session(charge_point_id).trigger_message(message, connector_id)

    async def get_configuration(self, charge_point_id: str) -> Mapping[str, str | None]:
        return await self.cs.session(charge_point_id).get_configuration()

    async def change_configuration(self, charge_point_id: str, key: str, value: str) -> str:
        return await self.cs.session(charge_point_id).change_configuration(key, value)


class ControlLoopState:
    """The API's `ControlState` over `evsite.control.loop.ControlLoop.snapshot()`."""

    def __init__(self, loop: ControlLoop) -> None:
        self.loop = loop

    @property
    def policy(self) -> str:
        return str(self.loop.site.control.policy)

    def _snapshot(self) -> dict[str, Any]:
        return self.loop.snapshot()

    def node_lines(self) -> list[NodeLine]:
        rows = []
        for node in self._snapshot()["nodes"]:
            if node["kind"] in ("evse", "connector"):
                continue
            for line, values in node["lines"].items():
                rows.append(NodeLine(node["id"], line, values["limit_a"], values["measured_a"], values["allocated_a"]))
        return rows

    def setpoints(self) -> Mapping[tuple[str, int], float]:
        return {(c["charge_point_id"], c["connector_id"]): c["setpoint_a"] for c in self._snapshot()["connectors"]}

    def cycle_time_s(self) -> float | None:
        times = self.loop.cycle_times_s
        return times[-1] if times else None

    def alerts(self) -> list[dict[str, str]]:
        """Alerts the load manager raises itself (key, kind, severity, message)."""
        return self.loop.alerts()


def priority_weight(priority: int) -> float:
    """Priority class → sharing weight: class 1 (the default) is 1, each class above doubles it, class 0 halves it."""
    return float(2.0 ** (priority - 1))


class ControlLoopPlanner:
    """The API's `SessionPlanner` over the load manager: priority classes and departure/energy requests.

    A request applies to the session now on the connector; the controller forgets it when the EV leaves.
    """

    def __init__(self, loop: ControlLoop) -> None:
        self.loop = loop

    def _port(self, charge_point_id: str, connector_id: int) -> int:
        p = self.loop.controller.port(charge_point_id, connector_id)
        if p is None:
            raise KeyError(f"{charge_point_id}/{connector_id} is not a port of this site")
        return p

    def set_priority(self, charge_point_id: str, connector_id: int, priority: int) -> None:
        self.loop.controller.weight[self._port(charge_point_id, connector_id)] = priority_weight(priority)

    def set_request(
        self, charge_point_id: str, connector_id: int, departure: datetime | None, energy_wh: float | None
    ) -> None:
        p = self._port(charge_point_id, connector_id)
        needs = self.loop.controller.needs
        needs.departure_s[p] = departure.timestamp() if departure is not None else math.nan
        needs.requested_wh[p] = energy_wh if energy_wh is not None else math.nan
