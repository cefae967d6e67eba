"""Tables of the OCPP central system: what chargers said and what we asked of them.

Meter samples carry no foreign keys on purpose: a charger may report samples for a transaction we
never saw start (it was started offline), and we must store them anyway. They are kept compact (one
row per MeterValue element with typed integer columns; see `evsite.store.samples`), because a year of
1-minute samples for a 30-charger site is millions of rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from evsite.errors import StoreError
from evsite.store.base import Base


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, whatever the backend keeps (SQLite has no time zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise StoreError(f"naive datetime {value!r}: evsite stores aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


BigId = BigInteger().with_variant(Integer, "sqlite")
"""64-bit ids on PostgreSQL; SQLite only autoincrements an INTEGER PRIMARY KEY."""


class Charger(Base):
    """A charge point, its boot information and its registration."""

    __tablename__ = "ocpp_chargers"

    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    in_site: Mapped[bool] = mapped_column(Boolean, default=False)
    registration_status: Mapped[str] = mapped_column(String(16), default="Pending")
    vendor: Mapped[str | None] = mapped_column(String(50))
    model: Mapped[str | None] = mapped_column(String(20))
    serial_number: Mapped[str | None] = mapped_column(String(25))
    charge_box_serial_number: Mapped[str | None] = mapped_column(String(25))
    firmware_version: Mapped[str | None] = mapped_column(String(50))
    iccid: Mapped[str | None] = mapped_column(String(20))
    imsi: Mapped[str | None] = mapped_column(String(20))
    meter_type: Mapped[str | None] = mapped_column(String(25))
    meter_serial_number: Mapped[str | None] = mapped_column(String(25))
    last_boot_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    local_list_version: Mapped[int] = mapped_column(Integer, default=0)
    firmware_status: Mapped[str | None] = mapped_column(String(32))
    diagnostics_status: Mapped[str | None] = mapped_column(String(32))


class BootRecord(Base):
    """Every BootNotification, so firmware changes and reboot loops are visible."""

    __tablename__ = "ocpp_boots"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    charger_id: Mapped[str] = mapped_column(String(48), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)


class ConnectorState(Base):
    """The latest status of each connector (connector 0 is the charger as a whole)."""

    __tablename__ = "ocpp_connectors"

    charger_id: Mapped[str] = mapped_column(String(48), primary_key=True)
    connector_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str] = mapped_column(String(32), default="NoError")
    info: Mapped[str | None] = mapped_column(String(50))
    vendor_error_code: Mapped[str | None] = mapped_column(String(50))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StatusRecord(Base):
    """Status history: one row per StatusNotification."""

    __tablename__ = "ocpp_status_history"
    __table_args__ = (Index("ix_ocpp_status_history_cp_at", "charger_id", "received_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    charger_id: Mapped[str] = mapped_column(String(48))
    connector_id: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str] = mapped_column(String(32))
    info: Mapped[str | None] = mapped_column(String(50))
    vendor_id: Mapped[str | None] = mapped_column(String(255))
    vendor_error_code: Mapped[str | None] = mapped_column(String(50))
    timestamp: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ConfigurationValue(Base):
    """Configuration keys as read back from the charger with GetConfiguration."""

    __tablename__ = "ocpp_configuration"

    charger_id: Mapped[str] = mapped_column(String(48), primary_key=True)
    key: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[str | None] = mapped_column(String(500))
    readonly: Mapped[bool] = mapped_column(Boolean, default=False)
    read_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IdTag(Base):
    """An authorization identifier (RFID card, app token) and its IdTagInfo."""

    __tablename__ = "ocpp_id_tags"

    id_tag: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="Accepted")
    expiry_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    parent_id_tag: Mapped[str | None] = mapped_column(String(36))
    unit_id: Mapped[str | None] = mapped_column(String(48))


class Transaction(Base):
    """A charging transaction; `id` is the OCPP transactionId we hand out."""

    __tablename__ = "ocpp_transactions"
    __table_args__ = (
        UniqueConstraint("charger_id", "connector_id", "start_time", "meter_start", name="uq_ocpp_transactions_start"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    charger_id: Mapped[str] = mapped_column(String(48), index=True)
    connector_id: Mapped[int] = mapped_column(Integer)
    id_tag: Mapped[str] = mapped_column(String(36))
    auth_status: Mapped[str] = mapped_column(String(16))
    meter_start: Mapped[int] = mapped_column(BigInteger)
    start_time: Mapped[datetime] = mapped_column(UTCDateTime)
    reservation_id: Mapped[int | None] = mapped_column(Integer)
    meter_stop: Mapped[int | None] = mapped_column(BigInteger)
    stop_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stop_reason: Mapped[str | None] = mapped_column(String(32))
    stop_id_tag: Mapped[str | None] = mapped_column(String(36))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StationTransaction(Base):
    """An OCPP 2.0.1 transaction: the station's own transactionId (a string it chose) → ours.

    Billing, the API and the load manager know transactions by our integer id; a 2.0.1 station names
    them with its string in every TransactionEvent. The pair is stored before the station gets its
    answer, so a replayed event after a crash finds the same transaction instead of starting another.
    """

    __tablename__ = "ocpp201_transactions"

    charger_id: Mapped[str] = mapped_column(String(48), primary_key=True)
    station_tx_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    transaction_id: Mapped[int] = mapped_column(Integer, unique=True)


class SampleSeries(Base):
    """One meter series: a charger's connector within one transaction (or outside any).

    Samples refer to their series by a small integer, so the charger, connector and transaction are
    stored once per transaction instead of once per sample. Like the old per-value rows, series carry no
    foreign keys: samples of a transaction we never saw start are stored all the same.
    """

    __tablename__ = "ocpp_sample_series"
    __table_args__ = (
        UniqueConstraint("charger_id", "connector_id", "transaction_id", name="uq_ocpp_sample_series_key"),
        Index("ix_ocpp_sample_series_tx", "transaction_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    charger_id: Mapped[str] = mapped_column(String(48))
    connector_id: Mapped[int] = mapped_column(Integer)
    transaction_id: Mapped[int | None] = mapped_column(Integer)


class SampleLayout(Base):
    """The shape of a MeterValue element: its sampled values' descriptors in order and where each is kept.

    `fields` is a JSON list of [measurand, phase, location, context, unit, format, slot], slot naming the
    typed column of `ocpp_samples` that holds the value or "text" (kept verbatim in `ocpp_sample_texts`).
    A charger sends the same few shapes over and over, so each is stored once and samples point to it.
    """

    __tablename__ = "ocpp_sample_layouts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fields: Mapped[str] = mapped_column(Text, unique=True)
    size: Mapped[int] = mapped_column(Integer)  # sampled values per sample of this layout


class Sample(Base):
    """One MeterValue element (every sampled value of one timestamp), in compact typed form.

    `id` is the arrival order. Times are integer UTC epoch seconds plus microseconds; values are
    integers in fixed sub-units, exact for what meters send (see `evsite.store.samples`). A resent
    element (same series, time and layout) is never stored twice.
    """

    __tablename__ = "ocpp_samples"
    __table_args__ = (UniqueConstraint("series_id", "at_s", "at_us", "layout_id", name="uq_ocpp_samples_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    series_id: Mapped[int] = mapped_column(Integer)
    at_s: Mapped[int] = mapped_column(BigInteger)
    at_us: Mapped[int] = mapped_column(Integer, default=0)
    layout_id: Mapped[int] = mapped_column(Integer)
    energy_mwh: Mapped[int | None] = mapped_column(BigInteger)
    power_dw: Mapped[int | None] = mapped_column(BigInteger)
    current_l1_ca: Mapped[int | None] = mapped_column(Integer)
    current_l2_ca: Mapped[int | None] = mapped_column(Integer)
    current_l3_ca: Mapped[int | None] = mapped_column(Integer)
    voltage_dv: Mapped[int | None] = mapped_column(Integer)
    offered_ca: Mapped[int | None] = mapped_column(Integer)


class SampleText(Base):
    """Sampled values kept verbatim: signed data, measurands without a typed column, and any value whose
    text is not the plain rendering of its number (e.g. "12.50"). Keyed like its sample, by position."""

    __tablename__ = "ocpp_sample_texts"
    __table_args__ = ({"sqlite_with_rowid": False},)

    series_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at_s: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at_us: Mapped[int] = mapped_column(Integer, primary_key=True)
    layout_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ChargingProfileRecord(Base):
    """Every charging profile we sent and the charger's answer (Accepted, Rejected, NotSupported, Timeout)."""

    __tablename__ = "ocpp_charging_profiles"
    __table_args__ = (Index("ix_ocpp_charging_profiles_cp", "charger_id", "connector_id", "sent_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    charger_id: Mapped[str] = mapped_column(String(48))
    connector_id: Mapped[int] = mapped_column(Integer)
    profile_id: Mapped[int] = mapped_column(Integer)
    stack_level: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(String(32))
    rate_unit: Mapped[str] = mapped_column(String(1))
    limit: Mapped[float] = mapped_column(Float)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))


class Reservation(Base):
    """A ReserveNow we sent; `id` is the OCPP reservationId."""

    __tablename__ = "ocpp_reservations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    charger_id: Mapped[str] = mapped_column(String(48), index=True)
    connector_id: Mapped[int] = mapped_column(Integer)
    id_tag: Mapped[str] = mapped_column(String(36))
    parent_id_tag: Mapped[str | None] = mapped_column(String(36))
    expiry_date: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FirmwareEvent(Base):
    """Firmware and diagnostics status notifications, and the requests that caused them."""

    __tablename__ = "ocpp_firmware_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    charger_id: Mapped[str] = mapped_column(String(48), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # firmware | diagnostics
    status: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(String(512))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class DataFlag(Base):
    """Something a charger sent that failed the plausibility gate (`evsite.ocpp.plausibility`).

    The message itself is stored as received wherever it belongs; this row says what was wrong with it,
    so billing can hold the session and an operator can see which meter or clock to look at.
    """

    __tablename__ = "ocpp_data_flags"
    __table_args__ = (Index("ix_ocpp_data_flags_tx", "transaction_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    charger_id: Mapped[str] = mapped_column(String(48))
    connector_id: Mapped[int | None] = mapped_column(Integer)
    transaction_id: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the charger's timestamp of the flagged data
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    code: Mapped[str] = mapped_column(String(32))
    measurand: Mapped[str | None] = mapped_column(String(48))
    value: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(String(255))
