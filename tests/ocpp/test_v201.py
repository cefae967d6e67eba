"""OCPP 2.0.1 central system against a station built on the `ocpp` package, over real sockets on 127.0.0.1.

Tests are named after the Part 6 CSMS test cases they cover (OCTT ids); the others check the rules
evsite adds (no resurrected transaction, offline history, the K01 guard, the ISO 15118 path).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect

from evsite.ocpp.server import CentralSystem
from evsite.ocpp.v16.session import ChargePointSession
from evsite.ocpp.v201.session import StationSession
from evsite.runtime.events import (
    ConnectorStatus,
    EvChargingNeeds,
    MeterSample,
    SetpointResult,
    TransactionEvent,
)
from evsite.site import topology

from .conftest import url
from .v201_station import now, station, wait_for


def drain(queue: asyncio.Queue[Any]) -> list[Any]:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


def session(cs: CentralSystem, cp_id: str = "WP-01") -> StationSession:
    s = cs.sessions[cp_id]
    assert isinstance(s, StationSession)
    return s


# --------------------------------------------------------------------------- one port, both versions


@pytest.mark.parametrize(
    ("offered", "chosen", "kind"),
    [
        (["ocpp1.6", "ocpp2.0.1"], "ocpp2.0.1", StationSession),
        (["ocpp2.0.1"], "ocpp2.0.1", StationSession),
        (["ocpp1.6"], "ocpp1.6", ChargePointSession),
    ],
)
async def test_subprotocol_negotiation_prefers_201(
    cs: CentralSystem, offered: list[str], chosen: str, kind: type
) -> None:
    async with connect(url(cs, "WP-02"), subprotocols=offered, open_timeout=5) as ws:
        assert ws.subprotocol == chosen
        await wait_for(lambda: "WP-02" in cs.sessions)
        assert type(cs.sessions["WP-02"]) is kind


async def test_201_admission_is_the_same_unknown_station_refused(cs: CentralSystem) -> None:
    with pytest.raises(Exception, match="404"):
        await connect(url(cs, "NOT-IN-SITE"), subprotocols=["ocpp2.0.1"], open_timeout=5)


async def test_201_bad_frames_get_201_error_codes(cs: CentralSystem) -> None:
    async with connect(url(cs, "WP-03"), subprotocols=["ocpp2.0.1"], open_timeout=5) as ws:

        async def ask(frame: Any) -> list[Any]:
            await ws.send(orjson.dumps(frame).decode())
            return list(orjson.loads(await asyncio.wait_for(ws.recv(), 5)))

        missing = await ask([2, "a", "BootNotification", {"reason": "PowerUp"}])
        assert missing[:3] == [4, "a", "OccurrenceConstraintViolation"]
        extra = await ask([2, "b", "Heartbeat", {"nonsense": 1}])
        assert extra[:3] == [4, "b", "FormatViolation"]
        enum = await ask(
            [2, "c", "BootNotification", {"reason": "Bogus", "chargingStation": {"model": "m", "vendorName": "v"}}]
        )
        assert enum[:3] == [4, "c", "PropertyConstraintViolation"]
        kind = await ask(
            [2, "d", "BootNotification", {"reason": "PowerUp", "chargingStation": {"model": 5, "vendorName": "v"}}]
        )
        assert kind[:3] == [4, "d", "TypeConstraintViolation"]
        unknown = await ask([2, "e", "FlyToTheMoon", {}])
        assert unknown[:3] == [4, "e", "NotImplemented"]
        wrong_way = await ask([2, "f", "SetChargingProfile", {}])  # a CSMS → station message
        assert wrong_way[:3] == [4, "f", "NotSupported"]
        not_a_call = await ask([2, "g", "Heartbeat"])
        assert not_a_call[:3] == [4, "g", "FormatViolation"]  # 1.6's FormationViolation, 2.0.1 spelling


# --------------------------------------------------------------------------- B: provisioning


async def test_TC_B_01_CSMS_cold_boot_accepted_reads_smart_charging_then_installs_failsafe(cs: CentralSystem) -> None:
    async with station(cs, "WP-01") as cp:
        s = session(cs)
        # SmartChargingCtrlr was read before the first profile (K01) and taken as the station said.
        assert s.smart_charging["RateUnit"] == "A,W"
        assert s.caps.max_stack_level == 3 and s.caps.max_periods == 24
        # Meter values during transactions at the site's interval.
        assert cp.variables["SampledDataCtrlr"]["TxUpdatedInterval"] == str(cs.site.control.meter_value_interval_s)  # type: ignore[union-attr]
        assert "Current.Import" in cp.variables["SampledDataCtrlr"]["TxUpdatedMeasurands"]
        assert cp.variables["SampledDataCtrlr"]["TxStartedMeasurands"] == "Energy.Active.Import.Register"
        evse, failsafe = cp.accepted_profiles()[0]
        assert evse == 0
        assert failsafe["charging_profile_purpose"] == "ChargingStationMaxProfile"
        assert failsafe["charging_profile_kind"] == "Absolute" and "start_schedule" in failsafe["charging_schedule"][0]
        limit = failsafe["charging_schedule"][0]["charging_schedule_period"][0]
        assert limit["start_period"] == 0 and limit["limit"] == pytest.approx(cs.failsafe_limit("WP-01"))
        assert s.failsafe_kind == "ChargePointMaxProfile"
        hb = await cp.call(__import__("ocpp.v201.call", fromlist=["Heartbeat"]).Heartbeat())
        assert abs(datetime.fromisoformat(hb.current_time.replace("Z", "+00:00")) - datetime.now(UTC)) < timedelta(
            seconds=5
        )


async def test_TC_B_02_CSMS_cold_boot_pending_provisions(store: Any, workplace: Any, settings: Any) -> None:
    cs = CentralSystem(store, workplace, settings=replace(settings, accept_unknown=True, unknown_status="Pending"))
    await cs.start()
    try:
        async with station(cs, "NEW-1", boot=False) as cp:
            boot = await cp.boot()
            assert boot.status == "Pending"
            s = session(cs, "NEW-1")
            await wait_for(lambda: bool(s.smart_charging))  # provisioning: the device model read while Pending
            assert not cp.profiles  # nothing installed before Accepted
            await cs.set_registration("NEW-1", "Accepted")
            assert (await cp.boot()).status == "Accepted"
            await wait_for(lambda: s.setup_done.is_set())
            assert cp.accepted_profiles()[0][1]["charging_profile_purpose"] == "ChargingStationMaxProfile"
    finally:
        await cs.stop()


async def test_TC_B_30_and_TC_B_31_CSMS_pending_station_gets_security_error_unless_asked(
    store: Any, workplace: Any, settings: Any
) -> None:
    from ocpp.exceptions import OCPPError
    from ocpp.v201 import call

    cs = CentralSystem(store, workplace, settings=replace(settings, accept_unknown=True, unknown_status="Pending"))
    await cs.start()
    try:
        async with station(cs, "NEW-2", boot=False) as cp:
            assert (await cp.boot()).status == "Pending"
            status = call.StatusNotification(timestamp=now(), connector_status="Available", evse_id=1, connector_id=1)
            with pytest.raises(OCPPError) as refused:
                await cp.call(status, suppress=False)
            assert type(refused.value).__name__ == "SecurityError"
            # TC_B_31: a message the CSMS triggered while Pending is answered.
            assert await session(cs, "NEW-2").trigger_message("StatusNotification", 1) == "Accepted"
            assert await cp.call(status, suppress=False) is not None
            with pytest.raises(OCPPError):  # once only
                await cp.call(status, suppress=False)
    finally:
        await cs.stop()


async def test_TC_B_06_and_TC_B_09_CSMS_get_and_set_variables(cs: CentralSystem) -> None:
    async with station(cs) as cp:
        s = session(cs)
        got = await s.get_variables([("SmartChargingCtrlr", "PeriodsPerSchedule"), ("Nope", "Nothing")])
        assert got == {"SmartChargingCtrlr/PeriodsPerSchedule": "24", "Nope/Nothing": None}
        assert await s.change_configuration("SampledDataCtrlr/TxUpdatedInterval", "15") == "Accepted"
        assert cp.variables["SampledDataCtrlr"]["TxUpdatedInterval"] == "15"
        assert (await cs.store.configuration("WP-01"))["SampledDataCtrlr/TxUpdatedInterval"] == "15"


async def test_TC_B_20_and_TC_B_22_CSMS_reset_onidle_and_immediate(cs: CentralSystem) -> None:
    async with station(cs) as cp:
        assert await session(cs).reset("Soft") == "Scheduled"
        assert await session(cs).reset("Hard") == "Accepted"
        assert [r[1]["type"] for r in cp.requests if r[0] == "Reset"] == ["OnIdle", "Immediate"]


# --------------------------------------------------------------------------- E: transactions


async def test_TC_E_01_and_TC_E_07_CSMS_transaction_start_update_end(cs: CentralSystem) -> None:
    await cs.set_id_tag("CARD-1")
    async with cs.bus.subscribe() as events, station(cs) as cp:
        started = await cp.event(
            "Started", "TX-A", 0, wh=1000, token="CARD-1", state="Charging", trigger="Authorized", at=now(-120)
        )
        assert started.id_token_info["status"] == "Accepted"
        await cp.event("Updated", "TX-A", 1, wh=1050, amps=16, at=now(-60))  # 3.3 kW at 208 V: 55 Wh a minute
        ended = await cp.event("Ended", "TX-A", 2, wh=1100, trigger="EVCommunicationLost")
        assert ended.id_token_info is None
        seen = drain(events)
        tx_events = [e for e in seen if isinstance(e, TransactionEvent)]
        assert [(e.kind, e.connector_id, e.id_tag) for e in tx_events] == [
            ("started", 1, "CARD-1"),
            ("stopped", 1, None),
        ]
        assert tx_events[0].meter_wh == 1000 and tx_events[1].meter_wh == 1100
        assert tx_events[0].transaction_id == tx_events[1].transaction_id
        samples = [e for e in seen if isinstance(e, MeterSample)]
        assert any(e.current_a == {"L1": 16.0} and e.energy_wh == 1050 for e in samples)
        assert any(isinstance(e, ConnectorStatus) and e.status == "Charging" for e in seen)
        # Persisted before the answers: our integer transaction with the station's register readings.
        (row,) = await cs.store.transactions("WP-01")
        assert (row["meter_start"], row["meter_stop"], row["stop_reason"]) == (1000, 1100, "EVDisconnected")
        assert not row["flags"]
        assert row["id"] == tx_events[0].transaction_id
        assert not session(cs).active_tx


async def test_TC_E_53_CSMS_replayed_events_never_resurrect_an_ended_transaction(cs: CentralSystem) -> None:
    async with cs.bus.subscribe() as events, station(cs) as cp:
        await cp.event("Started", "TX-R", 0, wh=0, at=now(-3600))
        await cp.event("Ended", "TX-R", 1, wh=900)
        drain(events)
        # A queued Updated replayed after the Ended, and the Started again (the station missed our answer).
        await cp.event("Updated", "TX-R", 2, wh=950, amps=30, state="Charging")
        await cp.event("Started", "TX-R", 0, wh=0, at=now(-3600))
        later = drain(events)
        assert not [e for e in later if isinstance(e, TransactionEvent | MeterSample | ConnectorStatus)]
        assert not session(cs).active_tx
        (row,) = await cs.store.transactions("WP-01")
        assert row["meter_stop"] == 900  # the Ended stands
        # A new transaction with seqNo restarting at 0 is a new transaction (TC_E_53).
        await cp.event("Started", "TX-S", 0, wh=900)
        assert [e.kind for e in drain(events) if isinstance(e, TransactionEvent)] == ["started"]
        assert len(await cs.store.transactions("WP-01")) == 2


async def test_offline_events_are_stored_but_not_fed_to_the_load_manager(cs: CentralSystem) -> None:
    async with cs.bus.subscribe() as events, station(cs) as cp:
        await cp.event("Started", "TX-O", 0, wh=100, offline=True, at=now(-900))
        await cp.event("Updated", "TX-O", 1, wh=400, amps=32, offline=True, at=now(-300))
        seen = drain(events)
        assert [e.kind for e in seen if isinstance(e, TransactionEvent)] == ["started"]  # the transaction is real
        assert not [e for e in seen if isinstance(e, MeterSample)]  # a 5-minute-old 32 A is no draw of now
        stored = [r for r in await cs.store.meter_values("WP-01") if r["measurand"] == "Current.Import"]
        assert [float(r["value"]) for r in stored] == [32.0]


async def test_201_meter_values_pass_the_plausibility_gate(cs: CentralSystem) -> None:
    async with cs.bus.subscribe() as events, station(cs) as cp:
        await cp.event("Started", "TX-P", 0, wh=0)
        drain(events)
        # 500 A on a 60 A circuit, and a register with a multiplier that overflows a float.
        from ocpp.v201 import call

        await cp.call(
            call.MeterValues(
                evse_id=1,
                meter_value=[
                    {
                        "timestamp": now(),
                        "sampled_value": [
                            {
                                "value": 500,
                                "measurand": "Current.Import",
                                "phase": "L1",
                                "unit_of_measure": {"unit": "A"},
                            },
                            {"value": 1, "unit_of_measure": {"unit": "Wh", "multiplier": 400}},
                        ],
                    }
                ],
            )
        )
        (sample,) = [e for e in drain(events) if isinstance(e, MeterSample)]
        assert sample.implausible and not sample.current_a and sample.energy_wh is None
        codes = {f["code"] for f in await cs.store.flags("WP-01")}
        assert {"out_of_range", "non_finite"} <= codes


async def test_TC_E_transaction_event_from_another_station_is_refused(cs: CentralSystem) -> None:
    async with station(cs, "WP-01") as one, station(cs, "WP-02") as two:
        await one.event("Started", "SAME-ID", 0, wh=0)
        await two.event("Started", "SAME-ID", 0, wh=0)  # station ids are per station: a different transaction
        rows = await cs.store.transactions()
        assert sorted(r["charger_id"] for r in rows) == ["WP-01", "WP-02"]


# --------------------------------------------------------------------------- K: smart charging


async def test_TC_K_60_CSMS_setpoint_is_a_tx_profile_with_the_live_transaction_id(cs: CentralSystem) -> None:
    async with station(cs) as cp:
        await cp.event("Started", "TX-K", 0, wh=0, state="Charging")
        cp.profiles.clear()
        assert await cs.set_connector_limit("WP-01", 1, 16.04)
        ((evse, tx_profile),) = cp.accepted_profiles()
        assert evse == 1
        assert tx_profile["charging_profile_purpose"] == "TxProfile" and tx_profile["transaction_id"] == "TX-K"
        assert tx_profile["stack_level"] == 3  # the station's ProfileStackLevel
        schedule = tx_profile["charging_schedule"][0]
        assert schedule["charging_rate_unit"] == "A" and "start_schedule" in schedule
        assert schedule["charging_schedule_period"] == [{"start_period": 0, "limit": 16.0}]  # 0.1 A steps, down


async def test_TC_K_01_and_TC_K_02_CSMS_no_transaction_means_tx_default_never_tx_profile(cs: CentralSystem) -> None:
    async with station(cs) as cp:
        cp.profiles.clear()
        assert await cs.set_connector_limit("WP-01", 1, 20)
        sent = [(evse, p["charging_profile_purpose"]) for evse, p, _ in cp.profiles]
        assert sent == [(1, "TxDefaultProfile")]  # evsite never sends a TxProfile the station must reject


async def test_K_rule_stale_transaction_gets_tx_default(cs: CentralSystem) -> None:
    """After the transaction ended, the next setpoint for that EVSE is TxDefault (K01.FR.09/33)."""
    async with station(cs) as cp:
        await cp.event("Started", "TX-1", 0, wh=0)
        await cp.event("Ended", "TX-1", 1, wh=10)
        cp.profiles.clear()
        await cs.set_connector_limit("WP-01", 1, 12)
        assert [p["charging_profile_purpose"] for _, p, _ in cp.profiles] == ["TxDefaultProfile"]
        assert all("transaction_id" not in p for _, p, _ in cp.profiles)


async def test_K_rule_w_only_station_gets_watts_converted_per_k01_fr_50(cs: CentralSystem) -> None:
    """A W-only station (RateUnit = W) gets W: per-phase amperes × nominal line-to-neutral voltage ×
    numberPhases, which the station turns back into the same amperes (K01.FR.50). WP-01 is a
    single-phase EVSE on a 208Y/120 V service: 120 V is the ANSI C84.1 nominal line-to-neutral voltage."""
    async with station(cs, rate_unit="W") as cp:
        (_, failsafe) = cp.accepted_profiles()[0]
        assert failsafe["charging_schedule"][0]["charging_rate_unit"] == "W"
        cp.profiles.clear()
        assert await cs.set_connector_limit("WP-01", 1, 16)
        ((_, profile),) = cp.accepted_profiles()
        schedule = profile["charging_schedule"][0]
        assert schedule["charging_rate_unit"] == "W"
        assert schedule["charging_schedule_period"] == [{"start_period": 0, "limit": 16 * 120.0, "number_phases": 1}]


async def test_K_rule_a_only_station_never_gets_watts(cs: CentralSystem) -> None:
    async with station(cs, rate_unit="A") as cp:
        await cs.set_connector_limit("WP-01", 1, 16)
        assert {p["charging_schedule"][0]["charging_rate_unit"] for _, p, _ in cp.profiles} == {"A"}
        assert all(
            "number_phases" not in p["charging_schedule"][0]["charging_schedule_period"][0] for _, p, _ in cp.profiles
        )


async def test_TC_K_03_CSMS_station_max_only_on_evse_0_never_relative(cs: CentralSystem) -> None:
    async with station(cs) as cp:
        await cp.event("Started", "TX-M", 0, wh=0)
        await cs.set_connector_limit("WP-01", 1, 30)  # a setpoint brings the leased lift
        await wait_for(lambda: len([p for _, p, _ in cp.profiles if p["id"] == 2]) == 1)
        station_max = [
            (e, p) for e, p, _ in cp.profiles if p["charging_profile_purpose"] == "ChargingStationMaxProfile"
        ]
        assert len(station_max) == 2  # fail-safe (stack 0) and lift (stack 1, with validTo)
        assert all(evse == 0 and p["charging_profile_kind"] != "Relative" for evse, p in station_max)
        lift = next(p for _, p in station_max if p["id"] == 2)
        assert lift["stack_level"] == 1 and "valid_to" in lift
        assert lift["charging_schedule"][0]["charging_schedule_period"][0]["limit"] == 48.0


async def test_K_rule_stack_level_zero_station_gets_no_lift(cs: CentralSystem) -> None:
    """ProfileStackLevel 0: a lift at stack 1 would be rejected; the fail-safe cap then stays (conservative)."""
    async with station(cs, stack_levels="0") as cp:
        await cp.event("Started", "TX-Z", 0, wh=0)
        await cs.set_connector_limit("WP-01", 1, 30)
        await asyncio.sleep(0.2)
        assert all(p["stack_level"] == 0 for _, p, _ in cp.profiles)
        assert not [p for _, p, _ in cp.profiles if p["id"] == 2]


async def test_TC_K_15_CSMS_station_refusing_profiles_is_recorded_not_trusted(cs: CentralSystem) -> None:
    async with cs.bus.subscribe() as events, station(cs) as cp:
        cp.answers["SetChargingProfile"] = "Rejected"
        assert not await cs.set_connector_limit("WP-01", 1, 10)
        (result,) = [e for e in drain(events) if isinstance(e, SetpointResult)]
        assert not result.accepted and "Rejected" in result.detail


# --------------------------------------------------------------------------- ISO 15118 (K15)


async def test_TC_K_53_CSMS_ev_charging_needs_reach_the_load_manager_and_get_a_tx_profile(cs: CentralSystem) -> None:
    from ocpp.v201 import call

    departure = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
    async with cs.bus.subscribe() as events, station(cs) as cp:
        await cp.event("Started", "TX-15118", 0, wh=0)
        cp.profiles.clear()
        needs = {
            "requested_energy_transfer": "AC_two_phase",
            "departure_time": departure.isoformat().replace("+00:00", "Z"),
            "ac_charging_parameters": {
                "energy_amount": 30000,
                "ev_min_current": 6,
                "ev_max_current": 32,
                "ev_max_voltage": 240,
            },
        }
        answer = await cp.call(call.NotifyEVChargingNeeds(evse_id=1, charging_needs=needs))
        assert answer.status == "Accepted"
        (seen,) = [e for e in drain(events) if isinstance(e, EvChargingNeeds)]
        assert (seen.connector_id, seen.departure, seen.energy_wh, seen.max_current_a) == (1, departure, 30000, 32)
        await wait_for(lambda: bool(cp.accepted_profiles()), timeout=10)  # K15.FR.08: well within 60 s
        ((evse, profile),) = cp.accepted_profiles()
        assert evse == 1 and profile["charging_profile_purpose"] == "TxProfile"
        assert profile["transaction_id"] == "TX-15118" and len(profile["charging_schedule"]) == 1


async def test_TC_K_55_CSMS_ev_schedule_above_our_limit_is_rejected(cs: CentralSystem) -> None:
    from ocpp.v201 import call

    async with station(cs) as cp:
        await cp.event("Started", "TX-55", 0, wh=0)
        await cs.set_connector_limit("WP-01", 1, 16)

        def schedule(limit: float) -> dict[str, Any]:
            period = {"start_period": 0, "limit": limit}
            return {"id": 1, "charging_rate_unit": "A", "charging_schedule_period": [period]}

        over = await cp.call(call.NotifyEVChargingSchedule(time_base=now(), evse_id=1, charging_schedule=schedule(32)))
        within = await cp.call(
            call.NotifyEVChargingSchedule(time_base=now(), evse_id=1, charging_schedule=schedule(16))
        )
        assert (over.status, within.status) == ("Rejected", "Accepted")


async def test_ev_needs_without_a_transaction_are_rejected(cs: CentralSystem) -> None:
    from ocpp.v201 import call

    async with station(cs) as cp:
        needs = {"requested_energy_transfer": "AC_single_phase"}
        assert (await cp.call(call.NotifyEVChargingNeeds(evse_id=1, charging_needs=needs))).status == "Rejected"


# --------------------------------------------------------------------------- operator actions


async def test_operator_actions_through_the_same_interface(cs: CentralSystem) -> None:
    async with station(cs) as cp:
        s = session(cs)
        await cp.event("Started", "TX-OP", 0, wh=0)
        tx_id = s.active_tx[1]
        assert await s.remote_start("CARD-9", 1) == "Accepted"
        assert await s.remote_stop(tx_id) == "Accepted"
        assert await s.remote_stop(tx_id + 1000) == "Rejected"  # not ours: never sent
        assert await s.unlock_connector(1) == "Unlocked"
        assert await s.change_availability(1, "Inoperative") == "Accepted"
        assert await s.trigger_message("StatusNotification", 1) == "Accepted"
        asked = dict(cp.requests)
        assert asked["RequestStartTransaction"]["id_token"] == {"id_token": "CARD-9", "type": "Central"}
        assert asked["RequestStartTransaction"]["evse_id"] == 1
        assert asked["RequestStopTransaction"] == {"transaction_id": "TX-OP"}
        assert asked["UnlockConnector"] == {"evse_id": 1, "connector_id": 1}
        assert asked["ChangeAvailability"] == {"operational_status": "Inoperative", "evse": {"id": 1}}
        assert asked["TriggerMessage"] == {"requested_message": "StatusNotification", "evse": {"id": 1}}
        assert len([r for r in cp.requests if r[0] == "RequestStopTransaction"]) == 1


async def test_201_station_survives_reconnect_with_its_open_transaction(cs: CentralSystem) -> None:
    async with station(cs) as cp:
        await cp.event("Started", "TX-RC", 0, wh=0)
    await wait_for(lambda: "WP-01" not in cs.sessions)
    async with station(cs, boot=False) as cp:
        cp.transactions[1] = "TX-RC"
        await wait_for(lambda: "WP-01" in cs.sessions)
        s = session(cs)
        await wait_for(lambda: s.setup_done.is_set())
        assert s.live_transactions == {1: "TX-RC"}
        cp.profiles.clear()
        assert await cs.set_connector_limit("WP-01", 1, 10)
        assert cp.accepted_profiles()[0][1]["transaction_id"] == "TX-RC"


def test_w_conversion_uses_topology_line_to_neutral(workplace: Any) -> None:
    from evsite.ocpp.v201 import profiles as p201

    assert p201.line_to_neutral_v(workplace) == topology.watts_per_amp(workplace.service.system, 1) == 120.0


async def test_201_long_id_token_and_vendor_on_postgres(postgres_url: str, workplace: Any) -> None:
    """2.0.1 allows a 36-character IdToken and a 50-character vendorName (1.6: 20 each); PostgreSQL
    enforces column lengths, so a transaction with them must still be stored before the answer."""
    from ocpp.v201 import call

    from evsite.ocpp.server import ServerSettings

    from .conftest import postgres_store

    token = "E" * 36
    async with (
        postgres_store(postgres_url) as store,
        CentralSystem(store, workplace, settings=ServerSettings(port=0, open_authorization=True)) as cs,
        station(cs, boot=False) as cp,
    ):
        vendor = "V" * 50
        boot = await cp.call(
            call.BootNotification(charging_station={"model": "M", "vendor_name": vendor}, reason="PowerUp")
        )
        assert boot.status == "Accepted"
        started = await cp.event("Started", "T" * 36, 0, wh=0, token=token)
        assert started.id_token_info["status"] == "Accepted"
        await cp.event("Ended", "T" * 36, 1, wh=0, token=token)
        (row,) = await cs.store.transactions("WP-01")
        assert (row["id_tag"], row["stop_id_tag"]) == (token, token)
        assert (await cs.store.charger("WP-01"))["vendor"] == vendor  # type: ignore[index]
