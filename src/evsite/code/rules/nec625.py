"""NEC 2023 Article 625 (EV power transfer systems) applied to each EVSE and its branch circuit.

Covers 625.5 listing, 625.40 individual branch circuits, 625.41/625.42 continuous-duty OCPD,
625.42(B) adjustable settings, 625.43 disconnect, 625.44 connection, 625.54 and 210.8(F) GFCI,
and 625.48 interactive (bidirectional) equipment.
"""

from __future__ import annotations

from collections.abc import Iterator

from evsite.code.calc.common import CalcError
from evsite.code.findings import Finding, Status, nec
from evsite.code.rules.context import SiteIndex, num
from evsite.code.sizing import next_standard_ocpd
from evsite.site.model import Circuit, Connection, Evse, ListingStandard

CONTINUOUS_FACTOR = 1.25  # 625.41 / 625.42: EV charging is a continuous load

# Receptacle ratings (volts, amps) by NEMA configuration, for 625.44 and 210.21(B).
RECEPTACLE_RATING: dict[Connection, tuple[int, int]] = {
    Connection.NEMA_5_15: (125, 15),
    Connection.NEMA_5_20: (125, 20),
    Connection.NEMA_6_20: (250, 20),
    Connection.NEMA_6_30: (250, 30),
    Connection.NEMA_6_50: (250, 50),
    Connection.NEMA_14_30: (250, 30),
    Connection.NEMA_14_50: (250, 50),
    Connection.NEMA_14_60: (250, 60),
}

# 625.5 listings by kind of equipment: UL 2594 (and its CSA twin) covers AC EVSE, UL 2202 DC charging
# equipment, UL 9741 bidirectional EV charging equipment of either kind.
_AC_LISTINGS = {ListingStandard.UL_2594, ListingStandard.CSA_C22_2_280, ListingStandard.UL_9741}
_DC_LISTINGS = {ListingStandard.UL_2202, ListingStandard.UL_9741}
_BIDIRECTIONAL_LISTINGS = {ListingStandard.UL_9741, ListingStandard.UL_1741}


def check(idx: SiteIndex) -> Iterator[Finding]:
    for circuit in idx.site.circuits:
        yield from check_circuit(idx, circuit)
    for evse in idx.site.evse:
        yield from check_evse(idx, evse)


# --------------------------------------------------------------------------- circuits


def check_circuit(idx: SiteIndex, circuit: Circuit) -> Iterator[Finding]:
    element = f"circuit {circuit.id}"
    evse = idx.evse_on(circuit.id)
    if not evse:
        yield Finding(element, "EVSE on circuit", Status.INFO, nec("625.40"), "No EVSE is connected to this circuit.")
        return
    yield _individual_branch_circuit(idx, circuit, evse, element)
    yield _ocpd_rating(idx, circuit, evse, element)


def _individual_branch_circuit(idx: SiteIndex, circuit: Circuit, evse: list[Evse], element: str) -> Finding:
    volts = idx.circuit_voltage(circuit).volts
    ids = ", ".join(e.id for e in evse)
    inputs = {"evse": [e.id for e in evse], "circuit_volts": volts, "evse_max_a": [e.max_current_a for e in evse]}
    if len(evse) == 1:
        return Finding(
            element,
            "Individual branch circuit",
            Status.PASS,
            nec("625.40"),
            f"{evse[0].id} is the only EVSE on this branch circuit.",
            inputs,
        )
    needs_own = [e for e in evse if e.rated_current_a > 16 or volts > 120]
    ems = idx.ems_limit(circuit.id)
    restricted = all(e.adjustment_access == "restricted" and e.adjustable_setting_a for e in evse)
    steps = [f"{e.id}: {num(e.rated_current_a)} A at {num(volts)} V" for e in evse]
    if not needs_own:
        return Finding(
            element,
            "Individual branch circuit",
            Status.PASS,
            nec("625.40"),
            f"Several EVSE ({ids}) share the circuit; each is ≤ 16 A and ≤ 120 V.",
            inputs,
            steps,
        )
    if ems is not None:
        return Finding(
            element,
            "Individual branch circuit",
            Status.PASS,
            nec("625.40 Exception, 625.42(A)"),
            f"EVSE {ids} share the circuit under EMS {ems.id} ({num(ems.setpoint_a)} A).",
            inputs,
            steps,
        )
    if restricted:
        return Finding(
            element,
            "Individual branch circuit",
            Status.PASS,
            nec("625.40 Exception, 625.42(B)"),
            f"EVSE {ids} share the circuit at restricted adjusted settings.",
            inputs,
            steps,
        )
    return Finding(
        element,
        "Individual branch circuit",
        Status.FAIL,
        nec("625.40"),
        f"EVSE {ids} share one branch circuit; EVSE above 16 A or 120 V each need an individual branch circuit.",
        inputs,
        steps,
        fix="Give each EVSE its own branch circuit, or place the circuit under a listed EMS (625.42(A)) "
        "or use restricted adjustable settings (625.42(B)) sized to the circuit.",
    )


def _ocpd_rating(idx: SiteIndex, circuit: Circuit, evse: list[Evse], element: str) -> Finding:
    unmanaged = idx.circuit_unmanaged_a(circuit)
    load = idx.circuit_design_a(circuit)
    ems = idx.ems_limit(circuit.id)
    required = load * CONTINUOUS_FACTOR
    try:
        standard = float(next_standard_ocpd(required))
    except CalcError:
        standard = required
    if len(evse) == 1:
        steps = [f"{evse[0].id} rated {num(unmanaged)} A"]
    else:
        steps = [" + ".join(f"{num(e.rated_current_a)} A" for e in evse) + f" = {num(unmanaged)} A of EVSE ratings"]
    if ems is not None and load < unmanaged:
        steps.append(f"EMS {ems.id} limits the circuit to {num(ems.setpoint_a)} A (625.42(A))")
    steps += [
        f"{num(load)} A × 125 % = {num(required)} A",
        f"next standard rating (240.6(A)) ≥ {num(required)} A: {num(standard)} A",
        f"installed {num(circuit.ocpd_a)} A {'≥' if circuit.ocpd_a >= required else '<'} {num(required)} A",
    ]
    inputs = {"load_a": load, "continuous_factor": CONTINUOUS_FACTOR, "ocpd_a": circuit.ocpd_a, "min_ocpd_a": standard}
    citation = nec("625.41, 625.42, 240.6(A)")
    if circuit.ocpd_a >= required:
        return Finding(
            element,
            "OCPD sizing",
            Status.PASS,
            citation,
            f"{num(circuit.ocpd_a)} A OCPD ≥ 125 % of the {num(load)} A continuous EV load.",
            inputs,
            steps,
        )
    return Finding(
        element,
        "OCPD sizing",
        Status.FAIL,
        citation,
        f"{num(circuit.ocpd_a)} A OCPD is below 125 % of the {num(load)} A continuous EV load ({num(required)} A).",
        inputs,
        steps,
        fix=f"Use a {num(standard)} A OCPD with conductors sized for it, or lower the EVSE setting with "
        "restricted access (625.42(B)) to at most "
        f"{num(circuit.ocpd_a / CONTINUOUS_FACTOR)} A.",
    )


# --------------------------------------------------------------------------- EVSE


def check_evse(idx: SiteIndex, evse: Evse) -> Iterator[Finding]:
    element = f"evse {evse.id}"
    circuit = idx.circuits.get(evse.circuit)
    yield _listing(evse, element)
    if evse.adjustable_setting_a is not None:
        yield _adjustable(evse, element)
    if circuit is None:
        return
    yield _disconnect(idx, evse, circuit, element)
    yield _connection(evse, circuit, element)
    yield _gfci(idx, evse, circuit, element)
    if evse.bidirectional:
        yield _interactive(evse, element)


def expected_listing(evse: Evse) -> str:
    """The EV listing standard that fits this equipment (also shown in the classification table)."""
    if evse.bidirectional:
        return "UL 9741"
    return "UL 2202" if evse.dc else "UL 2594"


def _listing(evse: Evse, element: str) -> Finding:
    """625.5: the listing must be stated (none is never assumed) and must fit AC or DC equipment."""
    listings = [str(s) for s in evse.listing]
    kind = "DC charging equipment" if evse.dc else "AC EVSE"
    expected = expected_listing(evse)
    inputs = {"listing": listings, "dc": evse.dc, "bidirectional": evse.bidirectional, "expected": expected}
    fits = set(evse.listing) & (_DC_LISTINGS if evse.dc else _AC_LISTINGS)
    if fits:
        return Finding(
            element,
            "Listed equipment",
            Status.PASS,
            nec("625.5"),
            f"{kind} listed to {', '.join(str(s) for s in sorted(fits))}.",
            inputs,
        )
    if not listings:
        message = f"No listing is given for this {kind}; a listing is never assumed."
    else:
        message = f"Listed to {', '.join(listings)}, which does not cover {kind} ({expected} does)."
    return Finding(
        element,
        "Listed equipment",
        Status.FAIL,
        nec("625.5"),
        message,
        inputs,
        fix=f"Record the EVSE's listing from its nameplate; {kind} is listed to {expected}"
        + ("" if evse.bidirectional else " (UL 9741 when bidirectional)")
        + ".",
    )


def _adjustable(evse: Evse, element: str) -> Finding:
    setting = evse.adjustable_setting_a
    inputs = {"max_current_a": evse.max_current_a, "adjustable_setting_a": setting, "access": evse.adjustment_access}
    citation = nec("625.42(B), 750.30(C)(3)")
    if evse.adjustment_access == "restricted":
        return Finding(
            element,
            "Adjustable setting",
            Status.PASS,
            citation,
            f"Rated at its adjusted setting {num(setting or 0)} A: access to the adjustment is restricted.",
            inputs,
        )
    return Finding(
        element,
        "Adjustable setting",
        Status.WARN,
        citation,
        f"Adjustment to {num(setting or 0)} A is not restricted, so the EVSE is sized at its "
        f"{num(evse.max_current_a)} A nameplate.",
        inputs,
        fix="Restrict the adjustment (sealable cover, tool, lock, or password for qualified persons) "
        "and label the adjusted rating to size at the setting.",
    )


def _disconnect(idx: SiteIndex, evse: Evse, circuit: Circuit, element: str) -> Finding:
    v = idx.circuit_voltage(circuit)
    rated = evse.rated_current_a
    required = rated > 60 or v.to_ground_v > 150
    amendment = idx.site.jurisdiction.amendments.appliance_disconnect_422_31b
    inputs = {"rated_a": rated, "volts_to_ground": v.to_ground_v, "disconnect": evse.disconnect}
    steps = [
        f"rated {num(rated)} A {'>' if rated > 60 else '≤'} 60 A",
        f"{num(v.to_ground_v)} V to ground {'>' if v.to_ground_v > 150 else '≤'} 150 V",
    ]
    if not required and not amendment:
        return Finding(
            element,
            "Disconnecting means",
            Status.INFO,
            nec("625.43"),
            "No 625.43 disconnect required (≤ 60 A and ≤ 150 V to ground).",
            inputs,
            steps,
        )
    citation = nec("625.43, 110.25") if required else nec("422.31(B) (local amendment)")
    if evse.disconnect == "none":
        return Finding(
            element,
            "Disconnecting means",
            Status.FAIL,
            citation,
            "A readily accessible disconnecting means, lockable open, is required and none is shown.",
            inputs,
            steps,
            fix="Add a lockable disconnect (110.25) in a readily accessible location; if it is out of sight, "
            "mark its location on the EVSE.",
        )
    note = " Mark its location on the EVSE (plaque)." if evse.disconnect == "remote-lockable" else ""
    return Finding(
        element,
        "Disconnecting means",
        Status.PASS,
        citation,
        f"Disconnect provided ({evse.disconnect}); it must be lockable open per 110.25.{note}",
        inputs,
        steps,
    )


def _connection(evse: Evse, circuit: Circuit, element: str) -> Finding:
    inputs: dict[str, object] = {"connection": evse.connection.value, "ocpd_a": circuit.ocpd_a, "dc": evse.dc}
    if not evse.connection.is_receptacle:
        return Finding(element, "Equipment connection", Status.PASS, nec("625.44(C)"), "Permanently wired.", inputs)
    volts, amps = RECEPTACLE_RATING[evse.connection]
    inputs.update({"receptacle_v": volts, "receptacle_a": amps})
    steps = [f"{evse.connection.value}: {volts} V, {amps} A receptacle", f"circuit OCPD {num(circuit.ocpd_a)} A"]
    if evse.dc or evse.phases == 3:
        return Finding(
            element,
            "Equipment connection",
            Status.FAIL,
            nec("625.44"),
            "DC and three-phase EVSE on this site must be permanently wired, not cord-and-plug connected.",
            inputs,
            steps,
            fix="Hardwire the EVSE (625.44(C)).",
        )
    if circuit.ocpd_a > amps:
        return Finding(
            element,
            "Equipment connection",
            Status.FAIL,
            nec("625.44, 210.21(B)(1)"),
            f"A {amps} A receptacle on a {num(circuit.ocpd_a)} A circuit: a single receptacle on an individual "
            "branch circuit must be rated at least the circuit rating.",
            inputs,
            steps,
            fix=f"Hardwire the EVSE, or limit it to {num(amps / CONTINUOUS_FACTOR)} A on a {amps} A circuit.",
        )
    return Finding(
        element,
        "Equipment connection",
        Status.PASS,
        nec("625.44(A)/(B)"),
        f"Cord-and-plug connection through a {volts} V {amps} A receptacle is permitted.",
        inputs,
        steps,
    )


def _gfci(idx: SiteIndex, evse: Evse, circuit: Circuit, element: str) -> Finding:
    v = idx.circuit_voltage(circuit)
    inputs = {
        "connection": evse.connection.value,
        "dwelling": evse.dwelling,
        "location": evse.location.value,
        "ocpd_a": circuit.ocpd_a,
        "volts_to_ground": v.to_ground_v,
        "circuit_gfci": circuit.gfci,
    }
    if evse.connection.is_receptacle:
        reason, citation = "Receptacles for EV charging need GFCI protection for personnel.", nec("625.54")
    elif evse.dwelling and evse.location.value == "outdoor" and v.phases == 1 and v.to_ground_v <= 150:
        if circuit.ocpd_a > 50:
            return Finding(
                element,
                "GFCI protection",
                Status.INFO,
                nec("210.8(F)"),
                f"Outdoor dwelling outlet on a {num(circuit.ocpd_a)} A circuit (> 50 A): 210.8(F) does not apply; "
                "the listed EVSE provides personnel protection (625.22).",
                inputs,
            )
        reason, citation = "Outdoor dwelling outlets ≤ 50 A, ≤ 150 V to ground need GFCI.", nec("210.8(F)")
    else:
        return Finding(
            element,
            "GFCI protection",
            Status.INFO,
            nec("625.54, 625.22"),
            "Hardwired EVSE: its listed personnel protection system applies; no GFCI required at the circuit.",
            inputs,
        )
    if circuit.gfci:
        return Finding(
            element,
            "GFCI protection",
            Status.PASS,
            citation,
            f"{reason} Provided. Check that the EVSE self-test does not trip the GFCI.",
            inputs,
        )
    return Finding(
        element,
        "GFCI protection",
        Status.FAIL,
        citation,
        f"{reason} None is shown on circuit {circuit.id}.",
        inputs,
        fix="Provide a GFCI circuit breaker (or GFCI receptacle where accessible) for this outlet.",
    )


def _interactive(evse: Evse, element: str) -> Finding:
    listings = [str(s) for s in evse.listing]
    inputs = {"listing": listings, "interconnection": evse.interconnection}
    listed = bool(set(evse.listing) & _BIDIRECTIONAL_LISTINGS)
    if not listed or evse.interconnection == "none":
        missing = []
        if not listed:
            missing.append("a listing for power export (UL 9741 or UL 1741)")
        if evse.interconnection == "none":
            missing.append("an interconnection mode (Article 702 standby or Article 705 interactive)")
        return Finding(
            element,
            "Interactive equipment",
            Status.FAIL,
            nec("625.48"),
            "Bidirectional EVSE lacks " + " and ".join(missing) + ".",
            inputs,
            fix="Use equipment listed and marked for power export and state how it connects (702 or 705).",
        )
    article = "705" if evse.interconnection == "interactive-705" else "702"
    return Finding(
        element,
        "Interactive equipment",
        Status.WARN,
        nec(f"625.48, Article {article}"),
        f"Bidirectional EVSE listed for export; the Article {article} interconnection must be reviewed separately "
        "(not evaluated by evsite).",
        inputs,
    )
