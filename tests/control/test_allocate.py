"""Allocation: feasibility by construction, fairness, J1772 rules and rebalancing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from evsite.control.allocate import (
    J1772_MIN_A,
    Demand,
    allocate_fair,
    check_feasible,
    reserved_current,
)
from evsite.control.tree import ConstraintTree, Port, build_tree
from evsite.site import load_site
from evsite.site.model import Site

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _random_tree(draw: st.DrawFn) -> ConstraintTree:
    """A random tree: root, 0-3 levels of panels/feeders, circuits with 1-3 lines, EVSE with 1-2 ports."""
    ids, kinds, parents, limits = ["root"], ["service"], [-1], [[draw(st.floats(0, 400))] * 3]
    ports: list[Port] = []
    frontier = [0]
    for _depth in range(draw(st.integers(0, 3))):
        new = []
        for parent in frontier:
            for _ in range(draw(st.integers(1, 3))):
                ids.append(f"n{len(ids)}")
                kinds.append("panel")
                parents.append(parent)
                limits.append([draw(st.floats(0, 300)), draw(st.floats(0, 300)), draw(st.floats(0, 300))])
                new.append(len(ids) - 1)
        frontier = new or frontier
    for parent in frontier:
        for _ in range(draw(st.integers(1, 4))):
            lines = tuple(draw(st.permutations([0, 1, 2]))[: draw(st.integers(1, 3))])
            ocpd_limit = draw(st.sampled_from([16.0, 24.0, 32.0, 40.0, 48.0, 64.0]))
            row = [np.inf, np.inf, np.inf]
            for ln in lines:
                row[ln] = ocpd_limit
            ids.append(f"c{len(ids)}")
            kinds.append("circuit")
            parents.append(parent)
            limits.append(row)
            circuit = len(ids) - 1
            evse_max = draw(st.floats(6, 80))
            ids.append(f"e{len(ids)}")
            kinds.append("evse")
            parents.append(circuit)
            limits.append([evse_max if np.isfinite(v) else np.inf for v in row])
            evse = len(ids) - 1
            for k in range(draw(st.integers(1, 2))):
                ids.append(f"p{len(ids)}")
                kinds.append("connector")
                parents.append(evse)
                limits.append([evse_max if np.isfinite(v) else np.inf for v in row])
                ports.append(Port(ids[evse], k + 1, len(ids) - 1, lines, evse_max, len(lines) == 3))
    return ConstraintTree(ids, kinds, np.array(parents), np.array(limits, dtype=float), ports)


@st.composite
def cases(draw: st.DrawFn) -> tuple[ConstraintTree, Demand]:
    tree = _random_tree(draw)
    n = tree.n_ports
    demand = Demand.empty(tree)
    floats = st.floats(0, 80)
    demand.present = np.array([draw(st.booleans()) for _ in range(n)])
    demand.ev_max = np.array([draw(st.one_of(st.just(np.inf), floats)) for _ in range(n)])
    demand.weight = np.array([draw(st.sampled_from([1.0, 1.0, 2.0, 0.5])) for _ in range(n)])
    demand.previous = np.array([draw(st.sampled_from([0.0, 6.0, 16.0, 32.0])) for _ in range(n)])
    demand.rank = np.array([draw(st.floats(0, 10)) for _ in range(n)])
    demand.reserved = np.array([draw(st.sampled_from([0.0, 0.0, 8.0, 30.0])) for _ in range(n)])
    demand.fixed = np.array([draw(st.sampled_from([np.nan, np.nan, np.nan, 0.0, 16.0])) for _ in range(n)])
    demand.excess = np.array([draw(st.sampled_from([0.0, 0.0, 0.0, 3.5])) for _ in range(n)])
    for p, port in enumerate(tree.ports):
        if port.three_phase and draw(st.booleans()):  # a 1φ car on a 3φ port draws on phase A only
            demand.line_mask[p] = False
            demand.line_mask[p, port.lines[0]] = True
    return tree, demand


@settings(max_examples=300, deadline=None)
@given(cases())
def test_feasible_by_construction(case: tuple[ConstraintTree, Demand]) -> None:
    tree, demand = case
    x = allocate_fair(tree, demand)
    controlled = np.isnan(demand.fixed)
    # J1772: 0 or at least 6 A; within port and EV maxima; 0.1 A steps; nothing to absent or fixed ports.
    assert np.all((x == 0) | (x >= J1772_MIN_A))
    assert np.all(x <= np.array([p.max_a for p in tree.ports]) + 1e-9)
    assert np.all(x <= demand.ev_max + 1e-9)
    assert np.all(np.abs(x * 10 - np.round(x * 10)) < 1e-6)
    assert np.all(x[~demand.present | ~controlled] == 0)
    # Every (node, line): fixed ports at their worst case on all their lines plus our setpoints on
    # the lines the EVs draw on; while reductions are in flight each port may draw max(reserved, x).
    fixed_load = tree.node_load(np.nan_to_num(demand.fixed, nan=0.0))
    ours = tree.node_load(x, demand.line_mask)
    # A port may still draw `reserved`, or the part of its previous pilot that it keeps.
    held = np.maximum(demand.reserved, np.minimum(demand.previous, x))
    transient = tree.node_load(np.where(controlled, np.maximum(x, held), 0.0), demand.line_mask)
    reserved_alone = tree.node_load(np.where(controlled, held, 0.0), demand.line_mask)
    excess = tree.node_load(np.where(controlled, demand.excess, 0.0), demand.line_mask)  # overdraw on top
    room = tree.limits - fixed_load - excess
    ok_rows = room >= 0
    assert np.all((ours <= room + 1e-6)[ok_rows])
    fits_in_flight = ok_rows & (reserved_alone <= room + 1e-6)
    assert np.all((transient <= room + 1e-6)[fits_in_flight])
    # A row that is already over (fixed loads alone) gets nothing more from us.
    assert np.all(ours[~ok_rows] == 0)


def _workplace() -> Site:
    return load_site(EXAMPLES / "workplace-20.yaml")


def test_workplace_20_busy_ports_share_the_160_a_ems_setpoint() -> None:
    """Seed scenario 2: 20 × 48 A 208 V ports on a 200 A allocation held to 160 A by the EMS.

    By hand: circuits are rotated L1-L2, L2-L3, L3-L1 (7, 7 and 6 of them), so L2 carries 14 ports:
    160 A / 14 = 11.43 → 11.4 A each. The 6 L3-L1 ports then share L1's remainder:
    (160 − 7 × 11.4) / 6 = 13.37 → 13.3 A (L3 likewise). Every line ≤ 160 A, every port ≤ 48 A.
    """
    tree = build_tree(_workplace())
    x = allocate_fair(tree, Demand.all_busy(tree))
    assert check_feasible(tree, x) == []
    load = tree.node_load(x)
    assert load[tree.node_index["F-EV"]].max() <= 160.0
    assert x.max() <= 48.0
    on_l2 = np.array([1 in p.lines for p in tree.ports])
    assert np.allclose(x[on_l2], 11.4)
    assert np.allclose(x[~on_l2], 13.3)


def test_one_port_busy_gets_its_full_48_a() -> None:
    tree = build_tree(_workplace())
    demand = Demand.empty(tree)
    demand.present[0] = True
    assert allocate_fair(tree, demand)[0] == 48.0


def _feeder_at(amps: float) -> tuple[ConstraintTree, np.ndarray, Demand]:
    """The workplace tree with its EV feeder held to `amps`, and an empty demand to fill in."""
    tree = build_tree(_workplace())
    limits = tree.limits.copy()
    limits[tree.node_index["F-EV"]] = amps
    return tree, limits, Demand.empty(tree)


def test_pauses_instead_of_dead_band_and_keeps_charging_ports_first() -> None:
    """A 20 A limit and 4 ports: only 3 can have the 6 A minimum; the one that was paused stays paused."""
    tree, limits, demand = _feeder_at(20.0)
    ports = [0, 3, 6, 9]  # all on L1-L2
    demand.present[ports] = True
    demand.previous[ports] = [6.0, 6.0, 0.0, 6.0]
    x = allocate_fair(tree, demand, limits)
    assert x[6] == 0.0
    assert np.all(x[[0, 3, 9]] == 6.6)  # 20 A / 3, rounded down


def test_weights_share_surplus_above_the_minimum() -> None:
    tree, limits, demand = _feeder_at(30.0)
    demand.present[[0, 3]] = True
    demand.weight[3] = 2.0
    x = allocate_fair(tree, demand, limits)
    # Both get 6 A, the remaining 18 A is split 1:2.
    assert x[0] == 12.0 and x[3] == 18.0


def test_weighted_share_under_6_a_pauses_the_lowest_weight_instead_of_flattening() -> None:
    """24 A on L1-L2 and four cars: one must leave soon (weight 1), three can wait (weight 0.1).

    6 A each would fill the 24 A exactly and ignore the weights. Weighted max-min: shares
    24 × 1/1.3 = 18.46 A for the urgent car and 1.85 A for each of the three; all three are under
    6 A and tied, so they pause together (the lower half by share, ties included), and the urgent car
    gets the whole 24 A.
    """
    tree, limits, demand = _feeder_at(24.0)
    ports = [0, 3, 6, 9]  # all on L1-L2
    demand.present[ports] = True
    demand.weight[ports] = [1.0, 0.1, 0.1, 0.1]
    x = allocate_fair(tree, demand, limits)
    assert x[0] == 24.0 and np.all(x[[3, 6, 9]] == 0.0)
    # Equal weights: the same four share 6 A each, nobody paused.
    demand.weight[ports] = 1.0
    assert np.all(allocate_fair(tree, demand, limits)[ports] == 6.0)


def test_a_charging_port_keeps_its_6_a_until_its_share_is_under_3_5_a() -> None:
    """Contactor wear: 30 A, weights 1 and 0.15: the small share is 30 × 0.15/1.15 = 3.9 A.

    Idle, it stays paused (the other car gets 30 A). Charging, it keeps its place: both get 6 A and
    the 18 A surplus is split by weight, 18 × 0.15/1.15 = 2.35 → 8.3 A and 6 + 15.65 → 21.6 A."""
    tree, limits, demand = _feeder_at(30.0)
    demand.present[[0, 3]] = True
    demand.weight[[0, 3]] = [1.0, 0.15]
    x = allocate_fair(tree, demand, limits)
    assert x[3] == 0.0 and x[0] == 30.0
    demand.previous[[0, 3]] = [24.0, 6.0]
    x = allocate_fair(tree, demand, limits)
    assert x[3] == 8.3 and x[0] == 21.6


def test_tapering_ev_gives_its_unused_current_to_others_in_one_cycle() -> None:
    tree = build_tree(_workplace())
    ports = [0, 3, 6, 9, 12, 15, 18]  # the 7 L1-L2 ports
    limits = tree.limits.copy()
    limits[tree.node_index["F-EV"]] = 70.0
    demand = Demand.empty(tree)
    demand.present[ports] = True
    first = allocate_fair(tree, demand, limits)
    assert np.all(first[ports] == 10.0)
    # Port 0 now draws only 4 A of its 10 A (taper): its EV maximum becomes draw + headroom.
    demand.previous = first
    demand.ev_max[0] = 4.0 + 2.0
    measured = first.copy()
    measured[0] = 4.0
    demand.reserved = reserved_current(measured, first, follow_margin_a=2.0)
    second = allocate_fair(tree, demand, limits)
    assert second[0] == 6.0
    assert np.all(second[ports[1:]] == 10.6)  # (70 − 6) / 6 = 10.67 → 10.6, in the very next cycle


def test_single_phase_car_on_three_phase_port_frees_the_other_lines() -> None:
    site = _three_phase_site()
    tree = build_tree(site)
    demand = Demand.all_busy(tree)
    both_worst = allocate_fair(tree, demand)
    assert np.allclose(both_worst, 16.0)  # 32 A per line shared by two 3φ ports
    # Port A's car turns out single-phase: it draws only on its phase A (L1). L2 and L3 free up for B.
    demand.line_mask[0] = [True, False, False]
    x = allocate_fair(tree, demand)
    assert x[0] == 16.0 and x[1] == 16.0  # L1 still shared
    demand.ev_max[0] = 10.0
    x = allocate_fair(tree, demand)
    assert x[0] == 10.0 and x[1] == 22.0
    assert np.all(tree.node_load(x, demand.line_mask) <= tree.limits + 1e-9)


def test_phase_rotation_loads_the_rotated_line() -> None:
    """A 1φ car on a 3φ port wired L2-L3-L1 draws from L2, so it competes with a port on L2."""
    site = _three_phase_site(rotated=True)
    tree = build_tree(site)
    assert tree.ports[1].lines == (1, 2, 0)


def test_rejecting_charger_counts_at_its_maximum() -> None:
    tree = build_tree(_workplace())
    limits = tree.limits.copy()
    demand = Demand.all_busy(tree)
    demand.fixed[0] = 48.0  # stopped answering: it may draw its 48 A on L1 and L2
    x = allocate_fair(tree, demand, limits)
    assert x[0] == 0.0
    total = tree.node_load(x) + tree.node_load(np.nan_to_num(demand.fixed, nan=0.0))
    assert np.all(total <= limits + 1e-9)
    assert x[1] < 11.4  # the others were reduced to make room


def test_in_flight_reduction_holds_back_raises() -> None:
    """Port 0 was at 40 A and is cut to make room for port 3; port 3 rises only as port 0's draw falls."""
    tree, limits, demand = _feeder_at(50.0)
    demand.present[[0, 3]] = True
    demand.previous[0] = 40.0
    demand.reserved[0] = 40.0  # still drawing 40 A
    x = allocate_fair(tree, demand, limits)
    assert x[0] == 25.0
    assert x[3] == 10.0  # 50 − 40 still in flight
    demand.reserved[0] = 25.0  # the meter now shows it followed
    x = allocate_fair(tree, demand, limits)
    assert x[3] == 25.0


def _three_phase_site(rotated: bool = False) -> Site:
    data = {
        "name": "3φ test",
        "service": {"system": "480Y/277V", "rating_a": 400, "allocation_a": 32},
        "panels": [{"id": "P", "bus_rating_a": 400}],
        "circuits": [
            {
                "id": "CA",
                "panel": "P",
                "ocpd_a": 40,
                "lines": ["L1", "L2", "L3"],
                "conductors": {"size": "8 AWG", "length_ft": 10},
            },
            {
                "id": "CB",
                "panel": "P",
                "ocpd_a": 40,
                "lines": ["L2", "L3", "L1"] if rotated else ["L1", "L2", "L3"],
                "conductors": {"size": "8 AWG", "length_ft": 10},
            },
        ],
        "evse": [
            {"id": "A", "circuit": "CA", "max_current_a": 32, "phases": 3},
            {"id": "B", "circuit": "CB", "max_current_a": 32, "phases": 3},
        ],
    }
    return Site.model_validate(data)


def test_controller_maps_charger_phases_through_rotation_and_detects_a_single_phase_car() -> None:
    """Port B is wired L2-L3-L1: the charger's own "L1" reading is site line L2."""
    from datetime import UTC, datetime

    from evsite.control.controller import Controller
    from evsite.runtime.events import ConnectorStatus, MeterSample

    site = _three_phase_site(rotated=True)
    tree = build_tree(site)
    ctrl = Controller(site, tree)
    at = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)
    for cp in ("A", "B"):
        ctrl.observe(ConnectorStatus(cp, 1, "Charging", at=at), 0.0)
    ctrl.record_result(1, 16.0, True, 0.0)
    sample_at = at.timestamp() + 30
    ctrl.observe(
        MeterSample("B", 1, datetime.fromtimestamp(sample_at, UTC), current_a={"L1": 15.8, "L2": 0.1, "L3": 0.0}), 0.0
    )
    assert list(ctrl.measured[1]) == [0.0, 15.8, 0.1]
    demand = ctrl.demand(sample_at)
    assert list(demand.line_mask[1]) == [False, True, False]
