"""Fast scenario replay: the real controller against modelled EVs, days of site time in seconds.

The simulator owns time and physics; the controller sees only what a live one would: connector
statuses, meter samples every `meter_value_interval_s`, signals (stale when a meter drops out) and
the answers to its commands. The EV model follows J1772/IEC 61851 timing: the EVSE changes its PWM
at most every 5 s, the car follows after its own lag (1–6 s), waits 5–40 s before drawing at all,
tapers near the end, stops when it has its energy, may take less than offered (on-board limit,
single-phase car on a three-phase port). Chargers and cars misbehave where the scenario's faults say
(`Fault`): reject profiles, accept and ignore them, apply them late, overdraw the pilot, under-report
their draw. Where `node_meters` is set, the site's meters on tree nodes report the true current.

Ground truth for the safety metrics is computed from the true building load and DR limits with
no margin: any current above a node's real limit counts, however short.
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import numpy as np

from evsite.control.allocate import NEED_BUFFER_S
from evsite.control.baselines import get_policy
from evsite.control.controller import Controller, ControllerSettings
from evsite.control.demand import DemandGuard, DemandManager, DemandRule
from evsite.control.scenarios import Fault, Scenario, Session
from evsite.control.signals import SiteLimits, price_series
from evsite.control.tree import LINES, build_tree
from evsite.runtime.events import ConnectorStatus, MeterSample, SiteSignal, TransactionEvent
from evsite.site.model import PvCharging
from evsite.site.topology import J1772_MIN_A, ROOT, UPSTREAM_KINDS

PILOT_UPDATE_S = 5.0
EXCURSION_S = 15.0
SIGNAL_PERIOD_S = 2.0
LEAP_MAX_S = 300.0  # the longest stretch of steady site time replayed in one step
QUIET_S = 120.0  # how long nothing must have moved before a leap (covers the controller's pause and sample windows)
PRICE_BUCKET_S = 900.0


@dataclass
class _Active:
    session: Session
    index: int
    delivered_wh: float = 0.0
    changes: int = 0
    pauses: int = 0
    paused: bool = False


def _vec(amps: np.ndarray) -> dict[str, float]:
    return {name: float(a) for name, a in zip(LINES, amps, strict=True)}


def steady_steps(
    t_next: float,
    dt: float,
    horizon: float,
    present: np.ndarray,
    current: np.ndarray,
    need: np.ndarray,
    taper_floor_need: np.ndarray,
    volts: np.ndarray,
) -> int:
    """How many `dt` steps from `t_next` keep every EV's current exactly as it is now.

    The caller has checked that nothing is in flight; what still ends a steady stretch is time (`horizon`:
    the next arrival, departure, car waking up, price period) and energy: a charging car must stay above
    the energy where its taper falls below its current (`taper_floor_need`), and must not finish inside
    the stretch, so its `SuspendedEV` comes on the very step it would have without leaping.
    """
    k = math.ceil((horizon - t_next) / dt - 1e-9)  # step times t_next + j·dt < horizon
    per_step = current * volts * dt / 3600.0
    charging = present & (per_step > 0)
    if charging.any():
        room = need[charging] - np.maximum(taper_floor_need[charging], per_step[charging])
        k = min(k, int(np.floor(room / per_step[charging]).min()))
    return max(k, 0)


def _month_starts(scenario: Scenario) -> list[float]:
    """Scenario times (s) at which a new site-local billing month begins, after the start."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(scenario.site.timezone)
    local = scenario.start.astimezone(tz)
    out: list[float] = []
    year, month = local.year, local.month
    while True:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        first = local.replace(year=year, month=month, day=1, hour=0, minute=0, second=0, microsecond=0)
        t = first.timestamp() - local.timestamp()
        if t >= scenario.duration_s:
            return out
        out.append(t)


class Recorder(Protocol):
    """Gets what the site's chargers would report, to store a replay like a live run (`evsite.store.replay`)."""

    def plugged(self, port: int, session: Session, t: float) -> None: ...
    def sample(self, t: float, per_line: np.ndarray, delivered_wh: np.ndarray, present: np.ndarray) -> None: ...
    def unplugged(self, port: int, t: float, delivered_wh: float) -> None: ...


class Replay:
    """Run one scenario under one policy and return its metrics."""

    def __init__(
        self,
        scenario: Scenario,
        policy: str = "fair",
        *,
        cycle_s: float | None = None,
        recorder: Recorder | None = None,
        leap_s: float = LEAP_MAX_S,
        manage_demand: bool | None = None,
        quiet_cycles: bool = True,
    ) -> None:
        """`leap_s`: steady stretches are replayed in one step of at most this long (0: step by step).

        `quiet_cycles`: skip a control cycle when the controller has nothing new (no event, no meter sample,
        nothing sent in its last cycle) in scenarios without moving signals; its timers act at the next sample.

        `manage_demand`: hold the EV load under the month's billed peak (default: the site's setting).
        """
        self.scenario = scenario
        self.leap_s = leap_s
        self.leaps = 0
        # The MPC follows a plan that moves with time, so it must see every cycle as the live loop does: with
        # quiet cycles its workplace day changed (68.55 → 68.75 % energy, 58 → 39 changes per session).
        self.quiet_cycles = quiet_cycles and policy != "mpc"
        if policy == "mpc":
            self.leap_s = 0.0
        self.quiet_s = QUIET_S
        self.recorder = recorder
        self.policy_name = policy
        self.site = scenario.site
        self.tree = build_tree(self.site)
        self.cycle_s = cycle_s or self.site.control.cycle_s
        self.meter_s = float(min(self.site.control.meter_value_interval_s, 10))
        self.settings = ControllerSettings(follow_margin_a=self.site.control.safety_margin_a)
        self.manage_demand = self.site.control.manage_demand if manage_demand is None else manage_demand
        self.clock0 = scenario.start.timestamp()  # demand intervals are on the utility's (wall) clock
        self.bill_rule = DemandRule.from_tariff(self.site.tariff) or DemandRule(
            interval_s=self.site.tariff.demand_interval_minutes * 60.0 if self.site.tariff else 900.0
        )
        self.months = _month_starts(scenario)
        self.demand_log: list[str] = []
        self._month_peaks: list[float] = []
        self._demand_rate = float(self.site.tariff.demand_charge_per_kw) if self.site.tariff else 0.0
        self._new_controller()
        self.over_by_node: dict[str, float] = {}
        self.longest_excursion_s = 0.0
        self.excursion_log: list[tuple[float, float]] = []  # (start s, duration s) of each ended excursion
        self.truth = SiteLimits(self.site, self.tree, margin_a=0.0, pv=PvCharging(), stale_after_s=1e18)

    def _new_controller(self) -> None:
        policy = get_policy(self.policy_name, self.site, self.scenario.start.timestamp())
        self.ctrl = Controller(self.site, self.tree, policy, self.settings)
        self.limits = SiteLimits(self.site, self.tree, pv=self.scenario.pv)
        rule = DemandRule.from_tariff(self.site.tariff)
        self.demand: DemandManager | None = None
        if rule is not None and self.manage_demand:
            self.demand = DemandManager(rule, self.tree.line_mask(), self.ctrl.needs.volts, self.clock0)
        elif rule is not None:
            self.limits.demand_cap_kw = rule.cap_kw  # a capacity limit is a limit, managed or not

    # ------------------------------------------------------------------ helpers

    def _at(self, t: float) -> Any:
        return self.scenario.start + timedelta(seconds=t)

    def _status(self, p: int, status: str, t: float) -> None:
        port = self.tree.ports[p]
        self.ctrl.observe(ConnectorStatus(port.charge_point_id, port.connector_id, status, at=self._at(t)), t)

    def _fault_active(self, kind: str, t: float) -> list[str]:
        return [f.target for f in self._faults(kind, t)]

    def _faults(self, kind: str, t: float) -> list[Fault]:
        if not self.scenario.faults:
            return []
        return [f for f in self.scenario.faults if f.kind == kind and f.start_s <= t < f.end_s]

    def _ports_of(self, target: str) -> np.ndarray:
        """Ports of the charger `target` ("*": every port)."""
        return np.array([target == "*" or p.charge_point_id == target for p in self.tree.ports], dtype=bool)

    def run(self, progress: Callable[[float], None] | None = None) -> dict[str, Any]:
        sc = self.scenario
        tree, n = self.tree, self.tree.n_ports
        dt = sc.step_s
        port_max = np.array([p.max_a for p in tree.ports])
        volts = self.ctrl.needs.volts
        # EV state
        present = np.zeros(n, dtype=bool)
        need = np.zeros(n)
        requested = np.zeros(n)
        ev_max = np.zeros(n)
        ready_at = np.zeros(n)
        lag = np.ones(n)
        line_mask = tree.line_mask()
        mask = line_mask.astype(float)  # lines each port's current flows on (truth)
        pilot = np.zeros(n)
        target = np.zeros(n)
        pilot_at = np.full(n, -math.inf)
        current = np.zeros(n)
        nxt = np.zeros(n)
        switch_at = np.zeros(n)
        delivered = np.zeros(n)
        done = np.zeros(n, dtype=bool)
        active: dict[int, _Active] = {}
        finished: list[_Active] = []
        # events
        arrivals = sorted(sc.sessions, key=lambda s: s.arrival_s)
        ai = 0
        rows, cols = tree.incidence()
        # metrics
        over_as = 0.0
        over_run = np.zeros(tree.n_nodes * 3)
        excursions = 0
        uncontrolled_peak = 0.0
        cycle_times: list[float] = []
        congested_steps = 0
        util_sum = 0.0
        cost = 0.0
        pv_wh = 0.0
        ev_wh = 0.0
        t_comply: list[float] = []
        dr_pending: list[float] = []
        prices = price_series(self.site.tariff, sc.start, 900.0, int(sc.duration_s // 900) + 2, self.site.timezone)
        upstream = np.array([k in UPSTREAM_KINDS for k in tree.kinds])
        next_cycle = 0.0
        last_move = 0.0  # the last time anything changed that a leap cannot replay
        news = True  # the controller has something it has not decided on yet
        can_leap = (
            self.leap_s > 0
            and sc.building is None
            and sc.pv_surplus is None
            and not sc.dr
            and not sc.faults
            and not sc.node_meters
        )
        next_signal = 0.0
        next_sample = 0.0
        dr_sent: set[int] = set()
        rejected_now: set[str] = set()
        sent_log: list[list[tuple[float, float]]] = [[] for _ in range(n)]  # accepted values, for late chargers
        restarts = sorted(f.start_s for f in sc.faults if f.kind == "restart")
        true_limits = tree.limits.copy()
        bill = DemandGuard(self.bill_rule)  # the month's billed EV demand, from the truth
        month_peaks: list[float] = []
        month_starts = list(self.months)
        # All chargers announce themselves at boot.
        for p in range(n):
            self._status(p, "Available", 0.0)
        t = 0.0
        wall0 = time.perf_counter()
        while t < sc.duration_s:
            wake = False
            if month_starts and t >= month_starts[0]:
                month_starts.pop(0)
                month_peaks.append(bill.peak_kw)
                bill.new_month()
                if self.demand is not None:
                    self.demand.guard.new_month()
            # ---- arrivals and departures
            while ai < len(arrivals) and arrivals[ai].arrival_s <= t:
                s = arrivals[ai]
                ai += 1
                found = tree.port_index.get((s.evse, s.connector))
                if found is None or present[found]:
                    continue
                p = found
                present[p], done[p] = True, False
                requested[p] = need[p] = s.energy_wh
                ev_max[p] = s.ev_max_a
                ready_at[p] = t + s.start_delay_s
                lag[p] = s.lag_s
                delivered[p] = 0.0
                port = tree.ports[p]
                mask[p] = 0.0
                if port.three_phase and s.ev_phases == 1:
                    mask[p, port.lines[0]] = 1.0
                else:
                    mask[p, list(port.lines)] = 1.0
                active[p] = _Active(s, p)
                if self.recorder is not None:
                    self.recorder.plugged(p, s, t)
                self.ctrl.needs.requested_wh[p] = s.energy_wh
                self.ctrl.needs.departure_s[p] = s.departure_s
                self._status(p, "Preparing", t)
                self.ctrl.observe(
                    TransactionEvent(
                        port.charge_point_id,
                        port.connector_id,
                        len(finished) + len(active),
                        "started",
                        s.id_tag,
                        0.0,
                        at=self._at(t),
                    ),
                    t,
                )
                self.ctrl.needs.arrival_s[p] = t
                wake = True
            for p in [p for p, a in active.items() if a.session.departure_s <= t]:
                a = active.pop(p)
                a.delivered_wh = delivered[p]
                if self.recorder is not None:
                    self.recorder.unplugged(p, t, float(delivered[p]))
                finished.append(a)
                present[p] = False
                current[p] = nxt[p] = 0.0
                self._status(p, "Available", t)
                wake = True
            # ---- faults that change the world
            # A charger that rejects profiles keeps whatever limit it had (OCPP leaves installed profiles alone).
            rejected_now = set(self._fault_active("reject", t))
            if restarts and restarts[0] <= t:
                restarts.pop(0)
                self._new_controller()
                for p in range(n):
                    self._status(p, "Charging" if present[p] else "Available", t)
                    if present[p]:
                        self.ctrl.needs.requested_wh[p] = requested[p]
                        self.ctrl.needs.departure_s[p] = active[p].session.departure_s
                        self.ctrl.needs.arrival_s[p] = active[p].session.arrival_s
                dr_sent.clear()
                wake = True
            # ---- signals (every 2 s; the truth updates every step)
            if sc.building is not None:
                for node, amps in sc.building(t).items():
                    self.truth.update(SiteSignal("building_load", node, _vec(amps), "truth", at=self._at(t)))
            for k, ev in enumerate(sc.dr):
                if ev.start_s <= t < ev.end_s:
                    true_limits_dr = {"L1": ev.amps, "L2": ev.amps, "L3": ev.amps}
                    if k not in dr_sent:
                        until = self._at(ev.end_s)
                        self.truth.update(
                            SiteSignal(
                                "dr_limit", ev.node, true_limits_dr, "truth", at=self._at(ev.start_s), until=until
                            )
                        )
                        self.limits.update(
                            SiteSignal("dr_limit", ev.node, true_limits_dr, "vtn", at=self._at(t), until=until)
                        )
                        dr_sent.add(k)
                        dr_pending.append(t)
                        wake = True
                    if ev.lost_at_s is not None and ev.lost_at_s <= t < ev.lost_at_s + dt:
                        self.limits.update(SiteSignal("dr_limit", ev.node, {}, "vtn", at=self._at(t), stale=True))
            if t >= next_signal:
                next_signal = t + SIGNAL_PERIOD_S
                dropout = bool(self._fault_active("meter-dropout", t))
                if sc.building is not None:
                    for node, amps in sc.building(t).items():
                        self.limits.update(
                            SiteSignal("building_load", node, _vec(amps), "meter", at=self._at(t), stale=dropout)
                        )
                if sc.pv_surplus is not None:
                    self.limits.update(
                        SiteSignal("pv_surplus", sc.pv.node, _vec(sc.pv_surplus(t)), "pv", at=self._at(t))
                    )
                if not can_leap or t == 0.0:  # without signals the true limits never move
                    true_limits = self.truth.limits(self._at(t))
                if sc.node_meters:
                    node_now = tree.node_load_lines(current[:, None] * mask)
                    for meter_id, node_row in self.ctrl.node_meters.items():
                        reading = _vec(node_now[node_row])
                        self.ctrl.observe(MeterSample(meter_id, 0, self._at(t), current_a=reading), t)
            # ---- control cycle
            # A cycle with nothing new for the controller (no event, no sample, nothing sent last time, no
            # signal that can move) is skipped when `quiet_cycles` is on: its timers act at the next sample.
            idle = self.quiet_cycles and can_leap and not (wake or news)
            if (wake or t >= next_cycle) and (present.any() or wake) and not idle:
                next_cycle = t + self.cycle_s
                news = False
                c0 = time.perf_counter()
                if self.demand is not None:
                    needs = self.ctrl.needs
                    decision = self.demand.apply(
                        t,
                        self.limits,
                        self.ctrl.present,
                        needs.remaining_wh,
                        needs.departure_s,
                        np.minimum(self.ctrl.ev_cap, port_max),  # what each car takes (demand() has side effects)
                        NEED_BUFFER_S,
                    )
                    if decision.reason:
                        self.demand_log.append(f"{self._at(t).isoformat()} {decision.reason}")
                lim = self.limits.limits(self._at(t))
                setpoints, to_send = self.ctrl.decide(lim, t)
                cycle_times.append(time.perf_counter() - c0)
                news = news or len(to_send) > 0
                for p in to_send:
                    value = float(setpoints[p])
                    ok = tree.ports[p].charge_point_id not in rejected_now
                    self.ctrl.begin_send(int(p), value)
                    self.ctrl.record_result(int(p), value, ok, t)
                    if ok:
                        if p in active and abs(value - target[p]) >= 0.05:
                            a = active[p]
                            a.changes += 1
                            if value == 0.0 and need[p] > 0 and not a.paused:
                                a.paused = True
                            elif value > 0 and a.paused:
                                a.paused = False
                                a.pauses += 1
                        target[p] = value
                        last_move = t
                        sent_log[p].append((t, value))
                        del sent_log[p][:-64]  # a late charger needs only the last minutes
            # ---- what each charger applies: a late one, the value it was sent `delay_s` ago
            applied = target.copy()
            for f in self._faults("late", t):
                for q in np.flatnonzero(self._ports_of(f.target)):
                    old = [v for at, v in sent_log[q] if at <= t - f.delay_s]
                    applied[q] = old[-1] if old else pilot[q]
            # ---- EVSE pilot: at most one change per 5 s
            upd = (applied != pilot) & (t - pilot_at >= PILOT_UPDATE_S)
            pilot[upd] = applied[upd]
            pilot_at[upd] = t
            # ---- EV response
            taper = ev_max * np.clip(need / np.maximum(0.15 * requested, 1.0), 0.1, 1.0)
            want = np.where(
                present & (t >= ready_at) & (need > 0) & (pilot >= J1772_MIN_A), np.minimum(pilot, taper), 0.0
            )
            if self._fault_active("ignore-pilot", t):
                want = np.maximum(want, current * present)
            for f in self._faults("ignore", t):  # the charger's pilot stays at its maximum whatever it accepted
                ports = self._ports_of(f.target) & present & (t >= ready_at) & (need > 0)
                want = np.where(ports, np.minimum(taper, port_max), want)
            for f in self._faults("overdraw", t):
                want = np.where(self._ports_of(f.target) & (want > 0), want * f.factor, want)
            # An EV follows every reduction of its pilot, `lag` seconds later; raises under 0.5 A may wait.
            # A change that is already on its way is not postponed by a newer one, only made lower.
            due = t >= switch_at
            current[due] = nxt[due]
            pending = ~due
            nxt = np.where(pending, np.minimum(nxt, want), nxt)
            resched = due & ((want < current - 1e-9) | (want > current + 0.5))
            nxt[resched] = want[resched]
            switch_at[resched] = t + lag[resched]
            current = np.where(present, current, 0.0)
            # ---- energy
            wh = current * volts * dt / 3600.0
            delivered += wh
            need = np.maximum(need - wh, 0.0)
            for full in np.flatnonzero(present & (need <= 0) & ~done):
                done[full] = True
                self._status(int(full), "SuspendedEV", t)
            step_wh = float(wh.sum())
            bill.record(self.clock0 + t, self.clock0 + t + dt, step_wh * 3.6 / dt)
            ev_wh += step_wh
            cost += step_wh / 1000.0 * prices[min(int(t // 900), prices.size - 1)]
            if sc.pv_surplus is not None:
                surplus_w = float(sc.pv_surplus(t)[:2].mean()) * 240.0
                pv_wh += min(step_wh, surplus_w * dt / 3600.0)
            # ---- meter samples reach the controller
            if t >= next_sample:
                next_sample = t + self.meter_s
                per_line = current[:, None] * mask
                for f in self._faults("meter-low", t):
                    per_line = np.where(self._ports_of(f.target)[:, None], per_line * f.factor, per_line)
                self.ctrl.ingest_samples(per_line, delivered, t, np.flatnonzero(present))
                news = True
                self._guard_sample(t, float((per_line.max(axis=1) * volts).sum()) / 1000.0)
                if self.recorder is not None:
                    self.recorder.sample(t, per_line, delivered, np.flatnonzero(present))
            # ---- ground truth: every node and line against its real limit
            per_line = current[:, None] * mask
            load = np.bincount(rows, weights=per_line[cols, rows % 3], minlength=tree.n_nodes * 3)
            lim_flat = true_limits.reshape(-1)
            over = np.maximum(load - lim_flat, 0.0)
            over_as += float(over.sum()) * dt
            if over.any():
                k = int(over.argmax())
                self.over_by_node[tree.node_ids[k // 3]] = (
                    self.over_by_node.get(tree.node_ids[k // 3], 0.0) + float(over.sum()) * dt
                )
            over_now = over > 1e-6
            ended = (over_run > 0) & ~over_now
            self.excursion_log.extend((t - float(d), float(d)) for d in over_run[ended])
            over_run = np.where(over_now, over_run + dt, 0.0)
            excursions += int(np.count_nonzero(over_now & (over_run > EXCURSION_S) & (over_run - dt <= EXCURSION_S)))
            self.longest_excursion_s = max(self.longest_excursion_s, float(over_run.max(initial=0.0)))
            uncontrolled_peak = max(
                uncontrolled_peak,
                float((load / np.where(np.isfinite(lim_flat), np.maximum(lim_flat, 1e-9), np.inf)).max(initial=0.0)),
            )
            if dr_pending:
                ev = sc.dr[0]
                i = tree.node_index[ev.node]
                if np.all(load.reshape(-1, 3)[i] <= ev.amps + 1e-6):
                    t_comply.extend(t - s for s in dr_pending)
                    dr_pending.clear()
            unmet = present & (need > 0) & (t >= ready_at) & (target < np.minimum(ev_max, port_max) - 0.05)
            if unmet.any():
                congested_steps += 1
                ratio = load.reshape(-1, 3)[upstream] / np.where(
                    np.isfinite(true_limits[upstream]), np.maximum(true_limits[upstream], 1e-9), np.inf
                )
                util_sum += float(ratio.max(initial=0.0))
            if progress is not None and int(t) % 3600 == 0:
                progress(t / sc.duration_s)
            if wake or upd.any() or resched.any():
                last_move = t
            # ---- a steady site (nothing in flight, no limit moving) is replayed in one leap to the next change
            k = 0
            if (
                can_leap
                and t - last_move >= self.quiet_s
                and present.any()
                and not over_now.any()
                and self._guard_slack(t, load)
            ):
                steady = (
                    (pilot == target).all()
                    and (nxt == current).all()
                    and bool(
                        ((want >= current) & (want <= current + 0.5) & ((want > 0) | (current == 0)))[present].all()
                    )
                )
                if steady:
                    horizon = min(
                        t + dt + self.leap_s,
                        sc.duration_s,
                        arrivals[ai].arrival_s if ai < len(arrivals) else math.inf,
                        min((a.session.departure_s for a in active.values()), default=math.inf),
                        float(ready_at[present & (ready_at > t)].min(initial=math.inf)),
                        (math.floor((t + dt) / PRICE_BUCKET_S) + 1) * PRICE_BUCKET_S,
                        month_starts[0] if month_starts else math.inf,
                        self._block_end(t + dt),
                    )
                    floor_need = np.where(
                        current > 0.1 * ev_max + 1e-9,
                        np.maximum(0.15 * requested, 1.0) * current / np.maximum(ev_max, 1e-9),
                        0.0,
                    )
                    k = steady_steps(t + dt, dt, horizon, present, current, need, floor_need, volts)
            if k > 1:
                t = self._leap(t + dt, k, dt, current, mask, volts, delivered, need, present, progress, next_sample)
                span_wh = float((current * volts).sum()) * k * dt / 3600.0
                bill.record(self.clock0 + t - k * dt, self.clock0 + t, float((current * volts).sum()) / 1000.0)
                ev_wh += span_wh
                cost += span_wh / 1000.0 * prices[min(int((t - dt) // PRICE_BUCKET_S), prices.size - 1)]
                if unmet.any():
                    congested_steps += k
                    util_sum += k * float(ratio.max(initial=0.0))
                next_sample = t - dt + self.meter_s
                news = True  # the leap ended with a meter sample: the controller decides on it before any next leap
                continue
            # ---- skip idle time (nothing plugged in, nothing happening) in one jump
            if not present.any() and ai < len(arrivals) and not sc.dr and sc.pv_surplus is None:
                t = max(t + dt, math.floor(arrivals[ai].arrival_s / dt) * dt)
            else:
                t += dt
        for a in active.values():
            a.delivered_wh = delivered[a.index]
            finished.append(a)
        self._month_peaks = [*month_peaks, bill.peak_kw]
        wall = time.perf_counter() - wall0
        return self._metrics(
            finished, over_as, excursions, cycle_times, congested_steps, util_sum, cost, ev_wh, pv_wh, t_comply, wall
        )

    def _block_end(self, t: float) -> float:
        """Scenario time at which the guard's current demand block ends (inf without a guard)."""
        if self.demand is None:
            return math.inf
        interval = self.demand.guard.rule.interval_s
        return (math.floor((self.clock0 + t) / interval) + 1) * interval - self.clock0

    def _guard_sample(self, t: float, kw: float) -> None:
        """The demand guard's meter: the EVs' power from the chargers' samples."""
        if self.demand is not None:
            self.demand.measure(t, kw)

    def _guard_slack(self, t: float, load: np.ndarray) -> bool:
        """True when a leap cannot cross what the demand guard allows (no guard, or well under it to the block's end).

        In a block, a steady load under the allowed power only makes the allowance grow; a leap therefore
        stops at the block's end (see the horizon) and needs the service rows 1 A under the cap now.
        """
        if self.demand is None:
            return True
        if self.demand.guard.rule.rolling or self.limits.demand_target_kw is None:
            return False
        i = self.tree.node_index.get(ROOT)
        if i is None:
            return True
        cap = self.limits.limits(self._at(t))[i]
        return bool((load.reshape(-1, 3)[i] < cap - 1.0).all())

    def _leap(
        self,
        t_next: float,
        k: int,
        dt: float,
        current: np.ndarray,
        mask: np.ndarray,
        volts: np.ndarray,
        delivered: np.ndarray,
        need: np.ndarray,
        present: np.ndarray,
        progress: Callable[[float], None] | None,
        next_sample: float,
    ) -> float:
        """Replay `k` steady steps from `t_next` at once; returns the time of the next ordinary step.

        Currents are constant, so energy is exact; the recorder still gets a sample every meter interval
        and the controller one sample at the end, as if it had watched the whole stretch.
        """
        self.leaps += 1
        rate = current * volts / 3600.0  # Wh per second
        per_line = current[:, None] * mask
        ports = np.flatnonzero(present)
        t_last = t_next + (k - 1) * dt
        if self.recorder is not None:
            base = delivered.copy()
            s = t_next + max(math.ceil((next_sample - t_next) / dt - 1e-9), 0) * dt
            while s <= t_last:
                self.recorder.sample(s, per_line, base + rate * (s - t_next + dt), ports)
                s += math.ceil(self.meter_s / dt - 1e-9) * dt
        wh = rate * k * dt
        delivered += wh
        np.maximum(need - wh, 0.0, out=need)
        self.ctrl.ingest_samples(per_line, delivered, t_last, ports)
        self._guard_sample(t_last, float((current * volts).sum()) / 1000.0)
        if progress is not None and int(t_last // 3600) > int((t_next - dt) // 3600):
            progress(t_last / self.scenario.duration_s)
        return t_last + dt

    def _metrics(
        self,
        sessions: list[_Active],
        over_as: float,
        excursions: int,
        cycle_times: list[float],
        congested_steps: int,
        util_sum: float,
        cost: float,
        ev_wh: float,
        pv_wh: float,
        t_comply: list[float],
        wall: float,
    ) -> dict[str, Any]:
        req = np.array([a.session.energy_wh for a in sessions]) if sessions else np.zeros(0)
        got = np.array([min(a.delivered_wh, a.session.energy_wh) for a in sessions]) if sessions else np.zeros(0)
        shares = got / np.maximum(req, 1e-9)
        equal = np.array([a.session.weight == 1.0 for a in sessions], dtype=bool)
        x = shares[equal] if equal.size else shares
        jain = float(x.sum() ** 2 / (x.size * (x**2).sum())) if x.size and (x**2).sum() > 0 else 1.0
        ct = np.array(cycle_times) if cycle_times else np.zeros(1)
        return {
            "scenario": self.scenario.name,
            "policy": self.policy_name,
            "ports": self.tree.n_ports,
            "sessions": len(sessions),
            "site_hours": self.scenario.duration_s / 3600.0,
            "over_limit_As": round(over_as, 3),
            "excursions_gt_15s": excursions,
            "longest_excursion_s": round(self.longest_excursion_s, 1),
            "energy_delivered_pct": round(100.0 * float(got.sum() / max(req.sum(), 1e-9)), 2),
            "energy_delivered_kwh": round(ev_wh / 1000.0, 2),
            "sessions_fully_served": int(np.count_nonzero(got >= req - 100.0)),
            "jain_fairness": round(jain, 4),
            "utilisation_under_congestion": round(util_sum / congested_steps, 4) if congested_steps else None,
            "setpoint_changes_per_session": round(float(np.mean([a.changes for a in sessions])), 2)
            if sessions
            else 0.0,
            "pause_resume_per_session": round(float(np.mean([a.pauses for a in sessions])), 3) if sessions else 0.0,
            "energy_cost": round(float(cost), 2),
            "pv_share_pct": round(100.0 * pv_wh / ev_wh, 1) if self.scenario.pv_surplus is not None and ev_wh else None,
            "t_comply_s": round(max(t_comply), 1) if t_comply else None,
            "cycle_ms_p50": round(float(np.percentile(ct, 50)) * 1000, 3),
            "cycle_ms_p99": round(float(np.percentile(ct, 99)) * 1000, 3),
            "cycles": len(cycle_times),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
            "wall_s": round(wall, 2),
            "leaps": self.leaps,
            "demand_managed": self.demand is not None,
            "demand_peak_kw_by_month": [round(kw, 2) for kw in self._month_peaks],
            "demand_charge": round(sum(self._month_peaks) * self._demand_rate, 2),
            "demand_raises": len(self.demand.guard.raises) if self.demand is not None else None,
            "over_limit_As_by_node": {k: round(v, 1) for k, v in sorted(self.over_by_node.items())},
        }


def run_replay(
    scenario: Scenario, policy: str = "fair", progress: Callable[[float], None] | None = None
) -> dict[str, Any]:
    return Replay(scenario, policy).run(progress)
