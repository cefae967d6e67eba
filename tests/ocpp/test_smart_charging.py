"""Setpoints → charging profiles: rounding, capabilities read at boot, fall-backs on rejection."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from evsite.control.tree import build_tree
from evsite.ocpp import profiles
from evsite.ocpp.profiles import SmartChargingCaps, crude_safe_limits, floor_tenth, pilot_limit_a
from evsite.ocpp.server import CentralSystem
from evsite.runtime.events import FailsafeState, SetpointResult
from evsite.site import Site

from .conftest import RawClient, raw_client

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_rounding_is_down_to_a_tenth_and_pauses_below_6_a() -> None:
    assert floor_tenth(12.37) == 12.3
    assert floor_tenth(12.3) == 12.3  # exact tenths survive the float representation
    assert floor_tenth(0.3) == 0.3
    assert floor_tenth(31.99) == 31.9
    assert pilot_limit_a(5.99) == 0.0  # J1772: below 6 A the pilot cannot signal; pause instead
    assert pilot_limit_a(6.0) == 6.0
    assert pilot_limit_a(-3) == 0.0


def test_caps_from_configuration() -> None:
    caps = SmartChargingCaps.from_configuration(
        {
            "ChargeProfileMaxStackLevel": "0",
            "ChargingScheduleAllowedChargingRateUnit": "Power",
            "ChargingScheduleMaxPeriods": "5",
            "SupportedFeatureProfiles": "Core,FirmwareManagement,SmartCharging",
        }
    )
    assert caps == SmartChargingCaps(supported=True, max_stack_level=0, rate_units=("W",), max_periods=5)
    assert not SmartChargingCaps.from_configuration({"SupportedFeatureProfiles": "Core"}).supported
    assert profiles.lift_profile(48, caps, 240, NOW, timedelta(minutes=2)) is None  # one stack level: no lift


def test_setpoint_in_watts_when_charger_only_takes_power() -> None:
    caps = SmartChargingCaps(rate_units=("W",), max_stack_level=2)
    profile = profiles.setpoint_profile(1, 16.05, caps, 240.0, NOW, transaction_id=None)
    schedule = profile["chargingSchedule"]
    assert schedule["chargingRateUnit"] == "W"
    assert schedule["chargingSchedulePeriod"][0]["limit"] == 3840.0  # 16.0 A × 240 V
    assert profile["chargingProfilePurpose"] == "TxDefaultProfile" and profile["stackLevel"] == 2


def test_crude_failsafe_shares_the_tightest_node(workplace: Site) -> None:
    # workplace-20.yaml: an EMS caps feeder F-EV at 160 A for 20 EVSE; the 60 A circuits (48 A continuous)
    # and the 200 A feeder (160 A continuous) are looser, so each EVSE gets 160 / 20 = 8 A.
    limits = crude_safe_limits(workplace)
    assert set(limits.values()) == {8.0}
    assert sum(limits.values()) <= 160


async def _answer_until(client: RawClient, answers: dict[str, list[dict[str, Any]]], count: int) -> list[list[Any]]:
    """Answer `count` server CALLs, popping canned answers per action; return the CALLs."""
    calls = []
    for _ in range(count):
        call = await client.recv()
        assert call[0] == 2
        calls.append(call)
        canned = answers.get(call[2]) or [{"status": "Accepted"}]
        await client.send([3, call[1], canned.pop(0) if len(canned) > 1 else canned[0]])
    return calls


async def test_boot_reads_caps_and_installs_failsafe(cs: CentralSystem) -> None:
    client = await raw_client(cs, "WP-07")
    await client.send([2, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}])
    assert (await client.recv())[0] == 3
    config = {
        "configurationKey": [
            {"key": "ChargeProfileMaxStackLevel", "readonly": True, "value": "0"},
            {"key": "ChargingScheduleAllowedChargingRateUnit", "readonly": True, "value": "Current"},
        ]
    }
    calls = await _answer_until(client, {"GetConfiguration": [config]}, 3)
    assert [c[2] for c in calls] == ["GetConfiguration", "ChangeConfiguration", "SetChargingProfile"]
    assert calls[1][3] == {"key": "MeterValueSampleInterval", "value": "10"}  # the site's control setting
    failsafe = calls[2][3]
    assert failsafe["connectorId"] == 0
    assert failsafe["csChargingProfiles"]["chargingProfilePurpose"] == "ChargePointMaxProfile"
    limit = failsafe["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
    assert limit == cs.failsafe_limit("WP-07") and 0 < limit <= 48
    with pytest.raises(TimeoutError):  # stack level 0 only: no lift profile follows
        await client.recv(timeout=0.3)
    session = cs.session("WP-07")
    assert session.caps.max_stack_level == 0 and session.caps.rate_units == ("A",)


async def test_boot_asks_for_the_samples_the_site_needs_and_only_what_is_missing(cs: CentralSystem) -> None:
    client = await raw_client(cs, "WP-11")
    await client.send([2, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}])
    assert (await client.recv())[0] == 3
    config = {
        "configurationKey": [
            {"key": "ChargeProfileMaxStackLevel", "readonly": True, "value": "0"},
            {"key": "MeterValueSampleInterval", "readonly": False, "value": "10"},  # already the site's
            {"key": "MeterValuesSampledData", "readonly": False, "value": "Energy.Active.Import.Register,SoC"},
        ]
    }
    calls = await _answer_until(client, {"GetConfiguration": [config]}, 2)
    assert [c[2] for c in calls] == ["GetConfiguration", "ChangeConfiguration"]
    wanted = calls[1][3]
    assert wanted["key"] == "MeterValuesSampledData"
    measurands = wanted["value"].split(",")
    # What billing and the load manager need is added; what the charger already sampled (SoC) is kept.
    assert {"Energy.Active.Import.Register", "Current.Import", "Power.Active.Import", "SoC"} <= set(measurands)
    assert len(measurands) == len(set(measurands))


async def test_rejected_tx_profile_falls_back_to_tx_default(cs: CentralSystem) -> None:
    client = await raw_client(cs, "WP-08")
    await cs.set_id_tag("CARD")
    start = {"connectorId": 1, "idTag": "CARD", "meterStart": 0, "timestamp": "2026-03-01T08:00:00Z"}
    tx = (await client.call("StartTransaction", start))[2]["transactionId"]
    async with cs.bus.subscribe() as events:
        task = asyncio.create_task(cs.set_connector_limit("WP-08", 1, 20))
        answers = {"SetChargingProfile": [{"status": "Rejected"}, {"status": "Accepted"}]}
        calls = await _answer_until(client, answers, 3)
        assert await task
        result = await asyncio.wait_for(events.get(), 2)
    assert calls[0][2] == "SetChargingProfile" and calls[0][3]["csChargingProfiles"]["transactionId"] == tx
    assert calls[1][2] == "ClearChargingProfile" and calls[1][3]["id"] == profiles.TX_PROFILE_BASE + 1
    assert calls[2][3]["csChargingProfiles"]["chargingProfilePurpose"] == "TxDefaultProfile"
    assert isinstance(result, SetpointResult) and result.accepted and "TxProfile: Rejected" in result.detail
    recorded = [(p["purpose"], p["status"]) for p in await cs.store.profiles("WP-08")]
    assert recorded == [("TxProfile", "Rejected"), ("TxDefaultProfile", "Accepted")]


async def test_setpoint_refused_everywhere_is_reported(cs: CentralSystem) -> None:
    client = await raw_client(cs, "WP-09")
    task = asyncio.create_task(cs.set_connector_limit("WP-09", 1, 3.0))
    calls = await _answer_until(client, {"SetChargingProfile": [{"status": "Rejected"}]}, 1)
    assert calls[0][3]["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 0.0
    assert not await task
    assert not await cs.set_connector_limit("NOT-CONNECTED", 1, 10)
    assert "WP-09" in cs.connected_charge_points()


async def test_charger_refusing_charge_point_max_gets_tx_default_failsafe(cs: CentralSystem) -> None:
    client = await raw_client(cs, "WP-10")
    await client.send([2, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}])
    assert (await client.recv())[0] == 3
    config = {"configurationKey": [{"key": "ChargeProfileMaxStackLevel", "readonly": True, "value": "2"}]}
    answers = {"GetConfiguration": [config], "SetChargingProfile": [{"status": "Rejected"}, {"status": "Accepted"}]}
    calls = await _answer_until(client, answers, 4)
    assert calls[1][2] == "ChangeConfiguration"
    fallback = calls[3][3]
    assert fallback["connectorId"] == 0
    assert fallback["csChargingProfiles"]["chargingProfilePurpose"] == "TxDefaultProfile"
    assert fallback["csChargingProfiles"]["stackLevel"] == 0
    share = fallback["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
    assert share == pilot_limit_a(cs.failsafe_limit("WP-10"))  # one connector on WP-10
    session = cs.session("WP-10")
    await asyncio.wait_for(session.setup_done.wait(), 5)
    assert session.failsafe_kind == "TxDefaultProfile"
    # No lift in this mode: setpoints carry the lease themselves, so they expire when evsite is gone.
    task = asyncio.create_task(cs.set_connector_limit("WP-10", 1, 30))
    setpoint = (await _answer_until(client, {}, 1))[0][3]["csChargingProfiles"]
    assert await task
    valid_to = datetime.fromisoformat(setpoint["validTo"])
    assert timedelta(0) < valid_to - datetime.now(UTC) <= timedelta(seconds=cs.settings.lift_lease_s)
    assert setpoint["stackLevel"] == 2


async def test_refused_failsafe_lowers_the_others_and_is_reported(cs: CentralSystem, workplace: Site) -> None:
    """#22: a charger refusing every fail-safe draws its nameplate without evsite; the others make room."""
    events: list[FailsafeState] = []

    async def watch() -> None:
        async with cs.bus.subscribe() as queue:
            while True:
                event = await queue.get()
                if isinstance(event, FailsafeState):
                    events.append(event)

    watcher = asyncio.create_task(watch())
    config = {"configurationKey": [{"key": "ChargeProfileMaxStackLevel", "readonly": True, "value": "0"}]}
    good = await raw_client(cs, "WP-07")
    await good.send([2, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}])
    assert (await good.recv())[0] == 3
    first = (await _answer_until(good, {"GetConfiguration": [config]}, 3))[2][3]["csChargingProfiles"]
    before = first["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]

    bad = await raw_client(cs, "WP-10")
    await bad.send([2, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}])
    assert (await bad.recv())[0] == 3
    calls = await _answer_until(bad, {"GetConfiguration": [config], "SetChargingProfile": [{"status": "Rejected"}]}, 4)
    assert [c[2] for c in calls].count("SetChargingProfile") == 2  # ChargePointMax, then TxDefault: both refused

    again = (await _answer_until(good, {}, 1))[0]  # WP-07's fail-safe, reinstalled at its smaller share
    assert again[2] == "SetChargingProfile" and again[3]["csChargingProfiles"]["chargingProfilePurpose"] == (
        "ChargePointMaxProfile"
    )
    after = again[3]["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
    assert after < before and after == cs.failsafe_limit("WP-07")
    # Without evsite: WP-10 at its 48 A nameplate plus everyone else's fail-safe share stays within the
    # feeder's 160 A EMS limit on every line (examples/workplace-20.yaml).
    tree = build_tree(workplace)
    offline = np.array(
        [48.0 if p.charge_point_id == "WP-10" else cs.failsafe_limit(p.charge_point_id) for p in tree.ports]
    )
    assert tree.node_load(offline)[tree.node_index["F-EV"]].max() <= 160.0
    await asyncio.sleep(0.05)
    watcher.cancel()
    assert [(e.charge_point_id, e.refused, e.nameplate_a, e.lowered) for e in events] == [
        ("WP-10", True, 48.0, ("WP-07",))
    ]
