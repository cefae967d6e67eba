"""Operator priorities and session requests reach the load manager (`ControlLoopPlanner`)."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

import pytest

from evsite.api.adapters import ControlLoopPlanner, priority_weight
from evsite.control.loop import ControlLoop
from evsite.runtime.events import ConnectorStatus, EventBus
from evsite.site.load import load_site
from tests.conftest import EXAMPLES


class NoChargers:
    """The loop is driven by hand here (no cycle task runs), so nothing is ever sent."""

    async def set_connector_limit(self, charge_point_id: str, connector_id: int, limit_a: float) -> bool:
        raise AssertionError("no setpoint is sent in this test")

    def connected_charge_points(self) -> list[str]:
        return []

    def controller_alive(self, valid_s: float) -> None:
        """Nothing to keep lifted here."""


def test_a_higher_priority_class_gets_a_larger_share_when_the_site_is_congested() -> None:
    site = load_site(EXAMPLES / "workplace-20.yaml")
    loop = ControlLoop(site, EventBus(), NoChargers())
    planner = ControlLoopPlanner(loop)
    now = time.time()
    for evse in site.evse:
        loop.controller.observe(ConnectorStatus(evse.id, 1, "Charging"), now)
    planner.set_priority("WP-01", 1, 3)  # weight 4 against everyone else's 1
    setpoints, _ = loop.controller.decide(loop.controller.tree.limits, now)
    by_id = {port.charge_point_id: setpoints[p] for p, port in enumerate(loop.controller.tree.ports)}
    others = [v for k, v in by_id.items() if k != "WP-01"]
    # 20 busy ports under a 160 A per-line EMS cap: everyone is limited, so the weight shows directly.
    assert max(others) < 48 and by_id["WP-01"] > 2 * min(others)


def test_departure_and_energy_requests_are_recorded_for_the_optimiser_and_unknown_ports_refused() -> None:
    site = load_site(EXAMPLES / "workplace-20.yaml")
    loop = ControlLoop(site, EventBus(), NoChargers())
    planner = ControlLoopPlanner(loop)
    departure = datetime.now(UTC) + timedelta(hours=3)
    planner.set_request("WP-02", 1, departure, 30_000.0)
    p = loop.controller.port("WP-02", 1)
    assert p is not None
    assert loop.controller.needs.departure_s[p] == pytest.approx(departure.timestamp())
    assert loop.controller.needs.requested_wh[p] == 30_000.0
    planner.set_request("WP-02", 1, None, None)
    assert math.isnan(loop.controller.needs.departure_s[p]) and math.isnan(loop.controller.needs.requested_wh[p])
    with pytest.raises(KeyError):
        planner.set_priority("NOPE", 1, 2)
    assert priority_weight(1) == 1.0 and priority_weight(0) == 0.5 and priority_weight(2) == 2.0
