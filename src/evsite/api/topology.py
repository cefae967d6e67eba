"""The site's electrical nodes as the API shows them: parents, lines and design limits.

This is the API's own read-only view, used to place live measurements on the tree when the load
manager is not running (replay databases, design-time use). When the control loop runs, its
snapshot is authoritative and replaces these numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from evsite.site.model import Evse, Site

CONTINUOUS = 0.8
"""Continuous load on an OCPD is limited to 80 % of its rating (NEC 210.20(A), 215.3, 625.41)."""


@dataclass(frozen=True)
class Node:
    id: str
    kind: str  # service | panel | feeder | circuit
    parent: str | None
    lines: tuple[str, ...]
    limit_a: float
    label: str


def nodes(site: Site) -> list[Node]:
    """Service, panels, feeders and circuits, parents before children, each with its run-time limit."""
    lines = site.service.system.lines
    out: list[Node] = [
        Node("service", "service", None, lines, _ems_cap(site, "service", site.service.limit_a), "Service")
    ]
    for feeder in site.feeders:
        parent = feeder.from_panel
        limit = _ems_cap(site, feeder.id, feeder.ocpd_a * CONTINUOUS)
        out.append(Node(feeder.id, "feeder", parent, lines, limit, f"Feeder {feeder.id}"))
    for panel in site.panels:
        rating = min(x for x in (panel.bus_rating_a, panel.main_ocpd_a) if x is not None)
        limit = _ems_cap(site, panel.id, rating * CONTINUOUS if panel.main_ocpd_a else rating)
        out.append(Node(panel.id, "panel", panel.fed_by, lines, limit, panel.name or panel.id))
    for circuit in site.circuits:
        circuit_lines = tuple(str(line) for line in circuit.lines)
        limit = _ems_cap(site, circuit.id, circuit.ocpd_a * CONTINUOUS)
        out.append(Node(circuit.id, "circuit", circuit.panel, circuit_lines, limit, f"Circuit {circuit.id}"))
    return _ordered(out)


def _ems_cap(site: Site, node_id: str, limit: float) -> float:
    return min([limit, *(e.setpoint_a for e in site.ems_for(node_id))])


def _ordered(items: list[Node]) -> list[Node]:
    by_id = {n.id: n for n in items}
    done: list[Node] = []
    seen: set[str] = set()

    def visit(node: Node) -> None:
        if node.id in seen:
            return
        seen.add(node.id)
        if node.parent in by_id:
            visit(by_id[node.parent])
        done.append(node)

    for node in items:
        visit(node)
    return done


def ancestors(site_nodes: list[Node], node_id: str) -> list[str]:
    """The node and every node above it up to the service."""
    by_id = {n.id: n for n in site_nodes}
    chain: list[str] = []
    current: str | None = node_id
    while current is not None and current in by_id and current not in chain:
        chain.append(current)
        current = by_id[current].parent
    return chain


def line_currents(evse: Evse, circuit_lines: tuple[str, ...], per_phase: dict[str, float]) -> dict[str, float]:
    """Map a charger's measured or allocated current onto the site lines its circuit uses.

    A single-phase charger between two lines (208 V or 240 V) carries the same current on both;
    a three-phase charger's L1/L2/L3 follow the circuit's line order (phase rotation).
    """
    if not per_phase:
        return {}
    if evse.phases == 3 and len(circuit_lines) == 3:
        order = ("L1", "L2", "L3")
        return {site_line: per_phase.get(order[i], 0.0) for i, site_line in enumerate(circuit_lines)}
    amps = max(per_phase.values())
    return dict.fromkeys(circuit_lines, amps)
