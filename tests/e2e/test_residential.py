"""Residential shedding over real OCPP and real Modbus (issue 6 live loop, seed scenario 1).

`examples/residential.yaml`: one 48 A charger on a 200 A service whose HEMS setpoint is 160 A
(`evsite check`: "EMS HEMS limits service to 160 A"), safety margin 2 A. The service meter reads
house + car over Modbus TCP (evsite's SunSpec simulator, polled by the real adapter), and the
adapter derives the house as meter − EV current. So the car may have:
  - house at 20 A:  160 − 20 − 2 = 138 A → its 48 A nameplate;
  - evening peak at 142 A: 160 − 142 − 2 = 16 A;
  - after the peak, 60 A: 160 − 60 − 2 = 98 A → 48 A again.
The charger reports its current only every 5 s (real) here, so the meter sees the car follow a
new pilot before evsite hears of it: the case that used to make the car flap between 16 and 48 A.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from evsite.grid.modbus import run_site_modbus
from evsite.grid.sim_modbus import ModbusSim, SimState
from tests.conftest import free_port
from tests.e2e.harness import Recorder, fast_site, live_site, wait_for

CP = "HOME-EV1"
VOLTS = 240.0  # 120/240 V split phase: the meter sees W / 240 V on each of L1 and L2
FOLLOW_WINDOW_S = 15.0  # simulated seconds an EV may take to follow a lower pilot


async def test_house_peak_sheds_the_car_to_16_a_and_gives_it_back(tmp_path: Path) -> None:
    site = fast_site("residential.yaml")
    site.control.meter_value_interval_s = 5
    ems_a = next(e.setpoint_a for e in site.ems if "service" in e.manages)
    margin = site.control.safety_margin_a
    assert (ems_a, margin) == (160, 2)
    modbus_port = free_port()
    for device in [*site.meters, *site.inverters]:
        assert device.modbus is not None
        device.modbus.port, device.modbus.poll_s = modbus_port, 0.5
    house = {"a": 20.0}
    state = SimState(profile="night", load_w=lambda hour: house["a"] * VOLTS)  # no PV: the evening

    async with ModbusSim(port=modbus_port, state=state) as meter, live_site(tmp_path, site) as live:

        async def wire_the_car_to_the_meter() -> None:
            while True:
                meter.state.ev_power_w = live.drawn_a(CP) * VOLTS
                await asyncio.sleep(0.005)

        tasks = [
            asyncio.create_task(wire_the_car_to_the_meter()),
            asyncio.create_task(run_site_modbus(site, live.cs.bus, live.loop.ev_current_a)),
        ]
        recorder = Recorder(live.fleet, limit_a=ems_a, other_a=lambda: house["a"])
        recorder.start()
        try:
            await live.plug_in(CP, live.ev(obc_max_a=48.0))
            await wait_for(lambda: live.drawn_a(CP) == 48.0, timeout=10, what="car charging at 48 A")
            tx_id = live.transaction_id(CP)
            assert tx_id is not None
            before_peak = len(recorder.pilots[CP])

            house["a"] = 142.0
            await wait_for(lambda: live.drawn_a(CP) == 16.0, timeout=5, what="car shed to 16 A")
            await asyncio.sleep(6.0)  # the peak lasts past the car's next two meter samples
            assert live.offered_a(CP) == 16.0

            house["a"] = 60.0
            await wait_for(lambda: live.drawn_a(CP) == 48.0, timeout=10, what="car back at 48 A")
            await asyncio.sleep(1.0)
        finally:
            await recorder.stop()
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        # Shed once and restored once: no flapping, never paused.
        assert recorder.pilots[CP][before_peak - 1 :] == [48.0, 16.0, 48.0], recorder.pilots[CP]
        # The session was never interrupted: same transaction, no StopTransaction anywhere.
        assert live.transaction_id(CP) == tx_id
        assert live.fleet[CP].generated["StopTransaction"] == 0
        transactions = await live.store.transactions()
        assert [(t["id"], t["stop_time"]) for t in transactions] == [(tx_id, None)]

    # House + car at the service: nothing above 160 A beyond the car's follow time.
    follow_real_s = FOLLOW_WINDOW_S / live.fleet.clock.speed
    assert all(e.duration_s < follow_real_s for e in recorder.excursions), recorder.excursions
    assert recorder.peak_port_a[CP] <= 48.0
