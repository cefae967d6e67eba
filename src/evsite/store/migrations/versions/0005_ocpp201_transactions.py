"""OCPP 2.0.1 transactions: the station's string transactionId → our integer transaction id.

Also widens the columns 2.0.1 fills with longer values: IdToken up to 36 characters (1.6 idTag: 20),
vendorName up to 50 (1.6 chargePointVendor: 20). SQLite does not enforce lengths; PostgreSQL does.

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


WIDER = {
    "ocpp_chargers": {"vendor": (20, 50)},
    "ocpp_id_tags": {"id_tag": (20, 36), "parent_id_tag": (20, 36)},
    "ocpp_transactions": {"id_tag": (20, 36), "stop_id_tag": (20, 36)},
    "ocpp_reservations": {"id_tag": (20, 36), "parent_id_tag": (20, 36)},
}


def _resize(grow: bool) -> None:
    for table, columns in WIDER.items():
        with op.batch_alter_table(table) as batch:
            for column, (narrow, wide) in columns.items():
                old, new = (narrow, wide) if grow else (wide, narrow)
                batch.alter_column(column, type_=sa.String(new), existing_type=sa.String(old))


def upgrade() -> None:
    _resize(grow=True)
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
    _resize(grow=False)
