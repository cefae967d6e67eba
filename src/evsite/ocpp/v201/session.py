"""One connected OCPP 2.0.1 charging station, speaking to the same store, bus and load manager as 1.6.

The session extends the 1.6 `ChargePointSession` and keeps its contract with the server (the same
lease, lift and fail-safe machinery, the same events, the same plausibility gate); what differs is
the vocabulary:

- evsite's ports are numbered like 1.6 connectors; a port is the 2.0.1 EVSE with the same id (its
  connectorId inside the EVSE is only stored: one connector of an EVSE charges at a time).
- A 2.0.1 station names its transactions with strings of its own. The first TransactionEvent of
  one creates our transaction (`OcppStore.start_transaction`, idempotent) and links the two ids
  before the station gets its answer, so billing, the API and the load manager keep integer ids.
- An ended transaction is never resurrected: an event for it that arrives later (a queued Updated
  replayed after the Ended) stores its meter values and changes nothing else.
- Events flagged `offline` are history: stored, but their samples are not handed to the load manager
  as if they described the draw now.
- Meter values are converted to the 1.6 shape (value × 10^multiplier as text) and pass the same
  plausibility gate.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from evsite.ocpp.connection import RpcConnection
from evsite.ocpp.errors import CallErrorReceived, CallTimeout, OcppError
from evsite.ocpp.profiles import UNKNOWN_CHARGER_MAX_A, SmartChargingCaps, pilot_limit_a
from evsite.ocpp.v16.session import ENERGY, ChargePointSession, parse_time
from evsite.ocpp.v201 import profiles as p201
from evsite.runtime.events import ConnectorStatus, EvChargingNeeds, SetpointResult, TransactionEvent, utcnow
from evsite.site.model import Control

log = logging.getLogger(__name__)

SUBPROTOCOL = "ocpp2.0.1"
SAMPLED_MEASURANDS = "Energy.Active.Import.Register,Current.Import,Power.Active.Import"
"""TxUpdatedMeasurands evsite asks for: billing needs the register, the load manager current per phase."""
CHARGING_STATE = {"Charging": "Charging", "EVConnected": "Preparing", "SuspendedEV": "SuspendedEV"}
CHARGING_STATE["SuspendedEVSE"] = "SuspendedEVSE"
"""2.0.1 chargingState → the 1.6 connector status the load manager knows (Idle: the StatusNotification says)."""
TX_ROW_CACHE = 32
"""Transactions per station whose rows stay in memory (a station runs at most a few at once)."""
TRIGGERS = {"DiagnosticsStatusNotification": "LogStatusNotification"}
"""1.6 TriggerMessage names the API may use → their 2.0.1 names (the others are the same)."""


def legacy_meter_values(meter_values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """2.0.1 MeterValueType list → the 1.6 shape the shared meter code reads (numbers become text).

    A multiplier so large that the value overflows becomes `inf`, which the plausibility gate flags.
    """
    out = []
    for entry in meter_values:
        sampled = []
        for sv in entry["sampledValue"]:
            unit = sv.get("unitOfMeasure", {})
            try:
                value = float(sv["value"]) * 10.0 ** int(unit.get("multiplier", 0))
            except OverflowError:
                value = math.inf
            row = {
                # integral values as integers: stored exactly and on the store's fast path
                "value": str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value),
                "format": "Raw",
                "measurand": sv.get("measurand", ENERGY),
                "context": sv.get("context", "Sample.Periodic"),
                "location": sv.get("location", "Outlet"),
            }
            if "phase" in sv:
                row["phase"] = sv["phase"]
            if "unit" in unit:
                row["unit"] = unit["unit"]
            sampled.append(row)
        out.append({"timestamp": entry["timestamp"], "sampledValue": sampled})
    return out


def id_token_info(info16: dict[str, Any]) -> dict[str, Any]:
    """1.6 IdTagInfo (from `CentralSystem.id_tag_info`) → 2.0.1 IdTokenInfo (its statuses are a superset)."""
    out: dict[str, Any] = {"status": info16["status"]}
    if "expiryDate" in info16:
        out["cacheExpiryDateTime"] = info16["expiryDate"]
    if "parentIdTag" in info16:
        out["groupIdToken"] = {"idToken": info16["parentIdTag"], "type": "Central"}
    return out


class StationSession(ChargePointSession):
    """State and behaviour of one OCPP 2.0.1 charging station connection."""

    def __init__(self, cs: Any, cp_id: str, rpc_factory: Callable[[ChargePointSession], RpcConnection]) -> None:
        # `cs` is the CentralSystem (typed through the 1.6 session; this package does not import the server).
        super().__init__(cs, cp_id, rpc_factory)
        # Until GetVariables says otherwise: amperes, one period, one stack level (no lift).
        self.caps = SmartChargingCaps(max_stack_level=0, rate_units=("A", "W"), max_periods=1)
        self.smart_charging: dict[str, str | None] = {}
        self.tx_keys: dict[int, str] = {}  # our transaction id → the station's transactionId (open ones)
        self.installed: dict[int, tuple[int, str, int]] = {}  # profile id → (stack level, purpose, EVSE)
        self.iso15118_evses: set[int] = set()
        self._last_wh: dict[int, float] = {}  # our transaction id → last plausible register (Wh)
        self._tx_rows: dict[str, dict[str, Any]] = {}  # station transactionId → our row (recent ones)
        self._remote_start_ids = 0
        self._triggered: set[str] = set()  # messages we asked for with TriggerMessage while Pending

    async def handle(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """B02.FR.09/B03.FR.07: until Accepted a station sends only BootNotification (and, while Pending,
        what the CSMS asked for: NotifyReport, or a message it triggered); anything else is a SecurityError."""
        if self.registration != "Accepted" and action != "BootNotification":
            asked = self.registration == "Pending" and (action == "NotifyReport" or action in self._triggered)
            if not asked:
                raise OcppError("SecurityError", f"{action} before the station was Accepted (B02.FR.09)")
            self._triggered.discard(action)
        return await super().handle(action, payload)

    @property
    def live_transactions(self) -> dict[int, str]:
        """EVSE id → the station's transactionId running there."""
        return {evse: self.tx_keys[tx] for evse, tx in self.active_tx.items() if tx in self.tx_keys}

    async def restore(self) -> None:
        self.tx_keys = await self.cs.store.station_transaction_ids(self.cp_id)
        await super().restore()

    # ------------------------------------------------------------------ station → us

    async def on_boot_notification(self, p: dict[str, Any]) -> dict[str, Any]:
        station, modem = p["chargingStation"], p["chargingStation"].get("modem", {})
        legacy = {
            "chargePointVendor": station["vendorName"],
            "chargePointModel": station["model"],
            "chargePointSerialNumber": station.get("serialNumber"),
            "firmwareVersion": station.get("firmwareVersion"),
            "iccid": modem.get("iccid"),
            "imsi": modem.get("imsi"),
        }
        result = await super().on_boot_notification({**p, **legacy, "ocppVersion": "2.0.1"})
        if result["status"] == "Pending":
            # B02: while Pending the CSMS may provision the station; read what smart charging needs now.
            self.rpc.after_reply(lambda: self.spawn(self.read_smart_charging(), "provision"))
        return result

    async def on_status_notification(self, p: dict[str, Any]) -> dict[str, Any]:
        evse_id, status = p["evseId"], p["connectorStatus"]
        self._check_connector(evse_id, zero=True)
        at, stamp = utcnow(), parse_time(p["timestamp"])
        legacy = {
            "connectorId": evse_id,
            "status": status,
            "errorCode": "NoError",
            "info": f"connector {p['connectorId']}",
        }
        await self.cs.store.record_status(self.cp_id, legacy, stamp, at)
        self.connector_status[evse_id] = status
        self.cs.bus.publish(ConnectorStatus(self.cp_id, evse_id, status, "NoError", stamp))
        return {}

    async def on_authorize(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"idTokenInfo": id_token_info(self.cs.id_tag_info(p["idToken"]["idToken"]))}

    async def on_meter_values(self, p: dict[str, Any]) -> dict[str, Any]:
        evse_id = p["evseId"]
        self._check_connector(evse_id, zero=True)
        tx_id = self.active_tx.get(evse_id)
        rows, flags = self._meter_rows(evse_id, tx_id, legacy_meter_values(p["meterValue"]))
        await self.cs.store.add_meter_values(rows, self._flag_rows(flags, evse_id, tx_id))
        for sample in self._samples(evse_id, tx_id, rows):
            self.cs.bus.publish(sample)
        return {}

    async def on_transaction_event(self, p: dict[str, Any]) -> dict[str, Any]:
        info, kind = p["transactionInfo"], p["eventType"]
        key, stamp, offline = info["transactionId"], parse_time(p["timestamp"]), bool(p.get("offline", False))
        row = self._tx_rows.get(key) or await self.cs.store.station_transaction(self.cp_id, key)
        evse_id = p["evse"]["id"] if "evse" in p else (row["connector_id"] if row else self._only_evse(key))
        self._check_connector(evse_id, zero=False)
        token = p["idToken"]["idToken"] if "idToken" in p else None
        answer: dict[str, Any] = {}
        if token is not None:
            answer["idTokenInfo"] = id_token_info(self.cs.id_tag_info(token, self.cp_id, evse_id))
        meter = legacy_meter_values(p.get("meterValue", []))
        if row is None:
            start_wh = self._first_register(meter)
            status = answer.get("idTokenInfo", {}).get("status", "Accepted")
            tx_id = await self.cs.store.start_transaction(
                self.cp_id, evse_id, token or "", status, round(start_wh or 0), stamp, p.get("reservationId")
            )
            await self.cs.store.link_station_transaction(self.cp_id, key, tx_id)
            self.cs.note_transaction(tx_id, self.cp_id)
            ended, start_time, meter_start = False, stamp, float(round(start_wh or 0))
            row = {
                "id": tx_id,
                "connector_id": evse_id,
                "start_time": stamp,
                "meter_start": meter_start,
                "stop_time": None,
            }
        else:
            tx_id, ended = int(row["id"]), row["stop_time"] is not None
            evse_id, start_time, meter_start = row["connector_id"], row["start_time"], float(row["meter_start"])
        rows, flags = self._meter_rows(evse_id, tx_id, meter)
        for r in rows if not ended else ():
            if r["measurand"] == ENERGY and r["value_num"] is not None and not r["phase"] and r["location"] == "Outlet":
                self._last_wh[tx_id] = r["value_num"]
        meter_stop = round(self._last_wh.get(tx_id, meter_start))
        self._remember(key, row)
        if kind == "Ended" and not ended:
            self._last_wh.pop(tx_id, None)
            row["stop_time"] = stamp
            reason = info.get("stoppedReason", "Local")
            stopped = await self.cs.store.stop_transaction(self.cp_id, tx_id, meter_stop, stamp, reason, token, rows)
            if stopped is not None:
                flags.extend(self._check_session(stopped, meter_stop, stamp))
            await self._flag(flags, evse_id, tx_id)
        else:
            await self.cs.store.add_meter_values(rows, self._flag_rows(flags, evse_id, tx_id))
        if ended:
            log.info("%s: %s event for ended transaction %s: stored, not resumed", self.cp_id, kind, key)
            return answer
        if kind == "Ended":
            self._end(evse_id, tx_id, token, float(meter_stop), stamp, info.get("stoppedReason", "Local"))
            return answer
        if self.active_tx.get(evse_id) != tx_id:
            self.active_tx[evse_id] = tx_id
            self.tx_keys[tx_id] = key
            self.cs.bus.publish(TransactionEvent(self.cp_id, evse_id, tx_id, "started", token, meter_start, start_time))
        if token is not None:
            self.active_tags[evse_id] = token
        if not offline:
            for sample in self._samples(evse_id, tx_id, rows):
                self.cs.bus.publish(sample)
            state = CHARGING_STATE.get(info.get("chargingState", ""))
            if state is not None and self.connector_status.get(evse_id) != state:
                self.connector_status[evse_id] = state
                self.cs.bus.publish(ConnectorStatus(self.cp_id, evse_id, state, "NoError", stamp))
        return answer

    def _remember(self, key: str, row: dict[str, Any]) -> None:
        """Keep the rows of recent transactions, so an event does not read the store (bounded)."""
        self._tx_rows.pop(key, None)
        self._tx_rows[key] = row
        while len(self._tx_rows) > TX_ROW_CACHE:
            del self._tx_rows[next(iter(self._tx_rows))]

    def _end(self, evse_id: int, tx_id: int, token: str | None, meter_wh: float, at: datetime, reason: str) -> None:
        if self.active_tx.get(evse_id) == tx_id:
            del self.active_tx[evse_id]
            self.active_tags.pop(evse_id, None)
            self.iso15118_evses.discard(evse_id)
        self.tx_keys.pop(tx_id, None)
        self.cs.bus.publish(TransactionEvent(self.cp_id, evse_id, tx_id, "stopped", token, meter_wh, at, reason=reason))

    def _only_evse(self, key: str) -> int:
        """The EVSE of a transaction whose first event names none: only when the station has one EVSE."""
        known = [c.id for c in self.evse.connectors] if self.evse else []
        if len(known) == 1:
            return known[0]
        raise OcppError("OccurrenceConstraintViolation", f"the first event of transaction {key} must name its evse")

    @staticmethod
    def _first_register(meter: list[dict[str, Any]]) -> float | None:
        for entry in meter:
            for sv in entry["sampledValue"]:
                if sv["measurand"] == ENERGY and "phase" not in sv:
                    with contextlib.suppress(ValueError):
                        value = float(sv["value"]) * (1000.0 if sv.get("unit") == "kWh" else 1.0)
                        if math.isfinite(value) and value >= 0:
                            return value
        return None

    async def on_notify_ev_charging_needs(self, p: dict[str, Any]) -> dict[str, Any]:
        """K15: the car's needs become its session's (unless an operator's), answered with a TxProfile."""
        evse_id = p["evseId"]
        self._check_connector(evse_id, zero=False)
        if evse_id not in self.live_transactions:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "NoTransaction"}}
        needs = p["chargingNeeds"]
        params = needs.get("acChargingParameters") or needs.get("dcChargingParameters") or {}
        departure = parse_time(needs["departureTime"]) if "departureTime" in needs else None
        energy = float(params["energyAmount"]) if "energyAmount" in params else None
        max_a = float(params["evMaxCurrent"]) if "acChargingParameters" in needs else None
        self.iso15118_evses.add(evse_id)
        self.cs.bus.publish(EvChargingNeeds(self.cp_id, evse_id, departure, energy, max_a))
        self.rpc.after_reply(lambda: self.spawn(self._answer_needs(evse_id), "iso15118-profile"))
        return {"status": "Accepted"}

    async def _answer_needs(self, evse_id: int) -> None:
        """K15.FR.08: a TxProfile within 60 s: the load manager's setpoint, or the fail-safe share until it has one."""
        limit = self.setpoints.get(evse_id)
        if limit is None:
            ports = len(self.evse.connectors) if self.evse else 1
            limit = self.cs.failsafe_limit(self.cp_id) / max(1, ports)
        await self._apply_setpoint(evse_id, limit)

    async def on_notify_ev_charging_schedule(self, p: dict[str, Any]) -> dict[str, Any]:
        """K15.FR.11–13: the car's planned schedule must stay within our limit; if not, it renegotiates."""
        evse_id = p["evseId"]
        ours = self.setpoints.get(evse_id)
        schedule = p["chargingSchedule"]
        if ours is not None:
            most = p201.rate(
                ours, SmartChargingCaps(rate_units=(schedule["chargingRateUnit"],)), self.cs.site, self.evse
            )
            above = [x["limit"] for x in schedule["chargingSchedulePeriod"] if x["limit"] > most.limit + 1e-9]
            if above:
                log.warning("%s: EVSE %d car plans %s %s, above our %s: rejected", self.cp_id, evse_id, max(above),
                            most.unit, most.limit)  # fmt: skip
                return {"status": "Rejected"}
        return {"status": "Accepted"}

    # The handler of `NotifyEVChargingNeeds` is looked up as `on_notify_e_v_…` (one underscore per capital).
    on_notify_e_v_charging_needs = on_notify_ev_charging_needs
    on_notify_e_v_charging_schedule = on_notify_ev_charging_schedule

    async def on_notify_report(self, p: dict[str, Any]) -> dict[str, Any]:
        """Store the device model a station reports (GetBaseReport) as `Component[.instance]/Variable` keys."""
        items = []
        for report in p.get("reportData", []):
            component, variable = report["component"], report["variable"]
            key = _key(component, variable)
            for attribute in report["variableAttribute"]:
                if attribute.get("type", "Actual") == "Actual":
                    readonly = attribute.get("mutability") == "ReadOnly"
                    items.append({"key": key, "value": attribute.get("value"), "readonly": readonly})
        if items:
            await self.cs.store.save_configuration(self.cp_id, items, utcnow())
        return {}

    async def on_notify_event(self, p: dict[str, Any]) -> dict[str, Any]:
        for event in p["eventData"]:
            log.info("%s: event %s %s = %s", self.cp_id, event["trigger"], _key(event["component"], event["variable"]),
                     event["actualValue"])  # fmt: skip
        return {}

    async def on_security_event_notification(self, p: dict[str, Any]) -> dict[str, Any]:
        log.warning("%s: security event %s %s", self.cp_id, p["type"], p.get("techInfo", ""))
        return {}

    async def on_log_status_notification(self, p: dict[str, Any]) -> dict[str, Any]:
        await self.cs.store.record_firmware(self.cp_id, "diagnostics", p["status"])
        return {}

    async def on_notify_charging_limit(self, p: dict[str, Any]) -> dict[str, Any]:
        log.warning("%s: external charging limit from %s (not yet a site limit)", self.cp_id, p["chargingLimit"])
        return {}

    async def on_cleared_charging_limit(self, p: dict[str, Any]) -> dict[str, Any]:
        return {}

    async def on_report_charging_profiles(self, p: dict[str, Any]) -> dict[str, Any]:
        return {}

    # ------------------------------------------------------------------ smart charging

    async def read_smart_charging(self) -> dict[str, str | None]:
        """GetVariables of SmartChargingCtrlr (K01: read before the first profile); {} when it fails."""
        data = [
            {"component": {"name": "SmartChargingCtrlr"}, "variable": {"name": v}}
            for v in p201.SMART_CHARGING_VARIABLES
        ]
        try:
            result = await self.call("GetVariables", {"getVariableData": data})
        except (CallErrorReceived, CallTimeout, OcppError) as exc:
            log.warning("%s: GetVariables SmartChargingCtrlr failed (%s); assuming the least", self.cp_id, exc)
            return {}
        values = {
            r["variable"]["name"]: r.get("attributeValue")
            for r in result["getVariableResult"]
            if r["attributeStatus"] == "Accepted" and r["component"]["name"] == "SmartChargingCtrlr"
        }
        self.smart_charging = values
        items = [{"key": f"SmartChargingCtrlr/{k}", "value": v, "readonly": True} for k, v in values.items()]
        if items:
            await self.cs.store.save_configuration(self.cp_id, items, utcnow())
        return values

    async def setup_smart_charging(self) -> None:
        """Read SmartChargingCtrlr, ask for meter values, then install the fail-safe and the lease."""
        self._setup_started = True
        values = await self.read_smart_charging()
        await self.configure_metering({})
        self.caps = p201.caps_from_variables(values)
        if self.caps.supported:
            await self.install_failsafe()
            await self.renew()
        self.setup_done.set()

    def _failsafe_cap_profile(self, limit_a: float) -> dict[str, Any]:
        """ChargingStationMaxProfile (kept as "ChargePointMaxProfile" in `failsafe_kind`: shared lease logic)."""
        return p201.profile(
            p201.FAILSAFE_PROFILE_ID, 0, "ChargingStationMaxProfile", self._rate(pilot_limit_a(limit_a)), start=utcnow()
        )

    def _failsafe_default_profile(self, limit_a: float, connectors: int) -> dict[str, Any]:
        share = pilot_limit_a(limit_a / max(1, connectors))
        return p201.profile(
            p201.FAILSAFE_TX_DEFAULT_PROFILE_ID, 0, "TxDefaultProfile", self._rate(share), start=utcnow()
        )

    async def configure_metering(self, config: dict[str, str | None]) -> None:
        """Ask for the samples the load manager and billing need during transactions, at the site's interval."""
        control = self.cs.site.control if self.cs.site is not None else Control()
        wanted = {
            "TxUpdatedInterval": str(control.meter_value_interval_s),
            "TxUpdatedMeasurands": SAMPLED_MEASURANDS,
            # the register at start and end: without it a session's energy is only known from the updates
            "TxStartedMeasurands": ENERGY,
            "TxEndedMeasurands": ENERGY,
        }
        for name, value in wanted.items():
            try:
                status = await self.set_variable("SampledDataCtrlr", name, value)
            except (CallErrorReceived, CallTimeout, OcppError) as exc:
                status = f"failed ({exc})"
            if status not in ("Accepted", "RebootRequired"):
                log.warning("%s: SetVariables SampledDataCtrlr/%s=%s: %s", self.cp_id, name, value, status)

    def _rate(self, limit_a: float) -> p201.Rate:
        return p201.rate(limit_a, self.caps, self.cs.site, self.evse)

    async def send_profile(self, connector_id: int, profile: dict[str, Any], limit_a: float) -> str:
        """SetChargingProfile after the K01 guard; record it and the answer (NotSent when the guard refused)."""
        try:
            p201.check(
                connector_id, profile, self.caps, self.live_transactions, self.installed,
                phase_switching=(self.smart_charging.get("ACPhaseSwitchingSupported") or "").lower() == "true",
                iso15118=connector_id in self.iso15118_evses,
            )  # fmt: skip
        except p201.ProfileRuleError as exc:
            log.error("%s: profile %s for EVSE %d not sent: %s", self.cp_id, profile["id"], connector_id, exc)
            status = "NotSent"
        else:
            try:
                result = await self.set_charging_profile(connector_id, profile)
                status = str(result["status"])
            except CallTimeout:
                status = "Timeout"
            except OcppError as exc:
                status = "NotSupported" if exc.code in ("NotImplemented", "NotSupported") else "Error"
            if status == "Accepted":
                self.installed[profile["id"]] = (profile["stackLevel"], profile["chargingProfilePurpose"], connector_id)
        await self.cs.store.record_profile(self.cp_id, connector_id, profile, limit_a, status)
        return status

    async def set_charging_profile(self, connector_id: int, profile: dict[str, Any]) -> dict[str, Any]:
        return await self.call("SetChargingProfile", {"evseId": connector_id, "chargingProfile": profile})

    async def renew_lift(self) -> bool:
        """(Re)install the leased ChargingStationMaxProfile (stack 1) that lifts the fail-safe cap."""
        if self.caps.max_stack_level < 1:
            return False
        max_a = self.evse.max_current_a if self.evse else UNKNOWN_CHARGER_MAX_A
        lease = self.cs.settings.lift_lease_s
        now = utcnow()
        lift = p201.profile(
            p201.LIFT_PROFILE_ID, 1, "ChargingStationMaxProfile", self._rate(max_a), start=now,
            valid_to=now + timedelta(seconds=lease),
        )  # fmt: skip
        sent_at = time.monotonic()
        accepted = await self.send_profile(0, lift, max_a) == "Accepted"
        if accepted:
            self.lift_until = sent_at + lease
        return accepted

    async def _apply_setpoint(self, connector_id: int, limit_a: float) -> bool:
        """TxProfile with the live transactionId, else (or when refused) TxDefaultProfile on the EVSE."""
        limit = pilot_limit_a(limit_a)
        key = self.live_transactions.get(connector_id)
        now = utcnow()
        start = now - timedelta(seconds=60)  # a station clock slightly behind applies it at once
        statuses, accepted = [], False
        for use_tx in [True, False] if key is not None else [False]:
            if use_tx:
                profile = p201.profile(
                    p201.TX_PROFILE_BASE + connector_id, self.caps.max_stack_level, "TxProfile", self._rate(limit),
                    start=start, transaction_id=key, valid_to=self._setpoint_valid_to(now, True),
                )  # fmt: skip
            else:
                profile = p201.profile(
                    p201.TX_DEFAULT_PROFILE_BASE + connector_id, self.caps.max_stack_level, "TxDefaultProfile",
                    self._rate(limit), start=start, valid_to=self._setpoint_valid_to(now, False),
                )  # fmt: skip
            status = await self.send_profile(connector_id, profile, limit)
            statuses.append(f"{profile['chargingProfilePurpose']}: {status}")
            if status == "Accepted":
                accepted = True
                break
            if use_tx and p201.TX_PROFILE_BASE + connector_id in self.installed:
                # An older TxProfile would override the TxDefault we try next: remove it first.
                with contextlib.suppress(OcppError, CallTimeout):
                    await self.clear_charging_profile(profile_id=p201.TX_PROFILE_BASE + connector_id)
        self.cs.bus.publish(SetpointResult(self.cp_id, connector_id, limit, accepted, "; ".join(statuses)))
        return accepted

    async def clear_charging_profile(
        self,
        profile_id: int | None = None,
        connector_id: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
    ) -> str:
        payload: dict[str, Any] = {}
        if profile_id is not None:
            payload["chargingProfileId"] = profile_id
        criteria = {
            k: v
            for k, v in (("evseId", connector_id), ("chargingProfilePurpose", purpose), ("stackLevel", stack_level))
            if v is not None
        }
        if criteria:
            payload["chargingProfileCriteria"] = criteria
        status = str((await self.call("ClearChargingProfile", payload))["status"])
        if status == "Accepted":
            for pid, (stack, kind, evse) in list(self.installed.items()):
                if (
                    (profile_id is None or pid == profile_id)
                    and (connector_id is None or evse == connector_id)
                    and (purpose is None or kind == purpose)
                    and (stack_level is None or stack == stack_level)
                ):
                    del self.installed[pid]
        return status

    async def get_composite_schedule(
        self, connector_id: int, duration_s: int, unit: str | None = None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"evseId": connector_id, "duration": duration_s}
        if unit is not None:
            payload["chargingRateUnit"] = unit
        return await self.call("GetCompositeSchedule", payload)

    # ------------------------------------------------------------------ operator actions: us → station

    async def get_variables(self, wanted: list[tuple[str, str]]) -> dict[str, str | None]:
        """`(component, variable)` pairs → `Component/Variable` → value (None where the station refused)."""
        data = [{"component": {"name": c}, "variable": {"name": v}} for c, v in wanted]
        result = await self.call("GetVariables", {"getVariableData": data})
        return {
            _key(r["component"], r["variable"]): r.get("attributeValue") if r["attributeStatus"] == "Accepted" else None
            for r in result["getVariableResult"]
        }

    async def set_variable(self, component: str, variable: str, value: str) -> str:
        data = {"component": {"name": component}, "variable": {"name": variable}, "attributeValue": value}
        result = await self.call("SetVariables", {"setVariableData": [data]})
        status = str(result["setVariableResult"][0]["attributeStatus"])
        if status in ("Accepted", "RebootRequired"):
            await self.cs.store.save_configuration(
                self.cp_id, [{"key": f"{component}/{variable}", "value": value}], utcnow()
            )
        return status

    async def get_configuration(self, keys: list[str] | None = None) -> dict[str, str | None]:
        """The device model evsite stored (GetVariables, NotifyReport), refreshed with GetVariables for `keys`
        given as `Component/Variable`."""
        if keys:
            await self.get_variables([_split(k) for k in keys])
        return await self.cs.store.configuration(self.cp_id)

    async def change_configuration(self, key: str, value: str) -> str:
        """SetVariables for a `Component/Variable` key (the API's configuration vocabulary)."""
        return await self.set_variable(*_split(key), value)

    async def remote_start(
        self, id_tag: str, connector_id: int | None = None, charging_profile: dict[str, Any] | None = None
    ) -> str:
        self._remote_start_ids += 1
        payload: dict[str, Any] = {
            "idToken": {"idToken": id_tag, "type": "Central"},
            "remoteStartId": self._remote_start_ids,
        }
        if connector_id is not None:
            payload["evseId"] = connector_id
        if charging_profile is not None:
            payload["chargingProfile"] = charging_profile
        return str((await self.call("RequestStartTransaction", payload))["status"])

    async def remote_stop(self, transaction_id: int) -> str:
        key = self.tx_keys.get(transaction_id)
        if key is None:
            return "Rejected"  # not a running transaction of this station
        return str((await self.call("RequestStopTransaction", {"transactionId": key}))["status"])

    async def unlock_connector(self, connector_id: int) -> str:
        return str((await self.call("UnlockConnector", {"evseId": connector_id, "connectorId": 1}))["status"])

    async def reset(self, kind: str = "Soft") -> str:
        """1.6 Hard → 2.0.1 Immediate; Soft → OnIdle (after running transactions end)."""
        payload = {"type": "Immediate" if kind == "Hard" else "OnIdle"}
        return str((await self.call("Reset", payload))["status"])

    async def change_availability(self, connector_id: int, kind: str) -> str:
        payload: dict[str, Any] = {"operationalStatus": kind}
        if connector_id > 0:
            payload["evse"] = {"id": connector_id}
        return str((await self.call("ChangeAvailability", payload))["status"])

    async def clear_cache(self) -> str:
        return str((await self.call("ClearCache", {}))["status"])

    async def trigger_message(self, requested: str, connector_id: int | None = None) -> str:
        payload: dict[str, Any] = {"requestedMessage": TRIGGERS.get(requested, requested)}
        if connector_id is not None and connector_id > 0:
            payload["evse"] = {"id": connector_id}
        if self.registration == "Pending":
            self._triggered.add(payload["requestedMessage"])
        return str((await self.call("TriggerMessage", payload))["status"])

    async def get_base_report(self, request_id: int, report_base: str = "FullInventory") -> str:
        """Ask for the device model; the station answers with NotifyReport messages (stored)."""
        result = await self.call("GetBaseReport", {"requestId": request_id, "reportBase": report_base})
        return str(result["status"])


def _key(component: dict[str, Any], variable: dict[str, Any]) -> str:
    """`Component[.instance][@evse]/Variable[.instance]`: one configuration key per device-model variable."""
    name = component["name"] + (f".{component['instance']}" if "instance" in component else "")
    if "evse" in component:
        name += f"@{component['evse']['id']}"
    return f"{name}/{variable['name']}" + (f".{variable['instance']}" if "instance" in variable else "")


def _split(key: str) -> tuple[str, str]:
    component, sep, variable = key.partition("/")
    if not sep or not component or not variable:
        raise OcppError("PropertyConstraintViolation", f"expected Component/Variable, got {key!r}")
    return component, variable
