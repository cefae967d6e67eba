"""Allocation: one setpoint per connector, feasible by construction at every node and line.

Weighted max-min fairness by progressive filling ("water-filling") over the constraint tree:
raise every admitted port's surplus above the J1772 minimum in proportion to its weight until a
(node, line) row or the port's own maximum stops it, freeze what stopped, repeat. Each round is a
handful of `np.bincount` reductions over the (row, port) incidence, so 10,000 ports take
milliseconds, not seconds.

Why a limit cannot be exceeded (the safety argument, in order):
1. Fixed loads — chargers that do not obey us, at their worst case — are subtracted first.
2. A port is admitted only if 6 A more still fits on every row it loads (J1772: 6 A or nothing).
3. Water-filling only raises ports while every row they load still has slack.
4. Values are rounded down to 0.1 A, so rounding cannot push a row over.
5. Raises are scaled so that, while reductions are still in flight (an EV takes ~15 s to follow a
   lower pilot), the sum over ports of max(what it may still draw, its new setpoint) fits every row
   (what a port may still draw: `reserved`, or the part of its old pilot it keeps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evsite.control.tree import ConstraintTree

J1772_MIN_A = 6.0
STEP_A = 0.1
_FLOAT_TOL = 1e-9  # float noise only: values within 1e-10 A of a 0.1 A step count as on it
_EPS = 1e-9


@dataclass
class Demand:
    """Per-port inputs to one allocation cycle (arrays indexed like `tree.ports`).

    present: an EV is plugged in and wants energy.
    ev_max: the most this EV will take (inf if unknown); a tapering EV's measured draw plus headroom.
    weight: priority class weight (equal weights share equally).
    line_mask: lines each port actually draws on (a 1φ car on a 3φ port draws on one).
    reserved: what each port may still draw before earlier setpoints are confirmed by measurement.
    fixed: nan for ports we control; otherwise the current assumed for an uncontrollable port.
    previous: last setpoint (hysteresis: ports already charging are admitted first).
    rank: admission order among equals (lower first), e.g. least energy delivered so far.
    excess: measured draw above the pilot (an EV overdrawing): reserved on its rows, on top of its setpoint.
    """

    present: np.ndarray
    ev_max: np.ndarray
    weight: np.ndarray
    line_mask: np.ndarray
    reserved: np.ndarray
    fixed: np.ndarray
    previous: np.ndarray
    rank: np.ndarray
    excess: np.ndarray | None = None  # current a port draws beyond any pilot it has (overdraw), on its lines

    @classmethod
    def empty(cls, tree: ConstraintTree) -> Demand:
        n = tree.n_ports
        return cls(
            present=np.zeros(n, dtype=bool),
            ev_max=np.full(n, np.inf),
            weight=np.ones(n),
            line_mask=tree.line_mask(),
            reserved=np.zeros(n),
            fixed=np.full(n, np.nan),
            previous=np.zeros(n),
            rank=np.zeros(n),
        )

    @classmethod
    def all_busy(cls, tree: ConstraintTree) -> Demand:
        d = cls.empty(tree)
        d.present[:] = True
        return d


def floor_step(values: np.ndarray) -> np.ndarray:
    """Round down to the 0.1 A granularity of OCPP limits (never up)."""
    return np.floor(values * 10.0 + _FLOAT_TOL) / 10.0


def port_upper(tree: ConstraintTree, demand: Demand) -> np.ndarray:
    """The most each controllable port may be offered: EVSE/connector and EV maxima, 0 below 6 A."""
    port_max = np.array([p.max_a for p in tree.ports])
    upper = floor_step(np.minimum(port_max, demand.ev_max))
    controllable = demand.present & np.isnan(demand.fixed)
    upper = np.where(controllable & (upper >= J1772_MIN_A), upper, 0.0)
    return upper


def _slices(cols: np.ndarray, n: int) -> np.ndarray:
    return np.searchsorted(cols, np.arange(n + 1))


def _admit(
    rows: np.ndarray, cols: np.ndarray, cap: np.ndarray, candidates: np.ndarray, demand: Demand, resume_margin_a: float
) -> np.ndarray:
    """Choose which ports get the 6 A minimum when not all of them can (the rest pause)."""
    need = np.bincount(rows, weights=J1772_MIN_A * candidates[cols], minlength=cap.size)
    if np.all(need <= cap):
        return candidates
    admitted = np.zeros_like(candidates)
    residual = cap.copy()
    starts = _slices(cols, candidates.size)
    charging = demand.previous >= J1772_MIN_A
    # Charging ports first (no contactor cycling), then higher weight, then lower rank.
    order = np.lexsort((demand.rank, -demand.weight, ~charging))
    for p in order:
        if not candidates[p]:
            continue
        r = rows[starts[p] : starts[p + 1]]
        margin = 0.0 if charging[p] else resume_margin_a
        if np.all(residual[r] >= J1772_MIN_A + margin):
            residual[r] -= J1772_MIN_A
            admitted[p] = True
    return admitted


def _water_fill(
    rows: np.ndarray, cols: np.ndarray, cap: np.ndarray, bound: np.ndarray, weight: np.ndarray, active: np.ndarray
) -> np.ndarray:
    """Weighted max-min fair x ≥ 0 with x ≤ bound and Σ x over each row ≤ cap (cap ≥ 0)."""
    x = np.zeros(bound.size)
    active = active & (bound > 0)
    while active.any():
        load = np.bincount(rows, weights=x[cols], minlength=cap.size)
        w_row = np.bincount(rows, weights=(weight * active)[cols], minlength=cap.size)
        slack = np.maximum(cap - load, 0.0)
        live = w_row > 0
        dt_rows = slack[live] / w_row[live]
        dt_ports = (bound[active] - x[active]) / weight[active]
        dt = max(0.0, min(dt_rows.min(initial=np.inf), dt_ports.min(initial=np.inf)))
        x[active] += weight[active] * dt
        x = np.minimum(x, bound)
        tight = np.zeros(cap.size, dtype=bool)
        tight[live] = slack[live] - w_row[live] * dt <= 1e-7
        stuck = np.bincount(cols, weights=tight[rows], minlength=bound.size) > 0
        active &= ~stuck & (bound - x > _EPS)
    return x


def phase_in_raises(
    rows: np.ndarray, cols: np.ndarray, cap: np.ndarray, target: np.ndarray, reserved: np.ndarray, previous: np.ndarray
) -> np.ndarray:
    """Scale raises so that in-flight reductions plus the raises still fit every row.

    While an EV has not yet followed a lower pilot it may draw `reserved`; raising another port by
    the same amount at the same moment could overload the shared breaker for ~15 s. Keeping a port
    at (up to) the pilot it already has is not a raise: it counts in the base, so such a port is
    never paused just because its EV momentarily draws less.
    """
    held = np.maximum(reserved, np.minimum(previous, target))
    raise_ = target > held + _EPS
    if not raise_.any():
        return target
    base = np.where(raise_, held, np.maximum(held, target))
    extra = np.where(raise_, target - held, 0.0)
    base_row = np.bincount(rows, weights=base[cols], minlength=cap.size)
    extra_row = np.bincount(rows, weights=extra[cols], minlength=cap.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha_row = np.where(extra_row > 0, np.clip((cap - base_row) / extra_row, 0.0, 1.0), 1.0)
    alpha = np.ones(target.size)
    np.minimum.at(alpha, cols, alpha_row[rows])
    out = np.where(raise_, held + alpha * (target - held), target)
    out = floor_step(out)
    return np.where(out >= J1772_MIN_A, out, 0.0)


def effective_capacity(tree: ConstraintTree, limits: np.ndarray, demand: Demand) -> tuple[np.ndarray, ...]:
    """Row capacities left for controllable ports after fixed loads, and the incidence to use."""
    rows, cols = tree.incidence(demand.line_mask)
    worst_rows, worst_cols = tree.incidence()  # an uncontrolled port may draw on every line it has
    fixed = np.nan_to_num(demand.fixed, nan=0.0)
    fixed_load = np.bincount(worst_rows, weights=fixed[worst_cols], minlength=tree.n_nodes * 3)
    cap = limits.reshape(-1) - fixed_load
    if demand.excess is not None:
        cap = cap - np.bincount(rows, weights=demand.excess[cols], minlength=tree.n_nodes * 3)
    return rows, cols, np.where(np.isfinite(cap), np.maximum(cap, 0.0), 1e12)


def allocate_fair(
    tree: ConstraintTree,
    demand: Demand,
    limits: np.ndarray | None = None,
    *,
    resume_margin_a: float = 1.0,
    upper: np.ndarray | None = None,
) -> np.ndarray:
    """Weighted max-min fair setpoints (A per line) for every port; 0 means pause.

    `limits` (nodes × 3) defaults to the design limits; signals lower it (see `evsite.control.signals`).
    `upper` optionally caps ports further (the MPC policy passes its planned rates).
    """
    limits = tree.limits if limits is None else limits
    rows, cols, cap = effective_capacity(tree, limits, demand)
    bound = port_upper(tree, demand) if upper is None else np.minimum(port_upper(tree, demand), floor_step(upper))
    bound = np.where(bound >= J1772_MIN_A, bound, 0.0)
    admitted = _admit(rows, cols, cap, bound >= J1772_MIN_A, demand, resume_margin_a)
    base = np.where(admitted, J1772_MIN_A, 0.0)
    residual = np.maximum(cap - np.bincount(rows, weights=base[cols], minlength=cap.size), 0.0)
    surplus = _water_fill(rows, cols, residual, np.where(admitted, bound - J1772_MIN_A, 0.0), demand.weight, admitted)
    target = np.where(admitted, floor_step(base + surplus), 0.0)
    target = np.minimum(target, bound)
    return phase_in_raises(rows, cols, cap, target, demand.reserved, demand.previous)


def reserved_current(
    measured: np.ndarray, ceiling: np.ndarray, follow_margin_a: float, settled: np.ndarray | None = None
) -> np.ndarray:
    """What a port may still draw before our earlier setpoints are confirmed.

    An EV may draw up to the highest pilot it may still be following (`ceiling`), or more if it
    overdraws. Only an EV seen drawing steadily below its pilot (`settled`: taper, on-board limit)
    is trusted not to climb by more than `follow_margin_a` within a cycle; that is what lets its
    unused current go to others in the very next cycle.
    """
    worst = np.maximum(ceiling, measured)
    trusted = np.minimum(worst, measured + follow_margin_a)
    if settled is None:
        return trusted
    return np.where(settled, trusted, worst)


def check_feasible(tree: ConstraintTree, setpoints: np.ndarray, limits: np.ndarray | None = None) -> list[str]:
    """Every violated (node, line) and every non-J1772 setpoint, as readable strings (empty if none)."""
    limits = tree.limits if limits is None else limits
    problems = []
    load = tree.node_load(setpoints)
    over = np.argwhere(load > limits + 1e-9)
    for n, ln in over:
        problems.append(f"{tree.node_ids[n]} L{ln + 1}: {load[n, ln]:.2f} A > {limits[n, ln]:.2f} A")
    for p, value in enumerate(setpoints):
        if 0 < value < J1772_MIN_A:
            problems.append(f"{tree.ports[p].key}: {value} A is inside the J1772 dead band")
    return problems
