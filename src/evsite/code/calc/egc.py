"""Equipment grounding conductor size: Table 250.122, with 250.122(B) proportional upsizing."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from evsite.code.calc.common import CalcError, Result, conductor_size, fmt, label, material_key, require_positive
from evsite.code.tables.chapter9_table8 import CIRCULAR_MILS
from evsite.code.tables.table_250_122 import TABLE_250_122
from evsite.site.conductors import SIZES


@dataclass(frozen=True)
class Egc(Result):
    egc: str  # "10 AWG Cu"
    table_egc: str  # before 250.122(B)
    ratio: float  # installed / minimum phase cmil (1 when not upsized)
    ocpd_a: float
    steps: list[str] = field(default_factory=list)


def egc_size(
    ocpd_a: float, material: str | Enum = "cu", phase_installed: str | None = None, phase_min: str | None = None
) -> Egc:
    """Minimum EGC for the OCPD ahead of it; increased in proportion when the phase conductors were
    upsized beyond the minimum (e.g. for voltage drop), capped at the phase size (250.122(A))."""
    require_positive("OCPD rating", ocpd_a)
    mat = material_key(material)
    row = next((r for r in TABLE_250_122 if ocpd_a <= r[0]), None)
    if row is None:
        raise CalcError(f"{fmt(ocpd_a)} A is beyond Table 250.122 (max 6000 A)")
    table_size = row[1] if mat == "cu" else row[2]
    steps = [f"Table 250.122: OCPD {fmt(ocpd_a)} A (≤ {row[0]} A row) → {label(table_size, mat)}"]
    size, ratio = table_size, 1.0
    if (phase_installed is None) != (phase_min is None):
        raise CalcError("give both the installed and the minimum phase conductor for 250.122(B)")
    if phase_installed is not None and phase_min is not None:
        installed, installed_mat = conductor_size(phase_installed)
        minimum, minimum_mat = conductor_size(phase_min, installed_mat)
        if installed_mat != minimum_mat:
            raise CalcError("installed and minimum phase conductors must be the same material")
        ratio = CIRCULAR_MILS[installed] / CIRCULAR_MILS[minimum]
        if ratio > 1.0 + 1e-9:
            needed = CIRCULAR_MILS[table_size] * ratio
            steps.append(
                f"250.122(B): {CIRCULAR_MILS[installed]:,} cmil ÷ {CIRCULAR_MILS[minimum]:,} cmil = {ratio:.3f}"
            )
            size = next(s for s in SIZES if CIRCULAR_MILS[s] >= needed - 1e-6)
            steps.append(
                f"{CIRCULAR_MILS[table_size]:,} cmil × {ratio:.3f} = {needed:,.0f} cmil → {label(size, mat)} "
                f"({CIRCULAR_MILS[size]:,} cmil)"
            )
            if installed_mat == mat and CIRCULAR_MILS[size] > CIRCULAR_MILS[installed]:
                size = installed
                steps.append(f"250.122(A): need not exceed the phase conductors → {label(size, mat)}")
        else:
            steps.append("phase conductors not upsized: no 250.122(B) increase")
    return Egc(label(size, mat), label(table_size, mat), ratio, float(ocpd_a), steps)
