"""IEEE 519-2022 evaluation at the PCC: TDD and individual current harmonics against Table 2 for the
site's I_SC/I_L, and the voltage limits of Table 1. A design-time estimate is indicative only: the
standard assesses weekly 95th-percentile values of 10-minute aggregates."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from evsite.code.calc.common import CalcError, Result, fmt, require_positive
from evsite.code.tables.ieee519_table1 import TABLE_1
from evsite.code.tables.ieee519_table2 import (
    EVEN_LOW_ORDER_FACTOR,
    EVEN_LOW_ORDER_MAX,
    MAX_ORDER,
    ORDER_RANGES,
    TABLE_2,
)


@dataclass(frozen=True)
class Harmonics(Result):
    volts: float
    isc_over_il: float
    row: str  # "20 ≤ Isc/IL < 50"
    tdd_limit_pct: float
    tdd_pct: float
    thd_i_pct: float | None  # only when the fundamental is given
    individual_pct: dict[int, float]
    individual_limits_pct: dict[int, float]
    thd_v_limit_pct: float
    individual_v_limit_pct: float
    failing_orders: list[int]
    passed: bool
    steps: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        data = super().to_dict()
        data["pass"] = data.pop("passed")
        return data


def voltage_limits(volts: float) -> tuple[float, float]:
    """Table 1: (individual %, THD %) for the bus voltage at the PCC."""
    for upper, individual, thd in TABLE_1:
        if volts <= upper:
            return individual, thd
    raise AssertionError("Table 1 has an open top row")


def current_row(ratio: float) -> tuple[int, str]:
    index = max(i for i, row in enumerate(TABLE_2) if ratio >= row[0])
    low = TABLE_2[index][0]
    high = TABLE_2[index + 1][0] if index + 1 < len(TABLE_2) else None
    text = (
        f"{fmt(low, 0)} ≤ Isc/IL < {fmt(high, 0)}"
        if high and low
        else (f"Isc/IL < {fmt(high or 0, 0)}" if not low else f"Isc/IL ≥ {fmt(low, 0)}")
    )
    return index, text


def individual_limit_pct(order: int, row_index: int) -> float:
    """Table 2 limit for one order, with the 2022 even-harmonic rule (h ≤ 6: 50 %; h > 6: 100 %)."""
    limits = TABLE_2[row_index][1]
    column = next(i for i, (low, high) in enumerate(ORDER_RANGES) if low <= order < high)
    limit = limits[column]
    if order % 2 == 0 and order <= EVEN_LOW_ORDER_MAX:
        limit *= EVEN_LOW_ORDER_FACTOR
    return limit


def evaluate_harmonics(
    volts: float, isc_a: float, il_a: float, harmonics_a: dict[int, float], fundamental_a: float | None = None
) -> Harmonics:
    """Compare harmonic currents (amperes by order) with IEEE 519-2022 at the PCC."""
    require_positive("voltage", volts)
    require_positive("short-circuit current", isc_a)
    require_positive("maximum demand current I_L", il_a)
    if fundamental_a is not None:
        require_positive("fundamental current", fundamental_a)
    for order, amps in harmonics_a.items():
        if not 2 <= order <= MAX_ORDER:
            raise CalcError(f"harmonic order {order} is outside 2..{MAX_ORDER}")
        require_positive(f"harmonic {order} current", amps, allow_zero=True)
    ratio = isc_a / il_a
    row_index, row_text = current_row(ratio)
    tdd_limit = TABLE_2[row_index][2]
    rss = math.sqrt(sum(a * a for a in harmonics_a.values()))
    tdd = rss / il_a * 100.0
    steps = [
        f"Isc/IL = {fmt(isc_a, 0)} A ÷ {fmt(il_a, 0)} A = {fmt(ratio)} → row {row_text} (Table 2)",
        f"TDD = √(Σ Ih²) ÷ IL = {fmt(rss)} A ÷ {fmt(il_a)} A = {fmt(tdd)} % (limit {fmt(tdd_limit)} %)",
    ]
    thd_i = None
    if fundamental_a is not None:
        thd_i = rss / fundamental_a * 100.0
        steps.append(f"THDi = {fmt(rss)} A ÷ {fmt(fundamental_a)} A = {fmt(thd_i)} % (not the compliance metric)")
    individual: dict[int, float] = {}
    limits: dict[int, float] = {}
    failing: list[int] = []
    for order in sorted(harmonics_a):
        pct = harmonics_a[order] / il_a * 100.0
        limit = individual_limit_pct(order, row_index)
        individual[order] = pct
        limits[order] = limit
        ok = pct <= limit + 1e-9
        if not ok:
            failing.append(order)
        even = " (even, 2022 rule)" if order % 2 == 0 else ""
        steps.append(
            f"h{order}: {fmt(harmonics_a[order])} A ÷ {fmt(il_a)} A = {fmt(pct)} % "
            f"{'≤' if ok else '>'} {fmt(limit)} %{even}"
        )
    v_individual, v_thd = voltage_limits(volts)
    steps.append(f"Table 1 at {fmt(volts, 0)} V: individual ≤ {fmt(v_individual)} %, THDv ≤ {fmt(v_thd)} %")
    passed = tdd <= tdd_limit + 1e-9 and not failing
    return Harmonics(
        float(volts),
        ratio,
        row_text,
        tdd_limit,
        tdd,
        thd_i,
        individual,
        limits,
        v_thd,
        v_individual,
        failing,
        passed,
        steps,
    )
