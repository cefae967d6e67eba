"""Benchmark: billing a month of the multifamily example (30 chargers, 1-minute readings) and its storage size.

1. Generates the month into a fresh SQLite database with `evsite.metering.month` (every plugged-in minute:
   energy register, power, voltage and per-line current, stored by the same compact sample writer as the
   OCPP server's; panel submeters).
2. Times `bill_month` (load sessions, integrity checks, TOU/demand pricing, statements, reconciliation) against
   a named baseline measured in the same run: `fetch energy samples`, the time to merely read the month's
   energy-register values from the database. Target: < 5 s.
3. Measures bytes per stored sample with SQLite's dbstat (tables + their indexes) for three layouts of the
   same samples, all built in this run:
   - `old per-value rows`: the previous schema (`ocpp_meter_values`, one row per sampled value with its
     seven-part text key; revision 0001), filled with the decoded samples in arrival order — the baseline;
   - `compact store`: what evsite now stores (`ocpp_samples` + series, layouts and verbatim texts);
   - `minimal wide table`: a reference floor, one row per charger-minute keyed (charger, minute) WITHOUT
     ROWID, no arrival order, no duplicate check, no verbatim values.
   A year is extrapolated two ways: realistic (the generated plug-in density × 365/31) and continuous (the
   worst case: 1-minute samples around the clock for all 30 chargers). Target: a year < 1 GiB.

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
from evsite.metering.repository import bill_month
from evsite.site import load_site
from evsite.store import samples as sv
from evsite.store.db import create_engine

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "billing_month.json"
SITE = ROOT / "src" / "evsite" / "examples" / "multifamily-30.yaml"
TARGET_S = 5.0
TARGET_BYTES = 1 << 30
MINUTES_PER_YEAR = 365 * 24 * 60
MONTH = "2026-10"
MONTH_DAYS = 31
SAMPLE_TABLES = ("ocpp_samples", "ocpp_sample_series", "ocpp_sample_layouts", "ocpp_sample_texts")

# The previous layout exactly as revision 0001 created it (SQLite DDL).
OLD_LAYOUT = """
CREATE TABLE ocpp_meter_values (
    id INTEGER NOT NULL, charger_id VARCHAR(48) NOT NULL, connector_id INTEGER NOT NULL,
    transaction_id INTEGER, timestamp DATETIME NOT NULL, measurand VARCHAR(48) NOT NULL,
    phase VARCHAR(8) NOT NULL, location VARCHAR(8) NOT NULL, context VARCHAR(24) NOT NULL,
    unit VARCHAR(12) NOT NULL, format VARCHAR(12) NOT NULL, value TEXT NOT NULL, value_num FLOAT,
    CONSTRAINT pk_ocpp_meter_values PRIMARY KEY (id),
    CONSTRAINT uq_ocpp_meter_values_sample
        UNIQUE (charger_id, connector_id, timestamp, measurand, phase, location, context)
);
CREATE INDEX ix_ocpp_meter_values_tx ON ocpp_meter_values (transaction_id);
"""
OLD_COLUMNS = (
    "charger_id", "connector_id", "transaction_id", "timestamp", "measurand", "phase", "location", "context",
    "unit", "format", "value", "value_num",
)  # fmt: skip


def table_bytes(path: Path, tables: tuple[str, ...]) -> int:
    """Bytes of the given tables and every index on them (dbstat page sizes)."""
    with sqlite3.connect(path) as conn:
        marks = ",".join("?" * len(tables))
        names = list(tables) + [
            r[0]
            for r in conn.execute(
                f"SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN ({marks})", tables
            )
        ]
        return int(
            conn.execute(
                f"SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name IN ({','.join('?' * len(names))})", names
            ).fetchone()[0]
        )


def count(path: Path, sql: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(sql).fetchone()[0])


def old_layout_copy(url: str, out: Path) -> int:
    """Every stored sampled value, decoded, in arrival order, into the old one-row-per-value table."""
    from sqlalchemy import create_engine as create_sync_engine

    engine = create_sync_engine(url.replace("+aiosqlite", ""))
    rows = 0
    with engine.connect() as src, sqlite3.connect(out) as dst:
        dst.executescript(OLD_LAYOUT)
        series = {r.id: r._mapping for r in src.execute(select(sv.SERIES))}
        layouts = sv.load_layouts(src)
        texts = sv.texts_for(src, series)
        last = 0
        insert = f"INSERT INTO ocpp_meter_values ({', '.join(OLD_COLUMNS)}) VALUES ({', '.join('?' * 12)})"
        while True:
            query = select(sv.SAMPLES).where(sv.SAMPLES.c.id > last).order_by(sv.SAMPLES.c.id).limit(50_000)
            chunk = src.execute(query)
            batch = []
            for r in chunk:
                m = r._mapping
                last = m["id"]
                key = (m["series_id"], m["at_s"], m["at_us"], m["layout_id"])
                for v in sv.decode(m, series[m["series_id"]], layouts[m["layout_id"]], texts.get(key)):
                    # SQLAlchemy's SQLite DATETIME text, as UTCDateTime stored it
                    v["timestamp"] = v["timestamp"].strftime("%Y-%m-%d %H:%M:%S.%f")
                    batch.append(tuple(v[c] for c in OLD_COLUMNS))
            if not batch:
                break
            dst.executemany(insert, batch)
            rows += len(batch)
        dst.commit()
    engine.dispose()
    return rows


def minimal_wide_copy(path: Path, out: Path) -> int:
    """The month pivoted into one row per charger-minute (WITHOUT ROWID, key (charger, minute))."""
    with sqlite3.connect(out) as conn:
        conn.execute(f"ATTACH DATABASE '{path}' AS src")
        conn.executescript(
            """
            CREATE TABLE readings (
                charger INTEGER NOT NULL, at INTEGER NOT NULL, tx INTEGER, energy_wh INTEGER NOT NULL,
                power_w INTEGER, i_l1 REAL, i_l2 REAL, i_l3 REAL, voltage REAL,
                PRIMARY KEY (charger, at)
            ) WITHOUT ROWID;
            CREATE TABLE chargers (id INTEGER PRIMARY KEY, name TEXT UNIQUE);
            INSERT INTO chargers (name) SELECT DISTINCT charger_id FROM src.ocpp_sample_series;
            INSERT OR IGNORE INTO readings
            SELECT c.id, s.at_s, r.transaction_id, s.energy_mwh / 1000, s.power_dw / 10,
                   s.current_l1_ca / 100.0, s.current_l2_ca / 100.0, s.current_l3_ca / 100.0, s.voltage_dv / 10.0
            FROM src.ocpp_samples s
            JOIN src.ocpp_sample_series r ON r.id = s.series_id
            JOIN chargers c ON c.name = r.charger_id
            WHERE s.energy_mwh IS NOT NULL;
            """
        )
        conn.commit()
        conn.execute("DETACH DATABASE src")
        return int(conn.execute("SELECT COUNT(*) FROM readings").fetchone()[0])


async def fetch_energy(url: str) -> float:
    engine = create_engine(url)
    start = time.perf_counter()
    async with engine.connect() as conn:
        stmt = select(sv.SAMPLES.c.series_id, sv.SAMPLES.c.at_s, sv.SAMPLES.c.energy_mwh).where(
            sv.SAMPLES.c.energy_mwh.is_not(None)
        )
        (await conn.execute(stmt)).all()
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
            "digest": result.run.digest(),
        }
    await engine.dispose()
    return best, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--db", type=Path, help="Reuse (or create) this database instead of a temporary one.")
    args = parser.parse_args()
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
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

        samples = count(db, "SELECT COUNT(*) FROM ocpp_samples")
        plugged_minutes = count(db, "SELECT COUNT(*) FROM ocpp_samples WHERE energy_mwh IS NOT NULL")
        new_bytes = table_bytes(db, SAMPLE_TABLES)
        old_db = Path(tmp) / "old.db"
        values = old_layout_copy(url, old_db)
        old_bytes = table_bytes(old_db, ("ocpp_meter_values",))
        wide_db = Path(tmp) / "wide.db"
        wide_rows = minimal_wide_copy(db, wide_db)
        wide_bytes = table_bytes(wide_db, ("readings", "chargers"))
        sub_rows, sub_bytes = (
            count(db, "SELECT COUNT(*) FROM metering_readings"),
            table_bytes(db, ("metering_readings",)),
        )

    continuous = MINUTES_PER_YEAR * len(site.evse)
    layouts = {
        "old per-value rows": (old_bytes, samples),
        "compact store": (new_bytes, samples),
        "minimal wide table": (wide_bytes, wide_rows),
    }
    storage = {}
    for name, (size, rows) in layouts.items():
        storage[name] = {
            "month_bytes": size,
            "bytes_per_sample": round(size / rows, 1),
            "year_realistic_bytes": round(size * 365 / MONTH_DAYS),
            "year_continuous_bytes": round(size / rows * continuous),
            "vs_old": round(size / old_bytes, 3),
        }
    ours = storage["compact store"]
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
        "billed_matches_previous_run": {k: v for k, v in billed.items() if k != "digest"}
        == {k: v for k, v in previous.get("billed", {}).items() if k != "digest"},
        "sampled_values": values,
        "samples": samples,
        "plugged_minutes_per_month": plugged_minutes,
        "storage_baseline": "old per-value rows",
        "storage": storage,
        "year_realistic_ok": ours["year_realistic_bytes"] < TARGET_BYTES,
        "year_continuous_ok": ours["year_continuous_bytes"] < TARGET_BYTES,
        "submeter_bytes_per_row": round(sub_bytes / sub_rows, 1),
        "method": "generated one month; bytes of tables + indexes by dbstat; a year extrapolated by rows "
        "(realistic: × 365/31; continuous: bytes per sample × 30 chargers × 525,600 minutes)",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    print(f"billing {result['month']}: {billed['sessions']} sessions, {samples:,} samples ({values:,} sampled values)")
    print(f"{'measure':<40}{'value':>12}{'vs baseline/target':>22}")
    print(f"{'baseline: fetch energy samples':<40}{baseline_s:>11.3f}s{1.0:>21.2f}x")
    print(f"{'bill_month (best of ' + str(args.repeat) + ')':<40}{bill_s:>11.3f}s{bill_s / baseline_s:>21.2f}x")
    print(f"{'  target':<40}{TARGET_S:>11.1f}s{'ok' if bill_s < TARGET_S else 'MISSED':>22}")
    print()
    gib = 2**30
    print(f"{'storage layout':<22}{'B/sample':>10}{'year realistic':>16}{'year continuous':>17}{'vs old':>9}")
    for name, s in storage.items():
        print(
            f"{name:<22}{s['bytes_per_sample']:>10.1f}{s['year_realistic_bytes'] / gib:>12.3f} GiB"
            f"{s['year_continuous_bytes'] / gib:>13.3f} GiB{s['vs_old']:>8.3f}x"
        )
    verdict = "ok" if result["year_realistic_ok"] and result["year_continuous_ok"] else "MISSED"
    print(f"{'target: a year < 1 GiB (compact store)':<40}{verdict:>34}")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
