"""Register maps for meters that do not speak SunSpec, as data (`evsite/grid/maps/<name>.yaml`).

A map names each point of a `Measurement` (`power_w`, `current_a.L1`, ...) with its address,
type and scale; the site selects one with `modbus.register_map: <name>`. Adding a meter family is
a new YAML file, not new code.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evsite.errors import ConfigurationError
from evsite.grid.sunspec import MAX_READ, Measurement, ReadRegisters

PointType = Literal["int16", "uint16", "int32", "uint32", "float32"]
WIDTH = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2}
POINT_NAMES = ("power_w", "frequency_hz", "energy_import_wh", "energy_export_wh")
LINE_GROUPS = ("current_a", "voltage_v", "line_power_w")


class MapError(ConfigurationError):
    """A register map file is missing or invalid."""


class Point(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address: int = Field(ge=0, le=0xFFFF)
    type: PointType
    scale: float = 1.0


class RegisterMap(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    function: Literal["holding", "input"] = "holding"
    word_order: Literal["big", "little"] = "big"
    points: dict[str, Point]

    def model_post_init(self, _context: object) -> None:
        for key in self.points:
            group, _, line = key.partition(".")
            ok = key in POINT_NAMES or (group in LINE_GROUPS and line in ("L1", "L2", "L3"))
            if not ok:
                raise ValueError(f"unknown point {key!r}")

    def blocks(self, max_gap: int = 8) -> list[tuple[int, int]]:
        """(address, count) reads covering all points; near neighbours share one read."""
        spans = sorted((p.address, p.address + WIDTH[p.type]) for p in self.points.values())
        blocks: list[list[int]] = []
        for start, end in spans:
            if blocks and start - blocks[-1][1] <= max_gap and end - blocks[-1][0] <= MAX_READ:
                blocks[-1][1] = max(blocks[-1][1], end)
            else:
                blocks.append([start, end])
        return [(s, e - s) for s, e in blocks]

    def decode_point(self, point: Point, regs: Sequence[int]) -> float | None:
        words = list(regs[: WIDTH[point.type]])
        if self.word_order == "little":
            words.reverse()
        raw = struct.pack(f">{len(words)}H", *words)
        code = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f"}[point.type]
        value = float(struct.unpack(code, raw)[0])
        if math.isnan(value) or math.isinf(value):
            return None
        return value * point.scale

    def encode_point(self, point: Point, value: float) -> list[int]:
        """Registers a device would hold for `value` (used by the simulator and tests)."""
        raw_value = value / point.scale
        code = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f"}[point.type]
        packed = struct.pack(code, raw_value if point.type == "float32" else round(raw_value))
        words = list(struct.unpack(f">{len(packed) // 2}H", packed))
        if self.word_order == "little":
            words.reverse()
        return words

    async def read(self, read: ReadRegisters) -> Measurement:
        image: dict[int, int] = {}
        for address, count in self.blocks():
            for i, reg in enumerate(await read(address, count)):
                image[address + i] = reg
        out = Measurement(model_id=0)
        for key, point in self.points.items():
            value = self.decode_point(point, [image[point.address + i] for i in range(WIDTH[point.type])])
            if value is None:
                continue
            group, _, line = key.partition(".")
            if line:
                getattr(out, group)[line] = value
            else:
                setattr(out, key, value)
        return out


@cache
def load_map(name: str) -> RegisterMap:
    """The packaged map `name` (file `evsite/grid/maps/<name>.yaml`)."""
    resource = resources.files("evsite.grid.maps").joinpath(f"{name}.yaml")
    if not resource.is_file():
        raise MapError(f"no register map {name!r}; available: {', '.join(available_maps())}")
    try:
        return RegisterMap.model_validate(yaml.safe_load(resource.read_text(encoding="utf-8")))
    except (ValidationError, ValueError, yaml.YAMLError) as exc:
        raise MapError(f"register map {name!r} is invalid: {exc}") from exc


def available_maps() -> list[str]:
    return sorted(
        p.name.removesuffix(".yaml") for p in resources.files("evsite.grid.maps").iterdir() if p.name.endswith(".yaml")
    )
