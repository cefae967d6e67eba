"""Billing tables (submeter readings, closed periods, adjustments, runs) and API tokens/audit log.

These tables used to be created at run time with `create_all`; a database made that way already has
them, so each is created only where it is missing (the definitions are the same).

Revision ID: 0002_billing_api
Revises: 0001_ocpp
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_billing_api"
down_revision = "0001_ocpp"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _missing(name: str) -> bool:
    return name not in sa.inspect(op.get_bind()).get_table_names()


def upgrade() -> None:
    if _missing("metering_readings"):
        op.create_table(
            "metering_readings",
            sa.Column("id", BigId, autoincrement=True, nullable=False),
            sa.Column("meter_id", sa.String(length=48), nullable=False),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("energy_wh", sa.Numeric(precision=18, scale=3), nullable=False),
            sa.Column("power_w", sa.Float(), nullable=True),
            sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_metering_readings")),
            sa.UniqueConstraint("meter_id", "at", name="uq_metering_readings_meter_at"),
        )
    if _missing("billing_periods"):
        op.create_table(
            "billing_periods",
            sa.Column("month", sa.String(length=7), nullable=False),
            sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("digest", sa.String(length=64), nullable=False),
            sa.Column("run_json", sa.Text(), nullable=False),
            sa.Column("closed_by", sa.String(length=100), nullable=True),
            sa.PrimaryKeyConstraint("month", name=op.f("pk_billing_periods")),
        )
    if _missing("billing_adjustments"):
        op.create_table(
            "billing_adjustments",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("unit_id", sa.String(length=48), nullable=False),
            sa.Column("posted_month", sa.String(length=7), nullable=False),
            sa.Column("description", sa.String(length=200), nullable=False),
            sa.Column("amount", sa.Numeric(precision=12, scale=4), nullable=False),
            sa.Column("taxable", sa.Boolean(), nullable=False),
            sa.Column("refers_to", sa.String(length=100), nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("created_by", sa.String(length=100), nullable=True),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_adjustments")),
        )
        with op.batch_alter_table("billing_adjustments", schema=None) as batch_op:
            batch_op.create_index("ix_billing_adjustments_month", ["posted_month"], unique=False)
    if _missing("billing_runs"):
        op.create_table(
            "billing_runs",
            sa.Column("id", BigId, autoincrement=True, nullable=False),
            sa.Column("month", sa.String(length=7), nullable=False),
            sa.Column("ran_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("digest", sa.String(length=64), nullable=False),
            sa.Column("sessions", sa.Integer(), nullable=False),
            sa.Column("closed_period", sa.Boolean(), nullable=False),
            sa.Column("matches_closed", sa.Boolean(), nullable=True),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_runs")),
        )
    if _missing("api_token"):
        op.create_table(
            "api_token",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("name", sa.String(length=64), nullable=False),
            sa.Column("role", sa.String(length=16), nullable=False),
            sa.Column("digest", sa.String(length=64), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_api_token")),
            sa.UniqueConstraint("name", name=op.f("uq_api_token_name")),
        )
        with op.batch_alter_table("api_token", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_api_token_digest"), ["digest"], unique=True)
    if _missing("api_audit"):
        op.create_table(
            "api_audit",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("actor", sa.String(length=64), nullable=False),
            sa.Column("role", sa.String(length=16), nullable=True),
            sa.Column("method", sa.String(length=8), nullable=False),
            sa.Column("path", sa.String(length=512), nullable=False),
            sa.Column("status", sa.Integer(), nullable=False),
            sa.Column("detail", sa.Text(), nullable=True),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_api_audit")),
        )
        with op.batch_alter_table("api_audit", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_api_audit_at"), ["at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("api_audit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_audit_at"))
    op.drop_table("api_audit")
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_token_digest"))
    op.drop_table("api_token")
    op.drop_table("billing_runs")
    with op.batch_alter_table("billing_adjustments", schema=None) as batch_op:
        batch_op.drop_index("ix_billing_adjustments_month")
    op.drop_table("billing_adjustments")
    op.drop_table("billing_periods")
    op.drop_table("metering_readings")
