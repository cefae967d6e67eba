"""Conductor ampacity: Table 310.16 with ambient correction, bundling adjustment and the 110.14(C)
termination limit, plus the conductor checks a branch circuit or feeder must pass."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from evsite.code.calc.common import CalcError, Result, TooHot, conductor_size, fmt, label, require_positive
from evsite.code.calc.ocpd import max_ocpd_for
from evsite.code.findings import Finding, Status, nec
from evsite.code.tables.table_310_4_1 import INSULATION_RATING_C
from evsite.code.tables.table_310_15_b_1_1 import TABLE_310_15_B_1_1
from evsite.code.tables.table_310_15_c_1 import TABLE_310_15_C_1
from evsite.code.tables.table_310_16 import COLUMNS_C, TABLE_310_16
from evsite.site.conductors import SIZES


@dataclass(frozen=True)
class Ampacity(Result):
    """A conductor's ampacity with every factor that went into it."""

    conductor: str  # "6 AWG Cu"
    size: str
    material: str
    insulation: str
    insulation_c: int  # Table 310.16 column of the insulation (used for derating)
    table_ampacity_a: float  # Table 310.16 at the insulation column
    ambient_c: float
    correction_factor: float  # Table 310.15(B)(1)(1)
    ccc: int
    adjustment_factor: float  # Table 310.15(C)(1)
    derated_a: float  # table × correction × adjustment
    termination_c: int
    column_c: int  # Table 310.16 column the terminations allow (110.14(C))
    termination_ampacity_a: float
    ampacity_a: float  # min(derated, termination)
    max_ocpd_a: int  # 240.4(B)/(C)/(D)
    ocpd_rule: str
    steps: list[str] = field(default_factory=list)


def insulation_column(insulation: str) -> int:
    """Table 310.16 column (°C) for an insulation type; unknown types are an input error."""
    key = insulation.strip().upper()
    if key not in INSULATION_RATING_C:
        known = ", ".join(sorted(INSULATION_RATING_C))
        raise CalcError(f"unknown insulation {insulation!r}; expected one of {known}")
    return INSULATION_RATING_C[key]


def check_termination_c(termination_c: int) -> int:
    if termination_c not in COLUMNS_C:
        raise CalcError(f"termination rating {termination_c} °C is not a Table 310.16 column; use 60, 75 or 90")
    return int(termination_c)


def correction_factor(ambient_c: float, column_c: int) -> float:
    """Table 310.15(B)(1)(1) factor for an ambient temperature and an insulation column."""
    index = COLUMNS_C.index(column_c)
    for upper, *factors in TABLE_310_15_B_1_1:
        if ambient_c <= upper:
            factor = factors[index]
            if factor is None:
                raise TooHot(f"ambient {fmt(ambient_c, 1)} °C is too hot for {column_c} °C insulation")
            return factor
    raise TooHot(f"ambient {fmt(ambient_c, 1)} °C is beyond Table 310.15(B)(1)(1) (max 85 °C)")


def adjustment_factor(ccc: int) -> float:
    """Table 310.15(C)(1) factor for the number of current-carrying conductors in the raceway or cable."""
    if ccc < 1:
        raise CalcError(f"current-carrying conductors must be 1 or more, got {ccc}")
    factor = 1.0
    for lowest, value in TABLE_310_15_C_1:
        if ccc >= lowest:
            factor = value
    return factor


def table_ampacity(size: str, material: str, column_c: int) -> int:
    amps = TABLE_310_16[material][column_c].get(size)
    if amps is None:
        raise CalcError(f"Table 310.16 lists no {column_c} °C ampacity for {label(size, material)}")
    return amps


def ampacity(
    size: str,
    material: str | Enum | None = None,
    insulation: str = "THHN",
    termination_c: int = 60,
    ambient_c: float = 30.0,
    ccc: int = 2,
) -> Ampacity:
    """Ampacity of one conductor (310.15, Table 310.16, 110.14(C)) and the largest OCPD allowed (240.4)."""
    size, mat = conductor_size(size, material)
    termination_c = check_termination_c(termination_c)
    ins_c = insulation_column(insulation)
    table_a = table_ampacity(size, mat, ins_c)
    corr = correction_factor(ambient_c, ins_c)
    adj = adjustment_factor(ccc)
    derated = table_a * corr * adj
    column = min(termination_c, ins_c)
    term_a = table_ampacity(size, mat, column)
    amp = min(derated, float(term_a))
    name = label(size, mat)
    steps = [
        f"Table 310.16: {name} {insulation.upper()} at the {ins_c} °C column = {table_a} A",
        f"{table_a} A × {corr:.2f} (310.15(B)(1)(1), {fmt(ambient_c, 1)} °C ambient) × {adj:.2f} "
        f"(310.15(C)(1), {ccc} current-carrying) = {fmt(derated)} A",
        f"110.14(C): {termination_c} °C terminations → {column} °C column = {term_a} A",
        f"ampacity = min({fmt(derated)} A, {term_a} A) = {fmt(amp)} A",
    ]
    max_ocpd, rule, ocpd_steps = max_ocpd_for(amp, size, mat)
    steps += ocpd_steps
    return Ampacity(
        conductor=name,
        size=size,
        material=mat,
        insulation=insulation.upper(),
        insulation_c=ins_c,
        table_ampacity_a=float(table_a),
        ambient_c=float(ambient_c),
        correction_factor=corr,
        ccc=ccc,
        adjustment_factor=adj,
        derated_a=derated,
        termination_c=termination_c,
        column_c=column,
        termination_ampacity_a=float(term_a),
        ampacity_a=amp,
        max_ocpd_a=max_ocpd,
        ocpd_rule=rule,
        steps=steps,
    )


def required_ampacity_a(load_a: float, continuous: bool, noncontinuous_a: float = 0.0) -> float:
    """210.19(A)(1)(a) / 215.2(A)(1)(a): 125 % of the continuous load plus the non-continuous load."""
    return (load_a * 1.25 if continuous else load_a) + noncontinuous_a


def default_termination_c(ocpd_a: float, size: str) -> int:
    """110.14(C)(1): 60 °C for circuits ≤ 100 A or conductors 14–1 AWG, else 75 °C, unless the equipment
    is listed and marked otherwise (then pass its rating explicitly)."""
    size, _ = conductor_size(size)
    small = SIZES.index(size) <= SIZES.index("1 AWG")
    return 60 if ocpd_a <= 100 or small else 75


def conductor_ok(
    a: Ampacity, load_a: float, continuous: bool, ocpd_a: float | None, noncontinuous_a: float = 0.0
) -> bool:
    """All three conductor checks at once (used when searching for the smallest conductor)."""
    required = required_ampacity_a(load_a, continuous, noncontinuous_a)
    return (
        a.termination_ampacity_a >= required - 1e-9
        and a.derated_a >= load_a + noncontinuous_a - 1e-9
        and (ocpd_a is None or ocpd_a <= a.max_ocpd_a)
    )


def smallest_conductor(
    material: str | Enum,
    insulation: str,
    termination_c: int,
    ambient_c: float,
    ccc: int,
    load_a: float,
    continuous: bool,
    ocpd_a: float | None,
    min_size: str = "14 AWG",
    noncontinuous_a: float = 0.0,
) -> Ampacity | None:
    """Walk Table 310.16 from `min_size` up and return the first conductor that passes every check."""
    min_size, mat = conductor_size(min_size, material)
    start = SIZES.index(min_size)
    for size in SIZES[start:]:
        try:
            a = ampacity(size, mat, insulation, termination_c, ambient_c, ccc)
        except CalcError:
            continue  # size not in this column/material
        if conductor_ok(a, load_a, continuous, ocpd_a, noncontinuous_a):
            return a
    return None


def check_conductor(
    size: str,
    material: str | Enum,
    insulation: str,
    termination_c: int,
    ambient_c: float,
    ccc: int,
    load_a: float,
    continuous: bool,
    ocpd_a: float | None,
    element: str = "circuit",
    noncontinuous_a: float = 0.0,
    feeder: bool = False,
) -> list[Finding]:
    """The conductor rules for one run: 125 % continuous at the termination column (210.19(A)(1)(a),
    215.2(A)(1), 110.14(C)), the load after correction/adjustment (310.15), and protection by the OCPD
    (240.4(B)/(D)). Failures carry a fix naming the smallest conductor that passes. `load_a` is the load
    that `continuous` describes; a feeder's non-continuous share goes in `noncontinuous_a`."""
    require_positive("load current", load_a, allow_zero=True)
    require_positive("non-continuous load", noncontinuous_a, allow_zero=True)
    total = load_a + noncontinuous_a
    a = ampacity(size, material, insulation, termination_c, ambient_c, ccc)
    inputs = {
        "conductor": a.conductor,
        "insulation": a.insulation,
        "termination_c": a.termination_c,
        "ambient_c": a.ambient_c,
        "ccc": a.ccc,
        "load_a": load_a,
        "continuous": continuous,
        "noncontinuous_a": noncontinuous_a,
        "ocpd_a": ocpd_a,
    }
    findings: list[Finding] = []
    required = required_ampacity_a(load_a, continuous, noncontinuous_a)
    # The 125 % rule (210.19/215.2), the termination limit that picks the column (110.14(C)) and the column itself.
    termination_rule = nec(
        f"{'215.2(A)(1)(a)' if feeder else '210.19(A)(1)(a)'}, 110.14(C), Table 310.16 ({a.column_c} °C column)"
    )

    def better_text() -> str:
        """The smallest conductor that passes: only searched for when something fails."""
        better = smallest_conductor(
            a.material, insulation, termination_c, ambient_c, ccc, load_a, continuous, ocpd_a,
            noncontinuous_a=noncontinuous_a,
        )  # fmt: skip
        if better is None:
            return "use parallel conductors or a larger raceway system"
        return f"use {better.conductor} ({fmt(better.termination_ampacity_a)} A at {better.column_c} °C terminations)"

    # 1. Continuous load × 1.25 at the termination column, before derating.
    if continuous and noncontinuous_a:
        load_step = (
            f"{fmt(load_a)} A × 1.25 + {fmt(noncontinuous_a)} A = {fmt(required)} A (continuous + non-continuous)"
        )
    elif continuous:
        load_step = f"{fmt(load_a)} A × 1.25 = {fmt(required)} A (continuous load)"
    else:
        load_step = f"{fmt(required)} A (non-continuous load)"
    steps = [load_step, f"110.14(C): {a.conductor} at {a.column_c} °C = {fmt(a.termination_ampacity_a)} A"]
    if a.termination_ampacity_a >= required - 1e-9:
        steps.append(f"{fmt(a.termination_ampacity_a)} A ≥ {fmt(required)} A")
        findings.append(
            Finding(
                element,
                "conductor ampacity at terminations",
                Status.PASS,
                termination_rule,
                f"{a.conductor} carries {fmt(a.termination_ampacity_a)} A at {a.column_c} °C terminations, "
                f"≥ {fmt(required)} A required",
                inputs,
                steps,
            )
        )
    else:
        steps.append(f"{fmt(a.termination_ampacity_a)} A < {fmt(required)} A")
        fix = better_text()
        if a.column_c < 75 <= a.insulation_c:
            at75 = TABLE_310_16[a.material][75].get(a.size, 0)
            if at75 >= required:
                fix += f" or 75 °C-rated terminations ({a.conductor} = {at75} A at 75 °C)"
        findings.append(
            Finding(
                element,
                "conductor ampacity at terminations",
                Status.FAIL,
                termination_rule,
                f"{a.conductor} carries only {fmt(a.termination_ampacity_a)} A at {a.column_c} °C terminations; "
                f"{fmt(required)} A is required",
                inputs,
                steps,
                fix,
            )
        )

    # 2. The load after correction and adjustment factors.
    carries = a.derated_a >= total - 1e-9
    steps = [*a.steps[:2], f"{fmt(a.derated_a)} A {'≥' if carries else '<'} {fmt(total)} A"]
    status = Status.PASS if carries else Status.FAIL
    findings.append(
        Finding(
            element,
            "conductor ampacity after correction and adjustment",
            status,
            nec("310.15"),
            f"{a.conductor} derated to {fmt(a.derated_a)} A for {fmt(a.ambient_c, 1)} °C and {a.ccc} "
            f"current-carrying conductors; load {fmt(total)} A",
            inputs,
            steps,
            None if status is Status.PASS else better_text(),
        )
    )

    # 3. Protection by the OCPD.
    if ocpd_a is not None:
        rule = nec(a.ocpd_rule)
        steps = [
            a.steps[3],
            *a.steps[4:],
            f"OCPD {fmt(ocpd_a)} A {'≤' if ocpd_a <= a.max_ocpd_a else '>'} {a.max_ocpd_a} A",
        ]
        if ocpd_a <= a.max_ocpd_a:
            findings.append(
                Finding(
                    element,
                    "conductor protection",
                    Status.PASS,
                    rule,
                    f"{fmt(ocpd_a)} A OCPD protects {a.conductor} (max {a.max_ocpd_a} A)",
                    inputs,
                    steps,
                )
            )
        else:
            findings.append(
                Finding(
                    element,
                    "conductor protection",
                    Status.FAIL,
                    rule,
                    f"{fmt(ocpd_a)} A OCPD exceeds the {a.max_ocpd_a} A allowed for {a.conductor}",
                    inputs,
                    steps,
                    f"{better_text()}, or an OCPD of at most {a.max_ocpd_a} A if the load allows",
                )
            )
    return findings
