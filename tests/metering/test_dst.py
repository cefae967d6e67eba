"""TOU period edges through daylight-saving changes, in two time zones, against a minute-by-minute count.

A period covers `start ≤ t < end` on the local clock. When the clocks go back, a repeated clock time
happens twice and both occurrences are edges; when they go forward, a skipped boundary never happens
and the change falls on the transition instant. The oracle here walks the session minute by minute and
asks which period the local clock reads at each minute, so it shares none of the edge logic.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from evsite.metering.billing import Biller
from evsite.metering.tariffs import RateSchedule
from evsite.site.model import Site, Tariff
from tests.metering.helpers import session, site, utc

ZONES = ("America/Los_Angeles", "Europe/Berlin")
# The four 2026 transitions of those zones, in UTC.
TRANSITIONS = {
    "America/Los_Angeles": (utc("2026-03-08T10:00:00Z"), utc("2026-11-01T09:00:00Z")),
    "Europe/Berlin": (utc("2026-03-29T01:00:00Z"), utc("2026-10-25T01:00:00Z")),
}


def ring_tariff(clocks: list[time]) -> Tariff:
    """Periods P0…Pn−1 between consecutive clock times (the last wraps past midnight), distinct rates."""
    ordered = sorted(set(clocks))
    if len(ordered) == 1:
        ordered.append(time((ordered[0].hour + 12) % 24, ordered[0].minute))
        ordered.sort()
    periods = [
        {"name": f"P{i}", "start": c.strftime("%H:%M"), "end": ordered[(i + 1) % len(ordered)].strftime("%H:%M"),
         "rate_per_kwh": f"0.{10 + 7 * i}"}
        for i, c in enumerate(ordered)
    ]  # fmt: skip
    return Tariff.model_validate({"kind": "tou", "tou_periods": periods})


def zoned(tariff: Tariff, zone: str) -> Site:
    return site().model_copy(update={"tariff": tariff, "timezone": zone})


def minutes_by_period(rates: RateSchedule, start: datetime, end: datetime) -> Counter[str]:
    """The oracle: the period the local clock reads at each whole minute of [start, end)."""
    count: Counter[str] = Counter()
    at = start
    while at < end:
        count[rates.period_at(at)[0]] += 1
        at += timedelta(minutes=1)
    return count


def span_minutes(rates: RateSchedule, start: datetime, end: datetime) -> Counter[str]:
    count: Counter[str] = Counter()
    for span in rates.spans(start, end):
        count[span.period] += int((span.end - span.start) / timedelta(minutes=1))
    return count


MID = ring_tariff([time(1, 30), time(2, 30)])  # P0 = 01:30–02:30, P1 = 02:30–01:30


def test_fall_back_both_occurrences_of_a_repeated_boundary_are_edges() -> None:
    # 2026-11-01 LA: 01:00–02:00 happens twice (PDT, then PST from 09:00Z). P0 = 01:30–02:30 local:
    # 08:30–09:00Z (01:30–02:00 PDT) and 09:30–10:30Z (01:30–02:30 PST) → 90 min; the rest of 08:00–11:00Z
    # (01:00–01:30 PDT, 01:00–01:30 PST, 02:30–03:00 PST) → 90 min.
    rates = RateSchedule(MID, "America/Los_Angeles")
    spans = rates.spans(utc("2026-11-01T08:00:00Z"), utc("2026-11-01T11:00:00Z"))
    assert [(s.start.strftime("%H:%M"), s.period) for s in spans] == [
        ("08:00", "P1"), ("08:30", "P0"), ("09:00", "P1"), ("09:30", "P0"), ("10:30", "P1"),
    ]  # fmt: skip
    # The case: energy at 01:00–01:07 PST (09:00–09:07Z) is P1, the period that clock time is in.
    s = session("MF-P1-01", "TAG-U101", "1", [("2026-11-01T08:00:00Z", 0), ("2026-11-01T11:00:00Z", 18_000)])
    _, by_rate = Biller(zoned(MID, "America/Los_Angeles")).split(s, "2026-11")
    assert by_rate == {("P0", Decimal("0.10")): 9_000, ("P1", Decimal("0.17")): 9_000}


def test_spring_forward_a_skipped_boundary_changes_at_the_transition() -> None:
    # 2026-03-08 LA: 02:00 PST → 03:00 PDT at 10:00Z; 02:30 never happens. P0 runs 01:30 PST (09:30Z) to the
    # transition, because the next clock reading, 03:00, is already past 02:30.
    rates = RateSchedule(MID, "America/Los_Angeles")
    spans = rates.spans(utc("2026-03-08T09:00:00Z"), utc("2026-03-08T11:00:00Z"))
    assert [(s.start.strftime("%H:%M"), s.period) for s in spans] == [("09:00", "P1"), ("09:30", "P0"), ("10:00", "P1")]
    s = session("MF-P1-01", "TAG-U101", "1", [("2026-03-08T09:00:00Z", 0), ("2026-03-08T11:00:00Z", 12_000)])
    _, by_rate = Biller(zoned(MID, "America/Los_Angeles")).split(s, "2026-03")
    assert by_rate == {("P0", Decimal("0.10")): 3_000, ("P1", Decimal("0.17")): 9_000}


def test_berlin_repeated_hour_at_three() -> None:
    # 2026-10-25 Berlin: 03:00 CEST → 02:00 CET at 01:00Z. P0 = 02:30–03:30: 00:30–01:00Z and 01:30–02:30Z.
    tariff = ring_tariff([time(2, 30), time(3, 30)])
    rates = RateSchedule(tariff, "Europe/Berlin")
    start, end = utc("2026-10-25T00:00:00Z"), utc("2026-10-25T03:00:00Z")
    assert span_minutes(rates, start, end) == Counter({"P0": 90, "P1": 90})


boundary = st.builds(time, st.integers(0, 4), st.sampled_from([0, 1, 15, 30, 45, 59]))


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    which=st.integers(0, 1),
    clocks=st.lists(boundary, min_size=1, max_size=4)
    | st.lists(st.builds(time, st.integers(0, 23), st.integers(0, 59)), min_size=1, max_size=4),
    offset_min=st.integers(-8 * 60, 3 * 60),
    length_min=st.integers(1, 10 * 60),
    cuts=st.lists(st.integers(1, 10 * 60 - 1), max_size=6),
    energies=st.lists(st.integers(0, 3_000), min_size=7, max_size=7),
)
def test_periods_follow_the_local_clock_through_both_changes(
    zone: str,
    which: int,
    clocks: list[time],
    offset_min: int,
    length_min: int,
    cuts: list[int],
    energies: list[int],
) -> None:
    tariff = ring_tariff(clocks)
    rates = RateSchedule(tariff, zone)
    start = TRANSITIONS[zone][which] + timedelta(minutes=offset_min)
    end = start + timedelta(minutes=length_min)
    # spans: same minutes per period as the minute-by-minute oracle, contiguous, covering [start, end)
    assert span_minutes(rates, start, end) == minutes_by_period(rates, start, end)
    spans = rates.spans(start, end)
    assert spans[0].start == start and spans[-1].end == end
    assert all(a.end == b.start for a, b in itertools.pairwise(spans))
    # a session with readings at random minutes: energy per period sums to the register difference, and each
    # reading interval's energy lands in its periods in proportion to its minutes (±1 Wh per piece)
    marks = sorted({0, length_min, *(c for c in cuts if c < length_min)})
    points, register = [], 1_000_000
    for i, m in enumerate(marks):
        points.append(((start + timedelta(minutes=m)).astimezone(UTC).isoformat(), register))
        register += energies[i % len(energies)]
    s = session("MF-P1-01", "TAG-U101", "1", points)
    month = start.astimezone(rates.tz).strftime("%Y-%m")
    biller = Biller(zoned(tariff, zone))
    total, _ = biller.split(s, month)
    by_period: Counter[str] = Counter()
    for billed in {month, end.astimezone(rates.tz).strftime("%Y-%m")}:
        for (name, _rate), wh in biller.split(s, billed)[1].items():
            by_period[name] += wh
    assert sum(by_period.values()) == total == points[-1][1] - points[0][1]
    expected: dict[str, Decimal] = defaultdict(Decimal)
    for (a, wa), (b, wb) in itertools.pairwise(points):
        t0, t1 = datetime.fromisoformat(a), datetime.fromisoformat(b)
        minutes = minutes_by_period(rates, t0, t1)
        for name, n in minutes.items():
            expected[name] += Decimal(wb - wa) * n / sum(minutes.values())
    pieces = len(spans) + len(points)
    assert all(abs(by_period[n] - expected[n]) <= pieces for n in set(expected) | set(by_period))
