"""Tariff arithmetic: which rate applies when, how interval energy splits at boundaries, money rounding.

Everything here is pure and exact: energy and money are `Decimal`, times are aware UTC datetimes, and
the site's time zone decides local TOU clock times, weekdays, seasons (months) and holidays. A TOU
period applies on the local calendar day of the moment it covers (so an overnight period from 21:00 to
16:00 listed for `mon` covers Monday 00:00–16:00 and Monday 21:00–24:00).
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import NamedTuple
from zoneinfo import ZoneInfo

from evsite.errors import ConfigurationError
from evsite.site.model import WEEKDAYS, Tariff, TouPeriod

CENT = Decimal("0.01")
WH_PER_KWH = Decimal(1000)
FLAT_PERIOD = "flat"


class TariffError(ConfigurationError):
    """A tariff that cannot price some moment (a gap or an overlap between TOU periods)."""


@dataclass(frozen=True)
class RateSpan:
    """A stretch of time [start, end) during which one energy rate applies."""

    start: datetime
    end: datetime
    period: str
    rate_per_kwh: Decimal


def round_money(amount: Decimal) -> Decimal:
    """Cents, half up: the rounding US utility and tax arithmetic uses."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def shown_amounts(exact: Sequence[Decimal], rounding: str) -> list[Decimal]:
    """Each line's amount in cents as printed, so that the printed lines add up to the printed subtotal.

    `line-item` rounds every line half up. `statement` rounds only the sum (half up) and gives the cents
    to the lines by largest remainder: each printed line is within a cent of its exact amount, and the
    subtotal is the exact sum rounded once.
    """
    if rounding == "line-item":
        return [round_money(a) for a in exact]
    target = int(round_money(sum(exact, Decimal(0))) * 100)
    return [(Decimal(c) / 100).quantize(CENT) for c in apportion_wh([a * 100 for a in exact], target)]


def _covers(period: TouPeriod, clock: time) -> bool:
    if period.start < period.end:
        return period.start <= clock < period.end
    return clock >= period.start or clock < period.end  # wraps past midnight (start == end: all day)


class RateSchedule:
    """The energy rate in force at any moment under a site's tariff."""

    def __init__(self, tariff: Tariff, timezone: str) -> None:
        self.tariff = tariff
        self.tz = ZoneInfo(timezone)
        self._holidays = set(tariff.holidays)
        self._by_name: dict[str, TouPeriod] = {}
        for period in tariff.tou_periods:
            self._by_name.setdefault(period.name, period)
        if tariff.kind == "tou":
            if tariff.holiday_period is not None and tariff.holiday_period not in self._by_name:
                raise TariffError(f"holiday_period {tariff.holiday_period!r} is not one of the tou_periods")
            problems = self.coverage_problems()
            if problems:
                raise TariffError(
                    "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
                )

    # ---- lookups
    def period_local(self, local: datetime) -> tuple[str, Decimal]:
        """Period name and rate at a local wall-clock time."""
        if self.tariff.kind == "flat":
            return FLAT_PERIOD, self.tariff.energy_rate_per_kwh
        if self.tariff.holiday_period is not None and local.date() in self._holidays:
            period = self._by_name[self.tariff.holiday_period]
            return period.name, period.rate_per_kwh
        matches = self._matches(local.month, WEEKDAYS[local.weekday()], local.time())
        if len(matches) != 1:
            names = ", ".join(p.name for p in matches) or "none"
            raise TariffError(f"{len(matches)} TOU periods ({names}) cover {local:%a %Y-%m-%d %H:%M}")
        return matches[0].name, matches[0].rate_per_kwh

    def period_at(self, at: datetime) -> tuple[str, Decimal]:
        """Period name and rate at an aware instant."""
        return self.period_local(at.astimezone(self.tz))

    def _matches(self, month: int, weekday: str, clock: time) -> list[TouPeriod]:
        return [p for p in self.tariff.tou_periods if month in p.months and weekday in p.days and _covers(p, clock)]

    def coverage_problems(self) -> list[str]:
        """Every (month, weekday, clock span) covered by no period or by more than one."""
        clocks = sorted(
            {time(0)} | {p.start for p in self.tariff.tou_periods} | {p.end for p in self.tariff.tou_periods}
        )
        problems = []
        for month in range(1, 13):
            for weekday in WEEKDAYS:
                for clock in clocks:
                    count = len(self._matches(month, weekday, clock))
                    if count != 1:
                        what = "no period" if count == 0 else f"{count} periods"
                        problems.append(f"{what} at {weekday} {clock:%H:%M} in month {month}")
        return problems

    # ---- spans
    def _local_edges(self, day: date) -> list[datetime]:
        """Instants on `day` where the period may change: every boundary clock time, both times it occurs.

        A clock time repeated when daylight saving time ends happens twice (fold 0 and 1), and both are
        edges; one skipped when it starts never happens, so the change falls on the transition instant
        (`_transitions`). A skipped time converts to some instant near the gap: an extra edge is harmless,
        as spans with the same period merge.
        """
        clocks = {time(0)}
        if self.tariff.kind == "tou":
            clocks |= {p.start for p in self.tariff.tou_periods} | {p.end for p in self.tariff.tou_periods}
        return [
            datetime.combine(day, c, tzinfo=self.tz).replace(fold=fold).astimezone(UTC)
            for c in sorted(clocks)
            for fold in (0, 1)
        ]

    def _transitions(self, start: datetime, end: datetime) -> list[datetime]:
        """UTC instants in (start, end) where the zone's offset changes (DST starts or ends), to the second."""
        out: list[datetime] = []
        step = timedelta(hours=6)  # no zone changes its offset twice within six hours
        a = start
        while a < end:
            b = min(a + step, end)
            before = a.astimezone(self.tz).utcoffset()
            if before != b.astimezone(self.tz).utcoffset():
                lo, hi = math.floor(a.timestamp()), math.ceil(b.timestamp())  # tz data changes on whole seconds
                while hi - lo > 1:  # invariant: lo has the old offset, hi the new one
                    mid = (lo + hi) // 2
                    if datetime.fromtimestamp(mid, UTC).astimezone(self.tz).utcoffset() == before:
                        lo = mid
                    else:
                        hi = mid
                instant = datetime.fromtimestamp(hi, UTC)
                if start < instant < end:
                    out.append(instant)
            a = b
        return out

    def spans(self, start: datetime, end: datetime) -> list[RateSpan]:
        """Constant-rate spans that exactly cover [start, end), merged where the period does not change."""
        if end <= start:
            return []
        edges = {start, end}
        day = start.astimezone(self.tz).date() - timedelta(days=1)
        last = end.astimezone(self.tz).date() + timedelta(days=1)
        while day <= last:
            edges.update(e for e in self._local_edges(day) if start < e < end)
            day += timedelta(days=1)
        edges.update(self._transitions(start, end))
        ordered = sorted(edges)
        spans: list[RateSpan] = []
        for a, b in itertools.pairwise(ordered):
            name, rate = self.period_at(a + (b - a) / 2)
            if spans and spans[-1].period == name and spans[-1].rate_per_kwh == rate:
                spans[-1] = RateSpan(spans[-1].start, b, name, rate)
            else:
                spans.append(RateSpan(a, b, name, rate))
        return spans


# --------------------------------------------------------------------------- splitting energy over time


class Interval(NamedTuple):
    """Energy delivered between two register readings (from the register delta, never from power)."""

    start: datetime
    end: datetime
    energy_wh: Decimal


def allocate(intervals: Iterable[Interval], edges: Sequence[datetime]) -> tuple[list[Decimal], Decimal, Decimal]:
    """Energy in each [edges[i], edges[i+1]), plus energy before edges[0] and at or after edges[-1].

    An interval that straddles an edge is split in proportion to time (energy is taken as uniform between
    two readings); pieces are whole µWh and the last piece takes the remainder, so sums stay exact and no
    fraction of a Wh is created or lost. An interval
    of zero length (a clock problem) counts where it sits.
    """
    buckets = [Decimal(0)] * max(len(edges) - 1, 0)
    outside = [Decimal(0), Decimal(0)]

    def add(at: datetime, energy: Decimal) -> None:
        index = bisect_right(edges, at) - 1
        if index < 0:
            outside[0] += energy
        elif index >= len(buckets):
            outside[1] += energy
        else:
            buckets[index] += energy

    for iv in intervals:
        if iv.energy_wh == 0:
            continue
        first = bisect_right(edges, iv.start)
        last = bisect_left(edges, iv.end)
        if iv.end <= iv.start or first >= last:
            add(iv.start, iv.energy_wh)
            continue
        total_us = Decimal((iv.end - iv.start) // _MICROSECOND)
        given = Decimal(0)
        cursor = iv.start
        for edge in edges[first:last]:
            piece = (iv.energy_wh * Decimal((edge - cursor) // _MICROSECOND) / total_us).quantize(SPLIT_QUANTUM_WH)
            add(cursor, piece)
            given += piece
            cursor = edge
        add(cursor, iv.energy_wh - given)
    return buckets, outside[0], outside[1]


_MICROSECOND = timedelta(microseconds=1)
SPLIT_QUANTUM_WH = Decimal("0.000001")
"""Split pieces are whole µWh, so every sum of pieces is exact in Decimal arithmetic."""


def apportion_wh(parts: Sequence[Decimal], total_wh: int) -> list[int]:
    """Whole Wh per part that sum exactly to `total_wh` (largest remainder; ties go to the earlier part)."""
    floors = [int(p.to_integral_value(rounding=ROUND_FLOOR)) for p in parts]
    short = total_wh - sum(floors)
    if short >= 0:
        order = sorted(range(len(parts)), key=lambda i: (floors[i] - parts[i], i))
        for i in order[:short]:
            floors[i] += 1
    else:
        order = sorted(range(len(parts)), key=lambda i: (parts[i] - floors[i], i))
        for i in order[:-short]:
            floors[i] -= 1
    return floors
