"""A minimal OCPP 2.0.1 charging station for the simulator (`evsite sim --ocpp 2.0.1`).

Built on the `ocpp` package's v201 ChargePoint (schema validation both ways comes with it). One EVSE
per port, one connector per EVSE. It boots, reports status, runs transactions with TransactionEvents
that carry the energy register and current, answers GetVariables/SetVariables from a small device
model, and applies the charging profiles it receives to its EVs' pilot: the lowest of the
ChargingStationMaxProfile and the TxProfile (or TxDefaultProfile) of the highest stack level that is
valid now. Like a conforming station it rejects what K01 says to reject (a unit not in RateUnit, a
TxProfile without that transaction, a station max on an EVSE or Relative, a missing startSchedule),
and turns W into amperes with K01.FR.50: W / (nominal line voltage × numberPhases, default 3).
An ISO 15118 car also sends NotifyEVChargingNeeds (departure, energy) after the transaction starts.

Not modelled (yet): offline queueing and replay, phase switching, several schedules, monitoring.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result
from websockets.asyncio.client import connect

from evsite.sim.ev import Ev, SimClock, pilot_amps

log = logging.getLogger(__name__)

SUBPROTOCOL = "ocpp2.0.1"


def stamp(at: datetime | None = None) -> str:
    return (at or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass
class Port:
    """One EVSE (with its single connector) and the car on it."""

    evse_id: int
    max_a: float
    ev: Ev | None = None
    tx_id: str | None = None
    seq: int = 0
    iso15118: bool = False
    departure: datetime | None = None


@dataclass
class Installed:
    evse_id: int
    purpose: str
    stack: int
    limit_a: float
    transaction_id: str | None
    start: datetime
    valid_to: datetime | None


@dataclass
class StationSpec:
    cp_id: str
    ports: int = 1
    max_a: float = 32.0
    rate_unit: str = "A,W"  # SmartChargingCtrlr.RateUnit: "A", "W" or "A,W"
    line_voltage_v: float = 120.0  # the nominal voltage the station converts W with (K01.FR.50)
    stack_levels: int = 3
    periods: int = 24
    extra: dict[str, str] = field(default_factory=dict)


class _Link(ChargePoint):
    """The `ocpp` package's ChargePoint, answering with the station's handlers."""

    def __init__(self, station: Station201, ws: Any) -> None:
        super().__init__(station.spec.cp_id, ws, response_timeout=30)
        self.station = station

    @on("GetVariables")
    def on_get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        return call_result.GetVariables(get_variable_result=[self.station.get_variable(d) for d in get_variable_data])

    @on("SetVariables")
    def on_set_variables(self, set_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        return call_result.SetVariables(set_variable_result=[self.station.set_variable(d) for d in set_variable_data])

    @on("SetChargingProfile")
    def on_set_charging_profile(self, evse_id: int, charging_profile: dict[str, Any], **_: Any) -> Any:
        return call_result.SetChargingProfile(status=self.station.install(evse_id, charging_profile))

    @on("ClearChargingProfile")
    def on_clear_charging_profile(self, charging_profile_id: int | None = None, **_: Any) -> Any:
        return call_result.ClearChargingProfile(status=self.station.clear(charging_profile_id))

    @on("RequestStopTransaction")
    def on_request_stop(self, transaction_id: str, **_: Any) -> Any:
        port = next((p for p in self.station.ports.values() if p.tx_id == transaction_id), None)
        if port is not None:
            self.station.spawn(self.station.unplug(port.evse_id, reason="Remote"))
        return call_result.RequestStopTransaction(status="Accepted" if port else "Rejected")

    @on("Reset")
    def on_reset(self, type: str, **_: Any) -> Any:
        return call_result.Reset(status="Rejected")  # the simulator does not reboot

    @on("TriggerMessage")
    def on_trigger(self, requested_message: str, **_: Any) -> Any:
        if requested_message == "StatusNotification":
            for port in self.station.ports.values():
                self.station.spawn(self.station.send_status(port))
            return call_result.TriggerMessage(status="Accepted")
        return call_result.TriggerMessage(status="NotImplemented")


class Station201:
    """A simulated 2.0.1 station; `run()` keeps it connected, `plug_in`/`unplug` drive its cars."""

    def __init__(self, spec: StationSpec, url: str, clock: SimClock | None = None, interval_s: int = 60) -> None:
        self.spec = spec
        self.url = url.rstrip("/") + "/" + spec.cp_id
        self.clock = clock or SimClock(60.0)
        self.ports = {n: Port(n, spec.max_a) for n in range(1, spec.ports + 1)}
        self.variables: dict[str, dict[str, str]] = {
            "SmartChargingCtrlr": {
                "Available": "true",
                "RateUnit": spec.rate_unit,
                "ProfileStackLevel": str(spec.stack_levels),
                "PeriodsPerSchedule": str(spec.periods),
                "LimitChangeSignificance": "5",
            },
            "SampledDataCtrlr": {
                "TxUpdatedInterval": str(interval_s),
                "TxUpdatedMeasurands": "Energy.Active.Import.Register",
            },
        }
        self.profiles: dict[int, Installed] = {}
        self.link: _Link | None = None
        self.booted = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ connection

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self) -> None:
        """Connect, boot and keep the meter running until cancelled."""
        async with connect(self.url, subprotocols=[SUBPROTOCOL], open_timeout=10) as ws:  # type: ignore[list-item]
            self.link = _Link(self, ws)
            reader = asyncio.create_task(self.link.start())
            try:
                boot = await self.link.call(
                    call.BootNotification(
                        charging_station={"model": "Sim 2.0.1", "vendor_name": "evsite"}, reason="PowerUp"
                    )
                )
                if boot.status != "Accepted":
                    log.warning("%s: boot %s", self.spec.cp_id, boot.status)
                for port in self.ports.values():
                    await self.send_status(port)
                self.booted.set()
                await self._meter_loop()
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    async def _call(self, payload: Any) -> Any:
        assert self.link is not None, "not connected"
        return await self.link.call(payload)

    async def send_status(self, port: Port) -> None:
        status = "Occupied" if port.ev is not None else "Available"
        await self._call(
            call.StatusNotification(timestamp=stamp(), connector_status=status, evse_id=port.evse_id, connector_id=1)
        )

    # ------------------------------------------------------------------ device model

    def get_variable(self, item: dict[str, Any]) -> dict[str, Any]:
        value = self.variables.get(item["component"]["name"], {}).get(item["variable"]["name"])
        out: dict[str, Any] = {"component": item["component"], "variable": item["variable"]}
        if value is None:
            out["attribute_status"] = "UnknownVariable"
        else:
            out.update(attribute_status="Accepted", attribute_value=value)
        return out

    def set_variable(self, item: dict[str, Any]) -> dict[str, Any]:
        component, variable = item["component"]["name"], item["variable"]["name"]
        known = variable in self.variables.get(component, {}) and component != "SmartChargingCtrlr"
        if known:
            self.variables[component][variable] = item["attribute_value"]
        status = "Accepted" if known else "Rejected"
        return {"attribute_status": status, "component": item["component"], "variable": item["variable"]}

    # ------------------------------------------------------------------ smart charging

    def install(self, evse_id: int, p: dict[str, Any]) -> str:
        """Validate a profile as a K01-conforming station would; install it when valid."""
        purpose, kind = p["charging_profile_purpose"], p["charging_profile_kind"]
        schedule = p["charging_schedule"][0]
        units = self.variables["SmartChargingCtrlr"]["RateUnit"].split(",")
        live = self.ports[evse_id].tx_id if evse_id in self.ports else None
        if (
            schedule["charging_rate_unit"] not in units  # K01.FR.26
            or (purpose == "ChargingStationMaxProfile" and (evse_id != 0 or kind == "Relative"))  # K01.FR.38
            or (purpose == "TxProfile" and (evse_id == 0 or p.get("transaction_id") != live))  # K01.FR.09/16/33
            or (kind in ("Absolute", "Recurring") and "start_schedule" not in schedule)  # K01.FR.40
            or p["stack_level"] > int(self.variables["SmartChargingCtrlr"]["ProfileStackLevel"])
            or (evse_id != 0 and evse_id not in self.ports)
        ):
            return "Rejected"
        period = schedule["charging_schedule_period"][0]
        limit = float(period["limit"])
        if schedule["charging_rate_unit"] == "W":  # K01.FR.50
            limit /= self.spec.line_voltage_v * int(period.get("number_phases", 3))
        self.profiles[p["id"]] = Installed(
            evse_id, purpose, p["stack_level"], limit, p.get("transaction_id"), _time(schedule["start_schedule"]),
            _time(p["valid_to"]) if "valid_to" in p else None,
        )  # fmt: skip
        self.apply_pilots()
        return "Accepted"

    def clear(self, profile_id: int | None) -> str:
        if profile_id is not None and self.profiles.pop(profile_id, None) is None:
            return "Unknown"
        self.apply_pilots()
        return "Accepted"

    def limit_a(self, port: Port, now: datetime | None = None) -> float:
        """The composite limit of a port now: the lowest of the station max and its (Tx or TxDefault) profile."""
        now = now or datetime.now(UTC)
        valid = [i for i in self.profiles.values() if i.start <= now and (i.valid_to is None or now < i.valid_to)]

        def top(purpose: str, evses: tuple[int, ...], tx: str | None = None) -> float | None:
            found = [i for i in valid if i.purpose == purpose and i.evse_id in evses and i.transaction_id == tx]
            return max(found, key=lambda i: (i.stack, i.evse_id)).limit_a if found else None

        limits = [port.max_a, top("ChargingStationMaxProfile", (0,))]
        tx_limit = top("TxProfile", (port.evse_id,), port.tx_id) if port.tx_id else None
        limits.append(tx_limit if tx_limit is not None else top("TxDefaultProfile", (port.evse_id, 0)))
        return min(x for x in limits if x is not None)

    def apply_pilots(self) -> None:
        now = self.clock.now()
        for port in self.ports.values():
            if port.ev is not None:
                port.ev.set_pilot(pilot_amps(self.limit_a(port), port.max_a), now)

    # ------------------------------------------------------------------ cars and transactions

    async def plug_in(self, evse_id: int, ev: Ev, *, iso15118: bool = False, stay_s: float = 4 * 3600.0) -> None:
        port = self.ports[evse_id]
        port.ev, port.iso15118 = ev, iso15118
        port.tx_id, port.seq = f"{self.spec.cp_id}-{evse_id}-{random.getrandbits(32):08x}", 0
        port.departure = datetime.now(UTC) + timedelta(seconds=self.clock.real(stay_s))
        ev.plug_in(self.clock.now())
        await self.send_status(port)
        await self._event(port, "Started", "CablePluggedIn", "EVConnected", token=ev.id_tag)
        self.apply_pilots()
        if iso15118:
            wanted_wh = max(0.0, (ev.target_soc - ev.soc) * ev.capacity_kwh * 1000.0)
            needs = {
                "requested_energy_transfer": "AC_single_phase" if ev.phases == 1 else "AC_three_phase",
                "departure_time": stamp(port.departure),
                "ac_charging_parameters": {
                    "energy_amount": round(wanted_wh),
                    "ev_min_current": 6,
                    "ev_max_current": round(ev.obc_max_a),
                    "ev_max_voltage": 250,
                },
            }
            await self._call(call.NotifyEVChargingNeeds(evse_id=evse_id, charging_needs=needs))

    async def unplug(self, evse_id: int, reason: str = "EVDisconnected") -> None:
        port = self.ports[evse_id]
        if port.ev is None or port.tx_id is None:
            return
        port.ev.unplug(self.clock.now())
        await self._event(port, "Ended", "EVCommunicationLost", "Idle", stopped=reason)
        port.ev, port.tx_id = None, None
        await self.send_status(port)

    async def _event(
        self, port: Port, kind: str, trigger: str, state: str, *, token: str | None = None, stopped: str | None = None
    ) -> None:
        assert port.tx_id is not None and port.ev is not None
        info: dict[str, Any] = {"transaction_id": port.tx_id, "charging_state": state}
        if stopped is not None:
            info["stopped_reason"] = stopped
        payload: dict[str, Any] = {
            "event_type": kind,
            "timestamp": stamp(),
            "trigger_reason": trigger,
            "seq_no": port.seq,
            "transaction_info": info,
            "evse": {"id": port.evse_id, "connector_id": 1},
            "meter_value": [self._sample(port)],
        }
        if token is not None:
            payload["id_token"] = {"id_token": token, "type": "ISO14443"}
        port.seq += 1
        await self._call(call.TransactionEvent(**payload))

    def _sample(self, port: Port) -> dict[str, Any]:
        assert port.ev is not None
        amps = port.ev.current_a(self.clock.now())
        register = {"value": round(port.ev.energy_wh, 1), "measurand": "Energy.Active.Import.Register"}
        current = {"value": round(amps, 2), "measurand": "Current.Import", "phase": "L1"}
        sampled = [{**register, "unit_of_measure": {"unit": "Wh"}}, {**current, "unit_of_measure": {"unit": "A"}}]
        return {"timestamp": stamp(), "sampled_value": sampled}

    async def _meter_loop(self) -> None:
        for tick in itertools.count():
            await asyncio.sleep(1.0)
            self.apply_pilots()
            interval = max(1, int(self.variables["SampledDataCtrlr"]["TxUpdatedInterval"] or 60))
            if tick % max(1, round(self.clock.real(interval))) == 0:
                for port in self.ports.values():
                    if port.ev is not None and port.tx_id is not None:
                        state = "Charging" if port.ev.drawing else "SuspendedEV"
                        await self._event(port, "Updated", "MeterValuePeriodic", state)


async def run_fleet(
    url: str, specs: list[StationSpec], speed: float, duration: float | None, seed: int | None, iso15118_share: float
) -> None:
    """Run stations with cars arriving and leaving; a share of the cars send ISO 15118 charging needs."""
    rng = random.Random(seed)
    clock = SimClock(speed)
    stations = [Station201(spec, url, clock) for spec in specs]

    async def life(station: Station201) -> None:
        runner = asyncio.create_task(station.run())
        try:
            await asyncio.wait_for(station.booted.wait(), 30)
            while True:
                await clock.sleep(rng.uniform(600, 3 * 3600))
                for evse_id in station.ports:
                    ev = Ev.random(rng, f"SIM-{station.spec.cp_id}-{evse_id}")
                    stay = rng.uniform(2 * 3600, 9 * 3600)
                    await station.plug_in(evse_id, ev, iso15118=rng.random() < iso15118_share, stay_s=stay)
                await clock.sleep(rng.uniform(2 * 3600, 9 * 3600))
                for evse_id in station.ports:
                    await station.unplug(evse_id)
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner

    tasks = [asyncio.create_task(life(s)) for s in stations]
    try:
        await asyncio.wait(tasks, timeout=duration)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
