"""Billing tables: submeter readings, closed periods, adjustments and the run log.

Charger sessions and their samples live in the OCPP store's tables (`ocpp_transactions`,
`ocpp_samples`); these tables hold only what billing adds, and like every table they are created by
the store's alembic migrations. Rows here are append-only: a closed period keeps the exact JSON it was
closed with and its SHA-256, and a correction is a new adjustment row.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, Float, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from evsite.store.base import Base
from evsite.store.models import BigId, UTCDateTime


class SubmeterReading(Base):
    """A register reading of a site, panel or EVSE submeter (Modbus), one row per meter and time."""

    __tablename__ = "metering_readings"
    __table_args__ = (UniqueConstraint("meter_id", "at", name="uq_metering_readings_meter_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    meter_id: Mapped[str] = mapped_column(String(48))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    energy_wh: Mapped[Decimal] = mapped_column(Numeric(18, 3))
    power_w: Mapped[float | None] = mapped_column(Float)
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ClosedPeriod(Base):
    """A billed month, frozen: re-running it must reproduce `digest`, and its statements are served from here."""

    __tablename__ = "billing_periods"

    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    closed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    digest: Mapped[str] = mapped_column(String(64))
    run_json: Mapped[str] = mapped_column(Text)
    closed_by: Mapped[str | None] = mapped_column(String(100))


class AdjustmentRow(Base):
    """A correction posted on a (still open) month's statement as its own line."""

    __tablename__ = "billing_adjustments"
    __table_args__ = (Index("ix_billing_adjustments_month", "posted_month"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    unit_id: Mapped[str] = mapped_column(String(48))
    posted_month: Mapped[str] = mapped_column(String(7))
    description: Mapped[str] = mapped_column(String(200))
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 4))
    taxable: Mapped[bool] = mapped_column(Boolean, default=True)
    refers_to: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str | None] = mapped_column(String(100))


class BillingRunRow(Base):
    """Every billing run, for the audit trail: when, which month, what came out."""

    __tablename__ = "billing_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    month: Mapped[str] = mapped_column(String(7))
    ran_at: Mapped[datetime] = mapped_column(UTCDateTime)
    digest: Mapped[str] = mapped_column(String(64))
    sessions: Mapped[int] = mapped_column(Integer)
    closed_period: Mapped[bool] = mapped_column(Boolean, default=False)
    matches_closed: Mapped[bool | None] = mapped_column(Boolean)


async def ensure_tables(engine: AsyncEngine) -> None:
    """Bring the database to the current schema (alembic; a no-op when it is current)."""
    from evsite.store.db import migrate

    await migrate(engine)
