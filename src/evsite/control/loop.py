"""The live loop: events in, setpoints out, every `site.control.cycle_s` and whenever something changes.

It never blocks on a slow charger: each setpoint is its own task, counted at its new value from
the moment it leaves (the charger may apply it before answering) and at the old value until a
meter sample shows it was followed. A charger that rejects or does not answer within
`site.control.call_timeout_s` counts at its maximum until it accepts again.

Measured: `t_dispatch` (a signal → the last resulting setpoint accepted) and `t_comply` (a signal →
the first meter samples showing every node within its new limit), kept in `dispatch_log`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from evsite.control.controller import Controller, ControllerSettings, Policy
from evsite.control.signals import PvSettings, SiteLimits
from evsite.control.tree import build_tree
from evsite.runtime.events import ChargerCommands, EventBus, MeterSample, SiteSignal
from evsite.site.model import Site

log = logging.getLogger(__name__)


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
        pv: PvSettings | None = None,
    ) -> None:
        self.site = site
        self.bus = bus
        self.commands = commands
        tree = build_tree(site)
        settings = settings or ControllerSettings(follow_margin_a=site.control.safety_margin_a)
        self.controller = Controller(site, tree, policy_function(policy or site.control.policy, site), settings)
        self.limits = SiteLimits(site, tree, pv=pv or PvSettings())
        self.cycle_s = site.control.cycle_s
        self.dispatch_log: list[DispatchRecord] = []
        self.cycle_times_s: list[float] = []
        self._wake = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._sends: set[asyncio.Task[None]] = set()
        self._open: DispatchRecord | None = None
        self._current_limits = tree.limits.copy()

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

    def snapshot(self) -> dict[str, Any]:
        return self.controller.snapshot(self._current_limits)

    async def _consume(self) -> None:
        async with self.bus.subscribe() as queue:
            self._subscribed.set()
            while True:
                event = await queue.get()
                now = time.time()
                if isinstance(event, SiteSignal):
                    try:
                        self.limits.update(event)
                    except ValueError as exc:
                        log.warning("ignored signal: %s", exc)
                        continue
                    self._open = DispatchRecord(signal_at=now)
                    self.dispatch_log.append(self._open)
                    self._wake.set()
                elif self.controller.observe(event, now):
                    self._wake.set()
                if isinstance(event, MeterSample):
                    self._check_compliance(now)

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
            except Exception:  # a bug in one cycle must not stop the site's control
                log.exception("control cycle failed; chargers keep their last (fail-safe bounded) limits")

    def cycle(self) -> None:
        started = time.perf_counter()
        now = time.time()
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
        if record is not None:
            if tasks:
                timer = asyncio.create_task(self._time_dispatch(record, tasks))
                self._sends.add(timer)
                timer.add_done_callback(self._sends.discard)
            else:
                record.t_dispatch_s = time.time() - record.signal_at

    async def _time_dispatch(self, record: DispatchRecord, tasks: list[asyncio.Task[None]]) -> None:
        await asyncio.gather(*tasks, return_exceptions=True)
        record.t_dispatch_s = time.time() - record.signal_at
        log.info("t_dispatch %.3f s for %d setpoints", record.t_dispatch_s, len(tasks))

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
