"""Conductors of every branch circuit and feeder: ampacity, protection, EGC, raceway fill, voltage drop.

The per-conductor arithmetic lives in `evsite.code.sizing` (Table 310.16, 110.14(C), 310.15,
240.4, 250.122, Chapter 9); this module decides what load each run carries and which numbers
to feed it, and turns the results into findings for the run's element. Results are memoised on
their inputs because large sites repeat the same circuit design hundreds of times.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

from evsite.code.calc.ampacity import smallest_conductor
from evsite.code.calc.common import CalcError, TooHot
from evsite.code.findings import Citation, Finding, Status, nec
from evsite.code.rules.context import SiteIndex, num
from evsite.code.rules.location import ampacity_conditions
from evsite.code.sizing import check_conductor, conduit_fill, egc_size, voltage_drop
from evsite.site.conductors import parse_conductor, size_index
from evsite.site.model import Circuit, ConductorRun, Feeder, RacewayType, SharedRaceway

_NO_FILL = {RacewayType.CABLE, RacewayType.NONE}
_METALLIC_EGC = {RacewayType.EMT, RacewayType.RMC, RacewayType.IMC}  # 250.118 raceway as EGC
_TABLE9_RACEWAY = {"emt": "steel", "rmc": "steel", "imc": "steel", "fmc": "steel", "lfmc": "steel"}
_OTHER = re.compile(r"^\s*(\d+)\s*[x×]\s*(.+?)\s+([A-Za-z0-9-]+)\s*$")


def check(idx: SiteIndex) -> Iterator[Finding]:
    feeder_drop: dict[str, float] = {}
    for feeder in idx.site.feeders:
        findings, pct = _check_run(idx, feeder, f"feeder {feeder.id}")
        feeder_drop[feeder.id] = pct
        yield from findings
    for circuit in idx.site.circuits:
        findings, pct = _check_run(idx, circuit, f"circuit {circuit.id}")
        yield from findings
        yield from _total_drop(idx, circuit, pct, feeder_drop)
    for raceway in idx.site.raceways:
        yield from _shared_raceway(idx, raceway)


def run_lines(idx: SiteIndex, run: Feeder | Circuit) -> int:
    """Ungrounded conductors per parallel set."""
    if isinstance(run, Circuit):
        return len(run.lines)
    return 3 if run.phases == 3 and idx.three_phase else 2


def current_carrying(idx: SiteIndex, run: Feeder | Circuit) -> tuple[int, str]:
    """Current-carrying conductors a run puts in its raceway, with the reason (310.15(E), (F)).

    Every ungrounded conductor counts; the EGC never does (310.15(F)). The neutral counts on a 2-wire
    circuit, and on a three-phase wye system, where it carries the unbalanced or the harmonic current of
    the chargers' electronic loads (310.15(E)(2), (E)(3)); the neutral of a 120/240 V 3-wire circuit
    carries only the unbalance and does not count (310.15(E)(1))."""
    c = run.conductors
    lines = run_lines(idx, run)
    neutral = c.neutral and (lines == 1 or idx.three_phase)
    n = (lines + (1 if neutral else 0)) * c.parallel_sets
    why = f"{lines * c.parallel_sets} ungrounded"
    if c.neutral:
        why += " + neutral (counts, 310.15(E))" if neutral else " + neutral (not counted, 310.15(E)(1))"
    return n, why


def _run_load(idx: SiteIndex, run: Feeder | Circuit) -> tuple[float, float, int]:
    """(continuous load A, volts, phases) the run is sized for."""
    if isinstance(run, Circuit):
        v = idx.circuit_voltage(run)
        return idx.circuit_design_a(run), v.volts, v.phases
    v = idx.feeder_voltage(run)
    ev = max(idx.line_currents(run.id, managed=True).values(), default=0.0)
    volts = v.volts * (1.7320508075688772 if v.phases == 3 else 1.0)
    other = (run.continuous_load_va + run.noncontinuous_load_va) / volts
    return ev + other, v.volts, v.phases


def _check_run(idx: SiteIndex, run: Feeder | Circuit, element: str) -> tuple[list[Finding], float]:
    c = run.conductors
    load, volts, phases = _run_load(idx, run)
    sets = c.parallel_sets
    per_set = round(load / sets, 6)
    ccc = c.current_carrying_conductors
    out: list[Finding] = []
    if c.raceway_id is not None:
        contradiction, real = _raceway_count(idx, run, element)
        ccc = max(ccc, real)  # the larger count derates more: never headroom from a typo
        if contradiction is not None:
            out.append(contradiction)
    insulation, ambient, _ = ampacity_conditions(c)  # wet rating and rooftop adder where the raceway runs
    design = (c.size, c.material.value, insulation, c.termination_c, ambient, ccc)
    try:
        found = _conductor_findings(*design, per_set, run.ocpd_a / sets, isinstance(run, Feeder))
    except TooHot as exc:  # the conductor may not be used there at all: fail, never "not evaluated"
        out.append(
            Finding(
                element, "conductor ampacity after correction and adjustment", Status.FAIL,
                nec("310.15(B)(1), Table 310.15(B)(1)(1)"), f"{c.insulation}: {exc}.",
                {"insulation": insulation, "ambient_c": ambient},
                fix="Use a 90 °C wet-rated insulation (THWN-2, XHHW-2), raise the raceway off the roof, or reroute.",
            )
        )  # fmt: skip
    except CalcError as exc:
        out.append(_not_evaluated(element, "Conductor ampacity", nec("Table 310.16"), str(exc)))
    else:
        out += [f.at(element) for f in found]
    out += [f.at(element) for f in _egc(run.ocpd_a, c.egc, c.raceway.type, *design, per_set)]
    lines = len(run.lines) if isinstance(run, Circuit) else (3 if run.phases == 3 else 2)
    raceway = c.raceway
    if c.raceway_id is None:  # a shared raceway's fill is checked once, on the raceway
        fill = _fill(
            lines, sets, c.size, c.insulation, c.neutral, c.egc, tuple(c.other_conductors), raceway.type,
            raceway.trade_size,
        )  # fmt: skip
        out += [f.at(element) for f in fill]
    drop, vd = _drop(idx, run, c, load, volts, phases, element)
    out.append(drop)
    return out, vd


@lru_cache(maxsize=4096)
def _conductor_findings(
    size: str,
    material: str,
    insulation: str,
    termination_c: int,
    ambient_c: float,
    ccc: int,
    load_a: float,
    ocpd: float,
    feeder: bool,
) -> tuple[Finding, ...]:
    return tuple(
        check_conductor(size, material, insulation, termination_c, ambient_c, ccc, load_a, True, ocpd, feeder=feeder)
    )


@lru_cache(maxsize=4096)
def _min_phase(
    material: str, insulation: str, termination_c: int, ambient_c: float, ccc: int, load: float
) -> str | None:
    """The smallest phase conductor that carries the load: the 250.122(B) reference size."""
    a = smallest_conductor(material, insulation, termination_c, ambient_c, ccc, load, True, None)
    return a.conductor if a else None


def _raceway_count(idx: SiteIndex, run: Feeder | Circuit, element: str) -> tuple[Finding | None, int]:
    """(a failure when the run's declared count contradicts its shared raceway, the raceway's real count)."""
    rid = run.conductors.raceway_id
    assert rid is not None
    runs = idx.runs_by_raceway.get(rid, [])
    counts = [(other, *current_carrying(idx, other)) for other in runs]
    real = sum(n for _, n, _ in counts)
    declared = run.conductors.current_carrying_conductors
    if declared == real:
        return None, real
    steps = [f"{other.id}: {n} ({why})" for other, n, why in counts]
    steps.append(f"raceway {rid}: {' + '.join(str(n) for _, n, _ in counts)} = {real} current-carrying conductors")
    steps.append(f"declared on {run.id}: {declared}; the adjustment uses {max(declared, real)}")
    return (
        Finding(
            element,
            "Current-carrying conductors in the raceway",
            Status.FAIL,
            nec("310.15(C)(1), 310.15(E), 310.15(F)"),
            f"{run.id} declares {declared} current-carrying conductors, but shared raceway {rid} holds {real}.",
            {"raceway": rid, "declared": declared, "in_raceway": real},
            steps,
            fix=f"Set current_carrying_conductors: {real} on every run in raceway {rid} (or split the raceway).",
        ),
        real,
    )


def _shared_raceway(idx: SiteIndex, raceway: SharedRaceway) -> Iterator[Finding]:
    """Fill of a shared raceway from the conductors of every run pulled through it."""
    runs = idx.runs_by_raceway.get(raceway.id, [])
    element = f"raceway {raceway.id}"
    if not runs:
        yield Finding(element, "Raceway fill", Status.INFO, nec("Chapter 9 Table 1"), "No run uses this raceway.")
        return
    if raceway.type in _NO_FILL:
        return
    items: list[tuple[int, str, str]] = []
    try:
        for run in runs:
            c = run.conductors
            items += _fill_conductors(
                run_lines(idx, run), c.parallel_sets, c.size, c.insulation, c.neutral, c.egc, tuple(c.other_conductors)
            )
    except CalcError as exc:
        yield _not_evaluated(element, "Raceway fill", nec("Chapter 9 Tables 1, 4, 5"), str(exc))
        return
    merged: dict[tuple[str, str], int] = {}
    for n, size, insulation in items:
        merged[(size, insulation)] = merged.get((size, insulation), 0) + n
    combined = tuple((n, size, ins) for (size, ins), n in merged.items())
    for f in _fill_items(combined, raceway.type, raceway.trade_size):
        yield Finding(
            element, f.topic, f.status, f.rule, f"{f.message} Runs: {', '.join(r.id for r in runs)}.", f.inputs,
            f.arithmetic, f.fix,
        )  # fmt: skip


def _not_evaluated(element: str, topic: str, citation: Citation, why: str) -> Finding:
    return Finding(element, topic, Status.WARN, citation, f"Not evaluated: {why}")


@lru_cache(maxsize=4096)
def _egc(
    ocpd_a: float,
    egc: str | None,
    raceway: RacewayType,
    size: str,
    material: str,
    insulation: str,
    termination_c: int,
    ambient_c: float,
    ccc: int,
    load_per_set: float,
) -> tuple[Finding, ...]:
    """EGC findings of a run (element left blank: identical designs share them)."""
    element = ""
    citation = nec("250.122")
    if egc is None:
        if raceway in _METALLIC_EGC:
            return (
                Finding(
                    element,
                    "Equipment grounding conductor",
                    Status.INFO,
                    nec("250.118"),
                    f"No wire EGC listed: the {raceway.value.upper()} raceway serves as the EGC (250.118); "
                    "many EVSE manuals still require a wire EGC.",
                ),
            )
        return (
            Finding(
                element,
                "Equipment grounding conductor",
                Status.FAIL,
                citation,
                "No equipment grounding conductor is given for a non-metallic wiring method.",
                fix="Add a wire EGC sized per Table 250.122.",
            ),
        )
    try:
        egc_size_text, egc_mat = parse_conductor(egc)
        egc_material = egc_mat or material
        installed = f"{size} {material}"
        minimum = _min_phase(material, insulation, termination_c, ambient_c, ccc, load_per_set)
        if minimum is not None and size_index(minimum.rsplit(" ", 1)[0]) > size_index(size):
            minimum = None  # undersized phase conductors are reported by the ampacity check
        required = egc_size(ocpd_a, egc_material, installed if minimum else None, minimum)
    except (CalcError, ValueError) as exc:
        return (_not_evaluated(element, "Equipment grounding conductor", citation, str(exc)),)
    needed = required.egc.rsplit(" ", 1)[0]
    ok = size_index(egc_size_text) >= size_index(needed)
    inputs = {"ocpd_a": ocpd_a, "egc": egc, "required": required.egc, "ratio": round(required.ratio, 4)}
    cite = nec("250.122(B)") if required.ratio > 1 + 1e-9 else citation
    if ok:
        return (
            Finding(
                element,
                "Equipment grounding conductor",
                Status.PASS,
                cite,
                f"EGC {egc} ≥ {required.egc} required.",
                inputs,
                required.steps,
            ),
        )
    return (
        Finding(
            element,
            "Equipment grounding conductor",
            Status.FAIL,
            cite,
            f"EGC {egc} is smaller than the {required.egc} required.",
            inputs,
            required.steps,
            fix=f"Use a {required.egc} EGC.",
        ),
    )


def _fill_conductors(
    lines: int, sets: int, size: str, insulation: str, neutral: bool, egc: str | None, other: tuple[str, ...]
) -> list[tuple[int, str, str]]:
    items = [(lines * sets, size, insulation)]
    if neutral:
        items.append((sets, size, insulation))
    if egc:
        egc_size_text, _ = parse_conductor(egc)
        items.append((1, egc_size_text, insulation))
    for text in other:
        match = _OTHER.match(text)
        if not match:
            raise CalcError(f"cannot read other conductor {text!r}; write e.g. '2x12 THHN'")
        items.append((int(match[1]), match[2], match[3]))
    return items


@lru_cache(maxsize=4096)
def _fill(
    lines: int,
    sets: int,
    size: str,
    insulation: str,
    neutral: bool,
    egc: str | None,
    other: tuple[str, ...],
    raceway: RacewayType,
    trade_size: str | None,
) -> tuple[Finding, ...]:
    """Raceway fill findings of a run (element left blank: identical designs share them)."""
    if raceway in _NO_FILL:
        return ()
    try:
        items = tuple(_fill_conductors(lines, sets, size, insulation, neutral, egc, other))
    except CalcError as exc:
        return (_not_evaluated("", "Raceway fill", nec("Chapter 9 Tables 1, 4, 5"), str(exc)),)
    return _fill_items(items, raceway, trade_size)


@lru_cache(maxsize=4096)
def _fill_items(
    items: tuple[tuple[int, str, str], ...], raceway: RacewayType, trade_size: str | None
) -> tuple[Finding, ...]:
    """Chapter 9 fill of a raceway holding `items` (count, size, insulation)."""
    element = ""
    citation = nec("Chapter 9 Tables 1, 4, 5")
    try:
        result = conduit_fill(list(items), raceway.value, trade_size)
    except CalcError as exc:
        return (_not_evaluated(element, "Raceway fill", citation, str(exc)),)
    inputs = {
        "conductors": [f"{n}×{s} {i}" for n, s, i in items],
        "raceway": result.raceway,
        "fill_pct": round(result.fill_pct, 1),
        "allowed_pct": result.allowed_pct,
        "min_trade_size": result.min_trade_size,
    }
    if trade_size is None:
        return (
            Finding(
                element,
                "Raceway fill",
                Status.INFO,
                citation,
                f"No trade size given; the minimum is {result.min_trade_size} {raceway.value.upper()}.",
                inputs,
                result.steps,
            ),
        )
    if result.fits:
        return (
            Finding(
                element,
                "Raceway fill",
                Status.PASS,
                citation,
                f"{result.raceway} filled to {num(result.fill_pct, 1)} % ≤ {num(result.allowed_pct, 0)} %.",
                inputs,
                result.steps,
            ),
        )
    return (
        Finding(
            element,
            "Raceway fill",
            Status.FAIL,
            citation,
            f"{result.raceway} filled to {num(result.fill_pct, 1)} % > {num(result.allowed_pct, 0)} %.",
            inputs,
            result.steps,
            fix=f"Use {result.min_trade_size} {raceway.value.upper()} or larger.",
        ),
    )


def _power_factor(idx: SiteIndex, run: Feeder | Circuit) -> float:
    evse = idx.evse_on(run.id) if isinstance(run, Circuit) else idx.downstream_evse(run.id)
    return min((e.power_factor for e in evse), default=0.99)


def _drop(
    idx: SiteIndex, run: Feeder | Circuit, c: ConductorRun, load: float, volts: float, phases: int, element: str
) -> tuple[Finding, float]:
    amends = idx.site.jurisdiction.amendments
    branch = isinstance(run, Circuit)
    limit = amends.voltage_drop_branch_pct if branch else amends.voltage_drop_total_pct
    raceway = _TABLE9_RACEWAY.get(c.raceway.type.value, "pvc")
    amps = load / c.parallel_sets
    pf = _power_factor(idx, run)
    design = (c.size, c.material.value, amps, volts, phases, c.length_ft, pf, raceway)
    finding, pct = _drop_finding(*design, limit, amends.enforce_voltage_drop, branch)
    return finding.at(element), pct


@lru_cache(maxsize=4096)
def _drop_finding(
    size: str,
    material: str,
    amps: float,
    volts: float,
    phases: int,
    length_ft: float,
    pf: float,
    raceway: str,
    limit: float,
    enforce: bool,
    branch: bool,
) -> tuple[Finding, float]:
    """Voltage-drop finding of a run (element left blank: identical designs share it) and its %."""
    citation = nec("210.19(A) IN No. 4") if branch else nec("215.2(A)(1) IN No. 2")
    try:
        try:
            vd = voltage_drop(size, material, amps, volts, phases, length_ft, pf, raceway)
        except CalcError:
            vd = voltage_drop(size, material, amps, volts, phases, length_ft)  # K method
    except CalcError as exc:
        return _not_evaluated("", "Voltage drop", citation, str(exc)), 0.0
    pct = vd.voltage_drop_pct
    inputs = {
        "conductor": vd.conductor,
        "amps": round(amps, 3),
        "volts": volts,
        "phases": phases,
        "length_ft": length_ft,
        "method": vd.method,
        "voltage_drop_v": round(vd.voltage_drop_v, 3),
        "voltage_drop_pct": round(pct, 3),
        "limit_pct": limit,
    }
    within = pct <= limit + 1e-9
    text = f"{num(vd.voltage_drop_v)} V ({num(pct)} %) at {num(amps)} A over {num(length_ft, 0)} ft"
    if enforce:
        status = Status.PASS if within else Status.FAIL
        message = f"Voltage drop {text}; the AHJ enforces ≤ {num(limit)} %."
    else:
        status = Status.INFO if within else Status.WARN
        message = f"Voltage drop {text}; recommended ≤ {num(limit)} % (informational note, not enforced)."
    fix = None if within else "Use a larger conductor (and upsize the EGC in proportion, 250.122(B))."
    return Finding("", "Voltage drop", status, citation, message, inputs, vd.steps, fix), pct


def _total_drop(idx: SiteIndex, circuit: Circuit, branch_pct: float, feeder_drop: dict[str, float]) -> list[Finding]:
    chain = idx.upstream_feeders(circuit.panel)
    if not chain:
        return []
    amends = idx.site.jurisdiction.amendments
    limit = amends.voltage_drop_total_pct
    parts = [(f.id, feeder_drop.get(f.id, 0.0)) for f in chain] + [(circuit.id, branch_pct)]
    total = sum(p for _, p in parts)
    steps = [" + ".join(f"{num(p)} % ({name})" for name, p in parts) + f" = {num(total)} %"]
    within = total <= limit + 1e-9
    if amends.enforce_voltage_drop:
        status = Status.PASS if within else Status.FAIL
    else:
        status = Status.INFO if within else Status.WARN
    return [
        Finding(
            f"circuit {circuit.id}",
            "Voltage drop, feeder + branch",
            status,
            nec("210.19(A) IN No. 4"),
            f"Feeder + branch voltage drop {num(total)} % (recommended ≤ {num(limit)} %).",
            {"total_pct": round(total, 3), "limit_pct": limit},
            steps,
            None if within else "Upsize the feeder or branch conductors.",
        )
    ]
