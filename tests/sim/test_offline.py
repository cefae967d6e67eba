"""Offline behaviour: transaction messages survive a central-system outage, fail-safe profiles hold.

- Queued Start/Stop/MeterValues are replayed after the central system comes back: nothing lost,
  nothing duplicated, and messages of a transaction started offline carry the id assigned on replay.
- OCPP 1.6 §3.13.6: offline, a charger keeps applying its TxDefaultProfile (so a small fleet stays
  within the sum of its fail-safe limits, also for transactions started offline); a charger with
  no profile at all charges unconstrained.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from ocpp.v16 import call
from tests.conftest import free_port
from tests.sim.conftest import validate_frames
from tests.sim.csms import Csms

from evsite.sim import Ev, Fleet


async def test_transaction_messages_are_queued_offline_and_replayed_once() -> None:
    port = free_port()
    first = Csms(port)
    await first.start()
    fleet = Fleet(
        first.url,
        count=2,
        speed=10,
        arrivals=False,
        config={"MeterValueSampleInterval": "1", "AllowOfflineTxForUnknownId": "true"},
        backoff_min_s=0.1,
        backoff_max_s=0.4,
        record_frames=True,
    )
    await fleet.start()
    second: Csms | None = None
    try:
        await fleet.wait_online(5)
        a, b = fleet.charge_points
        a.plug_in(1, Ev(id_tag="TAG-A", start_delay_s=0, follow_delay_s=0, soc=0.2))
        await first.wait_for(lambda: len(first.record.meter_values) >= 2)
        # Go down right after a sample was acknowledged (the next one is ~1 s away).
        seen = len(first.record.meter_values)
        await first.wait_for(lambda: len(first.record.meter_values) > seen and a.pending_transaction_messages == 0)
        await first.stop()
        await first.wait_for(lambda: not a.online and not b.online)

        b.plug_in(1, Ev(id_tag="TAG-B", start_delay_s=0, follow_delay_s=0, soc=0.2))  # starts offline
        await asyncio.sleep(2.5)
        a.unplug(1)  # stops offline
        assert a.pending_transaction_messages >= 3  # ≥ 2 samples + StopTransaction
        assert b.pending_transaction_messages >= 3  # StartTransaction + ≥ 2 samples

        second = Csms(port, tx_start=100)
        await second.start()
        await second.wait_for(lambda: a.pending_transaction_messages == 0 and b.pending_transaction_messages == 0)
        b.unplug(1)
        await second.wait_for(lambda: b.pending_transaction_messages == 0 and second.record.stops[-1][0] == b.id)

        # Nothing lost, nothing duplicated: every sample the simulator took arrived exactly once.
        received = [
            (cp_id, mv["connector_id"], mv["meter_value"][0]["timestamp"])
            for record in (first.record, second.record)
            for cp_id, mv in record.meter_values
        ]
        assert len(received) == len(set(received))
        assert len(received) == a.generated["MeterValues"] + b.generated["MeterValues"]
        stops = [s for record in (first.record, second.record) for s in record.stops]
        assert len(stops) == 2 and [cp_id for cp_id, _ in stops] == [a.id, b.id]

        # A's transaction (started online) is stopped with its original id.
        a_tx = next(iter(first.record.starts.values()))
        assert stops[0][1]["transaction_id"] == a_tx and stops[0][1]["reason"] == "EVDisconnected"
        # B's transaction started offline: its StartTransaction came first, then its samples with the new id.
        b_starts = [m for cp_id, m in second.record.start_messages if cp_id == b.id]
        assert len(b_starts) == 1
        b_tx = second.record.starts[(b.id, 1, b_starts[0]["timestamp"])]
        assert b_tx >= 100
        b_samples = [mv for cp_id, mv in second.record.meter_values if cp_id == b.id]
        assert b_samples and all(mv["transaction_id"] == b_tx for mv in b_samples)
        assert all(mv["meter_value"][0]["timestamp"] >= b_starts[0]["timestamp"] for mv in b_samples)
        assert stops[1][1]["transaction_id"] == b_tx
        # The reconnect did not reboot the charge points (1.6J §5.4: no BootNotification unless data changed).
        assert second.record.boots == []
        for cp in (a, b):
            validate_frames(cp.frames or [])
    finally:
        await fleet.stop()
        if second is not None:
            await second.stop()


def _fail_safe(limit_a: float) -> dict[str, object]:
    start = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="seconds").replace("+00:00", "Z")
    return {
        "chargingProfileId": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "chargingRateUnit": "A",
            "startSchedule": start,
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit_a}],
        },
    }


async def test_fail_safe_profiles_keep_the_fleet_within_limits_while_offline(csms: Csms) -> None:
    speed = 20.0
    fleet = Fleet(
        csms.url,
        count=4,
        speed=speed,
        arrivals=False,
        config={"AllowOfflineTxForUnknownId": "true"},
        backoff_min_s=0.2,
        backoff_max_s=0.5,
    )
    await fleet.start()
    try:
        await fleet.wait_online(5)
        guarded, bare = fleet.charge_points[:3], fleet.charge_points[3]
        limit = 10.0
        for cp in guarded:
            result = await csms.connected[cp.id].call(
                call.SetChargingProfile(connector_id=0, cs_charging_profiles=_fail_safe(limit))
            )
            assert result.status == "Accepted"
        guarded[0].plug_in(1, Ev(id_tag="T1", start_delay_s=0, follow_delay_s=5, soc=0.2))
        guarded[1].plug_in(1, Ev(id_tag="T2", start_delay_s=0, follow_delay_s=5, soc=0.2))
        await csms.wait_for(lambda: guarded[0].line_currents()["L1"] > 0 and guarded[1].line_currents()["L2"] > 0)

        await csms.stop()
        await csms.wait_for(lambda: not any(cp.online for cp in fleet.charge_points))
        guarded[2].plug_in(1, Ev(id_tag="T3", start_delay_s=10, follow_delay_s=5, soc=0.2))  # starts offline
        bare.plug_in(1, Ev(id_tag="T4", start_delay_s=0, follow_delay_s=5, soc=0.2))

        # Each line carries two of the three guarded chargers (L1-L2, L2-L3, L3-L1): 2 × 10 A per line.
        per_line_limit = {line: limit * sum(line in cp.spec.lines for cp in guarded) for line in ("L1", "L2", "L3")}
        peak: dict[str, float] = dict.fromkeys(per_line_limit, 0.0)
        loop = asyncio.get_running_loop()
        until = loop.time() + 40 / speed  # 40 simulated seconds, past the third EV's start delay
        while loop.time() < until:
            for line in peak:
                peak[line] = max(peak[line], sum(cp.line_currents().get(line, 0.0) for cp in guarded))
            await asyncio.sleep(0.02)
        assert all(peak[line] <= per_line_limit[line] for line in peak), (peak, per_line_limit)
        assert guarded[2].line_currents()["L3"] == limit  # the offline-started session charges, at the fail-safe
        assert peak == {"L1": 20.0, "L2": 20.0, "L3": 20.0}
        # §3.13.6: without any profile the charger charges as if no constraints apply.
        assert bare.line_currents()["L1"] == bare.spec.max_current_a
    finally:
        await fleet.stop()
