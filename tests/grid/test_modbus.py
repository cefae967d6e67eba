"""The Modbus adapter end to end against the pymodbus simulator on loopback, including failures."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from evsite.grid.modbus import Binding, DeviceError, DevicePoller, ModbusDevice
from evsite.grid.sim_modbus import ModbusSim, SimState
from evsite.runtime.events import Event, EventBus, MeterSample, SiteSignal
from evsite.site.model import ModbusEndpoint
from tests.conftest import free_port

SITE_METER = Binding("M-SERVICE", "meter", "service", "site", pv_surplus=True, building=True)


def endpoint(port: int, unit: int, **kw: object) -> ModbusEndpoint:
    return ModbusEndpoint(port=port, unit_id=unit, **kw)  # type: ignore[arg-type]


def drain(queue: asyncio.Queue[Event]) -> list[Event]:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


async def test_pv_surplus_and_samples_follow_the_simulated_site() -> None:
    port = free_port()
    state = SimState(profile="flat", pv_rating_w=7600, start_hour=12.0, load_w=lambda h: 1000.0)
    bus = EventBus()
    async with ModbusSim(port=port, state=state) as sim, bus.subscribe() as queue:
        poller = DevicePoller(SITE_METER, ModbusDevice(endpoint(port, 2)), bus)
        m = await poller.poll_once()
        assert m is not None and m.model_id == 202
        # flat profile: PV 0.8 × 7600 = 6080 W, load 1000 W → 5080 W exported over two 120 V lines
        assert m.power_w == pytest.approx(-5080, abs=1)
        events = drain(queue)
        sample = next(e for e in events if isinstance(e, MeterSample))
        surplus = next(e for e in events if isinstance(e, SiteSignal) and e.kind == "pv_surplus")
        assert sample.source == "M-SERVICE" and sample.power_w == pytest.approx(-5080, abs=1)
        assert surplus.current_a == {
            "L1": pytest.approx(5080 / 240, abs=0.02),
            "L2": pytest.approx(5080 / 240, abs=0.02),
        }
        assert not surplus.stale
        # an EV starts drawing 7.2 kW: the site now imports and the surplus falls to zero
        sim.state.ev_power_w = 7200
        await poller.poll_once()
        surplus = next(e for e in drain(queue) if isinstance(e, SiteSignal))
        assert surplus.current_a == {"L1": 0.0, "L2": 0.0}
        poller.device.close()
        # The load manager knows the EV's 30 A per line (7200 W / 240 V): what the sun gives the EVs is
        # that plus the net export, 30 − (7200 − 5080) / 240 = 21.17 A, the same as before the EV started.
        knowing = DevicePoller(
            SITE_METER, ModbusDevice(endpoint(port, 2)), bus, ev_current=lambda n: {"L1": 30.0, "L2": 30.0}
        )
        await knowing.poll_once()
        surplus = next(e for e in drain(queue) if isinstance(e, SiteSignal) and e.kind == "pv_surplus")
        assert surplus.current_a == {
            "L1": pytest.approx(5080 / 240, abs=0.02),
            "L2": pytest.approx(5080 / 240, abs=0.02),
        }
        knowing.device.close()


async def test_inverter_reads_and_export_limit_reverts_by_itself() -> None:
    port = free_port()
    state = SimState(profile="flat", pv_rating_w=10_000)
    async with ModbusSim(port=port, state=state):
        inverter = ModbusDevice(endpoint(port, 1))
        m = await inverter.read()
        assert m.model_id == 101 and m.power_w == pytest.approx(8000, abs=1) and m.status == "mppt"
        assert inverter.common is not None and inverter.common.serial == "INV0001"
        await inverter.set_power_limit_pct(50, revert_s=1)
        m = await inverter.read()
        assert m.power_w == pytest.approx(5000, abs=1) and m.status == "throttled"
        await asyncio.sleep(1.3)  # no refresh: the inverter drops the cap on its own
        assert (await inverter.read()).power_w == pytest.approx(8000, abs=1)
        with pytest.raises(ValueError):
            await inverter.set_power_limit_pct(120, revert_s=1)
        inverter.close()


@pytest.mark.parametrize("name", ["eastron-sdm630", "carlo-gavazzi-em24"])
async def test_register_map_meters(name: str) -> None:
    port = free_port()
    state = SimState(profile="night", load_w=lambda h: 2400.0)
    async with ModbusSim(port=port, state=state, map_meters={10: name}):
        m = await ModbusDevice(endpoint(port, 10, register_map=name)).read()
        assert m.power_w == pytest.approx(2400, abs=0.5)
        assert m.current_a["L1"] == pytest.approx(10.0, abs=0.01)
        assert m.voltage_v["L1"] == pytest.approx(120.0, abs=0.1)
        assert m.energy_import_wh == pytest.approx(12_000_000, rel=1e-4)


async def test_unreachable_device_goes_stale_and_never_reuses_old_values() -> None:
    port = free_port()  # nothing listens here
    bus = EventBus()
    ep = endpoint(port, 2, stale_after_s=0.3)
    async with bus.subscribe() as queue:
        poller = DevicePoller(SITE_METER, ModbusDevice(ep, timeout_s=0.3), bus)
        t0 = time.monotonic()
        assert await poller.poll_once() is None
        assert time.monotonic() - t0 < 1.0
        assert drain(queue) == []  # not yet stale: nothing is claimed
        await asyncio.sleep(0.35)
        await poller.poll_once()
        events = drain(queue)
        assert {(e.kind, e.stale, e.current_a == {}) for e in events if isinstance(e, SiteSignal)} == {
            ("building_load", True, True),
            ("pv_surplus", True, True),
        }
        assert not any(isinstance(e, MeterSample) for e in events)


async def test_timeout_then_recovery() -> None:
    port = free_port()
    bus = EventBus()
    async with ModbusSim(port=port) as sim, bus.subscribe() as queue:
        poller = DevicePoller(SITE_METER, ModbusDevice(endpoint(port, 2, stale_after_s=0.2), timeout_s=0.3), bus)
        assert await poller.poll_once() is not None
        drain(queue)
        sim.fault, sim.slow_s = "slow", 1.0
        t0 = time.monotonic()
        assert await poller.poll_once() is None
        assert time.monotonic() - t0 < 0.8
        assert all(isinstance(e, SiteSignal) and e.stale for e in drain(queue))
        sim.fault = None
        await asyncio.sleep(1.0)  # let the slow answer the server still owes us pass
        assert await poller.poll_once() is not None
        assert not any(isinstance(e, SiteSignal) and e.stale for e in drain(queue))
        poller.device.close()


async def test_garbage_registers_are_rejected_not_published() -> None:
    port = free_port()
    bus = EventBus()
    async with ModbusSim(port=port) as sim, bus.subscribe() as queue:
        sim.fault = "garbage"
        poller = DevicePoller(SITE_METER, ModbusDevice(endpoint(port, 2, stale_after_s=0.01)), bus)
        await asyncio.sleep(0.02)
        assert await poller.poll_once() is None
        events = drain(queue)
        assert events and all(isinstance(e, SiteSignal) and e.stale for e in events)
        raw = ModbusDevice(endpoint(port, 2))
        m = await raw.read()  # random scale factors fall outside ±10: every value is missing, none invented
        assert m.power_w is None and m.current_a == {} and m.voltage_v == {}
        raw.close()


async def test_device_without_sunspec_is_an_error() -> None:
    port = free_port()
    async with ModbusSim(port=port, map_meters={10: "eastron-sdm630"}):
        device = ModbusDevice(endpoint(port, 10))  # configured as sunspec, but it is an SDM630
        with pytest.raises(DeviceError, match="SunS"):
            await device.read()
        device.close()


async def test_energy_counter_rollover_stays_monotonic() -> None:
    port = free_port()
    # 3600× speed: 1 s of wall time is 1 h; 3.6 kW of load → 3.6 kWh/s crosses 2^32 Wh within a second
    state = SimState(profile="night", speed=3600, load_w=lambda h: 3600.0, import_wh=float(2**32 - 1500))
    bus = EventBus()
    async with ModbusSim(port=port, state=state):
        poller = DevicePoller(SITE_METER, ModbusDevice(endpoint(port, 2)), bus)
        first = await poller.poll_once()
        await asyncio.sleep(0.8)
        second = await poller.poll_once()
        assert first is not None and second is not None
        assert first.energy_import_wh is not None and first.energy_import_wh < 2**32
        assert second.energy_import_wh is not None and second.energy_import_wh > 2**32
        assert second.energy_import_wh - first.energy_import_wh == pytest.approx(3600 * 0.8, rel=0.3)
        poller.device.close()


async def test_residential_site_wiring_feeds_the_load_manager(examples_dir) -> None:  # type: ignore[no-untyped-def]
    """The example's meter and inverter, polled from the simulator, give signals SiteLimits accepts."""
    from evsite.control.signals import SiteLimits
    from evsite.control.tree import build_tree
    from evsite.grid.modbus import bindings
    from evsite.site import load_site

    site = load_site(examples_dir / "residential.yaml")
    port = free_port()
    wiring = bindings(site)
    assert {(b.device_id, b.kind, b.node, b.pv_surplus, b.building) for b, _ in wiring} == {
        ("M-SERVICE", "meter", "service", True, True),
        ("PV1", "inverter", "MP", False, False),
    }
    tree = build_tree(site)
    limits = SiteLimits(site, tree)
    before = limits.limits(datetime.now(UTC))[tree.node_index["service"]].copy()
    state = SimState(profile="night", load_w=lambda h: 4800.0, ev_power_w=2400.0)
    bus = EventBus()
    async with ModbusSim(port=port, state=state), bus.subscribe() as queue:
        for binding, ep in wiring:
            ep = ep.model_copy(update={"port": port})
            poller = DevicePoller(binding, ModbusDevice(ep), bus, ev_current=lambda node: {"L1": 10.0, "L2": 10.0})
            assert await poller.poll_once() is not None
            poller.device.close()
        signals = [e for e in drain(queue) if isinstance(e, SiteSignal)]
    building = next(s for s in signals if s.kind == "building_load")
    # meter reads 7200 W over 240 V = 30 A per line; the EV draws 10 A of it → 20 A of building load
    assert building.current_a == {"L1": pytest.approx(20.0, abs=0.05), "L2": pytest.approx(20.0, abs=0.05)}
    for signal in signals:
        limits.update(signal)
    after = limits.limits(datetime.now(UTC))[tree.node_index["service"]]
    assert after[0] > before[0]  # the live 20 A replaced the 100 A design peak of the house
