"""Signals → limits (shedding, stale meters, DR, PV) and fail-safe shares."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from evsite.control.allocate import Demand, allocate_fair
from evsite.control.failsafe import safe_default_limits
from evsite.control.signals import SiteLimits, price_per_kwh
from evsite.control.tree import build_tree
from evsite.runtime.events import SiteSignal
from evsite.site import load_site
from evsite.site.model import PvCharging

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
T0 = datetime(2026, 7, 1, 18, 0, tzinfo=UTC)


def _house(amps: float, at: datetime, stale: bool = False) -> SiteSignal:
    return SiteSignal("building_load", "service", {"L1": amps, "L2": amps}, "M-SERVICE", at=at, stale=stale)


def test_residential_shedding_48_to_16_and_back() -> None:
    """Seed scenario 1: the home charger drops from 48 A to 16 A when the house peaks, then comes back.

    The HEMS holds the 200 A service to 160 A (80 %, 220.70); margin 2 A. With the house at 142 A:
    160 − 142 − 2 = 16 A for the car. At 60 A: 160 − 60 − 2 = 98 A, so the 48 A charger's own limit applies.
    """
    site = load_site(EXAMPLES / "residential.yaml")
    tree = build_tree(site)
    limits = SiteLimits(site, tree)
    demand = Demand.all_busy(tree)
    limits.update(_house(60.0, T0))
    assert allocate_fair(tree, demand, limits.limits(T0))[0] == 48.0
    limits.update(_house(142.0, T0 + timedelta(seconds=2)))
    shed = allocate_fair(tree, demand, limits.limits(T0 + timedelta(seconds=2)))[0]
    assert shed == 16.0  # reduced, not paused: the session goes on
    limits.update(_house(60.0, T0 + timedelta(seconds=600)))
    assert allocate_fair(tree, demand, limits.limits(T0 + timedelta(seconds=600)))[0] == 48.0


def test_lost_building_meter_assumes_its_recorded_maximum() -> None:
    site = load_site(EXAMPLES / "residential.yaml")
    tree = build_tree(site)
    limits = SiteLimits(site, tree)
    demand = Demand.all_busy(tree)
    limits.update(_house(142.0, T0))
    limits.update(_house(40.0, T0 + timedelta(seconds=60)))
    now = T0 + timedelta(seconds=62)
    assert allocate_fair(tree, demand, limits.limits(now))[0] == 48.0
    # The meter stops answering: silence longer than the stale window, or an explicit stale flag.
    later = T0 + timedelta(seconds=200)
    assert allocate_fair(tree, demand, limits.limits(later))[0] == 16.0
    limits.update(_house(40.0, later, stale=True))
    assert allocate_fair(tree, demand, limits.limits(later))[0] == 16.0


def test_building_at_design_peak_until_the_meter_reports() -> None:
    """No reading yet: the house is assumed at its 24 kW design peak (100 A at 240 V): 160 − 100 − 2 = 58 A ≥ 48 A."""
    site = load_site(EXAMPLES / "residential.yaml")
    tree = build_tree(site)
    lim = SiteLimits(site, tree).limits(T0)
    assert lim[tree.node_index["service"], 0] == pytest.approx(58.0)


def test_dr_limit_applies_between_start_and_end_and_survives_a_lost_channel() -> None:
    site = load_site(EXAMPLES / "workplace-20.yaml")
    tree = build_tree(site)
    limits = SiteLimits(site, tree)
    start, end = T0 + timedelta(minutes=10), T0 + timedelta(hours=2, minutes=10)
    cap = {"L1": 80.0, "L2": 80.0, "L3": 80.0}
    limits.update(SiteSignal("dr_limit", "allocation", cap, "VTN", at=start, until=end))
    demand = Demand.all_busy(tree)
    f_ev = tree.node_index["F-EV"]
    assert tree.node_load(allocate_fair(tree, demand, limits.limits(T0)))[f_ev].max() > 150
    during = start + timedelta(minutes=30)
    limits.update(SiteSignal("dr_limit", "allocation", {}, "VTN", at=during, stale=True))  # channel lost
    x = allocate_fair(tree, demand, limits.limits(during))
    assert tree.node_load(x)[f_ev].max() <= 80.0
    assert tree.node_load(allocate_fair(tree, demand, limits.limits(end)))[f_ev].max() > 150


def test_pv_only_waits_for_the_enable_delay_and_follows_the_surplus() -> None:
    site = load_site(EXAMPLES / "residential.yaml")
    tree = build_tree(site)
    limits = SiteLimits(site, tree, pv=PvCharging(mode="pv-only", node="service", enable_s=60, disable_s=180))
    demand = Demand.all_busy(tree)
    sun = {"L1": 20.0, "L2": 20.0}
    limits.update(SiteSignal("pv_surplus", "service", sun, "PV1", at=T0))
    assert allocate_fair(tree, demand, limits.limits(T0))[0] == 0.0
    for s in (30, 61):
        limits.update(SiteSignal("pv_surplus", "service", sun, "PV1", at=T0 + timedelta(seconds=s)))
    assert allocate_fair(tree, demand, limits.limits(T0 + timedelta(seconds=61)))[0] == 20.0
    # A passing cloud: below 6 A, but within the disable delay the session keeps the 6 A minimum.
    cloud = {"L1": 2.0, "L2": 2.0}
    limits.update(SiteSignal("pv_surplus", "service", cloud, "PV1", at=T0 + timedelta(seconds=90)))
    assert allocate_fair(tree, demand, limits.limits(T0 + timedelta(seconds=90)))[0] == 6.0
    limits.update(SiteSignal("pv_surplus", "service", cloud, "PV1", at=T0 + timedelta(seconds=280)))
    assert allocate_fair(tree, demand, limits.limits(T0 + timedelta(seconds=280)))[0] == 0.0


def test_pv_cap_steps_down_at_once_and_up_only_past_its_band() -> None:
    """0.5 A steps, 1 A raise band: 20.3 A → 20.0; 20.9 (< 21.0) holds; 19.7 → 19.5; 20.6 → 20.5."""
    site = load_site(EXAMPLES / "residential.yaml")
    tree = build_tree(site)
    limits = SiteLimits(site, tree, pv=PvCharging(mode="pv-only", node="service", enable_s=0, disable_s=180))
    service = tree.node_index["service"]
    seen = []
    for s, amps in enumerate([20.3, 20.3, 20.9, 19.7, 20.4, 20.6]):
        at = T0 + timedelta(seconds=s)
        limits.update(SiteSignal("pv_surplus", "service", {"L1": amps, "L2": amps}, "PV1", at=at))
        seen.append(float(limits.limits(at)[service][0]))
    assert seen[1:] == [20.0, 20.0, 19.5, 19.5, 20.5]


def test_min_plus_pv_keeps_6_a_and_adds_the_surplus_from_the_site_file() -> None:
    site = load_site(EXAMPLES / "residential.yaml")
    site.control.pv_charging.mode = "min+pv"
    tree = build_tree(site)
    limits = SiteLimits(site, tree, pv=site.control.pv_charging)
    service = tree.node_index["service"]
    assert limits.limits(T0)[service][0] == 6.0  # no reading yet: the grid's 6 A only
    limits.update(SiteSignal("pv_surplus", "service", {"L1": 17.3, "L2": 17.3}, "PV1", at=T0))
    assert limits.limits(T0)[service][0] == 17.0  # 0.5 A steps, rounded down
    limits.update(SiteSignal("pv_surplus", "service", {"L1": 2.0, "L2": 2.0}, "PV1", at=T0))
    assert limits.limits(T0)[service][0] == 6.0  # a cloud: back to the minimum at once, not paused


def test_unknown_signal_node_is_a_clear_error() -> None:
    site = load_site(EXAMPLES / "residential.yaml")
    limits = SiteLimits(site, build_tree(site))
    with pytest.raises(ValueError, match="unknown node 'nope'"):
        limits.update(SiteSignal("manual_limit", "nope", {"L1": 10.0}, "op"))


def test_fail_safe_shares() -> None:
    """Workplace: L2 carries 14 of the 20 ports under the 160 A EMS cap → 160 / 14 = 11.43 → 11.4 A for
    every port on L2; the 6 L3-L1 ports see 13 ports on L1 and on L3 → 160 / 13 = 12.3 A.
    Residential: 160 A − the 100 A design peak of the house = 60 A ≥ the charger's 48 A."""
    workplace = safe_default_limits(load_site(EXAMPLES / "workplace-20.yaml"))
    assert len(workplace) == 20
    assert [workplace[f"WP-{i:02d}"] for i in (1, 2, 3)] == [11.4, 11.4, 12.3]
    assert safe_default_limits(load_site(EXAMPLES / "residential.yaml")) == {"HOME-EV1": 48.0}
    # All 20 at their fail-safe value stay inside the EMS setpoint on every line.
    site = load_site(EXAMPLES / "workplace-20.yaml")
    tree = build_tree(site)
    x = np.array([workplace[p.charge_point_id] for p in tree.ports])
    assert tree.node_load(x)[tree.node_index["F-EV"]].max() <= 160.0


def test_fail_safe_shares_with_a_charger_that_refused_its_profile() -> None:
    """WP-01 (L1-L2) refused its fail-safe: without evsite it draws its 48 A nameplate (1.6 §3.13.6).
    L1: (160 − 48) / 12 others = 9.33 A; L2: (160 − 48) / 13 others = 8.61 A; L3 untouched: 160 / 13.
    So L1-L2 and L2-L3 ports get 8.6 A, L3-L1 ports min(12.3, 9.33) = 9.3 A."""
    site = load_site(EXAMPLES / "workplace-20.yaml")
    shares = safe_default_limits(site, refused=frozenset({"WP-01"}))
    assert [shares[f"WP-{i:02d}"] for i in (1, 2, 3, 4)] == [48.0, 8.6, 9.3, 8.6]
    tree = build_tree(site)
    x = np.array([shares[p.charge_point_id] for p in tree.ports])
    lines = tree.node_load(x)[tree.node_index["F-EV"]]
    assert lines.max() <= 160.0  # every line inside the EMS setpoint with WP-01 at nameplate
    assert lines[1] == pytest.approx(48.0 + 13 * 8.6)


def test_fail_safe_follows_site_changes() -> None:
    site = load_site(EXAMPLES / "workplace-20.yaml")
    site.ems[0].setpoint_a = 80.0
    shares = safe_default_limits(site)
    # 80 / 14 = 5.7 A < 6 A: ports on L2 cannot charge safely without us; L3-L1 ports get 80 / 13 = 6.1 A.
    assert [shares[f"WP-{i:02d}"] for i in (1, 2, 3)] == [0.0, 0.0, 6.1]


def test_tou_price_lookup() -> None:
    site = load_site(EXAMPLES / "residential.yaml")
    peak = datetime(2026, 7, 1, 17, 0, tzinfo=UTC).replace(hour=0) + timedelta(hours=24 + 17 + 7)  # 17:00 PDT
    assert price_per_kwh(site.tariff, peak, site.timezone) == 0.52
    assert price_per_kwh(site.tariff, peak + timedelta(hours=5), site.timezone) == 0.31
