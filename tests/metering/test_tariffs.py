"""TOU lookup (seasons, weekdays, holidays, DST), exact energy splitting, tariff validation, registry, tenants."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evsite.metering.registry import MeterRegistry
from evsite.metering.tariffs import Interval, RateSchedule, TariffError, allocate, apportion_wh
from evsite.metering.tenants import TenantDirectory, UnknownTag
from evsite.site.model import TagAssignment, Tariff, Unit
from tests.metering.helpers import site, utc

LA = ZoneInfo("America/Los_Angeles")

SEASONAL = Tariff.model_validate(
    {
        "kind": "tou",
        "tou_periods": [
            {
                "name": "summer-peak",
                "start": "16:00",
                "end": "21:00",
                "days": ["mon", "tue", "wed", "thu", "fri"],
                "months": [6, 7, 8, 9],
                "rate_per_kwh": "0.52",
            },
            {
                "name": "summer-peak",
                "start": "16:00",
                "end": "21:00",
                "days": ["sat", "sun"],
                "months": [6, 7, 8, 9],
                "rate_per_kwh": "0.31",
            },
            {"name": "summer-off", "start": "21:00", "end": "16:00", "months": [6, 7, 8, 9], "rate_per_kwh": "0.31"},
            {
                "name": "winter",
                "start": "00:00",
                "end": "00:00",
                "months": [1, 2, 3, 4, 5, 10, 11, 12],
                "rate_per_kwh": "0.28",
            },
        ],
        "holidays": ["2026-07-03"],
        "holiday_period": "summer-off",
    }
)


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=LA)


def test_seasons_weekdays_and_holidays() -> None:
    rates = RateSchedule(SEASONAL, "America/Los_Angeles")
    assert rates.period_at(local("2026-07-01T17:00")) == ("summer-peak", Decimal("0.52"))  # Wednesday
    assert rates.period_at(local("2026-07-04T17:00")) == ("summer-peak", Decimal("0.31"))  # Saturday
    assert rates.period_at(local("2026-07-03T17:00")) == ("summer-off", Decimal("0.31"))  # observed holiday
    assert rates.period_at(local("2026-07-01T21:00")) == ("summer-off", Decimal("0.31"))  # end is exclusive
    assert rates.period_at(local("2026-10-01T17:00")) == ("winter", Decimal("0.28"))


def test_example_holiday_is_off_peak_all_day() -> None:
    example = site()
    assert example.tariff is not None
    rates = RateSchedule(example.tariff, example.timezone)
    assert rates.period_at(local("2026-11-26T17:00"))[0] == "off-peak"  # Thanksgiving 2026
    assert rates.period_at(local("2026-11-25T17:00"))[0] == "peak"


def test_a_tariff_with_a_gap_or_overlap_is_refused() -> None:
    gap = Tariff.model_validate(
        {"kind": "tou", "tou_periods": [{"name": "day", "start": "07:00", "end": "21:00", "rate_per_kwh": "0.3"}]}
    )
    with pytest.raises(TariffError, match="no period at mon 00:00 in month 1"):
        RateSchedule(gap, "America/Los_Angeles")
    overlap = Tariff.model_validate(
        {
            "kind": "tou",
            "tou_periods": [
                {"name": "all", "start": "00:00", "end": "00:00", "rate_per_kwh": "0.3"},
                {"name": "peak", "start": "16:00", "end": "21:00", "rate_per_kwh": "0.5"},
            ],
        }
    )
    with pytest.raises(TariffError, match="2 periods at mon 16:00"):
        RateSchedule(overlap, "America/Los_Angeles")


def test_spans_cover_the_dst_fall_back_night_exactly() -> None:
    # 2026-11-01: 02:00 PDT → 01:00 PST, so local 00:00–06:00 lasts 7 real hours; all of it off-peak.
    example = site()
    assert example.tariff is not None
    rates = RateSchedule(example.tariff, example.timezone)
    start, end = local("2026-10-31T20:00"), local("2026-11-01T17:00")
    spans = rates.spans(start, end)
    assert [s.period for s in spans] == ["peak", "off-peak", "peak"]
    assert spans[0].start == start and spans[-1].end == end
    assert all(a.end == b.start for a, b in itertools.pairwise(spans))
    # off-peak runs 21:00 PDT (04:00Z) to 16:00 PST (2026-11-02T00:00Z): 20 real hours
    assert spans[1].end - spans[1].start == timedelta(hours=20)


@given(
    st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=20),
    st.lists(st.integers(min_value=1, max_value=500), min_size=1, max_size=30),
)
def test_allocation_never_creates_or_loses_energy(energies: list[int], edge_minutes: list[int]) -> None:
    t0 = utc("2026-10-01T00:00:00Z")
    intervals = [
        Interval(t0 + timedelta(minutes=7 * i), t0 + timedelta(minutes=7 * i + 7), Decimal(e))
        for i, e in enumerate(energies)
    ]
    edges = sorted({t0 + timedelta(minutes=m) for m in edge_minutes})
    buckets, before, after = allocate(intervals, edges)
    assert sum(buckets) + before + after == sum(energies)
    whole = apportion_wh([*buckets, before, after], sum(energies))
    assert sum(whole) == sum(energies) and all(w >= 0 for w in whole)


def test_registry_marks_informational_and_unapproved_meters_unfit() -> None:
    example = site()
    registry = MeterRegistry(example)
    p2 = registry.evse_fitness("MF-P2-01")
    assert not p2.billable and "informational" in (p2.reason or "")
    p1 = registry.evse_fitness("MF-P1-01")
    assert p1.billable and any("HB 44" in n for n in p1.notes)  # approval not recorded: billed, with a warning
    evse = [e.model_copy(update={"meter_type_approved": False}) if e.id == "MF-P1-01" else e for e in example.evse]
    unapproved = MeterRegistry(example.model_copy(update={"evse": evse})).evse_fitness("MF-P1-01")
    assert not unapproved.billable and "type-approved" in (unapproved.reason or "")
    not_selling = example.model_copy(update={"billing": example.billing.model_copy(update={"sells_by_kwh": False})})
    assert MeterRegistry(not_selling).evse_fitness("MF-P1-01").notes == ()
    assert registry.fitness(registry.meters["M-P1"], date(2026, 2, 1)).reason == (
        "meter M-P1 was installed 2026-03-01, after the session started"
    )


def test_tags_move_between_units_with_history() -> None:
    example = site()
    units = [
        Unit(id="U101", tags=[TagAssignment(tag="CARD-9", until=date(2026, 10, 15))]),
        Unit(id="U102", tags=[TagAssignment(tag="CARD-9", since=date(2026, 10, 15))]),
    ]
    directory = TenantDirectory(example.model_copy(update={"units": units}))
    # 2026-10-15T06:30Z is still Oct 14 in Los Angeles
    assert directory.unit_for("CARD-9", utc("2026-10-15T06:30:00Z")) == "U101"
    assert directory.unit_for("CARD-9", utc("2026-10-15T07:30:00Z")) == "U102"
    with pytest.raises(UnknownTag, match="belongs to no unit"):
        directory.unit_for("CARD-404", utc("2026-10-15T07:30:00Z"))
