"""Deadline- and tariff-aware allocation: a linear program over the next hours, solved with HiGHS.

Each cycle (or every `resolve_s`) the plan gives every present EV a current per 5-minute step until
its departure, subject to the tree's limits on every node and line, the EV's remaining energy and
the port/EV maxima. The objective values delivered energy first (earlier slightly more, so that
nothing is deferred without reason) and then avoids expensive hours: an EV whose deadline allows it
is moved to cheaper periods, one whose deadline does not is served now. Finishing half an hour
early and a 10 % energy margin (EVs taper, setpoints round down) are soft: worth less, never
required, so under congestion they cost no energy.

The LP is continuous; the plan's first step then goes through the same feasibility machinery as
the fair policy (6 A or pause, maxima, 0.1 A steps, phase-in of raises), with ports admitted in
the order of their planned current, so the optimiser cannot produce an unsafe setpoint. Without a
tariff, what the plan leaves unused after rounding goes to the EVs that can still take it. With a
`PhaseModel` the rows are the phasor facets of `evsite.control.allocate.constraint_rows`.

`offline_optimum` solves the same model once with perfect foresight of all sessions: the upper
bound the benchmarks compare against.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from evsite.control.allocate import J1772_MIN_A, Demand, PhaseModel, Rows, allocate_fair, constraint_rows, port_upper
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
LATE_VALUE = 0.8  # a step inside the deadline buffer is worth this much of an earlier one
MARGIN_VALUE = 0.05  # an ampere-step beyond what the EV asked for is worth this much
# Ports charging now are worth this much more (of the top step value) over the next smoothing window:
# a tie-break among equal plans that took the multifamily TOU night from 6.9 to 1.5 pauses per session.
INCUMBENT_BONUS = 0.002
INCUMBENT_STEPS = SMOOTH_STEPS
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
    rc: Rows,
    ub: np.ndarray,
    first: np.ndarray,
    last: np.ndarray,
    energy_a_steps: np.ndarray,
    value: np.ndarray,
    soft_last: np.ndarray | None = None,
    need_a_steps: np.ndarray | None = None,
    incumbent: np.ndarray | None = None,
) -> np.ndarray:
    """max Σ value[t]·r[c,t] s.t. Σ_{c in row} coef·r[c,t] ≤ cap, Σ_t r[c,t] ≤ energy, 0 ≤ r ≤ ub.

    r[c, t] exists only for first[c] ≤ t < last[c]; `rc` gives the rows (entries by port c).
    Soft preferences, so that they never cost energy under congestion: steps from `soft_last[c]` on are
    worth `LATE_VALUE` of the others (finish early, but use the last minutes if that is all there is),
    and energy beyond `need_a_steps[c]` (the margin up to `energy`) is worth only `MARGIN_VALUE`.

    Returns r as (ports, steps). Energy is in ampere-steps (Wh / (V · step hours)) so one row per port.
    """
    import highspy

    n_ports, n_steps = ub.size, value.size
    steps = np.arange(n_steps)
    alive = (steps >= first[:, None]) & (steps < last[:, None]) & ((ub > 0) & (energy_a_steps > 0))[:, None]
    var = np.full((n_ports, n_steps), -1, dtype=np.int64)
    n_var = int(alive.sum())
    var[alive] = np.arange(n_var)
    out = np.zeros((n_ports, n_steps))
    if n_var == 0:
        return out
    with _quiet_stdout():
        h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    col_port, col_step = np.nonzero(alive)
    h.addVars(n_var, np.zeros(n_var), ub[col_port].astype(float))
    worth = value[col_step].astype(float)
    if soft_last is not None:
        worth = np.where(col_step >= soft_last[col_port], LATE_VALUE * worth, worth)
    if incumbent is not None:
        # Tie-break toward the ports charging now, for the next steps: LP optima are rarely unique, and
        # a re-plan that picks another vertex would pause one car to start another for nothing.
        near = incumbent[col_port] & (col_step < INCUMBENT_STEPS)
        worth = np.where(near, worth + INCUMBENT_BONUS * float(np.abs(value).max()), worth)
    h.changeColsCost(n_var, np.arange(n_var, dtype=np.int32), -worth)
    # Capacity rows: for each constrained row and step, the ports on it that are alive.
    counts: list[np.ndarray] = []
    index: list[np.ndarray] = []
    coefs: list[np.ndarray] = []
    upper: list[np.ndarray] = []
    order = np.argsort(rc.rows, kind="stable")
    rows_s, cols_s, coef_s = rc.rows[order], rc.cols[order], rc.coef[order]
    bounds = np.flatnonzero(np.diff(np.r_[-1, rows_s, -2]))
    for s, e in itertools.pairwise(bounds):
        row = rows_s[s]
        if not np.isfinite(cap_rows[row]) or cap_rows[row] >= 1e11:
            continue
        block = var[cols_s[s:e]].T  # (steps, members)
        live = block >= 0
        n_live = live.sum(axis=1)
        # A row can bind only if its alive members together could exceed it.
        reach = (np.where(live, coef_s[s:e] * ub[cols_s[s:e]], 0.0)).sum(axis=1)
        use = (n_live > 0) & (reach > cap_rows[row] + 1e-9)
        if not use.any():
            continue
        sel = live & use[:, None]
        counts.append(n_live[use])
        index.append(block[sel])
        coefs.append(np.broadcast_to(coef_s[s:e], block.shape)[sel])
        upper.append(np.full(int(use.sum()), float(cap_rows[row])))
    # Energy rows.
    per_port = alive.sum(axis=1)
    has = per_port > 0
    counts.append(per_port[has])
    index.append(var[alive])  # row-major: port by port, steps in order
    coefs.append(np.ones(n_var))
    upper.append(energy_a_steps[has].astype(float))
    if need_a_steps is not None:
        # Surplus s_c ≥ Σ_t r[c,t] − need_c, each ampere-step of it taking back most of its value.
        margin_ports = np.flatnonzero(has & (need_a_steps < energy_a_steps))
        if margin_ports.size:
            first_s = n_var
            h.addVars(margin_ports.size, np.zeros(margin_ports.size), np.full(margin_ports.size, np.inf))
            surplus_cost = (1.0 - MARGIN_VALUE) * float(value.max())
            h.changeColsCost(
                margin_ports.size,
                np.arange(first_s, first_s + margin_ports.size, dtype=np.int32),
                np.full(margin_ports.size, surplus_cost),
            )
            for k, c in enumerate(margin_ports):
                v = var[c][var[c] >= 0]
                counts.append(np.array([v.size + 1]))
                index.append(np.r_[v, first_s + k])
                coefs.append(np.r_[np.ones(v.size), -1.0])
                upper.append(np.array([float(need_a_steps[c])]))
    cnt = np.concatenate(counts)
    idx = np.concatenate(index).astype(np.int32)
    starts = np.r_[0, np.cumsum(cnt)[:-1]].astype(np.int32)
    h.addRows(
        int(cnt.size),
        np.full(cnt.size, -np.inf),
        np.concatenate(upper),
        int(idx.size),
        starts,
        idx,
        np.concatenate(coefs).astype(float),
    )
    h.run()
    solution = np.asarray(h.getSolution().col_value)[:n_var]
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
    phases: PhaseModel | None = None  # phasor line currents (see `evsite.control.allocate.PhaseModel`)
    smooth_steps: int = SMOOTH_STEPS

    def __post_init__(self) -> None:
        self._plan: np.ndarray | None = None
        self._planned_at = -math.inf
        self._key: tuple[bytes, bytes] | None = None
        self._priced = False

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
        window = self._plan[:, step : step + max(1, self.smooth_steps)]
        planned = window.mean(axis=1) if window.size else np.zeros(tree.n_ports)
        return project(tree, demand, limits, planned, self.phases, top_up=not self._priced)

    def plan(self, tree: ConstraintTree, demand: Demand, limits: np.ndarray, now: float, needs: Needs) -> np.ndarray:
        n_steps = max(1, math.ceil(self.horizon_s / self.step_s))
        ub = port_upper(tree, demand)
        # Plan to finish early and a little over: EVs taper at the end and setpoints round down.
        departure = np.where(np.isnan(needs.departure_s), now + DEFAULT_STAY_S, needs.departure_s)
        last = np.clip(np.floor((departure - now) / self.step_s), 1, n_steps).astype(np.int64)
        soft_last = np.floor((departure - DEADLINE_BUFFER_S - now) / self.step_s).astype(np.int64)
        remaining = np.where(np.isnan(needs.requested_wh), np.inf, needs.remaining_wh)
        need = remaining / (needs.volts * self.step_s / 3600.0)
        need = np.where(np.isfinite(need), need, ub * n_steps)
        rc = constraint_rows(tree, limits, demand, self.phases)
        prices = None
        if self.site is not None and self.site.tariff is not None:
            when = datetime.fromtimestamp(now + self.epoch_offset_s, UTC)
            prices = price_series(self.site.tariff, when, self.step_s, n_steps, self.site.timezone)
        self._priced = prices is not None and prices.size > 0 and float(prices.max()) > float(prices.min())
        zero = np.zeros(tree.n_ports, dtype=np.int64)
        value = _values(prices, n_steps)
        incumbent = demand.previous >= J1772_MIN_A
        return _solve(rc.cap, rc, ub, zero, last, ENERGY_MARGIN * need, value, soft_last, need, incumbent)


def project(
    tree: ConstraintTree,
    demand: Demand,
    limits: np.ndarray,
    planned: np.ndarray,
    phases: PhaseModel | None = None,
    *,
    top_up: bool = False,
) -> np.ndarray:
    """Make a planned current safe: J1772 6 A or pause, maxima, 0.1 A, phase-in; highest plans first.

    `top_up`: what the plan leaves unused (6 A rounding, smoothing, a plan a few minutes old) goes to
    the ports that can still take it, on top of their planned current. Not with a tariff: there an
    unused ampere now may be the plan (cheaper later).
    """
    wanted = np.where(planned >= J1772_MIN_A / 2, np.maximum(planned + 1e-6, J1772_MIN_A), 0.0)
    ordered = Demand(**{**demand.__dict__, "rank": -planned})
    x = allocate_fair(tree, ordered, limits, upper=wanted, phases=phases)
    if not top_up:
        return x
    return allocate_fair(tree, ordered, limits, phases=phases, lower=x)


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
    phases: PhaseModel | None = None,
) -> np.ndarray:
    """Perfect-foresight LP: the most energy (Wh per session) any schedule could deliver under the tree's limits.

    Time is cut into `step_s` steps from the first arrival; a session may charge in the whole steps
    inside its stay, at a constant current per step up to its port's and EV's maxima (no 6 A minimum:
    this is an upper bound). Each session is a column block on its port's rows; sessions on one port
    never overlap in time.
    """
    limits = tree.limits if limits is None else limits
    start = float(min(arrivals_s))
    n_steps = math.ceil((max(departures_s) - start) / step_s) + 1
    # Sessions become virtual ports that inherit their port's rows (every line of the port: worst case).
    rc = constraint_rows(tree, limits, Demand.all_busy(tree), phases)
    slices = np.searchsorted(rc.cols, np.arange(tree.n_ports + 1))
    pick = [np.arange(slices[p], slices[p + 1]) for p in port_of]
    sessions = Rows(
        rows=np.concatenate([rc.rows[k] for k in pick]),
        cols=np.concatenate([np.full(k.size, i) for i, k in enumerate(pick)]),
        coef=np.concatenate([rc.coef[k] for k in pick]),
        cap=rc.cap,
    )
    port_max = np.array([tree.ports[p].max_a for p in port_of])
    ub = np.minimum(port_max, np.asarray(ev_max_a, dtype=float))
    first = np.ceil((np.asarray(arrivals_s) - start) / step_s - 1e-9).astype(np.int64)  # whole steps only
    last = np.floor((np.asarray(departures_s) - start) / step_s + 1e-9).astype(np.int64)
    v = volts[np.asarray(port_of)]
    energy = np.asarray(energy_wh, dtype=float) / (v * step_s / 3600.0)
    r = _solve(rc.cap, sessions, ub, first, np.maximum(last, first), energy, np.ones(n_steps))
    return r.sum(axis=1) * v * step_s / 3600.0
