"""Phasor line currents, the offline optimum by hand, and need-weighted fair sharing."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evsite.control.allocate import (
    J1772_MIN_A,
    Demand,
    PhaseModel,
    PhasorConstraint,
    allocate_fair,
    check_feasible,
    line_currents,
)
from evsite.control.baselines import FairPolicy
from evsite.control.controller import Needs
from evsite.control.mpc import offline_optimum
from evsite.control.tree import ConstraintTree, Port

INF = np.inf


def _tree(service: list[float], port_lines: list[tuple[int, ...]], port_max: float) -> ConstraintTree:
    """A service node and one connector node per port (limited to port_max on its own lines)."""
    ids, kinds, parents, limits = ["service"], ["service"], [-1], [service]
    ports = []
    for k, lines in enumerate(port_lines):
        ids.append(f"P{k}")
        kinds.append("connector")
        parents.append(0)
        limits.append([port_max if i in lines else INF for i in range(3)])
        ports.append(Port(f"P{k}", 1, len(ids) - 1, lines, port_max, len(lines) == 3))
    return ConstraintTree(ids, kinds, np.array(parents), np.array(limits, dtype=float), ports)


def _needs(n: int, volts: float, remaining_wh: list[float] | None = None, depart_s: list[float] | None = None) -> Needs:
    nan = np.full(n, np.nan)
    requested = nan.copy() if remaining_wh is None else np.array(remaining_wh)
    departure = nan.copy() if depart_s is None else np.array(depart_s)
    return Needs(requested, departure, np.full(n, volts), nan.copy(), np.zeros(n))


def test_offline_optimum_split_phase_by_hand() -> None:
    """Two EVs on a 240 V split-phase service held to 40 A, ports of 32 A, 5-minute steps.

    By hand: A stays 2 h and asks 12 kWh (50 A·h at 240 V); B stays 1 h and asks 7.68 kWh (32 A·h).
    In the first hour both share 40 A: at most 40 A·h between them. In the second hour A is alone and
    its port caps it at 32 A: 32 A·h. So no schedule delivers more than (40 + 32) A·h × 240 V =
    17,280 Wh, and some do (B 32 A in the first hour, A 8 A then 32 A: 7,680 + 9,600 Wh; or A 18 A
    then 32 A, all its 12 kWh, and B the other 22 A). Neither EV gets more than it asked.
    """
    tree = _tree([40.0, 40.0, INF], [(0, 1), (0, 1)], 32.0)
    got = offline_optimum(
        tree, [0.0, 0.0], [7200.0, 3600.0], [12_000.0, 7_680.0], [32.0, 32.0], [0, 1], np.full(2, 240.0)
    )
    assert got.sum() == pytest.approx(17_280.0, rel=1e-6)
    assert got[0] <= 12_000.0 + 1e-6
    assert got[1] <= 7_680.0 + 1e-6


def test_offline_optimum_is_phase_aware() -> None:
    """208Y/120 V, 100 A per line; one 208 V load on L1-L2, one on L3-L1 (ports up to 80 A), 1 h, plenty asked.

    Both loads meet on L1, 60° apart as phasors (+30° and −30° from V1n): |I1| = √(x² + z² + xz).
    Arithmetic sums would allow x + z = 100 A. The true limit at x = z is √3·x = 100 A, so
    x = z = 57.74 A and the hour delivers 2 × 57.74 A × 208 V × 1 h = 24,018 Wh. The inscribed polygon
    is exact at balance; its tangent-facet relaxation is an upper bound slightly above.
    """
    tree = _tree([100.0, 100.0, 100.0], [(0, 1), (2, 0)], 80.0)
    args = ([0.0, 0.0], [3600.0, 3600.0], [50_000.0, 50_000.0], [80.0, 80.0], [0, 1], np.full(2, 208.0))
    linear = offline_optimum(tree, *args)
    phasor = offline_optimum(tree, *args, phases=PhaseModel())
    bound = offline_optimum(tree, *args, phases=PhaseModel(outer_bound=True))
    assert linear.sum() == pytest.approx(100.0 * 208.0, rel=1e-6)
    assert phasor.sum() == pytest.approx(2 * 100.0 / math.sqrt(3) * 208.0, rel=1e-6)
    assert phasor.sum() <= bound.sum() <= phasor.sum() / math.cos(math.radians(7.5)) + 1e-6


def test_balanced_three_phase_site_gets_sqrt3_not_2() -> None:
    """One 208 V port per line pair, 100 A per line, ports up to 80 A: each line carries two of them.

    Arithmetic: 2x ≤ 100 → 50 A each. Phasors: √3·x ≤ 100 → 57.73 → 57.7 A each (0.1 A steps, down).
    """
    tree = _tree([100.0, 100.0, 100.0], [(0, 1), (1, 2), (2, 0)], 80.0)
    demand = Demand.all_busy(tree)
    assert np.allclose(allocate_fair(tree, demand), 50.0)
    phases = PhaseModel()
    x = allocate_fair(tree, demand, phases=phases)
    assert np.allclose(x, 57.7)
    assert check_feasible(tree, x, phases=phases) == []
    load, _ = line_currents(tree, x, phases)
    assert load[0].max() == pytest.approx(math.sqrt(3) * 57.7, rel=1e-9)


def test_power_factor_tolerance_costs_capacity_but_stays_safe() -> None:
    """With each load allowed 15° off its nominal angle the two on a line may be only 30° apart:
    2·cos(15°)·x ≤ 100 → x ≤ 51.76 A, between the arithmetic 50 A and the unity-PF 57.7 A."""
    tree = _tree([100.0, 100.0, 100.0], [(0, 1), (1, 2), (2, 0)], 80.0)
    x = allocate_fair(tree, Demand.all_busy(tree), phases=PhaseModel(angle_tolerance_deg=15.0))
    assert np.all(x <= 100.0 / (2 * math.cos(math.radians(15.0))) + 1e-9)
    assert np.all(x >= 50.0)


def test_extra_phasor_constraint_is_respected() -> None:
    """A delta-wye primary line carrying (I_ab + I_bc − 2·I_ca)/4 as phasors, limited to 20 A."""
    tree = _tree([INF, INF, INF], [(0, 1), (1, 2), (2, 0)], 80.0)
    angles = np.radians([30.0, -90.0, 150.0])
    coef = np.array([0.25, 0.25, -0.5]) * np.exp(1j * angles)
    phases = PhaseModel(extra=(PhasorConstraint("primary A", coef, 20.0),))
    x = allocate_fair(tree, Demand.all_busy(tree), phases=phases)
    assert abs(np.sum(coef * x)) <= 20.0 + 1e-9
    assert check_feasible(tree, x, phases=phases) == []
    assert x.sum() > 0
    with pytest.raises(ValueError, match="bounds"):
        allocate_fair(tree, Demand.all_busy(tree), phases=PhaseModel(outer_bound=True))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(0.0, 300.0), min_size=3, max_size=3),
    st.lists(st.sampled_from([(0, 1), (1, 2), (2, 0), (1, 0), (0,), (0, 1, 2)]), min_size=1, max_size=12),
    st.lists(st.floats(0.0, 80.0), min_size=12, max_size=12),
    st.sampled_from([0.0, 10.0, 25.0]),
)
def test_phasor_allocation_never_exceeds_a_line(
    service: list[float], lines: list[tuple[int, ...]], ev_max: list[float], tolerance: float
) -> None:
    """Whatever the mix of 1φ 208 V, 120 V and 3φ ports, the true phasor line currents stay within limits,
    also when each load sits `tolerance` degrees off its nominal angle (worst case over random angles)."""
    tree = _tree(service, lines, 48.0)
    demand = Demand.all_busy(tree)
    demand.ev_max = np.array(ev_max[: tree.n_ports])
    phases = PhaseModel(angle_tolerance_deg=tolerance)
    x = allocate_fair(tree, demand, phases=phases)
    assert np.all((x == 0) | (x >= J1772_MIN_A))
    assert check_feasible(tree, x, phases=phases) == []
    rng = np.random.default_rng(len(lines))
    rows, cols = tree.incidence()
    from evsite.control.allocate import entry_angles

    for _ in range(20):
        jitter = rng.uniform(-tolerance, tolerance, tree.n_ports)
        phasor = x[cols] * np.exp(1j * np.radians(entry_angles(tree) + jitter[cols]))
        flat = np.zeros(tree.n_nodes * 3, dtype=complex)
        np.add.at(flat, rows, phasor)
        assert np.all(np.abs(flat) <= tree.limits.reshape(-1) + 1e-6)


def test_fair_shares_by_need_when_needs_are_known() -> None:
    """One 40 A split-phase row, two EVs on 32 A ports, 240 V.

    Needs unknown: plain max-min, 20 A each. Known: A must average 30 A to be done half an hour
    before it leaves in 2.5 h (14.4 kWh = 60 A·h over 2 h), B 10 A (7.2 kWh over 3 h). Weights are
    need / 32 A: 30/32 and 10/32, 3 : 1. Both first get the 6 A minimum; the other 28 A go 3 : 1,
    21 A and 7 A: A 27 A, B 13 A. Each gets close to the same fraction of its need, not the same current.
    """
    tree = _tree([40.0, 40.0, INF], [(0, 1), (0, 1)], 32.0)
    demand = Demand.all_busy(tree)
    blind = FairPolicy()(tree, demand, tree.limits, 0.0, _needs(2, 240.0))
    assert np.allclose(blind, 20.0)
    fair = FairPolicy()
    known = _needs(2, 240.0, [14_400.0, 7_200.0], [9000.0, 12_600.0])
    x = fair(tree, demand, tree.limits, 0.0, known)
    assert np.allclose(x, [27.0, 13.0])
    assert x.sum() <= 40.0
    # Hysteresis: a minute later both needs have barely moved, and so have the setpoints.
    assert np.allclose(fair(tree, demand, tree.limits, 60.0, known), [27.0, 13.0])
