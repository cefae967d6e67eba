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
- a port we paused stays paused for `min_pause_s` (contactor wear).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
        self.ev_cap = np.full(n, np.inf)  # learned cap of an EV that takes less than offered
        self._line_mask = self.tree.line_mask()
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
        self.measured[p] = per_line
        self.measured_at[p] = at
        if sample.energy_wh is not None and not np.isnan(self.start_wh[p]):
            self.session_wh[p] = max(0.0, sample.energy_wh - self.start_wh[p])
        # A reduction counts once a sample taken a PWM update after it shows the EV below the new value
        # (the pilot itself changes within one PWM update, so later the EV cannot climb back above it).
        after_update = at >= self.changed_at[p] + self.settings.pilot_update_s
        if self.ceiling[p] > self.sent[p] and after_update and per_line.max() <= self.sent[p] + 0.5:
            self.ceiling[p] = self.sent[p]

    def ingest_samples(self, per_line: np.ndarray, session_wh: np.ndarray, at: float, ports: np.ndarray) -> None:
        """Meter samples for many ports at once (the replay's fast path; same rules as `observe`)."""
        self.measured[ports] = per_line[ports]
        self.measured_at[ports] = at
        self.session_wh[ports] = session_wh[ports]
        confirm = (
            (self.ceiling[ports] > self.sent[ports])
            & (at >= self.changed_at[ports] + self.settings.pilot_update_s)
            & (per_line[ports].max(axis=1) <= self.sent[ports] + 0.5)
        )
        idx = ports[confirm]
        self.ceiling[idx] = self.sent[idx]

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
        self.unresponsive[p] = False
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
        over = np.maximum(drawn - np.maximum(self.ceiling, self.sent), 0.0)
        d.excess = np.where(fresh & self.present & (over > 0.5), over + s.follow_margin_a, 0.0)
        # Offline: we cannot know what it does. Rejected: it follows whatever it had, at worst its maximum.
        worst = self.offline | self.implausible | (self.unresponsive & self.present)
        d.fixed = np.where(worst, np.where(self.implausible, self.circuit_a, self.port_max), np.nan)
        d.previous = self.sent.copy()
        d.rank = self.session_wh.copy()
        return d

    def decide(self, limits: np.ndarray, now: float) -> tuple[np.ndarray, np.ndarray]:
        """Setpoints for every port, and the indices whose value must be sent."""
        demand = self.demand(now)
        self.needs.delivered_wh = self.session_wh
        setpoints = self.policy(self.tree, demand, limits, now, self.needs)
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
        changed = worth & ~self.unresponsive & ~self.offline & ~self.implausible
        return setpoints, np.flatnonzero((changed | retry) & ~self.inflight)

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
            }
            for p, port in enumerate(self.tree.ports)
        ]
        return {"nodes": nodes, "connectors": connectors}
