"""Deadline- and tariff-aware allocation: a linear program over the next hours, solved with HiGHS.

Each cycle (or every `resolve_s`) the plan gives every present EV a current per 5-minute step until
its departure, subject to the tree's limits on every node and line, the EV's remaining energy and
the port/EV maxima. The objective values delivered energy first (earlier slightly more, so that
nothing is deferred without reason) and then avoids expensive hours: an EV whose deadline allows it
is moved to cheaper periods, one whose deadline does not is served now.

The LP is continuous; the plan's first step then goes through the same feasibility machinery as
the fair policy (6 A or pause, maxima, 0.1 A steps, phase-in of raises), with ports admitted in
the order of their planned current, so the optimiser cannot produce an unsafe setpoint.

`offline_optimum` solves the same model once with perfect foresight of all sessions: the upper
bound the benchmarks compare against.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from evsite.control.allocate import J1772_MIN_A, Demand, allocate_fair, effective_capacity, port_upper
from evsite.control.controller import Needs
from evsite.control.signals import price_series
from evsite.control.tree import ConstraintTree
from evsite.site.model import Site

STEP_S = 300.0
HORIZON_S = 12 * 3600.0
DEFAULT_STAY_S = 8 * 3600.0
EARLY_BONUS = 0.05  # value of energy falls by 5 % across the horizon: charge now unless it costs
SMOOTH_STEPS = 6
DEADLINE_BUFFER_S = 1800.0
ENERGY_MARGIN = 1.1
PRICE_WEIGHT = 0.5  # a kWh at the highest price is worth half a kWh at price zero


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """HiGHS prints a banner from C on its first use; keep it out of --json output."""
    sys.stdout.flush()
    fd = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(fd, 1)
        os.close(fd)


def _solve(
    cap_rows: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    ub: np.ndarray,
    first: np.ndarray,
    last: np.ndarray,
    energy_a_steps: np.ndarray,
    value: np.ndarray,
) -> np.ndarray:
    """max Σ value[t]·r[c,t] s.t. Σ_{c in row} r[c,t] ≤ cap, Σ_t r[c,t] ≤ energy, 0 ≤ r ≤ ub.

    r[c, t] exists only for first[c] ≤ t < last[c].

    Returns r as (ports, steps). Energy is in ampere-steps (Wh / (V · step hours)) so one row per port.
    """
    import highspy

    n_ports, n_steps = ub.size, value.size
    alive = np.zeros((n_ports, n_steps), dtype=bool)
    for c in range(n_ports):
        alive[c, first[c] : last[c]] = ub[c] > 0 and energy_a_steps[c] > 0
    var = np.full((n_ports, n_steps), -1, dtype=np.int64)
    var[alive] = np.arange(int(alive.sum()))
    n_var = int(alive.sum())
    out = np.zeros((n_ports, n_steps))
    if n_var == 0:
        return out
    with _quiet_stdout():
        h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    col_port, col_step = np.nonzero(alive)
    h.addVars(n_var, np.zeros(n_var), ub[col_port].astype(float))
    h.changeColsCost(n_var, np.arange(n_var, dtype=np.int32), -value[col_step].astype(float))
    # Capacity rows: for each constrained (node, line) row and step, the ports on it that are alive.
    starts: list[int] = []
    index: list[np.ndarray] = []
    upper: list[float] = []
    nnz = 0
    order = np.argsort(rows, kind="stable")
    rows_s, cols_s = rows[order], cols[order]
    bounds = np.searchsorted(rows_s, np.unique(rows_s))
    bounds = np.append(bounds, rows_s.size)
    for b in range(bounds.size - 1):
        row = rows_s[bounds[b]]
        if not np.isfinite(cap_rows[row]) or cap_rows[row] >= 1e11:
            continue
        members = cols_s[bounds[b] : bounds[b + 1]]
        block = var[members]  # (members, steps)
        for t in range(n_steps):
            v = block[:, t]
            v = v[v >= 0]
            if v.size < 2 and (v.size == 0 or ub[col_port[v[0]]] <= cap_rows[row]):
                continue
            starts.append(nnz)
            index.append(v)
            upper.append(float(cap_rows[row]))
            nnz += v.size
    # Energy rows.
    for c in range(n_ports):
        v = var[c][var[c] >= 0]
        if v.size:
            starts.append(nnz)
            index.append(v)
            upper.append(float(energy_a_steps[c]))
            nnz += v.size
    if starts:
        idx = np.concatenate(index).astype(np.int32)
        h.addRows(
            len(starts),
            np.full(len(starts), -np.inf),
            np.asarray(upper),
            int(idx.size),
            np.asarray(starts, dtype=np.int32),
            idx,
            np.ones(idx.size),
        )
    h.run()
    solution = np.asarray(h.getSolution().col_value)
    out[col_port, col_step] = np.maximum(solution, 0.0)
    return out


def _values(prices: np.ndarray | None, n_steps: int) -> np.ndarray:
    early = 1.0 - EARLY_BONUS * np.arange(n_steps) / max(n_steps, 1)
    if prices is None or prices.size == 0 or float(prices.max()) <= 0:
        return early
    p = np.resize(prices, n_steps)
    return early - PRICE_WEIGHT * p / float(p.max())


@dataclass
class MpcPolicy:
    """Receding-horizon plan, re-solved every `resolve_s` or when the set of EVs or limits changes."""

    site: Site | None = None  # its tariff prices the steps
    epoch_offset_s: float = 0.0  # `now` + this = Unix time (the replay counts from its start)
    step_s: float = STEP_S
    horizon_s: float = HORIZON_S
    resolve_s: float = STEP_S

    def __post_init__(self) -> None:
        self._plan: np.ndarray | None = None
        self._planned_at = -math.inf
        self._key: tuple[bytes, bytes] | None = None

    def __call__(
        self, tree: ConstraintTree, demand: Demand, limits: np.ndarray, now: float, needs: Needs
    ) -> np.ndarray:
        # Re-plan when EVs come or go or a limit moves by more than a few amperes, else once per step;
        # between plans the projection below still enforces the limits of this very moment.
        key = (demand.present.tobytes(), np.round(limits / 5.0).tobytes())
        if self._plan is None or key != self._key or now - self._planned_at >= self.resolve_s:
            self._plan = self.plan(tree, demand, limits, now, needs)
            self._planned_at, self._key = now, key
        step = min(int((now - self._planned_at) // self.step_s), self._plan.shape[1] - 1)
        # An LP plan is bang-bang (full or nothing per step); its mean over the next half hour keeps the
        # same energy per port but spares contactors the on/off cycling.
        window = self._plan[:, step : step + SMOOTH_STEPS]
        planned = window.mean(axis=1) if window.size else np.zeros(tree.n_ports)
        return project(tree, demand, limits, planned)

    def plan(self, tree: ConstraintTree, demand: Demand, limits: np.ndarray, now: float, needs: Needs) -> np.ndarray:
        n_steps = max(1, math.ceil(self.horizon_s / self.step_s))
        ub = port_upper(tree, demand)
        # Plan to finish early and a little over: EVs taper at the end and setpoints round down.
        departure = np.where(np.isnan(needs.departure_s), now + DEFAULT_STAY_S, needs.departure_s) - DEADLINE_BUFFER_S
        last = np.clip(np.floor((departure - now) / self.step_s), 1, n_steps).astype(np.int64)
        remaining = np.where(np.isnan(needs.requested_wh), np.inf, needs.remaining_wh)
        energy = ENERGY_MARGIN * remaining / (needs.volts * self.step_s / 3600.0)
        energy = np.where(np.isfinite(energy), energy, ub * n_steps)
        rows, cols, cap = effective_capacity(tree, limits, demand)
        prices = None
        if self.site is not None and self.site.tariff is not None:
            when = datetime.fromtimestamp(now + self.epoch_offset_s, UTC)
            prices = price_series(self.site.tariff, when, self.step_s, n_steps, self.site.timezone)
        zero = np.zeros(tree.n_ports, dtype=np.int64)
        return _solve(cap, rows, cols, ub, zero, last, energy, _values(prices, n_steps))


def project(tree: ConstraintTree, demand: Demand, limits: np.ndarray, planned: np.ndarray) -> np.ndarray:
    """Make a planned current safe: J1772 6 A or pause, maxima, 0.1 A, phase-in; highest plans first."""
    wanted = np.where(planned >= J1772_MIN_A / 2, np.maximum(planned + 1e-6, J1772_MIN_A), 0.0)
    ordered = Demand(**{**demand.__dict__, "rank": -planned})
    return allocate_fair(tree, ordered, limits, upper=wanted)


def mpc_policy(tree: ConstraintTree, demand: Demand, limits: np.ndarray, now: float, needs: Needs) -> np.ndarray:
    """A fresh `MpcPolicy` per call (stateless form; the replay and loop keep one `MpcPolicy` instead)."""
    return MpcPolicy(resolve_s=0.0)(tree, demand, limits, now, needs)


def offline_optimum(
    tree: ConstraintTree,
    arrivals_s: Sequence[float],
    departures_s: Sequence[float],
    energy_wh: Sequence[float],
    ev_max_a: Sequence[float],
    port_of: Sequence[int],
    volts: np.ndarray,
    limits: np.ndarray | None = None,
    step_s: float = STEP_S,
) -> np.ndarray:
    """Perfect-foresight LP: the most energy (Wh per session) any schedule could deliver under the tree's limits.

    Each session is a column block on its port's rows; sessions on one port never overlap in time.
    """
    limits = tree.limits if limits is None else limits
    n = len(arrivals_s)
    start = float(min(arrivals_s))
    n_steps = math.ceil((max(departures_s) - start) / step_s) + 1
    # Sessions become virtual ports that inherit their port's rows.
    base_rows, base_cols = tree.incidence()
    order = np.argsort(base_cols, kind="stable")
    base_rows, base_cols = base_rows[order], base_cols[order]
    slices = np.searchsorted(base_cols, np.arange(tree.n_ports + 1))
    rows = np.concatenate([base_rows[slices[p] : slices[p + 1]] for p in port_of])
    cols = np.concatenate([np.full(slices[p + 1] - slices[p], i) for i, p in enumerate(port_of)])
    port_max = np.array([tree.ports[p].max_a for p in port_of])
    ub = np.minimum(port_max, np.asarray(ev_max_a, dtype=float))
    first = np.floor((np.asarray(arrivals_s) - start) / step_s).astype(np.int64) + 1  # whole steps only
    last = np.floor((np.asarray(departures_s) - start) / step_s).astype(np.int64)
    v = volts[np.asarray(port_of)]
    energy = np.asarray(energy_wh, dtype=float) / (v * step_s / 3600.0)
    cap = limits.reshape(-1)
    cap = np.where(np.isfinite(cap), cap, 1e12)
    r = _solve(cap, rows, cols, ub, first, np.maximum(last, first), energy, np.ones(n_steps))
    del n
    return r.sum(axis=1) * v * step_s / 3600.0
