"""The constraint tree: every node of the electrical design with the current it may carry per line.

The allocator never reasons about panels or feeders by name: it sees arrays. A connector loads a set
of (node, line) pairs — every ancestor on every line its circuit connects — and each pair has a
limit in amperes. Keeping the model linear (a connector drawing I amperes adds I to each line it
uses at each ancestor) makes feasibility a matter of sums, which is what lets 10,000 ports be
checked and allocated with a few numpy reductions.

Phase mapping is explicit: a connector's `lines` are its circuit's lines in order, so a 1φ 208 V
charger on L2-L3 loads L2 and L3, a 240 V split-phase charger loads L1 and L2, and a 3φ charger on
a circuit wired L2-L3-L1 is phase-rotated (its phase A is L2: a 1φ car on it draws from L2 only).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from evsite.site.model import Circuit, Evse, Site

LINES = ("L1", "L2", "L3")
LINE_INDEX = {name: i for i, name in enumerate(LINES)}
CONTINUOUS_FRACTION = 0.8
"""An OCPD may carry 80 % of its rating continuously (NEC 210.19(A), 215.3, 625.41: EV load is continuous)."""

ROOT = "service"
ALLOCATION = "allocation"


@dataclass(frozen=True)
class Port:
    """One connector as the allocator sees it."""

    charge_point_id: str
    connector_id: int
    node: int  # index of the connector's own node
    lines: tuple[int, ...]  # line indices loaded, in the port's phase order (phase A first)
    max_a: float  # the lowest of EVSE setting and connector rating
    three_phase: bool

    @property
    def key(self) -> tuple[str, int]:
        return (self.charge_point_id, self.connector_id)


@dataclass
class ConstraintTree:
    """Nodes (with parents and per-line limits) and the ports hanging under them.

    `limits[n, l]` is the design limit of node n on line l (inf where unconstrained or absent).
    `rows_*` list every (node, line) pair a port loads, as flat index arrays for `np.bincount`.
    """

    node_ids: list[str]
    kinds: list[str]
    parents: np.ndarray
    limits: np.ndarray
    ports: list[Port]
    node_index: dict[str, int] = field(init=False)
    port_index: dict[tuple[str, int], int] = field(init=False)
    ancestors: list[list[int]] = field(init=False)
    _rows: np.ndarray = field(init=False, repr=False)
    _cols: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.node_index = {nid: i for i, nid in enumerate(self.node_ids)}
        self.port_index = {p.key: i for i, p in enumerate(self.ports)}
        self.ancestors = [self._ancestors(p.node) for p in self.ports]
        rows: list[int] = []
        cols: list[int] = []
        for p, port in enumerate(self.ports):
            for node in self.ancestors[p]:
                for ln in port.lines:
                    rows.append(node * 3 + ln)
                    cols.append(p)
        self._rows = np.asarray(rows, dtype=np.int64)
        self._cols = np.asarray(cols, dtype=np.int64)

    def _ancestors(self, node: int) -> list[int]:
        chain = []
        while node >= 0:
            chain.append(node)
            node = int(self.parents[node])
        return chain

    @property
    def n_nodes(self) -> int:
        return len(self.node_ids)

    @property
    def n_ports(self) -> int:
        return len(self.ports)

    def incidence(self, line_mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(row, port) pairs: port p adds its current to row = node * 3 + line for every ancestor node.

        `line_mask[p, l]` (bool) narrows the lines a port actually draws on (a 1φ car on a 3φ port);
        by default every line of its circuit is counted, the worst case.
        """
        if line_mask is None:
            return self._rows, self._cols
        keep = line_mask[self._cols, self._rows % 3]
        return self._rows[keep], self._cols[keep]

    def line_mask(self) -> np.ndarray:
        """The worst-case lines of every port (its circuit's lines), shape (ports, 3)."""
        mask = np.zeros((self.n_ports, 3), dtype=bool)
        for p, port in enumerate(self.ports):
            mask[p, list(port.lines)] = True
        return mask

    def node_load(self, currents: np.ndarray, line_mask: np.ndarray | None = None) -> np.ndarray:
        """Current per (node, line) when port p draws currents[p] on each of its lines; shape (nodes, 3)."""
        rows, cols = self.incidence(line_mask)
        flat = np.bincount(rows, weights=currents[cols], minlength=self.n_nodes * 3)
        return flat.reshape(self.n_nodes, 3)

    def node_load_lines(self, per_line: np.ndarray) -> np.ndarray:
        """Current per (node, line) from measured per-line port currents, shape (ports, 3) in site lines."""
        rows, cols = self._rows, self._cols
        flat = np.bincount(rows, weights=per_line[cols, rows % 3], minlength=self.n_nodes * 3)
        return flat.reshape(self.n_nodes, 3)

    def subtree_ports(self, node_id: str) -> list[int]:
        node = self.node_index[node_id]
        return [p for p in range(self.n_ports) if node in self.ancestors[p]]


class _Builder:
    def __init__(self) -> None:
        self.ids: list[str] = []
        self.kinds: list[str] = []
        self.parents: list[int] = []
        self.limits: list[list[float]] = []
        self.ports: list[Port] = []

    def add(self, node_id: str, kind: str, parent: int, limit: float, lines: tuple[str, ...] = LINES) -> int:
        row = [np.inf, np.inf, np.inf]
        for name in lines:
            row[LINE_INDEX[name]] = limit
        self.ids.append(node_id)
        self.kinds.append(kind)
        self.parents.append(parent)
        self.limits.append(row)
        return len(self.ids) - 1


def _cap(site: Site, node_id: str, limit: float) -> float:
    """An EMS setpoint on a node is a hard cap on it (NEC 625.42(A), 750.30)."""
    return min([limit, *(e.setpoint_a for e in site.ems_for(node_id))])


def evse_limit(evse: Evse) -> float:
    """The most an EVSE may draw: its nameplate, or its adjusted setting when one is set."""
    return min(evse.max_current_a, evse.adjustable_setting_a or evse.max_current_a)


def build_tree(site: Site) -> ConstraintTree:
    """Build the constraint tree of a validated site (references are already checked by the loader)."""
    b = _Builder()
    evse_by_circuit: dict[str, list[Evse]] = {}
    for evse in site.evse:  # one pass: per-circuit scans made 10,000 ports take seconds
        evse_by_circuit.setdefault(evse.circuit, []).append(evse)
    service = site.service
    service_lines = service.system.lines
    root = b.add(ROOT, "service", -1, _cap(site, ROOT, service.rating_a), service_lines)
    top = root
    if service.allocation_a is not None:
        top = b.add(ALLOCATION, "allocation", root, service.allocation_a, service_lines)

    def add_panel(panel_id: str, parent: int) -> None:
        panel = site.panel(panel_id)
        limit = panel.bus_rating_a
        if panel.main_ocpd_a is not None:
            limit = min(limit, CONTINUOUS_FRACTION * panel.main_ocpd_a)
        node = b.add(panel.id, "panel", parent, _cap(site, panel.id, limit), service_lines)
        for circuit in site.circuits_in(panel.id):
            add_circuit(circuit, node)
        for feeder in site.feeders_from(panel.id):
            add_feeder(feeder.id, node)

    def add_feeder(feeder_id: str, parent: int) -> None:
        feeder = next(f for f in site.feeders if f.id == feeder_id)
        limit = _cap(site, feeder.id, CONTINUOUS_FRACTION * feeder.ocpd_a)
        node = b.add(feeder.id, "feeder", parent, limit, service_lines)
        for panel in site.panels_fed_by(feeder.id):
            add_panel(panel.id, node)

    def add_circuit(circuit: Circuit, parent: int) -> None:
        lines = tuple(line.value for line in circuit.lines)
        limit = _cap(site, circuit.id, CONTINUOUS_FRACTION * circuit.ocpd_a)
        node = b.add(circuit.id, "circuit", parent, limit, lines)
        for evse in evse_by_circuit.get(circuit.id, []):
            e_max = evse_limit(evse)
            e_node = b.add(evse.id, "evse", node, e_max, lines)
            for conn in evse.connectors:
                c_max = min(e_max, conn.max_current_a or e_max)
                c_node = b.add(f"{evse.id}#{conn.id}", "connector", e_node, c_max, lines)
                b.ports.append(
                    Port(
                        charge_point_id=evse.id,
                        connector_id=conn.id,
                        node=c_node,
                        lines=tuple(LINE_INDEX[ln] for ln in lines),
                        max_a=c_max,
                        three_phase=evse.phases == 3 and len(lines) == 3,
                    )
                )

    for panel in site.panels_fed_by(ROOT):
        add_panel(panel.id, top)
    for feeder in site.feeders_from(ROOT):
        add_feeder(feeder.id, top)
    return ConstraintTree(
        node_ids=b.ids,
        kinds=b.kinds,
        parents=np.asarray(b.parents, dtype=np.int64),
        limits=np.asarray(b.limits, dtype=float),
        ports=b.ports,
    )
