"""The optimiser keeps charging the car that is charging when two plans are worth the same."""

from __future__ import annotations

import numpy as np

from evsite.control.allocate import Demand
from evsite.control.controller import Needs
from evsite.control.mpc import MpcPolicy
from evsite.control.tree import build_tree
from evsite.site import load_site
from tests.conftest import EXAMPLES


def _plan_for(previous: list[float]) -> np.ndarray:
    """Two identical cars on L1-L2 ports, 10 A left on the feeder: room for one at a time."""
    site = load_site(EXAMPLES / "workplace-20.yaml")
    tree = build_tree(site)
    limits = tree.limits.copy()
    limits[tree.node_index["F-EV"]] = 10.0
    demand = Demand.empty(tree)
    ports = [0, 3]
    demand.present[ports] = True
    demand.previous[ports] = previous
    n = tree.n_ports
    now = 0.0
    needs = Needs(
        requested_wh=np.where(demand.present, 40_000.0, np.nan),
        departure_s=np.where(demand.present, now + 10 * 3600.0, np.nan),
        volts=np.full(n, 208.0),
        arrival_s=np.zeros(n),
        delivered_wh=np.zeros(n),
    )
    return MpcPolicy(resolve_s=0.0)(tree, demand, limits, now, needs)[ports]


def test_the_car_already_charging_keeps_the_only_slot() -> None:
    # Either car alone is an optimal plan; pausing the one that charges to start the other wears
    # both contactors for nothing.
    first = _plan_for([10.0, 0.0])
    assert first[0] >= 6.0 and first[1] == 0.0
    second = _plan_for([0.0, 10.0])
    assert second[1] >= 6.0 and second[0] == 0.0
