"""Indexes over a Site that every rule shares, built once per check.

The site model's lookups (`site.evse_on`, ...) scan lists; a 1,000-EVSE site asks them thousands
of times, so the checker builds these dictionaries once. The module also holds the electrical
helpers several rules need: a circuit's voltage, and per-line currents as phasors so that
single-phase loads rotated across a three-phase system are added the way the lines really carry them.
"""

from __future__ import annotations

import cmath
import math
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

from evsite.site.model import (
    Circuit,
    EnergyManagementSystem,
    Evse,
    Feeder,
    Meter,
    Panel,
    ServiceSystem,
    Site,
)

SERVICE = "service"

# Line-to-neutral voltage angles in degrees: a split-phase service has two lines 180° apart.
_ANGLES_3PH = {"L1": 0.0, "L2": -120.0, "L3": 120.0}
_ANGLES_1PH = {"L1": 0.0, "L2": 180.0, "L3": 0.0}


@lru_cache(maxsize=8192)
def num(value: float, digits: int = 2) -> str:
    """A number for a report line: thousands separators, no trailing zeros (1,200 / 11.43 / 0.5).

    Memoised: a large site formats the same few ratings tens of thousands of times."""
    text = f"{value:,.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


@dataclass(frozen=True)
class CircuitVoltage:
    volts: float  # voltage across the load
    phases: int  # 1 or 3
    to_ground_v: float  # highest voltage to ground of the circuit's conductors


@dataclass
class SiteIndex:
    """One site plus the lookups and derived quantities the rules use."""

    site: Site
    evse_by_circuit: dict[str, list[Evse]] = field(default_factory=dict)
    circuits_by_panel: dict[str, list[Circuit]] = field(default_factory=dict)
    feeders_by_source: dict[str, list[Feeder]] = field(default_factory=dict)
    panels_by_feeder: dict[str, list[Panel]] = field(default_factory=dict)
    ems_by_node: dict[str, list[EnergyManagementSystem]] = field(default_factory=dict)
    meters_by_node: dict[str, list[Meter]] = field(default_factory=dict)
    circuits: dict[str, Circuit] = field(default_factory=dict)
    feeders: dict[str, Feeder] = field(default_factory=dict)
    panels: dict[str, Panel] = field(default_factory=dict)
    meters: dict[str, Meter] = field(default_factory=dict)
    runs_by_raceway: dict[str, list[Feeder | Circuit]] = field(default_factory=dict)
    _line_cache: dict[tuple[str, bool], dict[str, float]] = field(default_factory=dict, repr=False)
    _phasor_cache: dict[tuple[str, bool], dict[str, complex]] = field(default_factory=dict, repr=False)
    v_ll: float = 240.0  # service line-to-line voltage
    v_ln: float = 120.0  # service line-to-neutral voltage
    three_phase: bool = False
    lines: tuple[str, ...] = ("L1", "L2")

    @classmethod
    def build(cls, site: Site) -> SiteIndex:
        idx = cls(site=site)
        evse_by_circuit: dict[str, list[Evse]] = defaultdict(list)
        for evse in site.evse:
            evse_by_circuit[evse.circuit].append(evse)
        circuits_by_panel: dict[str, list[Circuit]] = defaultdict(list)
        for circuit in site.circuits:
            circuits_by_panel[circuit.panel].append(circuit)
        feeders_by_source: dict[str, list[Feeder]] = defaultdict(list)
        for feeder in site.feeders:
            feeders_by_source[feeder.from_panel].append(feeder)
        panels_by_feeder: dict[str, list[Panel]] = defaultdict(list)
        for panel in site.panels:
            panels_by_feeder[panel.fed_by].append(panel)
        ems_by_node: dict[str, list[EnergyManagementSystem]] = defaultdict(list)
        for ems in site.ems:
            for node in ems.manages:
                ems_by_node[node].append(ems)
        meters_by_node: dict[str, list[Meter]] = defaultdict(list)
        for meter in site.meters:
            meters_by_node[meter.measures].append(meter)
        idx.evse_by_circuit = dict(evse_by_circuit)
        idx.circuits_by_panel = dict(circuits_by_panel)
        idx.feeders_by_source = dict(feeders_by_source)
        idx.panels_by_feeder = dict(panels_by_feeder)
        idx.ems_by_node = dict(ems_by_node)
        idx.meters_by_node = dict(meters_by_node)
        idx.circuits = {c.id: c for c in site.circuits}
        idx.feeders = {f.id: f for f in site.feeders}
        idx.panels = {p.id: p for p in site.panels}
        idx.meters = {m.id: m for m in site.meters}
        runs: list[Feeder | Circuit] = [*site.feeders, *site.circuits]
        for run in runs:
            if run.conductors.raceway_id is not None:
                idx.runs_by_raceway.setdefault(run.conductors.raceway_id, []).append(run)
        system = site.service.system
        idx.v_ll, idx.v_ln = system.line_to_line_v, system.line_to_neutral_v
        idx.three_phase, idx.lines = system.is_three_phase, system.lines
        return idx

    # ------------------------------------------------------------------ voltages

    @property
    def system(self) -> ServiceSystem:
        return self.site.service.system

    def circuit_voltage(self, circuit: Circuit) -> CircuitVoltage:
        n = len(circuit.lines)
        return CircuitVoltage(
            volts=self.v_ln if n == 1 else self.v_ll, phases=3 if n == 3 else 1, to_ground_v=self.v_ln
        )

    def feeder_voltage(self, feeder: Feeder) -> CircuitVoltage:
        phases = 3 if feeder.phases == 3 and self.three_phase else 1
        return CircuitVoltage(volts=self.v_ll, phases=phases, to_ground_v=self.v_ln)

    # ------------------------------------------------------------------ loads

    def evse_on(self, circuit_id: str) -> list[Evse]:
        return self.evse_by_circuit.get(circuit_id, [])

    def ems_limit(self, node_id: str) -> EnergyManagementSystem | None:
        """The tightest EMS on a node (625.42(A): the EMS maximum is the load), if any."""
        found = self.ems_by_node.get(node_id)
        return min(found, key=lambda e: e.setpoint_a) if found else None

    def circuit_unmanaged_a(self, circuit: Circuit) -> float:
        """Sum of the rated currents of the EVSE on a circuit (625.42(B) adjusted ratings included)."""
        return sum(e.rated_current_a for e in self.evse_on(circuit.id))

    def circuit_design_a(self, circuit: Circuit) -> float:
        """The continuous load a circuit is sized for: its EVSE, or less where an EMS caps it."""
        load = self.circuit_unmanaged_a(circuit)
        ems = self.ems_limit(circuit.id)
        return min(load, ems.setpoint_a) if ems else load

    def _angles(self) -> dict[str, float]:
        return _ANGLES_3PH if self.three_phase else _ANGLES_1PH

    def _circuit_phasors(self, circuit: Circuit, amps: float) -> dict[str, complex]:
        """Per-line current phasors of `amps` drawn by a circuit at unity power factor."""
        angles = self._angles()
        lines = [str(line) for line in circuit.lines]
        out: dict[str, complex] = {}
        if len(lines) == 1:
            out[lines[0]] = cmath.rect(amps, math.radians(angles[lines[0]]))
        elif len(lines) == 2:
            a, b = lines
            v_ab = cmath.rect(1, math.radians(angles[a])) - cmath.rect(1, math.radians(angles[b]))
            i_ab = cmath.rect(amps, cmath.phase(v_ab))
            out[a] = i_ab
            out[b] = -i_ab
        else:
            for line in lines:
                out[line] = cmath.rect(amps, math.radians(angles[line]))
        return out

    def _balanced_phasors(self, amps: float) -> dict[str, complex]:
        angles = self._angles()
        return {line: cmath.rect(amps, math.radians(angles[line])) for line in self.lines}

    def line_currents(self, node_id: str, managed: bool) -> dict[str, float]:
        """EV current on each line at a node (service, panel or feeder) with all EVSE at full load.

        With `managed`, every EMS below (or on) the node replaces the load it manages by its
        setpoint on each line (625.42(A)); without, each EVSE counts at its rating.
        """
        key = (node_id, managed)
        if key not in self._line_cache:
            phasors = self._node_phasors(node_id, managed)
            self._line_cache[key] = {line: abs(phasors.get(line, 0j)) for line in self.lines}
        return dict(self._line_cache[key])

    def _node_phasors(self, node_id: str, managed: bool) -> dict[str, complex]:
        """Memoised per node: every feeder and the service ask for the same subtrees."""
        key = (node_id, managed)
        found = self._phasor_cache.get(key)
        if found is None:
            found = self._phasor_cache[key] = self._node_phasors_uncached(node_id, managed)
        return found

    def _node_phasors_uncached(self, node_id: str, managed: bool) -> dict[str, complex]:
        if managed and node_id not in self.circuits and (ems := self.ems_limit(node_id)):
            unmanaged = self._children_phasors(node_id, managed)
            worst = max((abs(v) for v in unmanaged.values()), default=0.0)
            return self._balanced_phasors(min(ems.setpoint_a, worst))
        return self._children_phasors(node_id, managed)

    def _children_phasors(self, node_id: str, managed: bool) -> dict[str, complex]:
        total: dict[str, complex] = defaultdict(complex)
        if node_id in self.circuits:
            circuit = self.circuits[node_id]
            amps = self.circuit_design_a(circuit) if managed else self.circuit_unmanaged_a(circuit)
            return self._circuit_phasors(circuit, amps)
        children: list[str] = []
        if node_id == SERVICE or node_id in self.feeders:
            children = [p.id for p in self.panels_by_feeder.get(node_id, [])]
            if node_id == SERVICE:
                children += [f.id for f in self.feeders_by_source.get(SERVICE, [])]
        elif node_id in self.panels:
            children = [c.id for c in self.circuits_by_panel.get(node_id, [])]
            children += [f.id for f in self.feeders_by_source.get(node_id, [])]
        for child in children:
            for line, value in self._node_phasors(child, managed).items():
                total[line] += value
        return dict(total)

    def downstream_evse(self, node_id: str) -> list[Evse]:
        """Every EVSE supplied through a node."""
        return [e for c in self.downstream_circuits(node_id) for e in self.evse_on(c.id)]

    def downstream_circuits(self, node_id: str) -> list[Circuit]:
        if node_id in self.circuits:
            return [self.circuits[node_id]]
        out: list[Circuit] = []
        if node_id in self.panels:
            out += self.circuits_by_panel.get(node_id, [])
            for feeder in self.feeders_by_source.get(node_id, []):
                out += self.downstream_circuits(feeder.id)
            return out
        for panel in self.panels_by_feeder.get(node_id, []):
            out += self.downstream_circuits(panel.id)
        if node_id == SERVICE:
            for feeder in self.feeders_by_source.get(SERVICE, []):
                out += self.downstream_circuits(feeder.id)
        return out

    def upstream_feeders(self, panel_id: str) -> list[Feeder]:
        """Feeders from the service down to a panel, nearest the service first."""
        chain: list[Feeder] = []
        seen: set[str] = set()
        current = self.panels.get(panel_id)
        while current is not None and current.fed_by in self.feeders and current.id not in seen:
            seen.add(current.id)
            feeder = self.feeders[current.fed_by]
            chain.append(feeder)
            current = self.panels.get(feeder.from_panel)
        return list(reversed(chain))

    @cached_property
    def charger_count(self) -> int:
        return len(self.site.evse)


@dataclass(frozen=True)
class ReportTable:
    """A table a rule adds to the report (permit scope, inspection sequence, EVSE classification)."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "title": self.title,
            "columns": list(self.columns),
            "rows": [list(r) for r in self.rows],
            "note": self.note,
        }
