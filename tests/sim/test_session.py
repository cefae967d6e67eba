"""A full charging session over real WebSockets against a central system built on the `ocpp` package.

Boot, status, authorize, start, periodic MeterValues, SetChargingProfile (the EV follows within
the J1772 window), GetCompositeSchedule, remote stop, unplug; every frame the simulator sent is
then checked against the official 1.6 schemas.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ocpp.v16 import call
from tests.sim.conftest import validate_frames
from tests.sim.csms import Csms

from evsite.sim import Ev, Fleet

SPEED = 10.0  # simulated seconds per real second


def sampled(meter_values: dict[str, Any]) -> dict[tuple[str, str | None], dict[str, Any]]:
    values = meter_values["meter_value"][-1]["sampled_value"]
    return {(v["measurand"], v.get("phase")): v for v in values}


async def test_full_session_against_ocpp_package_csms(csms: Csms) -> None:
    fleet = Fleet(
        csms.url,
        count=1,
        speed=SPEED,
        arrivals=False,
        config={"MeterValueSampleInterval": "1"},
        backoff_min_s=0.2,
        record_frames=True,
    )
    await fleet.start()
    try:
        await fleet.wait_online(5)
        cp = fleet.charge_points[0]
        rec = csms.record
        assert rec.boots == [cp.id]
        await csms.wait_for(lambda: (cp.id, 1, "Available") in rec.statuses)

        ev = Ev(id_tag="TAG-1", obc_max_a=32, start_delay_s=10, follow_delay_s=5, soc=0.2)
        cp.plug_in(1, ev)
        await csms.wait_for(lambda: "TAG-1" in rec.authorizations and rec.start_messages)
        start = rec.start_messages[0][1]
        assert start["connector_id"] == 1 and start["id_tag"] == "TAG-1"
        await csms.wait_for(lambda: (cp.id, 1, "Charging") in rec.statuses, timeout=5)
        statuses = [s for (_, c, s) in rec.statuses if c == 1]
        assert statuses.index("Preparing") < statuses.index("Charging")

        # Periodic MeterValues carry the energy register, current per phase, power and the offered current.
        await csms.wait_for(
            lambda: any(
                float(sampled(m).get(("Current.Import", "L1"), {}).get("value", 0)) > 31 for _, m in rec.meter_values
            )
        )
        mv = next(m for _, m in rec.meter_values if float(sampled(m)[("Current.Import", "L1")]["value"]) > 31)
        tx_id = mv["transaction_id"]
        assert tx_id == next(iter(rec.starts.values()))
        values = sampled(mv)
        assert values[("Energy.Active.Import.Register", None)]["unit"] == "Wh"
        assert values[("Power.Active.Import", None)]["unit"] == "W"
        assert float(values[("Power.Active.Import", None)]["value"]) == 32 * 208
        assert float(values[("Current.Offered", None)]["value"]) == 32.0

        # SetChargingProfile: the pilot drops at once, the EV follows after its ~5 s (simulated) delay.
        link = csms.connected[cp.id]
        profile = {
            "chargingProfileId": 10,
            "transactionId": tx_id,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}],
            },
        }
        loop = asyncio.get_running_loop()
        sent = loop.time()
        result = await link.call(call.SetChargingProfile(connector_id=1, cs_charging_profiles=profile))
        assert result.status == "Accepted"
        assert cp.connectors[1].offered_a == 10.0
        assert cp.line_currents()["L1"] > 10.0  # not yet: the EV has up to ~5 s
        await csms.wait_for(lambda: cp.line_currents()["L1"] <= 10.0, timeout=3)
        followed_sim_s = (loop.time() - sent) * SPEED
        assert 4.0 <= followed_sim_s <= 5.0 + 2.0, followed_sim_s  # follow delay plus one physics tick
        seen = len(rec.meter_values)
        await csms.wait_for(lambda: len(rec.meter_values) > seen + 1)
        last = sampled(rec.meter_values[-1][1])
        assert float(last[("Current.Offered", None)]["value"]) == 10.0
        assert float(last[("Current.Import", "L1")]["value"]) <= 10.0

        composite = await link.call(call.GetCompositeSchedule(connector_id=1, duration=300))
        assert composite.status == "Accepted"
        assert [float(p["limit"]) for p in composite.charging_schedule["charging_schedule_period"]] == [10.0]

        stop = await link.call(call.RemoteStopTransaction(transaction_id=tx_id))
        assert stop.status == "Accepted"
        await csms.wait_for(lambda: rec.stops)
        stopped = rec.stops[0][1]
        assert stopped["transaction_id"] == tx_id and stopped["reason"] == "Remote"
        assert stopped["meter_stop"] >= start["meter_start"]
        assert stopped["meter_stop"] == int(cp.connectors[1].meter_wh)
        # The register counts exactly what the EV took (polling its current above changed nothing),
        # and the current stops with the transaction.
        assert abs(stopped["meter_stop"] - start["meter_start"] - ev.energy_wh) < 1.0
        assert ev.energy_wh > 0 and cp.line_currents()["L1"] == 0.0
        await csms.wait_for(lambda: (cp.id, 1, "Finishing") in rec.statuses)
        cp.unplug(1)
        await csms.wait_for(lambda: rec.statuses[-1] == (cp.id, 1, "Available"))
        assert len(rec.stops) == 1  # unplugging after the stop does not stop again

        assert validate_frames(cp.frames or []) > 10
    finally:
        await fleet.stop()
