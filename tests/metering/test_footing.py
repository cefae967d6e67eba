"""Property: every statement foots exactly as printed, under both rounding modes, whatever the tariff and sessions.

Printed means cents: every line, the subtotal, the tax and the total have at most two decimals; the lines add
up to the subtotal; the tax is the tax rate applied to the printed taxable subtotal, rounded half up; and the
total is subtotal + tax. Tariffs have random local boundaries (in and around the 2026 DST changes), rates with
up to four decimals, an idle fee, a demand charge and a tax rate; adjustments may be taxable or not.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from evsite.metering.billing import Adjustment, Biller
from evsite.site.model import Tariff
from tests.metering.helpers import session, site, utc

CENT = Decimal("0.01")
rate = st.decimals(min_value=Decimal("0"), max_value=Decimal("2"), places=4)
clock = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))


@st.composite
def tariffs(draw: st.DrawFn) -> Tariff:
    clocks = sorted(set(draw(st.lists(clock, min_size=2, max_size=4))))
    if len(clocks) < 2:
        clocks = [time(0), time(12)]
    periods = [
        {"name": f"P{i}", "start": c.strftime("%H:%M"), "end": clocks[(i + 1) % len(clocks)].strftime("%H:%M"),
         "rate_per_kwh": str(draw(rate))}
        for i, c in enumerate(clocks)
    ]  # fmt: skip
    return Tariff.model_validate(
        {
            "kind": "tou",
            "tou_periods": periods,
            "session_fee": str(draw(st.decimals(min_value=0, max_value=1, places=3))),
            "idle_fee_per_hour": str(draw(rate)),
            "idle_grace_minutes": draw(st.integers(0, 90)),
            "demand_charge_per_kw": str(draw(st.decimals(min_value=0, max_value=20, places=3))),
            "tax_pct": str(draw(st.decimals(min_value=0, max_value=15, places=3))),
            "rounding": draw(st.sampled_from(["line-item", "statement"])),
        }
    )


visit = st.tuples(
    st.integers(1, 6),  # unit / charger number
    st.integers(-24 * 60, 24 * 60),  # start, minutes from the DST change
    st.integers(1, 6 * 60),  # charging minutes
    st.integers(0, 3 * 60),  # idle minutes
    st.integers(0, 11_500),  # Wh per hour of charging
)


@settings(max_examples=40, deadline=None)
@given(
    tariff=tariffs(),
    change=st.sampled_from([utc("2026-03-08T10:00:00Z"), utc("2026-11-01T09:00:00Z")]),
    visits=st.lists(visit, min_size=1, max_size=8),
    credits=st.lists(st.tuples(st.integers(1, 6), st.decimals(-50, 50, places=4), st.booleans()), max_size=3),
)
def test_every_statement_foots_as_printed(
    tariff: Tariff,
    change: datetime,
    visits: list[tuple[int, int, int, int, int]],
    credits: list[tuple[int, Decimal, bool]],
) -> None:
    sessions = []
    for n, (unit, offset, charging, idle, wh_per_h) in enumerate(visits):
        start = change + timedelta(minutes=offset)
        energy = wh_per_h * charging // 60
        points = [
            (start.astimezone(UTC).isoformat(), 1_000 * n),
            ((start + timedelta(minutes=charging)).astimezone(UTC).isoformat(), 1_000 * n + energy),
            ((start + timedelta(minutes=charging + idle)).astimezone(UTC).isoformat(), 1_000 * n + energy),
        ]
        sessions.append(session(f"MF-P1-{unit:02d}", f"TAG-U10{unit}", str(n), points))
    month = change.astimezone(UTC).strftime("%Y-%m")
    adjustments = [
        Adjustment(f"A{i}", f"U10{u}", month, "adjustment", amount, taxable)
        for i, (u, amount, taxable) in enumerate(credits)
    ]
    run = Biller(site().model_copy(update={"tariff": tariff})).bill(sessions, month, adjustments)
    for s in run.statements:
        charges = [ln for ln in s.lines if ln.kind != "tax"]
        printed = [ln.amount for ln in s.lines] + [s.subtotal, s.tax, s.total]
        assert all(x == x.quantize(CENT) for x in printed), printed
        assert sum((ln.amount for ln in charges), Decimal(0)) == s.subtotal
        taxable = sum((ln.amount for ln in charges if ln.taxable), Decimal(0))
        assert s.tax == (taxable * tariff.tax_pct / 100).quantize(CENT, rounding=ROUND_HALF_UP)
        assert s.subtotal + s.tax == s.total
    assert run.summary.total_billed == sum((s.total for s in run.statements), Decimal(0))
