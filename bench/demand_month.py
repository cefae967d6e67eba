"""Demand charge of the multifamily month: uncontrolled, `fair` without demand management, `fair` with it.

Run: .venv/bin/python bench/demand_month.py [--days 7]
Same sessions in the same run. The demand charge is the tariff's (12 USD/kW on the month's highest
15-minute average of the EV load, block intervals); energy given up is what the managed run delivers
less than `fair` without it. A run shorter than the month bills the days it replays as one month.
Writes bench/results/demand_month.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from evsite.control.replay import Replay
from evsite.sim.scenarios import MULTIFAMILY_MONTH, get_scenario

ROOT = Path(__file__).resolve().parent
KEYS = (
    "demand_peak_kw_by_month",
    "demand_charge",
    "demand_raises",
    "energy_delivered_kwh",
    "energy_delivered_pct",
    "sessions_fully_served",
    "sessions",
    "jain_fairness",
    "over_limit_As",
    "excursions_gt_15s",
    "pause_resume_per_session",
    "setpoint_changes_per_session",
    "energy_cost",
    "wall_s",
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=float, default=7.0, help="site days to replay (the month is about 32)")
    args = parser.parse_args()
    runs: dict[str, dict[str, object]] = {}
    for label, policy, manage in (
        ("uncontrolled", "uncontrolled", False),
        ("fair", "fair", False),
        ("fair+demand", "fair", True),
    ):
        scenario = get_scenario(MULTIFAMILY_MONTH)
        scenario.duration_s = min(args.days * 86400.0, scenario.duration_s)
        t0 = time.perf_counter()
        m = Replay(scenario, policy, manage_demand=manage).run()
        runs[label] = {k: m[k] for k in KEYS} | {"wall_total_s": round(time.perf_counter() - t0, 2)}
        print(label, json.dumps(runs[label]), flush=True)
    fair, managed, free = runs["fair"], runs["fair+demand"], runs["uncontrolled"]
    result = {
        "scenario": MULTIFAMILY_MONTH,
        "site_days": args.days,
        "runs": runs,
        "demand_charge_saved_vs_fair": round(float(fair["demand_charge"]) - float(managed["demand_charge"]), 2),  # type: ignore[arg-type]
        "demand_charge_saved_vs_uncontrolled": round(
            float(free["demand_charge"]) - float(managed["demand_charge"]),  # type: ignore[arg-type]
            2,
        ),
        "energy_given_up_kwh": round(
            float(fair["energy_delivered_kwh"]) - float(managed["energy_delivered_kwh"]),  # type: ignore[arg-type]
            2,
        ),
        "energy_points_vs_fair": round(
            float(managed["energy_delivered_pct"]) - float(fair["energy_delivered_pct"]),  # type: ignore[arg-type]
            2,
        ),
    }
    out = ROOT / "results" / "demand_month.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}))


if __name__ == "__main__":
    main()
