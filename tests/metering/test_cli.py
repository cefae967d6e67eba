"""`evsite bill`, `evsite adjust` and `evsite readings export` on a generated month (SQLite), plus OCMF in the store."""

from __future__ import annotations

import asyncio
import csv
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, insert, select
from typer.testing import CliRunner

from evsite.cli import app
from evsite.metering.month import write_month
from evsite.metering.tables import SubmeterReading
from evsite.site import dump_site
from evsite.store.db import create_engine
from evsite.store.models import Transaction
from evsite.store.samples import value_count
from tests.metering.helpers import store_samples
from tests.metering.test_ocmf import PAYLOAD, sign
from tests.metering.test_store import small_site

runner = CliRunner()


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A site file and a database holding four days of its sessions plus the month-boundary session."""
    root = tmp_path_factory.mktemp("bill")
    site_file = root / "site.yaml"
    site_file.write_text(dump_site(small_site()), encoding="utf-8")
    url = f"sqlite+aiosqlite:///{root / 'site.db'}"

    async def write() -> None:
        engine = create_engine(url, synchronous="OFF")
        await write_month(engine, small_site(), "2026-10", days=4, rollover_charger="MF-P1-07")
        await engine.dispose()

    asyncio.run(write())
    return site_file, url


def count(url: str, stmt: object) -> int:
    async def run() -> int:
        engine = create_engine(url)
        async with engine.connect() as conn:
            value = (await conn.execute(stmt)).scalar_one()  # type: ignore[call-overload]
        await engine.dispose()
        return int(value)

    return asyncio.run(run())


def values(url: str) -> int:
    """Sampled values stored (each compact sample row holds its layout's number of values)."""

    async def run() -> int:
        engine = create_engine(url)
        async with engine.connect() as conn:
            n = await conn.run_sync(value_count)
        await engine.dispose()
        return n

    return asyncio.run(run())


def test_bill_writes_statements_and_json(generated: tuple[Path, str], tmp_path: Path) -> None:
    site_file, url = generated
    result = runner.invoke(
        app, ["bill", str(site_file), "--month", "2026-10", "--db", url, "--out", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["summary"]["month"] == "2026-10"
    units = {s["unit_id"] for s in data["statements"]}
    with (tmp_path / "statements-2026-10.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {r["unit_id"] for r in rows} == units
    assert sum(Decimal(r["total_usd"]) for r in rows) == Decimal(data["summary"]["total_billed"])
    # counts and energy over the same sets: billed sessions and their kWh, the rest in the not-billed columns
    for r in rows:
        (st,) = [s for s in data["statements"] if s["unit_id"] == r["unit_id"]]
        billed = [e for e in st["sessions"] if e["billable"]]
        assert int(r["sessions_billed"]) == len(billed)
        assert int(r["sessions_billed"]) + int(r["sessions_not_billed"]) == len(st["sessions"])
        assert Decimal(r["energy_billed_kwh"]) * 1000 == sum(e["period_energy_wh"] for e in billed) == st["energy_wh"]
        assert Decimal(r["subtotal_usd"]) + Decimal(r["tax_usd"]) == Decimal(r["total_usd"])
    html = (tmp_path / "statements-2026-10.html").read_text()
    assert html.count("<section class=statement>") == len(units)
    assert "not billed: meter MF-P2-01 is informational" in html
    assert (tmp_path / "summary-2026-10.html").read_text().count("M-P1") >= 1


def test_bill_close_and_rerun_reports_reproduction(generated: tuple[Path, str], tmp_path: Path) -> None:
    site_file, url = generated
    first = runner.invoke(
        app, ["bill", str(site_file), "--month", "2026-11", "--db", url, "--out", str(tmp_path), "--close"]
    )
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, ["bill", str(site_file), "--month", "2026-11", "--db", url, "--out", str(tmp_path)])
    assert again.exit_code == 0 and "reproduces it exactly" in again.stderr
    refused = runner.invoke(
        app,
        [
            "adjust",
            str(site_file),
            "--unit",
            "U101",
            "--month",
            "2026-11",
            "--amount",
            "-1",
            "--description",
            "x",
            "--db",
            url,
        ],
    )
    assert refused.exit_code == 2 and "is closed" in refused.stderr


def test_bad_input_gets_a_clear_error(generated: tuple[Path, str]) -> None:
    site_file, url = generated
    bad_month = runner.invoke(app, ["bill", str(site_file), "--month", "October", "--db", url])
    assert bad_month.exit_code == 2 and "2026-10" in bad_month.stderr
    bad_amount = runner.invoke(
        app, ["adjust", str(site_file), "--unit", "U101", "--month", "2026-12", "--amount", "ten", "--description", "x"]
    )
    assert bad_amount.exit_code == 2 and "not a number" in bad_amount.stderr


def test_readings_export_has_every_stored_reading(generated: tuple[Path, str], tmp_path: Path) -> None:
    site_file, url = generated
    out = tmp_path / "readings.csv"
    result = runner.invoke(
        app,
        [
            "readings",
            "export",
            str(site_file),
            "--from",
            "2026-10-01",
            "--to",
            "2026-11-02",
            "--db",
            url,
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    stored = values(url) + count(url, select(func.count()).select_from(SubmeterReading))
    assert len(rows) == stored
    assert {r["source"] for r in rows} == {"ocpp", "submeter"}


def test_signed_meter_values_are_verified_from_the_store(tmp_path: Path) -> None:
    """A session whose charger sent OCMF: verified with the key given, held when the signature is bad."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    site_file = tmp_path / "site.yaml"
    site_file.write_text(dump_site(small_site()), encoding="utf-8")
    url = f"sqlite+aiosqlite:///{tmp_path / 'site.db'}"
    good = sign(PAYLOAD, key)
    bad = good.replace('"RV":1009.000', '"RV":1008.000')

    async def store() -> None:
        from evsite.metering.tables import ensure_tables

        engine = create_engine(url, synchronous="OFF")
        await ensure_tables(engine)
        async with engine.begin() as conn:
            for tx_id, charger, text in ((1, "MF-P1-01", good), (2, "MF-P1-02", bad)):
                start, stop = datetime(2026, 10, 14, 22, 30, tzinfo=UTC), datetime(2026, 10, 14, 23, 45, tzinfo=UTC)
                await conn.execute(
                    insert(Transaction).values(
                        id=tx_id, charger_id=charger, connector_id=1, id_tag="TAG-U101", auth_status="Accepted",
                        meter_start=1_000_000, start_time=start, meter_stop=1_009_000, stop_time=stop,
                        received_at=stop,
                    )
                )  # fmt: skip
                await store_samples(
                    conn,
                    [
                        {
                            "charger_id": charger, "connector_id": 1, "transaction_id": tx_id, "timestamp": stop,
                            "measurand": "Energy.Active.Import.Register", "context": "Transaction.End",
                            "format": "SignedData", "value": text,
                        }
                    ],
                )  # fmt: skip
        await engine.dispose()

    asyncio.run(store())
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"MF-P1-01": public.hex(), "MF-P1-02": public.hex()}))
    result = runner.invoke(
        app,
        [
            "bill",
            str(site_file),
            "--month",
            "2026-10",
            "--db",
            url,
            "--out",
            str(tmp_path),
            "--json",
            "--keys",
            str(keys),
        ],
    )
    assert result.exit_code == 0, result.output
    entries = {e["key"]: e for s in json.loads(result.stdout)["statements"] for e in s["sessions"]}
    assert entries["MF-P1-01#1"]["billable"] is True and entries["MF-P1-01#1"]["signed"] == "verified"
    assert entries["MF-P1-02#2"]["billable"] is False and entries["MF-P1-02#2"]["signed"] == "failed"
    assert "signature does not match" in entries["MF-P1-02#2"]["reason"]
