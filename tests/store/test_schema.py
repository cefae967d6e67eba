"""The alembic migrations build exactly the schema the code declares, on SQLite and on PostgreSQL.

`alembic upgrade head` (what every store runs when it opens) is compared with the SQLAlchemy metadata
of every table module by alembic's own autogenerate comparison: no table, column, type, index or
unique constraint may differ. A database written before the compact samples existed is migrated
without losing a value.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from evsite.store.db import create_engine, migrate
from evsite.store.samples import read_values
from evsite.store.schema import metadata
from tests.conftest import POSTGRES_URL, port_open, scratch_engine

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        eng = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'schema.db'}")
        yield eng
        await eng.dispose()
        return
    if not port_open("127.0.0.1", 5432):
        pytest.skip("PostgreSQL not reachable at 127.0.0.1:5432")
    async with scratch_engine(POSTGRES_URL, "schema") as eng:
        yield eng


def differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
    return list(compare_metadata(context, metadata()))


async def test_migrated_schema_equals_the_metadata(engine: AsyncEngine) -> None:
    await migrate(engine)
    async with engine.connect() as conn:
        diff = await conn.run_sync(differences)
        tables = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
    assert diff == []
    # the billing and API tables come from the migrations too (nothing is created at run time any more)
    assert {
        "metering_readings",
        "billing_periods",
        "api_token",
        "api_audit",
        "ocpp_samples",
        "ocpp_data_flags",
        "ocpp201_transactions",
    } <= tables
    assert "ocpp_meter_values" not in tables


async def test_migrating_again_is_a_no_op(engine: AsyncEngine) -> None:
    await migrate(engine)
    await migrate(engine)
    async with engine.connect() as conn:
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
    assert version == "0005_ocpp201_transactions"


OLD_ROWS = [
    # (charger, connector, tx, seconds after T0, measurand, phase, location, context, unit, format, value)
    ("CP-1", 1, 7, 0, "Energy.Active.Import.Register", "", "Outlet", "Sample.Periodic", "Wh", "Raw", "1000"),
    ("CP-1", 1, 7, 0, "Current.Import", "L1", "Outlet", "Sample.Periodic", "A", "Raw", "16.0"),
    ("CP-1", 1, 7, 0, "Voltage", "L1-N", "Outlet", "Sample.Periodic", "V", "Raw", "230.10"),
    ("CP-1", 1, 7, 60, "Energy.Active.Import.Register", "", "Outlet", "Sample.Periodic", "kWh", "Raw", "1.2607"),
    ("CP-1", 1, 7, 60, "SoC", "", "EV", "Sample.Periodic", "Percent", "Raw", "41"),
    ("CP-1", 1, 7, 120, "Energy.Active.Import.Register", "", "Outlet", "Transaction.End", "", "SignedData", "<OCMF>"),
    ("CP-2", 0, None, 30, "Energy.Active.Import.Register", "", "Inlet", "Sample.Clock", "Wh", "Raw", "00042"),
]


async def test_old_meter_values_move_into_compact_samples_losslessly(engine: AsyncEngine) -> None:
    await migrate(engine, "0001_ocpp")
    async with engine.begin() as conn:
        for n, (cp, conn_id, tx, dt, measurand, phase, location, context, unit, fmt, value) in enumerate(OLD_ROWS):
            stamp = (T0 + timedelta(seconds=dt)).replace(tzinfo=None)
            await conn.execute(
                text(
                    "INSERT INTO ocpp_meter_values (id, charger_id, connector_id, transaction_id, timestamp,"
                    " measurand, phase, location, context, unit, format, value)"
                    " VALUES (:id, :cp, :c, :tx, :ts, :m, :p, :l, :ctx, :u, :f, :v)"
                ),
                {
                    "id": n + 1, "cp": cp, "c": conn_id, "tx": tx,
                    "ts": stamp if engine.dialect.name == "sqlite" else stamp.replace(tzinfo=UTC),
                    "m": measurand, "p": phase, "l": location, "ctx": context, "u": unit, "f": fmt, "v": value,
                },
            )  # fmt: skip
    await migrate(engine)
    async with engine.connect() as conn:
        values = await conn.run_sync(lambda sync: read_values(sync))
        samples = (await conn.execute(text("SELECT COUNT(*) FROM ocpp_samples"))).scalar_one()
    got = [
        (
            v["charger_id"], v["connector_id"], v["transaction_id"], int((v["timestamp"] - T0).total_seconds()),
            v["measurand"], v["phase"], v["location"], v["context"], v["unit"], v["format"], v["value"],
        )
        for v in values
    ]  # fmt: skip
    assert got == OLD_ROWS  # same values, same text, same arrival order
    assert samples == 4  # one row per meter time (per charger), not per value
