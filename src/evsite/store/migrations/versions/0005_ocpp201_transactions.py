"""OCPP 2.0.1 transactions: the station's string transactionId → our integer transaction id.

Revision ID: 0005_ocpp201_transactions
Revises: 0004_ocpp_data_flags
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_ocpp201_transactions"
down_revision = "0004_ocpp_data_flags"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ocpp201_transactions",
        sa.Column("charger_id", sa.String(48), nullable=False),
        sa.Column("station_tx_id", sa.String(36), nullable=False),
        sa.Column("transaction_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("charger_id", "station_tx_id", name=op.f("pk_ocpp201_transactions")),
        sa.UniqueConstraint("transaction_id", name=op.f("uq_ocpp201_transactions_transaction_id")),
    )


def downgrade() -> None:
    op.drop_table("ocpp201_transactions")
