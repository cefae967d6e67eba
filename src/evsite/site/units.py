"""Quantities with explicit units: lengths and temperatures as they appear in site files.

Site files are written by people who think in feet or metres, °F or °C. We accept a number with its
unit as a string ("75 ft", "23 m", "86 degF") parsed by pint, and store one canonical unit so the
rest of the code never guesses.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import pint


class UnitError(ValueError):
    """A quantity whose unit is missing, unknown or of the wrong dimension."""


@lru_cache(maxsize=1)
def _registry() -> pint.UnitRegistry:
    return pint.UnitRegistry(autoconvert_offset_to_baseunit=True)


def _parse(text: str, dimension: str, expected: str) -> pint.Quantity:
    cleaned = text.strip().replace("°", "deg").replace("″", "inch").replace("′", "ft")
    cleaned = cleaned.replace("degF", " degF").replace("degC", " degC")
    try:
        quantity: Any = _registry().Quantity(cleaned)
    except Exception as exc:  # pint raises several unrelated types for bad text
        raise UnitError(f"cannot read {text!r} as a quantity; expected {expected}") from exc
    if not isinstance(quantity, pint.Quantity) or quantity.dimensionless:
        raise UnitError(f"{text!r} has no unit; expected {expected}")
    if not quantity.check(dimension):
        raise UnitError(f"{text!r} is not a {dimension.strip('[]')}; expected {expected}")
    return quantity


def parse_length_ft(value: Any) -> float:
    """Read a length written with its unit ("75 ft", "23 m", "300 in") and return feet."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise UnitError(f"{value!r} has no unit; expected a length such as '75 ft' or '23 m'")
    quantity = _parse(value, "[length]", "a length such as '75 ft' or '23 m'")
    return float(quantity.to("ft").magnitude)


def parse_temperature_c(value: Any) -> float:
    """Read a temperature written with its unit ("86 degF", "30 degC", "30 °C") and return °C."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise UnitError(f"{value!r} has no unit; expected a temperature such as '30 °C' or '86 °F'")
    quantity = _parse(value, "[temperature]", "a temperature such as '30 °C' or '86 °F'")
    return float(quantity.to("degC").magnitude)


def metres_to_feet(metres: float) -> float:
    return metres / 0.3048


def fahrenheit_to_celsius(fahrenheit: float) -> float:
    return (fahrenheit - 32.0) * 5.0 / 9.0
