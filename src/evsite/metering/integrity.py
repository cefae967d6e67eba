"""Meter data integrity: what can go wrong between a meter and a bill, detected and flagged, never hidden.

Energy always comes from register deltas (stop − start, telescoped over the sampled readings), so a lost
sample never loses energy; it only blurs *when* the energy was delivered (which matters for TOU and demand).
Each anomaly becomes a `Flag`. Severity decides what billing does with the session:

- ``info``: handled exactly (a register rollover with a known modulus, a duplicate message ignored);
- ``warning``: billed, with the note printed on the statement (a gap, a clock jump, a reset that can
  only under-bill);
- ``hold``: not billed until someone looks (a register rollback, conflicting readings, energy above
  what the charger can deliver); the session is listed with its reason and can be settled by an adjustment.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from evsite.metering.tariffs import Interval


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    HOLD = "hold"


@dataclass(frozen=True)
class Flag:
    """One detected anomaly, with when it happened and what was done about it."""

    code: str  # rollover, reset, rollback, gap, clock_jump, duplicate_reading, conflicting_readings, ...
    severity: Severity
    detail: str
    at: datetime | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "detail": self.detail,
            "at": self.at.isoformat() if self.at else None,
        }


class RegisterReading(Protocol):
    """What the checks need from a reading: the meter's time, its register, and (if known) arrival time."""

    @property
    def at(self) -> datetime: ...
    @property
    def energy_wh(self) -> Decimal: ...
    @property
    def received_at(self) -> datetime | None: ...


ROLLOVER_MODULI_WH = sorted({10**k for k in range(4, 16)} | {2**16, 2**31, 2**32, 2**48})
"""Register widths seen in the field: decimal displays (n digits of Wh) and binary counters."""

SLACK_WH = 10.0
"""Register resolution allowance in plausibility checks (meters round to 1–10 Wh)."""

CLOCK_JUMP_S = 60.0
"""A change of more than this in (meter time − arrival time) between readings is a clock jump."""


@dataclass
class RegisterResult:
    intervals: list[Interval]
    flags: list[Flag] = field(default_factory=list)
    used_received_time: bool = False

    @property
    def energy_wh(self) -> Decimal:
        return sum((iv.energy_wh for iv in self.intervals), Decimal(0))


def _allowed_wh(seconds: float, max_power_w: float) -> float:
    """Most energy a charger can deliver in `seconds` (10 % over nameplate for meter and rating tolerance)."""
    return max(seconds, 0.0) * max_power_w * 1.1 / 3600.0 + SLACK_WH


def register_intervals(readings: Sequence[RegisterReading], max_power_w: float, gap_s: float = 180.0) -> RegisterResult:
    """Interval energy from consecutive register readings given in arrival order.

    Detects duplicates, conflicting readings, clock jumps, gaps, rollovers, resets and rollbacks.
    """
    flags: list[Flag] = []
    unique: list[RegisterReading] = []
    seen: dict[datetime, Decimal] = {}
    duplicates = 0
    for reading in readings:
        if reading.at in seen:
            if seen[reading.at] == reading.energy_wh:
                duplicates += 1
                continue
            flags.append(
                Flag(
                    "conflicting_readings",
                    Severity.HOLD,
                    f"two register values at the same time: {seen[reading.at]} Wh and {reading.energy_wh} Wh",
                    reading.at,
                )
            )
            continue
        seen[reading.at] = reading.energy_wh
        unique.append(reading)
    if duplicates:
        flags.append(Flag("duplicate_reading", Severity.INFO, f"{duplicates} repeated reading(s) counted once"))

    times = [r.at for r in unique]
    used_received = False
    jump_at = _clock_jump(unique)
    if jump_at is not None:
        received = [r.received_at for r in unique if r.received_at is not None]
        if len(received) == len(unique) and all(a <= b for a, b in itertools.pairwise(received)):
            times = received
            used_received = True
            how = "energy timed by arrival (server clock) for this session"
        else:
            times = _monotone(times)
            how = "readings kept in arrival order; energy timed at the last good clock"
        flags.append(Flag("clock_jump", Severity.WARNING, f"charger clock jumped; {how}", jump_at))

    intervals: list[Interval] = []
    for i in range(1, len(unique)):
        prev, cur = unique[i - 1], unique[i]
        start, end = times[i - 1], times[i]
        seconds = (end - start).total_seconds()
        allowed = _allowed_wh(seconds, max_power_w)
        allowed_cap = int(allowed)  # cheap integer pre-check before the float comparison
        delta = cur.energy_wh - prev.energy_wh
        if seconds > gap_s:
            flags.append(
                Flag(
                    "gap",
                    Severity.WARNING,
                    f"no reading for {seconds / 60:.0f} min; {delta} Wh spread evenly over the gap",
                    start,
                )
            )
        if delta < 0:
            delta = _negative_delta(prev.energy_wh, cur.energy_wh, allowed, cur.at, flags)
        elif delta > allowed_cap and float(delta) > allowed:
            flags.append(
                Flag(
                    "implausible_energy",
                    Severity.HOLD,
                    f"{delta} Wh in {seconds:.0f} s is more than the charger can deliver ({allowed:.0f} Wh)",
                    start,
                )
            )
        intervals.append(Interval(start, end, delta))
    return RegisterResult(intervals, flags, used_received)


def _negative_delta(before: Decimal, after: Decimal, allowed: float, at: datetime, flags: list[Flag]) -> Decimal:
    """A register that went down: rollover (exact), reset (under-bills only) or rollback (held)."""
    for modulus in ROLLOVER_MODULI_WH:
        if modulus <= before:
            continue
        wrapped = after + modulus - before
        if float(wrapped) <= allowed:
            flags.append(
                Flag(
                    "rollover",
                    Severity.INFO,
                    f"register rolled over at {modulus} Wh: {before} → {after} Wh counts {wrapped} Wh",
                    at,
                )
            )
            return wrapped
        break  # only the register width just above the reading can explain a wrap
    if float(after) <= allowed:
        flags.append(
            Flag(
                "reset",
                Severity.WARNING,
                f"register reset {before} → {after} Wh; counted {after} Wh since the reset "
                "(energy before the reset in this interval is not billed)",
                at,
            )
        )
        return after
    flags.append(
        Flag("rollback", Severity.HOLD, f"register went back {before} → {after} Wh; interval counted as 0 Wh", at)
    )
    return Decimal(0)


def _clock_jump(readings: Sequence[RegisterReading]) -> datetime | None:
    """Meter time of the first reading that runs backwards, or whose clock offset moved > CLOCK_JUMP_S."""
    for prev, cur in itertools.pairwise(readings):
        if cur.at < prev.at:
            return cur.at
        if prev.received_at is not None and cur.received_at is not None:
            before = (prev.at - prev.received_at).total_seconds()
            after = (cur.at - cur.received_at).total_seconds()
            if abs(after - before) > CLOCK_JUMP_S:
                return cur.at
    return None


def _monotone(times: list[datetime]) -> list[datetime]:
    out: list[datetime] = []
    for t in times:
        out.append(max(t, out[-1]) if out else t)
    return out


# --------------------------------------------------------------------------- reconciliation


@dataclass(frozen=True)
class Reconciliation:
    """EVSE sessions against the submeter upstream of them over one period, with the parts shown."""

    meter_id: str
    meter_wh: Decimal
    sessions_wh: Decimal
    tolerance_wh: Decimal
    difference_wh: Decimal
    ok: bool
    arithmetic: list[str]
    billed_wh: Decimal = Decimal(0)  # sessions_wh = billed + not billed
    unbilled_wh: Decimal = Decimal(0)
    accuracy_wh: Decimal = Decimal(0)
    losses_wh: Decimal = Decimal(0)  # the percentage allowance for conductor losses
    standby_wh: Decimal = Decimal(0)  # the chargers' own draw, from their models' standby figures

    def to_dict(self) -> dict[str, object]:
        return {
            "meter_id": self.meter_id,
            "meter_wh": str(self.meter_wh),
            "sessions_wh": str(self.sessions_wh),
            "billed_wh": str(self.billed_wh),
            "unbilled_wh": str(self.unbilled_wh),
            "accuracy_wh": str(self.accuracy_wh),
            "losses_wh": str(self.losses_wh),
            "standby_wh": str(self.standby_wh),
            "difference_wh": str(self.difference_wh),
            "tolerance_wh": str(self.tolerance_wh),
            "ok": self.ok,
            "arithmetic": self.arithmetic,
        }


def reconcile(
    meter_id: str,
    meter_wh: Decimal,
    meter_tolerance_pct: float,
    sessions_wh: Decimal,
    sessions_tolerance_pct: float,
    losses_pct: float = 1.0,
    standby_wh: Decimal = Decimal(0),
    unbilled_wh: Decimal = Decimal(0),
) -> Reconciliation:
    """Flag when the upstream meter and the sum of sessions differ by more than accuracy (+ losses).

    Accuracy = meter class × meter energy + EVSE class × session energy. The upstream meter also sees
    conductor I²R losses and charger standby, so it may read more than the sessions by up to accuracy +
    losses (a share of the meter energy) + known standby; it may read less only by the accuracy.
    `unbilled_wh` is the part of `sessions_wh` not billed (informational meters, held sessions).
    """
    difference = meter_wh - sessions_wh
    pct = Decimal(str(meter_tolerance_pct)) / 100
    spct = Decimal(str(sessions_tolerance_pct)) / 100
    lpct = Decimal(str(losses_pct)) / 100
    accuracy = (meter_wh * pct + sessions_wh * spct).quantize(Decimal(1))
    line_losses = (meter_wh * lpct).quantize(Decimal(1))
    standby = standby_wh.quantize(Decimal(1))
    tolerance = accuracy + line_losses + standby
    ok = -accuracy <= difference <= tolerance
    billed = sessions_wh - unbilled_wh
    arithmetic = [
        f"sessions = billed {billed} Wh + not billed {unbilled_wh} Wh = {sessions_wh} Wh",
        f"difference = meter {meter_wh} Wh − sessions {sessions_wh} Wh = {difference} Wh",
        f"accuracy = {meter_wh} × {meter_tolerance_pct}% + {sessions_wh} × {sessions_tolerance_pct}% = {accuracy} Wh",
        f"losses = {meter_wh} × {losses_pct}% = {line_losses} Wh; standby {standby} Wh",
        f"allowed −{accuracy} … +{tolerance} Wh → {'within tolerance' if ok else 'FLAGGED'}",
    ]
    return Reconciliation(
        meter_id, meter_wh, sessions_wh, tolerance, difference, ok, arithmetic,
        billed, unbilled_wh, accuracy, line_losses, standby,
    )  # fmt: skip
