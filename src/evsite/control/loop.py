"""The live loop: events in, setpoints out, every `site.control.cycle_s` and whenever something changes.

It never blocks on a slow charger: each setpoint is its own task, counted at its new value from
the moment it leaves (the charger may apply it before answering) and at the old value until a
meter sample shows it was followed. A charger that rejects or does not answer within
`site.control.call_timeout_s` counts at its maximum until it accepts again.

Measured: `t_dispatch` (a signal → the last resulting setpoint accepted) and `t_comply` (a signal →
the first meter samples showing every node within its new limit), kept in `dispatch_log`.

Building load from a site meter: a meter that sees the EVs and the building together gives the
building as meter − EV current, and the EV part must be the current flowing at the meter's reading
time. Chargers report it only every `meter_value_interval_s`, so right after a setpoint change the
last sample is wrong: subtracting it made the house look 32 A lighter the moment a car followed a
48 → 16 A reduction, and the car was raised again (16 ↔ 48 A every poll until its next sample).
So `ev_current_a` gives the most the EVs may be drawing (meter − that can only under-estimate the
building), and a reading taken while EVs under the meter are in such a transition lowers the
building estimate only as far as the evidence forces: the true building is at most the reading
plus the spread of what those EVs may be drawing (see `_hold_building`).

Escalation: the controller decides when a non-compliant charger is to be suspended (ChangeAvailability
Inoperative) or its transaction stopped (RemoteStopTransaction), once per escalation; the loop sends it
(`_escalate`) and hands the answer back, which the charger's alert shows.

Liveness: after every successful cycle the loop tells the chargers' side it is alive
(`ChargerCommands.controller_alive`), which is what keeps the chargers' fail-safe caps lifted. A
steady site may send no setpoint for hours; a stopped or failing loop stops vouching and the
chargers fall back to their fail-safe limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from evsite.control.allocate import NEED_BUFFER_S
from evsite.control.controller import Controller, ControllerSettings, EscalationAction, Policy
from evsite.control.demand import DemandManager, DemandRule
from evsite.control.signals import SiteLimits
from evsite.control.tree import LINES, build_tree
from evsite.runtime.events import ChargerCommands, EvChargingNeeds, EventBus, MeterSample, SiteSignal
from evsite.site.model import PvCharging, Site

log = logging.getLogger(__name__)

LIVENESS_CYCLES = 3.0
"""A cycle vouches for this many cycle periods, so one late cycle (a busy event loop) is not a death."""
DEMAND_ALERT_S = 3600.0
"""A raised demand peak stays in the alert list this long: the operator should see it, it needs no action."""


def policy_function(name: str, site: Site | None = None) -> Policy:
    from evsite.control.baselines import get_policy

    return get_policy(name, site)


@dataclass
class DispatchRecord:
    signal_at: float
    t_dispatch_s: float | None = None
    t_comply_s: float | None = None


class ControlLoop:
    """Run the load manager against an event bus and the chargers' command interface."""

    def __init__(
        self,
        site: Site,
        bus: EventBus,
        commands: ChargerCommands,
        policy: str | None = None,
        *,
        settings: ControllerSettings | None = None,
        pv: PvCharging | None = None,
    ) -> None:
        self.site = site
        self.bus = bus
        self.commands = commands
        tree = build_tree(site)
        settings = settings or ControllerSettings(follow_margin_a=site.control.safety_margin_a)
        self.controller = Controller(site, tree, policy_function(policy or site.control.policy, site), settings)
        self.limits = SiteLimits(site, tree, pv=pv or site.control.pv_charging)
        self.cycle_s = site.control.cycle_s
        self.dispatch_log: list[DispatchRecord] = []
        self.cycle_times_s: list[float] = []
        self._wake = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._sends: set[asyncio.Task[None]] = set()
        self._open: DispatchRecord | None = None
        self._current_limits = tree.limits.copy()
        self.demand: DemandManager | None = None
        self._month: str | None = None
        rule = DemandRule.from_tariff(site.tariff)
        if rule is not None and site.control.manage_demand:
            self.demand = DemandManager(rule, tree.line_mask(), self.controller.needs.volts)
        elif rule is not None:
            self.limits.demand_cap_kw = rule.cap_kw  # a capacity limit is a limit, managed or not
        self._port_max = np.array([p.max_a for p in tree.ports])
        # Meters that see only the building (no EV behind them): their readings need no hold.
        self._direct_meters = {m.id for m in site.meters if m.role.value == "building"}
        self._ev_needs: dict[int, dict[str, float]] = {}  # port → the needs values a car last wrote

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._consume()), asyncio.create_task(self._run())]
        await asyncio.wait_for(self._subscribed.wait(), timeout=5)

    async def stop(self) -> None:
        for task in [*self._tasks, *self._sends]:
            task.cancel()
        for task in [*self._tasks, *self._sends]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    @property
    def sends_in_flight(self) -> int:
        """Setpoints sent and not yet answered (plus dispatch timers): 0 when the site is quiet."""
        return len(self._sends)

    def snapshot(self) -> dict[str, Any]:
        return self.controller.snapshot(self._current_limits)

    def alerts(self) -> list[dict[str, str]]:
        """The controller's active alerts (non-compliant chargers by name, node meter gaps) for the API."""
        now = time.time()
        out = self.controller.alerts(now)
        if self.demand is not None and self.demand.log and now - self.demand.log[-1][0] < DEMAND_ALERT_S:
            out.append(
                {
                    "key": "demand-peak",
                    "kind": "demand-peak-raised",
                    "severity": "warning",
                    "message": self.demand.log[-1][1],
                }
            )
        return out

    async def _consume(self) -> None:
        async with self.bus.subscribe() as queue:
            self._subscribed.set()
            while True:
                event = await queue.get()
                now = time.time()
                if isinstance(event, SiteSignal):
                    event = self._hold_building(event, now)
                    try:
                        self.limits.update(event)
                    except ValueError as exc:
                        log.warning("ignored signal: %s", exc)
                        continue
                    self._open = DispatchRecord(signal_at=now)
                    self.dispatch_log.append(self._open)
                    self._wake.set()
                elif isinstance(event, EvChargingNeeds):
                    if self.take_ev_needs(event):
                        self._wake.set()
                elif self.controller.observe(event, now):
                    self._wake.set()
                if isinstance(event, MeterSample):
                    self._check_compliance(now)

    def take_ev_needs(self, event: EvChargingNeeds) -> bool:
        """A car's own departure and energy become its session's, unless an operator entered others.

        A value is written where the session has none, or where it still holds what a car wrote
        before (a renegotiation, ISO 15118 K17); a value someone else wrote (the API's session
        request) stays. True when anything changed.
        """
        p = self.controller.port(event.charge_point_id, event.connector_id)
        if p is None:
            return False
        needs = self.controller.needs
        wanted = {
            "departure_s": event.departure.timestamp() if event.departure is not None else math.nan,
            "requested_wh": event.energy_wh if event.energy_wh is not None else math.nan,
        }
        written = self._ev_needs.setdefault(p, {})
        changed = False
        for name, value in wanted.items():
            column = getattr(needs, name)
            current = float(column[p])
            if math.isnan(value) or not (math.isnan(current) or current == written.get(name)):
                continue
            changed = changed or current != value
            column[p] = value
            written[name] = value
        return changed

    def ev_current_a(self, node: str) -> dict[str, float] | None:
        """The most the EVs under `node` may be drawing now, per line (None for an unknown node).

        What a site-meter adapter subtracts from its reading to get the building load (see above).
        """
        c = self.controller
        n = c.tree.node_index.get(node)
        if n is None:
            return None
        _, upper = c.ev_current_bounds(time.time())
        per_line = c.tree.node_load_lines(upper)[n]
        return {name: float(per_line[k]) for k, name in enumerate(LINES)}

    def _hold_building(self, signal: SiteSignal, now: float) -> SiteSignal:
        """Keep a meter − EV building reading from falling further than the evidence forces.

        With `ev_current_a` subtracted, the reading R is at most the true building B, and B is at most
        R + spread, the spread being what the EVs under the meter may be drawing beyond their least.
        So the estimate becomes max(R, min(previous estimate, R + spread)) per line: exact when no EV
        is changing (spread 0), held while one is, and never above what the meter allows.
        """
        if signal.kind != "building_load" or signal.stale or signal.source in self._direct_meters:
            return signal
        previous = self.limits.building.get(signal.node)
        node = self.controller.tree.node_index.get(signal.node)
        if previous is None or previous.stale or node is None:
            return signal
        lower, upper = self.controller.ev_current_bounds(now)
        spread = self.controller.tree.node_load_lines(upper - lower)[node]
        if not spread.any():
            return signal
        held = dict(signal.current_a)
        for k, line in enumerate(LINES):
            reading = held.get(line)
            if reading is None and previous.current[k] == 0:
                continue
            reading = max(0.0, reading or 0.0)
            held[line] = max(reading, min(float(previous.current[k]), reading + float(spread[k])))
        return replace(signal, current_a=held)

    def _check_compliance(self, now: float) -> None:
        pending = [r for r in self.dispatch_log if r.t_comply_s is None]
        if not pending:
            return
        measured = self.controller.tree.node_load_lines(self.controller.measured)
        if np.all(measured <= self._current_limits + 0.5):
            for record in pending:
                record.t_comply_s = now - record.signal_at

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.cycle_s)
            self._wake.clear()
            try:
                self.cycle()
                self.commands.controller_alive(LIVENESS_CYCLES * self.cycle_s)
            except Exception:  # a bug in one cycle must not stop the site's control
                # Not vouching for this cycle: if failures persist the lifts lapse to the fail-safe caps.
                log.exception("control cycle failed; chargers keep their last limits for now")

    def cycle(self) -> None:
        started = time.perf_counter()
        now = time.time()
        if self.demand is not None:
            self._manage_demand(now)
        self._current_limits = self.limits.limits(datetime.now(UTC))
        setpoints, to_send = self.controller.decide(self._current_limits, now)
        self.cycle_times_s.append(time.perf_counter() - started)
        record, self._open = self._open, None
        tasks = []
        for p in to_send:
            value = float(setpoints[p])
            self.controller.begin_send(int(p), value)
            task = asyncio.create_task(self._send(int(p), value))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)
            tasks.append(task)
        for action in self.controller.escalation_actions(now):
            task = asyncio.create_task(self._escalate(action))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)
        if record is not None:
            if tasks:
                timer = asyncio.create_task(self._time_dispatch(record, tasks))
                self._sends.add(timer)
                timer.add_done_callback(self._sends.discard)
            else:
                record.t_dispatch_s = time.time() - record.signal_at

    def _manage_demand(self, now: float) -> None:
        """Feed the demand guard the EVs' measured power and set this cycle's demand target."""
        assert self.demand is not None
        c = self.controller
        month = datetime.fromtimestamp(now, ZoneInfo(self.site.timezone)).strftime("%Y-%m")
        if month != self._month:
            if self._month is not None:
                self.demand.guard.new_month()
            self._month = month
        self.demand.measure(now, float((c.measured.max(axis=1) * c.needs.volts).sum()) / 1000.0)
        decision = self.demand.apply(
            now,
            self.limits,
            c.present,
            c.needs.remaining_wh,
            c.needs.departure_s,
            np.minimum(c.ev_cap, self._port_max),  # what each car takes (demand() has side effects)
            NEED_BUFFER_S,
        )
        if decision.reason:
            log.info("%s", decision.reason)

    async def _time_dispatch(self, record: DispatchRecord, tasks: list[asyncio.Task[None]]) -> None:
        await asyncio.gather(*tasks, return_exceptions=True)
        record.t_dispatch_s = time.time() - record.signal_at
        log.info("t_dispatch %.3f s for %d setpoints", record.t_dispatch_s, len(tasks))

    async def _escalate(self, action: EscalationAction) -> None:
        """Send one escalation command the controller decided, and tell it the answer (shown in the alert)."""
        try:
            if action.action == "suspend":
                call = self.commands.change_availability(action.charge_point_id, action.connector_id, "Inoperative")
            else:
                assert action.transaction_id is not None  # the controller decides "stop" only with one
                call = self.commands.remote_stop(action.charge_point_id, action.transaction_id)
            status = str(await asyncio.wait_for(call, timeout=self.site.control.call_timeout_s))
        except Exception as exc:  # timeout, connection lost, CallError: not delivered
            status = f"not delivered ({type(exc).__name__})"
        log.warning(
            "escalation: %s to non-compliant %s#%d: %s",
            action.action,
            action.charge_point_id,
            action.connector_id,
            status,
        )
        self.controller.record_escalation(action, status)

    async def _send(self, p: int, value: float) -> None:
        port = self.controller.tree.ports[p]
        try:
            accepted = await asyncio.wait_for(
                self.commands.set_connector_limit(port.charge_point_id, port.connector_id, value),
                timeout=self.site.control.call_timeout_s,
            )
        except Exception as exc:  # timeout, connection lost, protocol error: all mean "not applied"
            log.warning("setpoint %.1f A to %s#%d failed: %r", value, port.charge_point_id, port.connector_id, exc)
            accepted = False
        self.controller.record_result(p, value, bool(accepted), time.time())
        if not accepted:
            self._wake.set()  # reduce the others now, with this one at its worst case
