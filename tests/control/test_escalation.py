"""Escalation carried out (issue 22): a charger that ignores its limits is suspended, then its transaction stopped.

The controller decides (pure, tested on its own clock); the live loop sends each command once through
`ChargerCommands` and the answer shows in the charger's alert.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from evsite.control.controller import Controller, ControllerSettings
from evsite.control.loop import ControlLoop
from evsite.control.scenarios import example_site
from evsite.control.tree import build_tree
from evsite.runtime.events import ConnectorStatus, EventBus, MeterSample, TransactionEvent

from .test_loop import FakeChargers, _fast, _until


class EscalatingChargers(FakeChargers):
    """The in-memory chargers, also recording ChangeAvailability and RemoteStopTransaction."""

    def __init__(self) -> None:
        super().__init__()
        self.availability: list[tuple[str, int, str]] = []
        self.stops: list[tuple[str, int]] = []

    async def change_availability(self, charge_point_id: str, connector_id: int, kind: str) -> str:
        self.availability.append((charge_point_id, connector_id, kind))
        return "Scheduled"  # OCPP 1.6 §5.2: a transaction is running

    async def remote_stop(self, charge_point_id: str, transaction_id: int) -> str:
        self.stops.append((charge_point_id, transaction_id))
        return "Accepted"


async def test_loop_suspends_then_stops_an_ignoring_charger_once() -> None:
    site = _fast(example_site("workplace-20"))
    settings = ControllerSettings(
        follow_margin_a=site.control.safety_margin_a,
        settle_s=0.2,
        pilot_update_s=0.05,
        escalation=("lower", "suspend", "stop"),
        escalate_every_s=0.3,
    )
    bus, chargers = EventBus(), EscalatingChargers()
    loop = ControlLoop(site, bus, chargers, settings=settings)
    await loop.start()
    try:
        for evse in site.evse:
            bus.publish(ConnectorStatus(evse.id, 1, "Charging"))
        bus.publish(TransactionEvent("WP-02", 1, 7, "started", "TAG", 0.0))
        await _until(lambda: ("WP-02", 1) in chargers.limits)
        deadline = time.monotonic() + 3.0
        while not chargers.stops and time.monotonic() < deadline:  # WP-02 keeps drawing 48 A, whatever it is told
            bus.publish(MeterSample("WP-02", 1, datetime.now(UTC), current_a={"L1": 48.0}))
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # more cycles at "stop": nothing is sent twice
        assert chargers.availability == [("WP-02", 1, "Inoperative")]
        assert chargers.stops == [("WP-02", 7)]
        messages = {a["kind"]: a["message"] for a in loop.alerts()}
        assert "ChangeAvailability Inoperative: Scheduled" in messages["charger-noncompliant"]
        assert "RemoteStopTransaction: Accepted" in messages["charger-noncompliant"]
        assert "WP-02" in messages["charger-suspended"]
    finally:
        await loop.stop()


def test_suspend_after_session_waits_for_the_session_to_end() -> None:
    site = example_site("workplace-20")
    tree = build_tree(site)
    ctrl = Controller(site, tree, settings=ControllerSettings(escalation=("suspend",), suspend_when="after-session"))
    p = tree.port_index[("WP-02", 1)]
    ctrl.observe(ConnectorStatus("WP-02", 1, "Charging"), 0.0)
    ctrl.noncompliant[p], ctrl.noncompliant_since[p] = True, 0.0  # judged non-compliant (see test_disobedience)
    assert ctrl.escalation_actions(1.0) == []
    assert "after the session" in ctrl.alerts(1.0)[0]["message"]
    ctrl.observe(TransactionEvent("WP-02", 1, 7, "stopped", "TAG", 0.0), 2.0)
    ctrl.observe(ConnectorStatus("WP-02", 1, "Finishing"), 2.0)
    actions = ctrl.escalation_actions(3.0)
    assert [(a.charge_point_id, a.connector_id, a.action) for a in actions] == [("WP-02", 1, "suspend")]
    assert ctrl.escalation_actions(4.0) == []  # once
    ctrl.record_escalation(actions[0], "Accepted")
    ctrl.observe(ConnectorStatus("WP-02", 1, "Unavailable"), 5.0)
    assert [a["kind"] for a in ctrl.alerts(5.0)] == ["charger-suspended"]
    ctrl.observe(ConnectorStatus("WP-02", 1, "Available"), 6.0)  # an operator set it Operative again
    assert ctrl.alerts(6.0) == []
