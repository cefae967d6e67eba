"""Allocation cycle time at 100 / 1,000 / 10,000 ports, against acnportal's EDF in the same run.

Run: .venv/bin/python bench/control_alloc.py [--reps N]
acnportal (BSD-3, Caltech) is pip-installed into a scratch directory at benchmark time, not into
the project: set EVSITE_BENCH_LIB to reuse one. Writes bench/results/control_alloc.json.

Our cycle is `Controller.decide` (demand from state, weighted max-min water-filling over the full
constraint tree, J1772 admission, phase-in of raises), all ports busy, a third of them 3φ with
random single-phase cars, random EV maxima and in-flight reductions. acnportal's is
`SortedSchedulingAlgo(earliest_deadline_first).run()` on its own 3-phase balanced network with
the same number of EVSE, all sessions active (its pure-Python bisection per EV).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from evsite.control.controller import Controller
from evsite.control.runtime_fixtures import busy_controller
from evsite.control.scenarios import scale_site
from evsite.control.tree import build_tree

ROOT = Path(__file__).resolve().parent
LIB = Path(os.environ.get("EVSITE_BENCH_LIB", "/tmp/evsite-bench-lib"))


def time_ours(n_ports: int, reps: int) -> dict[str, float]:
    t0 = time.perf_counter()
    site = scale_site(n_ports)
    tree = build_tree(site)
    build_s = time.perf_counter() - t0
    ctrl: Controller = busy_controller(site, tree, seed=n_ports)
    times = []
    for k in range(reps):
        c0 = time.perf_counter()
        ctrl.decide(tree.limits, 1000.0 + k)
        times.append(time.perf_counter() - c0)
    arr = np.array(times)
    return {
        "ports": n_ports,
        "tree_build_s": round(build_s, 3),
        "cycle_ms_p50": round(float(np.percentile(arr, 50)) * 1000, 2),
        "cycle_ms_p99": round(float(np.percentile(arr, 99)) * 1000, 2),
    }


def ensure_acnportal() -> bool:
    if not (LIB / "acnportal").exists():
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--target",
            str(LIB),
            "acnportal==0.3.3",
            "pandas",
            "pytz",
            "requests",
        ]
        if subprocess.run(cmd, check=False).returncode != 0:
            return False
    sys.path.insert(0, str(LIB))
    return True


def time_acn_edf(n_evse: int, reps: int) -> dict[str, float] | None:
    if not ensure_acnportal():
        return None
    from acnportal.algorithms import SortedSchedulingAlgo, earliest_deadline_first
    from acnportal.algorithms.tests.generate_test_cases import session_generator, three_phase_balanced_network
    from acnportal.algorithms.tests.testing_interface import TestingInterface

    per_phase = n_evse // 3
    network = three_phase_balanced_network(per_phase, limit=0.3 * 32 * per_phase)
    n = 3 * per_phase
    rng = np.random.default_rng(1)
    sessions = session_generator(
        num_sessions=n,
        arrivals=[0] * n,
        departures=list(rng.integers(12, 120, n)),
        requested_energy=[30.0] * n,
        remaining_energy=list(rng.uniform(5, 30, n)),
        max_rates=[32.0] * n,
    )
    data = {"active_sessions": sessions, "infrastructure_info": network, "current_time": 0, "period": 5}
    algo = SortedSchedulingAlgo(earliest_deadline_first)
    algo.register_interface(TestingInterface(data))
    times = []
    for _ in range(reps):
        c0 = time.perf_counter()
        algo.run()
        times.append(time.perf_counter() - c0)
    arr = np.array(times)
    return {
        "evse": n,
        "cycle_ms_p50": round(float(np.percentile(arr, 50)) * 1000, 2),
        "cycle_ms_p99": round(float(np.percentile(arr, 99)) * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--acn-reps", type=int, default=5)
    args = parser.parse_args()
    ours = [time_ours(n, args.reps if n < 10_000 else max(10, args.reps // 5)) for n in (100, 1_000, 10_000)]
    edf = time_acn_edf(999, args.acn_reps)
    targets = {1_000: 50.0, 10_000: 500.0}
    print(f"{'policy':<22}{'ports':>8}{'p50 ms':>10}{'p99 ms':>10}{'target':>10}{'vs EDF@999':>12}")
    for row in ours:
        ratio = edf["cycle_ms_p50"] / row["cycle_ms_p50"] if edf else None
        target = targets.get(int(row["ports"]))
        print(
            f"{'evsite fair':<22}{row['ports']:>8}{row['cycle_ms_p50']:>10}{row['cycle_ms_p99']:>10}"
            f"{(f'≤ {target:g}') if target else '':>10}{(f'{ratio:.0f}× faster') if ratio else 'n/a':>12}"
        )
    if edf:
        print(
            f"{'acnportal EDF':<22}{edf['evse']:>8}{edf['cycle_ms_p50']:>10}{edf['cycle_ms_p99']:>10}{'':>10}{'1×':>12}"
        )
    else:
        print("acnportal could not be installed: EDF baseline skipped")
    result = {
        "benchmark": "control allocation cycle",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "evsite_fair": ours,
        "acnportal_edf": edf,
        "targets_ms_p99": {str(k): v for k, v in targets.items()},
        "attribution": "acnportal (Caltech, BSD-3-Clause) used as the baseline, installed at benchmark time",
    }
    out = ROOT / "results" / "control_alloc.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
