"""Where a raceway runs (issue 17): wet-location insulation, burial depth and the rooftop temperature adder.

The inside of a raceway underground (300.5(B)) or outdoors above grade (300.9) is a wet location, so
its conductors must be listed for wet locations (310.10(C)); some dual-rated types drop to 75 °C when
wet (Table 310.4(1)), which changes the column ampacity is corrected from. A raceway on a rooftop in
sunlight less than 7/8 in. (23 mm) above the roof adds 33 °C to the ambient (310.15(B)(2); XHHW-2
is exempt). Underground runs need the Table 300.5 cover for their wiring method and location.
"""

from __future__ import annotations

from collections.abc import Iterator

from evsite.code.findings import Finding, Status, nec
from evsite.code.rules.context import SiteIndex, num
from evsite.code.tables.table_300_5 import COLUMN_TEXT, ROW_TEXT, TABLE_300_5
from evsite.code.tables.table_310_4_1 import INSULATION_RATING_C
from evsite.site.model import Circuit, ConductorRun, Feeder, Raceway, RacewayType

# Table 310.4(1): insulation types listed for wet locations, with their wet temperature rating (°C).
WET_RATING_C: dict[str, int] = {
    "TW": 60, "UF": 60, "UF-B": 60,
    "THW": 75, "THWN": 75, "THHW": 75, "XHHW": 75, "RHW": 75, "USE": 75, "ZW": 75, "THHN/THWN": 75,
    "THW-2": 90, "THWN-2": 90, "XHHW-2": 90, "RHW-2": 90, "USE-2": 90, "THHN/THWN-2": 90,
}  # fmt: skip
_COLUMN_INSULATION = {60: "TW", 75: "THWN", 90: "THWN-2"}  # a type whose rating picks the same Table 310.16 column
ROOFTOP_ADDER_C = 33.0  # 310.15(B)(2): 33 °C (60 °F)
ROOFTOP_CLEARANCE_IN = 0.875  # 23 mm (7/8 in.) from the roof to the bottom of the raceway or cable
_COLUMN_BY_RACEWAY = {
    RacewayType.RMC: 2, RacewayType.IMC: 2,
    RacewayType.PVC40: 3, RacewayType.PVC80: 3, RacewayType.ENT: 3, RacewayType.LFMC: 3, RacewayType.EMT: 3,
    RacewayType.CABLE: 1, RacewayType.NONE: 1,
}  # fmt: skip


def is_wet(raceway: Raceway) -> bool:
    """300.5(B) underground, 300.9 outdoors above grade (a rooftop is outdoors): the raceway interior is wet."""
    return raceway.location != "indoor"


def rooftop_adder_applies(raceway: Raceway, insulation: str) -> bool:
    """310.15(B)(2): in sunlight on a roof, closer than 7/8 in. (an unknown height counts as on the roof)."""
    if raceway.location != "rooftop" or insulation.upper() == "XHHW-2":
        return False
    return raceway.height_above_roof_in is None or raceway.height_above_roof_in < ROOFTOP_CLEARANCE_IN


def ampacity_conditions(run: ConductorRun) -> tuple[str, float, list[str]]:
    """(insulation whose column ampacity is corrected from, ambient °C, explanation) for where the run is."""
    insulation, ambient, steps = run.insulation, run.ambient_c, []
    raceway = run.raceway
    wet_c = WET_RATING_C.get(insulation.upper())
    if is_wet(raceway) and wet_c is not None and wet_c < INSULATION_RATING_C.get(insulation.upper(), wet_c):
        insulation = _COLUMN_INSULATION[wet_c]
        steps.append(f"{run.insulation} in a wet location is rated {wet_c} °C (Table 310.4(1)): {wet_c} °C column")
    if rooftop_adder_applies(raceway, run.insulation):
        height = raceway.height_above_roof_in
        where = "height not given: taken as on the roof" if height is None else f"{num(height)} in. above the roof"
        steps.append(
            f"rooftop, {where} < 7/8 in.: {num(ambient)} °C + {num(ROOFTOP_ADDER_C)} °C = "
            f"{num(ambient + ROOFTOP_ADDER_C)} °C (310.15(B)(2))"
        )
        ambient += ROOFTOP_ADDER_C
    return insulation, ambient, steps


def check(idx: SiteIndex) -> Iterator[Finding]:
    runs: list[tuple[str, Feeder | Circuit]] = [(f"feeder {f.id}", f) for f in idx.site.feeders]
    runs += [(f"circuit {c.id}", c) for c in idx.site.circuits]
    for element, run in runs:
        raceway = run.conductors.raceway
        if raceway.location == "indoor":
            continue
        yield _wet_insulation(element, run.conductors)
        if raceway.location == "underground":
            yield _burial(idx, element, run)
        if raceway.location == "rooftop":
            yield _rooftop(element, run.conductors)


def _wet_insulation(element: str, run: ConductorRun) -> Finding:
    raceway = run.raceway
    rule = nec("310.10(C), 300.5(B)") if raceway.location == "underground" else nec("310.10(C), 300.9")
    why = {
        "underground": "the inside of an underground raceway is a wet location (300.5(B))",
        "outdoor": "the inside of a raceway outdoors above grade is a wet location (300.9)",
        "rooftop": "the inside of a raceway on a roof is a wet location (300.9)",
    }[raceway.location]
    insulation = run.insulation.upper()
    rating = WET_RATING_C.get(insulation)
    inputs = {"insulation": insulation, "location": raceway.location, "wet_rating_c": rating}
    if rating is None:
        return Finding(
            element,
            "Wet-location insulation",
            Status.FAIL,
            rule,
            f"{insulation} is not listed for wet locations; {why}.",
            inputs,
            [f"{insulation}: no wet-location rating in Table 310.4(1)"],
            fix="Use conductors listed for wet locations, e.g. THWN-2 or XHHW-2 (dual-rated THHN/THWN-2 wire).",
        )
    return Finding(
        element,
        "Wet-location insulation",
        Status.PASS,
        rule,
        f"{insulation} is listed for wet locations ({rating} °C wet); {why}."
        + (
            f" Ampacity is corrected from the {rating} °C column (shown as {_COLUMN_INSULATION[rating]})."
            if rating < INSULATION_RATING_C.get(insulation, rating)
            else ""
        ),
        inputs,
    )


def _burial(idx: SiteIndex, element: str, run: Feeder | Circuit) -> Finding:
    raceway = run.conductors.raceway
    rule = nec("300.5(A), Table 300.5")
    if raceway.type is RacewayType.FMC:
        return Finding(
            element, "Burial depth", Status.FAIL, nec("348.12(1), 300.5"),
            "FMC is not permitted in wet locations or underground.", {"raceway": raceway.type.value},
            fix="Use RMC, IMC, PVC or LFMC listed for direct burial.",
        )  # fmt: skip
    column = _COLUMN_BY_RACEWAY.get(raceway.type, 1)
    if _residential_small_branch(idx, run):
        column = 4
    row = raceway.burial_location
    required = TABLE_300_5[row][column - 1]
    steps = [f"Table 300.5, {ROW_TEXT[row]}, {COLUMN_TEXT[column]}: {num(required)} in. minimum cover"]
    if raceway.type is RacewayType.EMT:
        steps.append("EMT in earth needs corrosion protection judged suitable (358.10) and the AHJ's approval")
    inputs = {"raceway": raceway.type.value, "row": row, "column": column, "required_in": required,
              "depth_in": raceway.burial_depth_in}  # fmt: skip
    depth = raceway.burial_depth_in
    if depth is None:
        return Finding(
            element, "Burial depth", Status.WARN, rule,
            f"Underground run without a burial depth; {num(required)} in. of cover is required.", inputs, steps,
            fix="Give raceway.burial_depth_in (cover from the top of the raceway or cable to grade).",
        )  # fmt: skip
    ok = depth >= required - 1e-9
    steps.append(f"{num(depth)} in. {'≥' if ok else '<'} {num(required)} in.")
    return Finding(
        element,
        "Burial depth",
        Status.PASS if ok else Status.FAIL,
        rule,
        f"Cover {num(depth)} in.; {num(required)} in. is required.",
        inputs,
        steps,
        None
        if ok
        else f"Bury at least {num(required)} in. deep, or use a wiring method with a smaller cover "
        "(RMC or IMC: 6 in. in general locations).",
    )


def _residential_small_branch(idx: SiteIndex, run: Feeder | Circuit) -> bool:
    """Column 4: a dwelling branch circuit of 120 V or less, GFCI-protected, at most 20 A."""
    if not isinstance(run, Circuit) or len(run.lines) != 1 or run.ocpd_a > 20 or not run.gfci:
        return False
    evse = idx.evse_on(run.id)
    return bool(evse) and all(e.dwelling for e in evse) and idx.v_ln <= 120


def _rooftop(element: str, run: ConductorRun) -> Finding:
    raceway = run.raceway
    _, ambient, steps = ampacity_conditions(run)
    applies = rooftop_adder_applies(raceway, run.insulation)
    if not applies:
        reason = (
            "XHHW-2 is exempt (310.15(B)(2) Exception)"
            if run.insulation.upper() == "XHHW-2"
            else f"{num(raceway.height_above_roof_in or 0)} in. above the roof ≥ 7/8 in."
        )
        steps = [reason]
    return Finding(
        element,
        "Rooftop temperature adder",
        Status.INFO,
        nec("310.15(B)(2)"),
        f"Ampacity corrected for {num(ambient)} °C"
        + (f" ({num(run.ambient_c)} °C + {num(ROOFTOP_ADDER_C)} °C rooftop adder)." if applies else "; no adder."),
        {"ambient_c": run.ambient_c, "height_above_roof_in": raceway.height_above_roof_in, "adder": applies},
        steps,
    )
