"""Signals → limits: what building meters, PV, demand response and operators leave for the EVs.

Every signal can only lower a node's limit (never raise it above the electrical design), and every
gap in information is filled with a conservative assumption:
- building load: EV limit = design limit − building current − safety margin. A stale or missing
  building meter counts as the building at its highest recorded value (or its design peak).
- demand response: a cap until `until`; a stale DR channel keeps the last cap until it expires.
- PV surplus: in `pv-only` mode the EV load on the PV node follows the surplus, switched on only
  after the surplus has covered 6 A for `enable_s` and off after it has fallen short for `disable_s`.
- manual limit: an operator/BMS cap; an empty reading clears it.
- demand cap: the power the demand guard (`evsite.control.demand`) allows, on the service.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np

from evsite.control.failsafe import building_node, subtract_upstream
from evsite.control.tree import LINE_INDEX, ConstraintTree
from evsite.runtime.events import SiteSignal
from evsite.site.model import WEEKDAYS, PvCharging, Site, Tariff
from evsite.site.topology import J1772_MIN_A, ROOT, line_current_a

STALE_AFTER_S = 30.0
"""A building reading older than this counts as lost (meters are polled every few seconds)."""


def _vector(currents: dict[str, float]) -> np.ndarray:
    vec = np.zeros(3)
    for name, amps in currents.items():
        if name in LINE_INDEX:
            vec[LINE_INDEX[name]] = max(0.0, float(amps))
    return vec


@dataclass
class _Reading:
    current: np.ndarray
    at: datetime
    stale: bool


@dataclass
class _Cap:
    current: np.ndarray
    start: datetime
    until: datetime | None


@dataclass
class SiteLimits:
    """Turns the latest signals into the limit matrix (nodes × 3) the allocator must respect."""

    site: Site
    tree: ConstraintTree
    margin_a: float | None = None
    pv: PvCharging = field(default_factory=PvCharging)
    stale_after_s: float = STALE_AFTER_S
    building: dict[str, _Reading] = field(default_factory=dict)
    building_max: dict[str, np.ndarray] = field(default_factory=dict)
    dr: dict[str, _Cap] = field(default_factory=dict)
    manual: dict[str, np.ndarray] = field(default_factory=dict)
    pv_surplus: _Reading | None = None
    demand_cap_kw: float | None = None  # a capacity limit: converted at the worst wiring, a hard limit
    demand_target_kw: float | None = None  # the demand guard's allowance: a target, not a safety limit
    demand_w_per_a: float | None = None  # watts per service line-ampere of the EVs now charging (target only)
    demand_band_a: float = 1.0  # the target's current drops at once and rises only this far past the held value
    _demand_held_a: float | None = None
    _pv_on: bool = False
    _pv_since: datetime | None = None
    _pv_cap: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.margin_a is None:
            self.margin_a = self.site.control.safety_margin_a
        # Until its meter reports, a building load is assumed at its design peak, on the node its meter
        # measures (where the live readings will arrive) or else on its panel.
        for load in self.site.building_loads:
            node = building_node(self.site, load)
            amps = line_current_a(self.site.service.system, load.peak_kw)
            self.building_max[node] = self.building_max.get(node, np.zeros(3)) + amps

    def update(self, signal: SiteSignal) -> None:
        if signal.node not in self.tree.node_index:
            raise ValueError(f"signal for unknown node {signal.node!r} from {signal.source}")
        vec = _vector(signal.current_a)
        if signal.kind == "building_load":
            if not signal.stale:
                self.building_max[signal.node] = np.maximum(self.building_max.get(signal.node, vec), vec)
            self.building[signal.node] = _Reading(vec, signal.at, signal.stale)
        elif signal.kind == "dr_limit":
            if signal.current_a:
                self.dr[signal.node] = _Cap(vec, signal.at, signal.until)
            elif not signal.stale:
                self.dr.pop(signal.node, None)  # an explicit empty, fresh signal ends the event
        elif signal.kind == "manual_limit":
            if signal.current_a:
                self.manual[signal.node] = vec
            else:
                self.manual.pop(signal.node, None)
        elif signal.kind == "pv_surplus":
            self.pv_surplus = _Reading(vec, signal.at, signal.stale)

    def building_current(self, node: str, now: datetime) -> np.ndarray:
        """The building current to assume on `node`: live if fresh, else its recorded maximum."""
        reading = self.building.get(node)
        fresh = reading is not None and not reading.stale and (now - reading.at).total_seconds() <= self.stale_after_s
        if fresh:
            assert reading is not None
            return reading.current
        return self.building_max.get(node, np.zeros(3))

    def limits(self, now: datetime) -> np.ndarray:
        """Current limits per node and line for the EV load, never above the design limits."""
        limits = self.tree.limits.copy()
        margin = float(self.margin_a or 0.0)
        for node in set(self.building) | set(self.building_max):
            amps = self.building_current(node, now)
            subtract_upstream(self.tree, limits, node, amps + margin)
        for node, cap in list(self.dr.items()):
            if cap.until is not None and now >= cap.until:
                del self.dr[node]
                continue
            if now >= cap.start:
                i = self.tree.node_index[node]
                limits[i] = np.minimum(limits[i], cap.current)
        for node, vec in self.manual.items():
            i = self.tree.node_index[node]
            limits[i] = np.minimum(limits[i], vec)
        if ROOT in self.tree.node_index:
            i = self.tree.node_index[ROOT]
            if self.demand_cap_kw is not None:
                # kW -> A per line at V_LN per line-ampere (√3·V_LL / 3 lines): no wiring gets more power out
                # of an ampere on a line, so the cap holds for 1φ, line-to-line and 3φ chargers alike.
                limits[i] = np.minimum(limits[i], line_current_a(self.site.service.system, self.demand_cap_kw))
            if self.demand_target_kw is not None:
                if self.demand_w_per_a:
                    target_a = self.demand_target_kw * 1000.0 / self.demand_w_per_a
                else:
                    target_a = line_current_a(self.site.service.system, self.demand_target_kw)
                limits[i] = np.minimum(limits[i], self._hold_demand(target_a))
        self._apply_pv(limits, now)
        return np.maximum(limits, 0.0)

    def _hold_demand(self, target_a: float) -> float:
        """The demand target in 0.1 A steps, down at once, up only past `demand_band_a`.

        The allowance moves a little every cycle (a block fills, cars come and go); following every move
        would resend setpoints each cycle for no money. Holding a lower value never exceeds the target.
        """
        target_a = math.floor(target_a * 10.0 + 1e-9) / 10.0
        held = self._demand_held_a
        if held is None or target_a < held or target_a >= held + self.demand_band_a:
            held = target_a
        self._demand_held_a = held
        return held

    def _apply_pv(self, limits: np.ndarray, now: datetime) -> None:
        if self.pv.mode == "off":
            return
        i = self.tree.node_index[self.pv.node]
        reading = self.pv_surplus
        fresh = reading is not None and not reading.stale and (now - reading.at).total_seconds() <= self.stale_after_s
        surplus = reading.current if fresh and reading is not None else np.zeros(3)
        enough = bool(np.all(surplus[limits[i] < np.inf] >= J1772_MIN_A)) if fresh else False
        if enough != self._pv_on:
            if self._pv_since is None:
                self._pv_since = now
            delay = self.pv.enable_s if enough else self.pv.disable_s
            if (now - self._pv_since).total_seconds() >= delay or not fresh:
                self._pv_on, self._pv_since = enough, None
        else:
            self._pv_since = None
        # While switched on, keep at least the minimum of one port so a cloud does not end the session;
        # `min+pv` keeps it always (the grid supplies what the sun does not).
        floor = J1772_MIN_A if self._pv_on or self.pv.mode == "min+pv" else 0.0
        cap = np.maximum(self._follow_surplus(surplus), floor) if floor else np.zeros(3)
        limits[i] = np.minimum(limits[i], cap)

    def _follow_surplus(self, surplus: np.ndarray) -> np.ndarray:
        """The surplus in `step_a` steps: down at once, up only past `raise_band_a`.

        Following every wiggle of the sun's arc would send a setpoint every cycle (222 per sunny
        session in the `pv-surplus` replay); the EV cannot follow faster than ~5 s anyway.
        """
        step = self.pv.step_a
        target = np.floor(surplus / step + 1e-9) * step if step > 0 else surplus
        held = self._pv_cap
        if held is None or held.shape != target.shape:
            held = target
        held = np.where((target < held) | (target >= held + self.pv.raise_band_a), target, held)
        self._pv_cap = held
        return held


def price_per_kwh(tariff: Tariff | None, when: datetime, timezone: str) -> float:
    """Energy price at `when` from the site tariff (flat or time-of-use; holidays use their period)."""
    if tariff is None:
        return 0.0
    if tariff.kind == "flat" or not tariff.tou_periods:
        return float(tariff.energy_rate_per_kwh)
    local = when.astimezone(ZoneInfo(timezone)) if when.tzinfo else when
    periods = tariff.tou_periods
    if local.date() in tariff.holidays and tariff.holiday_period:
        chosen = [p for p in periods if p.name == tariff.holiday_period]
        if chosen:
            return float(chosen[0].rate_per_kwh)
    day = WEEKDAYS[local.weekday()]
    t = local.time()
    for period in periods:
        if day not in period.days or local.month not in period.months:
            continue
        inside = period.start <= t < period.end if period.start < period.end else (t >= period.start or t < period.end)
        if inside:
            return float(period.rate_per_kwh)
    return float(tariff.energy_rate_per_kwh or Decimal(0))


def price_series(tariff: Tariff | None, start: datetime, step_s: float, steps: int, timezone: str) -> np.ndarray:
    """Prices for `steps` intervals of `step_s` from `start` (for the MPC horizon)."""
    return np.array([price_per_kwh(tariff, start + timedelta(seconds=k * step_s), timezone) for k in range(steps)])
