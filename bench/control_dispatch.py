"""Benchmark: dispatch of new setpoints after a limit change, 1,000 simulated chargers over OCPP.

t_dispatch is the time from a limit signal published on the event bus to the last CallResult that
accepted one of the resulting setpoints — the `ControlLoop` measures it itself (`dispatch_log`).
Target (issue 6): ≤ 1 s at 1,000 chargers.

The server side is all real: `CentralSystem` with its SQLite store and leased fail-safe lifts, and
`ControlLoop` with the fair policy, in this process. The site is the replay's `scale-1000` site
(1,000 ports, a third three-phase, 20 panels of 50) with its service raised to 20 kA, so that all
1,000 cars charge (14–16.8 A, limited by their panels). Each round lowers a manual cap on the
service one step (80 % of the uncapped load per line, down to just above 6 A per port), which
changes every one of the 1,000 setpoints.

The chargers, in `--fleets` subprocesses over WebSockets on 127.0.0.1, come in two kinds:
- `sim`: `evsite.sim` charge points (the `ocpp` package, schema validation on every message,
  profiles applied to an EV on each connector, meter values). Realistic, but 1,000 of them share
  this machine's cores with the server, which real chargers (each with its own CPU) do not;
- `light`: minimal OCPP-J charge points that boot, start a transaction, report Charging and
  answer every call at once: the server's own dispatch cost, as with real chargers.
The CPU seconds each side spent during each round are reported (including what else it did meanwhile:
meter values, EV physics), so the split is visible.

Baseline, same run, same server, same chargers, rounds interleaved with evsite's: the loop's
commands go out one at a time, each waiting for the previous charger's answer — how open
controllers dispatch (one outstanding command for the whole site; some even one charger per 30 s
tick, which at 1,000 chargers would take over 8 hours and is not run).

    .venv/bin/python bench/control_dispatch.py [--chargers 1000] [--kind sim light] [--fleets 2] [--rounds 5]

Prints a table and writes bench/results/control_dispatch.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from evsite.control.allocate import J1772_MIN_A, Demand, allocate_fair
from evsite.control.loop import ControlLoop
from evsite.control.scenarios import scale_site
from evsite.control.tree import build_tree
from evsite.ocpp.server import CentralSystem, ServerSettings
from evsite.runtime.events import EventBus, SiteSignal
from evsite.site.model import Site
from evsite.store.ocpp import OcppStore
from ocpp_harness import cpu_seconds

RESULTS = Path(__file__).resolve().parent / "results" / "control_dispatch.json"
TARGET_S = 1.0
SPEED = 10.0  # simulated seconds per real second on the EV side (start delays of 1–4 s)


def bench_site(n: int) -> Site:
    """The replay's scale site with a service large enough that every car charges."""
    site = scale_site(n)
    site.service.rating_a = 20_000
    site.service.allocation_a = None
    site.panels[0].bus_rating_a = 20_000
    site.control.meter_value_interval_s = 5
    site.control.cycle_s = 2.0
    return site


def cap_steps(site: Site, rounds: int) -> list[float]:
    """Service caps (A per line), each below the last, all leaving every port ≥ 6 A."""
    tree = build_tree(site)
    service = tree.node_index["service"]
    uncapped = tree.node_load(allocate_fair(tree, Demand.all_busy(tree), tree.limits))[service].max()
    floor = J1772_MIN_A * tree.node_load(np.ones(tree.n_ports))[service].max()
    low = max(1.05 * floor, 0.45 * uncapped)
    return [float(round(c)) for c in np.linspace(0.8 * uncapped, low, rounds)]


# --------------------------------------------------------------------------- the fleets (subprocesses)


async def run_sim_fleet(url: str, n: int, start: int, stop: int) -> None:
    """`evsite.sim` charge points `start:stop` of the bench site, an EV plugged into each once it is online."""
    from evsite.sim.chargepoint import SimChargePoint
    from evsite.sim.ev import Ev, SimClock
    from evsite.sim.fleet import specs_from_site

    clock = SimClock(SPEED)
    rng = random.Random(start)
    specs = specs_from_site(bench_site(n))[start:stop]
    tick = max(0.25, len(specs) / 2_000)
    points = [SimChargePoint(s, url, clock, backoff_min_s=0.5, backoff_max_s=5.0, rng=rng, tick_s=tick) for s in specs]
    for cp in points:
        await cp.start()
    await asyncio.gather(*(cp.wait_online(300) for cp in points))
    for k, cp in enumerate(points):
        ev = Ev.random(rng, f"B{start + k:05d}")
        ev.capacity_kwh, ev.soc = 100.0, rng.uniform(0.1, 0.3)  # far from taper for the whole run: a steady site
        cp.plug_in(1, ev)
    while True:  # a driver whose card was not answered (a timed-out Authorize) tries again
        await asyncio.sleep(15)
        for cp in points:
            connector = cp.connectors[1]
            if connector.ev is not None and connector.tx is None and not connector.authorizing:
                ev = connector.ev
                cp.unplug(1)
                cp.plug_in(1, ev)


async def run_light_fleet(url: str, n: int, start: int, stop: int) -> None:
    """Minimal charge points: boot, start a transaction, report Charging, answer every call at once."""
    import orjson

    from ocpp_harness import LightCharger

    site = bench_site(n)
    points = [LightCharger(url, evse.id) for evse in site.evse[start:stop]]
    now = "2026-06-01T12:00:00Z"

    async def session(c: LightCharger) -> None:
        def frame(action: str, payload: dict[str, Any]) -> str:
            return orjson.dumps([2, c.next_id(), action, payload]).decode()

        await c.call_frame(frame("BootNotification", {"chargePointVendor": "Bench", "chargePointModel": "Light"}))
        status = {"connectorId": 1, "errorCode": "NoError", "timestamp": now}
        await c.call_frame(frame("StatusNotification", {**status, "status": "Preparing"}))
        start_tx = {"connectorId": 1, "idTag": f"T{c.cp_id}", "meterStart": 0, "timestamp": now}
        await c.call_frame(frame("StartTransaction", start_tx))
        await c.call_frame(frame("StatusNotification", {**status, "status": "Charging"}))

    for i in range(0, len(points), 200):
        await asyncio.gather(*(c.connect() for c in points[i : i + 200]))
    await asyncio.gather(*(session(c) for c in points))
    await asyncio.Event().wait()


def spawn_fleets(kind: str, url: str, n: int, fleets: int) -> list[subprocess.Popen[bytes]]:
    bounds = np.linspace(0, n, fleets + 1).astype(int)
    return [
        subprocess.Popen([sys.executable, __file__, "fleet", kind, url, str(n), str(a), str(b)])
        for a, b in itertools.pairwise(bounds)
    ]


# --------------------------------------------------------------------------- the server side


@dataclass
class Dispatcher:
    """`ChargerCommands` in front of the central system: all at once (evsite) or one at a time (baseline)."""

    cs: CentralSystem
    sequential: bool = False
    sent: int = 0
    rejected: int = 0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def set_connector_limit(self, charge_point_id: str, connector_id: int, limit_a: float) -> bool:
        if self.sequential:
            async with self._lock:
                ok = await self.cs.set_connector_limit(charge_point_id, connector_id, limit_a)
        else:
            ok = await self.cs.set_connector_limit(charge_point_id, connector_id, limit_a)
        self.sent += 1
        self.rejected += not ok
        return ok

    def connected_charge_points(self) -> list[str]:
        return self.cs.connected_charge_points()

    def controller_alive(self, valid_s: float) -> None:
        self.cs.controller_alive(valid_s)


async def wait_until(check: Any, timeout: float, what: str, state: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: {state() if state else 'not reached'}")
        await asyncio.sleep(0.2)


def describe(loop: ControlLoop) -> str:
    """Why the site is not steady yet (for a timeout message)."""
    c = loop.controller
    statuses = Counter(c.status).most_common(5)
    pending = int((np.abs(c.last_setpoints - c.sent) >= c.settings.raise_deadband_a).sum())
    return (
        f"statuses {statuses}, offline {int(c.offline.sum())}, unresponsive {int(c.unresponsive.sum())},"
        f" in flight {int(c.inflight.sum())}, sends {loop.sends_in_flight}, setpoints pending {pending}"
    )


def quiet(loop: ControlLoop) -> bool:
    """Nothing in flight and nothing left to send: the site is in a steady state."""
    c = loop.controller
    pending = np.abs(c.last_setpoints - c.sent) >= c.settings.raise_deadband_a
    return not c.inflight.any() and not loop.sends_in_flight and not pending.any()


async def one_round(
    loop: ControlLoop, bus: EventBus, dispatcher: Dispatcher, cap_a: float, fleet_pids: list[int]
) -> dict[str, Any]:
    await wait_until(lambda: quiet(loop), 120, "steady state before the round")
    await asyncio.sleep(0.5)
    before_sent, before_rejected = dispatcher.sent, dispatcher.rejected
    cpu_server, cpu_fleet = time.process_time(), sum(cpu_seconds(pid) for pid in fleet_pids)
    n_records = len(loop.dispatch_log)
    bus.publish(SiteSignal("manual_limit", "service", dict.fromkeys(("L1", "L2", "L3"), cap_a), "bench"))
    await wait_until(
        lambda: len(loop.dispatch_log) > n_records and loop.dispatch_log[n_records].t_dispatch_s is not None,
        120,
        "dispatch of the round",
    )
    record = loop.dispatch_log[n_records]
    assert record.t_dispatch_s is not None
    return {
        "mode": "baseline" if dispatcher.sequential else "evsite",
        "cap_a": cap_a,
        "setpoints": dispatcher.sent - before_sent,
        "rejected": dispatcher.rejected - before_rejected,
        "t_dispatch_s": record.t_dispatch_s,
        "cpu_server_s": time.process_time() - cpu_server,
        "cpu_chargers_s": sum(cpu_seconds(pid) for pid in fleet_pids) - cpu_fleet,
        "setpoint_a_median": float(np.median(loop.controller.last_setpoints)),
    }


async def measure(kind: str, n: int, fleets: int, rounds: int, workdir: Path) -> dict[str, Any]:
    site = bench_site(n)
    store = await OcppStore.open(f"sqlite+aiosqlite:///{workdir / f'dispatch-{kind}.db'}", synchronous="NORMAL")
    bus = EventBus(queue_size=200_000)
    settings = ServerSettings(port=0, open_authorization=True, call_timeout_s=30.0)
    cs = CentralSystem(store, site, bus=bus, settings=settings)
    await cs.start()
    dispatcher = Dispatcher(cs)
    loop = ControlLoop(site, bus, dispatcher)
    await loop.start()
    procs = spawn_fleets(kind, f"ws://127.0.0.1:{cs.port}/ocpp", n, fleets)
    try:
        t0 = time.monotonic()
        await wait_until(lambda: sum(s.setup_done.is_set() for s in cs.sessions.values()) == n, 600, "chargers up")
        up_s = time.monotonic() - t0
        await wait_until(
            lambda: all(status == "Charging" for status in loop.controller.status) and quiet(loop),
            600,
            "all charging",
            lambda: describe(loop),
        )
        result: dict[str, Any] = {
            "chargers": kind,
            "chargers_up_s": round(up_s, 1),
            "all_charging_s": round(time.monotonic() - t0, 1),
            "rounds": [],
        }
        # evsite and the baseline take turns, so both see the same conditions; every step is lower.
        for i, cap in enumerate(cap_steps(site, 2 * rounds)):
            dispatcher.sequential = i % 2 == 1
            result["rounds"].append(await one_round(loop, bus, dispatcher, cap, [p.pid for p in procs]))
        return result
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        await loop.stop()
        await cs.stop()
        await store.close()


def summary(rounds: list[dict[str, Any]], mode: str) -> dict[str, float]:
    mine = [r for r in rounds if r["mode"] == mode]
    return {
        "t_dispatch_median_s": statistics.median(r["t_dispatch_s"] for r in mine),
        "t_dispatch_max_s": max(r["t_dispatch_s"] for r in mine),
        "setpoints_per_round": statistics.median(r["setpoints"] for r in mine),
        "rejected": sum(r["rejected"] for r in mine),
        "cpu_server_s_median": statistics.median(r["cpu_server_s"] for r in mine),
        "cpu_chargers_s_median": statistics.median(r["cpu_chargers_s"] for r in mine),
    }


def print_table(runs: list[dict[str, Any]], chargers: int, fleets: int) -> None:
    print(f"\nSetpoint dispatch after a limit change: {chargers} chargers over OCPP 1.6J ({fleets} fleets)")
    head = ("chargers", "mode", "cap A", "setpoints", "t_dispatch", "CPU server", "CPU chgrs")
    print("{:>8} {:>9} {:>6} {:>9} {:>11} {:>11} {:>11}".format(*head))
    for run in runs:
        for r in run["rounds"]:
            print(
                f"{run['chargers']:>8} {r['mode']:>9} {r['cap_a']:>6.0f} {r['setpoints']:>9}"
                f" {r['t_dispatch_s']:>9.3f} s {r['cpu_server_s']:>9.2f} s {r['cpu_chargers_s']:>9.2f} s"
            )
    head = ("chargers", "evsite median", "evsite max", "baseline median", "ratio")
    print("\n{:>8} {:>14} {:>11} {:>16} {:>7}".format(*head), f" target ≤ {TARGET_S:.0f} s")
    for run in runs:
        ours, base = run["evsite"], run["baseline"]
        verdict = "PASS" if ours["t_dispatch_max_s"] <= TARGET_S else "FAIL"
        print(
            f"{run['chargers']:>8} {ours['t_dispatch_median_s']:>12.3f} s {ours['t_dispatch_max_s']:>9.3f} s"
            f" {base['t_dispatch_median_s']:>14.3f} s {run['ratio_median']:>6.1f}x  {verdict}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chargers", type=int, default=1000)
    parser.add_argument("--kind", nargs="+", choices=["sim", "light"], default=["sim", "light"])
    parser.add_argument("--fleets", type=int, default=2, help="subprocesses carrying the chargers")
    parser.add_argument("--rounds", type=int, default=5, help="cap steps per mode")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kind:
            result = asyncio.run(measure(kind, args.chargers, args.fleets, args.rounds, Path(tmp)))
            ours, base = summary(result["rounds"], "evsite"), summary(result["rounds"], "baseline")
            result.update(evsite=ours, baseline=base)
            result["ratio_median"] = base["t_dispatch_median_s"] / ours["t_dispatch_median_s"]
            runs.append(result)
    print_table(runs, args.chargers, args.fleets)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": "control_dispatch",
        "what": "limit signal on the bus → last accepted SetChargingProfile CallResult (ControlLoop)",
        "site": f"scale_site({args.chargers}), 20 kA service; one lower manual service cap per round",
        "baseline": "same loop, server and chargers; setpoints sent one at a time (each awaits its answer)",
        "target_s": TARGET_S,
        "fleet_processes": args.fleets,
        "runs": runs,
        "load_average_after": os.getloadavg(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "fleet":
        logging.basicConfig(level=logging.CRITICAL)
        fleet = run_sim_fleet if sys.argv[2] == "sim" else run_light_fleet
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(fleet(sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])))
    else:
        main()
