"""Quantities with explicit units: lengths and temperatures as they appear in site files.

Site files are written by people who think in feet or metres, °F or °C. We accept a number with its
unit as a string ("75 ft", "23 m", "86 degF") parsed by pint, and store one canonical unit so the
rest of the code never guesses.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from evsite.errors import ConfigurationError

if TYPE_CHECKING:
    import pint


class UnitError(ConfigurationError):
    """A quantity whose unit is missing, unknown or of the wrong dimension."""


# The units nearly every site file uses, read without pint: importing pint and building its registry
# takes ~0.5 s, more than the whole design check. Anything else goes to pint. Factors are exact.
_NUMBER_UNIT = re.compile(r"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z°]+)\s*")
_FEET_PER = {"ft": 1.0, "feet": 1.0, "foot": 1.0, "in": 1 / 12, "inch": 1 / 12, "inches": 1 / 12,
             "yd": 3.0, "m": 1 / 0.3048, "metre": 1 / 0.3048, "metres": 1 / 0.3048, "meter": 1 / 0.3048,
             "meters": 1 / 0.3048}  # fmt: skip
_TO_CELSIUS = {"degC": lambda t: t, "°C": lambda t: t, "degF": lambda t: (t - 32.0) * 5.0 / 9.0,
               "°F": lambda t: (t - 32.0) * 5.0 / 9.0}  # fmt: skip


def _common(text: str, table: dict[str, Any]) -> float | None:
    """The value in the target unit for the plain forms in `table`; None when pint must decide."""
    match = _NUMBER_UNIT.fullmatch(text)
    if match is None or match.group(2) not in table:
        return None
    number, unit = float(match.group(1)), table[match.group(2)]
    return float(unit(number)) if callable(unit) else number * unit


@lru_cache(maxsize=1)
def _registry() -> pint.UnitRegistry:
    import pint

    return pint.UnitRegistry(autoconvert_offset_to_baseunit=True)


_MAX_QUANTITY_CHARS = 64
"""Longer text is no quantity a person wrote; pint is not asked to tokenise a megabyte of it."""


def _parse(text: str, dimension: str, expected: str) -> pint.Quantity:
    import pint

    if len(text) > _MAX_QUANTITY_CHARS:
        raise UnitError(f"{text[:20]!r}… ({len(text):,} characters) is too long to be a quantity; expected {expected}")

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
    common = _common(value, _FEET_PER)
    if common is not None:
        return common
    quantity = _parse(value, "[length]", "a length such as '75 ft' or '23 m'")
    return float(quantity.to("ft").magnitude)


def parse_temperature_c(value: Any) -> float:
    """Read a temperature written with its unit ("86 degF", "30 degC", "30 °C") and return °C."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise UnitError(f"{value!r} has no unit; expected a temperature such as '30 °C' or '86 °F'")
    common = _common(value, _TO_CELSIUS)
    if common is not None:
        return common
    quantity = _parse(value, "[temperature]", "a temperature such as '30 °C' or '86 °F'")
    return float(quantity.to("degC").magnitude)


def metres_to_feet(metres: float) -> float:
    return metres / 0.3048


def fahrenheit_to_celsius(fahrenheit: float) -> float:
    return (fahrenheit - 32.0) * 5.0 / 9.0
