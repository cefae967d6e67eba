"""Load calculations (NEC 2023 Article 220, 625.41, 625.42(A), 750.30) at the service and feeders.

For each service and feeder the EV load is computed twice: unmanaged (every EVSE at its rating)
and managed (each EMS replaces what it manages by its setpoint, 220.70). The difference at the
service is the upgrade the load management avoids. Line currents are phasor sums, so single-phase
chargers rotated across a three-phase system are counted on the lines that really carry them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator

from evsite.code.calc.common import CalcError
from evsite.code.findings import Citation, Finding, Status, nec
from evsite.code.rules.context import SERVICE, SiteIndex, num
from evsite.code.sizing import dwelling_220_82, next_standard_ocpd
from evsite.site.model import EnergyManagementSystem, Evse, Feeder

CONTINUOUS = 1.25
EVSE_MIN_VA_220_57 = 7200.0
J1772_MIN_A = 6.0
J1772 = Citation("SAE J1772", "pilot current 6 A minimum", "2017")


def check(idx: SiteIndex) -> Iterator[Finding]:
    yield _evse_load_220_57(idx)
    yield from _service(idx)
    for feeder in idx.site.feeders:
        yield _feeder_load(idx, feeder)
    for ems in idx.site.ems:
        yield from _ems(idx, ems)


def _rating(amps: float) -> str:
    """The 240.6(A) standard rating at or above `amps`, or a note when none is large enough."""
    try:
        return f"{num(next_standard_ocpd(amps))} A"
    except CalcError:
        return f"more than the largest standard rating ({num(amps)} A needed)"


def _worst(lines: dict[str, float]) -> tuple[str, float]:
    line = max(lines, key=lambda k: lines[k]) if lines else "L1"
    return line, lines.get(line, 0.0)


def _amps_from_va(idx: SiteIndex, va: float, three_phase: bool) -> float:
    volts = idx.system.line_to_line_v
    return va / (math.sqrt(3) * volts) if three_phase else va / volts


def _evse_va(idx: SiteIndex, evse: Evse) -> float:
    circuit = idx.circuits.get(evse.circuit)
    if circuit is None:
        return evse.rated_current_a * idx.system.line_to_line_v
    v = idx.circuit_voltage(circuit)
    return evse.rated_current_a * v.volts * (math.sqrt(3) if v.phases == 3 else 1.0)


def _evse_load_220_57(idx: SiteIndex) -> Finding:
    loads = [max(EVSE_MIN_VA_220_57, _evse_va(idx, e)) for e in idx.site.evse]
    total = sum(loads)
    counts = Counter(round(v) for v in loads)
    steps = [f"{n} × max(7,200 VA, nameplate) = {n} × {num(va)} VA" for va, n in sorted(counts.items())]
    steps.append(f"total = {num(total)} VA")
    return Finding(
        "site",
        "EVSE load (220.57)",
        Status.INFO,
        nec("220.57"),
        f"Connected EVSE load for load calculations: {num(total / 1000, 1)} kVA ({len(loads)} EVSE).",
        {"evse_count": len(loads), "total_va": total},
        steps,
    )


# --------------------------------------------------------------------------- service


def _service(idx: SiteIndex) -> Iterator[Finding]:
    service = idx.site.service
    unmanaged = idx.line_currents(SERVICE, managed=False)
    managed = idx.line_currents(SERVICE, managed=True)
    m_line, m_a = _worst(managed)
    existing = existing_load_a(idx)
    service_ems = idx.ems_limit(SERVICE)

    # What the EV load may use: the allocation if the site has one, else the service less its existing load.
    if service.allocation_a is not None:
        capacity = service.allocation_a
        capacity_text = f"EV allocation {num(capacity)} A"
    elif existing is not None:
        capacity = service.rating_a - existing * CONTINUOUS
        capacity_text = f"{num(service.rating_a)} A service − 125 % × {num(existing)} A existing = {num(capacity)} A"
    else:
        capacity = service.rating_a
        capacity_text = f"service rating {num(service.rating_a)} A"

    if existing is not None:
        yield _existing_220_87(idx, existing, m_a, service_ems)
    if service.dwelling is not None:
        yield _dwelling_220_82(idx, service_ems)

    ems_present = any(abs(unmanaged[k] - managed[k]) > 1e-6 for k in unmanaged) or service_ems is not None
    yield _upgrade_avoided(idx, unmanaged, managed, capacity, capacity_text, ems_present)
    checked_by_220_87 = existing is not None and service.allocation_a is None
    if service_ems is None and not checked_by_220_87 and m_a * CONTINUOUS > capacity + 1e-9:
        yield Finding(
            "service",
            "EV load on the service",
            Status.FAIL,
            nec("220.70, 625.41, 230.42(A)"),
            f"EV load {num(m_a)} A (line {m_line}) × 125 % = {num(m_a * CONTINUOUS)} A exceeds {capacity_text}.",
            {"ev_line_a": m_a, "capacity_a": capacity},
            [f"{num(m_a)} A × 1.25 = {num(m_a * CONTINUOUS)} A"],
            fix="Add or lower an EMS setpoint (625.42(A), 220.70), reduce EVSE settings (625.42(B)), "
            "or increase the service.",
        )


def existing_load_a(idx: SiteIndex) -> float | None:
    existing = idx.site.service.existing_load
    if existing is None:
        return None
    if existing.max_demand_a is not None:
        return existing.max_demand_a
    if existing.max_demand_kva is not None:
        return _amps_from_va(idx, existing.max_demand_kva * 1000, idx.system.is_three_phase)
    return None


def _existing_220_87(
    idx: SiteIndex, existing_a: float, ev_line_a: float, service_ems: EnergyManagementSystem | None
) -> Finding:
    service = idx.site.service
    data = service.existing_load
    assert data is not None
    v = idx.system.line_to_line_v
    steps = []
    if data.max_demand_a is None and data.max_demand_kva is not None:
        div = f"(√3 × {num(v)} V)" if idx.system.is_three_phase else f"{num(v)} V"
        steps.append(f"{num(data.max_demand_kva * 1000)} VA / {div} = {num(existing_a)} A maximum demand")
    new_a = ev_line_a * CONTINUOUS
    total = existing_a * CONTINUOUS + new_a
    steps += [
        f"existing {num(existing_a)} A × 125 % = {num(existing_a * CONTINUOUS)} A",
        f"new EV load {num(ev_line_a)} A × 125 % (continuous) = {num(new_a)} A",
        f"total {num(total)} A {'≤' if total <= service.rating_a else '>'} {num(service.rating_a)} A service",
    ]
    inputs = {
        "existing_a": existing_a,
        "basis": data.basis,
        "new_ev_a": ev_line_a,
        "total_a": total,
        "service_a": service.rating_a,
        "renewables_or_peak_shaving": data.has_renewables_or_peak_shaving,
    }
    citation = nec("220.87")
    if data.has_renewables_or_peak_shaving:
        covered = f" The service is sized by EMS {service_ems.id} instead (220.70)." if service_ems else ""
        return Finding(
            "service",
            "Existing load (220.87)",
            Status.WARN if service_ems else Status.FAIL,
            citation,
            "220.87 may not be used where the service has renewable generation or peak shaving; "
            f"result shown for information only.{covered}",
            inputs,
            steps,
            fix=None
            if service_ems
            else "Use a load calculation per Article 220 Part III/IV (or 220.82/220.83 "
            "for a dwelling), or manage the service with an EMS (220.70).",
        )
    if total <= service.rating_a + 1e-9:
        return Finding(
            "service",
            "Existing load (220.87)",
            Status.PASS,
            citation,
            f"Existing demand plus the new EV load fits the service: {num(total)} A ≤ {num(service.rating_a)} A.",
            inputs,
            steps,
        )
    return Finding(
        "service",
        "Existing load (220.87)",
        Status.FAIL,
        citation,
        f"Existing demand plus the new EV load exceeds the service: {num(total)} A > {num(service.rating_a)} A.",
        inputs,
        steps,
        fix=f"Limit the EV load with an EMS to {num(max(0.0, service.rating_a / CONTINUOUS - existing_a))} A "
        "per line (625.42(A), 220.70), or upgrade the service.",
    )


def _dwelling_220_82(idx: SiteIndex, service_ems: EnergyManagementSystem | None) -> Finding:
    """220.82 optional method for a single dwelling; EVSE in the 40 % bucket unless the AHJ says 100 %."""
    service = idx.site.service
    d = service.dwelling
    assert d is not None
    at_100 = idx.site.jurisdiction.amendments.evse_at_100pct_in_220_82
    evse_va = sum(_evse_va(idx, e) for e in idx.site.evse)
    citation = nec("220.82")
    if service.rating_a < 100 or idx.three_phase:
        return Finding(
            "service",
            "Dwelling load (220.82)",
            Status.INFO,
            citation,
            "220.82 applies to a single dwelling on a 3-wire service of 100 A or more; not evaluated.",
            {"service_a": service.rating_a},
        )
    try:
        calc = dwelling_220_82(
            d.floor_area_ft2,
            idx.v_ll,
            d.small_appliance_circuits,
            d.laundry_circuits,
            d.appliances_va,
            0.0 if at_100 else evse_va,
            d.cooling_va,
            d.heat_pump_va,
            d.space_heat_va,
            d.space_heat_units,
        )
    except CalcError as exc:
        return Finding("service", "Dwelling load (220.82)", Status.WARN, citation, f"Not evaluated: {exc}")
    total_va, steps = calc.total_va, list(calc.steps)
    if at_100 and evse_va:
        evse = max(EVSE_MIN_VA_220_57, evse_va)
        total_va += evse
        steps.append(f"local amendment: EVSE at 100 % = {num(evse, 0)} VA → total {num(total_va, 0)} VA")
    amps = total_va / idx.v_ll
    fits = amps <= service.rating_a + 1e-9
    steps.append(
        f"{num(total_va, 0)} VA / {num(idx.v_ll)} V = {num(amps)} A {'≤' if fits else '>'} "
        f"{num(service.rating_a)} A service"
    )
    inputs = {
        "total_va": total_va,
        "total_a": amps,
        "service_a": service.rating_a,
        "evse_va": evse_va,
        "evse_at_100pct": at_100,
    }
    if fits:
        return Finding(
            "service",
            "Dwelling load (220.82)",
            Status.PASS,
            citation,
            f"Dwelling load with the EVSE {num(amps)} A ≤ {num(service.rating_a)} A service.",
            inputs,
            steps,
        )
    if service_ems is not None:
        return Finding(
            "service",
            "Dwelling load (220.82)",
            Status.WARN,
            citation,
            f"220.82 gives {num(amps)} A > {num(service.rating_a)} A; the service relies on EMS {service_ems.id} "
            "(220.70) instead.",
            inputs,
            steps,
        )
    return Finding(
        "service",
        "Dwelling load (220.82)",
        Status.FAIL,
        citation,
        f"Dwelling load with the EVSE {num(amps)} A exceeds the {num(service.rating_a)} A service.",
        inputs,
        steps,
        fix="Add an EMS that limits the service (625.42(A), 220.70), lower the EVSE setting with restricted access "
        "(625.42(B)), or upgrade the service.",
    )


def _upgrade_avoided(
    idx: SiteIndex,
    unmanaged: dict[str, float],
    managed: dict[str, float],
    capacity: float,
    capacity_text: str,
    ems_present: bool,
) -> Finding:
    evse = idx.site.evse
    u_line, u_a = _worst(unmanaged)
    m_line, m_a = _worst(managed)
    u_req = u_a * CONTINUOUS
    m_req = m_a * CONTINUOUS
    branch_sum = sum(e.rated_current_a for e in evse)
    sizes = Counter(e.rated_current_a for e in evse)
    sum_text = " + ".join(f"{n} × {num(a)} A" for a, n in sorted(sizes.items())) or "0 A"
    steps = [
        f"unmanaged: Σ EVSE ratings {sum_text} = {num(branch_sum)} A; × 125 % = {num(branch_sum * CONTINUOUS)} A "
        "of continuous-rated branch capacity",
        "unmanaged per line (phasor sum of the circuits on each line): "
        + ", ".join(f"{k} {num(v)} A" for k, v in unmanaged.items()),
        f"worst line {u_line}: {num(u_a)} A × 125 % = {num(u_req)} A → {_rating(u_req)} service/feeder",
        f"managed (EMS setpoints, 220.70): worst line {m_line} {num(m_a)} A × 125 % = {num(m_req)} A",
        f"available: {capacity_text}",
    ]
    inputs = {
        "evse_count": len(evse),
        "unmanaged_sum_a": branch_sum,
        "unmanaged_continuous_rated_a": branch_sum * CONTINUOUS,
        "unmanaged_line_a": unmanaged,
        "unmanaged_required_a": u_req,
        "managed_line_a": managed,
        "managed_required_a": m_req,
        "capacity_a": capacity,
    }
    citation = nec("220.70, 625.42(A), 230.42(A)")
    if not ems_present:
        status = Status.PASS if u_req <= capacity + 1e-9 else Status.INFO
        verdict = "fits" if u_req <= capacity + 1e-9 else "does not fit"
        return Finding(
            "service",
            "Service upgrade avoided",
            status,
            citation,
            f"No EMS: the unmanaged EV load ({num(u_req)} A continuous-rated) {verdict} the available capacity.",
            inputs,
            steps,
        )
    if u_req <= capacity + 1e-9:
        return Finding(
            "service",
            "Service upgrade avoided",
            Status.INFO,
            citation,
            f"No upgrade needed even unmanaged ({num(u_req)} A ≤ {num(capacity)} A); the EMS adds headroom.",
            inputs,
            steps,
        )
    if m_req <= capacity + 1e-9:
        avoided = u_req - capacity
        steps.append(f"upgrade avoided: {num(u_req)} A − {num(capacity)} A = {num(avoided)} A per line")
        return Finding(
            "service",
            "Service upgrade avoided",
            Status.PASS,
            citation,
            f"Service upgrade avoided: unmanaged, {len(evse)} EVSE need {num(branch_sum * CONTINUOUS)} A of "
            f"continuous-rated branch capacity ({num(u_req)} A per line at the service); managed at "
            f"{num(m_a)} A per line they need {num(m_req)} A and fit the {num(capacity)} A available.",
            {**inputs, "avoided_a": avoided},
            steps,
        )
    return Finding(
        "service",
        "Service upgrade avoided",
        Status.INFO,
        citation,
        f"Even managed, the EV load ({num(m_req)} A) exceeds the available {num(capacity)} A.",
        inputs,
        steps,
    )


# --------------------------------------------------------------------------- feeders


def _feeder_load(idx: SiteIndex, feeder: Feeder) -> Finding:
    element = f"feeder {feeder.id}"
    three = feeder.phases == 3 and idx.system.is_three_phase
    cont_other = _amps_from_va(idx, feeder.continuous_load_va, three)
    noncont = _amps_from_va(idx, feeder.noncontinuous_load_va, three)
    unmanaged = idx.line_currents(feeder.id, managed=False)
    managed = idx.line_currents(feeder.id, managed=True)
    line, ev = _worst(managed)
    _, ev_unmanaged = _worst(unmanaged)
    required = (ev + cont_other) * CONTINUOUS + noncont
    ems = idx.ems_limit(feeder.id)
    steps = ["EV load per line: " + ", ".join(f"{k} {num(v)} A" for k, v in managed.items())]
    if ems is not None:
        steps.insert(0, f"EMS {ems.id} setpoint {num(ems.setpoint_a)} A is the EV load (220.70, 625.42(A))")
    if cont_other or noncont:
        steps.append(f"other loads: {num(cont_other)} A continuous, {num(noncont)} A non-continuous")
    steps += [
        f"({num(ev)} A + {num(cont_other)} A) × 125 % + {num(noncont)} A = {num(required)} A",
        f"feeder OCPD {num(feeder.ocpd_a)} A {'≥' if feeder.ocpd_a >= required - 1e-9 else '<'} {num(required)} A",
    ]
    if ems is not None and ev_unmanaged > ev:
        steps.append(
            f"unmanaged it would need {num(ev_unmanaged)} A × 125 % = {num(ev_unmanaged * CONTINUOUS)} A "
            f"→ {_rating(ev_unmanaged * CONTINUOUS + noncont + cont_other * CONTINUOUS)}"
        )
    inputs = {
        "ev_line_a": managed,
        "ev_unmanaged_line_a": unmanaged,
        "other_continuous_a": cont_other,
        "noncontinuous_a": noncont,
        "required_a": required,
        "ocpd_a": feeder.ocpd_a,
    }
    citation = nec("215.3, 625.41, 220.70") if ems else nec("215.3, 625.41")
    if feeder.ocpd_a >= required - 1e-9:
        return Finding(
            element,
            "Feeder load",
            Status.PASS,
            citation,
            f"Feeder OCPD {num(feeder.ocpd_a)} A covers the {'managed ' if ems else ''}EV load "
            f"({num(ev)} A on {line}) at 125 %.",
            inputs,
            steps,
        )
    return Finding(
        element,
        "Feeder load",
        Status.FAIL,
        citation,
        f"Feeder OCPD {num(feeder.ocpd_a)} A is below the {num(required)} A the load needs.",
        inputs,
        steps,
        fix=f"Use a {_rating(required)} feeder (conductors to match) or limit the EV load with "
        f"an EMS setpoint ≤ {num(max(0.0, (feeder.ocpd_a - noncont) / CONTINUOUS - cont_other))} A (625.42(A)).",
    )


# --------------------------------------------------------------------------- EMS


def _node_limit(idx: SiteIndex, node: str) -> tuple[float | None, str]:
    if node == SERVICE:
        service = idx.site.service
        return service.limit_a, "service allocation" if service.allocation_a else "service rating"
    if node in idx.feeders:
        return idx.feeders[node].ocpd_a, f"feeder {node} OCPD"
    if node in idx.circuits:
        return idx.circuits[node].ocpd_a, f"circuit {node} OCPD"
    if node in idx.panels:
        panel = idx.panels[node]
        return panel.main_ocpd_a or panel.bus_rating_a, f"panel {node} rating"
    return None, node


def _ems_element(node: str, idx: SiteIndex) -> str:
    if node == SERVICE:
        return "service"
    if node in idx.feeders:
        return f"feeder {node}"
    if node in idx.circuits:
        return f"circuit {node}"
    return f"panel {node}"


def _ems(idx: SiteIndex, ems: EnergyManagementSystem) -> Iterator[Finding]:
    inputs = {"ems": ems.id, "setpoint_a": ems.setpoint_a, "listed": ems.listed, "marked": ems.marked}
    first = _ems_element(ems.manages[0], idx)
    if not ems.listed:
        yield Finding(
            first,
            "EMS listing",
            Status.FAIL,
            nec("750.30, 625.42(A)"),
            f"EMS {ems.id} is not listed; a load-limiting EMS must be listed (system, field kit, or components).",
            inputs,
            fix="Use an EMS listed for load management (e.g. UL 916 or UL 3141 power control).",
        )
    if not ems.marked:
        yield Finding(
            first,
            "EMS marking",
            Status.FAIL,
            nec("625.42(A)"),
            f"EMS {ems.id}: equipment with load management must be marked to say so.",
            inputs,
            fix="Mark the equipment (field label) with the EMS and its maximum setting.",
        )
    for node in ems.manages:
        limit, what = _node_limit(idx, node)
        element = _ems_element(node, idx)
        required = ems.setpoint_a * CONTINUOUS
        steps = [f"{num(ems.setpoint_a)} A × 125 % = {num(required)} A (setpoint treated as continuous)"]
        node_inputs = {**inputs, "node": node, "limit_a": limit, "required_a": required}
        if limit is None:
            continue
        steps.append(f"{what} {num(limit)} A {'≥' if limit >= required - 1e-9 else '<'} {num(required)} A")
        if limit >= required - 1e-9:
            yield Finding(
                element,
                "EMS setpoint",
                Status.PASS,
                nec("220.70, 625.42(A), 750.30(C)"),
                f"EMS {ems.id} limits {node} to {num(ems.setpoint_a)} A; at 125 % that fits the {what}.",
                node_inputs,
                steps,
            )
        else:
            yield Finding(
                element,
                "EMS setpoint",
                Status.FAIL,
                nec("220.70, 625.42(A), 750.30(C)"),
                f"EMS {ems.id} setpoint {num(ems.setpoint_a)} A × 125 % exceeds the {what} ({num(limit)} A).",
                node_inputs,
                steps,
                fix=f"Lower the setpoint to {num(limit / CONTINUOUS)} A or less.",
            )
        yield _per_port(idx, ems, node, element)


def _per_port(idx: SiteIndex, ems: EnergyManagementSystem, node: str, element: str) -> Finding:
    """Worst-case current each port gets when every port under the EMS is busy (fair sharing)."""
    ports: Counter[str] = Counter()
    evse_list = idx.downstream_evse(node) if node not in idx.circuits else idx.evse_on(node)
    min_rating = math.inf
    for evse in evse_list:
        circuit = idx.circuits[evse.circuit]
        n = len(evse.connectors)
        min_rating = min(min_rating, evse.rated_current_a / n)
        for phase in circuit.lines:
            ports[phase.value] += n
    total_ports = sum(len(e.connectors) for e in evse_list)
    if not ports:
        return Finding(element, "Per-port current, all busy", Status.INFO, nec("625.42(A)"), "No ports under the EMS.")
    line, busiest = max(ports.items(), key=lambda kv: kv[1])
    share = ems.setpoint_a / busiest
    per_port = min(share, min_rating)
    volts = idx.system.line_to_line_v
    steps = [
        "ports per line: " + ", ".join(f"{k} {v}" for k, v in sorted(ports.items())),
        f"busiest line {line}: {num(ems.setpoint_a)} A / {busiest} ports = {num(share)} A per port",
    ]
    if per_port < share:
        steps.append(f"capped by the EVSE rating: {num(per_port)} A")
    steps.append(f"{num(per_port)} A × {num(volts)} V ≈ {num(per_port * volts / 1000, 1)} kW per port")
    inputs = {
        "ems": ems.id,
        "setpoint_a": ems.setpoint_a,
        "ports": total_ports,
        "ports_per_line": dict(ports),
        "per_port_a": per_port,
    }
    if per_port + 1e-9 < J1772_MIN_A:
        return Finding(
            element,
            "Per-port current, all busy",
            Status.WARN,
            J1772,
            f"With all {total_ports} ports busy each gets {num(per_port)} A, below the 6 A J1772 minimum: "
            "the EMS must pause and rotate sessions.",
            inputs,
            steps,
            fix="Raise the setpoint or accept rotation (pause ports in turn instead of offering < 6 A).",
        )
    return Finding(
        element,
        "Per-port current, all busy",
        Status.INFO,
        nec("625.42(A)"),
        (f"With all {total_ports} ports busy, each gets" if total_ports != 1 else "With its one port busy, it gets")
        + f" at least {num(per_port)} A "
        f"(≈ {num(per_port * volts / 1000, 1)} kW).",
        inputs,
        steps,
    )
