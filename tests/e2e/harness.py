"""A whole site in one process: evsite's central system and load manager, simulated chargers and EVs.

Everything is the real thing: `CentralSystem` on an ephemeral port with SQLite, `ControlLoop` on its
event bus, and `evsite.sim` charge points talking OCPP 1.6J over WebSockets on 127.0.0.1. What
the EVs physically draw is read from the simulator (the truth a clamp meter would show), not from
what evsite believes, and sampled every few milliseconds by `Recorder`.

Timing: the EVs run on the simulator's clock (`speed` × real time), so a 5 s J1772 follow delay
takes a fraction of a real second. The controller's own time constants model that EV behaviour
(settle time, pilot update period, minimum pause), so they are scaled by the same factor; OCPP
timers, the control cycle and the lift lease are real seconds, shortened through the site's
`control` section and the server settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from evsite.control.controller import ControllerSettings
from evsite.control.loop import ControlLoop
from evsite.ocpp.server import CentralSystem, ServerSettings
from evsite.runtime.events import EventBus
from evsite.sim import Ev, Fleet
from evsite.sim.chargepoint import Quirks
from evsite.site import Site, load_site
from evsite.store.ocpp import OcppStore
from tests.conftest import EXAMPLES

SPEED = 20.0
"""Simulated seconds per real second on the EV side."""


def fast_site(name: str, cycle_s: float = 0.5) -> Site:
    """An example site with its control loop and meter sampling sped up for tests."""
    site = load_site(EXAMPLES / name)
    site.control.cycle_s = cycle_s
    site.control.meter_value_interval_s = 1  # the server configures this on every charger at boot
    site.control.call_timeout_s = 5.0
    return site


def controller_settings(site: Site, speed: float) -> ControllerSettings:
    """Default controller settings with the EV-behaviour time constants on the simulator's clock."""
    base = ControllerSettings(follow_margin_a=site.control.safety_margin_a)
    return replace(
        base,
        settle_s=base.settle_s / speed,
        pilot_update_s=base.pilot_update_s / speed,
        min_pause_s=base.min_pause_s / speed,
        retry_s=base.retry_s / speed,
    )


async def wait_for(check: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """Poll `check` until true; fail with `what` after `timeout` real seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout} s")
        await asyncio.sleep(0.05)


async def wait_for_async(check: Callable[[], Awaitable[bool]], timeout: float = 15.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout} s")
        await asyncio.sleep(0.05)


@dataclass
class Excursion:
    line: str
    start: float  # real seconds (time.monotonic)
    end: float
    peak_a: float

    @property
    def duration_s(self) -> float:
        return self.end - self.start


@dataclass
class Recorder:
    """Samples the physical current: the fleet's total per site line and each charger's draw.

    `other_a()` adds non-EV load on the same lines (a house), so the total compares with a limit on
    a node that carries both. Excursions above `limit_a` are kept with their duration.
    """

    fleet: Fleet
    limit_a: float
    other_a: Callable[[], float] = lambda: 0.0
    period_s: float = 0.01
    samples: int = 0
    peak_line_a: dict[str, float] = field(default_factory=dict)
    peak_port_a: dict[str, float] = field(default_factory=dict)
    pilots: dict[str, list[float]] = field(default_factory=dict)  # each charger's offered current, as it changed
    excursions: list[Excursion] = field(default_factory=list)
    _open: dict[str, Excursion] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.excursions.extend(self._open.values())
        self._open.clear()

    def sample(self) -> None:
        now = time.monotonic()
        other = self.other_a()
        for line, amps in self.fleet.total_current_a().items():
            total = amps + other
            self.peak_line_a[line] = max(self.peak_line_a.get(line, 0.0), total)
            current = self._open.get(line)
            if total > self.limit_a + 1e-6:
                if current is None:
                    self._open[line] = Excursion(line, now, now, total)
                else:
                    current.end, current.peak_a = now, max(current.peak_a, total)
            elif current is not None:
                current.end = now
                self.excursions.append(self._open.pop(line))
        for cp in self.fleet.charge_points:
            draw = max(cp.line_currents().values(), default=0.0)
            self.peak_port_a[cp.id] = max(self.peak_port_a.get(cp.id, 0.0), draw)
            history = self.pilots.setdefault(cp.id, [])
            offered = max((c.offered_a for c in cp.connectors.values()), default=0.0)
            if not history or history[-1] != offered:
                history.append(offered)
        self.samples += 1

    def reset_peaks(self) -> None:
        self.peak_line_a.clear()
        self.peak_port_a.clear()

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.period_s)


@dataclass
class LiveSite:
    site: Site
    store: OcppStore
    cs: CentralSystem
    loop: ControlLoop
    fleet: Fleet
    port: int

    def ev(self, obc_max_a: float = 48.0, soc: float = 0.3) -> Ev:
        """A car that takes whatever it is offered (up to `obc_max_a`), far from its taper."""
        ev = self.fleet.new_ev()
        ev.obc_max_a, ev.soc, ev.capacity_kwh = obc_max_a, soc, 100.0
        return ev

    async def plug_in(self, cp_id: str, ev: Ev) -> None:
        await self.cs.set_id_tag(ev.id_tag)
        self.fleet[cp_id].plug_in(1, ev)

    def offered_a(self, cp_id: str) -> float:
        return self.fleet[cp_id].connectors[1].offered_a

    def drawn_a(self, cp_id: str) -> float:
        return max(self.fleet[cp_id].line_currents().values(), default=0.0)

    def transaction_id(self, cp_id: str) -> int | None:
        tx = self.fleet[cp_id].connectors[1].tx
        return tx.transaction_id if tx is not None else None


@contextlib.asynccontextmanager
async def live_site(
    tmp_path: Path,
    site: Site,
    *,
    lift_lease_s: float = 3.0,
    speed: float = SPEED,
    seed: int = 11,
    charger_config: dict[str, str] | None = None,
    quirks: dict[str, Quirks] | None = None,
) -> AsyncIterator[LiveSite]:
    """Start store, central system, control loop and a fleet for every EVSE of `site`; stop them after."""
    store = await OcppStore.open(f"sqlite+aiosqlite:///{tmp_path / 'site.db'}", synchronous="NORMAL")
    bus = EventBus()
    settings = ServerSettings(
        port=0, call_timeout_s=5.0, reconnect_setup_delay_s=0.2, lift_lease_s=lift_lease_s, open_authorization=False
    )
    cs = CentralSystem(store, site, bus=bus, settings=settings)
    await cs.start()
    loop = ControlLoop(site, bus, cs, settings=controller_settings(site, speed))
    await loop.start()
    fleet = Fleet(
        f"ws://127.0.0.1:{cs.port}/ocpp",
        site=site,
        speed=speed,
        arrivals=False,
        seed=seed,
        config=charger_config,
        backoff_min_s=0.2,
        backoff_max_s=1.0,
    )
    for cp in fleet.charge_points:  # misbehaviour from the first frame (a refused fail-safe included)
        if quirks and cp.id in quirks:
            cp.spec.quirks = quirks[cp.id]
    live = LiveSite(site, store, cs, loop, fleet, cs.port)
    try:
        await fleet.start()
        await fleet.wait_online(15)
        await wait_for(
            lambda: (
                all(cs.sessions[cp.id].setup_done.is_set() for cp in fleet.charge_points if cp.id in cs.sessions)
                and len(cs.sessions) == len(fleet.charge_points)
            ),
            what="every charger set up (fail-safe profile installed)",
        )
        yield live
    finally:
        await fleet.stop()
        await loop.stop()
        await cs.stop()
        await store.close()
