"""A charge point's charging-profile store and composite schedule (OCPP 1.6 §3.13, §5.16).

Pure code (no I/O): the simulated charge point keeps a `ProfileStore`, installs what the central
system sends, and asks it for the limit that applies to a connector at a moment. The rules here
are the charge point's side of smart charging:

- ChargePointMaxProfile only on connector 0, limiting all connectors together;
- TxDefaultProfile on connector 0 (all connectors) or on one connector, which replaces the
  connector-0 default for that connector;
- TxProfile only on a connector with a running transaction; it overrules TxDefaultProfile;
- per purpose the valid profile with the highest stackLevel prevails; same purpose + stackLevel
  (on the same connector) or the same id replaces the installed profile;
- the composite limit is the minimum over purposes, interval by interval;
- with no profile at all the connector is unconstrained (§3.13.6): `None` here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

RECURRENCE_S = {"Daily": 86_400, "Weekly": 604_800}
PURPOSES = ("ChargePointMaxProfile", "TxDefaultProfile", "TxProfile")


def parse_time(value: str | datetime | None) -> datetime | None:
    """ISO 8601 (with `Z` or an offset, fractions allowed) to an aware datetime."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))


def floor_tenth(value: float) -> float:
    """Round down to 0.1 (the schema's `multipleOf`); a limit is never rounded up."""
    return math.floor(round(value * 10, 6)) / 10


@dataclass(frozen=True)
class Period:
    start_s: int
    limit: float
    number_phases: int | None = None


@dataclass(frozen=True)
class Schedule:
    unit: str  # "A" or "W"
    periods: tuple[Period, ...]
    duration_s: int | None = None
    start: datetime | None = None
    min_charging_rate: float | None = None


@dataclass(frozen=True)
class Profile:
    """One installed charging profile, with the connector it was set on."""

    id: int
    connector_id: int
    stack_level: int
    purpose: str
    kind: str  # Absolute, Recurring, Relative
    schedule: Schedule
    recurrency: str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction_id: int | None = None

    @classmethod
    def from_ocpp(cls, connector_id: int, data: dict[str, Any]) -> Profile:
        """Build from a `csChargingProfiles` payload, snake_case keys (as the `ocpp` package passes them)."""
        sched = data["charging_schedule"]
        periods = tuple(
            Period(int(p["start_period"]), float(p["limit"]), p.get("number_phases"))
            for p in sched["charging_schedule_period"]
        )
        schedule = Schedule(
            unit=str(sched["charging_rate_unit"]),
            periods=tuple(sorted(periods, key=lambda p: p.start_s)),
            duration_s=sched.get("duration"),
            start=parse_time(sched.get("start_schedule")),
            min_charging_rate=float(sched["min_charging_rate"]) if sched.get("min_charging_rate") is not None else None,
        )
        return cls(
            id=int(data["charging_profile_id"]),
            connector_id=connector_id,
            stack_level=int(data["stack_level"]),
            purpose=str(data["charging_profile_purpose"]),
            kind=str(data["charging_profile_kind"]),
            schedule=schedule,
            recurrency=data.get("recurrency_kind"),
            valid_from=parse_time(data.get("valid_from")),
            valid_to=parse_time(data.get("valid_to")),
            transaction_id=data.get("transaction_id"),
        )

    def _start(self, at: datetime, tx_start: datetime | None) -> datetime | None:
        """When the schedule's period 0 began for the cycle containing `at`."""
        if self.kind == "Relative":
            return tx_start
        base = self.schedule.start or self.valid_from or tx_start
        if base is None:
            return None
        if self.kind == "Recurring":
            cycle = RECURRENCE_S.get(self.recurrency or "Daily", 86_400)
            elapsed = (at - base).total_seconds()
            return base + timedelta(seconds=math.floor(elapsed / cycle) * cycle)
        return base

    def period_at(self, at: datetime, tx_start: datetime | None) -> Period | None:
        """The period in force at `at`, or None when the profile is not in force then."""
        if self.valid_from is not None and at < self.valid_from:
            return None
        if self.valid_to is not None and at >= self.valid_to:
            return None
        start = self._start(at, tx_start)
        if start is None:
            return None
        offset = (at - start).total_seconds()
        if offset < 0:
            return None
        if self.schedule.duration_s is not None and offset >= self.schedule.duration_s:
            return None
        if self.kind == "Recurring" and offset >= RECURRENCE_S.get(self.recurrency or "Daily", 86_400):
            return None
        current = None
        for period in self.schedule.periods:
            if period.start_s <= offset:
                current = period
        return current

    def breakpoints(self, start: datetime, end: datetime, tx_start: datetime | None) -> set[datetime]:
        """Moments in [start, end) at which this profile's limit may change."""
        points: set[datetime] = {t for t in (self.valid_from, self.valid_to) if t is not None}
        if self.kind == "Recurring":
            cycle = RECURRENCE_S.get(self.recurrency or "Daily", 86_400)
            first = self._start(start, tx_start)
            origins = []
            if first is not None:
                t = first
                while t < end:
                    origins.append(t)
                    t += timedelta(seconds=cycle)
        else:
            origin = self._start(start, tx_start)
            origins = [origin] if origin is not None else []
        for origin in origins:
            for period in self.schedule.periods:
                points.add(origin + timedelta(seconds=period.start_s))
            if self.schedule.duration_s is not None:
                points.add(origin + timedelta(seconds=self.schedule.duration_s))
        return {t for t in points if start <= t < end}


@dataclass(frozen=True)
class Electrical:
    """What the charge point needs to turn watts into amperes: volts across each phase's load."""

    phase_voltage_v: float = 230.0
    phases: int = 3
    max_current_a: float = 32.0

    def to_amps(self, limit: float, unit: str, number_phases: int | None) -> float:
        if unit == "A":
            return limit
        phases = min(number_phases or 3, self.phases)
        return limit / (self.phase_voltage_v * phases)

    def from_amps(self, amps: float, unit: str, number_phases: int | None) -> float:
        if unit == "A":
            return amps
        phases = min(number_phases or 3, self.phases)
        return amps * self.phase_voltage_v * phases


@dataclass
class ProfileStore:
    """The profiles installed on one charge point and the composite limit they impose."""

    connectors: int = 1
    electrical: Electrical = field(default_factory=Electrical)
    profiles: list[Profile] = field(default_factory=list)

    # ---- installing and clearing

    def install(self, profile: Profile) -> None:
        """Replace a profile with the same id, or the same purpose + stackLevel on the same connector."""
        self.profiles = [
            p
            for p in self.profiles
            if p.id != profile.id
            and not (
                p.purpose == profile.purpose
                and p.stack_level == profile.stack_level
                and p.connector_id == profile.connector_id
            )
        ]
        self.profiles.append(profile)

    def clear(
        self,
        id: int | None = None,
        connector_id: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
    ) -> int:
        """ClearChargingProfile per errata 3.25: by id, else all fields ANDed, else everything. Returns count."""

        def matches(p: Profile) -> bool:
            if id is not None:
                return p.id == id
            return (
                (connector_id is None or p.connector_id == connector_id)
                and (purpose is None or p.purpose == purpose)
                and (stack_level is None or p.stack_level == stack_level)
            )

        before = len(self.profiles)
        self.profiles = [p for p in self.profiles if not matches(p)]
        return before - len(self.profiles)

    def end_transaction(self, connector_id: int) -> None:
        """TxProfiles go with their transaction (§3.13.1)."""
        self.profiles = [p for p in self.profiles if not (p.purpose == "TxProfile" and p.connector_id == connector_id)]

    # ---- evaluation

    def _prevailing(self, candidates: list[Profile], at: datetime, tx_start: datetime | None) -> Period | None:
        best: tuple[int, Period] | None = None
        for p in candidates:
            period = p.period_at(at, tx_start)
            if period is not None and (best is None or p.stack_level > best[0]):
                best = (p.stack_level, period)
        return best[1] if best else None

    def _amps(self, profile_list: list[Profile], at: datetime, tx_start: datetime | None) -> float | None:
        best: tuple[int, float] | None = None
        for p in profile_list:
            period = p.period_at(at, tx_start)
            if period is not None and (best is None or p.stack_level > best[0]):
                best = (p.stack_level, self.electrical.to_amps(period.limit, p.schedule.unit, period.number_phases))
        return best[1] if best else None

    def charge_point_max_a(self, at: datetime) -> float | None:
        """The ChargePointMaxProfile limit at `at` (all connectors together), None if none applies."""
        return self._amps([p for p in self.profiles if p.purpose == "ChargePointMaxProfile"], at, None)

    def connector_limit_a(
        self, connector_id: int, at: datetime, tx_start: datetime | None = None, transaction_id: int | None = None
    ) -> float | None:
        """TxProfile (with a transaction) else TxDefaultProfile, for one connector; None when unconstrained."""
        if tx_start is not None:
            tx = [
                p
                for p in self.profiles
                if p.purpose == "TxProfile"
                and p.connector_id == connector_id
                and (p.transaction_id is None or transaction_id is None or p.transaction_id == transaction_id)
            ]
            limit = self._amps(tx, at, tx_start)
            if limit is not None:
                return limit
        defaults = [p for p in self.profiles if p.purpose == "TxDefaultProfile"]
        own = self._amps([p for p in defaults if p.connector_id == connector_id], at, tx_start)
        if own is not None:
            return own
        return self._amps([p for p in defaults if p.connector_id == 0], at, tx_start)

    def composite_a(
        self, connector_id: int, at: datetime, tx_start: datetime | None = None, transaction_id: int | None = None
    ) -> float | None:
        """The composite limit in amperes per phase: minimum over purposes; None when nothing applies."""
        limits = [self.charge_point_max_a(at)]
        if connector_id > 0:
            limits.append(self.connector_limit_a(connector_id, at, tx_start, transaction_id))
        present = [x for x in limits if x is not None]
        return min(present) if present else None

    def composite_schedule(
        self,
        connector_id: int,
        start: datetime,
        duration_s: int,
        unit: str = "A",
        tx_start: datetime | None = None,
        transaction_id: int | None = None,
    ) -> dict[str, Any]:
        """The GetCompositeSchedule.conf `chargingSchedule` (camelCase) for [start, start + duration).

        Intervals where no profile applies report the charge point's hardware maximum (that is the
        limit in force: §3.13.6). Limits are rounded down to 0.1.
        """
        end = start + timedelta(seconds=duration_s)
        points = {start}
        for p in self.profiles:
            points |= p.breakpoints(start, end, tx_start)
        periods: list[dict[str, Any]] = []
        last: float | None = None
        hw = self.electrical.max_current_a if connector_id > 0 else self.electrical.max_current_a * self.connectors
        for t in sorted(points):
            amps = self.composite_a(connector_id, t, tx_start, transaction_id)
            amps = hw if amps is None else min(amps, hw)
            value = floor_tenth(self.electrical.from_amps(amps, unit, None))
            if value != last:
                periods.append({"startPeriod": int((t - start).total_seconds()), "limit": value})
                last = value
        if unit == "W" or self.electrical.phases != 3:
            for item in periods:
                item["numberPhases"] = self.electrical.phases
        return {"duration": duration_s, "chargingRateUnit": unit, "chargingSchedulePeriod": periods}


def share_charge_point_max(limits: dict[int, float], total: float | None) -> dict[int, float]:
    """Split a ChargePointMaxProfile limit among active connectors: equal shares, unused share passed on.

    `limits` maps each active connector to what it may take on its own. Water-filling keeps the sum
    within `total` while no connector gets more than its own limit.
    """
    if total is None:
        return dict(limits)
    result: dict[int, float] = {}
    remaining = total
    pending = sorted(limits.items(), key=lambda kv: kv[1])
    while pending:
        share = remaining / len(pending)
        connector, own = pending.pop(0)
        given = min(own, share)
        result[connector] = given
        remaining -= given
    return result
