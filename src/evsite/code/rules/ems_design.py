"""The energy management system as designed (issue 17): does the site stay within its limits when the EMS is lost?

An EMS limits the load it manages (625.42(A), 220.70), so the feeders and the service are sized for its
setpoint. If the EMS fails or its link to the chargers drops, each charger falls back to a fail-safe
current; the design holds only if every charger at its fallback still keeps each managed node within the
setpoint. Fallbacks: for evsite's own EMS the fail-safe profiles evsite installs at boot
(`control.failsafe.safe_default_limits`, the function the OCPP server uses); for an integral or
external EMS the `fallback_a` the site file states; none stated, the charger's rating (conservative).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from evsite.code.findings import Finding, Status, nec
from evsite.code.rules.context import SERVICE, SiteIndex, num
from evsite.site.model import EnergyManagementSystem, Evse

CITATION = nec("625.42(A), 750.30(C), 220.70")


def fallback_currents(idx: SiteIndex) -> dict[str, tuple[float, str]]:
    """Per managed EVSE id: (current it may draw with the EMS lost, where that number comes from)."""
    site = idx.site
    covering: dict[str, list[EnergyManagementSystem]] = defaultdict(list)
    for ems in site.ems:
        for node in ems.manages:
            for evse in idx.evse_on(node) if node in idx.circuits else idx.downstream_evse(node):
                covering[evse.id].append(ems)
    if not covering:
        return {}
    installed: dict[str, float] = {}
    if any(e.kind == "evsite" for ems_list in covering.values() for e in ems_list):
        from evsite.control.failsafe import safe_default_limits

        installed = safe_default_limits(site)
    by_id: dict[str, Evse] = {e.id: e for e in site.evse}
    out: dict[str, tuple[float, str]] = {}
    for evse_id, ems_list in covering.items():
        rated = by_id[evse_id].rated_current_a
        options = [(rated, "rating: no fail-safe current stated")]
        for ems in ems_list:
            if ems.kind == "evsite" and evse_id in installed:
                options.append((installed[evse_id], f"evsite fail-safe profile ({ems.id})"))
            elif ems.fallback_a is not None:
                options.append((min(rated, ems.fallback_a), f"{ems.id} fallback_a"))
        out[evse_id] = min(options, key=lambda o: o[0])
    return out


def check(idx: SiteIndex) -> Iterator[Finding]:
    if not idx.site.ems:
        return
    fallbacks = fallback_currents(idx)
    for ems in idx.site.ems:
        for node in ems.manages:
            yield _fallback(idx, ems, node, fallbacks)
        if ems.marked and not ems.label:
            yield Finding(
                _element(idx, ems.manages[0]),
                "EMS label text",
                Status.INFO,
                nec("625.42(A), 750.30(C)"),
                f"EMS {ems.id} is marked; record the label text (the EMS and its maximum setting) for the drawings.",
                {"ems": ems.id},
            )


def _element(idx: SiteIndex, node: str) -> str:
    if node == SERVICE:
        return "service"
    for kind, ids in (("feeder", idx.feeders), ("circuit", idx.circuits), ("panel", idx.panels)):
        if node in ids:
            return f"{kind} {node}"
    return node


def _fallback(
    idx: SiteIndex, ems: EnergyManagementSystem, node: str, fallbacks: dict[str, tuple[float, str]]
) -> Finding:
    circuits = [idx.circuits[node]] if node in idx.circuits else idx.downstream_circuits(node)
    total: dict[str, complex] = defaultdict(complex)
    bases: dict[str, int] = defaultdict(int)
    for circuit in circuits:
        amps = 0.0
        for evse in idx.evse_on(circuit.id):
            value, basis = fallbacks.get(evse.id, (evse.rated_current_a, "rating"))
            amps += value
            bases[basis.split(" (")[0]] += 1
        for line, phasor in idx._circuit_phasors(circuit, amps).items():
            total[line] += phasor
    per_line = {line: abs(total.get(line, 0j)) for line in idx.lines}
    worst_line = max(per_line, key=lambda k: per_line[k]) if per_line else "L1"
    worst = per_line.get(worst_line, 0.0)
    ok = worst <= ems.setpoint_a + 1e-9
    steps = [f"fallback currents: {', '.join(f'{n} × {b}' for b, n in bases.items())}"]
    steps.append(
        "per line with every charger at its fallback: " + ", ".join(f"{k} {num(v)} A" for k, v in per_line.items())
    )
    steps.append(f"worst line {worst_line}: {num(worst)} A {'≤' if ok else '>'} {num(ems.setpoint_a)} A setpoint")
    inputs = {"ems": ems.id, "node": node, "setpoint_a": ems.setpoint_a, "fallback_worst_line_a": round(worst, 3)}
    if ok:
        return Finding(
            _element(idx, node), "Design with the EMS lost", Status.PASS, CITATION,
            f"With EMS {ems.id} lost, every charger at its fail-safe current keeps {node} within "
            f"{num(ems.setpoint_a)} A.", inputs, steps,
        )  # fmt: skip
    ports = max(1, sum(1 for c in circuits for e in idx.evse_on(c.id) if worst_line in {str(x) for x in c.lines}))
    return Finding(
        _element(idx, node), "Design with the EMS lost", Status.FAIL, CITATION,
        f"With EMS {ems.id} lost, the chargers' fail-safe currents put {num(worst)} A on {worst_line} of {node}, "
        f"above the {num(ems.setpoint_a)} A the design rests on.", inputs, steps,
        fix=f"Set each charger's fail-safe current to at most {num(ems.setpoint_a / ports)} A "
        f"({num(ems.setpoint_a)} A / {ports} chargers on {worst_line}), or size {node} for the unmanaged load.",
    )  # fmt: skip
