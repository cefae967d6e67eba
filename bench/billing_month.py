"""Benchmark: billing a month of the multifamily example (30 chargers, 1-minute readings) and its storage size.

1. Generates the month into a fresh SQLite database with `evsite.metering.month` (every plugged-in minute:
   energy register, power, voltage and per-line current, as the OCPP store keeps them; panel submeters).
2. Times `bill_month` (load sessions, integrity checks, TOU/demand pricing, statements, reconciliation) against
   a named baseline measured in the same run: `fetch energy samples`, the time to merely read the month's
   energy-register rows from the database. Target: < 5 s.
3. Measures bytes per stored row with SQLite's dbstat (tables + their indexes) and extrapolates a year by
   rows: (a) the generated plug-in density with all measurands, (b) energy register only (measured on a copy
   holding only those rows), (c) the worst case of 1-minute readings around the clock for 30 chargers, and
   (d) the same worst case in a compact wide table (one row per charger-minute; measured by pivoting the
   month into it). Target: a year < 1 GiB.

    .venv/bin/python bench/billing_month.py [--repeat 3] [--db PATH]

Prints a table and writes bench/results/billing_month.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from evsite.metering.month import write_month
from evsite.metering.repository import ENERGY, MV, bill_month
from evsite.site import load_site
from evsite.store.db import create_engine

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "billing_month.json"
SITE = ROOT / "src" / "evsite" / "examples" / "multifamily-30.yaml"
TARGET_S = 5.0
TARGET_BYTES = 1 << 30
MINUTES_PER_YEAR = 365 * 24 * 60
MONTH = "2026-10"


def table_bytes(path: Path, tables: tuple[str, ...]) -> int:
    """Bytes of the given tables and every index on them (dbstat page sizes)."""
    with sqlite3.connect(path) as conn:
        names = list(tables) + [
            r[0]
            for r in conn.execute(
                f"SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN ({','.join('?' * len(tables))})",
                tables,
            )
        ]
        return int(
            conn.execute(
                f"SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name IN ({','.join('?' * len(names))})", names
            ).fetchone()[0]
        )


def rows(path: Path, table: str, where: str = "1") -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}").fetchone()[0])


def energy_only_copy(path: Path, out: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("VACUUM INTO ?", (str(out),))
    with sqlite3.connect(out) as conn:
        conn.execute("DELETE FROM ocpp_meter_values WHERE measurand != ?", (ENERGY,))
        conn.commit()
        conn.execute("VACUUM")


def compact_copy(path: Path, out: Path) -> int:
    """The month pivoted into one row per charger-minute (WITHOUT ROWID, key (charger, minute))."""
    with sqlite3.connect(out) as conn:
        conn.execute(f"ATTACH DATABASE '{path}' AS src")
        conn.executescript(
            """
            CREATE TABLE chargers (id INTEGER PRIMARY KEY, name TEXT UNIQUE);
            INSERT INTO chargers (name) SELECT DISTINCT charger_id FROM src.ocpp_meter_values;
            CREATE TABLE readings (
                charger INTEGER NOT NULL, at INTEGER NOT NULL, tx INTEGER, energy_wh INTEGER NOT NULL,
                power_w INTEGER, i_l1 REAL, i_l2 REAL, i_l3 REAL, voltage REAL,
                PRIMARY KEY (charger, at)
            ) WITHOUT ROWID;
            INSERT INTO readings
            SELECT c.id, CAST(strftime('%s', m.timestamp) AS INTEGER), m.transaction_id,
                   MAX(CASE WHEN m.measurand = 'Energy.Active.Import.Register' THEN CAST(m.value AS INTEGER) END),
                   MAX(CASE WHEN m.measurand = 'Power.Active.Import' THEN CAST(m.value AS INTEGER) END),
                   MAX(CASE WHEN m.measurand = 'Current.Import' AND m.phase = 'L1' THEN m.value_num END),
                   MAX(CASE WHEN m.measurand = 'Current.Import' AND m.phase = 'L2' THEN m.value_num END),
                   MAX(CASE WHEN m.measurand = 'Current.Import' AND m.phase = 'L3' THEN m.value_num END),
                   MAX(CASE WHEN m.measurand = 'Voltage' THEN m.value_num END)
            FROM src.ocpp_meter_values m JOIN chargers c ON c.name = m.charger_id
            GROUP BY c.id, m.timestamp, m.transaction_id;
            """
        )
        conn.commit()
        conn.execute("DETACH DATABASE src")
        return int(conn.execute("SELECT COUNT(*) FROM readings").fetchone()[0])


async def fetch_energy(url: str) -> float:
    engine = create_engine(url)
    start = time.perf_counter()
    async with engine.connect() as conn:
        (await conn.execute(select(MV.c.charger_id, MV.c.timestamp, MV.c.value).where(MV.c.measurand == ENERGY))).all()
    elapsed = time.perf_counter() - start
    await engine.dispose()
    return elapsed


async def time_bill(url: str, repeat: int) -> tuple[float, dict[str, Any]]:
    site = load_site(SITE)
    engine = create_engine(url)
    best = float("inf")
    summary: dict[str, Any] = {}
    for _ in range(repeat):
        start = time.perf_counter()
        result = await bill_month(engine, site, MONTH)
        best = min(best, time.perf_counter() - start)
        s = result.run.summary
        summary = {
            "sessions": s.sessions,
            "units_billed": s.units_billed,
            "energy_billed_kwh": s.energy_billed_wh / 1000,
            "total_billed": str(s.total_billed),
            "flags": s.flags,
        }
    await engine.dispose()
    return best, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--db", type=Path, help="Reuse (or create) this database instead of a temporary one.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "month.db"
        url = f"sqlite+aiosqlite:///{db}"
        site = load_site(SITE)
        start = time.perf_counter()

        async def generate() -> dict[str, Any]:
            engine = create_engine(url, synchronous="NORMAL")
            try:
                return await write_month(engine, site, MONTH)
            finally:
                await engine.dispose()

        generated = asyncio.run(generate())
        generate_s = time.perf_counter() - start
        baseline_s = min(asyncio.run(fetch_energy(url)) for _ in range(args.repeat))
        bill_s, billed = asyncio.run(time_bill(url, args.repeat))

        mv_rows = rows(db, "ocpp_meter_values")
        energy_rows = rows(db, "ocpp_meter_values", f"measurand = '{ENERGY}'")
        mv_bytes = table_bytes(db, ("ocpp_meter_values",))
        energy_db = Path(tmp) / "energy.db"
        energy_only_copy(db, energy_db)
        energy_bytes = table_bytes(energy_db, ("ocpp_meter_values",))
        compact_db = Path(tmp) / "compact.db"
        compact_rows = compact_copy(db, compact_db)
        compact_bytes = table_bytes(compact_db, ("readings",))
        sub_rows, sub_bytes = rows(db, "metering_readings"), table_bytes(db, ("metering_readings",))

    plugged_minutes = energy_rows  # one energy sample per plugged-in charger-minute
    month_days = 31
    continuous = MINUTES_PER_YEAR * len(site.evse)
    year = {
        "as_stored_all_measurands": mv_bytes * 365 / month_days,
        "as_stored_energy_only": energy_bytes * 365 / month_days,
        "continuous_all_measurands": mv_bytes / plugged_minutes * continuous,
        "continuous_energy_only": energy_bytes / energy_rows * continuous,
        "continuous_compact_wide_table": compact_bytes / compact_rows * continuous,
    }
    result = {
        "benchmark": "billing_month",
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "month": generated["month"],
        "generate_s": round(generate_s, 2),
        "baseline": "fetch energy samples",
        "baseline_s": round(baseline_s, 3),
        "bill_s": round(bill_s, 3),
        "bill_vs_baseline": round(bill_s / baseline_s, 2),
        "target_bill_s": TARGET_S,
        "bill_ok": bill_s < TARGET_S,
        "billed": billed,
        "meter_value_rows": mv_rows,
        "energy_rows": energy_rows,
        "plugged_minutes_per_month": plugged_minutes,
        "bytes_per_row_all_measurands": round(mv_bytes / mv_rows, 1),
        "bytes_per_plugged_minute_all_measurands": round(mv_bytes / plugged_minutes, 1),
        "bytes_per_row_energy_only": round(energy_bytes / energy_rows, 1),
        "bytes_per_row_compact": round(compact_bytes / compact_rows, 1),
        "submeter_bytes_per_row": round(sub_bytes / sub_rows, 1),
        "year_bytes_extrapolated": {k: round(v) for k, v in year.items()},
        "year_vs_1GiB": {k: round(v / TARGET_BYTES, 2) for k, v in year.items()},
        "method": "generated one month, measured bytes per row with dbstat, extrapolated to a year by row count",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    print(f"billing {result['month']}: {billed['sessions']} sessions, {mv_rows:,} meter-value rows")
    print(f"{'measure':<44}{'value':>14}{'vs baseline/target':>22}")
    print(f"{'baseline: fetch energy samples':<44}{baseline_s:>13.3f}s{1.0:>21.2f}x")
    print(f"{'bill_month (best of ' + str(args.repeat) + ')':<44}{bill_s:>13.3f}s{bill_s / baseline_s:>21.2f}x")
    print(f"{'  target':<44}{TARGET_S:>13.1f}s{'ok' if bill_s < TARGET_S else 'MISSED':>22}")
    for key, value in year.items():
        verdict = f"{value / TARGET_BYTES:.2f} of 1 GiB"
        print(f"{'year, ' + key.replace('_', ' '):<44}{value / 2**20:>12,.0f}MB{verdict:>22}")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
