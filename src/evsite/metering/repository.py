"""Billing on stored data: sessions from the OCPP store's tables, submeter readings, closing periods.

Readings are read, never rewritten. Sessions come from `ocpp_transactions` with their
`Energy.Active.Import.Register` samples from `ocpp_samples`; samples whose transaction the store
never saw start or stop become a held session of their own, so no reading is dropped silently. EVSE
that are billed from an external submeter (`Evse.meter_id`) take their energy from `metering_readings`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import and_, insert, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from evsite.csvsafe import SafeDictWriter
from evsite.metering import ocmf
from evsite.metering.billing import Adjustment, Biller, BillingError, BillingPeriod, BillingRun
from evsite.metering.integrity import Flag, Severity, register_intervals
from evsite.metering.sessions import Reading, Session, TransactionRecord, build_session, build_submeter_session
from evsite.metering.tables import AdjustmentRow, BillingRunRow, ClosedPeriod, SubmeterReading, ensure_tables
from evsite.metering.tariffs import allocate
from evsite.runtime.events import utcnow
from evsite.site import topology
from evsite.site.model import MeterRole, Site
from evsite.store import samples as sv
from evsite.store.models import Transaction
from evsite.store.samples import ENERGY, SAMPLES, SERIES

TX = Transaction.__table__
SUB = SubmeterReading.__table__
CLOSED = ClosedPeriod.__table__
ADJUST = AdjustmentRow.__table__


def register_wh(value: str, unit: str, fallback: float | None = None) -> Decimal:
    """A register value in Wh, parsed from the text the charger sent (exact), kWh scaled by 1000."""
    try:
        number = Decimal(value)
    except InvalidOperation:
        if fallback is None:
            raise ValueError(f"register value {value!r} is not a number") from None
        number = Decimal(str(fallback))
    return number * 1000 if unit == "kWh" else number


def _utc(value: str | datetime) -> datetime:
    """A stored timestamp as an aware UTC datetime (SQLite gives text, PostgreSQL an aware datetime)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


async def load_sessions(
    engine: AsyncEngine,
    site: Site,
    start: datetime,
    end: datetime,
    public_keys: Mapping[str, str] | None = None,
) -> list[Session]:
    """Every session with energy or a stop in [start, end), with flags, from the stored tables."""
    biller_power = Biller(site).max_power_w
    gap_s = 3.0 * site.control.meter_value_interval_s
    submetered = {e.id: e.meter_id for e in site.evse if e.meter_id}
    overlap = and_(TX.c.start_time < end, or_(TX.c.stop_time.is_(None), TX.c.stop_time >= start))
    chargers = [e.id for e in site.evse]
    connectors = sorted({c.id for e in site.evse for c in e.connectors} | {0, 1})
    async with engine.connect() as conn:
        txs = (await conn.execute(select(TX).where(overlap).order_by(TX.c.id))).all()
        stored = await conn.run_sync(
            lambda sync: _register_samples(sync, select(TX.c.id).where(overlap), chargers, connectors, start, end)
        )
    readings, signed, connector = stored

    sessions = []
    known = set()
    for tx in txs:
        key = (tx.charger_id, tx.id)
        known.add(key)
        record = TransactionRecord(
            charger_id=tx.charger_id,
            transaction_id=str(tx.id),
            connector_id=tx.connector_id,
            id_tag=tx.id_tag,
            start_at=tx.start_time,
            start_wh=Decimal(tx.meter_start),
            stop_at=tx.stop_time,
            stop_wh=Decimal(tx.meter_stop) if tx.meter_stop is not None else None,
            stop_reason=tx.stop_reason,
        )
        if tx.charger_id in submetered:
            meter_id = submetered[tx.charger_id]
            stop = tx.stop_time or end
            meter = await submeter_readings(
                engine, meter_id, tx.start_time - timedelta(hours=1), stop + timedelta(hours=1)
            )
            session = build_submeter_session(record, meter, meter_id, biller_power(tx.charger_id), gap_s)
        else:
            session = build_session(record, readings.get(key, []), biller_power(tx.charger_id), gap_s=gap_s)
        _check_signed(session, signed.get(key, []), (public_keys or {}).get(tx.charger_id))
        sessions.append(session)
    for key, orphan in readings.items():
        if key in known:
            continue
        record = TransactionRecord(key[0], str(key[1]), connector.get(key))
        record.flags.append(
            Flag(
                "unknown_transaction",
                Severity.HOLD,
                f"{len(orphan)} meter values for transaction {key[1]}, which the store never saw start or stop",
            )
        )
        sessions.append(build_session(record, orphan, biller_power(key[0]), gap_s=gap_s))
    return sessions


SessionKey = tuple[str, int]


def _register_samples(
    conn: Connection, overlapping: Any, chargers: list[str], connectors: list[int], start: datetime, end: datetime
) -> tuple[dict[SessionKey, list[Reading]], dict[SessionKey, list[str]], dict[SessionKey, int]]:
    """Energy register samples (and signed data) of the overlapping transactions and of orphans, in arrival order.

    Orphans are transactions the store never saw start or stop whose site chargers sent register samples
    in [start, end); all their samples are read, so the orphan session is complete.
    """
    layouts = sv.load_layouts(conn)
    energy = {
        lid: [
            (pos, f)
            for pos, f in enumerate(layout.fields)
            if f.measurand == ENERGY and f.phase == "" and f.location in sv.OUTLET
        ]
        for lid, layout in layouts.items()
    }
    energy = {lid: fields for lid, fields in energy.items() if fields}
    if not energy:
        return {}, {}, {}
    series = {r.id: r for r in conn.execute(select(SERIES).where(SERIES.c.transaction_id.in_(overlapping)))}
    candidates = conn.execute(
        select(SERIES).where(
            SERIES.c.charger_id.in_(chargers),
            SERIES.c.connector_id.in_(connectors),
            SERIES.c.transaction_id.is_not(None),
            SERIES.c.transaction_id.not_in(select(TX.c.id)),
        )
    ).all()
    lo, hi = sv.to_epoch(start), sv.to_epoch(end)
    orphan_tx = set()
    for r in candidates:
        found = conn.execute(
            select(SAMPLES.c.at_s, SAMPLES.c.at_us).where(
                SAMPLES.c.series_id == r.id,
                SAMPLES.c.layout_id.in_(list(energy)),
                SAMPLES.c.at_s >= lo[0],
                SAMPLES.c.at_s <= hi[0],
            )
        )
        if any(lo <= tuple(t) < hi for t in found):
            orphan_tx.add(r.transaction_id)
    if orphan_tx:
        series |= {r.id: r for r in conn.execute(select(SERIES).where(SERIES.c.transaction_id.in_(orphan_tx)))}

    readings: dict[SessionKey, list[Reading]] = defaultdict(list)
    signed: dict[SessionKey, list[str]] = defaultdict(list)
    connector: dict[SessionKey, int] = {}
    ids = sorted(series)
    texts = sv.texts_for(conn, ids)
    columns = (SAMPLES.c.id, SAMPLES.c.series_id, SAMPLES.c.at_s, SAMPLES.c.at_us, SAMPLES.c.layout_id)
    rows: list[tuple[Any, ...]] = []
    for i in range(0, len(ids), 500):
        where = (SAMPLES.c.series_id.in_(ids[i : i + 500]), SAMPLES.c.layout_id.in_(list(energy)))
        rows += conn.execute(select(*columns, SAMPLES.c.energy_mwh).where(*where)).all()
    rows.sort(key=itemgetter(0))  # by id: arrival order
    keys = {sid: ((r.charger_id, r.transaction_id), r.connector_id) for sid, r in series.items()}
    times: dict[tuple[int, int], datetime] = {}
    for _, series_id, at_s, at_us, layout_id, mwh in rows:
        key, connector[key] = keys[series_id]  # tuple unpacking: far cheaper than Row attributes here
        verbatim = texts.get((series_id, at_s, at_us, layout_id), {})
        at = times.get((at_s, at_us)) or times.setdefault((at_s, at_us), sv.from_epoch(at_s, at_us))
        for pos, f in energy[layout_id]:
            text = verbatim.get(pos)  # else the register from its column, rendered as the charger wrote it
            value = text if text is not None else sv.render(mwh, sv.COLUMNS[f.slot].exponents[f.unit], f.decimals)
            if f.format == "SignedData":
                signed[key].append(value)
            else:
                # #14: a register that is not a finite number (NaN, inf, "abc") failed the OCPP plausibility
                # gate and is flagged in ocpp_data_flags; billing skips it instead of failing the whole run.
                # Energy comes from register deltas, so the readings around it still bill every Wh.
                try:
                    wh = register_wh(value, f.unit)
                except ValueError:
                    continue
                if wh.is_finite():
                    readings[key].append(Reading(at, wh))
    return readings, signed, connector


def _check_signed(session: Session, texts: list[str], public_key: str | None) -> None:
    """Verify a session's OCMF records; problems become flags (held when a signature or register disagrees)."""
    if not texts:
        return
    session.signed_data.extend(texts)
    records, problems = [], []
    for text in texts:
        try:
            records.append(ocmf.parse(text))
        except ocmf.OcmfError as exc:
            problems.append(f"unreadable signed meter value: {exc}")
    for record in records:
        result = ocmf.verify(record, public_key)
        if result.signature_valid is False or result.problems:
            problems.append("; ".join(result.problems) or "signature does not match the payload")
    stop_wh = session.end_wh if session.stopped_at else None
    problems += ocmf.session_problems(records, session.start_wh, stop_wh)
    session.flags.extend(Flag("signed_data", Severity.HOLD, p) for p in problems)
    if problems:
        session.signed_status = "failed"
    elif public_key is None:
        session.signed_status = "unverified"
        session.flags.append(
            Flag("signed_unverified", Severity.INFO, f"{len(records)} OCMF record(s) stored; no public key to verify")
        )
    else:
        session.signed_status = "verified"


async def submeter_readings(engine: AsyncEngine, meter_id: str, start: datetime, end: datetime) -> list[Reading]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(SUB.c.at, SUB.c.energy_wh, SUB.c.power_w, SUB.c.received_at)
            .where(SUB.c.meter_id == meter_id, SUB.c.at >= start, SUB.c.at <= end)
            .order_by(SUB.c.at)
        )
        return [Reading(r.at, Decimal(r.energy_wh), r.power_w, received_at=r.received_at) for r in rows]


async def upstream_energy(engine: AsyncEngine, site: Site, period: BillingPeriod) -> dict[str, Decimal]:
    """Energy each panel or site meter recorded in the period, from its register readings."""
    service_w = topology.power_kw(site.service.system, site.service.rating_a) * 1000.0
    out = {}
    for meter in site.meters:
        if meter.role not in (MeterRole.PANEL, MeterRole.SITE):
            continue
        readings = await submeter_readings(
            engine, meter.id, period.start - timedelta(hours=2), period.end + timedelta(hours=2)
        )
        if len(readings) < 2:
            continue
        result = register_intervals(readings, service_w, gap_s=3600)
        (inside,), _, _ = allocate(result.intervals, [period.start, period.end])
        out[meter.id] = inside.quantize(Decimal("0.001"))
    return out


# --------------------------------------------------------------------------- periods and adjustments


@dataclass
class MonthResult:
    run: BillingRun
    closed: bool  # the month was already closed
    matches_closed: bool | None  # for a closed month: did the re-run reproduce it exactly?
    closed_json: str | None  # the frozen run of a closed month


async def bill_month(
    engine: AsyncEngine,
    site: Site,
    month: str,
    public_keys: Mapping[str, str] | None = None,
    standby_w_per_evse: float | None = None,
) -> MonthResult:
    """Bill a month from stored data and log the run; for a closed month, check it reproduces the frozen run."""
    biller = Biller(site, standby_w_per_evse)
    period = BillingPeriod.of(month, site.timezone)
    await ensure_tables(engine)
    sessions = await load_sessions(engine, site, period.start, period.end, public_keys)
    adjustments = await list_adjustments(engine, month)
    upstream = await upstream_energy(engine, site, period)
    run = biller.bill(sessions, month, adjustments, upstream)
    async with engine.begin() as conn:
        closed = (await conn.execute(select(CLOSED).where(CLOSED.c.month == month))).first()
        matches = None if closed is None else closed.digest == run.digest()
        await conn.execute(
            insert(BillingRunRow).values(
                month=month,
                ran_at=utcnow(),
                digest=run.digest(),
                sessions=run.summary.sessions,
                closed_period=closed is not None,
                matches_closed=matches,
            )
        )
    return MonthResult(run, closed is not None, matches, closed.run_json if closed else None)


async def close_month(engine: AsyncEngine, run: BillingRun, by: str | None = None) -> None:
    """Freeze a month: its JSON and digest are kept; later changes must come as adjustments."""
    async with engine.begin() as conn:
        found = await conn.execute(select(ClosedPeriod.month).where(ClosedPeriod.month == run.summary.month))
        if found.first() is not None:
            raise BillingError(f"{run.summary.month} is already closed")
        await conn.execute(
            insert(ClosedPeriod).values(
                month=run.summary.month,
                closed_at=utcnow(),
                digest=run.digest(),
                run_json=run.canonical_json(),
                closed_by=by,
            )
        )


async def add_adjustment(engine: AsyncEngine, adjustment: Adjustment, by: str | None = None) -> int:
    """Post a correction on an open month's statement (a closed month cannot change)."""
    await ensure_tables(engine)
    async with engine.begin() as conn:
        closed = await conn.execute(select(ClosedPeriod.month).where(ClosedPeriod.month == adjustment.posted_month))
        if closed.first() is not None:
            raise BillingError(
                f"{adjustment.posted_month} is closed: post the adjustment on an open month, referring to it"
            )
        result = await conn.execute(
            insert(AdjustmentRow).values(
                unit_id=adjustment.unit_id,
                posted_month=adjustment.posted_month,
                description=adjustment.description,
                amount=adjustment.amount,
                taxable=adjustment.taxable,
                refers_to=adjustment.refers_to,
                created_at=utcnow(),
                created_by=by,
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]


async def list_adjustments(engine: AsyncEngine, month: str) -> list[Adjustment]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(ADJUST).where(ADJUST.c.posted_month == month).order_by(ADJUST.c.id))
        return [
            Adjustment(
                id=str(r.id),
                unit_id=r.unit_id,
                posted_month=r.posted_month,
                description=r.description,
                amount=Decimal(r.amount),
                taxable=r.taxable,
                refers_to=r.refers_to,
            )
            for r in rows
        ]


# --------------------------------------------------------------------------- raw export

EXPORT_FIELDS = [
    "source", "charger_id", "connector_id", "transaction_id", "timestamp", "measurand", "phase", "location",
    "context", "unit", "format", "value",
]  # fmt: skip


async def _export_rows(
    engine: AsyncEngine, start: datetime, end: datetime, charger: str | None
) -> AsyncIterator[dict[str, Any]]:
    async with engine.connect() as conn:
        stmt = select(SERIES.c.charger_id).distinct().order_by(SERIES.c.charger_id)
        chargers = [charger] if charger is not None else list((await conn.execute(stmt)).scalars())
        for cp in chargers:  # one charger at a time: memory stays bounded by a charger's readings

            def read(sync: Connection, cp: str = cp) -> list[dict[str, Any]]:
                return sv.read_values(sync, cp, start, end)

            values = await conn.run_sync(read)
            values.sort(key=lambda v: (v["timestamp"], v["id"]))
            for v in values:
                yield {
                    "source": "ocpp",
                    "charger_id": v["charger_id"],
                    "connector_id": v["connector_id"],
                    "transaction_id": v["transaction_id"] if v["transaction_id"] is not None else "",
                    "timestamp": v["timestamp"].isoformat(),
                    **{k: v[k] for k in ("measurand", "phase", "location", "context", "unit", "format", "value")},
                }
        sub = select(SUB).where(SUB.c.at >= start, SUB.c.at < end).order_by(SUB.c.meter_id, SUB.c.at)
        if charger is not None:
            sub = sub.where(SUB.c.meter_id == charger)
        async for r in await conn.stream(sub.execution_options(yield_per=5000)):
            yield {
                "source": "submeter",
                "charger_id": r.meter_id,
                "connector_id": 0,
                "transaction_id": "",
                "timestamp": r.at.isoformat(),
                "measurand": ENERGY,
                "phase": "",
                "location": "",
                "context": "Sample.Periodic",
                "unit": "Wh",
                "format": "Raw",
                "value": str(r.energy_wh),
            }


async def export_readings(
    engine: AsyncEngine, out: Path, start: datetime, end: datetime, charger: str | None = None
) -> int:
    """Every stored reading in [start, end) as CSV, values as received (formula-like text neutralised); row count."""
    await ensure_tables(engine)
    count = 0
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = SafeDictWriter(handle, fieldnames=EXPORT_FIELDS, lineterminator="\n")
        writer.writeheader()
        async for row in _export_rows(engine, start, end, charger):
            writer.writerow(row)
            count += 1
    return count


def frozen_run(json_text: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json_text)
    return data
