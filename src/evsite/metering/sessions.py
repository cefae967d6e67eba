"""Charging sessions from OCPP transactions (or from an external submeter), with interval energy.

A session is what one id tag drew on one connector between a start and a stop. Its energy is the
register delta (stop − start), split into intervals by the sampled register readings in between, so the
interval energies always add up to the register delta exactly. Duplicate transaction messages (chargers
resend after reconnecting) collapse into one session; every anomaly becomes a flag on the session.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal, NamedTuple

from evsite.metering.integrity import Flag, Severity, register_intervals
from evsite.metering.tariffs import Interval


class Reading(NamedTuple):
    """One register sample (OCPP MeterValues / transaction data, or a Modbus submeter poll)."""

    at: datetime  # the meter's (charger's) timestamp, aware
    energy_wh: Decimal  # Energy.Active.Import.Register in Wh
    power_w: float | None = None
    current_a: Mapping[str, float] | None = None  # by line
    voltage_v: Mapping[str, float] | None = None
    context: str = "Sample.Periodic"  # Transaction.Begin, Sample.Periodic, Sample.Clock, Transaction.End
    received_at: datetime | None = None  # server clock on arrival, when known
    signed_data: str | None = None  # OCMF or other signed value, verbatim


@dataclass(frozen=True)
class TxMessage:
    """One received transaction message: StartTransaction / StopTransaction (1.6) or Started / Ended (2.0.1)."""

    kind: Literal["start", "stop"]
    charger_id: str
    transaction_id: str
    at: datetime
    meter_wh: Decimal | None
    connector_id: int | None = None
    id_tag: str | None = None
    reason: str | None = None
    received_at: datetime | None = None


@dataclass
class TransactionRecord:
    """A transaction after duplicate messages were merged: at most one start and one stop."""

    charger_id: str
    transaction_id: str
    connector_id: int | None = None
    id_tag: str | None = None
    start_at: datetime | None = None
    start_wh: Decimal | None = None
    stop_at: datetime | None = None
    stop_wh: Decimal | None = None
    stop_reason: str | None = None
    flags: list[Flag] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.charger_id}#{self.transaction_id}"


def merge_messages(messages: Iterable[TxMessage]) -> list[TransactionRecord]:
    """One record per (charger, transaction id); repeated identical messages are counted, never re-applied."""
    records: dict[tuple[str, str], TransactionRecord] = {}
    repeats: dict[tuple[str, str], int] = {}
    for msg in messages:
        key = (msg.charger_id, msg.transaction_id)
        rec = records.setdefault(key, TransactionRecord(msg.charger_id, msg.transaction_id))
        if msg.kind == "start":
            if rec.start_at is not None:
                _repeat(rec, repeats, key, msg, (rec.start_at, rec.start_wh, rec.id_tag))
                continue
            rec.start_at, rec.start_wh = msg.at, msg.meter_wh
        else:
            if rec.stop_at is not None:
                _repeat(
                    rec, repeats, key, msg, (rec.stop_at, rec.stop_wh, msg.id_tag if rec.id_tag is None else rec.id_tag)
                )
                continue
            rec.stop_at, rec.stop_wh, rec.stop_reason = msg.at, msg.meter_wh, msg.reason
        rec.connector_id = rec.connector_id if rec.connector_id is not None else msg.connector_id
        rec.id_tag = rec.id_tag if rec.id_tag is not None else msg.id_tag
    for key, count in repeats.items():
        records[key].flags.append(
            Flag("duplicate_message", Severity.INFO, f"{count} repeated transaction message(s) ignored")
        )
    return list(records.values())


def _repeat(
    rec: TransactionRecord,
    repeats: dict[tuple[str, str], int],
    key: tuple[str, str],
    msg: TxMessage,
    first: tuple[datetime | None, Decimal | None, str | None],
) -> None:
    at, wh, tag = first
    if (msg.at, msg.meter_wh) == (at, wh) and (msg.id_tag is None or msg.id_tag == tag):
        repeats[key] = repeats.get(key, 0) + 1
        return
    rec.flags.append(
        Flag(
            "conflicting_message",
            Severity.HOLD,
            f"second {msg.kind} message differs from the first ({at}, {wh} Wh, {tag}) → "
            f"({msg.at}, {msg.meter_wh} Wh, {msg.id_tag}); first kept",
            msg.at,
        )
    )


@dataclass
class Session:
    """A charging session ready for billing."""

    charger_id: str
    transaction_id: str
    connector_id: int | None
    id_tag: str | None
    started_at: datetime
    stopped_at: datetime | None  # None while the session is open
    start_wh: Decimal
    end_wh: Decimal  # the stop register, or the last reading of an open session
    intervals: list[Interval]
    meter_id: str
    flags: list[Flag] = field(default_factory=list)
    stop_reason: str | None = None
    readings: int = 0
    signed_data: list[str] = field(default_factory=list)
    signed_status: str = ""  # "", "verified", "unverified" (no key), "failed"

    @property
    def key(self) -> str:
        return f"{self.charger_id}#{self.transaction_id}"

    @property
    def energy_wh(self) -> Decimal:
        """Register delta, including any rollover; equals the sum of the intervals by construction."""
        return sum((iv.energy_wh for iv in self.intervals), Decimal(0))

    @property
    def held(self) -> bool:
        return any(f.severity is Severity.HOLD for f in self.flags)

    @property
    def charging_ended_at(self) -> datetime:
        """End of the last interval that delivered energy: idle time runs from here to the stop."""
        for iv in reversed(self.intervals):
            if iv.energy_wh > 0:
                return iv.end
        return self.started_at

    @property
    def last_at(self) -> datetime:
        return self.stopped_at or (self.intervals[-1].end if self.intervals else self.started_at)


def build_session(
    record: TransactionRecord,
    readings: Sequence[Reading],
    max_power_w: float,
    meter_id: str | None = None,
    gap_s: float = 180.0,
) -> Session:
    """A session from a merged transaction and its sampled readings (in arrival order)."""
    flags = list(record.flags)
    series: list[Reading] = []
    if record.start_at is not None and record.start_wh is not None:
        series.append(Reading(record.start_at, record.start_wh, context="Transaction.Begin"))
    elif readings:
        flags.append(
            Flag(
                "stop_without_start",
                Severity.WARNING,
                f"no start message; session starts at the first sampled reading ({readings[0].energy_wh} Wh)",
                readings[0].at,
            )
        )
    # a sample that repeats the start or stop message's register (Transaction.Begin/End data) is the same reading
    edges = {(record.start_at, record.start_wh), (record.stop_at, record.stop_wh)}
    series.extend(r for r in readings if (r.at, r.energy_wh) not in edges)
    if record.stop_at is not None and record.stop_wh is not None:
        series.append(Reading(record.stop_at, record.stop_wh, context="Transaction.End"))
    elif record.stop_at is None:
        flags.append(Flag("open", Severity.INFO, "no stop yet: energy counted to the last reading"))
    if not series:
        raise ValueError(f"transaction {record.key} has no start, no stop and no readings")
    if len(series) == 1:
        flags.append(Flag("no_register_pair", Severity.HOLD, "only one register reading: energy unknown"))

    result = register_intervals(series, max_power_w, gap_s)
    flags.extend(result.flags)
    started = record.start_at or series[0].at
    return Session(
        charger_id=record.charger_id,
        transaction_id=record.transaction_id,
        connector_id=record.connector_id,
        id_tag=record.id_tag,
        started_at=started,
        stopped_at=record.stop_at,
        start_wh=series[0].energy_wh,
        end_wh=series[-1].energy_wh,
        intervals=result.intervals,
        meter_id=meter_id or record.charger_id,
        flags=flags,
        stop_reason=record.stop_reason,
        readings=len(series),
        signed_data=[r.signed_data for r in series if r.signed_data],
    )


def build_submeter_session(
    record: TransactionRecord,
    meter_readings: Sequence[Reading],
    meter_id: str,
    max_power_w: float,
    gap_s: float = 180.0,
) -> Session:
    """A session timed by OCPP but measured by an external (Modbus) submeter dedicated to the EVSE.

    The start register is the submeter's last reading at or before the start, the stop register its first
    reading at or after the stop; energy between those and the session edges is the EVSE's standby draw.
    """
    if record.start_at is None:
        raise ValueError(f"transaction {record.key}: a submeter session needs the start time")
    stop = record.stop_at
    ordered = sorted(meter_readings, key=lambda r: r.at)
    first = max((i for i, r in enumerate(ordered) if r.at <= record.start_at), default=0)
    last_candidates = [i for i, r in enumerate(ordered) if stop is not None and r.at >= stop]
    last = min(last_candidates) if last_candidates else len(ordered) - 1
    window = ordered[first : last + 1]
    flags = list(record.flags)
    if not window or window[0].at > record.start_at or (stop is not None and window[-1].at < stop):
        flags.append(
            Flag("submeter_coverage", Severity.HOLD, f"submeter {meter_id} readings do not cover the whole session")
        )
    if stop is None:
        flags.append(Flag("open", Severity.INFO, "no stop yet: energy counted to the last submeter reading"))
    result = register_intervals(window, max_power_w, gap_s)
    flags.extend(result.flags)
    return Session(
        charger_id=record.charger_id,
        transaction_id=record.transaction_id,
        connector_id=record.connector_id,
        id_tag=record.id_tag,
        started_at=record.start_at,
        stopped_at=stop,
        start_wh=window[0].energy_wh if window else Decimal(0),
        end_wh=window[-1].energy_wh if window else Decimal(0),
        intervals=result.intervals,
        meter_id=meter_id,
        flags=flags,
        stop_reason=record.stop_reason,
        readings=len(window),
    )
