"""Voltage drop by the K method (Chapter 9 Table 8) or by Table 9 effective impedance.

Single phase uses the round-trip length (2 × L); three phase uses √3 × L. Doubling a three-phase drop
is the classic calculator bug (it overstates the drop by 15 %). Voltage drop limits (3 % branch, 5 %
feeder + branch) are informational notes in the NEC, so callers report them rather than fail on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

from evsite.code.calc.common import CalcError, Result, conductor_size, fmt, label, phases_factor, require_positive
from evsite.code.tables.chapter9_table8 import CIRCULAR_MILS, K_OHM_CMIL_PER_FT
from evsite.code.tables.chapter9_table9 import AC_RESISTANCE_OHM_PER_KFT, REACTANCE_OHM_PER_KFT
from evsite.site.conductors import SIZES

_RACEWAY_KIND = {
    "pvc": "pvc", "pvc40": "pvc", "pvc80": "pvc", "ent": "pvc", "nonmetallic": "pvc", "cable": "pvc", "none": "pvc",
    "al": "al", "aluminum": "al", "aluminium": "al",
    "steel": "steel", "emt": "steel", "rmc": "steel", "imc": "steel", "fmc": "steel", "lfmc": "steel",
}  # fmt: skip


@dataclass(frozen=True)
class VoltageDrop(Result):
    conductor: str
    amps: float
    volts: float
    phases: int
    length_ft: float
    method: str  # "K" or "Table 9"
    voltage_drop_v: float
    voltage_drop_pct: float
    pf: float | None = None
    raceway: str | None = None
    steps: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DropSizing(Result):
    """The smallest conductor that keeps the drop within `max_pct`."""

    min_conductor: str
    max_pct: float
    voltage_drop_v: float
    voltage_drop_pct: float
    method: str
    steps: list[str] = field(default_factory=list)


def raceway_kind(raceway: str | Enum) -> str:
    text = str(raceway.value if isinstance(raceway, Enum) else raceway).strip().lower().replace(" ", "")
    if text not in _RACEWAY_KIND:
        raise CalcError(f"unknown raceway {raceway!r} for Table 9; expected pvc, al or steel (or emt, rmc, ...)")
    return _RACEWAY_KIND[text]


def voltage_drop(
    size: str,
    material: str | Enum | None,
    amps: float,
    volts: float,
    phases: int = 1,
    length_ft: float = 0.0,
    pf: float | None = None,
    raceway: str | Enum = "pvc",
) -> VoltageDrop:
    """Drop over a one-way `length_ft`: K method when no power factor is given, else Table 9 R and X."""
    size, mat = conductor_size(size, material)
    require_positive("current", amps, allow_zero=True)
    require_positive("voltage", volts)
    require_positive("length", length_ft, allow_zero=True)
    mult, mult_text = phases_factor(phases)
    name = label(size, mat)
    if pf is None:
        k = K_OHM_CMIL_PER_FT[mat]
        cmil = CIRCULAR_MILS[size]
        vd = mult * k * amps * length_ft / cmil
        steps = [
            f"K method: VD = {mult_text} × K × I × L ÷ cmil "
            f"({'single phase: out and back' if phases == 1 else 'three phase'})",
            f"VD = {mult_text} × {k} Ω·cmil/ft × {fmt(amps)} A × {fmt(length_ft)} ft ÷ {cmil:,} cmil = {fmt(vd)} V",
        ]
        method, kind = "K", None
    else:
        if not 0 < pf <= 1:
            raise CalcError(f"power factor must be in (0, 1], got {pf}")
        kind = raceway_kind(raceway)
        r = AC_RESISTANCE_OHM_PER_KFT[mat][kind].get(size)
        x = REACTANCE_OHM_PER_KFT[kind].get(size)
        if r is None or x is None:
            raise CalcError(f"Chapter 9 Table 9 has no values for {name}; use the K method (no --pf)")
        sin = math.sqrt(1.0 - pf * pf)
        ze = r * pf + x * sin
        vd = mult * amps * ze * length_ft / 1000.0
        steps = [
            f"Table 9 ({kind} raceway): R = {r} Ω/kft, XL = {x} Ω/kft",
            f"Ze = R × PF + XL × sin θ = {r} × {pf:g} + {x} × {sin:.3f} = {ze:.4f} Ω/kft",
            f"VD = {mult_text} × {fmt(amps)} A × {ze:.4f} Ω/kft × {fmt(length_ft)} ft ÷ 1000 = {fmt(vd)} V",
        ]
        method = "Table 9"
    pct = vd / volts * 100.0
    steps.append(f"{fmt(vd)} V ÷ {fmt(volts)} V = {fmt(pct)} %")
    return VoltageDrop(name, float(amps), float(volts), phases, float(length_ft), method, vd, pct, pf, kind, steps)


def min_conductor_for_drop(
    material: str | Enum,
    amps: float,
    volts: float,
    phases: int,
    length_ft: float,
    max_pct: float,
    pf: float | None = None,
    raceway: str | Enum = "pvc",
    min_size: str = "14 AWG",
) -> DropSizing:
    """Smallest conductor, from `min_size` up, whose drop is at most `max_pct` of `volts`."""
    require_positive("maximum voltage drop", max_pct)
    start_size, mat = conductor_size(min_size, material)
    for size in SIZES[SIZES.index(start_size) :]:
        try:
            vd = voltage_drop(size, mat, amps, volts, phases, length_ft, pf, raceway)
        except CalcError as exc:
            if "Table 9 has no values" in str(exc):
                continue
            raise
        if vd.voltage_drop_pct <= max_pct + 1e-9:
            steps = [*vd.steps, f"{fmt(vd.voltage_drop_pct)} % ≤ {fmt(max_pct)} %: smallest size is {vd.conductor}"]
            return DropSizing(vd.conductor, max_pct, vd.voltage_drop_v, vd.voltage_drop_pct, vd.method, steps)
    raise CalcError(f"no single conductor keeps the drop within {fmt(max_pct)} %; use parallel sets")
