"""Modbus TCP meters and PV inverters → evsite run-time events.

`ModbusDevice` reads one device (SunSpec, discovered automatically, or a YAML register map) with
pymodbus; `DevicePoller` polls it at the configured interval and publishes what the load manager
needs on the `EventBus`:

- every good reading: a `MeterSample` (source = meter or inverter id, connector 0);
- building load (non-EV current per line) on the node the meter measures, from a meter with role
  `building` directly, and from a site/panel meter that a `BuildingLoad` is `metered_by` as
  meter − EV current on that node when the runtime passes `ev_current` (without it, the load
  manager keeps assuming the design peak, which is safe);
- the site meter of a site with PV: `SiteSignal(kind="pv_surplus")`, the current the EVs could take
  from the sun per line: the export plus the EV current already flowing through the node (with
  `ev_current`; without it, the export alone);
- no good reading for `stale_after_s`: the same signals with `stale=True` and no values, every poll
  until the device answers again. Old values are never re-sent as fresh.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from evsite import errors
from evsite.grid import sunspec
from evsite.grid.regmap import RegisterMap, load_map
from evsite.grid.sunspec import CommonInfo, Measurement, ModelHeader
from evsite.runtime.events import Event, EventBus, MeterSample, SiteSignal
from evsite.site.model import ModbusEndpoint, Site

log = logging.getLogger(__name__)


class DeviceError(errors.DeviceError):
    """The device did not answer, answered with an exception, or sent registers that make no sense."""


class DeviceRefused(DeviceError, sunspec.RegistersRefused):
    """The device answered with a Modbus exception response."""


class ModbusDevice:
    """One Modbus TCP device read through pymodbus; reconnects on the next read after an error."""

    def __init__(self, endpoint: ModbusEndpoint, timeout_s: float = 1.0) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self._client: AsyncModbusTcpClient | None = None
        self._map: RegisterMap | None = None if endpoint.register_map == "sunspec" else load_map(endpoint.register_map)
        self.models: list[ModelHeader] = []
        self.common: CommonInfo | None = None

    async def _connected(self) -> AsyncModbusTcpClient:
        if self._client is None or not self._client.connected:
            self.close()
            client = AsyncModbusTcpClient(
                self.endpoint.host, port=self.endpoint.port, timeout=self.timeout_s, retries=0, reconnect_delay=0
            )
            try:
                ok = await asyncio.wait_for(client.connect(), self.timeout_s)
            except TimeoutError:
                ok = False
            if not ok:
                client.close()
                raise DeviceError(f"cannot connect to {self.endpoint.host}:{self.endpoint.port}")
            self._client = client
        return self._client

    async def read_registers(self, address: int, count: int, function: str = "holding") -> list[int]:
        client = await self._connected()
        call = client.read_input_registers if function == "input" else client.read_holding_registers
        try:
            rr = await asyncio.wait_for(call(address, count=count, device_id=self.endpoint.unit_id), self.timeout_s)
        except (TimeoutError, ModbusException) as exc:
            self.close()  # a late answer must not be matched to the next request
            raise DeviceError(f"read {count}@{address}: {exc or 'timeout'}") from exc
        if rr.isError():
            raise DeviceRefused(f"read {count}@{address}: device answered {rr}")
        if len(rr.registers) != count:
            raise DeviceError(f"read {count}@{address}: got {len(rr.registers)} registers")
        return list(rr.registers)

    async def write_registers(self, address: int, values: list[int]) -> None:
        client = await self._connected()
        try:
            rr = await asyncio.wait_for(
                client.write_registers(address, values, device_id=self.endpoint.unit_id), self.timeout_s
            )
        except (TimeoutError, ModbusException) as exc:
            self.close()
            raise DeviceError(f"write {len(values)}@{address}: {exc or 'timeout'}") from exc
        if rr.isError():
            raise DeviceError(f"write {len(values)}@{address}: device answered {rr}")

    async def discover(self) -> list[ModelHeader]:
        """SunSpec model chain (cached until `close`)."""
        if not self.models:

            async def read(address: int, count: int) -> list[int]:
                return await self.read_registers(address, count)

            try:
                models = await sunspec.discover(read)
                self.common = sunspec.decode_common(await sunspec.read_model(read, models[0]))
            except sunspec.SunSpecError as exc:
                raise DeviceError(str(exc)) from exc
            self.models = models
        return self.models

    async def read(self) -> Measurement:
        if self._map is not None:
            register_map = self._map

            async def read_fn(address: int, count: int) -> list[int]:
                return await self.read_registers(address, count, register_map.function)

            return await register_map.read(read_fn)
        models = await self.discover()
        try:
            header = sunspec.measurement_model(models)
            regs = await sunspec.read_model(self.read_registers, header)
            if regs[0] != header.model_id:
                self.models = []  # the map moved (firmware update, reboot): rediscover next time
                raise DeviceError(f"model {header.model_id} no longer at {header.address}")
            return sunspec.DECODERS[header.model_id](regs)
        except sunspec.SunSpecError as exc:
            raise DeviceError(str(exc)) from exc

    async def set_power_limit_pct(self, pct: float | None, revert_s: int) -> None:
        """Cap inverter output to `pct` % of WMax (SunSpec model 123); None removes the cap.

        The revert timeout makes the inverter drop the cap by itself if evsite stops refreshing it,
        so a crashed controller cannot leave PV curtailed forever; call again well before it expires.
        """
        models = {m.model_id: m for m in await self.discover()}
        if sunspec.CONTROLS_MODEL not in models:
            raise DeviceError("inverter has no SunSpec model 123 (immediate controls)")
        base = models[sunspec.CONTROLS_MODEL].address
        if pct is None:
            await self.write_registers(base + sunspec.WMAXLIM_ENA, [0])
            return
        if not 0 <= pct <= 100:
            raise ValueError(f"power limit {pct} % outside 0–100 %")
        sf = sunspec.sunssf((await self.read_registers(base + sunspec.WMAXLIMPCT_SF, 1))[0])
        if sf is None:
            raise DeviceError("WMaxLimPct_SF not implemented")
        raw = round(pct / 10.0**sf)
        await self.write_registers(base + sunspec.WMAXLIMPCT, [raw, 0, max(0, min(revert_s, 0xFFFE))])
        await self.write_registers(base + sunspec.WMAXLIM_ENA, [1])

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self.models = []


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Binding:
    """What a device's readings mean to the load manager."""

    device_id: str
    kind: Literal["meter", "inverter"]
    node: str
    role: str  # MeterRole value, or "pv" for inverters
    pv_surplus: bool = False  # the site meter of a site with PV
    building: bool = False  # its readings give the building (non-EV) load on `node`


def bindings(site: Site) -> list[tuple[Binding, ModbusEndpoint]]:
    """Every Modbus device of the site with the signals it feeds."""
    has_pv = bool(site.inverters)
    metering_buildings = {load.metered_by for load in site.building_loads}
    out: list[tuple[Binding, ModbusEndpoint]] = []
    for meter in site.meters:
        if meter.modbus is not None:
            surplus = has_pv and meter.role.value == "site"
            building = meter.role.value == "building" or meter.id in metering_buildings
            binding = Binding(meter.id, "meter", meter.measures, meter.role.value, surplus, building)
            out.append((binding, meter.modbus))
    for inverter in site.inverters:
        if inverter.modbus is not None:
            out.append((Binding(inverter.id, "inverter", inverter.panel, "pv"), inverter.modbus))
    return out


def _signed_line_current(m: Measurement) -> dict[str, float]:
    """Per-line current, + for import; the sign comes from the per-line (or total) power."""
    out: dict[str, float] = {}
    for line, amps in m.current_a.items():
        power = m.line_power_w.get(line, m.power_w)
        out[line] = -abs(amps) if power is not None and power < 0 else abs(amps)
    return out


EvCurrent = Callable[[str], dict[str, float] | None]
"""`ev_current(node)` → EV current per line now flowing through `node` (None if unknown)."""


def fresh_events(binding: Binding, m: Measurement, at: datetime, ev_current: EvCurrent | None = None) -> list[Event]:
    events: list[Event] = [
        MeterSample(
            source=binding.device_id,
            connector_id=0,
            at=at,
            energy_wh=m.energy_import_wh if binding.kind == "meter" else m.energy_export_wh,
            power_w=m.power_w,
            current_a=dict(m.current_a),
            voltage_v=dict(m.voltage_v),
        )
    ]
    signed = _signed_line_current(m)
    # A meter with EVs behind it reads net of their current: one look at it serves both signals.
    wants_ev = binding.pv_surplus or (binding.building and binding.role != "building")
    ev = ev_current(binding.node) if wants_ev and ev_current is not None else None
    if binding.building and binding.role == "building":
        events.append(SiteSignal("building_load", binding.node, dict(m.current_a), binding.device_id, at=at))
    elif binding.building and ev is not None:
        # PV on the node makes meter − EV smaller than the building really is; clamping at 0 and
        # ignoring the PV credit errs on the safe side.
        non_ev = {line: max(0.0, amps - ev.get(line, 0.0)) for line, amps in signed.items()}
        events.append(SiteSignal("building_load", binding.node, non_ev, binding.device_id, at=at))
    if binding.pv_surplus:
        # What the EVs could take from the sun: the export plus the EV current already flowing (the
        # meter sees only the net). Without EV currents, the export alone: never more than there is.
        surplus = {line: max(0.0, (ev or {}).get(line, 0.0) - a) for line, a in signed.items()}
        events.append(SiteSignal("pv_surplus", binding.node, surplus, binding.device_id, at=at))
    return events


def stale_events(binding: Binding, at: datetime) -> list[Event]:
    events: list[Event] = []
    if binding.building:
        events.append(SiteSignal("building_load", binding.node, {}, binding.device_id, at=at, stale=True))
    if binding.pv_surplus:
        events.append(SiteSignal("pv_surplus", binding.node, {}, binding.device_id, at=at, stale=True))
    return events


class DevicePoller:
    """Polls one device forever; `run()` returns only when cancelled."""

    def __init__(
        self, binding: Binding, device: ModbusDevice, bus: EventBus, ev_current: EvCurrent | None = None
    ) -> None:
        self.binding = binding
        self.ev_current = ev_current
        self.device = device
        self.bus = bus
        self.last_ok: float | None = None  # monotonic time of the last good reading
        self.last: Measurement | None = None
        self.errors = 0
        self._started = time.monotonic()
        self._wraps: dict[str, tuple[float, int]] = {}  # counter → (last raw value, rollovers seen)

    def _unwrap(self, m: Measurement) -> None:
        """Make wrapping 32-bit energy counters monotonic across rollovers."""
        if m.energy_modulus_wh is None:
            return
        for name in ("energy_import_wh", "energy_export_wh"):
            raw = getattr(m, name)
            if raw is None:
                continue
            last, wraps = self._wraps.get(name, (raw, 0))
            if raw < last - m.energy_modulus_wh / 2:
                wraps += 1
            self._wraps[name] = (raw, wraps)
            setattr(m, name, raw + wraps * m.energy_modulus_wh)

    @property
    def stale(self) -> bool:
        since = self.last_ok if self.last_ok is not None else self._started
        return time.monotonic() - since > self.device.endpoint.stale_after_s

    async def poll_once(self) -> Measurement | None:
        now = datetime.now(UTC)
        try:
            m = await self.device.read()
            if m.power_w is None and not m.current_a:
                raise DeviceError("no usable power or current in the registers")
        except Exception as exc:  # DeviceError expected; anything else is logged in full but never ends polling
            self.errors += 1
            if isinstance(exc, DeviceError):
                log.warning("%s: %s", self.binding.device_id, exc)
            else:
                log.exception("%s: unexpected error while polling", self.binding.device_id)
                self.device.close()
            if self.stale:
                for event in stale_events(self.binding, now):
                    self.bus.publish(event)
            return None
        self._unwrap(m)
        self.last_ok, self.last = time.monotonic(), m
        for event in fresh_events(self.binding, m, now, self.ev_current):
            self.bus.publish(event)
        return m

    async def run(self) -> None:
        self._started = time.monotonic()
        try:
            while True:
                started = time.monotonic()
                await self.poll_once()
                await asyncio.sleep(max(0.0, self.device.endpoint.poll_s - (time.monotonic() - started)))
        finally:
            self.device.close()


async def run_site_modbus(site: Site, bus: EventBus, ev_current: EvCurrent | None = None) -> None:
    """Poll every Modbus device of the site until cancelled."""
    pollers = [DevicePoller(b, ModbusDevice(ep), bus, ev_current) for b, ep in bindings(site)]
    async with asyncio.TaskGroup() as tg:
        for poller in pollers:
            tg.create_task(poller.run())
