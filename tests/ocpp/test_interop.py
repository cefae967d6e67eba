"""Interoperability: a full session against a charge point built on the `ocpp` package (mobilityhouse),
an implementation independent of ours, over a real WebSocket on 127.0.0.1."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call
from ocpp.v16.enums import Action
from websockets.asyncio.client import connect

from evsite.ocpp.server import CentralSystem
from evsite.runtime.events import MeterSample, SetpointResult, TransactionEvent

from .conftest import url


def now(offset_s: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat().replace("+00:00", "Z")


class ThirdPartyChargePoint(ChargePoint):
    """Answers the central system's calls the way a conforming charger would; records them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.profiles: list[dict[str, Any]] = []
        self.triggered: list[str] = []
        self.config_reads = 0

    @on(Action.get_configuration)
    async def on_get_configuration(self, key: list[str] | None = None, **_: Any) -> Any:
        from ocpp.v16 import call_result

        self.config_reads += 1
        return call_result.GetConfiguration(
            configuration_key=[
                {"key": "ChargeProfileMaxStackLevel", "readonly": True, "value": "3"},
                {"key": "ChargingScheduleAllowedChargingRateUnit", "readonly": True, "value": "Current"},
                {"key": "ChargingScheduleMaxPeriods", "readonly": True, "value": "24"},
                {"key": "SupportedFeatureProfiles", "readonly": True, "value": "Core,SmartCharging,RemoteTrigger"},
            ]
        )

    @on(Action.set_charging_profile)
    async def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any]) -> Any:
        from ocpp.v16 import call_result

        self.profiles.append({"connector_id": connector_id, **cs_charging_profiles})
        return call_result.SetChargingProfile(status="Accepted")

    @on(Action.trigger_message)
    async def on_trigger_message(self, requested_message: str, **_: Any) -> Any:
        from ocpp.v16 import call_result

        self.triggered.append(requested_message)
        return call_result.TriggerMessage(status="Accepted")


async def test_full_session_with_ocpp_package_charge_point(cs: CentralSystem) -> None:
    await cs.set_id_tag("CARD-1")
    async with cs.bus.subscribe() as events, connect(url(cs, "WP-01"), subprotocols=["ocpp1.6"]) as ws:
        cp = ThirdPartyChargePoint("WP-01", ws, response_timeout=5)
        runner = asyncio.create_task(cp.start())
        boot = await cp.call(call.BootNotification(charge_point_model="Pro 48", charge_point_vendor="ExampleCharge"))
        assert boot.status == "Accepted"
        assert boot.interval == cs.settings.heartbeat_interval_s

        # After boot the server reads the configuration and installs the fail-safe cap.
        for _ in range(100):
            if cp.profiles:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        assert len(cp.profiles) == 1  # no lift before the load manager sends a setpoint
        failsafe = cp.profiles[0]
        assert failsafe["connector_id"] == 0 and failsafe["charging_profile_purpose"] == "ChargePointMaxProfile"
        assert failsafe["stack_level"] == 0
        # The limit comes from the load manager's safe_default_limits (or our crude equal share).
        limit = float(failsafe["charging_schedule"]["charging_schedule_period"][0]["limit"])
        assert limit == cs.failsafe_limit("WP-01")

        hb = await cp.call(call.Heartbeat())
        assert hb.current_time
        auth = await cp.call(call.Authorize(id_tag="CARD-1"))
        assert auth.id_tag_info["status"] == "Accepted"
        bad = await cp.call(call.Authorize(id_tag="NOBODY"))
        assert bad.id_tag_info["status"] == "Invalid"
        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Preparing"))
        start = await cp.call(call.StartTransaction(connector_id=1, id_tag="CARD-1", meter_start=1000, timestamp=now()))
        tx = start.transaction_id
        assert start.id_tag_info["status"] == "Accepted"

        sample = {
            "timestamp": now(),
            "sampledValue": [
                {"value": "1500", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                {"value": "16.2", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
                {"value": "3.9", "measurand": "Power.Active.Import", "unit": "kW"},
            ],
        }
        await cp.call(call.MeterValues(connector_id=1, transaction_id=tx, meter_value=[sample]))

        assert await cs.set_connector_limit("WP-01", 1, 12.37)
        for _ in range(100):  # the lift follows in the background, after the setpoint was accepted
            if len(cp.profiles) > 3:
                break
            await asyncio.sleep(0.02)
        # Setpoint first: never a moment at nameplate; then the leased setpoints are renewed before the lift
        # (the running transaction's TxProfile lapses 1.5 leases after it is sent, #22), then the lift.
        tx_profile, renewed, lift = cp.profiles[1], cp.profiles[2], cp.profiles[3]
        assert renewed["charging_profile_purpose"] == "TxProfile" and "valid_to" in renewed
        assert lift["charging_profile_purpose"] == "ChargePointMaxProfile"
        assert lift["stack_level"] == 1 and "valid_to" in lift
        assert tx_profile["charging_profile_purpose"] == "TxProfile"
        assert tx_profile["transaction_id"] == tx
        assert tx_profile["stack_level"] == 3  # the charger's ChargeProfileMaxStackLevel
        assert float(tx_profile["charging_schedule"]["charging_schedule_period"][0]["limit"]) == 12.3  # rounded down

        assert await cs.session("WP-01").trigger_message("MeterValues", 1) == "Accepted"
        assert cp.triggered == ["MeterValues"]

        stop = await cp.call(
            call.StopTransaction(meter_stop=5000, timestamp=now(1), transaction_id=tx, id_tag="CARD-1")
        )
        assert stop.id_tag_info["status"] == "Accepted"
        runner.cancel()

        seen = []
        while not events.empty():
            seen.append(events.get_nowait())
    kinds = [e.kind for e in seen if isinstance(e, TransactionEvent)]
    assert kinds == ["started", "stopped"]
    meter = next(e for e in seen if isinstance(e, MeterSample))
    assert meter.energy_wh == 1500 and meter.power_w == 3900 and meter.current_a == {"L1": 16.2}
    assert any(isinstance(e, SetpointResult) and e.accepted and e.limit_a == 12.3 for e in seen)

    rows = await cs.store.transactions("WP-01")
    assert [(r["id"], r["meter_start"], r["meter_stop"], r["stop_id_tag"]) for r in rows] == [
        (tx, 1000, 5000, "CARD-1")
    ]
    assert len(await cs.store.meter_values("WP-01")) == 3
    config = await cs.store.configuration("WP-01")
    assert config["ChargeProfileMaxStackLevel"] == "3"
    statuses = {(p["purpose"], p["status"]) for p in await cs.store.profiles("WP-01")}
    assert ("TxProfile", "Accepted") in statuses and ("ChargePointMaxProfile", "Accepted") in statuses
