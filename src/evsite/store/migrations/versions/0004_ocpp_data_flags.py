"""Flags of the OCPP plausibility gate: what a charger sent that failed it, and why.

Revision ID: 0004_ocpp_data_flags
Revises: 0003_compact_samples
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_ocpp_data_flags"
down_revision = "0003_compact_samples"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ocpp_data_flags",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("charger_id", sa.String(48), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=True),
        sa.Column("transaction_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("measurand", sa.String(48), nullable=True),
        sa.Column("value", sa.String(64), nullable=True),
        sa.Column("detail", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ocpp_data_flags")),
    )
    op.create_index("ix_ocpp_data_flags_tx", "ocpp_data_flags", ["transaction_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_ocpp_data_flags_tx", table_name="ocpp_data_flags")
    op.drop_table("ocpp_data_flags")
