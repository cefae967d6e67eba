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

Every step works on linear rows Σ coef·I ≤ cap. By default a row is a (node, line) with coefficient 1
(magnitudes add: safe whatever the chargers' power factors). With a `PhaseModel` the rows are the
facets of a polygon inscribed in the true phasor limit (see `constraint_rows`), so a 208Y/120 V line
carrying two line-to-line loads 120° apart is held to |I_ab − I_ca| ≤ limit, not I_ab + I_ca ≤ limit.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from evsite.control.tree import ConstraintTree
from evsite.site.topology import J1772_MIN_A, STEP_TOLERANCE, STEPS_PER_A

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
    return np.floor(values * STEPS_PER_A + STEP_TOLERANCE) / STEPS_PER_A


def port_upper(tree: ConstraintTree, demand: Demand) -> np.ndarray:
    """The most each controllable port may be offered: EVSE/connector and EV maxima, 0 below 6 A."""
    port_max = np.array([p.max_a for p in tree.ports])
    upper = floor_step(np.minimum(port_max, demand.ev_max))
    controllable = demand.present & np.isnan(demand.fixed)
    upper = np.where(controllable & (upper >= J1772_MIN_A), upper, 0.0)
    return upper


@dataclass(frozen=True)
class PhasorConstraint:
    """|Σ_p coef[p]·I_p| ≤ limit_a: a current that is a phasor sum of port currents.

    For limits the constraint tree cannot express, e.g. a delta-wye transformer's primary line, which
    carries the difference of two secondary line currents.
    """

    name: str
    coef: np.ndarray  # complex, one per port (0 where the port does not load it)
    limit_a: float


@dataclass(frozen=True)
class PhaseModel:
    """Line currents as phasors instead of arithmetic sums.

    On a three-phase system a line-to-line load is 30° ahead of one line's phase voltage and 30° behind
    the other's; three-phase and line-to-neutral loads are in phase with it. `angle_tolerance_deg`
    allows every load's current to sit that far off its nominal angle (power factor, e.g. 11° for
    PF 0.98): the polygon then covers the worst case. `step_deg` is the spacing of the polygon's
    facets (capacity lost to the polygon ≤ 1 − cos(step/2), 0.9 % at 15°).
    """

    angle_tolerance_deg: float = 0.0
    step_deg: float = 15.0
    extra: tuple[PhasorConstraint, ...] = field(default_factory=tuple)
    outer_bound: bool = False
    """Tangent facets (outside the circle) instead of inscribed ones: a relaxation that can only
    over-estimate capacity, for upper bounds in benchmarks. Never for setpoints (`allocate_fair` refuses)."""


@dataclass
class Rows:
    """Linear rows Σ_{e in row} coef[e]·I[cols[e]] ≤ cap[row]; entries sorted by port."""

    rows: np.ndarray
    cols: np.ndarray
    coef: np.ndarray
    cap: np.ndarray
    unit: bool = False  # every coefficient is 1 (the linear model): skip the products

    def weigh(self, values: np.ndarray) -> np.ndarray:
        """coef · values[port] for every entry."""
        return values[self.cols] if self.unit else self.coef * values[self.cols]

    def load(self, currents: np.ndarray) -> np.ndarray:
        return np.bincount(self.rows, weights=self.weigh(currents), minlength=self.cap.size)


@dataclass
class _Facets:
    """The worst-case (every line of every port) facet incidence of one tree under one phase model."""

    rows: np.ndarray
    cols: np.ndarray
    coef: np.ndarray
    line: np.ndarray  # site line of the entry, -1 for `extra` constraints (never narrowed)
    source: np.ndarray  # per facet row: flat (node·3 + line) index of its limit, or -1 − k for extra[k]
    extra_limits: np.ndarray


def three_phase_system(tree: ConstraintTree) -> bool:
    """A service with three finite lines (208Y/120, 480Y/277 V); split-phase 120/240 V has two, in antiphase."""
    return tree.n_nodes > 0 and bool(np.isfinite(tree.limits[0]).sum() == 3)


def entry_angles(tree: ConstraintTree) -> np.ndarray:
    """Angle (degrees) of each incidence entry's current against its line's phase voltage.

    A load between Lx and the line after it in the phase sequence (L1→L2→L3→L1) is +30° on Lx and −30°
    on the other; on a split-phase service every load is in phase with its lines.
    """
    rows, cols = tree.incidence()
    angle = np.zeros(rows.size)
    if not three_phase_system(tree):
        return angle
    for e in range(rows.size):
        lines = tree.ports[cols[e]].lines
        if len(lines) == 2:
            a, b = lines
            lead = a if (b - a) % 3 == 1 else b
            angle[e] = 30.0 if rows[e] % 3 == lead else -30.0
    return angle


def _arc(angles: np.ndarray) -> tuple[float, float]:
    """The shortest arc (start, width in degrees) holding every angle."""
    a = np.sort(np.mod(angles, 360.0))
    if a.size == 1:
        return float(a[0]), 0.0
    gaps = np.diff(np.append(a, a[0] + 360.0))
    k = int(gaps.argmax())
    start = a[(k + 1) % a.size]
    return float(start), float(360.0 - gaps[k])


def _directions(start: float, width: float, model: PhaseModel) -> tuple[np.ndarray, float]:
    """Facet directions covering every angle the sum can take, and their half-spacing (degrees)."""
    tol = model.angle_tolerance_deg
    span = width + 2 * tol
    if span >= 180.0:  # the sum can point anywhere: cover the whole circle
        m = max(3, math.ceil(360.0 / model.step_deg - 1e-9))
        return np.arange(m) * 360.0 / m, 180.0 / m
    if span <= 1e-9:
        return np.array([start]), 0.0
    m = max(1, math.ceil(span / model.step_deg - 1e-9))
    spacing = span / m
    return start - tol + spacing * (np.arange(m) + 0.5), spacing / 2


def _facet_coef(
    angle: np.ndarray, mag: np.ndarray, phi: float, half: float, tol: float, outer: bool = False
) -> np.ndarray:
    """Worst-case projection of each entry on direction phi, scaled so the facet lies inside the circle.

    The sum's true direction ψ is within `half` of some facet direction, so its projection there is at
    least |sum|·cos(half); an entry whose angle may be off by `tol` projects at most cos(|θ − φ| − tol).
    Negative projections are counted as 0 (more conservative, and keeps every coefficient ≥ 0).
    """
    off = np.abs((angle - phi + 180.0) % 360.0 - 180.0)
    proj = np.cos(np.radians(np.maximum(off - tol, 0.0)))
    if outer:  # the plain projection: |sum| ≥ projection, so these facets enclose the circle
        return mag * np.cos(np.radians(off))
    return mag * np.maximum(proj, 0.0) / math.cos(math.radians(half))


_FACET_CACHE: dict[tuple[int, int], tuple[ConstraintTree, PhaseModel, _Facets]] = {}


def _facets(tree: ConstraintTree, model: PhaseModel) -> _Facets:
    key = (id(tree), id(model))
    hit = _FACET_CACHE.get(key)
    if hit is not None and hit[0] is tree and hit[1] is model:
        return hit[2]
    base_rows, base_cols = tree.incidence()
    angle = entry_angles(tree)
    finite = np.isfinite(tree.limits.reshape(-1))
    out_rows: list[np.ndarray] = []
    out_cols: list[np.ndarray] = []
    out_coef: list[np.ndarray] = []
    out_line: list[np.ndarray] = []
    source: list[int] = []
    order = np.argsort(base_rows, kind="stable")
    bounds = np.flatnonzero(np.diff(np.r_[-1, base_rows[order], -2]))
    for s, e in itertools.pairwise(bounds):
        idx = order[s:e]
        row = int(base_rows[idx[0]])
        start, width = _arc(angle[idx]) if finite[row] else (0.0, 0.0)
        phis, half = _directions(start, width, model) if finite[row] else (np.array([0.0]), 0.0)
        for phi in phis:
            out_rows.append(np.full(idx.size, len(source)))
            out_cols.append(base_cols[idx])
            out_coef.append(
                _facet_coef(
                    angle[idx], np.ones(idx.size), float(phi), half, model.angle_tolerance_deg, model.outer_bound
                )
            )
            out_line.append(np.full(idx.size, row % 3))
            source.append(row)
    for k, c in enumerate(model.extra):
        ports = np.flatnonzero(np.abs(c.coef) > 0)
        if ports.size == 0:
            continue
        ang = np.degrees(np.angle(c.coef[ports]))
        mag = np.abs(c.coef[ports])
        phis, half = _directions(*_arc(ang), model)
        for phi in phis:
            out_rows.append(np.full(ports.size, len(source)))
            out_cols.append(ports)
            out_coef.append(_facet_coef(ang, mag, float(phi), half, model.angle_tolerance_deg, model.outer_bound))
            out_line.append(np.full(ports.size, -1))
            source.append(-1 - k)
    rows = np.concatenate(out_rows) if out_rows else np.zeros(0, dtype=np.int64)
    cols = np.concatenate(out_cols) if out_cols else np.zeros(0, dtype=np.int64)
    coef = np.concatenate(out_coef) if out_coef else np.zeros(0)
    line = np.concatenate(out_line) if out_line else np.zeros(0, dtype=np.int64)
    keep = coef != 0  # inscribed facets clamp at 0; outer-bound facets may be negative
    by_port = np.argsort(cols[keep], kind="stable")
    facets = _Facets(
        rows=rows[keep][by_port].astype(np.int64),
        cols=cols[keep][by_port].astype(np.int64),
        coef=coef[keep][by_port],
        line=line[keep][by_port].astype(np.int64),
        source=np.asarray(source, dtype=np.int64),
        extra_limits=np.array([c.limit_a for c in model.extra], dtype=float),
    )
    if len(_FACET_CACHE) > 16:
        _FACET_CACHE.clear()
    _FACET_CACHE[key] = (tree, model, facets)
    return facets


def constraint_rows(tree: ConstraintTree, limits: np.ndarray, demand: Demand, phases: PhaseModel | None = None) -> Rows:
    """Rows left for controllable ports after fixed loads and overdraw, on the lines each port draws.

    Linear (default): one row per (node, line), coefficient 1. With `phases`: the facets of each row's
    phasor limit, plus the model's extra constraints.
    """
    flat = limits.reshape(-1)
    fixed = np.nan_to_num(demand.fixed, nan=0.0)
    if phases is None:
        rows, cols = tree.incidence(demand.line_mask)
        coef = np.ones(rows.size)
        worst_rows, worst_cols = tree.incidence()  # an uncontrolled port may draw on every line it has
        cap = flat - np.bincount(worst_rows, weights=fixed[worst_cols], minlength=flat.size)
    else:
        f = _facets(tree, phases)
        keep = f.line < 0
        keep[~keep] = demand.line_mask[f.cols[~keep], f.line[~keep]]
        rows, cols, coef = f.rows[keep], f.cols[keep], f.coef[keep]
        base = flat[np.maximum(f.source, 0)]
        if f.extra_limits.size:
            base = np.where(f.source >= 0, base, f.extra_limits[np.clip(-1 - f.source, 0, f.extra_limits.size - 1)])
        cap = base - np.bincount(f.rows, weights=f.coef * fixed[f.cols], minlength=base.size)
    if demand.excess is not None:
        cap = cap - np.bincount(rows, weights=coef * demand.excess[cols], minlength=cap.size)
    cap = np.where(np.isfinite(cap), np.maximum(cap, 0.0), 1e12)
    return Rows(rows, cols, coef, cap, unit=phases is None)


def _slices(cols: np.ndarray, n: int) -> np.ndarray:
    return np.searchsorted(cols, np.arange(n + 1))


def _admit(
    rc: Rows, candidates: np.ndarray, demand: Demand, resume_margin_a: float, hold: np.ndarray | None = None
) -> np.ndarray:
    """Choose which ports get the 6 A minimum when not all of them can (the rest pause).

    `hold`: ports that already hold a feasible allocation keep it (admitted first, at that value).
    """
    rows, cols, coef = rc.rows, rc.cols, rc.coef
    need_a = np.full(candidates.size, J1772_MIN_A) if hold is None else np.maximum(hold, J1772_MIN_A)
    need = np.bincount(rows, weights=rc.weigh(need_a * candidates), minlength=rc.cap.size)
    if np.all(need <= rc.cap):
        return candidates
    admitted = np.zeros_like(candidates)
    residual = rc.cap.copy()
    starts = _slices(cols, candidates.size)
    charging = demand.previous >= J1772_MIN_A
    if hold is not None:
        charging = charging | (hold >= J1772_MIN_A)
    # Holding and charging ports first (no contactor cycling), then higher weight, then lower rank.
    first = np.zeros(candidates.size, dtype=bool) if hold is None else hold >= J1772_MIN_A
    order = np.lexsort((demand.rank, -demand.weight, ~charging, ~first))
    for p in order:
        if not candidates[p]:
            continue
        r = rows[starts[p] : starts[p + 1]]
        c = 1.0 if rc.unit else coef[starts[p] : starts[p + 1]]
        margin = 0.0 if charging[p] else resume_margin_a
        if np.all(residual[r] >= c * (need_a[p] + margin) - 1e-9):
            residual[r] -= c * need_a[p]
            admitted[p] = True
    return admitted


PRUNE_ROUNDS = 6
KEEP_CHARGING_SHARE_A = 3.5  # a charging port is paused only once its weighted share is under this


def _prune_below_minimum(rc: Rows, admitted: np.ndarray, bound: np.ndarray, demand: Demand) -> np.ndarray:
    """Pause the ports whose weighted fair share is under the J1772 minimum, lowest shares first.

    Admission alone gives every admitted port 6 A before weights count, so under heavy congestion
    (many cars, 6 A each fills the rows) weighted sharing collapses into equal sharing: a car that must
    leave in an hour gets the same 6 A as one staying all day. Weighted max-min fairness with the
    J1772 rule (6 A or nothing) instead pauses the ports whose share would fall under 6 A. With equal
    weights this changes nothing (if 6 A for every admitted port fits, max-min gives each at least
    6 A), so it only runs when weights differ. A port already charging keeps its 6 A until its share
    is under `KEEP_CHARGING_SHARE_A` (contactor wear: on the workplace day 1 pause in 23 sessions).
    Each round drops the lower half of the starved ports, since each drop raises the others' shares;
    rounds are bounded (`PRUNE_ROUNDS`).
    """
    weight = demand.weight
    if not admitted.any() or np.ptp(weight[admitted]) <= _EPS:
        return admitted
    floor = np.where(demand.previous >= J1772_MIN_A, KEEP_CHARGING_SHARE_A, J1772_MIN_A)
    admitted = admitted.copy()
    for _ in range(PRUNE_ROUNDS):
        share = _water_fill(rc, rc.cap, np.where(admitted, bound, 0.0), weight, admitted)
        starved = admitted & (share < floor - _EPS)
        if not starved.any():
            break
        admitted &= ~(starved & (share <= np.median(share[starved])))
    return admitted


def _water_fill(rc: Rows, cap: np.ndarray, bound: np.ndarray, weight: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Weighted max-min fair x ≥ 0 with x ≤ bound and Σ coef·x over each row ≤ cap (cap ≥ 0, coef > 0)."""
    rows, cols = rc.rows, rc.cols
    x = np.zeros(bound.size)
    active = active & (bound > 0)
    while active.any():
        load = np.bincount(rows, weights=rc.weigh(x), minlength=cap.size)
        w_row = np.bincount(rows, weights=rc.weigh(weight * active), minlength=cap.size)
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


def phase_in_raises(rc: Rows, target: np.ndarray, reserved: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Scale raises so that in-flight reductions plus the raises still fit every row.

    While an EV has not yet followed a lower pilot it may draw `reserved`; raising another port by
    the same amount at the same moment could overload the shared breaker for ~15 s. Keeping a port
    at (up to) the pilot it already has is not a raise: it counts in the base, so such a port is
    never paused just because its EV momentarily draws less.
    """
    rows, cols, cap = rc.rows, rc.cols, rc.cap
    held = np.maximum(reserved, np.minimum(previous, target))
    raise_ = target > held + _EPS
    if not raise_.any():
        return target
    base = np.where(raise_, held, np.maximum(held, target))
    extra = np.where(raise_, target - held, 0.0)
    base_row = np.bincount(rows, weights=rc.weigh(base), minlength=cap.size)
    extra_row = np.bincount(rows, weights=rc.weigh(extra), minlength=cap.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha_row = np.where(extra_row > 0, np.clip((cap - base_row) / extra_row, 0.0, 1.0), 1.0)
    alpha = np.ones(target.size)
    np.minimum.at(alpha, cols, alpha_row[rows])
    out = np.where(raise_, held + alpha * (target - held), target)
    out = floor_step(out)
    return np.where(out >= J1772_MIN_A, out, 0.0)


def effective_capacity(tree: ConstraintTree, limits: np.ndarray, demand: Demand) -> tuple[np.ndarray, ...]:
    """Row capacities left for controllable ports after fixed loads, and the incidence (linear rows)."""
    rc = constraint_rows(tree, limits, demand)
    return rc.rows, rc.cols, rc.cap


def allocate_fair(
    tree: ConstraintTree,
    demand: Demand,
    limits: np.ndarray | None = None,
    *,
    resume_margin_a: float = 1.0,
    upper: np.ndarray | None = None,
    phases: PhaseModel | None = None,
    lower: np.ndarray | None = None,
) -> np.ndarray:
    """Weighted max-min fair setpoints (A per line) for every port; 0 means pause.

    `limits` (nodes × 3) defaults to the design limits; signals lower it (see `evsite.control.signals`).
    `upper` optionally caps ports further (the MPC policy passes its planned rates).
    `phases` switches from arithmetic to phasor line currents (see `PhaseModel`).
    `lower`: a feasible allocation to start from (ports keep at least that; the rest is shared on top).
    """
    if phases is not None and phases.outer_bound:
        raise ValueError("an outer-bound phase model over-estimates capacity: it is for bounds, not setpoints")
    limits = tree.limits if limits is None else limits
    rc = constraint_rows(tree, limits, demand, phases)
    bound = port_upper(tree, demand) if upper is None else np.minimum(port_upper(tree, demand), floor_step(upper))
    bound = np.where(bound >= J1772_MIN_A, bound, 0.0)
    hold = None if lower is None else np.where(lower >= J1772_MIN_A, np.minimum(lower, bound), 0.0)
    admitted = _admit(rc, bound >= J1772_MIN_A, demand, resume_margin_a, hold)
    if hold is None:
        admitted = _prune_below_minimum(rc, admitted, bound, demand)
    base = np.where(admitted, J1772_MIN_A, 0.0)
    if hold is not None:
        base = np.where(admitted, np.maximum(hold, base), 0.0)
    residual = np.maximum(rc.cap - rc.load(base), 0.0)
    surplus = _water_fill(rc, residual, np.where(admitted, bound - base, 0.0), demand.weight, admitted)
    target = np.where(admitted, floor_step(base + surplus), 0.0)
    target = np.minimum(target, bound)
    return phase_in_raises(rc, target, demand.reserved, demand.previous)


NEED_BUFFER_S = 1800.0  # aim to be done half an hour before departure (EVs taper at the end)
NEED_WEIGHT_MIN = 0.05


def need_weights(
    remaining_wh: np.ndarray, departure_s: np.ndarray, volts: np.ndarray, now: float, top_a: np.ndarray
) -> np.ndarray:
    """Each EV's share of the fair allocation: the current it needs to be done by its departure.

    Equal-current sharing is blind to need: an EV that must average 45 A to get its energy in a
    3-hour stay and one that needs 8 A over 8 hours both get the same current; the first leaves with
    a third of its energy while the second is done early. Weighting each EV by the current it needs
    (as a fraction of what its port and car can take, floored at `NEED_WEIGHT_MIN`) gives every EV
    the same fraction of what it needs instead. An EV whose departure or energy is unknown counts as
    needing its full maximum (weight 1), so knowing less never earns less.
    """
    hours = np.maximum((departure_s - NEED_BUFFER_S - now) / 3600.0, 1.0 / 12.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        needed = remaining_wh / (volts * hours)
        weight = np.clip(needed / np.maximum(top_a, 1e-9), NEED_WEIGHT_MIN, 1.0)
    return np.where(np.isfinite(needed), weight, 1.0)


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


def line_currents(
    tree: ConstraintTree, currents: np.ndarray, phases: PhaseModel | None = None, line_mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """True current per (node, line) (nodes × 3) and per extra constraint when port p draws currents[p].

    Linear: arithmetic sums. With `phases`: magnitudes of the phasor sums at the nominal angles.
    """
    if phases is None:
        return tree.node_load(currents, line_mask), np.zeros(0)
    rows, cols = tree.incidence()
    angle = entry_angles(tree)
    drawn = currents[cols] * (1.0 if line_mask is None else line_mask[cols, rows % 3])
    phasor = drawn * np.exp(1j * np.radians(angle))
    flat = np.zeros(tree.n_nodes * 3, dtype=complex)
    np.add.at(flat, rows, phasor)
    extra = np.array([abs(np.sum(c.coef * currents)) for c in phases.extra])
    return np.abs(flat).reshape(tree.n_nodes, 3), extra


def check_feasible(
    tree: ConstraintTree, setpoints: np.ndarray, limits: np.ndarray | None = None, phases: PhaseModel | None = None
) -> list[str]:
    """Every violated (node, line) and every non-J1772 setpoint, as readable strings (empty if none)."""
    limits = tree.limits if limits is None else limits
    problems = []
    load, extra = line_currents(tree, setpoints, phases)
    over = np.argwhere(load > limits + 1e-9)
    for n, ln in over:
        problems.append(f"{tree.node_ids[n]} L{ln + 1}: {load[n, ln]:.2f} A > {limits[n, ln]:.2f} A")
    for k, amps in enumerate(extra):
        c = phases.extra[k] if phases is not None else None
        if c is not None and amps > c.limit_a + 1e-9:
            problems.append(f"{c.name}: {amps:.2f} A > {c.limit_a:.2f} A")
    for p, value in enumerate(setpoints):
        if 0 < value < J1772_MIN_A:
            problems.append(f"{tree.ports[p].key}: {value} A is inside the J1772 dead band")
    return problems
