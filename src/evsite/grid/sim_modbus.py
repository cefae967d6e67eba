"""A PV inverter and site meters on a loopback Modbus TCP port, driven by a day profile.

`evsite sim modbus` serves (pymodbus server, SunSpec at 40000):
  unit 1        inverter: common model 1, model 101 (1 phase) or 103 (3 phases), model 123 controls
  units 2, 3 …  meters: common model 1, model 202 (split phase) or 203 (three phase)
  further units optionally as a register-map meter (e.g. `eastron-sdm630`) for non-SunSpec tests.

The site meter reads load + EV − PV (+ import). PV follows a clear-sky bell between 06:30 and 19:30,
times a cloud factor in the `cloudy` profile (a cloud every 20 min, 4 min at 30 %, 30 s edges). The
inverter honours WMaxLimPct/WMaxLim_Ena and its revert timeout. Faults for tests: `fault="slow"`
delays every answer, `fault="garbage"` fills the measurement registers with noise.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from evsite.grid import sunspec as ss
from evsite.grid.regmap import load_map

ProfileName = Literal["sunny", "cloudy", "night", "flat"]
BASE = 40000


def clear_sky(hour: float) -> float:
    """Fraction of rated PV output on a clear day (0 at night)."""
    if not 6.5 < hour < 19.5:
        return 0.0
    return math.sin(math.pi * (hour - 6.5) / 13.0) ** 1.2


def cloud_factor(sim_s: float, period_s: float = 1200.0, cloud_s: float = 240.0, edge_s: float = 30.0) -> float:
    """1.0 in sun, 0.3 under a passing cloud, with linear edges (a transient the controller must ride)."""
    t = sim_s % period_s
    depth = 0.7
    if t < edge_s:
        return 1.0 - depth * t / edge_s
    if t < cloud_s - edge_s:
        return 1.0 - depth
    if t < cloud_s:
        return 1.0 - depth * (cloud_s - t) / edge_s
    return 1.0


def residential_load_w(hour: float) -> float:
    """Household load: base plus morning and evening peaks."""
    return 500.0 + 800.0 * math.exp(-(((hour - 7.5) / 1.0) ** 2)) + 2500.0 * math.exp(-(((hour - 19.0) / 2.0) ** 2))


@dataclass
class SimState:
    """The physical site the registers describe (W, + = import at the meter, + = generation at the inverter)."""

    pv_rating_w: float = 7600.0
    profile: ProfileName = "sunny"
    start_hour: float = 12.0
    speed: float = 1.0  # simulated seconds per wall second
    v_ln: float = 120.0
    lines: int = 2
    load_w: Callable[[float], float] = residential_load_w
    ev_power_w: float = 0.0
    limit_pct: float = 100.0
    limit_enabled: bool = False
    limit_written_at: float = 0.0
    limit_revert_s: int = 0
    pv_wh: float = 5_000_000.0
    import_wh: float = 12_000_000.0
    export_wh: float = 3_000_000.0
    _t0: float = field(default_factory=time.monotonic)
    _last: float = field(default_factory=time.monotonic)

    def sim_seconds(self, now: float | None = None) -> float:
        return ((now or time.monotonic()) - self._t0) * self.speed

    def hour(self, now: float | None = None) -> float:
        return (self.start_hour + self.sim_seconds(now) / 3600.0) % 24.0

    def pv_available_w(self, now: float | None = None) -> float:
        if self.profile == "night":
            return 0.0
        if self.profile == "flat":
            return self.pv_rating_w * 0.8
        fraction = clear_sky(self.hour(now))
        if self.profile == "cloudy":
            fraction *= cloud_factor(self.sim_seconds(now))
        return self.pv_rating_w * fraction

    def pv_w(self, now: float | None = None) -> float:
        now = now or time.monotonic()
        if self.limit_enabled and self.limit_revert_s and now - self.limit_written_at > self.limit_revert_s:
            self.limit_enabled = False  # the inverter falls back by itself when the controller goes quiet
        cap = self.pv_rating_w * self.limit_pct / 100.0 if self.limit_enabled else math.inf
        return min(self.pv_available_w(now), cap)

    def grid_w(self, now: float | None = None) -> float:
        return self.load_w(self.hour(now)) + self.ev_power_w - self.pv_w(now)

    def integrate(self) -> None:
        now = time.monotonic()
        hours = (now - self._last) * self.speed / 3600.0
        self._last = now
        pv, grid = self.pv_w(now), self.grid_w(now)
        self.pv_wh += pv * hours
        if grid >= 0:
            self.import_wh += grid * hours
        else:
            self.export_wh += -grid * hours


# --------------------------------------------------------------------------- register images


def common_model(manufacturer: str, model: str, serial: str, unit: int) -> list[int]:
    return [
        1,
        66,
        *ss.enc_string(manufacturer, 16),
        *ss.enc_string(model, 16),
        *ss.enc_string("", 8),
        *ss.enc_string("1.0.0", 8),
        *ss.enc_string(serial, 16),
        unit,
        0x8000,  # pad
    ]


def inverter_model(state: SimState, phases: int) -> list[int]:
    """Model 101 or 103 with SFs: A −2, V −1, W 0, Hz −2, WH 0."""
    regs = [0x8000] * 52
    regs[0], regs[1] = (101 if phases == 1 else 103), 50
    w = state.pv_w()
    v = state.v_ln * (2 if phases == 1 and state.lines == 2 else 1)
    amps = w / (v * phases) if w > 0 else 0.0
    regs[2] = round(amps * phases * 100)
    for i in range(3):
        regs[3 + i] = round(amps * 100) if i < phases else 0xFFFF
        regs[10 + i] = round(v * 10) if i < phases else 0xFFFF
    regs[6], regs[13], regs[15], regs[17], regs[26] = ss.enc_int16(-2), ss.enc_int16(-1), 0, ss.enc_int16(-2), 0
    regs[14] = ss.enc_int16(round(w))
    regs[16] = 6000
    regs[24:26] = ss.enc_u32(int(state.pv_wh) % (1 << 32) or 1)
    regs[38] = (5 if state.limit_enabled else 4) if w > 0 else 2  # throttled / MPPT / sleeping
    return regs


def controls_model(state: SimState) -> list[int]:
    regs = [0x8000 if i in (10, 15, 16, 17) else 0 for i in range(26)]
    regs[0], regs[1] = 123, 24
    regs[4] = 1  # connected
    regs[5] = round(state.limit_pct)  # WMaxLimPct with SF 0
    regs[7] = state.limit_revert_s
    regs[9] = 1 if state.limit_enabled else 0
    regs[23] = 0
    return regs


def meter_model(state: SimState, grid_w: float, import_wh: float, export_wh: float) -> list[int]:
    """Model 202 (split phase) or 203 (wye) with SFs: A −2, V −1, Hz −2, W 0, Wh 0."""
    regs = [0x8000] * 107
    regs[0], regs[1] = (202 if state.lines == 2 else 203), 105
    per_line_w = grid_w / state.lines
    amps = abs(per_line_w) / state.v_ln
    regs[2] = ss.enc_int16(round(amps * state.lines * 100))
    for i in range(3):
        present = i < state.lines
        regs[3 + i] = ss.enc_int16(round(amps * 100)) if present else 0x8000
        regs[8 + i] = ss.enc_int16(round(state.v_ln * 10)) if present else 0x8000
        regs[19 + i] = ss.enc_int16(round(per_line_w)) if present else 0x8000
    regs[6], regs[15], regs[17], regs[22], regs[54] = (ss.enc_int16(x) for x in (-2, -1, -2, 0, 0))
    regs[16] = 6000
    regs[18] = ss.enc_int16(round(grid_w))
    regs[38:40] = ss.enc_u32(int(export_wh) % (1 << 32) or 1)
    regs[46:48] = ss.enc_u32(int(import_wh) % (1 << 32) or 1)
    return regs


def sunspec_image(*models: list[int]) -> list[int]:
    image = [*ss.SUNS]
    for model in models:
        image.extend(model)
    return [*image, ss.END_MODEL, 0]


# --------------------------------------------------------------------------- the server


class ModbusSim:
    """The simulated devices on one TCP port; use as `async with ModbusSim(...) as sim:`."""

    def __init__(
        self,
        port: int = 1502,
        host: str = "127.0.0.1",
        state: SimState | None = None,
        inverter_phases: int = 1,
        meter_units: tuple[int, ...] = (2,),
        map_meters: dict[int, str] | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.state = state or SimState()
        self.inverter_phases = inverter_phases
        self.meter_units = meter_units
        self.map_meters = map_meters or {}
        self.fault: Literal["slow", "garbage"] | None = None
        self.slow_s = 5.0
        self.reads = 0
        self._server: ModbusTcpServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._rng = random.Random(7)
        self._ctl_address = 0

    # image layout: inverter = SunS + common(68) + inverter(52) + controls(26) + end
    def _inverter_regs(self) -> list[int]:
        common = common_model("evsite-sim", "PV-INV", "INV0001", 1)
        return sunspec_image(common, inverter_model(self.state, self.inverter_phases), controls_model(self.state))

    def _meter_regs(self, unit: int) -> list[int]:
        common = common_model("evsite-sim", "SITE-METER", f"MTR{unit:04d}", unit)
        if unit == self.meter_units[0]:
            grid, imp, exp = self.state.grid_w(), self.state.import_wh, self.state.export_wh
        else:  # submeters: a quarter of the site load each, never exporting
            grid = max(0.0, self.state.grid_w()) / 4
            imp, exp = self.state.import_wh / 4, 0.0
        return sunspec_image(common, meter_model(self.state, grid, imp, exp))

    def _map_regs(self, name: str) -> list[int]:
        register_map = load_map(name)
        regs = [0] * 0x60
        grid = self.state.grid_w()
        values: dict[str, float] = {
            "power_w": grid,
            "frequency_hz": 60.0,
            "energy_import_wh": self.state.import_wh,
            "energy_export_wh": self.state.export_wh,
        }
        for i, line in enumerate(("L1", "L2", "L3")):
            values[f"voltage_v.{line}"] = self.state.v_ln if i < self.state.lines else 0.0
            values[f"current_a.{line}"] = abs(grid) / self.state.lines / self.state.v_ln if i < self.state.lines else 0
            values[f"line_power_w.{line}"] = grid / self.state.lines if i < self.state.lines else 0.0
        for key, point in register_map.points.items():
            words = register_map.encode_point(point, values[key])
            regs[point.address : point.address + len(words)] = words
        return regs

    def _action(self, unit: int) -> Callable[..., object]:
        async def action(
            func_code: int,
            start: int,
            address: int,
            count: int,
            registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> None:
            self.reads += 1
            if self.fault == "slow":
                await asyncio.sleep(self.slow_s)
            if set_values is not None:
                if unit == 1:
                    self._on_write(address, [int(v) for v in set_values])
                return None
            self.state.integrate()
            if unit == 1:
                image = self._inverter_regs()
            elif unit in self.map_meters:
                image = self._map_regs(self.map_meters[unit])
            else:
                image = self._meter_regs(unit)
            if self.fault == "garbage":
                measured = slice(2 + 68 + 2, 2 + 68 + 2 + 40) if start == BASE else slice(0, 0x50)
                for i in range(measured.start, measured.stop):
                    image[i] = self._rng.randrange(0x10000)
            registers[: len(image)] = image
            return None

        return action

    def _on_write(self, address: int, values: list[int]) -> None:
        ctl = BASE + 2 + 68 + 52  # model 123's ID register
        for i, value in enumerate(values):
            offset = address + i - ctl
            if offset == ss.WMAXLIMPCT:
                self.state.limit_pct = float(value)
            elif offset == ss.WMAXLIMPCT_RVRTTMS:
                self.state.limit_revert_s = value
            elif offset == ss.WMAXLIM_ENA:
                self.state.limit_enabled = value == 1
            if offset in (ss.WMAXLIMPCT, ss.WMAXLIM_ENA):
                self.state.limit_written_at = time.monotonic()

    def _devices(self) -> list[SimDevice]:
        def device(unit: int, start: int, size: int) -> SimDevice:
            data = SimData(start, count=size, values=0, datatype=DataType.REGISTERS)
            return SimDevice(id=unit, simdata=[data], action=self._action(unit))  # type: ignore[arg-type]

        devices = [device(1, BASE, len(self._inverter_regs()))]
        devices += [device(u, BASE, len(self._meter_regs(u))) for u in self.meter_units]
        devices += [device(u, 0, 0x60) for u in self.map_meters]
        return devices

    async def start(self) -> None:
        self._server = ModbusTcpServer(self._devices(), address=(self.host, self.port))
        self._task = asyncio.create_task(self._server.serve_forever())
        for _ in range(100):  # wait until the port accepts connections
            try:
                _, writer = await asyncio.open_connection(self.host, self.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.02)
        raise RuntimeError(f"Modbus simulator did not start on {self.host}:{self.port}")

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def __aenter__(self) -> ModbusSim:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
