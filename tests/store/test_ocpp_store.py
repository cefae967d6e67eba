"""The OCPP store on SQLite and on PostgreSQL (same tests; PostgreSQL skips when not running)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from evsite.store.db import default_url, normalise_url
from evsite.store.ocpp import OcppStore
from tests.conftest import scratch_schema

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OcppStore]:
    if request.param == "sqlite":
        s = await OcppStore.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
        yield s
        await s.close()
        return
    url = request.getfixturevalue("postgres_url")
    async with scratch_schema(url) as schema:
        s = await OcppStore.open(url, schema=schema)
        yield s
        await s.close()


def sample(
    ts: datetime, value: str, measurand: str = "Energy.Active.Import.Register", phase: str = ""
) -> dict[str, Any]:
    return {
        "charger_id": "CP-1",
        "connector_id": 1,
        "transaction_id": None,
        "timestamp": ts,
        "measurand": measurand,
        "phase": phase,
        "location": "Outlet",
        "context": "Sample.Periodic",
        "unit": "Wh",
        "format": "Raw",
        "value": value,
        "value_num": float(value),
    }


def test_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert normalise_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert normalise_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    monkeypatch.chdir(tmp_path)
    # data goes to the current directory, never beside the site file (the examples live inside the package)
    assert default_url(Path("/srv/site.yaml")) == f"sqlite+aiosqlite:///{tmp_path.resolve()}/site.db"
    assert default_url(Path("/srv/site.yaml"), "-replay") == f"sqlite+aiosqlite:///{tmp_path.resolve()}/site-replay.db"


async def test_migrations_applied(store: OcppStore) -> None:
    async with store.engine.connect() as conn:
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
    assert version == "0005_ocpp201_transactions"


async def test_start_transaction_is_idempotent(store: OcppStore) -> None:
    first = await store.start_transaction("CP-1", 1, "TAG", "Accepted", 100, T0, None)
    again = await store.start_transaction("CP-1", 1, "TAG", "Accepted", 100, T0, None)
    other = await store.start_transaction("CP-1", 2, "TAG", "Accepted", 100, T0, None)
    assert first == again != other
    assert await store.open_transactions("CP-1") == {1: first, 2: other}
    row = await store.stop_transaction("CP-1", first, 500, T0 + timedelta(hours=1), "Local", "TAG")
    resent = await store.stop_transaction("CP-1", first, 999, T0 + timedelta(hours=2), "Other", None)
    assert row is not None and resent is not None
    assert resent["meter_stop"] == 500 and resent["stop_reason"] == "Local"  # the first stop wins
    assert await store.stop_transaction("CP-1", 424242, 1, T0, None, None) is None


async def test_meter_values_stored_once_and_times_stay_utc(store: OcppStore) -> None:
    pacific = timezone(timedelta(hours=-8))
    stamp = datetime(2026, 3, 1, 0, 0, 0, 123000, tzinfo=pacific)
    rows = [sample(stamp, "10"), sample(stamp, "16.0", "Current.Import", "L1")]
    await asyncio.gather(*(store.add_meter_values(rows) for _ in range(5)))
    stored = await store.meter_values("CP-1")
    assert len(stored) == 2
    assert stored[0]["timestamp"] == stamp and stored[0]["timestamp"].tzinfo == UTC


async def test_group_commit_batches_and_isolates_failures(store: OcppStore) -> None:
    async def bad(conn: AsyncConnection) -> None:
        await conn.execute(text("INSERT INTO no_such_table VALUES (1)"))

    await asyncio.gather(*[store.add_meter_values([sample(T0 + timedelta(seconds=i), str(i))]) for i in range(300)])
    assert store.writer.batches < 300  # concurrent writes shared commits
    # One failing write in a batch: it alone fails, the others are retried and committed.
    writes = [store.add_meter_values([sample(T0 + timedelta(seconds=i), str(i))]) for i in range(300, 320)]
    failing = asyncio.ensure_future(store.writer.run(bad))
    writes.append(store.add_meter_values([sample(T0 + timedelta(seconds=999), "999")]))
    await asyncio.gather(*writes)
    with pytest.raises(Exception, match="no_such_table"):
        await failing
    assert len(await store.meter_values("CP-1")) == 321


async def test_boot_status_config_profiles(store: OcppStore) -> None:
    await store.register_site_chargers([("CP-1", "pbkdf2_sha256$1$00$00")])
    await store.record_boot(
        "CP-1", {"chargePointVendor": "V", "chargePointModel": "M", "firmwareVersion": "1.2"}, "Accepted", T0
    )
    await store.record_status("CP-1", {"connectorId": 1, "status": "Charging", "errorCode": "NoError"}, None, T0)
    await store.record_status("CP-1", {"connectorId": 1, "status": "Finishing", "errorCode": "NoError"}, None, T0)
    await store.save_configuration("CP-1", [{"key": "HeartbeatInterval", "value": "300", "readonly": False}], T0)
    charger = await store.charger("CP-1")
    assert charger is not None and charger["in_site"] and charger["firmware_version"] == "1.2"
    assert charger["password_hash"] == "pbkdf2_sha256$1$00$00"
    assert [c["status"] for c in await store.connectors("CP-1")] == ["Finishing"]
    assert await store.configuration("CP-1") == {"HeartbeatInterval": "300"}
    profile = {
        "chargingProfileId": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "ChargePointMaxProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 8.0}]},
    }
    await store.record_profile("CP-1", 0, profile, 8.0, "Rejected")
    assert [(p["purpose"], p["limit"], p["status"]) for p in await store.profiles("CP-1")] == [
        ("ChargePointMaxProfile", 8.0, "Rejected")
    ]
