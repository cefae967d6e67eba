"""Raceway fill: Chapter 9 Tables 1 (percent), 4 (raceway areas) and 5 (conductor areas)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from evsite.code.calc.common import CalcError, Result, conductor_size, fmt
from evsite.code.tables.chapter9_table1 import allowed_fill_pct
from evsite.code.tables.chapter9_table4 import RACEWAY_NAMES, TABLE_4_AREA_IN2
from evsite.code.tables.chapter9_table5 import TABLE_5_AREA_IN2

_RACEWAY_ALIASES = {"pvc": "pvc40", "pvc-40": "pvc40", "pvcsch40": "pvc40", "pvc-80": "pvc80", "pvcsch80": "pvc80"}


@dataclass(frozen=True)
class Fill(Result):
    raceway_type: str  # "emt"
    conductor_count: int
    total_area_in2: float
    allowed_pct: float
    min_trade_size: str
    raceway: str  # "3/4 EMT" (the given trade size, else the minimum)
    trade_size: str
    fill_pct: float  # at `trade_size`
    fits: bool
    steps: list[str] = field(default_factory=list)


def raceway_key(raceway_type: str | Enum) -> str:
    text = str(raceway_type.value if isinstance(raceway_type, Enum) else raceway_type).strip().lower()
    text = _RACEWAY_ALIASES.get(text.replace(" ", ""), text.replace(" ", ""))
    if text not in TABLE_4_AREA_IN2:
        raise CalcError(f"unknown raceway {raceway_type!r}; expected one of {', '.join(TABLE_4_AREA_IN2)}")
    return text


def conductor_area(size: str, insulation: str) -> float:
    key = insulation.strip().upper()
    if key not in TABLE_5_AREA_IN2:
        raise CalcError(
            f"no Chapter 9 Table 5 area for insulation {insulation!r}; known: {', '.join(TABLE_5_AREA_IN2)}"
        )
    area = TABLE_5_AREA_IN2[key].get(size)
    if area is None:
        raise CalcError(f"no Chapter 9 Table 5 area for {size} {key}")
    return area


def conduit_fill(
    conductors: Sequence[tuple[int, str, str]], raceway_type: str | Enum, trade_size: str | None = None
) -> Fill:
    """Total conductor area against Table 4 at the Table 1 percentage; EGCs count (Note 3)."""
    key = raceway_key(raceway_type)
    if not conductors:
        raise CalcError("no conductors given for the fill calculation")
    steps: list[str] = []
    total, count = 0.0, 0
    for n, size_text, insulation in conductors:
        if n < 1:
            raise CalcError(f"conductor count must be 1 or more, got {n}")
        size, _ = conductor_size(size_text)
        area = conductor_area(size, insulation)
        total += n * area
        count += n
        steps.append(f"{n} × {size} {insulation.upper()} × {area:.4f} in² = {n * area:.4f} in² (Table 5)")
    allowed = allowed_fill_pct(count)
    steps.append(f"total {total:.4f} in²; {count} conductors → {fmt(allowed, 0)} % allowed (Table 1)")
    areas = TABLE_4_AREA_IN2[key]
    name = RACEWAY_NAMES[key]
    minimum = next((ts for ts, a in areas.items() if total <= a * allowed / 100.0 + 1e-12), None)
    if minimum is None:
        largest = list(areas)[-1]
        raise CalcError(f"{total:.4f} in² does not fit the largest {name} ({largest}) at {fmt(allowed, 0)} %")
    steps.append(
        f"smallest {name}: {minimum} ({areas[minimum]:.3f} in² × {fmt(allowed, 0)} % = "
        f"{areas[minimum] * allowed / 100:.3f} in² ≥ {total:.4f} in², Table 4)"
    )
    chosen = minimum
    if trade_size is not None:
        chosen = trade_size.replace('"', "").replace("in", "").strip()
        if chosen not in areas:
            raise CalcError(f"{name} has no trade size {trade_size!r}; Table 4 lists {', '.join(areas)}")
    pct = total / areas[chosen] * 100.0
    fits = pct <= allowed + 1e-9
    steps.append(f"{total:.4f} in² ÷ {areas[chosen]:.3f} in² ({chosen} {name}) = {fmt(pct, 1)} % fill")
    return Fill(key, count, total, allowed, minimum, f"{chosen} {name}", chosen, pct, fits, steps)
