"""The controller's memory between cycles: what each port is doing, what we told it, what it accepted.

This is the synchronous heart shared by the live loop (`evsite.control.loop`) and the replay
simulator (`evsite.control.replay`): both feed it events and ask it for setpoints, so a replayed
day exercises exactly the code that runs a real site. State is kept in numpy arrays indexed like
`tree.ports`, so 10,000 ports cost a few vector operations per cycle.

Rules it enforces:
- a command counts only once the charger accepted it, and a reduction counts only once a meter
  sample taken after it shows the EV followed (until then the port may draw its old, higher value);
- a charger that rejected a profile or is offline counts at its maximum (`fixed`), and the others
  are reduced to make room; it is retried after `retry_s`;
- a port whose last reading failed the OCPP plausibility gate (`MeterSample.implausible`) counts at its
  circuit's limit and keeps its setpoint until a plausible reading arrives (#14);
- an EV that draws clearly less than offered (taper, on-board limit) is capped at its draw plus a
  margin, and a 3φ port whose car draws on one phase counts only on that line;
- a port we paused stays paused for `min_pause_s` (contactor wear);
- closed loop: a port whose sample, taken after the response window (`settle_s`), shows it drawing
  more than its setpoint allows (× the largest draw/pilot ratio a car may have) is non-compliant:
  counted at what it draws, so the others are lowered in the same cycle, named in an alert and
  escalated (`escalation`): lowered, paused, then suspended (ChangeAvailability Inoperative) and stopped
  (RemoteStopTransaction) when the steps say so, each decided here once per escalation and sent by the
  loop (`escalation_actions`, `record_escalation`); a car drawing a few % over its pilot has that ratio
  learned and reserved;
- a site meter on a node that reads more than the chargers under it report is believed: the gap is
  taken off that node and every node above it (an under-reporting charger or an unmetered load).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from evsite.control.allocate import J1772_MIN_A, Demand, allocate_fair, reserved_current
from evsite.control.tree import LINES, ConstraintTree
from evsite.runtime.events import (
    ChargerConnected,
    ConnectorStatus,
    Event,
    MeterSample,
    SetpointResult,
    TransactionEvent,
)
from evsite.site import topology
from evsite.site.model import Site

WANTS_ENERGY = {"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Occupied"}
NO_CURRENT = {"Available", "Preparing", "Finishing", "Reserved", "Unavailable", "Faulted"}
"""Statuses in which a connector's contactor is open (OCPP 1.6 §4.9): no current flows, whatever was sampled."""


@dataclass
class Needs:
    """What the optimiser knows about each session (nan where unknown)."""

    requested_wh: np.ndarray  # energy the EV asked for in this session
    departure_s: np.ndarray  # absolute time (same clock as `now`)
    volts: np.ndarray  # volts per ampere of setpoint (V_LL for 1φ 208/240 V, √3·V_LL for 3φ)
    arrival_s: np.ndarray  # when the EV plugged in (first come, first served baselines)
    delivered_wh: np.ndarray  # measured energy so far in the session

    @property
    def remaining_wh(self) -> np.ndarray:
        return np.maximum(self.requested_wh - self.delivered_wh, 0.0)


Policy = Callable[[ConstraintTree, Demand, np.ndarray, float, Needs], np.ndarray]


def fair_policy(tree: ConstraintTree, demand: Demand, limits: np.ndarray, now: float, needs: Needs) -> np.ndarray:
    return allocate_fair(tree, demand, limits)


@dataclass
class ControllerSettings:
    follow_margin_a: float = 2.0  # headroom over measured draw, covers an EV ramping within a cycle
    taper_tolerance_a: float = 2.0  # drawing this much below the offer counts as "not taking it"
    settle_s: float = 15.0  # time an EV may take to follow a new pilot
    pilot_update_s: float = 5.0  # the EVSE changes its PWM at most this often
    raise_deadband_a: float = 1.0  # smaller raises wait until the port has held its value for settle_s
    min_pause_s: float = 60.0
    retry_s: float = 30.0
    stale_sample_s: float = 120.0  # a port whose meter went quiet counts at its ceiling
    # J1772 cars may draw a little over the pilot; above this ratio the port is disobeying us.
    overdraw_ratio_max: float = 1.15
    ratio_raise_step_a: float = 6.0  # a port with a learned ratio rises at most this much per cycle
    # What to do with a non-compliant port, one step per `escalate_every_s` from its detection:
    # "lower" (send it the J1772 minimum), "pause" (send 0), "suspend" (ChangeAvailability Inoperative),
    # "stop" (RemoteStopTransaction), "report" (alert for an operator action). From "pause" on it is sent 0.
    escalation: tuple[str, ...] = ("lower", "pause", "report")
    escalate_every_s: float = 60.0
    # "now": Inoperative is sent when the step is reached (OCPP 1.6 §5.2: a charger with a running
    # transaction answers Scheduled and applies it when the session ends); "after-session": sent once the
    # port's session has ended, so a car that may still be charging is not told its charger is going away.
    suspend_when: Literal["now", "after-session"] = "now"
    meter_fresh_s: float = 10.0  # a node meter reading older than this is not used
    meter_gap_alert_a: float = 3.0  # a node meter this far above the chargers' reports raises an alert


@dataclass(frozen=True)
class EscalationAction:
    """A command the escalation wants sent to a non-compliant charger (the loop sends it, once)."""

    port: int
    action: Literal["suspend", "stop"]
    charge_point_id: str
    connector_id: int
    transaction_id: int | None = None


ANSWERED = {"Accepted", "Scheduled"}
ESCALATION_COMMANDS = {"suspend": "ChangeAvailability Inoperative", "stop": "RemoteStopTransaction"}
"""A ChangeAvailability / RemoteStopTransaction answer that means the charger will do it."""


@dataclass
class Controller:
    site: Site
    tree: ConstraintTree
    policy: Policy = fair_policy
    settings: ControllerSettings = field(default_factory=ControllerSettings)

    def __post_init__(self) -> None:
        n = self.tree.n_ports
        self.status = ["Unknown"] * n
        self.known = np.zeros(n, dtype=bool)  # a status arrived; until then the port may be drawing anything
        self.present = np.zeros(n, dtype=bool)
        self.suspended_ev = np.zeros(n, dtype=bool)
        self.measured = np.zeros((n, 3))
        self.measured_at = np.full(n, -math.inf)
        self.sent = np.zeros(n)  # last value the charger accepted
        # Highest value the port may be following. Unknown at start (e.g. after a controller restart):
        # assume its maximum until a meter sample shows otherwise.
        self.ceiling = np.array([p.max_a for p in self.tree.ports])
        self.changed_at = np.full(n, -math.inf)
        self.unresponsive = np.zeros(n, dtype=bool)
        self.failed_at = np.full(n, -math.inf)
        # Not heard from yet: a charger that never reached us may be charging unmanaged, at its maximum.
        self.offline = np.ones(n, dtype=bool)
        self.paused_at = np.full(n, -math.inf)
        self.session_wh = np.zeros(n)
        self.start_wh = np.full(n, np.nan)
        self.needs = Needs(np.full(n, np.nan), np.full(n, np.nan), self._volts(), np.full(n, np.nan), np.zeros(n))
        self.port_max = np.array([p.max_a for p in self.tree.ports])
        self.weight = np.ones(n)
        self._by_cp: dict[str, list[int]] = {}
        for i, port in enumerate(self.tree.ports):
            self._by_cp.setdefault(port.charge_point_id, []).append(i)
        self.last_setpoints = np.zeros(n)
        self.inflight = np.zeros(n, dtype=bool)
        # Accepted a setpoint from this controller since it (re)connected. After a restart a charger whose
        # car arrived during the outage may not have told us its status: it must get a setpoint anyway,
        # or it keeps whatever it had (an expired lift, its fail-safe share) while we count it at its maximum.
        self.dispatched = np.zeros(n, dtype=bool)
        self.ev_cap = np.full(n, np.inf)  # learned cap of an EV that takes less than offered
        self._line_mask = self.tree.line_mask()
        self.ratio = np.ones(n)  # learned draw / pilot of the car on each port (≥ 1)
        self.ratio_top = np.zeros(n)  # the most a port with a ratio > 1 may be given next (its reserve covers it)
        self.noncompliant = np.zeros(n, dtype=bool)
        self.noncompliant_since = np.full(n, np.nan)
        self.tx_id = np.full(n, -1, dtype=np.int64)  # the running transaction (-1: none known)
        # Per port, the escalation commands decided in this escalation and their answers ("sending" until one).
        self.escalated: list[dict[str, str]] = [{} for _ in range(n)]
        self.suspend_due = np.zeros(n, dtype=bool)  # Inoperative waits for the session to end ("after-session")
        # Ports the escalation set (or is setting) Inoperative, with the answer: outlives the session and its
        # escalation, until the connector reports Available again (an operator set it Operative).
        self.suspension: dict[int, str] = {}
        self.flagged = np.zeros(n, dtype=bool)  # disobeyed once this session: unconfirmed reductions count at once
        # The response window runs from the last reduction (a raise needs no time to follow). Reductions that
        # come faster than the car follows must not keep it from being judged: the oldest one it has not
        # followed yet (`follow_from`, `follow_value`) has its own window, which later ones do not restart.
        self.judge_from = np.full(n, np.inf)  # inf: no setpoint accepted yet, nothing to judge against
        self.follow_from = np.full(n, np.inf)
        self.follow_value = np.zeros(n)
        self.raised_to = np.zeros(n)  # the last raise we sent, and when (a climb towards it is no disobedience)
        self.raised_at = np.full(n, -math.inf)
        # Meters that see the EVs on a tree node and feed no building signal (that one already holds the gap).
        metered_buildings = {load.metered_by for load in self.site.building_loads}
        self.node_meters = {
            m.id: self.tree.node_index[m.measures]
            for m in self.site.meters
            if m.role.value in ("site", "panel", "evse")
            and m.measures in self.tree.node_index
            and m.id not in metered_buildings
        }
        self.node_meter = np.full((self.tree.n_nodes, 3), np.nan)  # latest reading per (node, line)
        self.node_meter_at = np.full(self.tree.n_nodes, -math.inf)
        self.meter_gap = np.zeros((self.tree.n_nodes, 3))  # meter − what we count for the chargers under it
        self.report_gap = np.zeros((self.tree.n_nodes, 3))  # meter − what the chargers under it report
        self.report_gap_since = np.full((self.tree.n_nodes, 3), np.inf)
        # #14: a port whose last reading was implausible counts at its circuit's limit (the tree's
        # continuous limit of its circuit node, never below the port's own maximum) until a plausible one.
        self.implausible = np.zeros(n, dtype=bool)
        self.circuit_a = np.array([self._circuit_limit(p) for p in range(n)])

    def _circuit_limit(self, p: int) -> float:
        port = self.tree.ports[p]
        circuits = [n for n in self.tree.ancestors[p] if self.tree.kinds[n] == "circuit"]
        limits = [float(self.tree.limits[n, list(port.lines)].max()) for n in circuits]
        return max([port.max_a, *(v for v in limits if math.isfinite(v))])

    def _volts(self) -> np.ndarray:
        system = self.site.service.system
        lines = [3 if p.three_phase else min(len(p.lines), 2) for p in self.tree.ports]
        return np.array([topology.watts_per_amp(system, n) for n in lines])

    # ------------------------------------------------------------------ observations

    def port(self, charge_point_id: str, connector_id: int) -> int | None:
        index = self.tree.port_index.get((charge_point_id, connector_id))
        if index is None and connector_id == 0:
            ports = self._by_cp.get(charge_point_id, [])
            index = ports[0] if len(ports) == 1 else None
        return index

    def observe(self, event: Event, now: float) -> bool:
        """Take one event into account; True if the next cycle should come now rather than later."""
        if isinstance(event, ConnectorStatus):
            p = self.port(event.charge_point_id, event.connector_id)
            if p is None:
                return False
            self.status[p] = event.status
            self.known[p] = True
            if event.status == "Available" and self.suspension.get(p) in ANSWERED:
                del self.suspension[p]
            self.offline[self._by_cp[event.charge_point_id]] = False
            was = bool(self.present[p])
            self.present[p] = event.status in WANTS_ENERGY
            self.suspended_ev[p] = event.status == "SuspendedEV"
            if not self.present[p]:
                self.needs.requested_wh[p] = np.nan
                self.needs.departure_s[p] = np.nan
            if event.status in NO_CURRENT:
                self.measured[p] = 0.0  # contactor open: its last sample no longer describes it
            return was != bool(self.present[p])
        if isinstance(event, MeterSample):
            if event.source in self.node_meters:
                self._node_sample(self.node_meters[event.source], event, now)
                return False
            p = self.port(event.source, event.connector_id)
            if p is None:
                return False
            self.offline[self._by_cp[event.source]] = False
            if event.implausible:  # #14: unknown draw; measured 0 keeps meter − EV building estimates conservative
                self.implausible[p] = True
                self.measured[p] = 0.0
                self.measured_at[p] = -math.inf
                return True
            was_implausible, self.implausible[p] = bool(self.implausible[p]), False
            self._sample(p, event, event.at.timestamp())
            return was_implausible
        if isinstance(event, TransactionEvent):
            p = self.port(event.charge_point_id, event.connector_id)
            if p is None:
                return False
            self.ratio[p] = 1.0  # a new car, or none: learn its ratio afresh
            self.flagged[p] = False
            self._clear_noncompliant(p)
            self.tx_id[p] = event.transaction_id if event.kind == "started" else -1
            if event.kind == "started":
                self.needs.arrival_s[p] = event.at.timestamp()
                self.start_wh[p] = event.meter_wh
                self.session_wh[p] = 0.0
                self.present[p] = True
            else:
                self.start_wh[p] = np.nan
                self.measured[p] = 0.0  # StopTransaction: the charger has opened its contactor
            return True
        if isinstance(event, ChargerConnected):
            ports = self._by_cp.get(event.charge_point_id, [])
            self.offline[ports] = not event.connected
            if not event.connected:  # #14: its last status and sample no longer describe it
                for p in ports:
                    self.status[p] = "Unknown"
                self.measured[ports] = 0.0
                self.measured_at[ports] = -math.inf
            self.dispatched[ports] = False  # back online: it gets a setpoint whatever it was told before
            return True
        if isinstance(event, SetpointResult) and not event.accepted:
            p = self.port(event.charge_point_id, event.connector_id)
            if p is not None:
                self.mark_failed(p, now)
            return True
        return False

    def _sample(self, p: int, sample: MeterSample, at: float) -> None:
        port = self.tree.ports[p]
        per_line = np.zeros(3)
        if sample.current_a:
            lines = tuple(LINES[k] for k in port.lines)  # the charger's own L1/L2/L3 → its rotated site lines
            for name, amps in topology.rotate(sample.current_a, lines, port.three_phase).items():
                per_line[topology.LINE_INDEX[name]] = amps
        elif sample.power_w is not None:
            per_line[list(port.lines)] = max(0.0, sample.power_w) / self.needs.volts[p]
        else:
            return
        previous = self.measured[p].max() if np.isfinite(self.measured_at[p]) else np.inf
        self.measured[p] = per_line
        self.measured_at[p] = at
        if sample.energy_wh is not None and not np.isnan(self.start_wh[p]):
            self.session_wh[p] = max(0.0, sample.energy_wh - self.start_wh[p])
        self._judge(np.array([p]), at, np.array([previous]))

    def _judge(self, ports: np.ndarray, at: float, previous: np.ndarray) -> None:
        """Confirm followed reductions, mark ports drawing beyond their setpoint, learn draw/pilot ratios.

        A reduction counts once a sample taken a PWM update after it shows the EV below the new value
        (the pilot itself changes within one PWM update, so later the EV cannot climb back above it).
        "Below" allows the overdraw a car may have: a car 10 % over its pilot still followed it. A sample
        taken after the whole response window that is still above that is disobedience; so is a draw that
        rises above a pilot the EVSE has had for a PWM update (`previous`: the port's last sample, inf if
        none), at once: a car that follows never climbs over its pilot.
        """
        s = self.settings
        drawn = self.measured[ports].max(axis=1)
        sent = self.sent[ports]
        allowed = sent * s.overdraw_ratio_max + 0.5
        after_update = at >= self.changed_at[ports] + s.pilot_update_s
        confirm = (self.ceiling[ports] > sent) & after_update & (drawn <= allowed)
        self.ceiling[ports[confirm]] = sent[confirm]
        self.follow_from[ports[drawn <= allowed]] = np.inf  # it follows the latest value: nothing outstanding
        settled = at >= self.judge_from[ports] + s.settle_s
        older = ~settled & (at >= self.follow_from[ports] + s.settle_s)  # past the oldest outstanding one's window
        allowed = np.where(older, np.maximum(sent, self.follow_value[ports]) * s.overdraw_ratio_max + 0.5, allowed)
        judged = (settled | older) & self.present[ports]
        # A raise we sent within the window may still be reaching the car (a reduction may have followed it).
        recent = np.where(at - self.raised_at[ports] < s.settle_s, self.raised_to[ports], 0.0)
        climb_allowed = np.maximum(sent, recent) * s.overdraw_ratio_max + 0.5
        climbed = (
            self.present[ports]
            & ~self.inflight[ports]
            & np.isfinite(self.changed_at[ports])
            & after_update
            & (drawn > climb_allowed)
            & (drawn > previous + 1.0)
        )
        judged = judged | climbed
        over = judged & (drawn > allowed)
        newly = ports[over & ~self.noncompliant[ports]]
        self.noncompliant[newly] = True
        self.noncompliant_since[newly] = at
        self.flagged[newly] = True
        obeys = ports[judged & ~over & self.noncompliant[ports]]
        for p in obeys:
            self._clear_noncompliant(int(p))
        # At its pilot (not tapering below it): learn how far over the pilot this car draws.
        at_pilot = settled & judged & ~over & (sent >= J1772_MIN_A) & (drawn >= sent - 0.5)
        learn = ports[at_pilot]
        if learn.size:
            # 0.1 A off the reading: a meter's last digit alone must not reserve 2 % of a 48 A port.
            seen = np.minimum((drawn[at_pilot] - 0.1) / sent[at_pilot], s.overdraw_ratio_max)
            self.ratio[learn] = np.maximum(self.ratio[learn], seen)

    def _clear_noncompliant(self, p: int) -> None:
        self.noncompliant[p] = False
        self.noncompliant_since[p] = np.nan
        self.escalated[p] = {}

    def _node_sample(self, node: int, sample: MeterSample, now: float) -> None:
        """A site meter's reading on a tree node: the truth the chargers' own reports are checked against."""
        if not sample.current_a:
            return
        reading = np.full(3, np.nan)
        for k, name in enumerate(LINES):
            if name in sample.current_a:
                reading[k] = abs(sample.current_a[name])
        self.node_meter[node] = reading
        self.node_meter_at[node] = now  # on the controller's clock (the replay's differs from wall time)

    def ingest_samples(self, per_line: np.ndarray, session_wh: np.ndarray, at: float, ports: np.ndarray) -> None:
        """Meter samples for many ports at once (the replay's fast path; same rules as `observe`)."""
        previous = np.where(np.isfinite(self.measured_at[ports]), self.measured[ports].max(axis=1), np.inf)
        self.measured[ports] = per_line[ports]
        self.measured_at[ports] = at
        self.session_wh[ports] = session_wh[ports]
        self._judge(ports, at, previous)

    def mark_failed(self, p: int, now: float) -> None:
        self.unresponsive[p] = True
        self.failed_at[p] = now

    def begin_send(self, p: int, value: float) -> None:
        """A setpoint is on its way: the charger may apply it before it answers, so count it now."""
        self.inflight[p] = True
        self.ceiling[p] = max(self.ceiling[p], value)

    def record_result(self, p: int, value: float, accepted: bool, now: float) -> None:
        """What the charger answered to a setpoint we sent."""
        self.inflight[p] = False
        if not accepted:
            self.mark_failed(p, now)
            return
        self.dispatched[p] = True
        self.unresponsive[p] = False
        if value > self.sent[p]:
            self.raised_to[p], self.raised_at[p] = value, now
        if value < self.sent[p] or not np.isfinite(self.judge_from[p]):  # a reduction: the window restarts
            self.judge_from[p] = now
            if not np.isfinite(self.follow_from[p]):
                self.follow_from[p], self.follow_value[p] = now, value
        if value > self.ceiling[p]:
            self.ceiling[p] = value
        if value == 0.0 and self.present[p]:
            self.paused_at[p] = now
        self.sent[p] = value
        self.changed_at[p] = now

    def uncertain(self, now: float) -> np.ndarray:
        """Ports whose EV current may differ from the last sample: a setpoint in flight, a change not yet
        confirmed by a sample taken a pilot update after it, or no recent sample at all."""
        s = self.settings
        unconfirmed = self.measured_at < self.changed_at + s.pilot_update_s
        return self.present & (self.inflight | unconfirmed | (now - self.measured_at > s.stale_sample_s))

    def ev_current_bounds(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """Per port and site line (ports × 3): the least and the most each EV may be drawing now.

        Both are the last sample where it is still valid. Where it is not (`uncertain`), the EV may
        be anywhere between the lower and the higher of that sample and the pilots it may be following
        (on every line of its port): its accepted setpoint and the highest one not yet confirmed.
        """
        lower, upper = self.measured.copy(), self.measured.copy()
        moving = self.uncertain(now)
        if moving.any():
            mask = self._line_mask[moving]
            lower[moving] = np.minimum(lower[moving], np.where(mask, self.sent[moving, None], 0.0))
            upper[moving] = np.maximum(upper[moving], np.where(mask, self.ceiling[moving, None], 0.0))
        return lower, upper

    # ------------------------------------------------------------------ decisions

    def demand(self, now: float) -> Demand:
        s = self.settings
        d = Demand.empty(self.tree)
        d.present = self.present.copy()
        drawn = self.measured.max(axis=1)
        fresh = now - self.measured_at <= s.stale_sample_s
        # Taper / on-board limit: offered clearly more than it takes, after it had time to follow. The cap
        # sticks (no flapping); when the EV uses all of it, it is probed upwards a step per settle time.
        settled = fresh & (now - self.changed_at >= s.settle_s) & (self.measured_at >= self.changed_at + s.settle_s)
        tapering = settled & (drawn >= 1.0) & (drawn < self.sent - s.taper_tolerance_a)
        using_all = settled & np.isfinite(self.ev_cap) & (drawn >= self.sent - 0.5)
        headroom = max(s.follow_margin_a, s.taper_tolerance_a + 1.0)  # above the taper test: no flapping
        new_cap = np.maximum(drawn + headroom, J1772_MIN_A)
        lower = tapering & (new_cap <= self.ev_cap - s.taper_tolerance_a)  # in steps, not every sample
        self.ev_cap = np.where(lower, new_cap, self.ev_cap)
        self.ev_cap = np.where(using_all, self.ev_cap + 2 * s.follow_margin_a, self.ev_cap)
        self.ev_cap = np.where(self.ev_cap >= self.port_max, np.inf, self.ev_cap)
        self.ev_cap = np.where(self.present, self.ev_cap, np.inf)
        d.ev_max = self.ev_cap.copy()
        d.ev_max = np.where(self.suspended_ev, J1772_MIN_A, d.ev_max)
        # A port we paused stays paused for a while.
        recently_paused = (now - self.paused_at < s.min_pause_s) & (self.sent == 0)
        d.ev_max = np.where(recently_paused, 0.0, d.ev_max)
        # 3φ port, car drawing on its phase A only: count it on that line alone.
        for p in np.flatnonzero(fresh & (drawn >= J1772_MIN_A)):
            port = self.tree.ports[p]
            if port.three_phase:
                lines = self.measured[p] >= 1.0
                if lines.sum() == 1:
                    d.line_mask[p] = lines
        d.weight = self.weight.copy()
        measured_now = np.where(fresh, drawn, self.ceiling)
        steady = fresh & (drawn >= 1.0) & (self.measured_at >= self.changed_at + s.settle_s)
        d.reserved = reserved_current(measured_now, self.ceiling, s.follow_margin_a, steady)
        d.reserved = np.where(self.present | ~self.known, d.reserved, 0.0)  # an empty connector draws nothing
        # Drawing more than any pilot we gave it (an EV overdrawing, a charger ignoring us): the excess is
        # reserved on its lines, so the others make room, while the port keeps its own setpoint.
        # (Beyond the learned ratio: that part is reserved below, steadily rather than sample by sample.)
        over = np.maximum(drawn - np.maximum(self.ceiling, self.sent) * self.ratio, 0.0)
        d.excess = np.where(fresh & self.present & (over > 0.5), over + s.follow_margin_a, 0.0)
        # A car that draws a known ratio r over its pilot takes (r − 1)·x more of whatever x it is given. Its
        # next setpoint is capped at `top` and (r − 1)·top reserved on its lines, so the reserve covers it;
        # `top` climbs by `ratio_raise_step_a` a cycle, so a capped port reaches its share within seconds.
        # `top` moves only when the port uses it all or is far below it: a reserve that followed every
        # setpoint would feed back into the others' shares and make every setpoint jitter.
        over_pilot = self.present & (self.ratio > 1.0)
        step = s.ratio_raise_step_a
        grow = self.sent >= self.ratio_top - 1.0
        shrink = self.sent < self.ratio_top - 2 * step
        fresh_top = np.minimum(np.maximum(self.sent, J1772_MIN_A) + step, self.port_max)
        self.ratio_top = np.where(over_pilot & (grow | shrink), fresh_top, self.ratio_top)
        top = self.ratio_top
        d.ev_max = np.where(over_pilot, np.minimum(d.ev_max, top), d.ev_max)
        d.excess = np.where(over_pilot, np.maximum(d.excess, (self.ratio - 1.0) * top), d.excess)
        # Offline: we cannot know what it does. Rejected: it follows whatever it had, at worst its maximum.
        worst = self.offline | self.implausible | (self.unresponsive & self.present)
        # #14: an implausible reading counts at the circuit's limit, never as headroom.
        d.fixed = np.where(worst, np.where(self.implausible, self.circuit_a, self.port_max), np.nan)
        # Non-compliant: it takes what it takes, whatever we send; count it there (plus a cycle's ramp)
        # and the others are lowered to make room in this very cycle.
        disobeys = self.noncompliant & self.present & ~worst
        took = np.maximum(drawn + s.follow_margin_a, self.sent)
        d.fixed = np.where(disobeys, took, d.fixed)
        # A port that has disobeyed before (late, ignoring) is counted at the old pilot of a reduction it has
        # not confirmed yet, from the moment the reduction leaves: the others make room now, not after the window.
        # It stays at the J1772 minimum for the rest of the session (when the escalation lowers at all):
        # raising a charger that applies changes late or not at all only makes the others chase it.
        if "lower" in s.escalation:
            d.ev_max = np.where(self.flagged & self.present, np.minimum(d.ev_max, J1772_MIN_A), d.ev_max)
        late = self.flagged & self.present & ~worst & (self.ceiling > self.sent + 0.05)
        d.fixed = np.where(late, np.fmax(d.fixed, self.ceiling), d.fixed)
        disobeys = disobeys | late
        d.reserved = np.where(disobeys, 0.0, d.reserved)  # counted in `fixed` already
        d.excess = np.where(disobeys, 0.0, d.excess)
        d.previous = self.sent.copy()
        d.rank = self.session_wh.copy()
        return d

    def counted(self, now: float) -> np.ndarray:
        """Per port and site line: the most we count each port as drawing (its upper bound, or `fixed`)."""
        _, upper = self.ev_current_bounds(now)
        mask = self._line_mask
        worst = self.offline | (self.unresponsive & self.present)
        upper = np.where(worst[:, None] & mask, np.maximum(upper, self.port_max[:, None]), upper)
        disobeys = (self.noncompliant & self.present)[:, None] & mask
        took = np.maximum(self.measured.max(axis=1) + self.settings.follow_margin_a, self.sent)
        return np.where(disobeys, np.maximum(upper, took[:, None]), upper)

    def update_meter_gap(self, now: float) -> np.ndarray:
        """Node meter minus what we count for the chargers under it, per (node, line), ≥ 0 (0 where no fresh meter).

        A meter reading more than the chargers' reports is believed: a charger under-reports or something
        unmetered draws. For control the reading is compared with the most each port may be drawing, so
        a car in mid-change does not look like a gap. For the alert it is compared with what the chargers
        report, and only a gap that lasts the response window counts (reports lag a car's changes).
        """
        gap = np.zeros((self.tree.n_nodes, 3))
        reported_gap = np.zeros((self.tree.n_nodes, 3))
        fresh = now - self.node_meter_at <= self.settings.meter_fresh_s
        if fresh.any():
            # The true gap G lies in [meter − the most the ports may draw, meter − the least]: keep the last
            # estimate unless the bounds force it (a car in mid-change neither creates nor erases a gap).
            lower, _ = self.ev_current_bounds(now)
            counted = self.tree.node_load_lines(self.counted(now))[fresh]
            least = self.tree.node_load_lines(lower)[fresh]
            reading = self.node_meter[fresh]
            lo = np.nan_to_num(reading - counted, nan=0.0)
            hi = np.nan_to_num(reading - least, nan=0.0)
            gap[fresh] = np.maximum(np.minimum(np.maximum(self.meter_gap[fresh], lo), hi), 0.0)
            reported = self.tree.node_load_lines(self.measured)[fresh]
            reported_gap[fresh] = np.nan_to_num(reading - reported, nan=0.0)
        self.meter_gap = gap
        wide = reported_gap > self.settings.meter_gap_alert_a
        self.report_gap = np.where(wide, reported_gap, 0.0)
        self.report_gap_since = np.where(wide, np.fmin(self.report_gap_since, now), np.inf)
        return gap

    def closed_limits(self, limits: np.ndarray, now: float) -> np.ndarray:
        """Limits less each node meter's unexplained current, on its node and every node above it."""
        gap = self.update_meter_gap(now)
        if not gap.any():
            return limits
        out = limits.copy()
        for node in np.flatnonzero(gap.any(axis=1)):
            up = int(node)
            while up >= 0:
                out[up] -= gap[node]
                up = int(self.tree.parents[up])
        return np.maximum(out, 0.0)

    def escalation_step(self, p: int, now: float) -> str | None:
        """The escalation step a non-compliant port has reached (None if it obeys or no steps are set)."""
        steps = self.settings.escalation
        if not self.noncompliant[p] or not steps:
            return None
        k = int(max(0.0, now - self.noncompliant_since[p]) // max(self.settings.escalate_every_s, 1e-9))
        return steps[min(k, len(steps) - 1)]

    def escalation_actions(self, now: float) -> list[EscalationAction]:
        """The suspend / stop commands the escalation has reached and not yet decided, each once per escalation.

        Marks them "sending"; the caller sends them and reports each answer with `record_escalation`.
        """
        out: list[EscalationAction] = []
        steps = self.settings.escalation
        for p in (int(q) for q in np.flatnonzero(self.noncompliant & self.present)):
            step = self.escalation_step(p, now)
            if step is None:
                continue
            reached, done = steps[: steps.index(step) + 1], self.escalated[p]
            port = self.tree.ports[p]
            if "suspend" in reached and "suspend" not in done:
                if p in self.suspension:
                    done["suspend"] = self.suspension[p]
                elif self.settings.suspend_when == "now":
                    done["suspend"] = self.suspension[p] = "sending"
                    out.append(EscalationAction(p, "suspend", port.charge_point_id, port.connector_id))
                else:
                    done["suspend"] = "after the session"
                    self.suspend_due[p] = True
            if "stop" in reached and "stop" not in done:
                tx = int(self.tx_id[p])
                if tx < 0:
                    done["stop"] = "no transaction known"
                else:
                    done["stop"] = "sending"
                    out.append(EscalationAction(p, "stop", port.charge_point_id, port.connector_id, tx))
        for p in (int(q) for q in np.flatnonzero(self.suspend_due & ~self.present)):  # its session has ended
            self.suspend_due[p] = False
            self.suspension[p] = "sending"
            port = self.tree.ports[p]
            out.append(EscalationAction(p, "suspend", port.charge_point_id, port.connector_id))
        return out

    def record_escalation(self, action: EscalationAction, status: str) -> None:
        """The charger's answer to an escalation command (or why it was not delivered)."""
        p = action.port
        if action.action in self.escalated[p]:
            self.escalated[p][action.action] = status
        if action.action == "suspend":
            if status in ANSWERED:
                self.suspension[p] = status
            else:
                self.suspension.pop(p, None)

    def decide(self, limits: np.ndarray, now: float) -> tuple[np.ndarray, np.ndarray]:
        """Setpoints for every port, and the indices whose value must be sent."""
        limits = self.closed_limits(limits, now)
        demand = self.demand(now)
        self.needs.delivered_wh = self.session_wh
        setpoints = self.policy(self.tree, demand, limits, now, self.needs)
        # A non-compliant port is counted at its draw; what we send it is the escalation's business.
        for p in np.flatnonzero(self.noncompliant & self.present):
            step = self.escalation_step(int(p), now)
            if step == "lower":
                setpoints[p] = min(self.sent[p], J1772_MIN_A) if self.sent[p] > 0 else 0.0
            elif step is not None:
                setpoints[p] = 0.0  # pause, and keep it paused while an operator acts
            else:
                setpoints[p] = self.sent[p]
        self.last_setpoints = setpoints
        retry = self.unresponsive & (now - self.failed_at >= self.settings.retry_s) & ~self.offline
        # Every reduction is sent; a raise only when worth a message (≥ raise_deadband_a, or a resume), or
        # once the port has held its value for a settle time: a small gap must not stay unused for ever.
        delta = setpoints - self.sent
        held = now - self.changed_at >= self.settings.settle_s
        worth = (
            (delta <= -0.05)
            | (delta >= self.settings.raise_deadband_a)
            | ((self.sent == 0) & (setpoints > 0))
            | ((delta >= 0.05) & held)
        )
        # #14: a port with an implausible reading keeps its last setpoint (it counts at its circuit's limit).
        changed = (worth | ~self.dispatched) & ~self.unresponsive & ~self.offline & ~self.implausible
        return setpoints, np.flatnonzero((changed | retry) & ~self.inflight)

    def alerts(self, now: float) -> list[dict[str, str]]:
        """Active alerts the controller raises: each non-compliant charger by name, each node meter gap."""
        out = []
        for p in np.flatnonzero(self.noncompliant & self.present):
            port = self.tree.ports[p]
            step = self.escalation_step(int(p), now) or "counted at its draw"
            done = self.escalated[p]
            failed = any(v not in ANSWERED and v != "sending" and v != "after the session" for v in done.values())
            manual = step == "report" or failed
            commands = "".join(f"; {ESCALATION_COMMANDS[a]}: {v}" for a, v in done.items())
            out.append(
                {
                    "key": f"noncompliant:{port.charge_point_id}:{port.connector_id}",
                    "kind": "charger-noncompliant",
                    "severity": "critical",
                    "message": (
                        f"Charger {port.charge_point_id} connector {port.connector_id} draws "
                        f"{self.measured[p].max():.1f} A against its {self.sent[p]:g} A setpoint; counted at its draw, "
                        f"escalation: {step}{commands}" + (" (manual action needed)" if manual else "")
                    ),
                }
            )
        for q, status in sorted(self.suspension.items()):
            port = self.tree.ports[q]
            out.append(
                {
                    "key": f"suspended:{port.charge_point_id}:{port.connector_id}",
                    "kind": "charger-suspended",
                    "severity": "warning",
                    "message": (
                        f"Charger {port.charge_point_id} connector {port.connector_id} was set Inoperative for "
                        f"disobeying its limits ({status}); set it Operative once it is repaired"
                    ),
                }
            )
        lasting = self.report_gap_since <= now - self.settings.settle_s
        for n, line in np.argwhere(lasting & (self.report_gap > 0)):
            meter = next((m for m, node in self.node_meters.items() if node == n), self.tree.node_ids[n])
            out.append(
                {
                    "key": f"meter-gap:{meter}:{LINES[line]}",
                    "kind": "meter-mismatch",
                    "severity": "warning",
                    "message": (
                        f"Meter {meter} on {self.tree.node_ids[n]} {LINES[line]} reads "
                        f"{self.report_gap[n, line]:.1f} A more than its chargers report "
                        "(a charger under-reports or an unmetered load draws); "
                        "the gap is counted"
                    ),
                }
            )
        return out

    def snapshot(self, limits: np.ndarray) -> dict[str, Any]:
        """Per node/line: limit, measured, allocated; per connector: setpoint, drawn (for API/dashboard)."""
        allocated = self.tree.node_load(self.last_setpoints)
        measured = self.tree.node_load_lines(self.measured)
        nodes = []
        for n, node_id in enumerate(self.tree.node_ids):
            if self.tree.kinds[n] == "connector":
                continue
            lines = {}
            for ln, name in enumerate(LINES):
                if np.isfinite(self.tree.limits[n, ln]):
                    lines[name] = {
                        "limit_a": round(float(limits[n, ln]), 2),
                        "measured_a": round(float(measured[n, ln]), 2),
                        "allocated_a": round(float(allocated[n, ln]), 2),
                    }
            nodes.append({"id": node_id, "kind": self.tree.kinds[n], "lines": lines})
        connectors = [
            {
                "charge_point_id": port.charge_point_id,
                "connector_id": port.connector_id,
                "status": self.status[p],
                "setpoint_a": float(self.last_setpoints[p]),
                "accepted_a": float(self.sent[p]),
                "drawn_a": round(float(self.measured[p].max()), 2),
                "unresponsive": bool(self.unresponsive[p] or self.offline[p]),
                "noncompliant": bool(self.noncompliant[p]),
                "draw_ratio": round(float(self.ratio[p]), 3),
            }
            for p, port in enumerate(self.tree.ports)
        ]
        return {"nodes": nodes, "connectors": connectors}
