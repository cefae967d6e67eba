"""Conductor size names: one spelling for "6", "#6", "6 AWG", "250 MCM" and "250 kcmil".

Sizes are ordered from smallest to largest, the order the sizing rules walk when they look for
the next conductor up.
"""

from __future__ import annotations

import re

from evsite.errors import ConfigurationError

AWG_SIZES: tuple[str, ...] = (
    "18", "16", "14", "12", "10", "8", "6", "4", "3", "2", "1", "1/0", "2/0", "3/0", "4/0",
)  # fmt: skip
KCMIL_SIZES: tuple[int, ...] = (
    250,
    300,
    350,
    400,
    500,
    600,
    700,
    750,
    800,
    900,
    1000,
    1250,
    1500,
    1750,
    2000,
)

SIZES: tuple[str, ...] = tuple(f"{s} AWG" for s in AWG_SIZES) + tuple(f"{k} kcmil" for k in KCMIL_SIZES)
"""Every size in NEC Chapter 9 Table 8, smallest first."""

_PATTERN = re.compile(
    r"^\s*#?\s*(?P<num>\d+(?:/0)?)\s*(?P<unit>awg|kcmil|mcm)?\s*(?P<mat>cu|al|copper|aluminum|aluminium)?\s*$",
    re.IGNORECASE,
)


class ConductorSizeError(ConfigurationError):
    """A conductor size the NEC tables do not list."""


def normalise_size(text: str) -> str:
    """Return the canonical spelling of a conductor size, or raise with the sizes we know."""
    size, _ = parse_conductor(text)
    return size


def parse_conductor(text: str) -> tuple[str, str | None]:
    """Split "6 AWG Cu" into ("6 AWG", "cu"); the material is None when not written."""
    match = _PATTERN.match(text)
    if not match:
        raise ConductorSizeError(f"{text!r} is not a conductor size; expected e.g. '6 AWG', '1/0 AWG', '250 kcmil'")
    num, unit, mat = match["num"], (match["unit"] or "").lower(), (match["mat"] or "").lower()
    material = {"cu": "cu", "copper": "cu", "al": "al", "aluminum": "al", "aluminium": "al"}.get(mat)
    if unit in ("kcmil", "mcm") or (not unit and num.isdigit() and int(num) >= 250):
        if int(num) not in KCMIL_SIZES:
            raise ConductorSizeError(f"{text!r} is not a standard kcmil size; expected one of {list(KCMIL_SIZES)}")
        return f"{int(num)} kcmil", material
    if num not in AWG_SIZES:
        raise ConductorSizeError(f"{text!r} is not a standard AWG size; expected one of 18..4/0 AWG")
    return f"{num} AWG", material


def size_index(size: str) -> int:
    """Position of a size in ascending order (bigger conductor, bigger index)."""
    return SIZES.index(normalise_size(size))
