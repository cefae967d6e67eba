"""OCPP central system tables: chargers, connectors, transactions, meter values, profiles.

Revision ID: 0001_ocpp
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_ocpp"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "ocpp_boots",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("charger_id", sa.String(length=48), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ocpp_boots")),
    )
    with op.batch_alter_table("ocpp_boots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ocpp_boots_charger_id"), ["charger_id"], unique=False)

    op.create_table(
        "ocpp_chargers",
        sa.Column("id", sa.String(length=48), nullable=False),
        sa.Column("in_site", sa.Boolean(), nullable=False),
        sa.Column("registration_status", sa.String(length=16), nullable=False),
        sa.Column("vendor", sa.String(length=20), nullable=True),
        sa.Column("model", sa.String(length=20), nullable=True),
        sa.Column("serial_number", sa.String(length=25), nullable=True),
        sa.Column("charge_box_serial_number", sa.String(length=25), nullable=True),
        sa.Column("firmware_version", sa.String(length=50), nullable=True),
        sa.Column("iccid", sa.String(length=20), nullable=True),
        sa.Column("imsi", sa.String(length=20), nullable=True),
        sa.Column("meter_type", sa.String(length=25), nullable=True),
        sa.Column("meter_serial_number", sa.String(length=25), nullable=True),
        sa.Column("last_boot_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("local_list_version", sa.Integer(), nullable=False),
        sa.Column("firmware_status", sa.String(length=32), nullable=True),
        sa.Column("diagnostics_status", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ocpp_chargers")),
    )
    op.create_table(
        "ocpp_charging_profiles",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("charger_id", sa.String(length=48), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("stack_level", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("rate_unit", sa.String(length=1), nullable=False),
        sa.Column("limit", sa.Float(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ocpp_charging_profiles")),
    )
    with op.batch_alter_table("ocpp_charging_profiles", schema=None) as batch_op:
        batch_op.create_index("ix_ocpp_charging_profiles_cp", ["charger_id", "connector_id", "sent_at"], unique=False)

    op.create_table(
        "ocpp_configuration",
        sa.Column("charger_id", sa.String(length=48), nullable=False),
        sa.Column("key", sa.String(length=50), nullable=False),
        sa.Column("value", sa.String(length=500), nullable=True),
        sa.Column("readonly", sa.Boolean(), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("charger_id", "key", name=op.f("pk_ocpp_configuration")),
    )
    op.create_table(
        "ocpp_connectors",
        sa.Column("charger_id", sa.String(length=48), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=32), nullable=False),
        sa.Column("info", sa.String(length=50), nullable=True),
        sa.Column("vendor_error_code", sa.String(length=50), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("charger_id", "connector_id", name=op.f("pk_ocpp_connectors")),
    )
    op.create_table(
        "ocpp_firmware_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("charger_id", sa.String(length=48), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=512), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ocpp_firmware_events")),
    )
    with op.batch_alter_table("ocpp_firmware_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ocpp_firmware_events_charger_id"), ["charger_id"], unique=False)

    op.create_table(
        "ocpp_id_tags",
        sa.Column("id_tag", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("expiry_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("parent_id_tag", sa.String(length=20), nullable=True),
        sa.Column("unit_id", sa.String(length=48), nullable=True),
        sa.PrimaryKeyConstraint("id_tag", name=op.f("pk_ocpp_id_tags")),
    )
    op.create_table(
        "ocpp_meter_values",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("charger_id", sa.String(length=48), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("transaction_id", sa.Integer(), nullable=True),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("measurand", sa.String(length=48), nullable=False),
        sa.Column("phase", sa.String(length=8), nullable=False),
        sa.Column("location", sa.String(length=8), nullable=False),
        sa.Column("context", sa.String(length=24), nullable=False),
        sa.Column("unit", sa.String(length=12), nullable=False),
        sa.Column("format", sa.String(length=12), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("value_num", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ocpp_meter_values")),
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
    with op.batch_alter_table("ocpp_meter_values", schema=None) as batch_op:
        batch_op.create_index("ix_ocpp_meter_values_tx", ["transaction_id"], unique=False)

    op.create_table(
        "ocpp_reservations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("charger_id", sa.String(length=48), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("id_tag", sa.String(length=20), nullable=False),
        sa.Column("parent_id_tag", sa.String(length=20), nullable=True),
        sa.Column("expiry_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ocpp_reservations")),
    )
    with op.batch_alter_table("ocpp_reservations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ocpp_reservations_charger_id"), ["charger_id"], unique=False)

    op.create_table(
        "ocpp_status_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("charger_id", sa.String(length=48), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=32), nullable=False),
        sa.Column("info", sa.String(length=50), nullable=True),
        sa.Column("vendor_id", sa.String(length=255), nullable=True),
        sa.Column("vendor_error_code", sa.String(length=50), nullable=True),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ocpp_status_history")),
    )
    with op.batch_alter_table("ocpp_status_history", schema=None) as batch_op:
        batch_op.create_index("ix_ocpp_status_history_cp_at", ["charger_id", "received_at"], unique=False)

    op.create_table(
        "ocpp_transactions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("charger_id", sa.String(length=48), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("id_tag", sa.String(length=20), nullable=False),
        sa.Column("auth_status", sa.String(length=16), nullable=False),
        sa.Column("meter_start", sa.BigInteger(), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reservation_id", sa.Integer(), nullable=True),
        sa.Column("meter_stop", sa.BigInteger(), nullable=True),
        sa.Column("stop_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stop_reason", sa.String(length=32), nullable=True),
        sa.Column("stop_id_tag", sa.String(length=20), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ocpp_transactions")),
        sa.UniqueConstraint(
            "charger_id", "connector_id", "start_time", "meter_start", name="uq_ocpp_transactions_start"
        ),
    )
    with op.batch_alter_table("ocpp_transactions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ocpp_transactions_charger_id"), ["charger_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("ocpp_transactions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ocpp_transactions_charger_id"))

    op.drop_table("ocpp_transactions")
    with op.batch_alter_table("ocpp_status_history", schema=None) as batch_op:
        batch_op.drop_index("ix_ocpp_status_history_cp_at")

    op.drop_table("ocpp_status_history")
    with op.batch_alter_table("ocpp_reservations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ocpp_reservations_charger_id"))

    op.drop_table("ocpp_reservations")
    with op.batch_alter_table("ocpp_meter_values", schema=None) as batch_op:
        batch_op.drop_index("ix_ocpp_meter_values_tx")

    op.drop_table("ocpp_meter_values")
    op.drop_table("ocpp_id_tags")
    with op.batch_alter_table("ocpp_firmware_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ocpp_firmware_events_charger_id"))

    op.drop_table("ocpp_firmware_events")
    op.drop_table("ocpp_connectors")
    op.drop_table("ocpp_configuration")
    with op.batch_alter_table("ocpp_charging_profiles", schema=None) as batch_op:
        batch_op.drop_index("ix_ocpp_charging_profiles_cp")

    op.drop_table("ocpp_charging_profiles")
    op.drop_table("ocpp_chargers")
    with op.batch_alter_table("ocpp_boots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ocpp_boots_charger_id"))

    op.drop_table("ocpp_boots")
