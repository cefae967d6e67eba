"""Fault injection over real OCPP: chargers and cars that disobey, the limit held from the truth (issue 22).

The real stack on 127.0.0.1 (`CentralSystem`, `ControlLoop`, the API's `LiveState` for alerts) with
`evsite.sim` chargers, scaled down so each run takes under a minute: six of the workplace example's
48 A single-phase 208 V chargers (circuits rotated L1-L2, L2-L3, L3-L1: four ports on every line)
behind the EV feeder F-EV, its EMS setpoint lowered to 60 A per line. Every car wants 48 A, so the
feeder is congested from the start. Ground truth is what the simulated EVs physically draw
(`Recorder`, every 10 ms), never what evsite believes.

The EVs run 2 × faster than real time (SPEED; 4 × left too little real-time margin on a loaded
machine), and the controller's EV time constants are scaled with them (tests/e2e/harness.py), so
"15 s" below is simulated time: 7.5 real seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from evsite.api.adapters import ControlLoopState
from evsite.api.live import LiveState
from evsite.api.runtime import SiteRuntime
from evsite.runtime.events import MeterSample, SiteSignal
from evsite.sim.chargepoint import Quirks
from evsite.site.model import Site
from tests.e2e.harness import LiveSite, Recorder, fast_site, live_site, wait_for

pytestmark = pytest.mark.slow

SPEED = 2.0
LIMIT_A = 60.0
WINDOW_S = 15.0  # J1772 response window, simulated seconds
ALERT_S = 30.0  # an alert naming the charger within this (simulated) time of its first sample over
RUN_S = 30.0  # real seconds of congested charging per case


def small_site() -> Site:
    site = fast_site("workplace-20.yaml")
    keep = {f"WP-0{i}" for i in range(1, 7)}
    site.evse = [e for e in site.evse if e.id in keep]
    site.circuits = [c for c in site.circuits if c.id in {e.circuit for e in site.evse}]
    next(e for e in site.ems if "F-EV" in e.manages).setpoint_a = LIMIT_A
    return site


@dataclass
class Run:
    live: LiveSite
    recorder: Recorder
    alerts: LiveState
    started: float  # monotonic time the cars were plugged in
    first_disobeyed: dict[str, float]  # monotonic time each charger first truly drew beyond its setpoint
    first_alert: dict[tuple[str, str], float]  # monotonic time an alert of a kind first named a charger

    def sim_s(self, real_s: float) -> float:
        return real_s * SPEED

    def longest_excursion_s(self, after_real_s: float = 0.0) -> float:
        """Longest true excursion over the feeder's limit, simulated seconds (after a real-time offset)."""
        spans = [x.duration_s for x in self.recorder.excursions if x.start >= self.started + after_real_s]
        return self.sim_s(max(spans, default=0.0))


@contextlib.asynccontextmanager
async def faulty_site(tmp_path: Path, quirks: dict[str, Quirks], *, panel_meter: bool = False) -> AsyncIterator[Run]:
    site = small_site()
    async with live_site(tmp_path, site, speed=SPEED, quirks=quirks) as live:
        state = LiveState(SiteRuntime(site, bus=live.loop.bus, control=ControlLoopState(live.loop)))
        tasks = [asyncio.create_task(state.run()), asyncio.create_task(state.watch(0.1))]
        if panel_meter:  # the EV feeder's panel meter M-EVP: reads the true current, as a clamp would
            tasks.append(asyncio.create_task(_panel_meter(live)))
        recorder = Recorder(live.fleet, limit_a=LIMIT_A)
        recorder.start()
        try:
            for cp in live.fleet.charge_points:
                await live.plug_in(cp.id, live.ev(obc_max_a=48.0))
            run = Run(live, recorder, state, time.monotonic(), {}, {})
            tasks.append(asyncio.create_task(_watch_disobedience(run)))
            yield run
        finally:
            await recorder.stop()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def _panel_meter(live: LiveSite) -> None:
    while True:
        amps = live.fleet.total_current_a()
        live.loop.bus.publish(MeterSample("M-EVP", 0, datetime.now(UTC), current_a=dict(amps)))
        await asyncio.sleep(0.25)


async def _watch_disobedience(run: Run) -> None:
    """Ground truth per charger: when it first drew more than its accepted setpoint allows (J1772 tolerance)."""
    ctrl = run.live.loop.controller
    while True:
        for cp in run.live.fleet.charge_points:
            p = ctrl.port(cp.id, 1)
            known = p is not None and cp.id not in run.first_disobeyed and ctrl.sent[p] > 0
            if known and run.live.drawn_a(cp.id) > ctrl.sent[p] * ctrl.settings.overdraw_ratio_max + 0.5:
                run.first_disobeyed[cp.id] = time.monotonic()
            for alert in run.alerts.alerts.values():
                if alert.active and cp.id in alert.message:
                    run.first_alert.setdefault((cp.id, alert.kind), time.monotonic())
        await asyncio.sleep(0.02)


async def _alert_named(run: Run, charger: str, kind: str) -> float:
    """Simulated seconds from the charger's first true draw beyond its setpoint until an alert names it."""

    await wait_for(lambda: (charger, kind) in run.first_alert, timeout=RUN_S, what=f"{kind} alert naming {charger}")
    origin = run.first_disobeyed.get(charger, run.started)
    return run.sim_s(run.first_alert[(charger, kind)] - origin)


async def test_a_charger_ignoring_every_profile(tmp_path: Path) -> None:
    async with faulty_site(tmp_path, {"WP-02": Quirks(ignore_profiles=True)}) as run:
        took = await _alert_named(run, "WP-02", "charger-noncompliant")
        await asyncio.sleep(RUN_S)
        assert run.live.offered_a("WP-02") == 48.0  # it really ignores: its pilot never came down
        assert run.live.drawn_a("WP-02") == pytest.approx(48.0, abs=0.1)
        assert took <= ALERT_S
        assert run.longest_excursion_s() <= WINDOW_S, [(x.start - run.started, x) for x in run.recorder.excursions]


@pytest.mark.parametrize("percent", [10.0, 4.0])
async def test_every_car_drawing_over_its_pilot(tmp_path: Path, percent: float) -> None:
    quirks = {f"WP-0{i}": Quirks(overdraw_pct=percent) for i in range(1, 7)}
    async with faulty_site(tmp_path, quirks) as run:
        await asyncio.sleep(RUN_S)
        assert run.longest_excursion_s() <= WINDOW_S, run.recorder.excursions
        ratios = [c["draw_ratio"] for c in run.live.loop.snapshot()["connectors"] if c["accepted_a"] >= 6]
        learned = [r for r in ratios if r >= 1 + percent / 100 - 0.02]
        assert len(learned) >= 4, ratios  # a car that was paused or moved lately may not have shown it yet
        assert not any(a.active and a.kind == "charger-noncompliant" for a in run.alerts.alerts.values())


async def test_a_charger_applying_profiles_a_minute_late(tmp_path: Path) -> None:
    async with faulty_site(tmp_path, {"WP-02": Quirks(apply_late_s=60.0)}) as run:
        await asyncio.sleep(RUN_S / 2)
        # An operator cap at 40 A per line: WP-02 keeps its old pilot for a simulated minute.
        run.live.loop.bus.publish(SiteSignal("manual_limit", "F-EV", dict.fromkeys(("L1", "L2", "L3"), 40.0), "test"))
        run.recorder.limit_a = 40.0
        stepped = time.monotonic() - run.started
        took = await _alert_named(run, "WP-02", "charger-noncompliant")
        await asyncio.sleep(RUN_S / 2)
        assert took <= ALERT_S
        # First offence: it cannot be told from an obedient car before the window has passed and a sample
        # shows it; the others then follow within their own lag.
        assert run.longest_excursion_s(after_real_s=stepped) <= 2 * WINDOW_S, run.recorder.excursions


async def test_an_under_reporting_charger_with_the_panel_meter_live(tmp_path: Path) -> None:
    quirks = {"WP-02": Quirks(ignore_profiles=True, meter_low_pct=50.0)}
    async with faulty_site(tmp_path, quirks, panel_meter=True) as run:
        took = await _alert_named(run, "WP-02", "charger-noncompliant")
        await wait_for(
            lambda: any(a.active and a.kind == "meter-mismatch" for a in run.alerts.alerts.values()),
            timeout=RUN_S,
            what="meter-mismatch alert",
        )
        await asyncio.sleep(RUN_S)
        assert took <= ALERT_S
        assert run.longest_excursion_s() <= WINDOW_S, run.recorder.excursions


async def test_a_charger_rejecting_every_profile_fail_safe_included(tmp_path: Path) -> None:
    async with faulty_site(tmp_path, {"WP-02": Quirks(reject_profiles=True)}) as run:
        took = await _alert_named(run, "WP-02", "profile-rejected")
        await asyncio.sleep(RUN_S)
        assert took <= ALERT_S
        assert run.longest_excursion_s() <= WINDOW_S, run.recorder.excursions


async def test_an_ignoring_charger_is_suspended_then_stopped_over_ocpp(tmp_path: Path) -> None:
    """#22 escalation carried out: ChangeAvailability Inoperative (Scheduled: a transaction runs), then
    RemoteStopTransaction; the charger ends the session and goes Unavailable, drawing nothing."""
    site = small_site()
    async with live_site(tmp_path, site, speed=SPEED, quirks={"WP-02": Quirks(ignore_profiles=True)}) as live:
        ctrl = live.loop.controller
        ctrl.settings = replace(ctrl.settings, escalation=("lower", "suspend", "stop"), escalate_every_s=5.0 / SPEED)
        for cp in live.fleet.charge_points:
            await live.plug_in(cp.id, live.ev(obc_max_a=48.0))
        charger = live.fleet["WP-02"].connectors[1]
        await wait_for(lambda: charger.pending_inoperative, timeout=RUN_S, what="Inoperative scheduled on WP-02")
        await wait_for(lambda: charger.tx is None, timeout=RUN_S, what="WP-02's transaction stopped remotely")
        await wait_for(lambda: charger.status == "Unavailable", timeout=RUN_S, what="WP-02 Unavailable")
        assert live.drawn_a("WP-02") == 0.0
        assert not charger.operative
        suspended = [a for a in live.loop.alerts() if a["kind"] == "charger-suspended"]
        assert [a["key"] for a in suspended] == ["suspended:WP-02:1"]
        assert "Scheduled" in suspended[0]["message"]
        assert all(cp.connectors[1].tx is not None for cp in live.fleet.charge_points if cp.id != "WP-02")
