"""A fleet of simulated charge points with EVs coming and going, in one asyncio loop.

Used by `evsite sim`, by tests and by the load-management simulator in-process:

    fleet = Fleet("ws://127.0.0.1:9000/ocpp", site=site, speed=60.0)
    await fleet.start()
    ...
    fleet.total_current_a()   # {"L1": 151.2, "L2": 148.0, "L3": 150.5}
    await fleet.stop()

With a site model the charge points are its EVSE (ids, connectors, phases, the lines their circuits
use, nameplate current); without one, `count` generic 32 A single-phase 208 V chargers rotated over
L1-L2, L2-L3, L3-L1. Arrivals follow a simple stochastic schedule (exponential gaps and dwell
times, in simulated seconds) unless `arrivals=False`, in which case the caller plugs EVs in.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evsite.sim.chargepoint import ChargePointSpec, Quirks, SimChargePoint
from evsite.sim.ev import Ev, SimClock

if TYPE_CHECKING:
    from evsite.site.model import Site

ROTATION = (("L1", "L2"), ("L2", "L3"), ("L3", "L1"))


@dataclass
class Arrivals:
    """Simulated-time parameters of EV arrivals at each connector."""

    mean_gap_s: float = 3_600.0  # idle time between one EV leaving and the next arriving
    mean_dwell_s: float = 4 * 3_600.0
    initial_occupancy: float = 0.5  # share of connectors with an EV at the start


def specs_from_site(site: Site, password: str | None = None) -> list[ChargePointSpec]:
    """One ChargePointSpec per AC EVSE of the site, wired as its circuit is."""
    system = site.service.system
    specs = []
    for evse in site.evse:
        lines = tuple(str(line.value) for line in site.circuit(evse.circuit).lines)
        if evse.phases == 3:
            voltage = system.line_to_neutral_v
        else:
            voltage = system.line_to_line_v if len(lines) >= 2 else system.line_to_neutral_v
        amps = evse.max_current_a
        if evse.adjustable_setting_a is not None:
            amps = min(amps, evse.adjustable_setting_a)
        specs.append(
            ChargePointSpec(
                id=evse.id,
                connectors=len(evse.connectors),
                max_current_a=amps,
                phases=evse.phases,
                phase_voltage_v=voltage,
                lines=lines,
                vendor=evse.make or "evsite",
                model=evse.model or "SimCharger",
                password=password,
            )
        )
    return specs


def generic_specs(count: int, password: str | None = None) -> list[ChargePointSpec]:
    return [
        ChargePointSpec(
            id=f"SIM-{i + 1:03d}",
            max_current_a=32.0,
            phases=1,
            phase_voltage_v=208.0,
            lines=ROTATION[i % 3],
            password=password,
        )
        for i in range(count)
    ]


class Fleet:
    """N simulated charge points sharing one clock and one event loop."""

    def __init__(
        self,
        url: str,
        site: Site | None = None,
        count: int = 20,
        speed: float = 60.0,
        *,
        password: str | None = None,
        arrivals: Arrivals | bool = True,
        config: dict[str, str] | None = None,
        quirks: Quirks | None = None,
        seed: int | None = None,
        backoff_min_s: float = 1.0,
        backoff_max_s: float = 60.0,
        response_timeout_s: float = 30.0,
        record_frames: bool = False,
    ) -> None:
        self.clock = SimClock(speed)
        self.rng = random.Random(seed)
        specs = specs_from_site(site, password) if site is not None else generic_specs(count, password)
        if quirks is not None:
            for spec in specs:
                spec.quirks = quirks
        # Big fleets step their physics less often so one process can carry thousands of chargers.
        tick_s = max(min(1.0, max(0.05, 1.0 / speed)), len(specs) / 2_000)
        self.charge_points = [
            SimChargePoint(
                spec,
                url,
                self.clock,
                config=config,
                backoff_min_s=backoff_min_s,
                backoff_max_s=backoff_max_s,
                response_timeout_s=response_timeout_s,
                record_frames=record_frames,
                rng=random.Random(self.rng.random()),
                tick_s=tick_s,
            )
            for spec in specs
        ]
        self.arrivals = Arrivals() if arrivals is True else (arrivals or None)
        self._tasks: list[asyncio.Task[None]] = []
        self._tags = 0

    def __getitem__(self, charge_point_id: str) -> SimChargePoint:
        return next(cp for cp in self.charge_points if cp.id == charge_point_id)

    async def start(self) -> None:
        for cp in self.charge_points:
            await cp.start()
        if self.arrivals is not None:
            for cp in self.charge_points:
                for connector_id in cp.connectors:
                    self._tasks.append(asyncio.create_task(self._drive(cp, connector_id, self.arrivals)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await asyncio.gather(*(cp.stop() for cp in self.charge_points))

    async def wait_online(self, timeout: float = 30.0) -> None:
        await asyncio.gather(*(cp.wait_online(timeout) for cp in self.charge_points))

    def new_ev(self) -> Ev:
        self._tags += 1
        return Ev.random(self.rng, f"TAG-{self._tags:05d}")

    def total_current_a(self) -> dict[str, float]:
        """Amperes per site line drawn by the whole fleet now."""
        total: dict[str, float] = {}
        for cp in self.charge_points:
            for line, amps in cp.line_currents().items():
                total[line] = total.get(line, 0.0) + amps
        return total

    async def _drive(self, cp: SimChargePoint, connector_id: int, arrivals: Arrivals) -> None:
        """Arrive, dwell, leave, wait, repeat (simulated seconds)."""
        await cp.wait_online(timeout=3_600)
        if self.rng.random() >= arrivals.initial_occupancy:
            await self.clock.sleep(self.rng.expovariate(1 / arrivals.mean_gap_s))
        while True:
            if cp.connectors[connector_id].ev is None and cp.connectors[connector_id].operative:
                cp.plug_in(connector_id, self.new_ev())
                await self.clock.sleep(self.rng.expovariate(1 / arrivals.mean_dwell_s))
                cp.unplug(connector_id)
            await self.clock.sleep(self.rng.expovariate(1 / arrivals.mean_gap_s))
