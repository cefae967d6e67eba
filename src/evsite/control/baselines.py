"""Policies by name: evsite's `fair` and `mpc`, and the baselines the benchmarks compare against.

Baselines, re-implemented from their documented behaviour:

- `uncontrolled`: every EV gets its charger's maximum (what a site without load management does).
- `fcfs`: first come, first served headroom (evcc's documented circuit semantics): in arrival order,
  each EV takes what is left up to its maximum; later arrivals get the rest or wait.
- `equal`: equal shares down the tree, blind to meters (EVerest's documented energy tree): no taper
  detection, no phase detection, unused current is not handed on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from evsite.control.allocate import (
    J1772_MIN_A,
    Demand,
    PhaseModel,
    allocate_fair,
    effective_capacity,
    floor_step,
    need_weights,
    port_upper,
)
from evsite.control.controller import Needs, Policy
from evsite.control.tree import ConstraintTree
from evsite.site.model import Site


@dataclass
class FairPolicy:
    """Weighted max-min fair, each EV weighted by its priority class and by the current it needs.

    With no departure or energy known, every EV of a class gets the same current (plain max-min);
    with them, every EV gets the same fraction of the current it needs (`need_weights`).
    """

    phases: PhaseModel | None = None
    hysteresis: float = 0.5  # a need weight moves only once the need has moved by half

    def __post_init__(self) -> None:
        self._weight: np.ndarray | None = None

    def __call__(
        self, tree: ConstraintTree, demand: Demand, limits: np.ndarray, now: float, needs: Needs
    ) -> np.ndarray:
        top = np.minimum(np.array([p.max_a for p in tree.ports]), demand.ev_max)
        target = need_weights(needs.remaining_wh, needs.departure_s, needs.volts, now, top)
        # A need drifts a little every cycle; following it exactly would move every setpoint every cycle.
        if self._weight is None or self._weight.size != target.size:
            self._weight = target
        moved = np.abs(target - self._weight) > self.hysteresis * np.maximum(target, self._weight)
        self._weight = np.where(moved | ~demand.present, target, self._weight)
        weight = demand.weight * self._weight
        return allocate_fair(tree, replace(demand, weight=weight), limits, phases=self.phases)


def uncontrolled_policy(
    tree: ConstraintTree, demand: Demand, limits: np.ndarray, now: float, needs: Needs
) -> np.ndarray:
    port_max = np.array([p.max_a for p in tree.ports])
    return np.where(demand.present & np.isnan(demand.fixed), port_max, 0.0)


def fcfs_policy(tree: ConstraintTree, demand: Demand, limits: np.ndarray, now: float, needs: Needs) -> np.ndarray:
    plain = Demand.empty(tree)
    plain.present, plain.fixed = demand.present, demand.fixed
    rows, cols, cap = effective_capacity(tree, limits, plain)
    bound = port_upper(tree, plain)
    starts = np.searchsorted(cols, np.arange(tree.n_ports + 1))
    residual = cap.copy()
    out = np.zeros(tree.n_ports)
    for p in np.argsort(np.nan_to_num(needs.arrival_s, nan=np.inf), kind="stable"):
        if bound[p] < J1772_MIN_A:
            continue
        r = rows[starts[p] : starts[p + 1]]
        give = float(floor_step(np.array([min(bound[p], residual[r].min())]))[0])
        if give >= J1772_MIN_A:
            out[p] = give
            residual[r] -= give
    return out


def equal_policy(tree: ConstraintTree, demand: Demand, limits: np.ndarray, now: float, needs: Needs) -> np.ndarray:
    plain = Demand.empty(tree)
    plain.present, plain.fixed, plain.previous = demand.present, demand.fixed, demand.previous
    return allocate_fair(tree, plain, limits)


BASELINES: dict[str, Policy] = {
    "uncontrolled": uncontrolled_policy,
    "fcfs": fcfs_policy,
    "equal": equal_policy,
}


def get_policy(name: str, site: Site | None = None, epoch_offset_s: float = 0.0) -> Policy:
    """A policy by name; `mpc` gets its own planner state (and the site's tariff for prices)."""
    if name == "fair":
        return FairPolicy()
    if name == "mpc":
        from evsite.control.mpc import MpcPolicy

        return MpcPolicy(site=site, epoch_offset_s=epoch_offset_s)
    if name in BASELINES:
        return BASELINES[name]
    raise ValueError(f"unknown policy {name!r}; choose fair, mpc, {', '.join(BASELINES)}")
