"""A realistic month of multifamily charging, written into the site's database as the OCPP server would.

Residents plug in mostly in the evening (a few during the day), need 6–28 kWh, and leave some time after
their car is full (a fifth of them the next morning). Each EV panel shares its EMS setpoint fairly among
the cars charging on it every minute, never above the setpoint. Every plugged-in minute the charger
reports its energy register, power, per-line current and voltage (1-minute MeterValues), stored through
the same compact sample writer as the OCPP server's. Built in for the tests and the demo:

- sessions that cross the 16:00 and 21:00 TOU boundaries (they happen by themselves);
- a session from 22:30 on the last evening of the month to after 01:00 on the first of the next month;
- one charger whose register starts just below 10^9 Wh and rolls over during the month;
- panel submeter registers (M-P1, M-P2) every 5 minutes, for reconciliation (0.8 % losses + 6 W per charger).

Deterministic for a given seed; writing the same month twice adds nothing.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from evsite.control.scenarios import Scenario, example_site
from evsite.control.scenarios import Session as Visit
from evsite.metering.billing import BillingPeriod
from evsite.metering.tables import SubmeterReading, ensure_tables
from evsite.site import topology
from evsite.site.model import Evse, MeterRole, Site
from evsite.store.models import Transaction
from evsite.store.samples import Ids, SampleWriter

SCENARIO = "multifamily-month"
DEFAULT_SEED = 7
ROLLOVER_AT_WH = 10**9
ROLLOVER_CHARGER_INDEX = 6  # by default the seventh charger (MF-P1-07 in the example)
BOUNDARY_CHARGER_INDEX = 1  # by default the second charger (MF-P1-02) carries the month-boundary session
LOSSES = 0.008
STANDBY_W = 6.0
MINUTE = timedelta(minutes=1)
SUBMETER_EVERY_MIN = 5  # panel submeter registers are logged every 5 minutes


@dataclass
class _Plan:
    arrive: datetime
    need_wh: float
    ev_max_a: float
    tag: str
    dwell_min: float | None = None  # minutes plugged in after full
    leave_at: datetime | None = None  # a fixed departure (overnight stays)


@dataclass
class _Active:
    plan: _Plan
    tx_id: int
    delivered_wh: float = 0.0
    full_at: datetime | None = None
    current_a: float = 0.0


@dataclass
class _Charger:
    evse: Evse
    panel: str
    lines: tuple[str, ...]
    register_wh: float
    plans: list[_Plan] = field(default_factory=list)
    active: _Active | None = None
    next_plan: int = 0


def _local(day: date, hours: float, tz: ZoneInfo) -> datetime:
    minutes = round(hours * 60)
    naive = datetime.combine(day, time(0)) + timedelta(minutes=minutes)
    return naive.replace(tzinfo=tz).astimezone(UTC)


def _plans(
    site: Site,
    chargers: list[_Charger],
    period: BillingPeriod,
    rng: random.Random,
    boundary: str | None,
    days: int | None,
) -> None:
    tz = ZoneInfo(site.timezone)
    units = [u for u in site.units if u.tags]
    drivers = rng.sample(units, k=min(len(units), max(1, int(len(units) * 0.6))))
    tags = [str(getattr(u.tags[0], "tag", u.tags[0])) for u in drivers]
    first = period.start.astimezone(tz).date()
    last = (period.end - MINUTE).astimezone(tz).date()
    for charger in chargers:
        free_from = period.start
        day = first
        while day <= last:
            if day == last and charger.evse.id == boundary:  # 22:30 → past 01:00 on the 1st of next month
                charger.plans.append(_Plan(_local(day, 22.5, tz), 24_000, 32.0, rng.choice(tags), dwell_min=20))
                break
            if days is not None and (day - first).days >= days:
                day += timedelta(days=1)
                continue
            if rng.random() < 0.85:
                evening = rng.random() < 0.78
                hour = min(max(rng.gauss(18.5, 1.4), 15.0), 23.5) if evening else rng.uniform(7.0, 15.0)
                arrive = max(_local(day, hour, tz), free_from)
                plan = _Plan(arrive, rng.uniform(6_000, 28_000), rng.choice((24.0, 32.0, 32.0, 40.0)), rng.choice(tags))
                if evening and rng.random() < 0.2:
                    plan.leave_at = _local(day + timedelta(days=1), rng.uniform(6.5, 8.5), tz)
                else:
                    plan.dwell_min = rng.expovariate(1 / 50)
                if plan.arrive.astimezone(tz).date() == day and plan.arrive < period.end:
                    charger.plans.append(plan)
                    # the next car cannot arrive before this one can have left (a generous estimate)
                    free_from = plan.leave_at or plan.arrive + timedelta(hours=plan.need_wh / 1_500 + 3)
            day += timedelta(days=1)


async def write_month(
    engine: AsyncEngine,
    site: Site,
    month: str = "2026-10",
    seed: int = DEFAULT_SEED,
    days: int | None = None,
    rollover_charger: str | None = None,
    boundary_charger: str | None = None,
) -> dict[str, Any]:
    """Generate and store a month of sessions; returns a summary naming the month covered.

    `days` limits sessions to the first days of the month (plus the month-boundary session) for quick tests;
    the rollover and boundary chargers default to the 7th and 2nd EVSE of the site.
    """
    period = BillingPeriod.of(month, site.timezone)
    await ensure_tables(engine)
    rng = random.Random(f"{seed}:{month}:{site.name}:registers")
    ids = [e.id for e in site.evse]
    rollover = rollover_charger or (ids[ROLLOVER_CHARGER_INDEX] if len(ids) > ROLLOVER_CHARGER_INDEX else None)
    boundary = boundary_charger or (ids[BOUNDARY_CHARGER_INDEX] if len(ids) > BOUNDARY_CHARGER_INDEX else None)
    chargers = []
    for evse in site.evse:
        circuit = site.circuit(evse.circuit)
        start = ROLLOVER_AT_WH - 41_000.0 if evse.id == rollover else rng.uniform(100_000, 5_000_000)
        chargers.append(_Charger(evse, circuit.panel, tuple(str(line) for line in circuit.lines), math.floor(start)))
    _plans(site, chargers, period, random.Random(f"{seed}:{month}:{site.name}:plans"), boundary, days)

    async with engine.begin() as conn:
        if chargers and chargers[0].plans and await _already_written(conn, chargers[0]):
            summary = _summary(site, period, engine, 0, 0, 0, 0.0, already=True)
        else:
            summary = _summary(site, period, engine, *await _simulate(conn, site, chargers, period))
    return summary | {"rollover_charger": rollover, "month_boundary_charger": boundary}


async def _already_written(conn: AsyncConnection, charger: _Charger) -> bool:
    plan = charger.plans[0]
    found = await conn.execute(
        select(Transaction.id).where(Transaction.charger_id == charger.evse.id, Transaction.start_time == plan.arrive)
    )
    return found.first() is not None


def _panel_limits(site: Site) -> dict[str, float]:
    """Per-line current each panel's EVs may draw: the tightest limit at or above it, less the safety margin."""
    return {
        panel.id: topology.effective_limit_a(site, panel.id) - site.control.safety_margin_a for panel in site.panels
    }


async def _simulate(
    conn: AsyncConnection, site: Site, chargers: list[_Charger], period: BillingPeriod
) -> tuple[int, int, int, float]:
    volts = site.service.system.line_to_line_v
    limits = _panel_limits(site)
    panel_meters = {m.measures: m for m in site.meters if m.role is MeterRole.PANEL}
    feeder_of = {p.id: p.fed_by for p in site.panels}
    sub_register: dict[str, float] = {m.id: 10_000.0 for m in panel_meters.values()}
    meter_rows: list[dict[str, Any]] = []
    writer, ids = SampleWriter(), Ids()

    async def flush() -> None:
        rows = list(meter_rows)
        meter_rows.clear()
        await conn.run_sync(lambda sync: writer.write(sync, rows, ids))

    sub_rows: list[dict[str, Any]] = []
    tx_count = sample_rows = 0
    energy_total = 0.0
    horizon = period.end + timedelta(days=1)
    for meter in panel_meters.values():
        sub_rows.append({"meter_id": meter.id, "at": period.start, "energy_wh": Decimal(10_000), "power_w": None})
    t = period.start
    while t < horizon:
        now = t + MINUTE
        # arrivals
        for ch in chargers:
            if ch.active is None and ch.next_plan < len(ch.plans) and ch.plans[ch.next_plan].arrive <= t:
                plan = ch.plans[ch.next_plan]
                ch.next_plan += 1
                tx_id = await _start(conn, ch, plan, t)
                ch.active = _Active(plan, tx_id)
                tx_count += 1
        # fair sharing per panel, per line (each 2-pole charger loads two of the three lines)
        by_panel: dict[str, list[_Charger]] = defaultdict(list)
        for ch in chargers:
            if ch.active is not None and ch.active.full_at is None:
                by_panel[ch.panel].append(ch)
        for panel_id, charging in by_panel.items():
            per_line: dict[str, int] = defaultdict(int)
            for ch in charging:
                for line in ch.lines:
                    per_line[line] += 1
            share = limits[panel_id] / max(per_line.values())
            for ch in charging:
                assert ch.active is not None
                offered = topology.pilot_limit_a(min(share, ch.evse.max_current_a))
                ch.active.current_a = min(offered, ch.active.plan.ev_max_a)
        # deliver, report, depart
        feeder_wh: dict[str, float] = defaultdict(float)
        for ch in chargers:
            act = ch.active
            if act is None:
                continue
            amps = act.current_a if act.full_at is None else 0.0
            wh = amps * volts / 60.0
            act.delivered_wh += wh
            ch.register_wh += wh
            energy_total += wh
            feeder_wh[feeder_of[ch.panel]] += wh
            if act.full_at is None and act.delivered_wh >= act.plan.need_wh:
                act.full_at = now
            register = math.floor(ch.register_wh) % ROLLOVER_AT_WH
            leave = act.plan.leave_at or (
                act.full_at + timedelta(minutes=act.plan.dwell_min or 0) if act.full_at else None
            )
            stopping = leave is not None and now >= leave
            samples = _samples(ch, act.tx_id, now, register, amps, volts, stopping)
            meter_rows.extend(samples)
            sample_rows += len(samples)
            if stopping:
                await conn.execute(
                    update(Transaction)
                    .where(Transaction.id == act.tx_id)
                    .values(meter_stop=register, stop_time=now, stop_reason="EVDisconnected")
                )
                ch.active = None
        for node, meter in panel_meters.items():
            standby = STANDBY_W * sum(1 for ch in chargers if feeder_of[ch.panel] == node) / 60.0
            sub_register[meter.id] += feeder_wh.get(node, 0.0) * (1 + LOSSES) + standby
            if now.minute % SUBMETER_EVERY_MIN:
                continue
            sub_rows.append(
                {
                    "meter_id": meter.id,
                    "at": now,
                    "energy_wh": Decimal(math.floor(sub_register[meter.id])),
                    "power_w": None,
                }
            )
        if len(meter_rows) >= 50_000:
            await flush()
        t = now
        if t >= period.end and all(ch.active is None for ch in chargers):
            break
    if meter_rows:
        await flush()
    for i in range(0, len(sub_rows), 50_000):
        await conn.execute(insert(SubmeterReading), sub_rows[i : i + 50_000])
    return tx_count, sample_rows, len(sub_rows), energy_total


async def _start(conn: AsyncConnection, ch: _Charger, plan: _Plan, at: datetime) -> int:
    result = await conn.execute(
        insert(Transaction)
        .values(
            charger_id=ch.evse.id,
            connector_id=1,
            id_tag=plan.tag,
            auth_status="Accepted",
            meter_start=math.floor(ch.register_wh) % ROLLOVER_AT_WH,
            start_time=at,
            received_at=at,
        )
        .returning(Transaction.id)
    )
    return int(result.scalar_one())


def _samples(
    ch: _Charger, tx_id: int, at: datetime, register: int, amps: float, volts: float, stopping: bool
) -> list[dict[str, Any]]:
    context = "Transaction.End" if stopping else "Sample.Periodic"
    base = {
        "charger_id": ch.evse.id,
        "connector_id": 1,
        "transaction_id": tx_id,
        "timestamp": at,
        "location": "Outlet",  # as the OCPP server stores the default location
        "context": context,
        "format": "Raw",
    }
    rows = [
        base | {"measurand": "Energy.Active.Import.Register", "phase": "", "unit": "Wh", "value": str(register)},
        base | {"measurand": "Power.Active.Import", "phase": "", "unit": "W", "value": f"{amps * volts:.0f}"},
        base | {"measurand": "Voltage", "phase": "-".join(ch.lines[:2]), "unit": "V", "value": f"{volts:.1f}"},
    ]
    rows += [
        base | {"measurand": "Current.Import", "phase": line, "unit": "A", "value": f"{amps:.1f}"} for line in ch.lines
    ]
    return rows


def _summary(
    site: Site,
    period: BillingPeriod,
    engine: AsyncEngine,
    transactions: int,
    sample_rows: int,
    submeter_rows: int,
    energy_wh: float,
    already: bool = False,
) -> dict[str, Any]:
    url = engine.url.render_as_string(hide_password=True)
    return {
        "scenario": SCENARIO,
        "month": period.month,
        "period_start": period.start.isoformat(),
        "period_end": period.end.isoformat(),
        "timezone": site.timezone,
        "chargers": len(site.evse),
        "units": len(site.units),
        "transactions_written": transactions,
        "meter_values_written": sample_rows,
        "submeter_readings_written": submeter_rows,
        "energy_kwh": round(energy_wh / 1000, 3),
        "already_present": already,
        "rollover_charger": site.evse[ROLLOVER_CHARGER_INDEX].id if len(site.evse) > ROLLOVER_CHARGER_INDEX else None,
        "month_boundary_charger": site.evse[BOUNDARY_CHARGER_INDEX].id
        if len(site.evse) > BOUNDARY_CHARGER_INDEX
        else None,
        "database": url,
    }


def generate_month(site: Site, url: str, month: str = "2026-10", seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """Synchronous `write_month` that opens and closes its own engine (scripts, demos)."""
    from evsite.store.db import create_engine

    async def run() -> dict[str, Any]:
        engine = create_engine(url, synchronous="NORMAL")
        try:
            return await write_month(engine, site, month, seed)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def control_scenario(seed: int = DEFAULT_SEED, month: str = "2026-10", site: Site | None = None) -> Scenario:
    """The same month's visits as a load-manager replay scenario (`evsite replay --scenario multifamily-month`).

    Arrivals, energy needs, cars' current limits and id tags are those `write_month` stores for the same
    seed; departures are fixed from the car's own rate (the replayed controller may deliver less).
    """
    site = site or example_site("multifamily-30")
    period = BillingPeriod.of(month, site.timezone)
    ids = [e.id for e in site.evse]
    boundary = ids[BOUNDARY_CHARGER_INDEX] if len(ids) > BOUNDARY_CHARGER_INDEX else None
    chargers = [
        _Charger(e, site.circuit(e.circuit).panel, tuple(site.circuit(e.circuit).lines), 0.0) for e in site.evse
    ]
    _plans(site, chargers, period, random.Random(f"{seed}:{month}:{site.name}:plans"), boundary, None)
    units = {str(getattr(a, "tag", a)): u.id for u in site.units for a in u.tags}
    volts = site.service.system.line_to_line_v
    visits = []
    for ch in chargers:
        for plan in ch.plans:
            arrival = (plan.arrive - period.start).total_seconds()
            if plan.leave_at is not None:
                departure = (plan.leave_at - period.start).total_seconds()
            else:
                full_s = plan.need_wh / (min(plan.ev_max_a, ch.evse.max_current_a) * volts) * 3600
                departure = arrival + full_s + (plan.dwell_min or 0) * 60
            visits.append(
                Visit(
                    ch.evse.id,
                    arrival,
                    departure,
                    plan.need_wh,
                    ev_max_a=plan.ev_max_a,
                    unit=units.get(plan.tag),
                    id_tag=plan.tag,
                )
            )
    duration = (period.end - period.start + timedelta(days=1)).total_seconds()
    return Scenario(f"{SCENARIO} {month}", site, visits, duration, start=period.start)
