"""Every central-system call a 1.6 charge point answers, over real WebSockets, answered per spec.

Section numbers refer to OCPP 1.6 edition 2 (and its errata v4). The peer is a central system
built on the `ocpp` package, which validates our replies against the official schemas on receipt;
`validate_frames` re-checks everything we sent with an independent validator.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ocpp.v16 import call
from tests.sim.conftest import validate_frames
from tests.sim.csms import Csms, CsmsChargePoint

from evsite.sim import ChargePointSpec, Ev, Quirks, SimChargePoint, SimClock


def iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")


def tx_default(pid: int, limit: float, stack: int = 0, unit: str = "A", periods: int = 1) -> dict[str, Any]:
    return {
        "chargingProfileId": pid,
        "stackLevel": stack,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "chargingRateUnit": unit,
            "startSchedule": iso(datetime.now(UTC) - timedelta(minutes=1)),
            "chargingSchedulePeriod": [{"startPeriod": i * 60, "limit": limit} for i in range(periods)],
        },
    }


def ev(tag: str) -> Ev:
    return Ev(id_tag=tag, start_delay_s=0, follow_delay_s=1, soc=0.2)


async def make_station(csms: Csms, quirks: Quirks | None = None, **config: str) -> SimChargePoint:
    spec = ChargePointSpec(id="CP-2", connectors=2, max_current_a=32, phases=3, quirks=quirks or Quirks())
    cp = SimChargePoint(spec, csms.url, SimClock(20), config=config, backoff_min_s=0.1, record_frames=True)
    await cp.start()
    await cp.wait_online(5)
    await csms.wait_for(lambda: cp.pending_messages == 0 and len(csms.record.statuses) >= 3)
    return cp


@pytest.fixture
async def station(csms: Csms) -> AsyncIterator[tuple[SimChargePoint, CsmsChargePoint]]:
    cp = await make_station(csms)
    try:
        yield cp, csms.connected[cp.id]
    finally:
        await cp.stop()
        validate_frames(cp.frames or [])


async def test_get_and_change_configuration(station: tuple[SimChargePoint, CsmsChargePoint]) -> None:
    cp, link = station
    everything = await link.call(call.GetConfiguration())
    keys = {k["key"]: k for k in everything.configuration_key}
    for name in (  # §3.13.5: a smart-charging charge point SHALL report these
        "ChargeProfileMaxStackLevel",
        "ChargingScheduleAllowedChargingRateUnit",
        "ChargingScheduleMaxPeriods",
        "MaxChargingProfilesInstalled",
        "MeterValueSampleInterval",
        "HeartbeatInterval",
    ):
        assert name in keys
    assert keys["NumberOfConnectors"]["value"] == "2" and keys["NumberOfConnectors"]["readonly"] is True
    some = await link.call(call.GetConfiguration(key=["MeterValueSampleInterval", "NoSuchKey"]))
    assert [k["key"] for k in some.configuration_key] == ["MeterValueSampleInterval"]
    assert some.unknown_key == ["NoSuchKey"]
    # §5.3: Accepted, Rejected (read-only, malformed, out of range) or NotSupported (unknown key).
    for key, value, expected in [
        ("MeterValueSampleInterval", "5", "Accepted"),
        ("MeterValueSampleInterval", "five", "Rejected"),
        ("MeterValueSampleInterval", "-1", "Rejected"),
        ("NumberOfConnectors", "4", "Rejected"),
        ("MeterValuesSampledData", "Energy.Active.Import.Register,Bogus", "Rejected"),
        ("NoSuchKey", "1", "NotSupported"),
    ]:
        result = await link.call(call.ChangeConfiguration(key=key, value=value))
        assert result.status == expected, (key, value)
    assert cp.config.int("MeterValueSampleInterval") == 5


async def test_set_charging_profile_rules(station: tuple[SimChargePoint, CsmsChargePoint]) -> None:
    cp, link = station

    async def set_profile(connector: int, profile: dict[str, Any]) -> str:
        return str(
            (await link.call(call.SetChargingProfile(connector_id=connector, cs_charging_profiles=profile))).status
        )

    tx_profile = {**tx_default(5, 16), "chargingProfilePurpose": "TxProfile"}
    assert await set_profile(1, tx_profile) == "Rejected"  # §3.13.1: no transaction on connector 1
    assert await set_profile(1, {**tx_default(6, 16), "chargingProfilePurpose": "ChargePointMaxProfile"}) == "Rejected"
    assert await set_profile(0, tx_default(7, 16, stack=9)) == "Rejected"  # ChargeProfileMaxStackLevel is 8
    assert await set_profile(0, tx_default(8, 16, periods=25)) == "Rejected"  # ChargingScheduleMaxPeriods is 24
    assert await set_profile(0, tx_default(9, 7360, unit="W")) == "Accepted"
    assert await set_profile(0, {**tx_default(10, 20), "chargingProfilePurpose": "ChargePointMaxProfile"}) == "Accepted"
    stacked = tx_default(11, 32, stack=1)
    stacked["chargingSchedule"]["chargingSchedulePeriod"] = [
        {"startPeriod": 0, "limit": 32},
        {"startPeriod": 600, "limit": 8},
    ]
    stacked["chargingSchedule"]["startSchedule"] = iso(datetime.now(UTC).replace(microsecond=0))
    assert await set_profile(1, stacked) == "Accepted"
    # Connector 1: TxDefault stack 1 (32 A, then 8 A) under the 20 A ChargePointMaxProfile.
    composite = await link.call(call.GetCompositeSchedule(connector_id=1, duration=900, charging_rate_unit="A"))
    got = [(p["start_period"], float(p["limit"])) for p in composite.charging_schedule["charging_schedule_period"]]
    assert got[0] == (0, 20.0) and got[-1][1] == 8.0 and 595 <= got[-1][0] <= 600
    # Connector 2 has only the connector-0 default in W: 7360 W / (3 × 230 V) = 10.66… → 10.6 A.
    composite2 = await link.call(call.GetCompositeSchedule(connector_id=2, duration=60))
    assert [float(p["limit"]) for p in composite2.charging_schedule["charging_schedule_period"]] == [10.6]
    assert (await link.call(call.GetCompositeSchedule(connector_id=3, duration=60))).status == "Rejected"
    cleared = await link.call(call.ClearChargingProfile(charging_profile_purpose="TxDefaultProfile"))
    assert cleared.status == "Accepted" and len(cp.profiles.profiles) == 1
    again = await link.call(call.ClearChargingProfile(id=11))
    assert again.status == "Unknown"  # already gone

    cp.plug_in(1, ev("TAG-1"))
    await _wait_tx(cp, 1)
    assert await set_profile(1, {**tx_profile, "transactionId": cp.connectors[1].tx.transaction_id}) == "Accepted"  # type: ignore[union-attr]
    assert await set_profile(1, {**tx_profile, "chargingProfileId": 12, "transactionId": 999}) == "Rejected"


async def test_quirky_charger_rejects_what_it_claims_to_support(csms: Csms) -> None:
    cp = await make_station(csms, Quirks(reject_stack_level_above=2, amps_only=True))
    try:
        link = csms.connected[cp.id]
        levels = await link.call(call.GetConfiguration(key=["ChargeProfileMaxStackLevel"]))
        assert levels.configuration_key[0]["value"] == "8"
        for profile, expected in [
            (tx_default(1, 16, stack=3), "Rejected"),
            (tx_default(2, 7000, unit="W"), "Rejected"),
        ]:
            result = await link.call(call.SetChargingProfile(connector_id=0, cs_charging_profiles=profile))
            assert result.status == expected
        ok = await link.call(call.SetChargingProfile(connector_id=0, cs_charging_profiles=tx_default(3, 16, stack=2)))
        assert ok.status == "Accepted"
    finally:
        await cp.stop()


async def _wait_tx(cp: SimChargePoint, connector: int) -> None:
    import asyncio

    for _ in range(250):
        tx = cp.connectors[connector].tx
        if tx is not None and tx.transaction_id is not None:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("transaction did not start")


async def test_trigger_message_answers_first_then_sends(
    csms: Csms, station: tuple[SimChargePoint, CsmsChargePoint]
) -> None:
    cp, link = station
    before = len(csms.record.statuses)
    result = await link.call(call.TriggerMessage(requested_message="StatusNotification", connector_id=2))
    assert result.status == "Accepted"
    await csms.wait_for(lambda: len(csms.record.statuses) > before)
    assert csms.record.statuses[-1] == (cp.id, 2, "Available")
    # §5.17: the TriggerMessage.conf goes out before the requested message.
    frames = [(d, json.loads(f)) for d, f in cp.frames or []]
    trigger_id = next(m[1] for d, m in frames if d == "in" and m[0] == 2 and m[2] == "TriggerMessage")
    outbound = [m for d, m in frames if d == "out"]
    conf = next(i for i, m in enumerate(outbound) if m[0] == 3 and m[1] == trigger_id)
    triggered = max(i for i, m in enumerate(outbound) if m[0] == 2 and m[2] == "StatusNotification")
    assert conf < triggered
    rejected = await link.call(call.TriggerMessage(requested_message="Heartbeat", connector_id=7))
    assert rejected.status == "Rejected"
    beats = csms.record.heartbeats
    await link.call(call.TriggerMessage(requested_message="Heartbeat"))
    await csms.wait_for(lambda: csms.record.heartbeats == beats + 1)
    await link.call(call.TriggerMessage(requested_message="MeterValues", connector_id=1))
    await csms.wait_for(lambda: csms.record.meter_values)
    context = csms.record.meter_values[-1][1]["meter_value"][0]["sampled_value"][0]["context"]
    assert context == "Trigger"


async def test_change_availability_is_scheduled_during_a_transaction(
    csms: Csms, station: tuple[SimChargePoint, CsmsChargePoint]
) -> None:
    cp, link = station
    idle = await link.call(call.ChangeAvailability(connector_id=2, type="Inoperative"))
    assert idle.status == "Accepted"
    await csms.wait_for(lambda: (cp.id, 2, "Unavailable") in csms.record.statuses)
    cp.plug_in(1, ev("TAG-1"))
    await _wait_tx(cp, 1)
    busy = await link.call(call.ChangeAvailability(connector_id=1, type="Inoperative"))
    assert busy.status == "Scheduled"  # §5.2
    assert cp.connectors[1].tx is not None
    cp.unplug(1)
    await csms.wait_for(lambda: csms.record.statuses[-1] == (cp.id, 1, "Unavailable"))
    same = await link.call(call.ChangeAvailability(connector_id=2, type="Inoperative"))
    assert same.status == "Accepted"  # already in that state
    back = await link.call(call.ChangeAvailability(connector_id=0, type="Operative"))
    assert back.status == "Accepted"
    await csms.wait_for(lambda: (cp.id, 2, "Available") in csms.record.statuses[-3:])


async def test_reservations(csms: Csms, station: tuple[SimChargePoint, CsmsChargePoint]) -> None:
    cp, link = station
    expiry = iso(datetime.now(UTC) + timedelta(hours=1))
    reserve = await link.call(call.ReserveNow(connector_id=2, expiry_date=expiry, id_tag="OWNER", reservation_id=7))
    assert reserve.status == "Accepted"
    await csms.wait_for(lambda: (cp.id, 2, "Reserved") in csms.record.statuses)
    zero = await link.call(call.ReserveNow(connector_id=0, expiry_date=expiry, id_tag="X", reservation_id=8))
    assert zero.status == "Rejected"  # ReserveConnectorZeroSupported is false
    cp.plug_in(1, ev("OTHER"))
    occupied = await link.call(call.ReserveNow(connector_id=1, expiry_date=expiry, id_tag="X", reservation_id=9))
    assert occupied.status == "Occupied"
    cancel = await link.call(call.CancelReservation(reservation_id=7))
    assert cancel.status == "Accepted"
    assert (await link.call(call.CancelReservation(reservation_id=7))).status == "Rejected"
    await link.call(call.ReserveNow(connector_id=2, expiry_date=expiry, id_tag="OWNER", reservation_id=10))
    cp.plug_in(2, ev("OWNER"))
    await _wait_tx(cp, 2)
    start = next(m for cp_id, m in csms.record.start_messages if m["connector_id"] == 2)
    assert start["reservation_id"] == 10


async def test_local_list_and_offline_authorization(csms: Csms) -> None:
    cp = await make_station(csms, LocalAuthorizeOffline="true", AllowOfflineTxForUnknownId="false")
    try:
        link = csms.connected[cp.id]
        assert (await link.call(call.GetLocalListVersion())).list_version == 0
        entries = [
            {"idTag": "FLEET-1", "idTagInfo": {"status": "Accepted"}},
            {"idTag": "GONE", "idTagInfo": {"status": "Blocked"}},
        ]
        full = await link.call(call.SendLocalList(list_version=3, update_type="Full", local_authorization_list=entries))
        assert full.status == "Accepted"
        stale = await link.call(
            call.SendLocalList(list_version=3, update_type="Differential", local_authorization_list=[])
        )
        assert stale.status == "VersionMismatch"
        assert (await link.call(call.GetLocalListVersion())).list_version == 3
        await csms.stop()
        await csms.wait_for(lambda: not cp.online)
        cp.plug_in(1, ev("GONE"))  # blocked on the list: no offline start
        cp.plug_in(2, ev("FLEET-1"))  # on the list: starts offline
        await csms.wait_for(lambda: cp.connectors[2].tx is not None)
        assert cp.connectors[1].tx is None
    finally:
        await cp.stop()


async def test_remote_start_with_profile_remote_stop_and_deauthorization(
    csms: Csms, station: tuple[SimChargePoint, CsmsChargePoint]
) -> None:
    cp, link = station
    bad = {**tx_default(1, 8), "chargingProfilePurpose": "TxDefaultProfile"}
    rejected = await link.call(call.RemoteStartTransaction(id_tag="APP", connector_id=1, charging_profile=bad))
    assert rejected.status == "Rejected"  # §5.16.2: only a TxProfile may come with RemoteStart
    profile = {**tx_default(2, 8), "chargingProfilePurpose": "TxProfile"}
    started = await link.call(call.RemoteStartTransaction(id_tag="APP", connector_id=1, charging_profile=profile))
    assert started.status == "Accepted"
    cp.plug_in(1, ev("CARD"))  # the remote start's tag is used, not the car's
    await _wait_tx(cp, 1)
    assert cp.connectors[1].tx.id_tag == "APP"  # type: ignore[union-attr]
    await csms.wait_for(lambda: cp.connectors[1].offered_a == 8.0)
    busy = await link.call(call.RemoteStartTransaction(id_tag="APP", connector_id=1))
    assert busy.status == "Rejected"
    unknown = await link.call(call.RemoteStopTransaction(transaction_id=424242))
    assert unknown.status == "Rejected"
    # StartTransaction.conf with a blocked tag: StopTransactionOnInvalidId stops it as DeAuthorized.
    csms.blocked_tags.add("STOLEN")
    cp.plug_in(2, ev("CARD2"))
    await csms.wait_for(lambda: cp.connectors[2].tx is not None)
    csms.blocked_tags.add("CARD2")
    await link.call(call.RemoteStopTransaction(transaction_id=cp.connectors[2].tx.transaction_id))  # type: ignore[union-attr]
    await csms.wait_for(lambda: any(s["reason"] == "Remote" for _, s in csms.record.stops))
    cp.unplug(2)
    await link.call(call.RemoteStartTransaction(id_tag="STOLEN", connector_id=2))
    cp.plug_in(2, ev("X"))
    await csms.wait_for(lambda: any(s.get("reason") == "DeAuthorized" for _, s in csms.record.stops))


async def test_reset_unlock_and_maintenance_calls(csms: Csms, station: tuple[SimChargePoint, CsmsChargePoint]) -> None:
    cp, link = station
    cp.plug_in(1, ev("TAG-1"))
    await _wait_tx(cp, 1)
    assert (await link.call(call.UnlockConnector(connector_id=1))).status == "Unlocked"
    await csms.wait_for(lambda: any(s["reason"] == "UnlockCommand" for _, s in csms.record.stops))
    assert (await link.call(call.UnlockConnector(connector_id=5))).status == "NotSupported"
    assert (await link.call(call.DataTransfer(vendor_id="com.example"))).status == "UnknownVendorId"
    assert (await link.call(call.ClearCache())).status == "Accepted"
    diag = await link.call(call.GetDiagnostics(location="ftp://127.0.0.1/diag"))
    assert diag.file_name
    await csms.wait_for(
        lambda: (
            [kw["status"] for _, a, kw in csms.record.other if a == "DiagnosticsStatusNotification"]
            == ["Uploading", "Uploaded"]
        )
    )
    await link.call(call.UpdateFirmware(location="http://127.0.0.1/fw.bin", retrieve_date=iso(datetime.now(UTC))))
    await csms.wait_for(
        lambda: (
            [kw["status"] for _, a, kw in csms.record.other if a == "FirmwareStatusNotification"]
            == ["Downloading", "Downloaded", "Installing", "Installed"]
        )
    )
    cp.unplug(1)
    cp.plug_in(2, ev("TAG-2"))
    await _wait_tx(cp, 2)
    assert (await link.call(call.Reset(type="Soft"))).status == "Accepted"
    await csms.wait_for(lambda: len(csms.record.boots) == 2, timeout=5)  # it rebooted
    assert any(s["reason"] == "SoftReset" for _, s in csms.record.stops)
