"""Residential scenario end to end: simulated inverter + meter over Modbus → pv_surplus → the EV limit.

A cloud passes over the simulated roof (cloudy profile at 120× speed: 2 s of shade, then sun); the
load manager's PV-only mode must keep the charger off in the shade, switch it on only after the
surplus has covered 6 A for its enable delay, and then follow the surplus.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from evsite.control.signals import SiteLimits
from evsite.control.tree import build_tree
from evsite.grid.modbus import DevicePoller, ModbusDevice, bindings
from evsite.grid.sim_modbus import ModbusSim, SimState
from evsite.runtime.events import EventBus, SiteSignal
from evsite.site import load_site
from evsite.site.model import PvCharging
from tests.conftest import free_port

ENABLE_S = 1.0


async def test_charger_follows_pv_surplus_through_a_cloud(examples_dir: Path) -> None:
    site = load_site(examples_dir / "residential.yaml")
    tree = build_tree(site)
    limits = SiteLimits(site, tree, pv=PvCharging(mode="pv-only", node="service", enable_s=ENABLE_S, disable_s=0.5))
    meter_binding, endpoint = next((b, ep) for b, ep in bindings(site) if b.device_id == "M-SERVICE")
    port = free_port()
    # noon, 7.6 kW of PV, 1.5 kW of house: under the cloud 0.3 × 7.3 kW − 1.5 kW ≈ 0.7 kW (3 A) is exported,
    # in sun ≈ 5.8 kW (24 A)
    state = SimState(profile="cloudy", speed=120, start_hour=12.0, load_w=lambda h: 1500.0)
    bus = EventBus()
    trace: list[tuple[float, float, float]] = []  # (seconds, surplus L1, EV limit L1 on the service)
    async with ModbusSim(port=port, state=state), bus.subscribe() as queue:
        poller = DevicePoller(meter_binding, ModbusDevice(endpoint.model_copy(update={"port": port})), bus)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 4.5:
            await poller.poll_once()
            while not queue.empty():
                event = queue.get_nowait()
                if isinstance(event, SiteSignal):
                    limits.update(event)
            surplus = limits.pv_surplus.current[0] if limits.pv_surplus else 0.0
            limit = limits.limits(datetime.now(UTC))[tree.node_index["service"]][0]
            trace.append((time.monotonic() - t0, surplus, limit))
            await asyncio.sleep(0.1)
        poller.device.close()
    shade = [s for t, s, _ in trace if 0.4 < t < 1.7]  # after the leading edge (30 s simulated = 0.25 s)
    assert shade and all(s < 6 for s in shade)
    sun_from = next(t for t, s, _ in trace if t > 1.0 and s >= 6)
    assert 1.7 < sun_from < 2.6  # the cloud's trailing edge at 240 s simulated = 2 s
    # the sun at the very start never covered 6 A for the enable delay: off throughout the shade
    assert all(limit == 0 for t, _, limit in trace if t < sun_from)
    on_at = next(t for t, _, limit in trace if limit > 0)
    assert on_at >= sun_from + ENABLE_S - 0.15  # not before the enable delay
    # Follows the surplus from below, in 0.5 A steps that rise only past a 1 A band; ≥ 6 A while on.
    for _, surplus, limit in trace:
        if limit > 0:
            assert max(surplus, 6.0) - 1.5 - 1e-6 <= limit <= max(surplus, 6.0) + 1e-6
    assert trace[-1][1] - 1.5 <= trace[-1][2] <= trace[-1][1] and trace[-1][2] > 20
