"""The simulator's 2.0.1 station against evsite's central system over 127.0.0.1: its cars follow the limits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.conftest import EXAMPLES

from evsite.ocpp.server import CentralSystem, ServerSettings
from evsite.runtime.events import EvChargingNeeds, EventBus, TransactionEvent
from evsite.sim.ev import Ev, SimClock
from evsite.sim.v201 import Station201, StationSpec
from evsite.site import load_site
from evsite.store.ocpp import OcppStore


@contextlib.asynccontextmanager
async def central(tmp_path: Path) -> AsyncIterator[CentralSystem]:
    store = await OcppStore.open(f"sqlite+aiosqlite:///{tmp_path / 'cs.db'}", synchronous="NORMAL")
    cs = CentralSystem(
        store, load_site(EXAMPLES / "workplace-20.yaml"), bus=EventBus(), settings=ServerSettings(port=0)
    )
    await cs.start()
    try:
        yield cs
    finally:
        await cs.stop()
        await store.close()


async def until(condition: object, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("rate_unit", ["A", "W"])
async def test_sim_201_station_boots_charges_and_obeys_the_setpoint(tmp_path: Path, rate_unit: str) -> None:
    async with central(tmp_path) as cs, cs.bus.subscribe() as events:
        clock = SimClock(600.0)  # EV delays (seconds) pass in milliseconds
        spec = StationSpec("WP-01", max_a=48.0, rate_unit=rate_unit, line_voltage_v=120.0)
        station = Station201(spec, f"ws://127.0.0.1:{cs.port}/ocpp", clock)
        runner = asyncio.create_task(station.run())
        try:
            await until(lambda: "WP-01" in cs.sessions and cs.sessions["WP-01"].setup_done.is_set())
            # The fail-safe cap arrived and is what the station enforces before any setpoint.
            failsafe = cs.failsafe_limit("WP-01")
            assert station.limit_a(station.ports[1]) == pytest.approx(failsafe)
            ev = Ev(obc_max_a=40.0, start_delay_s=1.0, follow_delay_s=1.0, id_tag="CAR-1")
            await station.plug_in(1, ev, iso15118=True)
            await until(lambda: 1 in cs.sessions["WP-01"].active_tx)
            assert await cs.set_connector_limit("WP-01", 1, 10.0)
            # W-only: evsite sent 10 A × 120 V × 1 phase = 1200 W, the station converts back (K01.FR.50).
            assert station.limit_a(station.ports[1]) == pytest.approx(10.0)
            await until(lambda: abs(ev.current_a(clock.now()) - 10.0) < 1e-9)  # the car follows within its delay
            await asyncio.sleep(0.05)
            assert ev.current_a(clock.now()) == pytest.approx(10.0)  # and stays there
            await station.unplug(1)
            await until(lambda: not cs.sessions["WP-01"].active_tx)
            seen = []
            while not events.empty():
                seen.append(events.get_nowait())
            assert [e.kind for e in seen if isinstance(e, TransactionEvent)] == ["started", "stopped"]
            assert [e.energy_wh is not None for e in seen if isinstance(e, EvChargingNeeds)] == [True]
            (row,) = await cs.store.transactions("WP-01")
            assert row["stop_time"] is not None and row["id_tag"] == "CAR-1"
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner


async def test_sim_command_runs_201_stations_from_a_site_file(tmp_path: Path) -> None:
    from tests.sim.test_cli import run

    async with central(tmp_path) as cs:
        url = f"ws://127.0.0.1:{cs.port}/ocpp"
        site = str(EXAMPLES / "workplace-20.yaml")
        code, out, err = await run(
            "sim", "--ocpp", "2.0.1", "--url", url, "--site", site, "--duration", "4", "--seed", "1"
        )
        assert code == 0, err
        assert "simulating 20 OCPP 2.0.1 stations" in out
        booted = [r["id"] for r in await cs.store.chargers() if r["last_boot_at"] is not None]
        assert sorted(booted) == [f"WP-{i:02d}" for i in range(1, 21)]
        code, _, err = await run("sim", "--ocpp", "3.0", "--url", url, "--duration", "1")
        assert code == 2 and "expected 1.6 or 2.0.1" in err
