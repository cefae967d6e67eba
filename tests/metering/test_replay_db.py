"""`evsite replay` stores its sessions and readings in the site's database like a live run; `evsite bill` bills them.

The replay of the multifamily month (first day and a half, four of the chargers) runs through the real
controller and writes through the OCPP store into SITE.db beside the site file (the default). The checks
read the raw tables with sqlite3, independently of the billing code: every stored session's register runs
from its start to its stop through 1-minute samples, and `evsite bill` bills each session's energy as
exactly its stop register minus its start register.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evsite.cli import app
from evsite.site import dump_site
from tests.metering.test_store import small_site

runner = CliRunner()
ENERGY_VALUES = """
    SELECT r.transaction_id, s.at_s, s.energy_mwh
    FROM ocpp_samples s JOIN ocpp_sample_series r ON r.id = s.series_id
    WHERE s.energy_mwh IS NOT NULL
    ORDER BY s.id
"""


def tables(db: Path) -> tuple[list[tuple[int, str, int, int | None, str | None]], dict[int, list[int]]]:
    with sqlite3.connect(db) as conn:
        txs = conn.execute(
            "SELECT id, charger_id, meter_start, meter_stop, stop_time FROM ocpp_transactions ORDER BY id"
        ).fetchall()
        registers: dict[int, list[int]] = {}
        for tx, _, mwh in conn.execute(ENERGY_VALUES):
            registers.setdefault(tx, []).append(mwh // 1000)
    return txs, registers


@pytest.mark.slow
def test_replayed_month_is_stored_like_a_live_run_and_bills(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # default databases go to the current directory
    site_file = tmp_path / "site.yaml"
    site_file.write_text(dump_site(small_site()), encoding="utf-8")
    args = ["replay", str(site_file), "--scenario", "multifamily-month", "--hours", "36", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    stored = json.loads(result.stdout)["stored"]
    db = tmp_path / "site-replay.db"  # a replay's own default database, apart from the live site.db
    assert stored["database"].endswith(str(db)) and stored["month"] == "2026-10"
    assert not (tmp_path / "site.db").exists()
    assert stored["transactions"] >= 3 and stored["meter_samples"] > 500

    txs, registers = tables(db)
    assert len(txs) == stored["transactions"]
    for tx, _, start, stop, stop_time in txs:
        series = registers[tx]
        assert series == sorted(series) and series[0] >= start  # a register only counts up
        if stop_time is not None:  # StopTransaction carried the final register (Transaction.End)
            assert series[-1] == stop
    assert sum(len(s) for s in registers.values()) == stored["meter_samples"] + sum(t[4] is not None for t in txs)

    out = tmp_path / "statements"
    live = runner.invoke(app, ["bill", str(site_file), "--month", "2026-10", "--out", str(out)])
    assert live.exit_code == 1 and "no database at" in live.output and not out.exists()  # the live DB has no replay
    bill = runner.invoke(
        app, ["bill", str(site_file), "--month", "2026-10", "--db", stored["database"], "--out", str(out), "--json"]
    )
    assert bill.exit_code == 0, bill.output
    run = json.loads(bill.stdout)
    entries = {e["key"]: e for s in run["statements"] for e in s["sessions"]} | {e["key"]: e for e in run["not_billed"]}
    assert run["statements"] and any(e["billable"] for e in entries.values())
    assert set(entries) == {f"{charger}#{tx}" for tx, charger, *_ in txs}
    for tx, charger, start, stop, _ in txs:
        if stop is not None:
            assert entries[f"{charger}#{tx}"]["energy_wh"] == stop - start
    assert list(out.glob("*.html")) and list(out.glob("*.csv"))

    # replaying the same period into the same database finds everything already there
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert tables(db) == (txs, registers)


def test_replay_stores_nothing_without_a_database(tmp_path: Path) -> None:
    site_file = tmp_path / "site.yaml"
    site_file.write_text(dump_site(small_site()), encoding="utf-8")
    args = ["replay", str(site_file), "--scenario", "multifamily-month", "--hours", "1", "--json", "--no-db"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "stored" not in json.loads(result.stdout) and not (tmp_path / "site.db").exists()
    bad = runner.invoke(app, [*args[:-1], "--db", f"sqlite:///{tmp_path}/no/such/dir/x.db"])
    assert bad.exit_code == 2 and "cannot open the database" in bad.output
