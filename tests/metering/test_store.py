"""Billing from the database: a generated month on SQLite and PostgreSQL, reconciled independently.

The independent check recomputes each billable session's energy per TOU rate and month straight from the
stored rows (register deltas between consecutive 1-minute samples, taken modulo 10^9 Wh for the rollover,
the rate read off the local hour of each minute: peak 16:00–21:00 except on holidays), without the billing
code's span and allocation machinery, and compares kWh to the Wh and amounts to the cent.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, insert, select

from evsite.metering.billing import Adjustment, BillingError, BillingRun
from evsite.metering.month import ROLLOVER_AT_WH, control_scenario, write_month
from evsite.metering.repository import add_adjustment, bill_month, close_month
from evsite.metering.tables import SubmeterReading
from evsite.site import Site
from evsite.store.db import create_engine
from evsite.store.models import Transaction
from tests.conftest import scratch_engine
from tests.metering.helpers import site as example_site
from tests.metering.helpers import store_samples, stored_values

LA = ZoneInfo("America/Los_Angeles")
SMALL = ("MF-P1-01", "MF-P1-02", "MF-P1-07", "MF-P2-01")
RATES = {"peak": Decimal("0.45"), "off-peak": Decimal("0.25")}


def small_site() -> Site:
    full = example_site()
    return full.model_copy(update={"evse": [e for e in full.evse if e.id in SMALL]})


@pytest.fixture(params=["sqlite", "postgres"])
async def engine(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[Any]:
    if request.param == "sqlite":
        eng = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'site.db'}", synchronous="OFF")
        yield eng
        await eng.dispose()
        return
    async with scratch_engine(request.getfixturevalue("postgres_url"), "metering") as eng:
        yield eng


async def generated(engine: Any) -> tuple[Site, dict[str, Any]]:
    site = small_site()
    summary = await write_month(
        engine, site, "2026-10", days=4, rollover_charger="MF-P1-07", boundary_charger="MF-P1-02"
    )
    return site, summary


async def stored_series(engine: Any) -> dict[str, list[tuple[datetime, int]]]:
    """Per transaction: start register, every 1-minute energy sample, stop register (from the raw tables)."""
    async with engine.connect() as conn:
        txs = (await conn.execute(select(Transaction.__table__))).all()
        values = await stored_values(conn)
    samples = sorted(
        (v["timestamp"], v["transaction_id"], v["value"])
        for v in values
        if v["measurand"] == "Energy.Active.Import.Register"
    )
    by_tx: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
    for at, tx_id, value in samples:
        by_tx[tx_id].append((at, int(value)))
    out = {}
    for tx in txs:
        points = [(tx.start_time, tx.meter_start), *by_tx[tx.id]]
        if tx.stop_time is not None and (tx.stop_time, tx.meter_stop) != points[-1]:
            points.append((tx.stop_time, tx.meter_stop))
        out[f"{tx.charger_id}#{tx.id}"] = points
    return out


def independent_split(points: list[tuple[datetime, int]], holidays: set[Any]) -> dict[tuple[str, str], int]:
    """(month, TOU period) → Wh, minute by minute from the raw registers."""
    out: dict[tuple[str, str], int] = defaultdict(int)
    for (t0, e0), (_, e1) in itertools.pairwise(points):
        local = t0.astimezone(LA)
        peak = 16 <= local.hour < 21 and local.date() not in holidays
        out[(local.strftime("%Y-%m"), "peak" if peak else "off-peak")] += (e1 - e0) % ROLLOVER_AT_WH
    return out


def cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


async def test_generated_month_bills_and_reconciles_to_the_wh_and_cent(engine: Any) -> None:
    site, summary = await generated(engine)
    assert summary["month"] == "2026-10" and summary["transactions_written"] > 8
    october = (await bill_month(engine, site, "2026-10")).run
    november = (await bill_month(engine, site, "2026-11")).run
    assert site.tariff is not None
    holidays = set(site.tariff.holidays)
    series = await stored_series(engine)

    # every Wh of every stored session is billed once: October + November parts = register deltas
    def billed(run: BillingRun) -> dict[str, int]:
        entries = [e for s in run.statements for e in s.sessions] + [e for e in run.not_billed if e.unit_id is None]
        return {e.key: e.period_energy_wh for e in entries}

    oct_wh, nov_wh = billed(october), billed(november)
    for key, points in series.items():
        delta = sum((b[1] - a[1]) % ROLLOVER_AT_WH for a, b in itertools.pairwise(points))
        assert oct_wh.get(key, 0) + nov_wh.get(key, 0) == delta, key
    spanning = [k for k in series if k in oct_wh and k in nov_wh and oct_wh[k] and nov_wh[k]]
    assert spanning and all(k.startswith("MF-P1-02#") for k in spanning)
    assert october.summary.flags.get("rollover") == 1

    # each billable session's energy lines match the independent minute-by-minute split, to the Wh and cent
    checked = 0
    for run in (october, november):
        for st in run.statements:
            for entry in st.sessions:
                expected = independent_split(series[entry.key], holidays)
                got = {
                    ln.rate: (ln.quantity, ln.amount)
                    for ln in st.lines
                    if ln.kind == "energy" and ln.session == entry.key
                }
                if not entry.billable:
                    assert got == {} and "informational" in (entry.reason or "")
                    assert entry.charger_id == "MF-P2-01"
                    continue
                want = {
                    RATES[period]: (Decimal(wh) / 1000, cents(Decimal(wh) / 1000 * RATES[period]))
                    for (month, period), wh in expected.items()
                    if month == run.summary.month and wh
                }
                assert got == want, entry.key
                checked += 1
            # statement arithmetic: lines add up, tax is 7.25 % of the subtotal rounded once
            subtotal = sum((ln.amount for ln in st.lines if ln.kind != "tax"), Decimal(0))
            assert st.subtotal == subtotal and st.tax == cents(subtotal * Decimal("0.0725"))
            assert st.total == st.subtotal + st.tax
    assert checked >= 6
    # the spanning session's fee is charged once, in the month it stopped
    fees = [ln for run in (october, november) for st in run.statements for ln in st.lines if ln.session in spanning]
    assert [ln.kind for ln in fees if ln.kind == "session_fee"] == ["session_fee"]
    # panel meters: the register delta over the month, against the sessions under them
    async with engine.connect() as conn:
        registers = dict(
            (
                await conn.execute(
                    select(
                        SubmeterReading.meter_id,
                        func.max(SubmeterReading.energy_wh) - func.min(SubmeterReading.energy_wh),
                    )
                    .where(
                        SubmeterReading.at >= october.summary.period_start,
                        SubmeterReading.at <= october.summary.period_end,
                    )
                    .group_by(SubmeterReading.meter_id)
                )
            ).all()
        )
    recon = {r.meter_id: r for r in october.summary.reconciliations}
    assert set(recon) == {"M-P1", "M-P2"}
    assert {m: r.meter_wh for m, r in recon.items()} == {m: Decimal(v) for m, v in registers.items()}
    # the 3 chargers under M-P1 draw 6 W each (their model's `standby_w`) for 744 h = 13,392 Wh, more than the
    # 1 % losses allowance: within class tolerance + losses + standby, and flagged if standby is taken as 0
    p1 = recon["M-P1"]
    assert p1.ok and p1.standby_wh == 3 * 6 * 744 and p1.losses_wh == (p1.meter_wh / 100).quantize(Decimal(1))
    assert p1.billed_wh + p1.unbilled_wh == p1.sessions_wh and recon["M-P2"].unbilled_wh > 0
    assert p1.difference_wh <= p1.accuracy_wh + p1.losses_wh + p1.standby_wh == p1.tolerance_wh
    without = (await bill_month(engine, site, "2026-10", standby_w_per_evse=0.0)).run
    assert not {r.meter_id: r for r in without.summary.reconciliations}["M-P1"].ok


async def test_closed_month_is_reproducible_and_changes_come_as_adjustments(engine: Any) -> None:
    site, _ = await generated(engine)
    first = await bill_month(engine, site, "2026-10")
    again = await bill_month(engine, site, "2026-10")
    assert first.run.digest() == again.run.digest() and not again.closed
    await close_month(engine, first.run)
    with pytest.raises(BillingError, match="already closed"):
        await close_month(engine, first.run)
    rerun = await bill_month(engine, site, "2026-10")
    assert rerun.closed and rerun.matches_closed and rerun.closed_json == first.run.canonical_json()

    with pytest.raises(BillingError, match="is closed"):
        await add_adjustment(engine, Adjustment("", "U101", "2026-10", "late credit", Decimal("-1.00")))
    await add_adjustment(engine, Adjustment("", "U101", "2026-11", "credit", Decimal("-1.00"), refers_to="2026-10"))
    november = (await bill_month(engine, site, "2026-11")).run
    (u101,) = [s for s in november.statements if s.unit_id == "U101"]
    # a taxable credit also credits its tax: −1.00 × 7.25 % = −0.0725 → −0.07
    assert [(ln.kind, ln.amount) for ln in u101.lines] == [("adjustment", Decimal("-1.00")), ("tax", Decimal("-0.07"))]

    # a session that arrives late for the closed month is detected: the re-run no longer matches
    async with engine.begin() as conn:
        await conn.execute(
            insert(Transaction).values(
                charger_id="MF-P1-01",
                connector_id=1,
                id_tag="TAG-U105",
                auth_status="Accepted",
                meter_start=1,
                start_time=datetime(2026, 10, 20, 3, 0, tzinfo=ZoneInfo("UTC")),
                meter_stop=2_001,
                stop_time=datetime(2026, 10, 20, 4, 0, tzinfo=ZoneInfo("UTC")),
                stop_reason="Local",
                received_at=datetime(2026, 11, 2, tzinfo=ZoneInfo("UTC")),
            )
        )
    late = await bill_month(engine, site, "2026-10")
    assert late.closed and late.matches_closed is False


async def test_orphan_samples_become_a_held_session_not_a_lost_reading(engine: Any) -> None:
    site = small_site()
    from evsite.metering.tables import ensure_tables

    await ensure_tables(engine)
    base = {
        "charger_id": "MF-P1-01",
        "connector_id": 1,
        "transaction_id": 4242,
        "measurand": "Energy.Active.Import.Register",
    }
    rows = [
        base
        | {"timestamp": datetime(2026, 10, 5, 3, m, tzinfo=ZoneInfo("UTC")), "value": str(100 + 100 * m), "unit": "Wh"}
        for m in range(3)
    ]
    async with engine.begin() as conn:
        await store_samples(conn, rows)
    run = (await bill_month(engine, site, "2026-10")).run
    (orphan,) = run.not_billed
    assert orphan.key == "MF-P1-01#4242" and orphan.energy_wh == 200
    assert "never saw start or stop" in (orphan.reason or "")


@pytest.mark.slow
async def test_full_multifamily_month_end_to_end(tmp_path: Any) -> None:
    """The example's 30 chargers and 150 units for October 2026: every Wh billed once, every statement adds up."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'month.db'}", synchronous="OFF")
    site = example_site()
    try:
        summary = await write_month(engine, site, "2026-10")
        assert (summary["month"], summary["chargers"], summary["units"]) == ("2026-10", 30, 150)
        # the load manager's `multifamily-month` replay scenario carries the same visits
        replay = control_scenario(month="2026-10", site=site)
        assert len(replay.sessions) == summary["transactions_written"] and "2026-10" in replay.name
        october = (await bill_month(engine, site, "2026-10", standby_w_per_evse=6.0)).run
        november = (await bill_month(engine, site, "2026-11", standby_w_per_evse=6.0)).run
        series = await stored_series(engine)
    finally:
        await engine.dispose()
    entries = {
        month: {e.key: e for s in run.statements for e in s.sessions} | {e.key: e for e in run.not_billed}
        for month, run in (("10", october), ("11", november))
    }
    for key, points in series.items():
        delta = sum((b[1] - a[1]) % ROLLOVER_AT_WH for a, b in itertools.pairwise(points))
        billed = sum(e[key].period_energy_wh for e in entries.values() if key in e)
        assert billed == delta, key
    assert all(not e.billable for e in entries["10"].values() if e.charger_id.startswith("MF-P2-"))
    assert all(e.billable for e in entries["10"].values() if e.charger_id.startswith("MF-P1-"))
    assert october.summary.flags.get("rollover") == 1
    assert all(r.ok for r in october.summary.reconciliations)
    for st in october.statements:
        subtotal = sum((ln.amount for ln in st.lines if ln.kind != "tax"), Decimal(0))
        assert st.subtotal == subtotal and st.tax == cents(subtotal * Decimal("0.0725"))
        assert st.energy_wh == sum(e.period_energy_wh for e in st.sessions if e.billable)
    assert october.summary.energy_billed_wh + sum(october.summary.energy_not_billable_wh.values()) == sum(
        e.period_energy_wh for e in entries["10"].values()
    )


async def test_charger_without_a_usable_meter_is_billed_from_its_submeter(engine: Any) -> None:
    # MF-P2-01's own meter is informational; a C12.20 class 0.5, type-approved submeter (Modbus, polled every
    # 5 min) measures it alone. Session 03:02–03:28Z (20:02–20:28 PDT, peak) → registers 50,000 at 03:00
    # (last at/before start) and 53,000 at 03:30 (first at/after stop) = 3,000 Wh → 3.0 × $0.45 = $1.35.
    from evsite.metering.tables import ensure_tables
    from evsite.site.model import Meter

    base = small_site()
    sub = Meter(id="M-SUB-P2-01", role="evse", measures="MF-P2-01", accuracy="c12.20-0.5", type_approved=True)
    evse = [e.model_copy(update={"meter_id": sub.id}) if e.id == "MF-P2-01" else e for e in base.evse]
    site = base.model_copy(update={"evse": evse, "meters": [*base.meters, sub]})
    await ensure_tables(engine)
    utc = ZoneInfo("UTC")
    async with engine.begin() as conn:
        await conn.execute(
            insert(Transaction).values(
                charger_id="MF-P2-01", connector_id=1, id_tag="TAG-U301", auth_status="Accepted", meter_start=0,
                start_time=datetime(2026, 10, 7, 3, 2, tzinfo=utc), meter_stop=0,
                stop_time=datetime(2026, 10, 7, 3, 28, tzinfo=utc),
                received_at=datetime(2026, 10, 7, 3, 28, tzinfo=utc),
            )
        )  # fmt: skip
        registers = [50_000, 50_000, 50_600, 51_200, 51_800, 52_400, 53_000, 53_000]
        first = datetime(2026, 10, 7, 2, 55, tzinfo=utc)
        await conn.execute(
            insert(SubmeterReading),
            [
                {"meter_id": sub.id, "at": first + timedelta(minutes=5 * i), "energy_wh": Decimal(wh)}
                for i, wh in enumerate(registers)
            ],
        )
    run = (await bill_month(engine, site, "2026-10", standby_w_per_evse=0)).run
    (st,) = run.statements
    (entry,) = st.sessions
    assert entry.billable and entry.meter_id == "M-SUB-P2-01" and entry.energy_wh == 3_000
    assert [(ln.kind, ln.quantity, ln.amount) for ln in st.lines if ln.kind == "energy"] == [
        ("energy", Decimal(3), Decimal("1.35"))
    ]
