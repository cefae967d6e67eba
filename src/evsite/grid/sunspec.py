"""SunSpec register images: discovery of the model chain and decoding of the points evsite uses.

Pure functions over lists of 16-bit registers, so they are tested without a socket and shared by
the Modbus client (`evsite.grid.modbus`) and the simulator (`evsite.grid.sim_modbus`).

Offsets below count from a model's ID register (ID at 0, L at 1, body from 2); they follow the
SunSpec Information Model JSON definitions (models 1, 101–103, 111–113, 123, 201–204, 211–214, 701).
A value equal to its type's "not implemented" sentinel decodes to None, never to a number.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from evsite.errors import DeviceError

SUNS = (0x5375, 0x6E53)
"""'SunS' marker at the base address."""
BASE_ADDRESSES = (40000, 0, 50000)
END_MODEL = 0xFFFF
MAX_READ = 125
"""Most registers one Modbus read may return."""

INVERTER_INT_MODELS = (101, 102, 103)
INVERTER_FLOAT_MODELS = (111, 112, 113)
METER_INT_MODELS = (201, 202, 203, 204)
METER_FLOAT_MODELS = (211, 212, 213, 214)
DER_MEASUREMENT_MODEL = 701
CONTROLS_MODEL = 123

INVERTER_STATES = {
    1: "off",
    2: "sleeping",
    3: "starting",
    4: "mppt",
    5: "throttled",
    6: "shutting_down",
    7: "fault",
    8: "standby",
}
DER_STATES = {0: "off", 1: "on"}


class SunSpecError(DeviceError):
    """The device does not present a usable SunSpec register map."""


class RegistersRefused(DeviceError):
    """The device answered a read with a Modbus exception (e.g. illegal data address)."""


@dataclass(frozen=True)
class ModelHeader:
    model_id: int
    address: int  # protocol address of the model's ID register
    length: int  # L: registers after ID and L

    @property
    def size(self) -> int:
        return self.length + 2


# --------------------------------------------------------------------------- primitive decoders


def int16(reg: int) -> int | None:
    return None if reg == 0x8000 else reg - 0x10000 if reg & 0x8000 else reg


def uint16(reg: int) -> int | None:
    return None if reg == 0xFFFF else reg


def sunssf(reg: int) -> int | None:
    """Scale factor exponent; outside −10…10 is treated as garbage (SunSpec allows that range)."""
    value = int16(reg)
    return value if value is not None and -10 <= value <= 10 else None


def acc32(hi: int, lo: int) -> int | None:
    """32-bit accumulator, high word first (SunSpec is big-endian in words and bytes); 0 = not implemented."""
    value = (hi << 16) | lo
    return None if value == 0 else value


def uint32(hi: int, lo: int) -> int | None:
    value = (hi << 16) | lo
    return None if value == 0xFFFFFFFF else value


def acc64(regs: Sequence[int]) -> int | None:
    value = 0
    for reg in regs[:4]:
        value = (value << 16) | reg
    return None if value == 0 else value


def float32(hi: int, lo: int) -> float | None:
    value: float = struct.unpack(">f", struct.pack(">HH", hi, lo))[0]
    return None if math.isnan(value) or math.isinf(value) else value


def string(regs: Sequence[int]) -> str:
    raw = b"".join(struct.pack(">H", r) for r in regs)
    return raw.split(b"\x00", 1)[0].decode("ascii", "replace").strip()


def scaled(value: int | None, sf: int | None) -> float | None:
    if value is None or sf is None:
        return None
    return value * 10.0**sf


def accumulator_delta(previous: int, current: int, bits: int = 32) -> int:
    """Energy between two readings of a wrapping accumulator (one rollover at most)."""
    return (current - previous) % (1 << bits)


# --------------------------------------------------------------------------- encoders (simulator, tests)


def enc_int16(value: int) -> int:
    return value & 0xFFFF


def enc_u32(value: int) -> list[int]:
    return [(value >> 16) & 0xFFFF, value & 0xFFFF]


def enc_float32(value: float) -> list[int]:
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [hi, lo]


def enc_string(text: str, registers: int) -> list[int]:
    raw = text.encode("ascii")[: registers * 2].ljust(registers * 2, b"\x00")
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]


# --------------------------------------------------------------------------- discovery

ReadRegisters = Callable[[int, int], Awaitable[list[int]]]
"""`await read(address, count)` → registers; raises `RegistersRefused` on a Modbus exception answer."""


async def find_base(read: ReadRegisters) -> int:
    """The first of 40000, 0, 50000 holding the 'SunS' marker."""
    for base in BASE_ADDRESSES:
        try:
            regs = await read(base, 2)
        except RegistersRefused:  # nothing mapped at this base: try the next (no connection error is hidden)
            continue
        if tuple(regs[:2]) == SUNS:
            return base
    raise SunSpecError("no 'SunS' marker at 40000, 0 or 50000")


async def discover(read: ReadRegisters, max_models: int = 64) -> list[ModelHeader]:
    """Walk the model chain from the base to the end marker (0xFFFF)."""
    base = await find_base(read)
    address = base + 2
    models: list[ModelHeader] = []
    for _ in range(max_models):
        model_id, length = await read(address, 2)
        if model_id == END_MODEL:
            if not models or models[0].model_id != 1:
                raise SunSpecError("the model chain does not start with the common model (1)")
            return models
        if model_id == 0 or address + 2 + length > 0xFFFF:
            raise SunSpecError(f"garbage model header {model_id}/{length} at {address}")
        models.append(ModelHeader(model_id, address, length))
        address += 2 + length
    raise SunSpecError(f"no end marker after {max_models} models")


async def read_model(read: ReadRegisters, header: ModelHeader) -> list[int]:
    """All registers of one model including ID and L, in reads of at most 125 registers."""
    regs: list[int] = []
    while len(regs) < header.size:
        count = min(MAX_READ, header.size - len(regs))
        regs.extend(await read(header.address + len(regs), count))
    return regs


# --------------------------------------------------------------------------- decoded readings


@dataclass(frozen=True)
class CommonInfo:
    manufacturer: str
    model: str
    version: str
    serial: str


@dataclass
class Measurement:
    """One device reading in SI units; None where the device does not implement a point.

    Sign conventions: meters report +W for import (consumption from the grid); inverters report
    +W for generation. Per-line power lets callers compute signed per-line currents.
    """

    model_id: int
    power_w: float | None = None
    current_a: dict[str, float] = field(default_factory=dict)
    voltage_v: dict[str, float] = field(default_factory=dict)
    line_power_w: dict[str, float] = field(default_factory=dict)
    frequency_hz: float | None = None
    energy_import_wh: float | None = None
    energy_export_wh: float | None = None
    status: str | None = None
    energy_modulus_wh: float | None = None  # where the energy counters wrap (acc32 × 10^SF), None = never


def decode_common(regs: Sequence[int]) -> CommonInfo:
    return CommonInfo(string(regs[2:18]), string(regs[18:34]), string(regs[42:50]), string(regs[50:66]))


def _lines(names: Sequence[str], values: Sequence[float | None]) -> dict[str, float]:
    return {n: v for n, v in zip(names, values, strict=False) if v is not None}


L123 = ("L1", "L2", "L3")


def decode_inverter_int(regs: Sequence[int]) -> Measurement:
    """Models 101/102/103 (integer + scale factor)."""
    a_sf, v_sf, w_sf, hz_sf, wh_sf = (sunssf(regs[i]) for i in (6, 13, 15, 17, 26))
    n = {101: 1, 102: 2, 103: 3}.get(regs[0], 3)
    return Measurement(
        model_id=regs[0],
        power_w=scaled(int16(regs[14]), w_sf),
        current_a=_lines(L123[:n], [scaled(uint16(regs[i]), a_sf) for i in (3, 4, 5)]),
        voltage_v=_lines(L123[:n], [scaled(uint16(regs[i]), v_sf) for i in (10, 11, 12)]),
        frequency_hz=scaled(uint16(regs[16]), hz_sf),
        energy_export_wh=scaled(acc32(regs[24], regs[25]), wh_sf),
        status=INVERTER_STATES.get(regs[38]),
        energy_modulus_wh=scaled(1 << 32, wh_sf),
    )


def decode_inverter_float(regs: Sequence[int]) -> Measurement:
    """Models 111/112/113 (float32)."""
    n = {111: 1, 112: 2, 113: 3}.get(regs[0], 3)

    def f(i: int) -> float | None:
        return float32(regs[i], regs[i + 1])

    return Measurement(
        model_id=regs[0],
        power_w=f(22),
        current_a=_lines(L123[:n], [f(i) for i in (4, 6, 8)]),
        voltage_v=_lines(L123[:n], [f(i) for i in (16, 18, 20)]),
        frequency_hz=f(24),
        energy_export_wh=f(32),
        status=INVERTER_STATES.get(regs[48]),
    )


def decode_der_measurement(regs: Sequence[int]) -> Measurement:
    """Model 701 (IEEE 1547-2018 DER AC measurement); +W is generation."""
    a_sf, v_sf, hz_sf, w_sf = (sunssf(regs[i]) for i in (113, 114, 115, 116))
    wh_sf = sunssf(regs[120])
    hz = uint32(regs[17], regs[18])
    return Measurement(
        model_id=701,
        power_w=scaled(int16(regs[10]), w_sf),
        current_a=_lines(L123, [scaled(int16(regs[i]), a_sf) for i in (45, 68, 91)]),
        voltage_v=_lines(L123, [scaled(uint16(regs[i]), v_sf) for i in (47, 70, 93)]),
        line_power_w=_lines(L123, [scaled(int16(regs[i]), w_sf) for i in (41, 64, 87)]),
        frequency_hz=scaled(hz, hz_sf),
        energy_export_wh=scaled(acc64(regs[19:23]), wh_sf),
        energy_import_wh=scaled(acc64(regs[23:27]), wh_sf),
        status=DER_STATES.get(regs[3]),
    )


def decode_meter_int(regs: Sequence[int]) -> Measurement:
    """Models 201/202/203/204 (integer + scale factor)."""
    a_sf, v_sf, hz_sf, w_sf, wh_sf = (sunssf(regs[i]) for i in (6, 15, 17, 22, 54))
    n = {201: 1, 202: 2}.get(regs[0], 3)
    return Measurement(
        model_id=regs[0],
        power_w=scaled(int16(regs[18]), w_sf),
        current_a=_lines(L123[:n], [scaled(int16(regs[i]), a_sf) for i in (3, 4, 5)]),
        voltage_v=_lines(L123[:n], [scaled(int16(regs[i]), v_sf) for i in (8, 9, 10)]),
        line_power_w=_lines(L123[:n], [scaled(int16(regs[i]), w_sf) for i in (19, 20, 21)]),
        frequency_hz=scaled(int16(regs[16]), hz_sf),
        energy_export_wh=scaled(acc32(regs[38], regs[39]), wh_sf),
        energy_import_wh=scaled(acc32(regs[46], regs[47]), wh_sf),
        energy_modulus_wh=scaled(1 << 32, wh_sf),
    )


def decode_meter_float(regs: Sequence[int]) -> Measurement:
    """Models 211/212/213/214 (float32)."""
    n = {211: 1, 212: 2}.get(regs[0], 3)

    def f(i: int) -> float | None:
        return float32(regs[i], regs[i + 1])

    return Measurement(
        model_id=regs[0],
        power_w=f(28),
        current_a=_lines(L123[:n], [f(i) for i in (4, 6, 8)]),
        voltage_v=_lines(L123[:n], [f(i) for i in (12, 14, 16)]),
        line_power_w=_lines(L123[:n], [f(i) for i in (30, 32, 34)]),
        frequency_hz=f(26),
        energy_export_wh=f(60),
        energy_import_wh=f(68),
    )


DECODERS: dict[int, Callable[[Sequence[int]], Measurement]] = {
    **dict.fromkeys(INVERTER_INT_MODELS, decode_inverter_int),
    **dict.fromkeys(INVERTER_FLOAT_MODELS, decode_inverter_float),
    DER_MEASUREMENT_MODEL: decode_der_measurement,
    **dict.fromkeys(METER_INT_MODELS, decode_meter_int),
    **dict.fromkeys(METER_FLOAT_MODELS, decode_meter_float),
}
"""Measurement models in order of preference when a device has several."""

MIN_LENGTH = {
    **dict.fromkeys(INVERTER_INT_MODELS, 50),
    **dict.fromkeys(INVERTER_FLOAT_MODELS, 60),
    701: 121,
    **dict.fromkeys(METER_INT_MODELS, 105),
    **dict.fromkeys(METER_FLOAT_MODELS, 124),
    1: 66,
    123: 24,
}


def measurement_model(models: Sequence[ModelHeader]) -> ModelHeader:
    """The model to poll: a meter or the legacy inverter model, else 701."""
    by_id = {m.model_id: m for m in models}
    for model_id in (*METER_INT_MODELS, *METER_FLOAT_MODELS, *INVERTER_INT_MODELS, *INVERTER_FLOAT_MODELS, 701):
        if model_id in by_id:
            header = by_id[model_id]
            if header.length < MIN_LENGTH[model_id]:
                raise SunSpecError(
                    f"model {model_id} is {header.length} registers long, expected ≥ {MIN_LENGTH[model_id]}"
                )
            return header
    raise SunSpecError(f"no meter or inverter model among {sorted(by_id)}")


# --------------------------------------------------------------------------- model 123 (immediate controls)

WMAXLIMPCT = 5
WMAXLIMPCT_WINTMS = 6
WMAXLIMPCT_RVRTTMS = 7
WMAXLIM_ENA = 9
WMAXLIMPCT_SF = 23
