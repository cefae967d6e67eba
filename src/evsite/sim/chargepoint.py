"""A simulated OCPP 1.6J charge point with EVs on its connectors.

It talks to any central system over a real WebSocket (subprotocol `ocpp1.6`, optional Basic
auth), using the `ocpp` package as its message layer: every CALL it sends and every reply it gives
is validated against the official 1.6 JSON schemas.

What it does, and why it matters for testing evsite:
- Boot, heartbeat, status, authorize, start/stop, periodic MeterValues with the energy register,
  per-phase current, power and the offered current.
- Answers every central-system call of the six 1.6 feature profiles per spec.
- Keeps the charging profiles it was given and applies them to the pilot whether online or not,
  so fail-safe defaults are honoured when the central system is gone (§3.13.6).
- One ordered outbox, one CALL in flight (OCPP-J §4.1.1). Transaction messages (Start/Stop and
  transaction MeterValues) wait in it while offline and are replayed after reconnecting, with
  exponential backoff between connection attempts; they leave the outbox only once answered.
- Handlers never call the central system themselves (that would block the `ocpp` read loop):
  follow-up messages are sent from `@after` hooks, after the reply went out.

Time: protocol timers (heartbeat, sample interval, backoff, timeouts) and timestamps are real; the
EV side (pilot delays, battery, arrivals) runs on `SimClock`, `speed` times faster.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ocpp.exceptions import OCPPError
from ocpp.routing import after, create_route_map, on
from ocpp.v16 import ChargePoint as OcppChargePoint
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from evsite.sim.auth import LocalAuth
from evsite.sim.config import Config
from evsite.sim.ev import Ev, SimClock, pilot_amps
from evsite.sim.profiles import Electrical, Profile, ProfileStore, share_charge_point_max

log = logging.getLogger(__name__)

TRIGGERABLE = {
    "BootNotification",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "MeterValues",
    "StatusNotification",
}


def timestamp(at: datetime | None = None) -> str:
    """RFC 3339 UTC with milliseconds and `Z` (strict validators check the date-time format)."""
    return (at or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Quirks:
    """Misbehaviour of real chargers, switched on for fault tests."""

    reject_stack_level_above: int | None = None  # accepts fewer levels than ChargeProfileMaxStackLevel says
    amps_only: bool = False  # rejects profiles in W although it reports Current,Power
    ignore_pilot_s: float = 0.0  # the EV keeps drawing this long (simulated s) after a lower pilot
    reject_profiles: bool = False  # rejects every SetChargingProfile, the fail-safe default included
    ignore_profiles: bool = False  # accepts every profile and applies none: the pilot stays at its maximum
    apply_late_s: float = 0.0  # accepts a profile at once but installs it this many simulated seconds later
    overdraw_pct: float = 0.0  # its cars draw this % above the pilot (what flows, and what it meters)
    meter_low_pct: float = 0.0  # its meter reports this % less current and power than flows


@dataclass
class ChargePointSpec:
    """The hardware: connectors, phases, wiring and nameplate."""

    id: str
    connectors: int = 1
    max_current_a: float = 32.0  # per connector, per phase
    phases: int = 3
    phase_voltage_v: float = 230.0  # volts across each phase's load (L-N for wye, L-L for a 208/240 V 1φ)
    lines: tuple[str, ...] = ("L1", "L2", "L3")  # site lines: per phase for 3φ; both conductors for 1φ L-L
    vendor: str = "evsite"
    model: str = "SimCharger"
    serial: str | None = None
    firmware: str = "1.0.0"
    password: str | None = None
    quirks: Quirks = field(default_factory=Quirks)


@dataclass
class Transaction:
    connector_id: int
    id_tag: str
    meter_start: int
    started: datetime
    reservation_id: int | None = None
    transaction_id: int | None = None  # assigned by the central system
    stopped: bool = False


@dataclass
class Connector:
    id: int
    status: str = "Available"
    operative: bool = True
    pending_inoperative: bool | None = None  # availability change scheduled after the transaction
    ev: Ev | None = None
    tx: Transaction | None = None
    meter_wh: float = 0.0
    metered_ev_wh: float = 0.0  # the EV's delivered energy already added to meter_wh
    offered_a: float = 0.0
    authorizing: bool = False
    finishing: bool = False
    reservation: dict[str, Any] | None = None
    remote_tag: tuple[str, float, dict[str, Any] | None] | None = None  # (idTag, deadline, TxProfile)


@dataclass
class _Outgoing:
    payload: Any
    transactional: bool
    on_result: Callable[[Any], None] | None = None
    on_drop: Callable[[], None] | None = None
    attempts: int = 0
    action: str = ""  # for lazily built payloads

    @property
    def name(self) -> str:
        return self.action or type(self.payload).__name__


class _Link(OcppChargePoint):
    """One WebSocket session; handlers live on the station so they survive reconnects."""

    def __init__(self, station: SimChargePoint, ws: ClientConnection, timeout: float) -> None:
        super().__init__(station.id, ws, response_timeout=timeout)
        self.route_map = create_route_map(station)
        self._station = station

    async def _send(self, message: str) -> None:
        self._station.record("out", message)
        await super()._send(message)

    async def route_message(self, raw_msg: str) -> None:
        self._station.record("in", raw_msg)
        await super().route_message(raw_msg)


class SimChargePoint:
    """One simulated charge point. `await start()`, plug EVs in and out, `await stop()`."""

    def __init__(
        self,
        spec: ChargePointSpec,
        url: str,
        clock: SimClock | None = None,
        config: dict[str, str] | None = None,
        backoff_min_s: float = 1.0,
        backoff_max_s: float = 60.0,
        response_timeout_s: float = 30.0,
        boot_on_reconnect: bool = False,
        record_frames: bool = False,
        rng: random.Random | None = None,
        tick_s: float | None = None,
    ) -> None:
        self.spec = spec
        self.id = spec.id
        self.url = url.rstrip("/") + "/" + spec.id
        self.clock = clock or SimClock()
        self.config = Config(spec.connectors, spec.phases, config)
        self.electrical = Electrical(spec.phase_voltage_v, spec.phases, spec.max_current_a)
        self.profiles = ProfileStore(spec.connectors, self.electrical)
        self.auth = LocalAuth(max_length=self.config.int("LocalAuthListMaxLength"))
        self.connectors = {i: Connector(i) for i in range(1, spec.connectors + 1)}
        self.status0 = "Available"
        self.backoff_min_s, self.backoff_max_s = backoff_min_s, backoff_max_s
        self.response_timeout_s = response_timeout_s
        self.boot_on_reconnect = boot_on_reconnect
        self.rng = rng or random.Random()
        # Real seconds between physics steps: about one simulated second, within [0.05, 1].
        self.tick_s = tick_s or min(1.0, max(0.05, 1.0 / self.clock.speed))
        self.online = False
        self.accepted = asyncio.Event()  # set while booted and connected
        self.boots = 0
        self.connects = 0
        self.frames: list[tuple[str, str]] | None = [] if record_frames else None
        self.generated: Counter[str] = Counter()  # transaction messages created, by action
        self._outbox: deque[_Outgoing] = deque()
        self._wake = asyncio.Event()
        self._need_boot = True
        self._link: _Link | None = None
        self._ws: ClientConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._session_tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._last_sample: dict[int, list[dict[str, Any]]] = {}
        self._late: list[tuple[float, Profile]] = []  # (simulated time due, profile) for `apply_late_s`

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._stopping = False
        self._tasks = [
            asyncio.create_task(self._run(), name=f"{self.id}-run"),
            asyncio.create_task(self._physics(), name=f"{self.id}-physics"),
            asyncio.create_task(self._sampler(), name=f"{self.id}-sampler"),
        ]

    async def stop(self) -> None:
        """Stop simulating (the process is going away; transactions are not stopped)."""
        self._stopping = True
        for task in [*self._tasks, *self._session_tasks]:
            task.cancel()
        for task in [*self._tasks, *self._session_tasks]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        self._tasks.clear()

    def record(self, direction: str, frame: str) -> None:
        """Keep every frame ("in"/"out") when `record_frames` is on, for conformance tests."""
        if self.frames is not None:
            self.frames.append((direction, frame))

    @property
    def pending_messages(self) -> int:
        return len(self._outbox)

    @property
    def pending_transaction_messages(self) -> int:
        return sum(1 for item in self._outbox if item.transactional)

    async def wait_online(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self.accepted.wait(), timeout)

    # ------------------------------------------------------------------ connection

    def _headers(self) -> dict[str, str]:
        if not self.spec.password:
            return {}
        token = base64.b64encode(f"{self.id}:{self.spec.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    async def _run(self) -> None:
        delay = self.backoff_min_s
        while not self._stopping:
            ping = self.config.int("WebSocketPingInterval")
            try:
                ws = await connect(
                    self.url,
                    subprotocols=[Subprotocol("ocpp1.6")],
                    additional_headers=self._headers(),
                    ping_interval=ping or None,
                    open_timeout=10,
                )
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                log.info("%s: connect failed (%s); retry in %.1f s", self.id, exc, delay)
                await asyncio.sleep(delay * self.rng.uniform(0.8, 1.2))
                delay = min(delay * 2, self.backoff_max_s)
                continue
            if ws.subprotocol != "ocpp1.6":
                log.warning("%s: central system did not agree to ocpp1.6", self.id)
                await ws.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max_s)
                continue
            self.connects += 1
            self._ws = ws
            booted = False
            try:
                booted = await self._session(ws)
            except Exception:
                log.exception("%s: session failed", self.id)
            finally:
                self._end_session()
                with contextlib.suppress(Exception):
                    await ws.close()
                self._ws = None
            if booted:
                delay = self.backoff_min_s
            if not self._stopping:
                await asyncio.sleep(delay * self.rng.uniform(0.8, 1.2))
                delay = min(delay * 2, self.backoff_max_s)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._session_tasks.add(task)
        task.add_done_callback(self._session_tasks.discard)
        return task

    async def _session(self, ws: ClientConnection) -> bool:
        """One connection: boot if needed, announce state, replay the outbox. True once booted."""
        link = _Link(self, ws, self.response_timeout_s)
        self._link = link
        reader = self._spawn(link.start())
        if (self._need_boot or self.boot_on_reconnect) and not await self._boot(link, reader):
            return False
        self.online = True
        self.accepted.set()
        self._announce()
        self._spawn(self._sender(link))
        self._spawn(self._heartbeat())
        with contextlib.suppress(ConnectionClosed, asyncio.CancelledError):
            await reader
        return True

    async def _boot(self, link: _Link, reader: asyncio.Task[Any]) -> bool:
        """BootNotification until Accepted (Pending/Rejected: retry after the interval given)."""
        while not reader.done():
            payload = call.BootNotification(
                charge_point_model=self.spec.model,
                charge_point_vendor=self.spec.vendor,
                charge_point_serial_number=self.spec.serial,
                firmware_version=self.spec.firmware,
                meter_type="SimMeter",
            )
            try:
                result = await link.call(payload, suppress=False)
            except (OCPPError, TimeoutError, ConnectionClosed) as exc:
                log.warning("%s: BootNotification failed: %s", self.id, exc)
                return False
            self.boots += 1
            interval = int(result.interval)
            if result.status == "Accepted":
                if interval > 0:
                    self.config.keys["HeartbeatInterval"].value = str(interval)
                self._need_boot = False
                return True
            await asyncio.wait([reader], timeout=interval if interval > 0 else 10)
        return False

    def _end_session(self) -> None:
        self.online = False
        self.accepted.clear()
        for task in list(self._session_tasks):
            task.cancel()
        self._link = None
        kept: deque[_Outgoing] = deque()
        for item in self._outbox:
            if item.transactional:
                kept.append(item)
            elif item.on_drop:
                item.on_drop()
        self._outbox = kept

    def _announce(self) -> None:
        """After (re)connecting: the current status of every connector, and retry pending authorizations."""
        self._send_status(0)
        for connector in self.connectors.values():
            self._send_status(connector.id)
            if connector.ev is not None and connector.tx is None and not connector.finishing:
                self._authorize(connector)

    # ------------------------------------------------------------------ outbox

    def _enqueue(self, item: _Outgoing) -> None:
        if item.transactional:
            self.generated[item.name] += 1
        if not item.transactional and not self.online:
            if item.on_drop:
                item.on_drop()
            return
        self._outbox.append(item)
        self._wake.set()

    async def _sender(self, link: _Link) -> None:
        """Send the outbox in order, one CALL at a time; transaction messages leave only when answered."""
        while True:
            if not self._outbox:
                self._wake.clear()
                await self._wake.wait()
                continue
            item = self._outbox[0]
            try:
                result = await link.call(item.payload() if callable(item.payload) else item.payload, suppress=False)
            except (OCPPError, TimeoutError) as exc:
                item.attempts += 1
                limit = self.config.int("TransactionMessageAttempts") if item.transactional else 1
                log.warning("%s: %s failed (%s), attempt %d/%d", self.id, item.payload, exc, item.attempts, limit)
                if item.attempts < limit:
                    await asyncio.sleep(self.config.int("TransactionMessageRetryInterval") * item.attempts)
                    continue
                self._outbox.popleft()
                if item.on_drop:
                    item.on_drop()
                continue
            except _Skip:
                self._outbox.popleft()
                continue
            except ConnectionClosed:
                return  # the item stays first in line for the next connection
            self._outbox.popleft()
            if item.on_result:
                item.on_result(result)

    async def _heartbeat(self) -> None:
        while True:
            interval = self.config.int("HeartbeatInterval")
            await asyncio.sleep(interval if interval > 0 else 60)
            if interval > 0:
                self._enqueue(_Outgoing(call.Heartbeat(), False))

    # ------------------------------------------------------------------ EV side (public)

    def plug_in(self, connector_id: int, ev: Ev) -> None:
        """An EV arrives and plugs in: Preparing, then authorize its tag (or use a pending remote start)."""
        connector = self.connectors[connector_id]
        if connector.ev is not None:
            raise ValueError(f"{self.id} connector {connector_id} is occupied")
        ev.voltage_v = self.spec.phase_voltage_v
        ev.plug_in(self.clock.now())
        connector.ev = ev
        connector.metered_ev_wh = ev.energy_wh
        connector.finishing = False
        self._update_status(connector)
        if connector.remote_tag is not None:
            tag, _, profile = connector.remote_tag
            connector.remote_tag = None
            self._start_transaction(connector, tag, profile)
        else:
            self._authorize(connector)

    def unplug(self, connector_id: int) -> None:
        """The EV leaves: stop its transaction (EVDisconnected) and free the connector."""
        connector = self.connectors[connector_id]
        if connector.ev is None:
            return
        self._meter(connector)
        connector.ev.unplug(self.clock.now())
        connector.ev = None
        connector.finishing = False
        if connector.tx is not None and self.config.bool("StopTransactionOnEVSideDisconnect"):
            self._stop_transaction(connector, "EVDisconnected")
        self._update_status(connector)

    def line_currents(self) -> dict[str, float]:
        """Amperes on each site line this charge point draws now."""
        out: dict[str, float] = dict.fromkeys(self.spec.lines, 0.0)
        now = self.clock.now()
        for connector in self.connectors.values():
            for index, amps in enumerate(self._phase_currents(connector, now)):
                if self.spec.phases == 1:
                    for line in self.spec.lines:
                        out[line] += amps
                elif index < len(self.spec.lines):
                    out[self.spec.lines[index]] += amps
        return out

    def _phase_currents(self, connector: Connector, now: float) -> list[float]:
        if connector.ev is None:
            return [0.0] * self.spec.phases
        amps = connector.ev.current_a(now) * (1.0 + self.spec.quirks.overdraw_pct / 100.0)
        used = min(connector.ev.phases, self.spec.phases)
        return [amps if i < used else 0.0 for i in range(self.spec.phases)]

    # ------------------------------------------------------------------ authorization and transactions

    def _authorize(self, connector: Connector) -> None:
        ev = connector.ev
        if ev is None or connector.authorizing or connector.tx is not None or not connector.operative:
            return
        tag = ev.id_tag
        if connector.reservation is not None and connector.reservation["id_tag"] != tag:
            parent = connector.reservation.get("parent_id_tag")
            cached = self.auth.local_list.get(tag) or self.auth.cache.get(tag) or {}
            if parent is None or cached.get("parent_id_tag") != parent:
                return  # reserved for someone else
        local_ok = self.auth.accepts(
            tag, self.config.bool("LocalAuthListEnabled"), self.config.bool("AuthorizationCacheEnabled")
        )
        if self.online:
            if local_ok and self.config.bool("LocalPreAuthorize"):
                self._start_transaction(connector, tag)
                return
            connector.authorizing = True

            def done(result: Any) -> None:
                connector.authorizing = False
                info = dict(result.id_tag_info)
                self.auth.remember(tag, info)
                if info.get("status") == "Accepted" and connector.ev is ev and connector.tx is None:
                    self._start_transaction(connector, tag)

            def dropped() -> None:
                connector.authorizing = False

            self._enqueue(_Outgoing(call.Authorize(id_tag=tag), False, done, dropped))
        elif (local_ok and self.config.bool("LocalAuthorizeOffline")) or self.config.bool("AllowOfflineTxForUnknownId"):
            self._start_transaction(connector, tag)

    def _start_transaction(self, connector: Connector, tag: str, tx_profile: dict[str, Any] | None = None) -> None:
        reservation_id = None
        if connector.reservation is not None:
            reservation_id = connector.reservation["reservation_id"]
            connector.reservation = None
        tx = Transaction(connector.id, tag, int(connector.meter_wh), datetime.now(UTC), reservation_id)
        connector.tx = tx
        if tx_profile is not None:
            self.profiles.install(Profile.from_ocpp(connector.id, tx_profile))
        self._last_sample.pop(connector.id, None)

        def started(result: Any) -> None:
            tx.transaction_id = int(result.transaction_id)
            info = dict(result.id_tag_info)
            self.auth.remember(tag, info)
            if (
                info.get("status") != "Accepted"
                and connector.tx is tx
                and self.config.bool("StopTransactionOnInvalidId")
            ):
                self._stop_transaction(connector, "DeAuthorized")

        payload = call.StartTransaction(
            connector_id=connector.id,
            id_tag=tag,
            meter_start=tx.meter_start,
            timestamp=timestamp(tx.started),
            reservation_id=reservation_id,
        )
        self._enqueue(_Outgoing(payload, True, started))
        self._apply_pilots()
        self._update_status(connector)

    def _stop_transaction(self, connector: Connector, reason: str) -> None:
        tx = connector.tx
        if tx is None:
            return
        self._meter(connector)
        tx.stopped = True
        connector.tx = None
        connector.offered_a = 0.0
        self.profiles.end_transaction(connector.id)
        if connector.ev is not None:
            connector.ev.cut_off(self.clock.now())
            connector.finishing = True
        meter_stop = int(connector.meter_wh)
        at = timestamp()
        data = None
        if self.config.csl("StopTxnSampledData"):
            data = [
                {
                    "timestamp": at,
                    "sampledValue": [
                        {
                            "value": str(meter_stop),
                            "context": "Transaction.End",
                            "measurand": "Energy.Active.Import.Register",
                            "unit": "Wh",
                        }
                    ],
                }
            ]

        def build() -> Any:
            if tx.transaction_id is None:
                raise _Skip  # its StartTransaction was never accepted: nothing to stop at the CSMS
            return call.StopTransaction(
                meter_stop=meter_stop,
                timestamp=at,
                transaction_id=tx.transaction_id,
                reason=reason,
                id_tag=tx.id_tag,
                transaction_data=data,
            )

        self._enqueue(_Outgoing(build, True, action="StopTransaction"))
        if connector.pending_inoperative is not None:
            connector.operative = not connector.pending_inoperative
            connector.pending_inoperative = None
        self._update_status(connector)

    # ------------------------------------------------------------------ physics and metering

    def _limits(self) -> dict[int, float]:
        """Per-connector current limit now (A per phase) from the composite schedule, CP max shared."""
        now = datetime.now(UTC)
        own: dict[int, float] = {}
        for connector in self.connectors.values():
            if connector.tx is None:
                continue
            tx = connector.tx
            limit = self.profiles.connector_limit_a(connector.id, now, tx.started, tx.transaction_id)
            if self.spec.quirks.ignore_profiles:
                limit = None
            own[connector.id] = self.spec.max_current_a if limit is None else min(limit, self.spec.max_current_a)
        if self.spec.quirks.ignore_profiles:
            return own
        return share_charge_point_max(own, self.profiles.charge_point_max_a(now))

    def _apply_pilots(self) -> None:
        """Set each connector's pilot from its share of the composite limit (0 = pause, never 0–6 A)."""
        limits = self._limits()
        now = self.clock.now()
        for connector in self.connectors.values():
            if connector.ev is None:
                continue
            offered = pilot_amps(limits.get(connector.id, 0.0), self.spec.max_current_a)
            if connector.tx is None or not connector.operative:
                offered = 0.0
            connector.offered_a = offered
            connector.ev.set_pilot(offered, now)
            self._meter(connector)

    async def _physics(self) -> None:
        """Apply the composite limit to each pilot and let the EVs respond; keep statuses current."""
        while True:
            now = self.clock.now()
            while self._late and self._late[0][0] <= now:
                self.profiles.install(self._late.pop(0)[1])
            self._apply_pilots()
            for connector in self.connectors.values():
                if connector.remote_tag is not None and connector.remote_tag[1] < now:
                    connector.remote_tag = None
                if connector.reservation is not None and connector.reservation["expiry"] <= datetime.now(UTC):
                    connector.reservation = None
                self._update_status(connector)
            await asyncio.sleep(self.tick_s)

    def _meter(self, connector: Connector) -> None:
        if connector.ev is None:
            return
        connector.ev.advance(self.clock.now())
        connector.meter_wh += connector.ev.energy_wh - connector.metered_ev_wh
        connector.metered_ev_wh = connector.ev.energy_wh

    def _sample(self, connector: Connector, context: str) -> list[dict[str, Any]]:
        """One MeterValue element with the measurands configured in MeterValuesSampledData."""
        self._meter(connector)
        reads = 1.0 - self.spec.quirks.meter_low_pct / 100.0
        phases = [amps * reads for amps in self._phase_currents(connector, self.clock.now())]
        wanted = self.config.csl("MeterValuesSampledData")
        values: list[dict[str, Any]] = []
        for measurand in wanted:
            base = {"context": context, "measurand": measurand, "location": "Outlet"}
            if measurand == "Energy.Active.Import.Register":
                values.append({**base, "value": f"{connector.meter_wh:.0f}", "unit": "Wh"})
            elif measurand == "Current.Import":
                for index, amps in enumerate(phases):
                    values.append({**base, "value": f"{amps:.1f}", "unit": "A", "phase": f"L{index + 1}"})
            elif measurand == "Power.Active.Import":
                watts = sum(phases) * self.spec.phase_voltage_v
                values.append({**base, "value": f"{watts:.0f}", "unit": "W"})
            elif measurand == "Current.Offered":
                values.append({**base, "value": f"{connector.offered_a:.1f}", "unit": "A"})
            elif measurand == "Voltage":
                for index in range(self.spec.phases):
                    values.append(
                        {**base, "value": f"{self.spec.phase_voltage_v:.1f}", "unit": "V", "phase": f"L{index + 1}"}
                    )
            elif measurand == "SoC" and connector.ev is not None:
                values.append({**base, "value": f"{connector.ev.soc * 100:.0f}", "unit": "Percent", "location": "EV"})
        return [{"timestamp": timestamp(), "sampledValue": values}]

    def _send_meter_values(self, connector: Connector, context: str, transactional: bool) -> None:
        sample = self._sample(connector, context)
        tx = connector.tx

        def build() -> Any:
            return call.MeterValues(
                connector_id=connector.id,
                meter_value=sample,
                transaction_id=tx.transaction_id if tx is not None else None,
            )

        self._enqueue(_Outgoing(build, transactional and tx is not None, action="MeterValues"))

    async def _sampler(self) -> None:
        """Sampled MeterValues for running transactions every MeterValueSampleInterval seconds.

        The interval is re-read every half second, so a ChangeConfiguration takes effect at once
        rather than after the old (possibly long) interval has run out.
        """
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(0.5)
            interval = self.config.int("MeterValueSampleInterval")
            if interval <= 0 or loop.time() - last < interval:
                continue
            last = loop.time()
            for connector in self.connectors.values():
                if connector.tx is not None:
                    self._send_meter_values(connector, "Sample.Periodic", True)

    # ------------------------------------------------------------------ status

    def _derive_status(self, connector: Connector) -> str:
        if not connector.operative and connector.tx is None:
            return "Unavailable"
        if connector.tx is not None:
            if connector.offered_a <= 0:
                return "SuspendedEVSE"
            ev = connector.ev
            return "Charging" if ev is not None and ev.drawing else "SuspendedEV"
        if connector.ev is not None:
            return "Finishing" if connector.finishing else "Preparing"
        if connector.reservation is not None:
            return "Reserved"
        return "Available"

    def _update_status(self, connector: Connector) -> None:
        status = self._derive_status(connector)
        if status != connector.status:
            connector.status = status
            self._send_status(connector.id)

    def _send_status(self, connector_id: int) -> None:
        status = self.status0 if connector_id == 0 else self.connectors[connector_id].status
        self._enqueue(
            _Outgoing(
                call.StatusNotification(
                    connector_id=connector_id, error_code="NoError", status=status, timestamp=timestamp()
                ),
                False,
            )
        )

    # ================================================================== central-system calls

    def _connector_ids(self, connector_id: int) -> list[int]:
        return list(self.connectors) if connector_id == 0 else [connector_id]

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None, **_: Any) -> call_result.GetConfiguration:
        known, unknown = self.config.get(key)
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str, **_: Any) -> call_result.ChangeConfiguration:
        return call_result.ChangeConfiguration(status=self.config.change(key, value))

    @on(Action.set_charging_profile)
    def on_set_charging_profile(
        self, connector_id: int, cs_charging_profiles: dict[str, Any], **_: Any
    ) -> call_result.SetChargingProfile:
        return call_result.SetChargingProfile(status=self._check_and_install(connector_id, cs_charging_profiles))

    def _check_and_install(self, connector_id: int, data: dict[str, Any]) -> str:
        """Accepted / Rejected per 1.6 §3.13 and the capabilities this charger reports (and its quirks)."""
        if connector_id != 0 and connector_id not in self.connectors:
            return "Rejected"
        try:
            profile = Profile.from_ocpp(connector_id, data)
        except (KeyError, TypeError, ValueError):
            return "Rejected"
        quirks = self.spec.quirks
        if quirks.reject_profiles:
            return "Rejected"
        units = {"Current": "A", "Power": "W"}
        allowed = {units[u] for u in self.config.csl("ChargingScheduleAllowedChargingRateUnit") if u in units}
        if quirks.amps_only:
            allowed.discard("W")
        if (
            profile.stack_level > self.config.int("ChargeProfileMaxStackLevel")
            or (quirks.reject_stack_level_above is not None and profile.stack_level > quirks.reject_stack_level_above)
            or len(profile.schedule.periods) > self.config.int("ChargingScheduleMaxPeriods")
            or profile.schedule.unit not in allowed
            or (profile.schedule.periods and profile.schedule.periods[0].start_s != 0)
        ):
            return "Rejected"
        if profile.purpose == "ChargePointMaxProfile" and connector_id != 0:
            return "Rejected"
        if profile.purpose == "TxProfile":
            tx = self.connectors[connector_id].tx if connector_id in self.connectors else None
            if tx is None:
                return "Rejected"  # §3.13.1: no transaction on that connector
            if profile.transaction_id is not None and tx.transaction_id not in (None, profile.transaction_id):
                return "Rejected"
        replacing = any(p.id == profile.id for p in self.profiles.profiles)
        if not replacing and len(self.profiles.profiles) >= self.config.int("MaxChargingProfilesInstalled"):
            return "Rejected"
        if quirks.apply_late_s > 0:
            self._late.append((self.clock.now() + quirks.apply_late_s, profile))
            return "Accepted"
        self.profiles.install(profile)
        self._apply_pilots()
        return "Accepted"

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(
        self,
        id: int | None = None,
        connector_id: int | None = None,
        charging_profile_purpose: str | None = None,
        stack_level: int | None = None,
        **_: Any,
    ) -> call_result.ClearChargingProfile:
        cleared = self.profiles.clear(id, connector_id, charging_profile_purpose, stack_level)
        return call_result.ClearChargingProfile(status="Accepted" if cleared else "Unknown")

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(
        self, connector_id: int, duration: int, charging_rate_unit: str | None = None, **_: Any
    ) -> call_result.GetCompositeSchedule:
        if connector_id != 0 and connector_id not in self.connectors:
            return call_result.GetCompositeSchedule(status="Rejected")
        unit = charging_rate_unit or "A"
        if unit == "W" and self.spec.quirks.amps_only:
            return call_result.GetCompositeSchedule(status="Rejected")
        start = datetime.now(UTC).replace(microsecond=0)
        tx = self.connectors[connector_id].tx if connector_id in self.connectors else None
        schedule = self.profiles.composite_schedule(
            connector_id,
            start,
            int(duration),
            unit,
            tx.started if tx else None,
            tx.transaction_id if tx else None,
        )
        return call_result.GetCompositeSchedule(
            status="Accepted", connector_id=connector_id, schedule_start=timestamp(start), charging_schedule=schedule
        )

    @on(Action.remote_start_transaction)
    def on_remote_start_transaction(
        self, id_tag: str, connector_id: int | None = None, charging_profile: dict[str, Any] | None = None, **_: Any
    ) -> call_result.RemoteStartTransaction:
        if charging_profile is not None and charging_profile.get("charging_profile_purpose") != "TxProfile":
            return call_result.RemoteStartTransaction(status="Rejected")
        if connector_id is None:
            free = [c for c in self.connectors.values() if c.tx is None and c.operative and not c.finishing]
            plugged = [c for c in free if c.ev is not None]
            choice: Connector | None = (plugged or free)[0] if (plugged or free) else None
        else:
            choice = self.connectors.get(connector_id)
        if choice is None or choice.tx is not None or not choice.operative or choice.finishing:
            return call_result.RemoteStartTransaction(status="Rejected")
        deadline = self.clock.now() + self.clock.speed * self.config.int("ConnectionTimeOut")
        choice.remote_tag = (id_tag, deadline, charging_profile)
        return call_result.RemoteStartTransaction(status="Accepted")

    @after(Action.remote_start_transaction)
    def after_remote_start_transaction(self, **_: Any) -> None:
        for connector in self.connectors.values():
            if connector.remote_tag is not None and connector.ev is not None and connector.tx is None:
                tag, _deadline, profile = connector.remote_tag
                connector.remote_tag = None
                if self.config.bool("AuthorizeRemoteTxRequests"):
                    connector.ev.id_tag = tag
                    self._authorize(connector)
                else:
                    self._start_transaction(connector, tag, profile)

    @on(Action.remote_stop_transaction)
    def on_remote_stop_transaction(self, transaction_id: int, **_: Any) -> call_result.RemoteStopTransaction:
        found = any(c.tx is not None and c.tx.transaction_id == transaction_id for c in self.connectors.values())
        return call_result.RemoteStopTransaction(status="Accepted" if found else "Rejected")

    @after(Action.remote_stop_transaction)
    def after_remote_stop_transaction(self, transaction_id: int, **_: Any) -> None:
        for connector in self.connectors.values():
            if connector.tx is not None and connector.tx.transaction_id == transaction_id:
                self._stop_transaction(connector, "Remote")

    @on(Action.reset)
    def on_reset(self, type: str, **_: Any) -> call_result.Reset:
        return call_result.Reset(status="Accepted")

    @after(Action.reset)
    async def after_reset(self, type: str, **_: Any) -> None:
        reason = "HardReset" if type == "Hard" else "SoftReset"
        for connector in self.connectors.values():
            self._stop_transaction(connector, reason)
        await asyncio.sleep(0.2)  # let the Stop messages go out before the reboot
        self._need_boot = True
        if self._ws is not None:
            await self._ws.close()

    @on(Action.unlock_connector)
    def on_unlock_connector(self, connector_id: int, **_: Any) -> call_result.UnlockConnector:
        connector = self.connectors.get(connector_id)
        if connector is None:
            return call_result.UnlockConnector(status="NotSupported")
        if connector.tx is not None:
            self._stop_transaction(connector, "UnlockCommand")
        return call_result.UnlockConnector(status="Unlocked")

    @on(Action.change_availability)
    def on_change_availability(self, connector_id: int, type: str, **_: Any) -> call_result.ChangeAvailability:
        if connector_id != 0 and connector_id not in self.connectors:
            return call_result.ChangeAvailability(status="Rejected")
        inoperative = type == "Inoperative"
        scheduled = False
        for cid in self._connector_ids(connector_id):
            connector = self.connectors[cid]
            if connector.tx is not None and connector.operative == inoperative:
                connector.pending_inoperative = inoperative
                scheduled = True
            else:
                connector.operative = not inoperative
        if connector_id == 0:
            self.status0 = "Unavailable" if inoperative else "Available"
        return call_result.ChangeAvailability(status="Scheduled" if scheduled else "Accepted")

    @after(Action.change_availability)
    def after_change_availability(self, connector_id: int, **_: Any) -> None:
        if connector_id == 0:
            self._send_status(0)
        for cid in self._connector_ids(connector_id) if connector_id in (0, *self.connectors) else []:
            self._update_status(self.connectors[cid])

    @on(Action.trigger_message)
    def on_trigger_message(
        self, requested_message: str, connector_id: int | None = None, **_: Any
    ) -> call_result.TriggerMessage:
        if requested_message not in TRIGGERABLE:
            return call_result.TriggerMessage(status="NotImplemented")
        if connector_id is not None and connector_id != 0 and connector_id not in self.connectors:
            return call_result.TriggerMessage(status="Rejected")
        return call_result.TriggerMessage(status="Accepted")

    @after(Action.trigger_message)
    async def after_trigger_message(self, requested_message: str, connector_id: int | None = None, **_: Any) -> None:
        if connector_id is not None and connector_id != 0 and connector_id not in self.connectors:
            return
        if requested_message == "Heartbeat":
            self._enqueue(_Outgoing(call.Heartbeat(), False))
        elif requested_message == "StatusNotification":
            ids = [0, *self.connectors] if connector_id is None else [connector_id]
            for cid in ids:
                self._send_status(cid)
        elif requested_message == "MeterValues":
            ids = list(self.connectors) if not connector_id else [connector_id]
            for cid in ids:
                self._send_meter_values(self.connectors[cid], "Trigger", False)
        elif requested_message == "BootNotification":
            payload = call.BootNotification(charge_point_model=self.spec.model, charge_point_vendor=self.spec.vendor)
            self._enqueue(_Outgoing(payload, False))
        elif requested_message == "DiagnosticsStatusNotification":
            self._enqueue(_Outgoing(call.DiagnosticsStatusNotification(status="Idle"), False))
        elif requested_message == "FirmwareStatusNotification":
            self._enqueue(_Outgoing(call.FirmwareStatusNotification(status="Idle"), False))

    @on(Action.clear_cache)
    def on_clear_cache(self, **_: Any) -> call_result.ClearCache:
        self.auth.cache.clear()
        return call_result.ClearCache(status="Accepted")

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **_: Any) -> call_result.DataTransfer:
        return call_result.DataTransfer(status="UnknownVendorId")

    @on(Action.reserve_now)
    def on_reserve_now(
        self,
        connector_id: int,
        expiry_date: str,
        id_tag: str,
        reservation_id: int,
        parent_id_tag: str | None = None,
        **_: Any,
    ) -> call_result.ReserveNow:
        if connector_id == 0 and not self.config.bool("ReserveConnectorZeroSupported"):
            return call_result.ReserveNow(status="Rejected")
        connector = self.connectors.get(connector_id)
        if connector is None:
            return call_result.ReserveNow(status="Rejected")
        if not connector.operative:
            return call_result.ReserveNow(status="Unavailable")
        existing = connector.reservation
        if connector.ev is not None or connector.tx is not None:
            return call_result.ReserveNow(status="Occupied")
        if existing is not None and existing["reservation_id"] != reservation_id:
            return call_result.ReserveNow(status="Occupied")
        for other in self.connectors.values():  # same id elsewhere: this one replaces it
            if other.reservation is not None and other.reservation["reservation_id"] == reservation_id:
                other.reservation = None
        expiry = datetime.fromisoformat(expiry_date.replace("Z", "+00:00"))
        connector.reservation = {
            "reservation_id": reservation_id,
            "id_tag": id_tag,
            "parent_id_tag": parent_id_tag,
            "expiry": expiry,
        }
        return call_result.ReserveNow(status="Accepted")

    @after(Action.reserve_now)
    def after_reserve_now(self, **_: Any) -> None:
        for connector in self.connectors.values():
            self._update_status(connector)

    @on(Action.cancel_reservation)
    def on_cancel_reservation(self, reservation_id: int, **_: Any) -> call_result.CancelReservation:
        for connector in self.connectors.values():
            if connector.reservation is not None and connector.reservation["reservation_id"] == reservation_id:
                connector.reservation = None
                return call_result.CancelReservation(status="Accepted")
        return call_result.CancelReservation(status="Rejected")

    @after(Action.cancel_reservation)
    def after_cancel_reservation(self, **_: Any) -> None:
        for connector in self.connectors.values():
            self._update_status(connector)

    @on(Action.get_local_list_version)
    def on_get_local_list_version(self, **_: Any) -> call_result.GetLocalListVersion:
        return call_result.GetLocalListVersion(list_version=self.auth.version)

    @on(Action.send_local_list)
    def on_send_local_list(
        self,
        list_version: int,
        update_type: str,
        local_authorization_list: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> call_result.SendLocalList:
        if local_authorization_list and len(local_authorization_list) > self.config.int("SendLocalListMaxLength"):
            return call_result.SendLocalList(status="Failed")
        return call_result.SendLocalList(status=self.auth.update(list_version, update_type, local_authorization_list))

    @on(Action.get_diagnostics)
    def on_get_diagnostics(self, location: str, **_: Any) -> call_result.GetDiagnostics:
        return call_result.GetDiagnostics(file_name=f"{self.id}-diagnostics.log")

    @after(Action.get_diagnostics)
    async def after_get_diagnostics(self, **_: Any) -> None:
        # No upload happens in the simulator; the status sequence is the one a charger sends (§5.9).
        for status in ("Uploading", "Uploaded"):
            self._enqueue(_Outgoing(call.DiagnosticsStatusNotification(status=status), False))
            await asyncio.sleep(0.05)

    @on(Action.update_firmware)
    def on_update_firmware(self, location: str, retrieve_date: str, **_: Any) -> call_result.UpdateFirmware:
        return call_result.UpdateFirmware()

    @after(Action.update_firmware)
    async def after_update_firmware(self, retrieve_date: str, **_: Any) -> None:
        start = datetime.fromisoformat(retrieve_date.replace("Z", "+00:00"))
        wait = (start - datetime.now(UTC)).total_seconds()
        await asyncio.sleep(min(max(wait, 0.0), 3600.0))
        for status in ("Downloading", "Downloaded", "Installing"):
            self._enqueue(_Outgoing(call.FirmwareStatusNotification(status=status), False))
            await asyncio.sleep(0.05)
        while any(c.tx is not None for c in self.connectors.values()):
            await asyncio.sleep(1.0)  # install only once transactions have finished (§5.19)
        self.spec.firmware = self.spec.firmware + "+1"
        self._enqueue(_Outgoing(call.FirmwareStatusNotification(status="Installed"), False))


class _Skip(Exception):
    """Raised by a lazy payload builder: the message no longer needs sending."""
