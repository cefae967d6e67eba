"""Demand-charge and capacity-tariff management: keep the EV load from setting a new billed peak.

A demand charge bills the month's highest average power over the utility's demand interval (15 or
30 min, in fixed clock blocks or a rolling window); a ratchet keeps the billed demand at least a share
of an earlier peak; a capacity tariff (Belgium, the Netherlands) adds a subscribed kW the site must
not exceed. Once an interval's energy has set the peak, the money is spent for the month, so the only
useful control is *before*: with E kWh already in the window and r seconds of it left, any power up
to (target × I − E) / r keeps the average at or under the target.

The guard holds the load at the month's peak so far (or the ratchet), which costs nothing more: at
most the target itself, less when the window already holds more than its share (a steady cap, so the
allocation does not chase an allowance that grows as the window empties). When
the energy owed to the cars by their departures needs more power than that, it raises the target by
the least amount that lets the owed power through and logs why: a raised peak is a decision with a
price, and the operator is told. A capacity cap is never raised.

Pure: numbers in, numbers out; the caller measures power and turns the allowed kW into a limit.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evsite.site.model import Tariff

OWED_MARGIN = 1.25
"""Owed power is planned with 25 % to spare: cars take their last 15 % slowly (taper), setpoints round down
and only whole 6 A ports are admitted. With 10 % the overnight test night ended with the cars behind and
a late raise (peak 8.2 kW); with 25 % they start a little faster and the peak is lower (7.1 kW)."""
RAISE_STEP = 0.05
"""A raise goes 5 % past the least peak that serves the cars: owed power creeps as cars taper, and a peak
raised by a hair every cycle would flood the operator's log for no saving."""
MIN_HORIZON_S = 300.0
"""A car leaving in less than this counts as leaving in this: the owed rate stays finite."""


@dataclass(frozen=True)
class DemandRule:
    """How the utility bills peak power: interval, window and ratchet; a capacity cap if any."""

    interval_s: float = 900.0
    rolling: bool = False
    ratchet_kw: float = 0.0  # the billed demand this month is at least this (ratchet % × the earlier peak)
    cap_kw: float | None = None  # a capacity tariff's subscribed power: a limit, never raised

    @classmethod
    def from_tariff(cls, tariff: Tariff | None, earlier_peak_kw: float = 0.0) -> DemandRule | None:
        """The rule a site's tariff implies; None when it bills no demand and caps nothing."""
        if tariff is None:
            return None
        cap = float(tariff.capacity_limit_kw) if tariff.capacity_limit_kw is not None else None
        if tariff.demand_charge_per_kw <= 0 and cap is None:
            return None
        return cls(
            interval_s=tariff.demand_interval_minutes * 60.0,
            rolling=tariff.demand_window == "rolling",
            ratchet_kw=float(tariff.demand_ratchet_pct) / 100.0 * earlier_peak_kw,
            cap_kw=cap,
        )


def owed_kw(
    now: float,
    remaining_wh: np.ndarray,
    departure_s: np.ndarray,
    max_kw: np.ndarray | None = None,
    buffer_s: float = 0.0,
) -> float:
    """The least steady power that still delivers every car's remaining energy by its departure.

    For deadlines d₁ ≤ d₂ ≤ …, the energy due by dₖ must fit in dₖ − now: the rate is the largest
    Σᵢ≤ₖ remainingᵢ / (dₖ − now) (the earliest-deadline-first bound on one shared supply). More power
    than those cars can take (`max_kw`: a tapering car's draw, a car's on-board limit) does not help
    them, so each term is capped at Σᵢ≤ₖ max_kwᵢ: a car that is late and tapering does not buy a peak.
    A car whose departure or energy is unknown is owed what it can take (`max_kw`, nothing without it):
    as in the fair policy's weights, knowing less never earns less, so demand management bites only
    where departures are known (ISO 15118, the API, a replay). `buffer_s`: aim to be done this long
    before each departure (the fair policy's `NEED_BUFFER_S`: the last 15 % of the energy comes slowly).
    """
    unknown = (~np.isfinite(departure_s) | np.isnan(remaining_wh)) & ~(remaining_wh <= 0)
    floor = float(max_kw[unknown].sum()) if max_kw is not None else 0.0
    known = ~unknown & (remaining_wh > 0)
    if not known.any():
        return floor
    order = np.argsort(departure_s[known], kind="stable")
    due_wh = np.cumsum(remaining_wh[known][order])
    hours = np.maximum(departure_s[known][order] - buffer_s - now, MIN_HORIZON_S) / 3600.0
    rate_kw = due_wh / hours / 1000.0
    if max_kw is not None:
        rate_kw = np.minimum(rate_kw, np.cumsum(max_kw[known][order]))
    return floor + float(rate_kw.max())


def watts_per_line_amp(line_mask: np.ndarray, volts: np.ndarray, ports: np.ndarray) -> float | None:
    """Power the given ports deliver per ampere on the service's busiest line, all drawing alike.

    A demand target is money, not a safety limit: converting it with the worst wiring (V_LN per
    line-ampere, what a capacity limit uses) would hold 1φ 208 V chargers 13 % under the target, and
    the cars would fall behind their deadlines. With every port at I: P = Σ W/A · I, the busiest line
    carries I · (ports on it). None when no port is given.
    """
    if not ports.any():
        return None
    busiest = float(line_mask[ports].sum(axis=0).max())
    return float(volts[ports].sum()) / busiest if busiest else None


@dataclass
class DemandDecision:
    """What the guard allows now and why."""

    allowed_kw: float  # power the metered load may draw from now on (inf: no cap)
    target_kw: float  # the peak being held
    raised: bool = False
    reason: str | None = None


@dataclass
class DemandGuard:
    """Tracks the billed demand of one month and the power that keeps it where it is.

    `record(t0, t1, kw)` takes the metered power over [t0, t1) (seconds on the utility's clock: block
    intervals start at multiples of the interval). `decide(now, owed)` gives the allowed power.
    """

    rule: DemandRule
    peak_kw: float = 0.0  # the month's highest interval average so far
    target_kw: float = 0.0  # the peak the guard holds (≥ peak and ratchet; raised when cars need it)
    raises: list[dict[str, float | str]] = field(default_factory=list)
    _segments: deque[tuple[float, float, float]] = field(default_factory=deque)  # (t0, t1, kW) in the window
    _block: float = -math.inf  # start of the current block
    _block_kws: float = 0.0  # kW·s in the current block

    def __post_init__(self) -> None:
        self.target_kw = max(self.target_kw, self.rule.ratchet_kw, self.peak_kw)

    def new_month(self, ratchet_kw: float | None = None) -> None:
        """The billing month rolled over: the peak starts again (from the ratchet, if any)."""
        if ratchet_kw is not None:
            self.rule = DemandRule(self.rule.interval_s, self.rule.rolling, ratchet_kw, self.rule.cap_kw)
        self.peak_kw = 0.0
        self.target_kw = self.rule.ratchet_kw
        self._segments.clear()
        self._block, self._block_kws = -math.inf, 0.0

    def record(self, t0: float, t1: float, kw: float) -> None:
        """Take in `kw` drawn from t0 to t1 and update the month's peak."""
        if t1 <= t0:
            return
        interval = self.rule.interval_s
        kw = max(0.0, kw)
        if self.rule.rolling:
            self._segments.append((t0, t1, kw))
            while self._segments and self._segments[0][1] <= t1 - interval:
                self._segments.popleft()
            self.peak_kw = max(self.peak_kw, self._window_kws(t1 - interval, t1) / interval)
        else:
            t = t0
            while t < t1:
                block = math.floor(t / interval) * interval
                if block != self._block:
                    self._block, self._block_kws = block, 0.0
                end = min(t1, block + interval)
                self._block_kws += kw * (end - t)
                self.peak_kw = max(self.peak_kw, self._block_kws / interval)
                t = end
        self.target_kw = max(self.target_kw, self.peak_kw)

    def _window_kws(self, start: float, end: float) -> float:
        """kW·s recorded between `start` and `end`."""
        return sum(kw * max(0.0, min(b, end) - max(a, start)) for a, b, kw in self._segments)

    def _constraints(self, now: float) -> list[tuple[float, float]]:
        """(h, E): every window that ends h seconds from now already holds E kW·s.

        Its average stays ≤ target while E + P·h ≤ target·I. Block: the one window, the current block.
        Rolling: windows ending at each point where a recorded segment leaves them, and one interval on.
        """
        interval = self.rule.interval_s
        if not self.rule.rolling:
            block = math.floor(now / interval) * interval
            used = self._block_kws if block == self._block else 0.0
            return [(block + interval - now, used)]
        ends = {interval}
        for a, b, _ in self._segments:
            for edge in (a, b):
                h = edge + interval - now
                if 0.0 < h < interval:
                    ends.add(h)
        return [(h, self._window_kws(now + h - interval, now)) for h in sorted(ends)]

    def allowed_kw(self, now: float, target_kw: float | None = None) -> float:
        """The most power that keeps every billed window's average at or under the target."""
        target = self.target_kw if target_kw is None else target_kw
        interval = self.rule.interval_s
        return max(0.0, min((target * interval - used) / h for h, used in self._constraints(now)))

    def decide(self, now: float, owed: float = 0.0, other_kw: float = 0.0) -> DemandDecision:
        """Allowed power for the metered load (EV + `other_kw`), raised to what the cars are owed if need be.

        `owed` is the EV power the cars' deadlines need (`owed_kw`), `other_kw` the non-EV load expected
        to go on drawing (0 when the billed meter is the EVs' own). Returns the allowed *EV* power.
        """
        interval = self.rule.interval_s
        need = owed * OWED_MARGIN + other_kw
        allowed = min(self.allowed_kw(now), self.target_kw)
        raised, reason = False, None
        if need > allowed + 1e-9:
            # The least target that lets `need` through from now on, steadily: at least `need` itself, and
            # E + need·h ≤ target·I for every window that already holds E.
            least = max([need, *((used + need * h) / interval for h, used in self._constraints(now))])
            if least > self.target_kw + 1e-9:
                least *= 1.0 + RAISE_STEP
                reason = (
                    f"demand peak raised from {self.target_kw:.1f} kW to {least:.1f} kW: the cars' departures "
                    f"need {owed:.1f} kW (+{OWED_MARGIN - 1:.0%} margin)"
                )
                self.raises.append({"at": now, "from_kw": self.target_kw, "to_kw": least, "owed_kw": owed})
                self.target_kw, raised = least, True
                allowed = min(self.allowed_kw(now), self.target_kw)
        ev = allowed - other_kw
        if self.rule.cap_kw is not None:
            ev = min(ev, self.rule.cap_kw - other_kw)
        return DemandDecision(max(0.0, ev), self.target_kw, raised, reason)


class DemandManager:
    """The guard wired to a controller and a site's limits: the one place loop and replay share.

    Each control cycle: `measure(now, ev_kw)` with the EVs' measured power (held until the next
    reading, as a meter integrates), then `apply(now, limits, needs)` before the limits are read. Times
    are on the wall clock (`clock0` + the caller's seconds), so blocks start on the quarter hour.
    """

    def __init__(self, rule: DemandRule, line_mask: np.ndarray, volts: np.ndarray, clock0: float = 0.0) -> None:
        self.guard = DemandGuard(rule)
        self.line_mask = line_mask
        self.volts = volts
        self.clock0 = clock0
        self.log: list[tuple[float, str]] = []  # (time, reason) of every raise
        self._last: tuple[float, float] | None = None

    def measure(self, now: float, ev_kw: float) -> None:
        """The EV load's power now; the previous reading is taken to have held since it came."""
        if self._last is not None:
            t0, kw0 = self._last
            self.guard.record(self.clock0 + t0, self.clock0 + now, kw0)
        self._last = (now, ev_kw)

    def apply(
        self,
        now: float,
        limits: Any,
        present: np.ndarray,
        remaining_wh: np.ndarray,
        departure_s: np.ndarray,
        max_a: np.ndarray,
        buffer_s: float = 0.0,
    ) -> DemandDecision:
        """Set the demand target and capacity cap on `limits` (a `SiteLimits`) for this cycle.

        `max_a`: the most each EV will take (its on-board limit, a tapering car's draw plus headroom).
        """
        max_kw = np.where(present, np.nan_to_num(max_a, posinf=1e6) * self.volts / 1000.0, 0.0)
        owed = owed_kw(
            now, np.where(present, remaining_wh, 0.0), np.where(present, departure_s, np.inf), max_kw, buffer_s
        )
        decision = self.guard.decide(self.clock0 + now, owed)
        if decision.reason:
            self.log.append((now, decision.reason))
            del self.log[:-100]
        limits.demand_target_kw = decision.allowed_kw
        limits.demand_w_per_a = watts_per_line_amp(self.line_mask, self.volts, present)
        limits.demand_cap_kw = self.guard.rule.cap_kw
        return decision
