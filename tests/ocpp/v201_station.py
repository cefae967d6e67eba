"""A 2.0.1 charging station built on the `ocpp` package (an implementation independent of ours) for tests.

It validates every message we send against the official schemas (the package does), answers the way
a conforming station does, and enforces the K01 rules a station checks itself: a unit it does not
list in RateUnit is Rejected (K01.FR.26), a TxProfile for a transaction that is not running on the
EVSE is Rejected (K01.FR.09/33).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result
from websockets.asyncio.client import connect

from evsite.ocpp.server import CentralSystem

from .conftest import url


def now(offset_s: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat().replace("+00:00", "Z")


class Station(ChargePoint):
    """Records what the central system asks; `variables` is its device model."""

    def __init__(self, *args: Any, rate_unit: str = "A,W", stack_levels: str = "3", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.variables: dict[str, dict[str, str]] = {
            "SmartChargingCtrlr": {
                "Available": "true",
                "RateUnit": rate_unit,
                "ProfileStackLevel": stack_levels,
                "PeriodsPerSchedule": "24",
                "LimitChangeSignificance": "5",
            },
            "SampledDataCtrlr": {
                "TxUpdatedInterval": "0",
                "TxUpdatedMeasurands": "Energy.Active.Import.Register",
                "TxStartedMeasurands": "",
                "TxEndedMeasurands": "",
            },
        }
        self.profiles: list[tuple[int, dict[str, Any], str]] = []  # (evse, profile, our answer)
        self.transactions: dict[int, str] = {}  # evse → running transactionId
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.answers: dict[str, str] = {}  # action → status to answer with

    def accepted_profiles(self) -> list[tuple[int, dict[str, Any]]]:
        return [(evse, p) for evse, p, status in self.profiles if status == "Accepted"]

    @on("GetVariables")
    async def on_get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        results = []
        for item in get_variable_data:
            value = self.variables.get(item["component"]["name"], {}).get(item["variable"]["name"])
            result: dict[str, Any] = {"component": item["component"], "variable": item["variable"]}
            if value is None:
                result["attribute_status"] = "UnknownVariable"
            else:
                result.update(attribute_status="Accepted", attribute_value=value)
            results.append(result)
        return call_result.GetVariables(get_variable_result=results)

    @on("SetVariables")
    async def on_set_variables(self, set_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        results = []
        for item in set_variable_data:
            component, variable = item["component"]["name"], item["variable"]["name"]
            known = variable in self.variables.get(component, {})
            if known:
                self.variables[component][variable] = item["attribute_value"]
            results.append(
                {
                    "attribute_status": "Accepted" if known else "UnknownVariable",
                    "component": item["component"],
                    "variable": item["variable"],
                }
            )
        return call_result.SetVariables(set_variable_result=results)

    @on("SetChargingProfile")
    async def on_set_charging_profile(self, evse_id: int, charging_profile: dict[str, Any], **_: Any) -> Any:
        units = self.variables["SmartChargingCtrlr"]["RateUnit"].split(",")
        schedule = charging_profile["charging_schedule"][0]
        status = "Accepted"
        if schedule["charging_rate_unit"] not in units:
            status = "Rejected"  # K01.FR.26
        if charging_profile["charging_profile_purpose"] == "TxProfile" and (
            self.transactions.get(evse_id) != charging_profile.get("transaction_id")
        ):
            status = "Rejected"  # K01.FR.09 / K01.FR.33
        status = self.answers.get("SetChargingProfile", status)
        self.profiles.append((evse_id, charging_profile, status))
        return call_result.SetChargingProfile(status=status)

    @on("ClearChargingProfile")
    async def on_clear_charging_profile(self, **kwargs: Any) -> Any:
        self.requests.append(("ClearChargingProfile", kwargs))
        return call_result.ClearChargingProfile(status="Accepted")

    @on("RequestStartTransaction")
    async def on_request_start(self, **kwargs: Any) -> Any:
        self.requests.append(("RequestStartTransaction", kwargs))
        return call_result.RequestStartTransaction(status="Accepted")

    @on("RequestStopTransaction")
    async def on_request_stop(self, **kwargs: Any) -> Any:
        self.requests.append(("RequestStopTransaction", kwargs))
        return call_result.RequestStopTransaction(status="Accepted")

    @on("Reset")
    async def on_reset(self, **kwargs: Any) -> Any:
        self.requests.append(("Reset", kwargs))
        return call_result.Reset(status="Scheduled" if kwargs["type"] == "OnIdle" else "Accepted")

    @on("UnlockConnector")
    async def on_unlock(self, **kwargs: Any) -> Any:
        self.requests.append(("UnlockConnector", kwargs))
        return call_result.UnlockConnector(status="Unlocked")

    @on("ChangeAvailability")
    async def on_change_availability(self, **kwargs: Any) -> Any:
        self.requests.append(("ChangeAvailability", kwargs))
        return call_result.ChangeAvailability(status="Accepted")

    @on("TriggerMessage")
    async def on_trigger(self, **kwargs: Any) -> Any:
        self.requests.append(("TriggerMessage", kwargs))
        return call_result.TriggerMessage(status="Accepted")

    # ------------------------------------------------------------------ what the station sends

    async def boot(self) -> Any:
        return await self.call(
            call.BootNotification(
                charging_station={"model": "Pro 48", "vendor_name": "ExampleCharge"}, reason="PowerUp"
            )
        )

    async def event(
        self,
        kind: str,
        tx: str,
        seq: int,
        *,
        evse: int | None = 1,
        wh: float | None = None,
        amps: float | None = None,
        state: str | None = None,
        token: str | None = None,
        offline: bool = False,
        trigger: str = "MeterValuePeriodic",
        at: str | None = None,
    ) -> Any:
        info: dict[str, Any] = {"transaction_id": tx}
        if state is not None:
            info["charging_state"] = state
        if kind == "Ended":
            info["stopped_reason"] = "EVDisconnected"
        payload: dict[str, Any] = {
            "event_type": kind,
            "timestamp": at or now(),
            "trigger_reason": trigger,
            "seq_no": seq,
            "transaction_info": info,
        }
        if evse is not None:
            payload["evse"] = {"id": evse, "connector_id": 1}
        if offline:
            payload["offline"] = True
        if token is not None:
            payload["id_token"] = {"id_token": token, "type": "ISO14443"}
        sampled = []
        if wh is not None:
            sampled.append(
                {"value": wh, "measurand": "Energy.Active.Import.Register", "unit_of_measure": {"unit": "Wh"}}
            )
        if amps is not None:
            sampled.append(
                {"value": amps, "measurand": "Current.Import", "phase": "L1", "unit_of_measure": {"unit": "A"}}
            )
        if sampled:
            payload["meter_value"] = [{"timestamp": at or now(), "sampled_value": sampled}]
        if kind != "Ended" and evse is not None:
            self.transactions[evse] = tx
        elif kind == "Ended":
            self.transactions = {e: t for e, t in self.transactions.items() if t != tx}
        return await self.call(call.TransactionEvent(**payload))


async def wait_for(condition: Any, timeout: float = 5.0) -> None:
    """Poll `condition()` until it is true (fails the test after `timeout` seconds)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def station(
    cs: CentralSystem, cp_id: str = "WP-01", *, boot: bool = True, **kwargs: Any
) -> AsyncIterator[Station]:
    """A connected (and by default booted and set-up) 2.0.1 station on `cs`."""
    async with connect(url(cs, cp_id), subprotocols=["ocpp2.0.1"], open_timeout=5) as ws:
        cp = Station(cp_id, ws, response_timeout=5, **kwargs)
        runner = asyncio.create_task(cp.start())
        try:
            if boot:
                assert (await cp.boot()).status == "Accepted"
                await wait_for(lambda: cp_id in cs.sessions and cs.sessions[cp_id].setup_done.is_set())
            yield cp
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
