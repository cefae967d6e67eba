"""Disobedient chargers and cars on the replayed workplace day (issue 22): the truth against the limit.

Run: .venv/bin/python bench/control_faults.py [--hours H]
Writes bench/results/control_faults.json and prints a table. Each `faults-<case>` scenario is the
workplace day (20 × 48 A ports, 160 A EMS on the EV feeder, panel meter on it live) with one
misbehaviour all day; `workplace-day` is the obedient reference. The replay's ground truth is what
the modelled EVs draw, against the true limits, every 2 s. The day is cut at `--hours` (13: the
arrivals end at 13:00 and the congested hours are in it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evsite.control.replay import Replay
from evsite.control.scenarios import FAULT_CASES, HOUR, get_scenario

ROOT = Path(__file__).resolve().parent
KEYS = [
    "over_limit_As",
    "excursions_gt_15s",
    "longest_excursion_s",
    "energy_delivered_pct",
    "setpoint_changes_per_session",
    "pause_resume_per_session",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hours", type=float, default=13.0)
    args = parser.parse_args()
    rows = []
    for name in ["workplace-day", *(f"faults-{case}" for case in FAULT_CASES), "faults"]:
        scenario = get_scenario(name)
        scenario.duration_s = args.hours * HOUR
        replay = Replay(scenario, "fair")
        metrics = replay.run()
        row = {"scenario": name, **{k: metrics[k] for k in KEYS}}
        row["alerts_at_end"] = [a["message"] for a in replay.ctrl.alerts(scenario.duration_s)]
        rows.append(row)
        print(" | ".join(str(row[k]) for k in ["scenario", *KEYS]), flush=True)
    out = ROOT / "results" / "control_faults.json"
    out.write_text(json.dumps({"hours": args.hours, "rows": rows}, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
