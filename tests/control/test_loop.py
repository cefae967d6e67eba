"""The live loop against an in-memory ChargerCommands double (end-to-end OCPP tests live with the lead)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import numpy as np

from evsite.control.loop import ControlLoop
from evsite.control.tree import build_tree
from evsite.runtime.events import ChargerConnected, ConnectorStatus, EventBus, SiteSignal
from evsite.site import load_site
from evsite.site.model import Site

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class FakeChargers:
    """Implements the ChargerCommands protocol; can reject or hang per charger."""

    def __init__(self, reject: set[str] | None = None, hang: set[str] | None = None) -> None:
        self.limits: dict[tuple[str, int], float] = {}
        self.history: list[float] = []
        self.calls = 0
        self.reject = reject or set()
        self.hang = hang or set()
        self.alive_until = 0.0

    def controller_alive(self, valid_s: float) -> None:
        self.alive_until = valid_s

    async def set_connector_limit(self, charge_point_id: str, connector_id: int, limit_a: float) -> bool:
        self.calls += 1
        if charge_point_id in self.hang:
            await asyncio.sleep(3600)
        if charge_point_id in self.reject:
            return False
        self.limits[(charge_point_id, connector_id)] = limit_a
        self.history.append(limit_a)
        return True

    def connected_charge_points(self) -> list[str]:
        return sorted({cp for cp, _ in self.limits})


async def _until(check: Callable[[], bool], timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


def _fast(site: Site) -> Site:
    site.control.cycle_s = 0.05
    site.control.call_timeout_s = 0.2
    return site


async def _run_workplace(chargers: FakeChargers) -> tuple[ControlLoop, EventBus]:
    site = _fast(load_site(EXAMPLES / "workplace-20.yaml"))
    bus = EventBus()
    loop = ControlLoop(site, bus, chargers)
    await loop.start()
    for evse in site.evse:
        bus.publish(ConnectorStatus(evse.id, 1, "Charging"))
    return loop, bus


def _line_totals(site: Site, values: dict[str, float]) -> np.ndarray:
    tree = build_tree(site)
    x = np.array([values.get(p.charge_point_id, 48.0) for p in tree.ports])  # unknown → its 48 A maximum
    return tree.node_load(x)[tree.node_index["F-EV"]]


async def test_workplace_all_busy_within_ems_setpoint() -> None:
    chargers = FakeChargers()
    loop, _ = await _run_workplace(chargers)
    try:
        await _until(lambda: len(chargers.limits) == 20)
        values = {cp: v for (cp, _), v in chargers.limits.items()}
        assert _line_totals(loop.site, values).max() <= 160.0
        assert set(values.values()) == {11.4, 13.3}
        calls = chargers.calls
        await asyncio.sleep(0.3)  # several cycles with nothing new: nothing is re-sent
        assert chargers.calls == calls
        snap = loop.snapshot()
        f_ev = next(n for n in snap["nodes"] if n["id"] == "F-EV")
        assert f_ev["lines"]["L2"]["limit_a"] == 160.0 and f_ev["lines"]["L2"]["allocated_a"] == 159.6
        assert len(snap["connectors"]) == 20
    finally:
        await loop.stop()


async def test_rejecting_charger_counts_at_its_maximum() -> None:
    chargers = FakeChargers(reject={"WP-01"})
    loop, _ = await _run_workplace(chargers)
    try:
        await _until(lambda: len(chargers.limits) == 19 and loop.controller.unresponsive.any())
        await asyncio.sleep(0.2)
        values = {cp: v for (cp, _), v in chargers.limits.items()}
        assert "WP-01" not in values
        assert _line_totals(loop.site, values).max() <= 160.0  # WP-01 counted at 48 A on L1 and L2
        assert values["WP-04"] < 11.4
    finally:
        await loop.stop()


async def test_silent_charger_times_out_and_counts_at_its_maximum() -> None:
    chargers = FakeChargers(hang={"WP-02"})
    loop, _ = await _run_workplace(chargers)
    try:
        await _until(lambda: bool(loop.controller.unresponsive[1]))
        await asyncio.sleep(0.2)
        values = {cp: v for (cp, _), v in chargers.limits.items()}
        assert _line_totals(loop.site, values).max() <= 160.0
    finally:
        await loop.stop()


async def test_offline_charger_counts_at_its_maximum() -> None:
    chargers = FakeChargers()
    loop, bus = await _run_workplace(chargers)
    try:
        await _until(lambda: len(chargers.limits) == 20)
        bus.publish(ChargerConnected("WP-03", connected=False))
        await _until(lambda: chargers.limits[("WP-06", 1)] < 13.3)
        values = {cp: v for (cp, _), v in chargers.limits.items()}
        values.pop("WP-03")
        assert _line_totals(loop.site, values).max() <= 160.0
    finally:
        await loop.stop()


async def test_residential_shedding_over_the_bus_and_dispatch_timing() -> None:
    site = _fast(load_site(EXAMPLES / "residential.yaml"))
    bus, chargers = EventBus(), FakeChargers()
    loop = ControlLoop(site, bus, chargers)
    await loop.start()
    try:
        bus.publish(ConnectorStatus("HOME-EV1", 1, "Charging"))
        await _until(lambda: chargers.limits.get(("HOME-EV1", 1)) == 48.0)
        bus.publish(SiteSignal("building_load", "service", {"L1": 142.0, "L2": 142.0}, "M-SERVICE"))
        await _until(lambda: chargers.limits[("HOME-EV1", 1)] == 16.0)
        bus.publish(SiteSignal("building_load", "service", {"L1": 60.0, "L2": 60.0}, "M-SERVICE"))
        await _until(lambda: chargers.limits[("HOME-EV1", 1)] == 48.0)
        assert chargers.history == [48.0, 16.0, 48.0]  # reduced and restored, never paused
        await _until(lambda: all(r.t_dispatch_s is not None for r in loop.dispatch_log))
        assert all(r.t_dispatch_s is not None and r.t_dispatch_s < 1.0 for r in loop.dispatch_log)
    finally:
        await loop.stop()


async def test_restart_dispatches_every_connected_charger_without_a_status() -> None:
    """After a restart, chargers whose cars arrived during the outage may send no status (issue 22).

    Before: a port with no status counted at its maximum but was never sent a setpoint (its value, 0,
    equalled what the fresh controller believed it had), so such a site got no setpoint at all.
    """
    chargers = FakeChargers()
    site = _fast(load_site(EXAMPLES / "workplace-20.yaml"))
    bus = EventBus()
    loop = ControlLoop(site, bus, chargers)
    await loop.start()
    try:
        for evse in site.evse:
            bus.publish(ChargerConnected(evse.id, connected=True))
        await _until(lambda: len(chargers.limits) == 20)
        # Nothing known about their cars: a pause until they report is the safe value.
        assert set(chargers.limits.values()) == {0.0}
    finally:
        await loop.stop()
