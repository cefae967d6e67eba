"""Demand-charge and capacity management: the guard's arithmetic by hand, and the replay's bill with and without it."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest

from evsite.control.demand import OWED_MARGIN, RAISE_STEP, DemandGuard, DemandRule, owed_kw, watts_per_line_amp
from evsite.control.replay import Replay
from evsite.control.scenarios import HOUR, Scenario, Session, example_site
from evsite.control.signals import SiteLimits
from evsite.control.tree import build_tree
from evsite.site.model import Tariff


def test_block_interval_allows_what_keeps_the_peak() -> None:
    guard = DemandGuard(DemandRule(interval_s=900.0))
    guard.record(0.0, 900.0, 50.0)  # a whole block at 50 kW: the month's peak is 50 kW
    guard.record(900.0, 1200.0, 40.0)  # 40 kW for the first 300 s of the next block: 12,000 kW·s
    assert guard.peak_kw == pytest.approx(50.0)
    # (50 kW × 900 s − 12,000 kW·s) / 600 s left = 55 kW keeps this block's average at 50 kW.
    assert guard.allowed_kw(1200.0) == pytest.approx(55.0)
    # The guard holds a steady 50 kW (the peak itself) rather than chase the 55 kW the window would take.
    d = guard.decide(1200.0, owed=0.0)
    assert d.allowed_kw == pytest.approx(50.0) and not d.raised and d.reason is None
    # After 60 kW for 300 s the block holds 12,000 + 18,000 = 30,000 kW·s: (45,000 − 30,000) / 300 = 50 kW.
    guard.record(1200.0, 1500.0, 60.0)
    assert guard.decide(1500.0).allowed_kw == pytest.approx(50.0)
    guard.record(1500.0, 1600.0, 60.0)  # 36,000 kW·s: (45,000 − 36,000) / 200 = 45 kW, under the peak
    assert guard.decide(1600.0).allowed_kw == pytest.approx(45.0)


def test_cars_owed_more_raise_the_peak_by_the_least_amount_and_say_so() -> None:
    assert (OWED_MARGIN, RAISE_STEP) == (1.25, 0.05)  # the hand numbers below use these
    guard = DemandGuard(DemandRule(interval_s=900.0))
    guard.record(0.0, 900.0, 50.0)
    guard.record(900.0, 1200.0, 40.0)
    d = guard.decide(1200.0, owed=70.0)
    # 70 kW owed × 1.25 = 87.5 kW, steadily: the least peak is 87.5 kW ((12,000 + 87.5 × 600) / 900 = 71.7 fits
    # in it), plus the 5 % raise step: 91.875 kW. The EVs may draw min(allowance, target):
    # (91.875 × 900 − 12,000) / 600 = 117.8 kW is more than the target, so 91.875 kW.
    assert d.raised and d.target_kw == pytest.approx(91.875) and d.allowed_kw == pytest.approx(91.875)
    assert d.reason is not None and "50.0 kW to 91.9 kW" in d.reason
    assert guard.raises[0]["from_kw"] == 50.0
    assert not guard.decide(1210.0, owed=70.0).raised  # the step: the same need does not raise again
    # A block that already holds 100 kW × 300 s = 30,000 kW·s: 87.5 kW for the last 600 s averages
    # (30,000 + 87.5 × 600) / 900 = 91.67 kW, the least peak that lets it through; × 1.05 = 96.25 kW.
    full = DemandGuard(DemandRule(interval_s=900.0))
    full.record(0.0, 900.0, 50.0)
    full.record(900.0, 1200.0, 100.0)
    d = full.decide(1200.0, owed=70.0)
    assert d.target_kw == pytest.approx(96.25)
    assert d.allowed_kw == pytest.approx((96.25 * 900.0 - 30_000.0) / 600.0)  # 94.4 kW ≥ 87.5


def test_a_rolling_window_still_holds_an_earlier_spike() -> None:
    # 0 kW for 300 s, then 90 kW for 300 s: the window ending at 600 s averages 27,000 / 900 = 30 kW.
    block = DemandGuard(DemandRule(interval_s=900.0))
    rolling = DemandGuard(DemandRule(interval_s=900.0, rolling=True))
    for guard in (block, rolling):
        guard.record(0.0, 300.0, 0.0)
        guard.record(300.0, 600.0, 90.0)
        guard.record(600.0, 900.0, 0.0)
        assert guard.peak_kw == pytest.approx(30.0)
    # A new block starts empty at 900 s: 30 kW for its whole length keeps the peak.
    assert block.allowed_kw(900.0) == pytest.approx(30.0)
    # A rolling window ending in the next 300 s still holds the whole 27,000 kW·s spike: any draw is a new peak.
    assert rolling.allowed_kw(900.0) == pytest.approx(0.0)
    # From 1200 s the spike leaves the windows at 90 kW: a window ending h s later holds 90 × (300 − h) kW·s,
    # so (27,000 − 90 × (300 − h)) / h = 90 kW for h ≤ 300, and 27,000 / h ≥ 30 kW beyond: 30 kW binds at h = 900.
    assert rolling.allowed_kw(1200.0) == pytest.approx(30.0)


def test_owed_power_is_the_earliest_deadline_bound() -> None:
    now = 1000.0
    remaining = np.array([10_000.0, 10_000.0, 5_000.0, 0.0])
    departure = np.array([now + HOUR, now + 4 * HOUR, math.inf, now + 60.0])
    # 10 kWh due in 1 h (10 kW), 20 kWh due in 4 h (5 kW): 10 kW; no departure and nothing left owe nothing.
    assert owed_kw(now, remaining, departure) == pytest.approx(10.0)
    assert owed_kw(now, np.zeros(2), np.array([now + 10.0, math.inf])) == 0.0
    # The first car can take only 3 kW (tapering): 3 kW for the first deadline, (3 + 7) = 10 ≥ 5 for the second;
    # the car with no departure is owed all it can take (7 kW): 5 + 7 = 12 kW.
    assert owed_kw(now, remaining, departure, np.array([3.0, 7.0, 7.0, 7.0])) == pytest.approx(12.0)
    # Half an hour of buffer: 10 kWh due in 0.5 h = 20 kW (capped at the car's 3 kW), 20 kWh in 3.5 h = 5.71 kW.
    assert owed_kw(now, remaining[:2], departure[:2], None, 1800.0) == pytest.approx(20.0)
    assert owed_kw(now, remaining[:2], departure[:2], np.array([3.0, 7.0]), 1800.0) == pytest.approx(20 / 3.5)


def test_watts_per_line_ampere_of_the_charging_ports() -> None:
    mask = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1], [1, 1, 0]], dtype=bool)  # AB, BC, CA, AB at 208 V
    volts = np.full(4, 208.0)
    # Three ports, one per pair: 624 W per A of each, each line carries 2 A: 312 W per line-ampere.
    assert watts_per_line_amp(mask, volts, np.array([True, True, True, False])) == pytest.approx(312.0)
    # Two on AB: 416 W per A, L1 and L2 carry 2 A: 208 W per line-ampere.
    assert watts_per_line_amp(mask, volts, np.array([True, False, False, True])) == pytest.approx(208.0)
    assert watts_per_line_amp(mask, volts, np.zeros(4, dtype=bool)) is None


def test_capacity_limit_is_never_raised_and_the_ratchet_sets_the_floor() -> None:
    tariff = Tariff(
        demand_charge_per_kw=Decimal("10"),
        demand_interval_minutes=30,
        demand_window="rolling",
        demand_ratchet_pct=Decimal("80"),
        capacity_limit_kw=Decimal("20"),
    )
    rule = DemandRule.from_tariff(tariff, earlier_peak_kw=100.0)
    assert rule == DemandRule(interval_s=1800.0, rolling=True, ratchet_kw=80.0, cap_kw=20.0)
    guard = DemandGuard(rule)
    assert guard.target_kw == 80.0  # 80 % of the earlier 100 kW is billed anyway: up to it costs nothing
    d = guard.decide(0.0, owed=500.0)
    assert d.allowed_kw == 20.0  # cars owed 500 kW still get only the subscribed 20 kW
    assert DemandRule.from_tariff(Tariff()) is None


def test_a_kw_cap_becomes_a_per_line_limit_no_wiring_can_exceed() -> None:
    site = example_site("multifamily-30")  # 208Y/120 V
    tree = build_tree(site)
    limits = SiteLimits(site, tree)
    limits.demand_cap_kw = 36.0
    service = limits.limits(limits_now())[tree.node_index["service"]]
    # 36 kW / (√3 × 208 V) = 99.9 A per line; a line-ampere carries at most 120 V × 1 A = 120 W, so 3 × 99.9 × 120 W
    # = 35.97 kW ≤ 36 kW whatever the chargers' wiring.
    assert service == pytest.approx(np.full(3, 36_000.0 / (math.sqrt(3) * 208.0)))
    assert 3 * service[0] * 120.0 <= 36_000.0


def limits_now():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime(2026, 10, 1, tzinfo=UTC)


def _overnight(manage: bool) -> dict:  # type: ignore[type-arg]
    site = example_site("multifamily-30")
    evse = [e.id for e in site.evse[:6]]
    # Six cars plug in at 18:00 asking 10 kWh each, leaving at 07:00: 60 kWh over 13 h is 4.6 kW on average.
    sessions = [Session(e, 1 * HOUR, 14 * HOUR, 10_000.0, ev_max_a=32.0) for e in evse]
    scenario = Scenario("overnight-demand", site, sessions, 15 * HOUR)
    return Replay(scenario, "fair", manage_demand=manage).run()


def test_replay_bills_a_lower_demand_charge_when_managed_and_delivers_the_energy() -> None:
    free, managed = _overnight(False), _overnight(True)
    # Unmanaged: all six at 32 A × 208 V = 6.66 kW each for the first intervals: 39.9 kW.
    assert free["demand_peak_kw_by_month"][0] == pytest.approx(6 * 32 * 208 / 1000, rel=0.01)
    assert free["demand_charge"] == pytest.approx(free["demand_peak_kw_by_month"][0] * 12.0, abs=0.1)  # 12 USD/kW
    assert managed["demand_managed"] and managed["demand_raises"] >= 1
    assert managed["demand_peak_kw_by_month"][0] < 0.3 * free["demand_peak_kw_by_month"][0]
    assert managed["energy_delivered_pct"] >= 99.0 and managed["sessions_fully_served"] == 6
    assert managed["over_limit_As"] == 0.0


async def test_live_loop_holds_the_peak_only_where_departures_are_known() -> None:
    import time

    from evsite.control.loop import ControlLoop
    from evsite.runtime.events import EventBus

    from .test_loop import FakeChargers

    site = example_site("multifamily-30")
    site.control.manage_demand = True
    loop = ControlLoop(site, EventBus(), FakeChargers())
    c = loop.controller
    c.present[:2] = True  # MF-P1-01 (L1-L2) and MF-P1-02 (L2-L3) want energy; departures unknown
    loop.cycle()
    # Unknown departures: each car is owed all it can take, 40 A × 208 V = 8.32 kW: the month's first peak is
    # raised to 2 × 8.32 × 1.25 × 1.05 = 21.84 kW, and the operator is told.
    assert loop.demand is not None and loop.demand.guard.target_kw == pytest.approx(21.84)
    assert any(a["kind"] == "demand-peak-raised" for a in loop.alerts())
    # Both known to need 1 kWh and to leave in 10 h: 2 kWh over 9.5 h (half an hour of buffer) is 0.2105 kW;
    # × 1.25 × 1.05 = 0.2763 kW; two 208 V ports on L1-L2 and L2-L3 give 416 W per A while L2 carries 2 A:
    # 208 W per line-ampere, so 1.33 A on each line of the service, under one car's 6 A.
    loop.demand.guard.new_month()
    for p in (0, 1):
        c.needs.requested_wh[p], c.needs.delivered_wh[p] = 1000.0, 0.0
        c.needs.departure_s[p] = time.time() + 36_000.0
    loop.cycle()
    assert loop.demand.guard.target_kw == pytest.approx(2.0 / 9.5 * 1.25 * 1.05, rel=1e-3)
    service = loop.limits.limits(limits_now())[loop.controller.tree.node_index["service"]]
    assert service == pytest.approx(np.full(3, 1.3))  # 276.3 W / 208 W per line-ampere = 1.33 A, in 0.1 A steps
    assert (c.sent[:2] == 0.0).all()  # under one car's 6 A: held for now (the peak is worth more than waiting)


def test_the_demand_target_drops_at_once_and_rises_past_a_band() -> None:
    site = example_site("multifamily-30")
    tree = build_tree(site)
    limits = SiteLimits(site, tree)
    limits.demand_w_per_a = 312.0  # 1φ 208 V ports spread over the three pairs
    service = tree.node_index["service"]
    seen = []
    for kw in (36.0, 36.2, 37.0, 35.0):
        limits.demand_target_kw = kw
        seen.append(float(limits.limits(limits_now())[service][0]))
    # 36 kW / 312 W = 115.38 -> 115.3 A; 36.2 kW = 116.03 A is within 1 A: held; 37 kW = 118.59 -> 118.5 A;
    # 35 kW = 112.18 -> 112.1 A at once.
    assert seen == pytest.approx([115.3, 115.3, 118.5, 112.1])
