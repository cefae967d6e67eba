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

from evsite.site import topology
from evsite.site.model import Site
from evsite.site.topology import ALLOCATION as ALLOCATION
from evsite.site.topology import LINE_INDEX as LINE_INDEX
from evsite.site.topology import LINES as LINES
from evsite.site.topology import ROOT as ROOT
from evsite.site.topology import evse_limit as evse_limit


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


def build_tree(site: Site) -> ConstraintTree:
    """Build the constraint tree of a validated site from the one node tree (`evsite.site.topology`)."""
    evse_by_id = {e.id: e for e in site.evse}
    ids: list[str] = []
    kinds: list[str] = []
    parents: list[int] = []
    limits: list[list[float]] = []
    ports: list[Port] = []
    index: dict[str, int] = {}
    for node in topology.nodes(site):
        index[node.id] = len(ids)
        ids.append(node.id)
        kinds.append(node.kind)
        parents.append(-1 if node.parent is None else index[node.parent])
        row = [np.inf, np.inf, np.inf]
        for name in node.lines:
            row[LINE_INDEX[name]] = node.limit_a
        limits.append(row)
        if node.connector is not None:
            evse = evse_by_id[ids[parents[-1]]]
            port_lines = tuple(LINE_INDEX[ln] for ln in node.lines)
            ports.append(
                Port(
                    charge_point_id=evse.id,
                    connector_id=node.connector,
                    node=index[node.id],
                    lines=port_lines,
                    max_a=node.limit_a,
                    three_phase=topology.drawn_lines(evse, len(port_lines)) == 3,
                )
            )
    return ConstraintTree(
        node_ids=ids,
        kinds=kinds,
        parents=np.asarray(parents, dtype=np.int64),
        limits=np.asarray(limits, dtype=float),
        ports=ports,
    )
