"""Benchmark: loading large site files (issue 14: "a 47 MB site with 300,000 circuits took 99 s and 4.5 GB").

For each size N it generates a garage with N circuits and N EVSE (one 48 A charger per 60 A circuit,
50 circuits per panel, each panel on its own feeder from the main switchboard) and measures, each
size in a fresh process so peak memory is its own:

- `load`: `load_site_text` (parse, limits, references, validation), wall and CPU time, CPU µs per
  circuit (the machine is shared: CPU time is the steadier measure) and the peak resident memory of
  the process above what it held before loading;
- `walk`: the tree walk every consumer does (each panel's circuits, each circuit's EVSE, each node's
  EMS and feeders) with the site's lookups, steady state; `walk_first_s` is the first walk, which
  builds the index and pays the cyclic collector's first full pass over the freshly loaded heap;
- baseline `scan`: the same walk with the lookups as they were before issue 14, a scan of the list
  per call (kept below as `ScanLookups`), run at sizes up to `--scan-max` and extrapolated as N² above;
- baseline `compose`: the old loader's first step, libyaml's node tree (`yaml.compose`), time and peak
  memory, at sizes up to `--compose-max`;
- `refused`: the same file under the default limits (20,000 entries per list): how fast a file over
  the limit is turned away.

Load is linear when CPU µs per circuit stays flat from 1k to 50k (column `lin.`: relative to the
first size). Sizes above the default limit are loaded
with raised limits (`SiteLimits(max_items=…, max_nodes=…, max_bytes=…)`).

    .venv/bin/python bench/site_load.py [--sizes 1000 10000 50000] [--scan-max 10000] [--compose-max 10000]

Prints a table and writes bench/results/site_load.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "site_load.json"
PER_PANEL = 50


def generate(n: int) -> str:
    """YAML text of a garage with n circuits and n EVSE, in the block style people write."""
    panels_n = -(-n // PER_PANEL)
    out = [
        f"name: Generated garage, {n} circuits",
        "service:\n  system: 480Y/277V\n  rating_a: 6000",
        "panels:\n  - id: MSB\n    kind: switchboard\n    bus_rating_a: 6000\n    main_ocpd_a: 6000",
    ]
    pairs = ("[L1, L2]", "[L2, L3]", "[L3, L1]")
    for p in range(panels_n):
        out.append(f"  - id: P{p}\n    fed_by: F{p}\n    bus_rating_a: 400\n    main_ocpd_a: 400")
    out.append("feeders:")
    for p in range(panels_n):
        out.append(
            f"  - id: F{p}\n    from_panel: MSB\n    ocpd_a: 400\n    conductors:\n      size: 500 kcmil\n"
            f"      termination_c: 75\n      length: {50 + p % 200} m\n      current_carrying_conductors: 3"
        )
    out.append("circuits:")
    for i in range(n):
        out.append(
            f"  - id: C{i}\n    panel: P{i // PER_PANEL}\n    ocpd_a: 60\n    lines: {pairs[i % 3]}\n"
            f"    conductors:\n      size: 6 AWG\n      termination_c: 75\n      length: {30 + i % 40} ft\n"
            f"      raceway: {{type: emt, trade_size: 3/4}}\n      egc: 10 AWG Cu"
        )
    out.append("evse:")
    for i in range(n):
        out.append(f"  - id: EV{i}\n    circuit: C{i}\n    make: ExampleCharge\n    max_current_a: 48")
    out.append("ems:")
    for p in range(panels_n):
        out.append(f"  - id: EMS{p}\n    manages: [F{p}]\n    setpoint_a: 320")
    return "\n".join(out) + "\n"


class ScanLookups:
    """Baseline: the Site lookups before issue 14, one scan of a list per call."""

    def __init__(self, site: Any) -> None:
        self.site = site

    def circuits_in(self, panel_id: str) -> list[Any]:
        return [c for c in self.site.circuits if c.panel == panel_id]

    def evse_on(self, circuit_id: str) -> list[Any]:
        return [e for e in self.site.evse if e.circuit == circuit_id]

    def feeders_from(self, source: str) -> list[Any]:
        return [f for f in self.site.feeders if f.from_panel == source]

    def ems_for(self, node_id: str) -> list[Any]:
        return [e for e in self.site.ems if node_id in e.manages]

    def panel(self, panel_id: str) -> Any:
        return next(p for p in self.site.panels if p.id == panel_id)


def walk(site: Any, lookups: Any) -> int:
    """The tree walk a check, the load manager's tree and `evsite validate` do; returns EVSE seen."""
    seen = 0
    for panel in site.panels:
        lookups.panel(panel.id)
        lookups.ems_for(panel.id)
        lookups.feeders_from(panel.id)
        for circuit in lookups.circuits_in(panel.id):
            lookups.ems_for(circuit.id)
            seen += len(lookups.evse_on(circuit.id))
    return seen


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_compose(n: int) -> dict[str, Any]:
    """Baseline, in its own child process: the node tree the old loader composed before building data."""
    import yaml

    from evsite.site.load import _COMPOSER

    text = generate(n)
    before = rss_mb()
    start = time.perf_counter()
    node = yaml.compose(text, Loader=_COMPOSER)
    row = {"compose_s": time.perf_counter() - start, "compose_peak_mb": rss_mb() - before}
    del node
    return row


def measure_one(n: int, scan: bool) -> dict[str, Any]:
    """Run in a child process: one size, so peak memory is this size's alone."""

    from evsite.site import SiteFileError, load_site_text
    from evsite.site.load import SiteLimits

    text = generate(n)
    row: dict[str, Any] = {"circuits": n, "evse": n, "bytes": len(text.encode())}
    before = rss_mb()
    roomy = SiteLimits(max_bytes=1 << 30, max_nodes=100_000_000, max_items=10_000_000)
    start, cpu = time.perf_counter(), time.process_time()
    site = load_site_text(text, "bench.yaml", roomy)
    row["load_s"] = time.perf_counter() - start
    row["load_cpu_s"] = time.process_time() - cpu
    row["load_us_per_circuit"] = row["load_cpu_s"] / n * 1e6
    row["load_peak_mb"] = rss_mb() - before
    start = time.perf_counter()
    assert walk(site, site) == n
    row["walk_first_s"] = time.perf_counter() - start  # builds the index; pays the collector's first full pass
    start = time.perf_counter()
    assert walk(site, site) == n
    row["walk_s"] = time.perf_counter() - start
    if scan:
        start = time.perf_counter()
        assert walk(site, ScanLookups(site)) == n
        row["scan_walk_s"] = time.perf_counter() - start
    start = time.perf_counter()
    try:
        load_site_text(text, "bench.yaml", SiteLimits(max_bytes=1 << 30))
        row["refused"] = None
    except SiteFileError as exc:
        row["refused"] = exc.problems[0].message
    row["refused_s"] = time.perf_counter() - start
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 50_000])
    parser.add_argument("--scan-max", type=int, default=10_000, help="largest size the quadratic baseline runs at")
    parser.add_argument("--compose-max", type=int, default=10_000, help="largest size the compose baseline runs at")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--scan", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--compose", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_compose(args.one) if args.compose else measure_one(args.one, args.scan)))
        return

    load_before = os.getloadavg()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    rows = []

    def child(*extra: str) -> dict[str, Any]:
        done = subprocess.run([sys.executable, __file__, *extra], capture_output=True, text=True, env=env, check=True)
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result

    for n in args.sizes:
        row = child("--one", str(n), *(["--scan"] if n <= args.scan_max else []))
        if n <= args.compose_max:
            row.update(child("--one", str(n), "--compose"))
        rows.append(row)
    scanned = [r for r in rows if "scan_walk_s" in r]
    if scanned:
        ref = max(scanned, key=lambda r: r["circuits"])
        for row in rows:
            if "scan_walk_s" not in row:
                row["scan_walk_s_estimated"] = ref["scan_walk_s"] * (row["circuits"] / ref["circuits"]) ** 2
    for row in rows:
        scan_s = row.get("scan_walk_s", row.get("scan_walk_s_estimated"))
        row["walk_speedup_vs_scan"] = scan_s / row["walk_s"] if scan_s and row["walk_s"] > 0 else None
    smallest = rows[0]
    for row in rows:
        row["load_per_circuit_vs_smallest"] = row["load_us_per_circuit"] / smallest["load_us_per_circuit"]

    header = (
        f"{'circuits':>9} {'MB':>6} {'load s':>7} {'cpu s':>6} {'µs/circ':>8} {'lin.':>5} {'peak MB':>8} "
        f"{'walk 1st':>8} {'walk s':>7} {'scan s (baseline)':>18} {'speed-up':>9} "
        f"{'compose s':>9} {'compose MB':>10} {'refused':>8}"
    )
    print(header)
    for r in rows:
        scan = f"{r['scan_walk_s']:.3f}" if "scan_walk_s" in r else f"~{r.get('scan_walk_s_estimated', 0):.0f} est."
        speedup = f"{r['walk_speedup_vs_scan']:.0f}×" if r["walk_speedup_vs_scan"] else "-"
        comp_s = f"{r['compose_s']:.2f}" if "compose_s" in r else "-"
        comp_mb = f"{r['compose_peak_mb']:.0f}" if "compose_peak_mb" in r else "-"
        refused = f"{r['refused_s']:.2f}s" if r["refused"] else "loads"
        print(
            f"{r['circuits']:>9,} {r['bytes'] / 1e6:>6.1f} {r['load_s']:>7.2f} {r['load_cpu_s']:>6.2f} "
            f"{r['load_us_per_circuit']:>8.0f} "
            f"{r['load_per_circuit_vs_smallest']:>5.2f} {r['load_peak_mb']:>8.0f} "
            f"{r['walk_first_s']:>8.3f} {r['walk_s']:>7.3f} "
            f"{scan:>18} {speedup:>9} {comp_s:>9} {comp_mb:>10} {refused:>8}"
        )
    report = {
        "bench": "site_load",
        "baselines": {
            "scan": "Site lookups before issue 14: one list scan per lookup (ScanLookups in this script)",
            "compose": "the old loader's first step: libyaml's node tree (yaml.compose) before any data exists",
            "linearity": "load CPU µs per circuit relative to the smallest size (1.0 = linear)",
        },
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "rows": rows,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
