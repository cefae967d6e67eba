"""Size one EVSE branch circuit end to end: OCPD, conductor, EGC, raceway, voltage drop, and the
Article 625 items (disconnect, GFCI, connection) that follow from it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

from evsite.code.calc.ampacity import Ampacity, ampacity, check_conductor, smallest_conductor
from evsite.code.calc.common import CalcError, Result, conductor_size, fmt, material_key, require_positive
from evsite.code.calc.egc import egc_size
from evsite.code.calc.fill import conduit_fill
from evsite.code.calc.ocpd import next_standard_ocpd
from evsite.code.calc.voltage_drop import voltage_drop
from evsite.code.findings import Finding, Status, nec
from evsite.code.tables.table_240_6_a import TABLE_240_6_A
from evsite.site.conductors import parse_conductor

BRANCH_VD_ADVISORY_PCT = 3.0

# NEMA receptacle → (rating A, volts, phases) for the connections the site model knows.
RECEPTACLES: dict[str, tuple[int, int]] = {
    "nema-5-15": (15, 125),
    "nema-5-20": (20, 125),
    "nema-6-20": (20, 250),
    "nema-6-30": (30, 250),
    "nema-6-50": (50, 250),
    "nema-14-30": (30, 250),
    "nema-14-50": (50, 250),
    "nema-14-60": (60, 250),
}
# Table 210.21(B)(3): receptacle ratings allowed on a circuit rating.
RECEPTACLE_ON_CIRCUIT: dict[int, tuple[int, ...]] = {15: (15,), 20: (15, 20), 30: (30,), 40: (40, 50), 50: (50,)}


@dataclass(frozen=True)
class BranchDesign(Result):
    amps: float
    volts: float
    phases: int
    continuous_a: float
    ocpd_a: int
    conductor: str
    conductor_ampacity_a: float
    ampacity_column_c: int
    egc: str
    raceway: str | None
    fill_pct: float | None
    voltage_drop_v: float | None
    voltage_drop_pct: float | None
    volts_to_ground: float
    disconnect_required: bool
    gfci_required: bool
    findings: list[Finding] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)


def volts_to_ground(volts: float, phases: int) -> float:
    """Voltage to ground on solidly grounded systems, from the circuit voltage.

    Three phase: line to line on a wye (208Y/120 → 120 V, 480Y/277 → 277 V). Single phase: 120 V and 277 V
    (or 347 V) circuits are line to neutral; 208 V is two lines of 208Y/120; 240 V is 120/240 split phase;
    480 V (or 600 V) is two lines of a wye.
    """
    if phases == 3:
        return volts / math.sqrt(3.0)
    if volts <= 150 or 265 <= volts <= 300 or 330 <= volts <= 360:
        return volts
    if 216 <= volts <= 250:
        return volts / 2.0
    return volts / math.sqrt(3.0)


def _key(value: str | Enum) -> str:
    return str(value.value if isinstance(value, Enum) else value).strip().lower()


def size_branch(
    amps: float,
    volts: float,
    phases: int = 1,
    material: str | Enum = "cu",
    insulation: str = "THHN",
    termination_c: int = 60,
    ambient_c: float = 30.0,
    ccc: int = 2,
    length_ft: float | None = None,
    raceway: str | Enum = "emt",
    adjustable_restricted: bool = False,
    location: str | Enum = "indoor",
    dwelling: bool = False,
    connection: str | Enum = "hardwired",
    continuous: bool = True,
    element: str = "circuit",
    conductor: str | None = None,
    ocpd_a: int | None = None,
) -> BranchDesign:
    """Design the branch circuit for an EVSE of `amps` maximum current (625.41/625.42: continuous).

    Without `conductor`/`ocpd_a` the smallest compliant ones are chosen; given, they are checked instead
    (e.g. an existing 6 AWG Cu on 60 A), and failures carry the fix.
    """
    require_positive("EVSE current", amps)
    require_positive("voltage", volts)
    if phases not in (1, 3):
        raise CalcError(f"phases must be 1 or 3, got {phases}")
    mat = material_key(material)
    connection_key, location_key, raceway_key = _key(connection), _key(location), _key(raceway)
    if connection_key != "hardwired" and connection_key not in RECEPTACLES:
        raise CalcError(f"unknown connection {connection!r}; expected hardwired or one of {', '.join(RECEPTACLES)}")
    if location_key not in ("indoor", "outdoor"):
        raise CalcError(f"location must be indoor or outdoor, got {location!r}")
    findings: list[Finding] = []
    inputs: dict[str, object] = {"amps": amps, "volts": volts, "phases": phases}

    cont = amps * 1.25 if continuous else float(amps)
    minimum_ocpd = next_standard_ocpd(cont)
    ocpd_steps = [
        f"{fmt(amps)} A × 1.25 = {fmt(cont)} A" if continuous else f"{fmt(amps)} A (non-continuous)",
        f"next standard rating ≥ {fmt(cont)} A: {minimum_ocpd} A (240.6(A))",
    ]
    if ocpd_a is None:
        ocpd = minimum_ocpd
        findings.append(
            Finding(element, "OCPD sizing", Status.INFO, nec("625.41"), f"OCPD {ocpd} A for {fmt(amps)} A EVSE",
                    inputs, ocpd_steps)
        )  # fmt: skip
    else:
        ocpd = int(require_positive("OCPD rating", ocpd_a))
        findings.append(_ocpd_finding(element, ocpd, cont, minimum_ocpd, inputs, ocpd_steps))
    if adjustable_restricted:
        findings.append(
            Finding(element, "adjustable setting", Status.INFO, nec("625.42(B)"),
                    f"sized at the adjusted setting {fmt(amps)} A: access to the adjustment must be restricted "
                    "per 750.30(C)(3) and the adjusted rating labelled", inputs)
        )  # fmt: skip
    else:
        findings.append(
            Finding(element, "adjustable setting", Status.INFO, nec("625.42(B)"),
                    f"sized at {fmt(amps)} A, which must be the EVSE's nameplate maximum unless the adjustment is "
                    "restricted (625.42(B)); an owner-app setting is not restricted access", inputs)
        )  # fmt: skip

    if conductor is not None:
        size, mat = conductor_size(conductor, mat)
        best: Ampacity | None = ampacity(size, mat, insulation, termination_c, ambient_c, ccc)
    else:
        best = smallest_conductor(mat, insulation, termination_c, ambient_c, ccc, amps, continuous, ocpd)
    if best is None:
        raise CalcError(f"no single {mat} conductor in Table 310.16 carries {fmt(cont)} A; use parallel sets")
    findings += check_conductor(
        best.size, mat, insulation, termination_c, ambient_c, ccc, amps, continuous, ocpd, element=element
    )
    egc = egc_size(ocpd, mat)
    findings.append(Finding(element, "EGC size", Status.INFO, nec("250.122"), f"EGC {egc.egc}", inputs, egc.steps))

    phase_count = 3 if phases == 3 else 2  # line conductors (a 120 V circuit: hot + neutral)
    raceway_text = fill_pct = None
    if raceway_key not in ("cable", "none"):
        egc_size_text, _ = parse_conductor(egc.egc)
        fill = conduit_fill([(phase_count, best.size, insulation), (1, egc_size_text, insulation)], raceway_key)
        raceway_text, fill_pct = fill.raceway, fill.fill_pct
        findings.append(
            Finding(element, "raceway fill", Status.PASS, nec("Chapter 9 Table 1"),
                    f"minimum {fill.raceway}: {fmt(fill.fill_pct, 1)} % of {fmt(fill.allowed_pct, 0)} % allowed",
                    inputs, fill.steps)
        )  # fmt: skip

    vd_v = vd_pct = None
    if length_ft is not None:
        vd = voltage_drop(best.size, mat, amps, volts, phases, length_ft)
        vd_v, vd_pct = vd.voltage_drop_v, vd.voltage_drop_pct
        status = Status.PASS if vd_pct <= BRANCH_VD_ADVISORY_PCT else Status.WARN
        findings.append(
            Finding(element, "voltage drop", status, nec("210.19(A) Informational Note No. 4"),
                    f"{fmt(vd_v)} V ({fmt(vd_pct)} %) over {fmt(length_ft, 0)} ft; 3 % branch is advisory",
                    inputs, vd.steps, None if status is Status.PASS else "use a larger conductor to reduce the drop")
        )  # fmt: skip

    vg = volts_to_ground(volts, phases)
    disconnect = amps > 60 or vg > 150
    findings.append(
        Finding(element, "disconnecting means", Status.INFO, nec("625.43"),
                ("disconnect required: readily accessible, lockable open (110.25)" if disconnect
                 else "no 625.43 disconnect required (≤ 60 A and ≤ 150 V to ground)"),
                inputs, [f"{fmt(amps)} A {'>' if amps > 60 else '≤'} 60 A; {fmt(vg, 0)} V to ground "
                         f"{'>' if vg > 150 else '≤'} 150 V"])
    )  # fmt: skip

    receptacle = connection_key != "hardwired"
    gfci_reason = ""
    if receptacle:
        gfci, gfci_rule, gfci_reason = True, nec("625.54"), "all receptacles for EV charging need GFCI"
    elif dwelling and location_key == "outdoor" and phases == 1 and vg <= 150 and ocpd <= 50:
        gfci, gfci_rule = True, nec("210.8(F)")
        gfci_reason = "outdoor dwelling outlet on a single-phase circuit ≤ 150 V to ground and ≤ 50 A"
    else:
        gfci, gfci_rule = False, nec("625.54")
        gfci_reason = "hardwired EVSE: personnel protection is built in (625.22)"
    findings.append(
        Finding(
            element,
            "GFCI",
            Status.INFO,
            gfci_rule,
            f"GFCI {'required' if gfci else 'not required'}: {gfci_reason}",
            inputs,
        )
    )
    if receptacle:
        findings.append(_receptacle_finding(element, connection_key, ocpd, cont, volts, inputs))

    individual = amps > 16 or volts > 120
    findings.append(
        Finding(element, "individual branch circuit", Status.INFO, nec("625.40"),
                "individual branch circuit required (> 16 A or > 120 V)" if individual
                else "individual branch circuit not required (≤ 16 A at ≤ 120 V)", inputs)
    )  # fmt: skip
    steps = [*ocpd_steps, *best.steps]
    return BranchDesign(
        float(amps), float(volts), phases, cont, ocpd, best.conductor, best.termination_ampacity_a, best.column_c,
        egc.egc, raceway_text, fill_pct, vd_v, vd_pct, vg, disconnect, gfci, findings, steps,
    )  # fmt: skip


def _ocpd_finding(
    element: str, ocpd: int, cont: float, minimum: int, inputs: dict[str, object], steps: list[str]
) -> Finding:
    """625.41 for a given OCPD: a standard rating (240.6(A)) not below 125 % of the EVSE load."""
    steps = [*steps, f"given OCPD {ocpd} A {'≥' if ocpd >= minimum else '<'} {minimum} A"]
    if ocpd not in TABLE_240_6_A:
        return Finding(element, "OCPD sizing", Status.FAIL, nec("240.6(A)"), f"{ocpd} A is not a standard rating",
                       inputs, steps, f"use a {next_standard_ocpd(ocpd)} A OCPD (check the conductor)")  # fmt: skip
    if ocpd < cont - 1e-9:
        return Finding(element, "OCPD sizing", Status.FAIL, nec("625.41"),
                       f"{ocpd} A OCPD is below 125 % of the EVSE load ({fmt(cont)} A)", inputs, steps,
                       f"use a {minimum} A OCPD, or lower the EVSE setting (restricted, 625.42(B))")  # fmt: skip
    return Finding(element, "OCPD sizing", Status.PASS, nec("625.41"),
                   f"{ocpd} A OCPD ≥ 125 % of the EVSE load ({fmt(cont)} A)", inputs, steps)  # fmt: skip


def _receptacle_finding(
    element: str, connection: str, ocpd: int, cont: float, volts: float, inputs: dict[str, object]
) -> Finding:
    """625.44 and Table 210.21(B)(3): the receptacle must carry the load and match the circuit rating."""
    rating, rated_v = RECEPTACLES[connection]
    allowed = RECEPTACLE_ON_CIRCUIT.get(ocpd, (ocpd,))
    steps = [
        f"{connection.upper()}: {rating} A, {rated_v} V",
        f"{ocpd} A circuit allows {', '.join(map(str, allowed))} A receptacles",
    ]
    problems = []
    if rating not in allowed:
        problems.append(f"a {rating} A receptacle may not be used on a {ocpd} A circuit (Table 210.21(B)(3))")
    if volts > rated_v:
        problems.append(f"{fmt(volts)} V exceeds the receptacle's {rated_v} V rating")
    if rating < cont - 1e-9:
        problems.append(f"{rating} A receptacle is below the {fmt(cont)} A continuous requirement")
    if problems:
        return Finding(element, "receptacle connection", Status.FAIL, nec("625.44"), "; ".join(problems), inputs, steps,
                       "hardwire the EVSE or lower its current setting to suit the receptacle")  # fmt: skip
    return Finding(element, "receptacle connection", Status.PASS, nec("625.44"),
                   f"{connection.upper()} on a {ocpd} A circuit is permitted", inputs, steps)  # fmt: skip
