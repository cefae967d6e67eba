"""Compact meter samples: one typed row per MeterValue element instead of one text row per value.

Creates `ocpp_sample_series`, `ocpp_sample_layouts`, `ocpp_samples` and `ocpp_sample_texts`, moves
every row of `ocpp_meter_values` into them in arrival order (lossless: each value's text is rendered
back exactly, or kept verbatim) and drops the old table. Downgrade does the reverse.

Revision ID: 0003_compact_samples
Revises: 0002_billing_api
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003_compact_samples"
down_revision = "0002_billing_api"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
CHUNK = 20_000


def _old_table() -> sa.Table:
    from evsite.store.models import UTCDateTime

    return sa.Table(
        "ocpp_meter_values",
        sa.MetaData(),
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("charger_id", sa.String(48), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("transaction_id", sa.Integer(), nullable=True),
        sa.Column("timestamp", UTCDateTime(), nullable=False),
        sa.Column("measurand", sa.String(48), nullable=False),
        sa.Column("phase", sa.String(8), nullable=False),
        sa.Column("location", sa.String(8), nullable=False),
        sa.Column("context", sa.String(24), nullable=False),
        sa.Column("unit", sa.String(12), nullable=False),
        sa.Column("format", sa.String(12), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("value_num", sa.Float(), nullable=True),
        sa.UniqueConstraint(
            "charger_id",
            "connector_id",
            "timestamp",
            "measurand",
            "phase",
            "location",
            "context",
            name="uq_ocpp_meter_values_sample",
        ),
    )


def _chunks(bind: sa.Connection, table: sa.Table) -> Iterator[list[dict[str, Any]]]:
    """Old rows in arrival order, in chunks that never split one element's rows."""
    last = 0
    tail: list[dict[str, Any]] = []
    while True:
        rows = [
            dict(r._mapping)
            for r in bind.execute(sa.select(table).where(table.c.id > last).order_by(table.c.id).limit(CHUNK))
        ]
        if not rows:
            break
        last = rows[-1]["id"]
        rows = tail + rows

        def key(r: dict[str, Any]) -> tuple[Any, ...]:
            return (r["charger_id"], r["connector_id"], r["transaction_id"], r["timestamp"])

        cut = len(rows)
        while cut > 0 and key(rows[cut - 1]) == key(rows[-1]):
            cut -= 1
        rows, tail = rows[:cut], rows[cut:]
        if rows:
            yield rows
    if tail:
        yield tail


def upgrade() -> None:
    op.create_table(
        "ocpp_sample_series",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("charger_id", sa.String(length=48), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("transaction_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ocpp_sample_series")),
        sa.UniqueConstraint("charger_id", "connector_id", "transaction_id", name="uq_ocpp_sample_series_key"),
    )
    with op.batch_alter_table("ocpp_sample_series", schema=None) as batch_op:
        batch_op.create_index("ix_ocpp_sample_series_tx", ["transaction_id"], unique=False)
    op.create_table(
        "ocpp_sample_layouts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ocpp_sample_layouts")),
        sa.UniqueConstraint("fields", name=op.f("uq_ocpp_sample_layouts_fields")),
    )
    op.create_table(
        "ocpp_samples",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("at_s", sa.BigInteger(), nullable=False),
        sa.Column("at_us", sa.Integer(), nullable=False),
        sa.Column("layout_id", sa.Integer(), nullable=False),
        sa.Column("energy_mwh", sa.BigInteger(), nullable=True),
        sa.Column("power_dw", sa.BigInteger(), nullable=True),
        sa.Column("current_l1_ca", sa.Integer(), nullable=True),
        sa.Column("current_l2_ca", sa.Integer(), nullable=True),
        sa.Column("current_l3_ca", sa.Integer(), nullable=True),
        sa.Column("voltage_dv", sa.Integer(), nullable=True),
        sa.Column("offered_ca", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ocpp_samples")),
        sa.UniqueConstraint("series_id", "at_s", "at_us", "layout_id", name="uq_ocpp_samples_key"),
    )
    op.create_table(
        "ocpp_sample_texts",
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("at_s", sa.BigInteger(), nullable=False),
        sa.Column("at_us", sa.Integer(), nullable=False),
        sa.Column("layout_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint(
            "series_id", "at_s", "at_us", "layout_id", "position", name=op.f("pk_ocpp_sample_texts")
        ),
        sqlite_with_rowid=False,
    )

    from evsite.store.samples import Ids, SampleWriter

    bind = op.get_bind()
    old = _old_table()
    writer, ids = SampleWriter(), Ids()
    for rows in _chunks(bind, old):
        writer.write(bind, rows, ids)
    with op.batch_alter_table("ocpp_meter_values", schema=None) as batch_op:
        batch_op.drop_index("ix_ocpp_meter_values_tx")
    op.drop_table("ocpp_meter_values")


def downgrade() -> None:
    from evsite.store.samples import insert_ignore, read_values

    bind = op.get_bind()
    values = read_values(bind)
    old = _old_table()
    old.create(bind)
    with op.batch_alter_table("ocpp_meter_values", schema=None) as batch_op:
        batch_op.create_index("ix_ocpp_meter_values_tx", ["transaction_id"], unique=False)
    for i in range(0, len(values), CHUNK):
        rows = [{k: v for k, v in r.items() if k != "id"} for r in values[i : i + CHUNK]]
        bind.execute(insert_ignore(bind, old), rows)
    op.drop_table("ocpp_sample_texts")
    op.drop_table("ocpp_samples")
    op.drop_table("ocpp_sample_layouts")
    with op.batch_alter_table("ocpp_sample_series", schema=None) as batch_op:
        batch_op.drop_index("ix_ocpp_sample_series_tx")
    op.drop_table("ocpp_sample_series")
