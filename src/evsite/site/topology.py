"""The site's electrical node tree and every safety number derived from it, defined once.

The load manager's constraint tree, the fail-safe profiles, the dashboard, billing and the synthetic
month all read node limits, line conversions and the J1772 minimum from here. A second copy of any
of these numbers is a defect: the copies used to disagree (a 200 A bus under a 225 A main was 180 A
to the controller and 160 A on the dashboard).

The per-line continuous limit of a node (NEC 2023; reasoning in docs/load-management.md):

- an overcurrent device that is not listed for 100 % continuous operation may carry 80 % of its
  rating continuously, and EV charging is a continuous load (210.19(A)(1), 210.20(A), 215.3,
  230.42(A), 625.41). The site model has no 100 %-rated flag, so 80 % always applies: service,
  panel main, feeder and branch circuit;
- a panel's bus rating is an ampacity, not an overcurrent device: it applies at 100 %. A panel with
  no main of its own is protected by the device upstream of it (408.36), which is its ancestor here;
- an EMS setpoint is the load used in calculations, already continuous (625.42(A), 220.70, 750.30):
  it caps the node as it is;
- the service's EV allocation is an agreed current, a cap as it is;
- an EVSE may draw its nameplate, or its adjusted setting when one is set; a connector its own rating.

Pure: no I/O, no numpy, imports only the site model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from evsite.site.model import Evse, ServiceSystem, Site

ROOT = "service"
"""Id of the tree's root: the utility service (also what `fed_by`/`from_panel` name for it)."""
ALLOCATION = "allocation"
"""Id of the node for the service's EV allocation, between the service and what it feeds."""

LINES = ("L1", "L2", "L3")
LINE_INDEX = {name: i for i, name in enumerate(LINES)}

CONTINUOUS_FRACTION = 0.8
"""Continuous load on an OCPD not listed for 100 % operation: 80 % of its rating (210.19/215.3/230.42/625.41)."""

J1772_MIN_A = 6.0
"""The lowest current a J1772 / IEC 61851 pilot can offer; between 0 and this there is no charging (pause)."""
J1772_MAX_A = 80.0
"""The highest current a J1772 pilot can offer (duty 96 %)."""
SETPOINT_STEP_A = 0.1
"""Granularity of a current limit (OCPP's decimal, the pilot's resolution): round down to it."""
STEPS_PER_A = round(1 / SETPOINT_STEP_A)
STEP_TOLERANCE = 1e-9
"""Float noise only: a value within 1e-10 A under a 0.1 A step counts as on it (in units of steps)."""

UPSTREAM_KINDS = ("service", "allocation", "panel", "feeder")


@dataclass(frozen=True)
class Node:
    """One node of the electrical tree with its own continuous limit on each of its lines."""

    id: str
    kind: str  # service | allocation | panel | feeder | circuit | evse | connector
    parent: str | None
    lines: tuple[str, ...]
    limit_a: float
    label: str
    connector: int | None = None  # the OCPP connector id, on connector nodes


def continuous_a(ocpd_a: float) -> float:
    """The continuous current an OCPD not rated for 100 % may carry (80 % of its rating)."""
    return CONTINUOUS_FRACTION * ocpd_a


def ems_cap(site: Site, node_id: str, limit_a: float) -> float:
    """A limit lowered by every EMS setpoint on the node (625.42(A), 750.30)."""
    return min([limit_a, *(e.setpoint_a for e in site.ems_for(node_id))])


def evse_limit(evse: Evse) -> float:
    """The most an EVSE may draw: its nameplate, or its adjusted setting when one is set."""
    return min(evse.max_current_a, evse.adjustable_setting_a or evse.max_current_a)


def service_limit_a(site: Site) -> float:
    """The service node's own limit: 80 % of its rating, capped by any EMS on the service."""
    return ems_cap(site, ROOT, continuous_a(site.service.rating_a))


def panel_limit_a(site: Site, panel_id: str) -> float:
    """A panel's own limit: its bus rating (an ampacity) and 80 % of its main, capped by an EMS."""
    panel = site.panel(panel_id)
    limit = panel.bus_rating_a
    if panel.main_ocpd_a is not None:
        limit = min(limit, continuous_a(panel.main_ocpd_a))
    return ems_cap(site, panel.id, limit)


def nodes(site: Site) -> list[Node]:
    """Every node reachable from the service, parents before children, each with its own limit.

    Nodes that no path from the service reaches (the loader rejects such sites) are left out.
    """
    lines = site.service.system.lines
    out: list[Node] = [Node(ROOT, "service", None, lines, service_limit_a(site), "Service")]
    top = ROOT
    if site.service.allocation_a is not None:
        out.append(Node(ALLOCATION, "allocation", ROOT, lines, site.service.allocation_a, "EV allocation"))
        top = ALLOCATION
    panels_by_source: dict[str, list[str]] = {}
    for panel in site.panels:
        panels_by_source.setdefault(panel.fed_by, []).append(panel.id)
    feeders_by_source: dict[str, list[str]] = {}
    for feeder in site.feeders:
        feeders_by_source.setdefault(feeder.from_panel, []).append(feeder.id)
    circuits_by_panel: dict[str, list[int]] = {}
    for k, circuit in enumerate(site.circuits):
        circuits_by_panel.setdefault(circuit.panel, []).append(k)
    evse_by_circuit: dict[str, list[Evse]] = {}
    for evse in site.evse:
        evse_by_circuit.setdefault(evse.circuit, []).append(evse)
    feeder_by_id = {f.id: f for f in site.feeders}
    seen: set[str] = set()

    def add_panel(panel_id: str, parent: str) -> None:
        if panel_id in seen:
            return
        seen.add(panel_id)
        panel = site.panel(panel_id)
        out.append(Node(panel.id, "panel", parent, lines, panel_limit_a(site, panel.id), panel.name or panel.id))
        for k in circuits_by_panel.get(panel.id, []):
            add_circuit(k, panel.id)
        for feeder_id in feeders_by_source.get(panel.id, []):
            add_feeder(feeder_id, panel.id)

    def add_feeder(feeder_id: str, parent: str) -> None:
        if feeder_id in seen:
            return
        seen.add(feeder_id)
        feeder = feeder_by_id[feeder_id]
        limit = ems_cap(site, feeder.id, continuous_a(feeder.ocpd_a))
        out.append(Node(feeder.id, "feeder", parent, lines, limit, f"Feeder {feeder.id}"))
        for panel_id in panels_by_source.get(feeder.id, []):
            add_panel(panel_id, feeder.id)

    def add_circuit(k: int, parent: str) -> None:
        circuit = site.circuits[k]
        c_lines = tuple(str(line.value) for line in circuit.lines)
        limit = ems_cap(site, circuit.id, continuous_a(circuit.ocpd_a))
        out.append(Node(circuit.id, "circuit", parent, c_lines, limit, f"Circuit {circuit.id}"))
        for evse in evse_by_circuit.get(circuit.id, []):
            e_max = evse_limit(evse)
            out.append(Node(evse.id, "evse", circuit.id, c_lines, e_max, evse.id))
            for conn in evse.connectors:
                c_max = min(e_max, conn.max_current_a or e_max)
                node_id = connector_id(evse.id, conn.id)
                out.append(Node(node_id, "connector", evse.id, c_lines, c_max, f"{evse.id} #{conn.id}", conn.id))

    for panel_id in panels_by_source.get(ROOT, []):
        add_panel(panel_id, top)
    for feeder_id in feeders_by_source.get(ROOT, []):
        add_feeder(feeder_id, top)
    return out


def connector_id(evse_id: str, connector: int) -> str:
    """The node id of one connector of an EVSE."""
    return f"{evse_id}#{connector}"


def limits(site: Site) -> dict[str, dict[str, float]]:
    """Each node's own continuous limit per line: {node id: {line: amperes}}."""
    return {n.id: dict.fromkeys(n.lines, n.limit_a) for n in nodes(site)}


def chain(site_nodes: Iterable[Node], node_id: str) -> list[str]:
    """The node and every node above it, up to the service (empty for an unknown node)."""
    by_id = {n.id: n for n in site_nodes}
    out: list[str] = []
    current: str | None = node_id
    while current is not None and current in by_id and current not in out:
        out.append(current)
        current = by_id[current].parent
    return out


def evse_under(site: Site, node_id: str) -> set[str]:
    """Ids of the EVSE at or below a node (service, allocation, panel, feeder, circuit or EVSE)."""
    site_nodes = nodes(site)
    return {e.id for e in site.evse if node_id in chain(site_nodes, e.id)}


def effective_limit_a(site: Site, node_id: str) -> float:
    """The tightest limit on any line of the node or above it: what its subtree may draw at most."""
    site_nodes = nodes(site)
    by_id = {n.id: n for n in site_nodes}
    return min((by_id[n].limit_a for n in chain(site_nodes, node_id)), default=0.0)


# --------------------------------------------------------------------------- amperes <-> watts


def drawn_lines(evse: Evse, circuit_lines: int) -> int:
    """Lines an EVSE's current flows in: 3 for a 3φ EVSE on a 3-line circuit, else its circuit's (at most 2)."""
    if evse.phases == 3 and circuit_lines == 3:
        return 3
    return min(circuit_lines, 2)


def watts_per_amp(system: ServiceSystem, lines: int) -> float:
    """Watts that one ampere on each of `lines` lines delivers: V_LN, V_LL, or √3 × V_LL (balanced 3φ).

    P = √3 · V_LL · I for a balanced three-phase load; the nominal 3 × V_LN differs from it only by
    the rounding of the nominal voltages (360 W against 360.3 W per A on 208Y/120 V).
    """
    if lines >= 3:
        return math.sqrt(3) * system.line_to_line_v
    if lines == 2:
        return system.line_to_line_v
    return system.line_to_neutral_v


def evse_watts_per_amp(site: Site, evse: Evse) -> float:
    """Watts one ampere per line delivers on this EVSE, as its circuit is wired."""
    circuit = next((c for c in site.circuits if c.id == evse.circuit), None)
    n_lines = 2 if circuit is None else len(circuit.lines)
    return watts_per_amp(site.service.system, drawn_lines(evse, n_lines))


def line_current_a(system: ServiceSystem, power_kw: float) -> float:
    """Current per line of a balanced load of `power_kw` across every line of the service."""
    return power_kw * 1000.0 / watts_per_amp(system, len(system.lines))


def power_kw(system: ServiceSystem, amps_per_line: float) -> float:
    """Power of a balanced load drawing `amps_per_line` on every line of the service."""
    return amps_per_line * watts_per_amp(system, len(system.lines)) / 1000.0


# --------------------------------------------------------------------------- phases and pilot


def rotate(per_phase: dict[str, float], circuit_lines: tuple[str, ...], three_phase: bool) -> dict[str, float]:
    """Map a charger's own per-phase currents onto the site lines its circuit uses.

    A 3φ charger's L1/L2/L3 follow the circuit's line order (phase rotation: on a circuit wired
    L2-L3-L1 its L1 is the site's L2). A 1φ charger carries the same current on each of its
    circuit's lines, the largest it reports.
    """
    if not per_phase:
        return {}
    if three_phase:
        return {site_line: abs(per_phase.get(LINES[i], 0.0)) for i, site_line in enumerate(circuit_lines)}
    amps = max(abs(v) for v in per_phase.values())
    return dict.fromkeys(circuit_lines, amps)


def site_line_currents(evse: Evse, circuit_lines: tuple[str, ...], per_phase: dict[str, float]) -> dict[str, float]:
    """`rotate` for an EVSE on its circuit: three-phase only for a 3φ EVSE on a 3-line circuit."""
    return rotate(per_phase, circuit_lines, drawn_lines(evse, len(circuit_lines)) == 3)


def floor_step(value: float) -> float:
    """Round a current down to 0.1 A (never up: a limit must not grow by rounding)."""
    return math.floor(value * STEPS_PER_A + STEP_TOLERANCE) / STEPS_PER_A


def pilot_limit_a(limit_a: float) -> float:
    """A limit the J1772 pilot can signal: ≥ 6 A in 0.1 A steps, or 0 (pause)."""
    value = floor_step(max(0.0, limit_a))
    return value if value >= J1772_MIN_A else 0.0
