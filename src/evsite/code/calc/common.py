"""Shared pieces of the calculators: the input error, result serialisation and number formatting."""

from __future__ import annotations

import dataclasses
import math
from enum import Enum
from typing import Any

from evsite.code.findings import Finding
from evsite.errors import InputError
from evsite.site.conductors import ConductorSizeError, parse_conductor


class CalcError(InputError):
    """An input the tables or rules cannot take (unknown size, negative current, missing column)."""


class TooHot(CalcError):
    """The ambient is beyond what the insulation may be used at (Table 310.15(B)(1)(1)): a failure, not a gap."""


MATERIAL_NAMES = {"cu": "Cu", "al": "Al"}
_MATERIAL_ALIASES = {"cu": "cu", "copper": "cu", "al": "al", "aluminum": "al", "aluminium": "al", "cca": "al"}


def material_key(material: str | Enum) -> str:
    """Normalise "Cu", "copper", Material.CU → "cu"."""
    text = str(material.value if isinstance(material, Enum) else material).strip().lower()
    if text not in _MATERIAL_ALIASES:
        raise CalcError(f"unknown conductor material {material!r}; expected cu or al")
    return _MATERIAL_ALIASES[text]


def conductor_size(text: str, material: str | Enum | None = None) -> tuple[str, str]:
    """Read "6 AWG Cu" (or "6" plus a material) into ("6 AWG", "cu"); a written material must agree."""
    try:
        size, written = parse_conductor(str(text))
    except ConductorSizeError as exc:
        raise CalcError(str(exc)) from None
    given = material_key(material) if material is not None else None
    if written and given and written != given:
        raise CalcError(f"conductor {text!r} is {written}, but material {given} was given")
    return size, written or given or "cu"


def label(size: str, material: str) -> str:
    """ "6 AWG" + "cu" → "6 AWG Cu"."""
    return f"{size} {MATERIAL_NAMES[material]}"


def fmt(value: float, digits: int = 2) -> str:
    """A number for arithmetic steps: thousands separators, no trailing zeros ("1,200", "62.5", "0.96")."""
    if math.isinf(value):
        return "∞"
    text = f"{value:,.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def require_positive(name: str, value: float, allow_zero: bool = False) -> float:
    """Reject negative (or zero) physical quantities with one clear message."""
    if value is None or math.isnan(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "greater than zero"
        raise CalcError(f"{name} must be {bound}, got {value}")
    return float(value)


def phases_factor(phases: int) -> tuple[float, str]:
    """The length multiplier of a voltage-drop formula: 2 for single phase, √3 for three phase."""
    if phases == 1:
        return 2.0, "2"
    if phases == 3:
        return math.sqrt(3.0), "√3"
    raise CalcError(f"phases must be 1 or 3, got {phases}")


def line_current_a(va: float, volts: float, phases: int) -> float:
    """Current drawn by a load of `va` volt-amperes at line-to-line `volts`."""
    return va / (volts * math.sqrt(3.0)) if phases == 3 else va / volts


def to_jsonable(value: Any) -> Any:
    """Plain JSON types for a result: dataclasses to dicts, findings via their own to_dict, floats rounded."""
    if isinstance(value, Finding):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    return value


class Result:
    """Mixin for the frozen result dataclasses: `to_dict()` gives the JSON the CLI prints."""

    def to_dict(self) -> dict[str, Any]:
        data = to_jsonable(self)
        assert isinstance(data, dict)
        return data
