"""Power quality at the point of common coupling (IEEE 519-2022) with the EV load at its maximum.

IEEE 519 limits apply to the whole installation at the PCC, not to a charger: voltage THD by bus
voltage (Table 1) and current TDD and individual harmonics normalised to the maximum demand current
I_L, by the I_SC/I_L row (Table 2). The design estimate adds the chargers' harmonic currents at the
EV maximum demand (the EMS setpoints) with no cancellation between chargers, which overstates the
site's distortion: it is a screening estimate, and a measured study settles compliance.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from evsite.code.calc.common import CalcError
from evsite.code.findings import Citation, Finding, Status
from evsite.code.rules.context import SERVICE, SiteIndex, num
from evsite.code.rules.nec220 import existing_load_a
from evsite.code.sizing import evaluate_harmonics

TABLE_2 = Citation("IEEE 519", "Table 2 (current distortion at the PCC)", "2022")
TABLE_1 = Citation("IEEE 519", "Table 1 (voltage distortion at the PCC)", "2022")
STUDY = Citation("IEEE 519", "PCC assessment (measured, weekly 95th/99th percentiles)", "2022")
PF = Citation("Utility tariff", "minimum power factor clause", "as filed")

# Editable assumptions (engineering judgement, not a standard): % of fundamental at rated current.
DEFAULT_AC_SPECTRUM_PCT: dict[int, float] = {3: 4.0, 5: 2.5, 7: 1.5, 9: 1.0}
DEFAULT_DC_SPECTRUM_PCT: dict[int, float] = {5: 3.5, 7: 2.5, 11: 1.5, 13: 1.0}


def check(idx: SiteIndex) -> Iterator[Finding]:
    if not idx.site.evse:
        return
    yield from _harmonics(idx)
    yield _study(idx)
    pf = _power_factor(idx)
    if pf is not None:
        yield pf


def short_circuit_a(idx: SiteIndex) -> tuple[float | None, list[str]]:
    """I_SC at the PCC: the utility's available fault current, else the transformer's (infinite bus)."""
    service = idx.site.service
    if service.available_fault_current_a:
        return service.available_fault_current_a, [
            f"I_SC = {num(service.available_fault_current_a)} A available fault current (utility)"
        ]
    if service.transformer:
        t = service.transformer
        v = idx.system.line_to_line_v
        three = idx.system.is_three_phase
        full_load = t.kva * 1000 / (math.sqrt(3) * v if three else v)
        isc = full_load / (t.impedance_pct / 100)
        div = f"(√3 × {num(v)} V)" if three else f"{num(v)} V"
        return isc, [
            f"transformer full load = {num(t.kva)} kVA × 1000 / {div} = {num(full_load)} A",
            f"I_SC = {num(full_load)} A / {num(t.impedance_pct)} % Z = {num(isc)} A (infinite source: an upper bound)",
        ]
    return None, []


def _demand_current(idx: SiteIndex, ev_a: float) -> tuple[float, str]:
    """I_L: the stated maximum demand, else the 220.87 measured demand plus the new EV demand, else the rating.

    A larger I_L lowers the computed TDD, so the service rating is the last resort (an optimistic bound)."""
    service = idx.site.service
    if service.max_demand_current_a:
        return service.max_demand_current_a, f"I_L = {num(service.max_demand_current_a)} A maximum demand"
    existing = existing_load_a(idx)
    if existing is not None:
        il = min(existing + ev_a, service.rating_a)
        return il, (
            f"I_L = {num(existing)} A existing maximum demand (220.87 data) + {num(ev_a)} A EV demand = {num(il)} A"
            + (" (capped at the service rating)" if existing + ev_a > service.rating_a else "")
            + " (no max_demand_current_a given: assumption)"
        )
    il = service.rating_a
    return il, f"I_L = {num(il)} A service rating (no maximum demand data: optimistic assumption, TDD understated)"


def _ev_basis(idx: SiteIndex) -> str:
    """What the EV demand at the PCC rests on: EMS setpoints only where an EMS limits part of the EV load."""
    unmanaged = max(idx.line_currents(SERVICE, managed=False).values(), default=0.0)
    managed = max(idx.line_currents(SERVICE, managed=True).values(), default=0.0)
    if idx.site.ems and managed < unmanaged - 1e-9:
        return "EMS setpoints"
    return "EVSE ratings, no EMS" if not idx.site.ems else "EVSE ratings; the EMS setpoints do not lower it"


def _spectrum(idx: SiteIndex) -> tuple[dict[int, float], bool]:
    """Site EV harmonic spectrum in % of EV fundamental, weighted by rating; True if defaults were used."""
    weights: dict[int, float] = {}
    total = 0.0
    defaults = False
    for evse in idx.site.evse:
        spectrum = evse.harmonics_pct
        if spectrum is None:
            defaults = True
            spectrum = DEFAULT_DC_SPECTRUM_PCT if evse.dc else DEFAULT_AC_SPECTRUM_PCT
        rating = evse.rated_current_a
        total += rating
        for order, pct in spectrum.items():
            weights[order] = weights.get(order, 0.0) + pct * rating
    return ({h: w / total for h, w in sorted(weights.items())} if total else {}), defaults


def _harmonics(idx: SiteIndex) -> Iterator[Finding]:
    isc, isc_steps = short_circuit_a(idx)
    ev = max(idx.line_currents(SERVICE, managed=True).values(), default=0.0)
    il, il_text = _demand_current(idx, ev)
    spectrum, defaults = _spectrum(idx)
    harmonics_a = {h: ev * pct / 100 for h, pct in spectrum.items() if pct > 0}
    volts = idx.system.line_to_line_v
    inputs: dict[str, object] = {
        "volts": volts,
        "isc_a": isc,
        "il_a": il,
        "ev_demand_a": ev,
        "spectrum_pct": spectrum,
        "default_spectrum_assumed": defaults,
    }
    if isc is None:
        yield Finding(
            "service",
            "Harmonic current distortion (TDD)",
            Status.WARN,
            TABLE_2,
            "Not evaluated: give the available fault current or the transformer kVA and %Z for I_SC.",
            inputs,
            fix="Add service.available_fault_current_a (utility letter) or service.transformer.",
        )
        return
    try:
        result = evaluate_harmonics(volts, isc, il, harmonics_a, fundamental_a=ev or None)
    except CalcError as exc:
        yield Finding("service", "Harmonic current distortion (TDD)", Status.WARN, TABLE_2, f"Not evaluated: {exc}")
        return
    listed = ", ".join(f"h{h} {num(p)} %" for h, p in spectrum.items())
    label = f"default spectrum (assumption: {listed})"
    steps = [
        *isc_steps,
        il_text,
        f"EV demand at the PCC ({_ev_basis(idx)}): {num(ev)} A per line",
        f"charger spectrum: {label if defaults else 'from the EVSE data: ' + listed}",
        "harmonic currents added without cancellation (conservative): "
        + ", ".join(f"h{h} {num(a)} A" for h, a in harmonics_a.items()),
        *result.steps,
    ]
    inputs.update(result.to_dict())
    inputs.pop("steps", None)
    where = f"{result.row}: TDD {num(result.tdd_pct)} % (limit {num(result.tdd_limit_pct)} %)"
    if result.passed:
        yield Finding(
            "service",
            "Harmonic current distortion (TDD)",
            Status.PASS,
            TABLE_2,
            f"Estimated EV contribution within IEEE 519 at the PCC — {where}.",
            inputs,
            steps,
        )
    else:
        failing = ", ".join(f"h{h}" for h in result.failing_orders)
        yield Finding(
            "service",
            "Harmonic current distortion (TDD)",
            Status.WARN,
            TABLE_2,
            f"Estimated EV contribution may exceed IEEE 519 at the PCC — {where}"
            + (f"; individual orders over: {failing}" if failing else "")
            + ".",
            inputs,
            steps,
            fix="Measure chargers' spectra, use chargers with lower THDi, add filtering, or limit the EV demand.",
        )
    yield Finding(
        "service",
        "Voltage distortion limits",
        Status.INFO,
        TABLE_1,
        f"At {num(volts)} V (≤ 1 kV) the PCC voltage limits are THDv ≤ {num(result.thd_v_limit_pct)} %, "
        f"individual ≤ {num(result.individual_v_limit_pct)} %; voltage distortion is mainly the utility's and is "
        "verified by measurement.",
        {
            "volts": volts,
            "thd_v_limit_pct": result.thd_v_limit_pct,
            "individual_v_limit_pct": result.individual_v_limit_pct,
        },
    )


def _study(idx: SiteIndex) -> Finding:
    n = len(idx.site.evse)
    threshold = idx.site.jurisdiction.amendments.power_quality_study_at_chargers
    inputs = {"chargers": n, "threshold": threshold}
    steps = [f"{n} chargers {'≥' if n >= threshold else '<'} {threshold} (study threshold)"]
    if n >= threshold:
        return Finding(
            "site",
            "Power-quality study",
            Status.WARN,
            STUDY,
            f"{n} chargers: a power-quality study (harmonics at the PCC, measured over a week) is recommended.",
            inputs,
            steps,
            fix="Commission a power-quality study: measure at the PCC before and after energisation "
            "(IEC 61000-4-30 class A, weekly 95th/99th percentiles) and compare with IEEE 519 Tables 1–2.",
        )
    return Finding(
        "site",
        "Power-quality study",
        Status.INFO,
        STUDY,
        f"{n} charger{'s' if n != 1 else ''}: below the {threshold}-charger threshold; no study recommended.",
        inputs,
        steps,
    )


def _power_factor(idx: SiteIndex) -> Finding | None:
    tariff = idx.site.tariff
    minimum = idx.site.service.minimum_power_factor or (tariff.minimum_power_factor if tariff else None)
    if minimum is None:
        return None
    evse = idx.site.evse
    total = sum(e.rated_current_a for e in evse)
    pf = sum(e.power_factor * e.rated_current_a for e in evse) / total if total else 1.0
    inputs = {"ev_displacement_pf": round(pf, 4), "minimum_pf": minimum}
    steps = [f"rating-weighted EV displacement PF = {num(pf, 3)}", f"tariff/service minimum = {num(minimum, 3)}"]
    if pf + 1e-9 >= minimum:
        return Finding(
            "service",
            "Displacement power factor",
            Status.PASS,
            PF,
            f"The EV load's displacement PF {num(pf, 3)} ≥ the {num(minimum, 3)} minimum: it does not pull the "
            "service below it (the building's own PF is not modelled).",
            inputs,
            steps,
        )
    return Finding(
        "service",
        "Displacement power factor",
        Status.WARN,
        PF,
        f"The EV load's displacement PF {num(pf, 3)} is below the {num(minimum, 3)} minimum.",
        inputs,
        steps,
        fix="Check the chargers' PF at partial load; consider PF correction at the service.",
    )
