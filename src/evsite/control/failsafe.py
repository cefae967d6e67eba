"""Fail-safe limits: what each charger may draw when evsite (or the network) is gone.

A charger with no profile that loses its CSMS charges unconstrained (OCPP 1.6 §3.13.6), so each
charger gets a default profile at boot: its share of the most constrained upstream limit if every
port draws at once, after reserving each panel's design building peak (nobody is shedding then).
Recompute whenever the site changes; the values depend on nothing live.
"""

from __future__ import annotations

import numpy as np

from evsite.control.allocate import floor_step
from evsite.control.tree import ConstraintTree, build_tree
from evsite.site.model import BuildingLoad, Site
from evsite.site.topology import J1772_MIN_A, line_current_a


def building_node(site: Site, load: BuildingLoad) -> str:
    """Where a building load's current is seen: the node its meter measures, else its panel."""
    meters = {m.id: m.measures for m in site.meters}
    return meters.get(load.metered_by or "", load.panel)


def subtract_upstream(tree: ConstraintTree, limits: np.ndarray, node_id: str, amps: np.ndarray | float) -> None:
    """Take non-EV current off a node and every node above it, except the EV-only allocation."""
    node = tree.node_index[node_id]
    while node >= 0:
        if tree.kinds[node] != "allocation":
            limits[node] -= amps
        node = int(tree.parents[node])


def design_building_limits(site: Site, tree: ConstraintTree) -> np.ndarray:
    """Design limits minus each building load's design peak where it is connected."""
    limits = tree.limits.copy()
    for load in site.building_loads:
        subtract_upstream(tree, limits, load.panel, line_current_a(site.service.system, load.peak_kw))
    return np.maximum(limits, 0.0)


def port_shares(tree: ConstraintTree, limits: np.ndarray, fixed: np.ndarray | None = None) -> np.ndarray:
    """Each port's share: min over the rows it loads of row limit / number of ports on the row.

    `fixed` (bool per port): ports that will draw their maximum whatever we install (a charger that
    refused its fail-safe profile). Their maximum is taken off every row they load first, they get no
    share, and the others split what is left.
    """
    rows, cols = tree.incidence()
    port_max = np.array([p.max_a for p in tree.ports])
    flat = limits.reshape(-1).copy()
    if fixed is not None and fixed.any():
        taken = fixed[cols]
        flat -= np.bincount(rows[taken], weights=port_max[cols[taken]], minlength=flat.size)
        flat = np.maximum(flat, 0.0)
        rows, cols = rows[~taken], cols[~taken]
    count = np.bincount(rows, minlength=tree.n_nodes * 3)
    with np.errstate(divide="ignore"):
        share_row = np.where(count > 0, flat / np.maximum(count, 1), np.inf)
    share = np.full(tree.n_ports, np.inf)
    np.minimum.at(share, cols, share_row[rows])
    share = np.minimum(share, port_max)
    return share if fixed is None else np.where(fixed, port_max, share)


def safe_default_limits(site: Site, refused: frozenset[str] = frozenset()) -> dict[str, float]:
    """Fail-safe current limit (A per phase) for each charger id; 0 where 6 A per port cannot be afforded.

    `refused`: chargers that would not take a fail-safe profile. With evsite gone they charge at their
    nameplate (1.6 §3.13.6), so they are counted there and the others' shares shrink to make room; their
    own entry is their nameplate (what they will draw, not a limit anyone installs).
    """
    tree = build_tree(site)
    fixed = np.array([p.charge_point_id in refused for p in tree.ports])
    shares = floor_step(port_shares(tree, design_building_limits(site, tree), fixed))
    result: dict[str, float] = {}
    for port, share in zip(tree.ports, shares, strict=True):
        # A charger-wide profile (connector 0) bounds the whole charger: the sum of its ports' shares.
        result[port.charge_point_id] = result.get(port.charge_point_id, 0.0) + float(share)
    out = {}
    for evse in site.evse:
        value = float(floor_step(np.array([result.get(evse.id, 0.0)]))[0])
        out[evse.id] = value if value >= J1772_MIN_A or evse.id in refused else 0.0
    return out
