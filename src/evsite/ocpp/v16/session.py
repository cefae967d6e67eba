"""One connected OCPP 1.6 charge point: the handlers for what it sends, the calls we make to it.

Handlers take and return plain camelCase payload dicts, already validated against the official
schemas by the connection; each is a method named after its action in snake case. Anything a
charger reports about a transaction is committed to the store before the handler returns, and
so before the charger sees its CallResult.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from evsite.ocpp import plausibility, profiles
from evsite.ocpp.connection import RpcConnection
from evsite.ocpp.errors import CallErrorReceived, CallTimeout, NotConnected, OcppError
from evsite.runtime.events import ConnectorStatus, MeterSample, SetpointResult, TransactionEvent, utcnow
from evsite.site.model import Control

if TYPE_CHECKING:
    from evsite.ocpp.server import CentralSystem

log = logging.getLogger(__name__)

ENERGY = "Energy.Active.Import.Register"
SAMPLED_MEASURANDS = (ENERGY, "Current.Import", "Power.Active.Import", "Current.Offered")
"""What evsite asks chargers to sample: billing needs the register, the load manager current per phase."""
MAX_UNKNOWN_CONNECTORS = 8
"""Connectors a charger outside the site model may use (the site format allows connector ids 1–8 too)."""


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """An RFC 3339 timestamp (already checked by the schema) as an aware UTC datetime."""
    try:
        value = datetime.fromisoformat(text.upper())
    except ValueError:
        raise OcppError("PropertyConstraintViolation", f"not an RFC 3339 date-time: {text!r}") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@cache
def _handler_name(action: str) -> str:
    """`MeterValues` → `on_meter_values`."""
    return "on_" + "".join("_" + c.lower() if c.isupper() else c for c in action).lstrip("_")


class ChargePointSession:
    """State and behaviour of one charger connection (OCPP 1.6J)."""

    def __init__(self, cs: CentralSystem, cp_id: str, rpc_factory: Callable[[ChargePointSession], RpcConnection]):
        self.cs = cs
        self.cp_id = cp_id
        self.evse = cs.evse_by_id.get(cp_id)
        self.bounds = plausibility.Bounds.for_evse(cs.site, self.evse)
        self.registration = "Pending"
        self.caps = profiles.SmartChargingCaps()
        self.active_tx: dict[int, int] = {}
        self.active_tags: dict[int, str] = {}
        self.connector_status: dict[int, str] = {}
        self.failsafe_limit_a: float | None = None
        self.failsafe_kind: str | None = None  # ChargePointMaxProfile, TxDefaultProfile, or None (unprotected)
        self.setpoints: dict[int, float] = {}
        self.lift_until = 0.0  # time.monotonic() when the installed lift expires
        self._lift_pending = False  # a lift is on its way (sent with a setpoint, not yet answered)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.setup_done = asyncio.Event()
        self._setup_started = False
        self.rpc = rpc_factory(self)

    # ------------------------------------------------------------------ plumbing

    async def handle(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        method: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]] | None = getattr(
            self, _handler_name(action), None
        )
        if method is None:
            raise OcppError("NotSupported", f"{action} is not supported")
        return await method(payload)

    def spawn(self, coro: Awaitable[Any], name: str) -> None:
        """Run a background job tied to this session (cancelled when it closes)."""

        async def guarded() -> None:
            try:
                await coro
            except (NotConnected, asyncio.CancelledError):
                pass
            except Exception:
                log.exception("%s: %s failed", self.cp_id, name)

        task = asyncio.create_task(guarded(), name=f"{self.cp_id}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def restore(self) -> None:
        """Pick up state from the store when a charger reconnects without a new BootNotification."""
        self.active_tx = await self.cs.store.open_transactions(self.cp_id)
        self.active_tags = await self.cs.store.open_transaction_tags(self.cp_id)
        row = await self.cs.store.charger(self.cp_id)
        if row is not None and row["last_boot_at"] is not None:
            self.registration = row["registration_status"]
        if self.registration == "Accepted":
            self.spawn(self._setup_unless_booting(), "setup")

    async def _setup_unless_booting(self) -> None:
        """A reconnecting charger usually skips BootNotification (1.6J §5.4): set it up anyway."""
        await asyncio.sleep(self.cs.settings.reconnect_setup_delay_s)
        if not self._setup_started:
            await self.setup_smart_charging()

    # ------------------------------------------------------------------ Core: charger → us

    async def on_boot_notification(self, p: dict[str, Any]) -> dict[str, Any]:
        now = utcnow()
        row = await self.cs.store.charger(self.cp_id)
        if self.evse is not None or (row is not None and row["registration_status"] == "Accepted"):
            status = "Accepted"
        elif row is not None and row["last_boot_at"] is not None:
            status = row["registration_status"]  # registered before: the operator's decision stands
        elif self.cs.settings.accept_unknown:
            status = self.cs.settings.unknown_status
        else:
            status = "Rejected"
        await self.cs.store.record_boot(self.cp_id, p, status, now)
        self.registration = status
        self.cs.note_registration(self.cp_id, status)
        if status == "Accepted":
            self._setup_started = True
            self.rpc.after_reply(lambda: self.spawn(self.setup_smart_charging(), "setup"))
        interval = self.cs.settings.heartbeat_interval_s if status == "Accepted" else 60
        return {"status": status, "currentTime": iso(now), "interval": interval}

    async def on_heartbeat(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"currentTime": iso(utcnow())}

    async def on_authorize(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"idTagInfo": self.cs.id_tag_info(p["idTag"])}

    async def on_start_transaction(self, p: dict[str, Any]) -> dict[str, Any]:
        connector_id = p["connectorId"]
        self._check_connector(connector_id, zero=False)
        info = self.cs.id_tag_info(p["idTag"], self.cp_id, connector_id)
        started = parse_time(p["timestamp"])
        tx_id = await self.cs.store.start_transaction(
            self.cp_id, connector_id, p["idTag"], info["status"], p["meterStart"], started, p.get("reservationId")
        )
        self.cs.note_transaction(tx_id, self.cp_id)
        found = [self.cs.gate.timestamp(started, utcnow(), "start time")]
        if p["meterStart"] < 0:
            found.append(plausibility.Flag("negative", f"meterStart {p['meterStart']} Wh is negative", ENERGY))
        await self._flag([(f, started) for f in found if f is not None], connector_id, tx_id)
        if self.active_tx.get(connector_id) != tx_id:
            self.active_tx[connector_id] = tx_id
            self.active_tags[connector_id] = p["idTag"]
            self.cs.bus.publish(
                TransactionEvent(
                    self.cp_id,
                    connector_id,
                    tx_id,
                    "started",
                    p["idTag"],
                    float(p["meterStart"]),
                    parse_time(p["timestamp"]),
                )
            )
        return {"transactionId": tx_id, "idTagInfo": info}

    async def on_stop_transaction(self, p: dict[str, Any]) -> dict[str, Any]:
        tx_id = p["transactionId"]
        await self._check_owner(tx_id)
        connector_id = next((c for c, t in self.active_tx.items() if t == tx_id), 0)
        rows, flags = self._meter_rows(connector_id, tx_id, p.get("transactionData", []))
        stop_time = parse_time(p["timestamp"])
        row = await self.cs.store.stop_transaction(
            self.cp_id, tx_id, p["meterStop"], stop_time, p.get("reason"), p.get("idTag"), rows
        )
        if row is None:
            log.warning("%s: StopTransaction for unknown transaction %s (stored its meter values)", self.cp_id, tx_id)
        else:
            connector_id = row["connector_id"]
            flags.extend(self._check_session(row, p["meterStop"], stop_time))
        await self._flag(flags, connector_id, tx_id)
        if self.active_tx.get(connector_id) == tx_id:
            del self.active_tx[connector_id]
            self.active_tags.pop(connector_id, None)
            self.cs.bus.publish(
                TransactionEvent(
                    self.cp_id,
                    connector_id,
                    tx_id,
                    "stopped",
                    p.get("idTag"),
                    float(p["meterStop"]),
                    stop_time,
                    reason=p.get("reason", "Local"),
                )
            )
        return {"idTagInfo": self.cs.id_tag_info(p["idTag"])} if "idTag" in p else {}

    async def on_meter_values(self, p: dict[str, Any]) -> dict[str, Any]:
        connector_id = p["connectorId"]
        self._check_connector(connector_id, zero=True)
        tx_id = p.get("transactionId")
        if tx_id is not None:
            await self._check_owner(tx_id)
        rows, flags = self._meter_rows(connector_id, tx_id, p["meterValue"])
        await self.cs.store.add_meter_values(rows, self._flag_rows(flags, connector_id, tx_id))
        for sample in self._samples(connector_id, tx_id, rows):
            self.cs.bus.publish(sample)
        return {}

    async def on_status_notification(self, p: dict[str, Any]) -> dict[str, Any]:
        self._check_connector(p["connectorId"], zero=True)
        at = utcnow()
        stamp = parse_time(p["timestamp"]) if "timestamp" in p else None
        await self.cs.store.record_status(self.cp_id, p, stamp, at)
        self.connector_status[p["connectorId"]] = p["status"]
        self.cs.bus.publish(ConnectorStatus(self.cp_id, p["connectorId"], p["status"], p["errorCode"], stamp or at))
        return {}

    async def on_data_transfer(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"status": "UnknownVendorId"}  # evsite defines no vendor extensions

    # ------------------------------------------------------------------ Firmware Management: charger → us

    async def on_firmware_status_notification(self, p: dict[str, Any]) -> dict[str, Any]:
        await self.cs.store.record_firmware(self.cp_id, "firmware", p["status"])
        return {}

    async def on_diagnostics_status_notification(self, p: dict[str, Any]) -> dict[str, Any]:
        await self.cs.store.record_firmware(self.cp_id, "diagnostics", p["status"])
        return {}

    # ------------------------------------------------------------------ meter values

    def _meter_rows(
        self, connector_id: int, tx_id: int | None, meter_values: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[tuple[plausibility.Flag, datetime]]]:
        """Rows to store (every value as received) and the flags of the implausible ones.

        `value_num` is the value in its base unit when it passed the gate, None otherwise; a row the
        gate refused carries `implausible`, so the load manager hears of it (see `_samples`).
        """
        rows = []
        flags: list[tuple[plausibility.Flag, datetime]] = []
        gate, now = self.cs.gate, utcnow()
        for entry in meter_values:
            stamp = parse_time(entry["timestamp"])
            if (late := gate.timestamp(stamp, now, "meter value time")) is not None:
                flags.append((late, stamp))
            for sv in entry["sampledValue"]:
                value = sv["value"]
                fmt = sv.get("format", "Raw")
                measurand = sv.get("measurand", ENERGY)
                location = sv.get("location", "Outlet")
                phase = sv.get("phase", "")
                unit = sv.get("unit", plausibility.DEFAULT_UNIT.get(measurand.split(".")[0], ""))
                number, flag = plausibility.check_value(measurand, unit, fmt, value, self.bounds)
                if flag is None and number is not None and measurand == ENERGY and location == "Outlet" and not phase:
                    flag = gate.register((self.cp_id, connector_id), number, stamp, self.bounds)
                if flag is not None:
                    flags.append((flag, stamp))
                    number = None
                rows.append(
                    {
                        "charger_id": self.cp_id,
                        "connector_id": connector_id,
                        "transaction_id": tx_id,
                        "timestamp": stamp,
                        "measurand": measurand,
                        "phase": phase,
                        "location": location,
                        "context": sv.get("context", "Sample.Periodic"),
                        "unit": sv.get("unit", "Wh" if measurand.startswith("Energy") else ""),
                        "format": fmt,
                        "value": value,
                        "value_num": number,
                        "implausible": flag is not None,
                    }
                )
        return rows, flags

    def _samples(self, connector_id: int, tx_id: int | None, rows: list[dict[str, Any]]) -> list[MeterSample]:
        """What the load manager hears: values in base units, and `implausible` where the gate refused one.

        A refused current or power makes the whole sample implausible (the port then counts at its
        conservative current); a refused register only drops the energy.
        """
        by_time: dict[datetime, dict[str, Any]] = {}
        for row in rows:
            measurand = row["measurand"]
            acc = by_time.setdefault(row["timestamp"], {"current_a": {}, "voltage_v": {}})
            number = row["value_num"]
            if number is None:
                if row["implausible"] and measurand in ("Current.Import", "Power.Active.Import"):
                    acc["implausible"] = True
                continue
            line = (row["phase"] or "L1")[:2]
            if measurand == ENERGY:
                acc["energy_wh"] = number
            elif measurand == "Power.Active.Import":
                acc["power_w"] = number
            elif measurand == "Current.Import":
                acc["current_a"][line] = number
            elif measurand == "Current.Offered":
                acc["offered_a"] = number
            elif measurand == "Voltage":
                acc["voltage_v"][line] = number
        return [
            MeterSample(self.cp_id, connector_id, at, transaction_id=tx_id, **values) for at, values in by_time.items()
        ]

    # ------------------------------------------------------------------ checks against the site and the sender

    def _check_connector(self, connector_id: int, *, zero: bool) -> None:
        """Refuse a connector id this charger does not have.

        OCPP 1.6 §3.5 numbers connectors from 1, 0 meaning the whole charge point (allowed in
        MeterValues and StatusNotification, not in StartTransaction: §6.45 connectorId > 0). None of
        these confirmations has a status to reject with, so the answer is OCPP-J 1.6 §4.2.3
        PropertyConstraintViolation ("syntactically correct but at least one field contains an invalid
        value"). A charger outside the site model may use up to MAX_UNKNOWN_CONNECTORS connectors.
        """
        if connector_id == 0 and zero:
            return
        known = {c.id for c in self.evse.connectors} if self.evse else range(1, MAX_UNKNOWN_CONNECTORS + 1)
        if connector_id not in known:
            self.cs.gate.note(self.cp_id, plausibility.Flag("connector", f"connector {connector_id} refused"))
            raise OcppError("PropertyConstraintViolation", f"connectorId {connector_id} does not exist on {self.cp_id}")

    async def _check_owner(self, tx_id: int) -> None:
        """Refuse a transaction id that another charger started (OCPP-J 1.6 §4.2.3, as above): its values
        must neither land on this charger's session nor on the other's."""
        if tx_id in self.active_tx.values():
            return
        owner = await self.cs.transaction_owner(tx_id)
        if owner is not None and owner != self.cp_id:
            self.cs.gate.note(self.cp_id, plausibility.Flag("foreign_transaction", f"transaction {tx_id} refused"))
            raise OcppError("PropertyConstraintViolation", f"transactionId {tx_id} was not started by {self.cp_id}")

    def _check_session(
        self, row: dict[str, Any], meter_stop: int, stop_time: datetime
    ) -> list[tuple[plausibility.Flag, datetime]]:
        """A finished session: times inside the clock window and in order, energy the circuit could deliver."""
        gate, now = self.cs.gate, utcnow()
        start, start_wh = row["start_time"], row["meter_start"]
        found = [gate.timestamp(stop_time, now, "stop time")]
        seconds = (stop_time - start).total_seconds()
        if seconds < 0:
            found.append(plausibility.Flag("timestamp", f"stops {-seconds:g} s before it started"))
        energy = meter_stop - start_wh
        if energy < 0:
            found.append(
                plausibility.Flag("rollback", f"meterStop {meter_stop} Wh is below meterStart {start_wh} Wh", ENERGY)
            )
        elif energy > (most := self.bounds.energy_wh(seconds)):
            detail = f"{energy} Wh in {seconds:g} s is more than the circuit can deliver ({most:.0f} Wh)"
            found.append(plausibility.Flag("energy_rate", detail, ENERGY, str(meter_stop)))
        return [(f, stop_time) for f in found if f is not None]

    def _flag_rows(
        self, flags: list[tuple[plausibility.Flag, datetime]], connector_id: int, tx_id: int | None
    ) -> list[dict[str, Any]]:
        """Count and log (rate-limited) flags; their rows for the store."""
        for flag, _ in flags:
            self.cs.gate.note(self.cp_id, flag)
        return [flag.row(self.cp_id, connector_id, tx_id, at) for flag, at in flags]

    async def _flag(
        self, flags: list[tuple[plausibility.Flag, datetime]], connector_id: int, tx_id: int | None
    ) -> None:
        """Count, log and store flags, before the charger gets its answer."""
        if flags:
            await self.cs.store.add_flags(self._flag_rows(flags, connector_id, tx_id))

    # ------------------------------------------------------------------ smart charging

    async def setup_smart_charging(self) -> None:
        """Read the smart-charging configuration, then install the fail-safe and the lease."""
        self._setup_started = True
        try:
            config = await self.get_configuration()
        except (CallErrorReceived, CallTimeout, OcppError) as exc:
            log.warning("%s: GetConfiguration failed (%s); assuming default smart-charging limits", self.cp_id, exc)
            config = {}
        await self.configure_metering(config)
        self.caps = profiles.SmartChargingCaps.from_configuration(config)
        if self.caps.supported:
            await self.install_failsafe()
            await self.renew()
        self.setup_done.set()

    async def install_failsafe(self) -> None:
        """Install the fail-safe cap at this charger's current share (station-wide cap, else TxDefault) and tell
        the central system whether it took one: a refusal changes everyone else's share."""
        limit = self.failsafe_limit_a = self.cs.failsafe_limit(self.cp_id)
        if await self.send_profile(0, self._failsafe_cap_profile(limit), limit) == "Accepted":
            self.failsafe_kind = "ChargePointMaxProfile"
        else:
            connectors = len(self.evse.connectors) if self.evse else max([1, *self.connector_status])
            if await self.send_profile(0, self._failsafe_default_profile(limit, connectors), limit) == "Accepted":
                self.failsafe_kind = "TxDefaultProfile"
            else:
                self.failsafe_kind = None
                log.error("%s: refuses every fail-safe profile; it is not protected offline", self.cp_id)
        self.cs.note_failsafe(self.cp_id, self.failsafe_kind is not None)

    def _failsafe_cap_profile(self, limit_a: float) -> dict[str, Any]:
        """The station-wide fail-safe cap in this version's form (1.6: ChargePointMaxProfile)."""
        return profiles.failsafe_profile(limit_a, self.caps, self.watts_per_amp, utcnow())

    def _failsafe_default_profile(self, limit_a: float, connectors: int) -> dict[str, Any]:
        """The fall-back fail-safe for a charger that refuses the cap: a TxDefault sharing it per connector."""
        return profiles.failsafe_tx_default_profile(limit_a, connectors, self.caps, self.watts_per_amp, utcnow())

    async def configure_metering(self, config: dict[str, str | None]) -> None:
        """Ask for the samples the load manager and billing need, at the site's interval.

        Without this a charger keeps its factory interval (often 0 = never), and the load manager
        would have to assume every connector draws its full setpoint. A refusal is logged, not fatal.
        """
        control = self.cs.site.control if self.cs.site is not None else Control()
        wanted = {"MeterValueSampleInterval": str(control.meter_value_interval_s)}
        sampled = config.get("MeterValuesSampledData")
        if sampled is not None:
            have = {m.strip() for m in sampled.split(",") if m.strip()}
            if not set(SAMPLED_MEASURANDS) <= have:
                wanted["MeterValuesSampledData"] = ",".join(dict.fromkeys([*SAMPLED_MEASURANDS, *sorted(have)]))
        for key, value in wanted.items():
            if config.get(key) == value:
                continue
            try:
                status = await self.change_configuration(key, value)
            except (CallErrorReceived, CallTimeout, OcppError) as exc:
                status = f"failed ({exc})"
            if status not in ("Accepted", "RebootRequired"):
                log.warning("%s: ChangeConfiguration %s=%s: %s", self.cp_id, key, value, status)

    def _setpoint_valid_to(self, now: datetime, for_transaction: bool) -> datetime | None:
        """When a setpoint profile must lapse if evsite stops renewing it (None: it may stay).

        - Fall-back mode (no ChargePointMax): every setpoint is the lease, so it lapses with evsite.
        - With a lifted ChargePointMax, idle connector or running transaction alike (`for_transaction`
          only names the purpose): the profile holds the load manager's allocation for that port for
          1.5 leases, a little longer than the lift. An idle connector's TxDefault is what a car arriving
          while evsite is down gets: it cannot take the nameplate before the lift lapses, nor stay blocked
          after it (then the fail-safe share applies). A running transaction's TxProfile is short for
          late chargers (#22): one applied more than 1.5 leases after it was sent has already expired,
          so a stale setpoint cannot take effect; the current one is renewed with every lift.
        """
        lease = self.cs.settings.lift_lease_s
        if lease <= 0:
            return None
        if self.failsafe_kind == "TxDefaultProfile":
            return now + timedelta(seconds=lease)
        if self.failsafe_kind == "ChargePointMaxProfile":
            return now + timedelta(seconds=lease * 1.5)
        return None

    async def renew(self) -> None:
        """Keep the leases that lift the fail-safe, but only while the load manager is alive.

        A lift (or, in fall-back mode, a leased setpoint) is renewed only for a charger that has
        received a setpoint, and only while `set_connector_limit` was called for some charger within
        the last lease: if the control loop stops, the chargers return to their fail-safe caps.
        """
        if self.cs.settings.lift_lease_s <= 0 or not self.setpoints or not self.cs.controller_active():
            return
        if self.failsafe_kind == "ChargePointMaxProfile":
            if not self._lift_pending:
                self._lift_pending = True
                await self._lift_once()  # renews the connectors' leased setpoints with the lift
            return
        for connector_id, limit in list(self.setpoints.items()):  # fall-back mode: every setpoint is leased
            await self._apply_setpoint(connector_id, limit)

    async def _renew_setpoints(self) -> None:
        """Re-send every connector's leased setpoint: an idle one's TxDefault (what a car arriving while
        evsite is down gets) and a running transaction's TxProfile (short-lived against late chargers)."""
        for connector_id, limit in list(self.setpoints.items()):
            await self._apply_setpoint(connector_id, limit)

    async def renew_lift(self) -> bool:
        """(Re)install the leased ChargePointMax that lifts the fail-safe cap."""
        max_a = self.evse.max_current_a if self.evse else profiles.UNKNOWN_CHARGER_MAX_A
        lease = self.cs.settings.lift_lease_s
        profile = profiles.lift_profile(max_a, self.caps, self.watts_per_amp, utcnow(), timedelta(seconds=lease))
        if profile is None:
            return False
        sent_at = time.monotonic()
        accepted = await self.send_profile(0, profile, max_a) == "Accepted"
        if accepted:
            self.lift_until = sent_at + lease
        return accepted

    @property
    def watts_per_amp(self) -> float:
        return profiles.watts_per_amp(self.cs.site, self.evse)

    async def send_profile(self, connector_id: int, profile: dict[str, Any], limit_a: float) -> str:
        """SetChargingProfile; record it and the answer (Accepted/Rejected/NotSupported/Timeout/Error)."""
        try:
            result = await self.set_charging_profile(connector_id, profile)
            status = str(result["status"])
        except CallTimeout:
            status = "Timeout"
        except OcppError as exc:
            status = "NotSupported" if exc.code in ("NotImplemented", "NotSupported") else "Error"
        await self.cs.store.record_profile(self.cp_id, connector_id, profile, limit_a, status)
        return status

    async def set_connector_limit(self, connector_id: int, limit_a: float) -> bool:
        """Install a setpoint (lifting the fail-safe cap first if needed); True once accepted.

        Waits for a smart-charging setup under way: the fail-safe goes first, and the setpoint's form
        (A or W, periods) depends on the configuration read there.
        """
        if self._setup_started and not self.setup_done.is_set():
            try:
                await asyncio.wait_for(self.setup_done.wait(), self.cs.settings.call_timeout_s)
            except TimeoutError:
                return False
        self.setpoints[connector_id] = profiles.pilot_limit_a(limit_a)
        lease = self.cs.settings.lift_lease_s
        # The setpoint goes first: a lift installed before it would let the charger offer its nameplate
        # for a moment. Until the lift arrives the fail-safe cap holds, which can only be lower.
        accepted = await self._apply_setpoint(connector_id, limit_a)
        if (
            self.failsafe_kind == "ChargePointMaxProfile"
            and lease > 0
            and self.lift_until - time.monotonic() < lease / 3
            and not self._lift_pending
        ):
            # In the background: the load manager's dispatch must not wait for the lift's round trip.
            self._lift_pending = True
            self.spawn(self._lift_once(), "lift")
        return accepted

    async def _lift_once(self) -> None:
        """Renew the connectors' leased setpoints, then the lift, then clear the on-its-way mark that
        the caller set (so that a setpoint's lift and the periodic renewer's never go out together).

        The setpoints go first and last 1.5 leases, the lift one lease: a lift renewed from a setpoint can
        never outlive the connectors' allocations, so a car arriving at an idle charger while evsite is
        down gets its allocation (often 0), then the fail-safe share, never the nameplate, and a running
        transaction's TxProfile never lapses under a live lift (that would leave it the nameplate).
        """
        try:
            await self._renew_setpoints()
            await self.renew_lift()
        finally:
            self._lift_pending = False

    async def _apply_setpoint(self, connector_id: int, limit_a: float) -> bool:
        """Send the setpoint profile; falls back from TxProfile to TxDefaultProfile when rejected."""
        limit = profiles.pilot_limit_a(limit_a)
        tx_id = self.active_tx.get(connector_id)
        now = utcnow()
        statuses = []
        accepted = False
        for use_tx in [True, False] if tx_id is not None else [False]:
            profile = profiles.setpoint_profile(
                connector_id, limit, self.caps, self.watts_per_amp, now, tx_id if use_tx else None,
                self._setpoint_valid_to(now, use_tx),
            )  # fmt: skip
            status = await self.send_profile(connector_id, profile, limit)
            statuses.append(f"{profile['chargingProfilePurpose']}: {status}")
            if status == "Accepted":
                accepted = True
                break
            if use_tx:
                # An older TxProfile would override the TxDefault we try next: remove it first.
                with contextlib.suppress(OcppError, CallTimeout):
                    await self.clear_charging_profile(profile_id=profiles.TX_PROFILE_BASE + connector_id)
        self.cs.bus.publish(SetpointResult(self.cp_id, connector_id, limit, accepted, "; ".join(statuses)))
        return accepted

    # ------------------------------------------------------------------ operator actions: us → charger

    async def call(self, action: str, payload: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        return await self.rpc.call(action, payload, timeout)

    async def get_configuration(self, keys: list[str] | None = None) -> dict[str, str | None]:
        result = await self.call("GetConfiguration", {"key": keys} if keys else {})
        items = result.get("configurationKey", [])
        await self.cs.store.save_configuration(self.cp_id, items, utcnow())
        return {item["key"]: item.get("value") for item in items}

    async def change_configuration(self, key: str, value: str) -> str:
        result = await self.call("ChangeConfiguration", {"key": key, "value": value})
        if result["status"] in ("Accepted", "RebootRequired"):
            await self.cs.store.save_configuration(self.cp_id, [{"key": key, "value": value}], utcnow())
        return str(result["status"])

    async def remote_start(
        self, id_tag: str, connector_id: int | None = None, charging_profile: dict[str, Any] | None = None
    ) -> str:
        payload: dict[str, Any] = {"idTag": id_tag}
        if connector_id is not None:
            payload["connectorId"] = connector_id
        if charging_profile is not None:
            payload["chargingProfile"] = charging_profile
        return str((await self.call("RemoteStartTransaction", payload))["status"])

    async def remote_stop(self, transaction_id: int) -> str:
        return str((await self.call("RemoteStopTransaction", {"transactionId": transaction_id}))["status"])

    async def unlock_connector(self, connector_id: int) -> str:
        return str((await self.call("UnlockConnector", {"connectorId": connector_id}))["status"])

    async def reset(self, kind: str = "Soft") -> str:
        return str((await self.call("Reset", {"type": kind}))["status"])

    async def change_availability(self, connector_id: int, kind: str) -> str:
        return str((await self.call("ChangeAvailability", {"connectorId": connector_id, "type": kind}))["status"])

    async def clear_cache(self) -> str:
        return str((await self.call("ClearCache", {}))["status"])

    async def data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: str | None = None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"vendorId": vendor_id}
        if message_id is not None:
            payload["messageId"] = message_id
        if data is not None:
            payload["data"] = data
        return await self.call("DataTransfer", payload)

    async def trigger_message(self, requested: str, connector_id: int | None = None) -> str:
        payload: dict[str, Any] = {"requestedMessage": requested}
        if connector_id is not None:
            payload["connectorId"] = connector_id
        return str((await self.call("TriggerMessage", payload))["status"])

    async def set_charging_profile(self, connector_id: int, profile: dict[str, Any]) -> dict[str, Any]:
        return await self.call("SetChargingProfile", {"connectorId": connector_id, "csChargingProfiles": profile})

    async def clear_charging_profile(
        self,
        profile_id: int | None = None,
        connector_id: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
    ) -> str:
        payload = {
            k: v
            for k, v in (
                ("id", profile_id),
                ("connectorId", connector_id),
                ("chargingProfilePurpose", purpose),
                ("stackLevel", stack_level),
            )
            if v is not None
        }
        return str((await self.call("ClearChargingProfile", payload))["status"])

    async def get_composite_schedule(
        self, connector_id: int, duration_s: int, unit: str | None = None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"connectorId": connector_id, "duration": duration_s}
        if unit is not None:
            payload["chargingRateUnit"] = unit
        return await self.call("GetCompositeSchedule", payload)

    # Local Auth List Management

    async def get_local_list_version(self) -> int:
        return int((await self.call("GetLocalListVersion", {}))["listVersion"])

    async def send_local_list(self, update_type: str = "Full", id_tags: list[str] | None = None) -> str:
        """Push the id tags (all known tags for a Full update) with the next list version."""
        row = await self.cs.store.charger(self.cp_id)
        version = (row["local_list_version"] if row else 0) + 1
        tags = self.cs.id_tags if id_tags is None else {t: self.cs.id_tags.get(t, {}) for t in id_tags}
        entries = []
        for tag, record in tags.items():
            entry: dict[str, Any] = {"idTag": tag}
            if record:
                entry["idTagInfo"] = self.cs.id_tag_info(tag)
            entries.append(entry)
        payload = {"listVersion": version, "updateType": update_type, "localAuthorizationList": entries}
        status = str((await self.call("SendLocalList", payload))["status"])
        if status == "Accepted":
            await self.cs.store.set_charger_fields(self.cp_id, local_list_version=version)
        return status

    # Reservation

    async def reserve_now(
        self, connector_id: int, id_tag: str, expiry: datetime, parent_id_tag: str | None = None
    ) -> tuple[int, str]:
        reservation_id = await self.cs.store.create_reservation(self.cp_id, connector_id, id_tag, parent_id_tag, expiry)
        payload: dict[str, Any] = {
            "connectorId": connector_id,
            "expiryDate": iso(expiry),
            "idTag": id_tag,
            "reservationId": reservation_id,
        }
        if parent_id_tag is not None:
            payload["parentIdTag"] = parent_id_tag
        try:
            status = str((await self.call("ReserveNow", payload))["status"])
        except (OcppError, CallTimeout):
            await self.cs.store.set_reservation_status(reservation_id, "Failed")
            raise
        await self.cs.store.set_reservation_status(reservation_id, status)
        return reservation_id, status

    async def cancel_reservation(self, reservation_id: int) -> str:
        status = str((await self.call("CancelReservation", {"reservationId": reservation_id}))["status"])
        if status == "Accepted":
            await self.cs.store.set_reservation_status(reservation_id, "Cancelled")
        return status

    # Firmware Management

    async def update_firmware(
        self, location: str, retrieve_date: datetime, retries: int | None = None, retry_interval: int | None = None
    ) -> None:
        payload: dict[str, Any] = {"location": location, "retrieveDate": iso(retrieve_date)}
        if retries is not None:
            payload["retries"] = retries
        if retry_interval is not None:
            payload["retryInterval"] = retry_interval
        await self.call("UpdateFirmware", payload)
        await self.cs.store.record_firmware(self.cp_id, "firmware", "Requested", location)

    async def get_diagnostics(
        self, location: str, start: datetime | None = None, stop: datetime | None = None
    ) -> str | None:
        payload: dict[str, Any] = {"location": location}
        if start is not None:
            payload["startTime"] = iso(start)
        if stop is not None:
            payload["stopTime"] = iso(stop)
        result = await self.call("GetDiagnostics", payload)
        await self.cs.store.record_firmware(self.cp_id, "diagnostics", "Requested", result.get("fileName"))
        return result.get("fileName")
