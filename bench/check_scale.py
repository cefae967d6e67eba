"""Benchmark: `evsite check` on a generated 1,000-EVSE site, end to end, in process.

Times the whole command (load and validate YAML, run every rule, render the report, write it)
for each report format, and compares it with a named baseline measured in the same run:
`load+validate`, the time to merely load and validate the same site file. Target: < 1 s.

    .venv/bin/python bench/check_scale.py [--evse 1000] [--repeat 5]

Prints a table and writes bench/results/check_scale.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from evsite.cli import app
from evsite.code.check import check_site
from evsite.code.report import render
from evsite.site import load_site

RESULTS = Path(__file__).resolve().parent / "results" / "check_scale.json"
TARGET_S = 1.0


def generate_site(n_evse: int, per_panel: int = 50) -> dict[str, Any]:
    """A garage: 208Y/120 V service, one 200 A EMS-managed feeder and panel per `per_panel` EVSE."""
    panels_n = -(-n_evse // per_panel)
    panels: list[dict[str, Any]] = [
        {"id": "MSB", "kind": "switchboard", "fed_by": "service", "bus_rating_a": 4000, "main_ocpd_a": 4000}
    ]
    feeders, circuits, evse, ems, meters = [], [], [], [], []
    pairs = [["L1", "L2"], ["L2", "L3"], ["L3", "L1"]]
    for p in range(panels_n):
        pid, fid = f"EVP-{p:02d}", f"F-{p:02d}"
        panels.append({"id": pid, "fed_by": fid, "bus_rating_a": 225, "main_ocpd_a": 200, "level": f"P{p // 5 + 1}"})
        feeders.append(
            {
                "id": fid,
                "from_panel": "MSB",
                "ocpd_a": 200,
                "phases": 3,
                "conductors": {
                    "material": "cu",
                    "size": "3/0 AWG",
                    "insulation": "THHN",
                    "termination_c": 75,
                    "length_ft": 100 + 10 * p,
                    "raceway": {"type": "emt", "trade_size": "2"},
                    "current_carrying_conductors": 3,
                    "neutral": True,
                    "egc": "6 AWG Cu",
                },
            }
        )
        ems.append({"id": f"EMS-{p:02d}", "manages": [fid], "setpoint_a": 160})
        meters.append({"id": f"M-{p:02d}", "role": "panel", "measures": fid, "accuracy": "c12.20-0.5"})
        for k in range(per_panel):
            n = p * per_panel + k
            if n >= n_evse:
                break
            cid = f"C-{n:04d}"
            circuits.append(
                {
                    "id": cid,
                    "panel": pid,
                    "ocpd_a": 60,
                    "lines": pairs[k % 3],
                    "conductors": {
                        "material": "cu",
                        "size": "6 AWG",
                        "insulation": "THHN",
                        "termination_c": 75,
                        "length_ft": 30 + (k % 40) * 2,
                        "raceway": {"type": "emt", "trade_size": "3/4"},
                        "egc": "10 AWG Cu",
                    },
                }
            )
            evse.append(
                {
                    "id": f"EV-{n:04d}",
                    "circuit": cid,
                    "make": "ExampleCharge",
                    "model": "Pro 48",
                    "max_current_a": 48,
                    "comms": {"medium": "ethernet", "cable": "Cat6", "routing": "separate-raceway"},
                    "meter_accuracy": "c12.20-0.5",
                }
            )
    return {
        "name": f"Generated garage, {n_evse} EVSE",
        "service": {
            "system": "208Y/120V",
            "rating_a": 4000,
            "transformer": {"kva": 2500, "impedance_pct": 5.75},
            "max_demand_current_a": 3500,
            "minimum_power_factor": 0.9,
        },
        "panels": panels,
        "feeders": feeders,
        "circuits": circuits,
        "evse": evse,
        "ems": ems,
        "meters": meters,
        "billing": {"enabled": True, "sells_by_kwh": False},
        "jurisdiction": {"ahj": "Benchmark City", "low_voltage_permit": "required"},
    }


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    fn()  # warm-up: imports, caches
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _with_libyaml(fn: Callable[[], object], repeat: int) -> list[float]:
    original = yaml.compose

    def compose(stream: Any, Loader: Any = None) -> Any:
        return original(stream, Loader=yaml.CSafeLoader)

    yaml.compose = compose  # type: ignore[assignment]
    try:
        return timed(fn, repeat)
    finally:
        yaml.compose = original


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evse", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    runner = CliRunner()
    with tempfile.TemporaryDirectory() as tmp:
        site_path = Path(tmp) / "site.yaml"
        site_path.write_text(
            yaml.safe_dump(generate_site(args.evse), sort_keys=False, default_flow_style=None, width=400),
            encoding="utf-8",
        )
        size_kb = site_path.stat().st_size / 1024

        def run_check(fmt: str) -> Callable[[], object]:
            out = Path(tmp) / f"report.{fmt}"

            def go() -> object:
                result = runner.invoke(app, ["check", str(site_path), "--format", fmt, "--out", str(out)])
                if result.exit_code not in (0, 1):
                    raise SystemExit(f"evsite check failed ({result.exit_code}): {result.output}")
                return result

            return go

        rows: list[dict[str, Any]] = []

        def add(case: str, times: list[float], **extra: Any) -> None:
            rows.append({"case": case, "median_s": statistics.median(times), "min_s": min(times), **extra})

        add("load+validate (baseline)", timed(lambda: load_site(site_path), args.repeat))
        text = site_path.read_text(encoding="utf-8")
        add(
            "  of which yaml.compose (pure Python)",
            timed(lambda: yaml.compose(text, Loader=yaml.SafeLoader), args.repeat),
        )
        if yaml.__with_libyaml__:
            add(
                "  yaml.compose with libyaml (for ref.)",
                timed(lambda: yaml.compose(text, Loader=yaml.CSafeLoader), args.repeat),
            )
        site = load_site(site_path)
        add("rules only (check_site)", timed(lambda: check_site(site), args.repeat))
        report = check_site(site)
        for fmt in ("json", "text", "md", "html"):
            add(f"render --format {fmt}", timed(lambda fmt=fmt: render(report, fmt), args.repeat))  # type: ignore[misc]
        for fmt in ("json", "text", "md", "html"):
            add(
                f"evsite check --format {fmt} (end to end)",
                timed(run_check(fmt), args.repeat),
                output_kb=(Path(tmp) / f"report.{fmt}").stat().st_size / 1024,
            )
        if yaml.__with_libyaml__:
            # Projection, not the shipped path: the loader composes YAML in pure Python. With libyaml's
            # composer (same node marks, so the same located errors) the end-to-end time would be:
            add(
                "evsite check --format html, libyaml loader (projection)", _with_libyaml(run_check("html"), args.repeat)
            )
        base_med = rows[0]["median_s"]
        for row in rows:
            row["ratio_to_baseline"] = row["median_s"] / base_med

    print(f"evsite check on a generated {args.evse}-EVSE site ({size_kb:.0f} KiB YAML), median of {args.repeat}")
    print(f"{'case':<56} {'median s':>9} {'min s':>8} {'× baseline':>11} {'output KiB':>11}")
    for row in rows:
        out_kb = f"{row['output_kb']:.0f}" if "output_kb" in row else "—"
        timing = f"{row['median_s']:>9.3f} {row['min_s']:>8.3f} {row['ratio_to_baseline']:>11.2f}"
        print(f"{row['case']:<56} {timing} {out_kb:>11}")
    end_to_end = [r for r in rows if "(end to end)" in r["case"]]
    worst = max(r["median_s"] for r in end_to_end)
    verdict = "PASS" if worst < TARGET_S else "MISS"
    own = rows[[r["case"] for r in rows].index("rules only (check_site)")]["median_s"] + max(
        r["median_s"] for r in rows if r["case"].startswith("render")
    )
    print(
        f"target < {TARGET_S:.1f} s end to end: {verdict} (slowest format {worst:.3f} s; "
        f"rules + slowest render {own:.3f} s, the rest is loading the YAML)"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "check_scale",
                "evse": args.evse,
                "repeat": args.repeat,
                "target_s": TARGET_S,
                "baseline": "load+validate",
                "python": sys.version.split()[0],
                "machine": platform.machine(),
                "results": rows,
                "verdict": verdict,
                "rules_plus_slowest_render_s": own,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
