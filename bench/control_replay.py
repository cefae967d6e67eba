"""Scenario replays under evsite's policies and the baselines, same sessions, same run.

Run: .venv/bin/python bench/control_replay.py [--quick]
Writes bench/results/control_replay.json and prints a table. Baselines (see
`evsite.control.baselines`): uncontrolled, first-come-first-served headroom (evcc's documented
semantics) and meter-blind equal shares (EVerest's documented energy tree), re-implemented here.
Safety is judged against the uncontrolled run of the same scenario (ampere-seconds over limits).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evsite.control.replay import run_replay
from evsite.control.scenarios import get_scenario

ROOT = Path(__file__).resolve().parent
PLAN = {
    "workplace-day": ["fair", "mpc", "equal", "fcfs", "uncontrolled"],
    "residential-evening": ["fair", "uncontrolled"],
    "multifamily-overnight": ["fair", "equal", "fcfs", "uncontrolled"],
    "dr-curtailment": ["fair", "equal", "fcfs", "uncontrolled"],
    "dr-curtailment-lost": ["fair", "uncontrolled"],
    "pv-surplus": ["fair", "uncontrolled"],
    "tariff-deadline": ["fair", "mpc", "uncontrolled"],
    "faults": ["fair", "equal", "uncontrolled"],
    "scale-1000": ["fair"],
}
COLUMNS = [
    ("policy", "policy"),
    ("over_limit_As", "A·s over"),
    ("excursions_gt_15s", ">15 s"),
    ("energy_delivered_pct", "energy %"),
    ("sessions_fully_served", "served"),
    ("jain_fairness", "Jain"),
    ("pause_resume_per_session", "pauses/s"),
    ("setpoint_changes_per_session", "changes/s"),
    ("energy_cost", "cost"),
    ("pv_share_pct", "PV %"),
    ("t_comply_s", "t_comply"),
    ("cycle_ms_p99", "cycle p99 ms"),
    ("wall_s", "wall s"),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="first three scenarios only")
    args = parser.parse_args()
    plan = dict(list(PLAN.items())[:3]) if args.quick else PLAN
    results = []
    for name, policies in plan.items():
        runs = {policy: run_replay(get_scenario(name), policy) for policy in policies}
        base = runs.get("uncontrolled", {}).get("over_limit_As") or 0.0
        print(f"\n{name}")
        print("".join(f"{title:>13}" for _, title in COLUMNS) + f"{'over/uncontr.':>15}")
        for _policy, m in runs.items():
            ratio = (m["over_limit_As"] / base) if base else None
            m["over_vs_uncontrolled"] = None if ratio is None else round(ratio, 6)
            cells = "".join(f"{'—' if m.get(k) is None else m[k]!s:>13}" for k, _ in COLUMNS)
            print(cells + f"{'—' if ratio is None else f'{100 * ratio:.4f} %':>15}")
            results.append(m)
    out = ROOT / "results" / "control_replay.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
