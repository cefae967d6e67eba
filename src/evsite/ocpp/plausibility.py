"""The plausibility gate: every number a charger reports is checked against physics and the site model.

A well-formed frame can still carry a wrong number: a meter that reports `inf`, a firmware that sends
−500 A, a register that runs backwards or a session from 1970 to 2100. The load manager must never be
steered by such a number, so each sampled value passes here before it reaches the controller or the
store's billing view:

- finite, and a number when its format is Raw;
- the sign its measurand allows (imported current, power and energy are never negative);
- within physical bounds from the site model: current up to 125 % of the circuit's OCPD (a breaker
  opens quickly above that), power up to that current times the port's volts per ampere with the
  utility's +10 % voltage tolerance, voltage up to 120 % of the line-to-line voltage;
- an energy register that only rises (a rollback is flagged) and never faster than the bound power
  allows in the time between two readings.

An implausible value is stored as received with a flag (see `Flag`), counted, logged at a bounded
rate, and handed to the load manager as *implausible*: the port then counts at its conservative current
(its circuit's limit, see `Controller`), never at the reported value and never as headroom.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from evsite.ocpp.profiles import watts_per_amp
from evsite.site.model import Evse, Site

log = logging.getLogger(__name__)

ENERGY = "Energy.Active.Import.Register"
OCPD_MARGIN = 1.25
"""A reading above 125 % of the circuit's OCPD rating is not physical: the breaker would have opened."""
VOLTAGE_TOLERANCE = 1.1
"""Service voltage may run up to +10 % of nominal (wider than ANSI C84.1 Range B's +5.8 %, on purpose)."""
MAX_VOLTAGE_FACTOR = 1.2
"""A voltage above 120 % of the nominal line-to-line voltage is a meter fault."""
NOISE_A = 0.5
"""Meters report small negative currents around zero; up to this much below zero counts as zero."""
SLACK_WH = 10.0
"""Register resolution allowance (meters round to 1–10 Wh)."""
UNKNOWN_CHARGER_OCPD_A = 80.0
"""Bound for a charger that is not in the site model: the largest single-phase Level 2 circuit (80 A EVSE
on a 100 A breaker would be larger, but such a charger must be in the site model to be managed)."""
UNKNOWN_CHARGER_V_LL = 480.0
"""The highest line-to-line voltage of North American low-voltage services (480Y/277 V)."""

UNITS: dict[str, dict[str, float]] = {
    ENERGY: {"Wh": 1.0, "kWh": 1000.0},
    "Energy.Active.Export.Register": {"Wh": 1.0, "kWh": 1000.0},
    "Energy.Reactive.Import.Register": {"varh": 1.0, "kvarh": 1000.0},
    "Energy.Reactive.Export.Register": {"varh": 1.0, "kvarh": 1000.0},
    "Energy.Active.Import.Interval": {"Wh": 1.0, "kWh": 1000.0},
    "Energy.Active.Export.Interval": {"Wh": 1.0, "kWh": 1000.0},
    "Power.Active.Import": {"W": 1.0, "kW": 1000.0},
    "Power.Active.Export": {"W": 1.0, "kW": 1000.0},
    "Power.Offered": {"W": 1.0, "kW": 1000.0},
    "Current.Import": {"A": 1.0},
    "Current.Export": {"A": 1.0},
    "Current.Offered": {"A": 1.0},
    "Voltage": {"V": 1.0},
}
"""Units each measurand may carry (OCPP 1.6 §7.45 UnitOfMeasure), with the factor to the base unit."""
DEFAULT_UNIT = {"Energy": "Wh", "Power": "W", "Current": "A", "Voltage": "V"}
NON_NEGATIVE = frozenset(UNITS) - {"Power.Factor"}
"""Measurands that cannot be negative: each names its direction (Import/Export) or is a magnitude."""


@dataclass(frozen=True)
class Bounds:
    """Physical limits of one charger's readings, from the site model."""

    current_a: float  # per line: 125 % of the circuit's OCPD
    power_w: float  # whole charger: current_a × volts per ampere × voltage tolerance
    voltage_v: float

    @classmethod
    def for_evse(cls, site: Site | None, evse: Evse | None) -> Bounds:
        """Bounds of a charger in the site model; fixed generous bounds for one that is not."""
        if site is None or evse is None:
            current = OCPD_MARGIN * UNKNOWN_CHARGER_OCPD_A
            v_ll = UNKNOWN_CHARGER_V_LL
            return cls(current, current * math.sqrt(3) * v_ll * VOLTAGE_TOLERANCE, MAX_VOLTAGE_FACTOR * v_ll)
        current = OCPD_MARGIN * site.circuit(evse.circuit).ocpd_a  # the loader checked the reference
        return cls(
            current_a=current,
            power_w=current * watts_per_amp(site, evse) * VOLTAGE_TOLERANCE,
            voltage_v=MAX_VOLTAGE_FACTOR * site.service.system.line_to_line_v,
        )

    def energy_wh(self, seconds: float) -> float:
        """The most energy the circuit can deliver in `seconds` (plus register resolution)."""
        return max(seconds, 0.0) * self.power_w / 3600.0 + SLACK_WH


@dataclass(frozen=True)
class Flag:
    """Why a value or message was found implausible; stored with what was received."""

    code: str  # not_a_number, non_finite, negative, out_of_range, unit, rollback, energy_rate, timestamp, ...
    detail: str
    measurand: str | None = None
    value: str | None = None

    def row(self, charger_id: str, connector_id: int | None, tx_id: int | None, at: datetime | None) -> dict[str, Any]:
        return {
            "charger_id": charger_id,
            "connector_id": connector_id,
            "transaction_id": tx_id,
            "at": at,
            "code": self.code,
            "measurand": self.measurand,
            "value": None if self.value is None else self.value[:64],
            "detail": self.detail[:255],
        }


def base_value(measurand: str, unit: str, number: float) -> float:
    """A reading in the measurand's base unit (Wh, W, A, V)."""
    return number * UNITS.get(measurand, {}).get(unit, 1.0)


def check_value(measurand: str, unit: str, fmt: str, text: str, bounds: Bounds) -> tuple[float | None, Flag | None]:
    """The value as a number in its base unit (None when there is none), and why it is implausible if it is.

    SignedData values are opaque here (OCMF is checked by billing); every Raw value must be a finite number.
    """
    if fmt != "Raw":
        return None, None
    try:
        number = float(text)
    except ValueError:
        return None, Flag("not_a_number", f"{measurand} {text!r} is not a number", measurand, text)
    if not math.isfinite(number):
        return None, Flag("non_finite", f"{measurand} {text!r} is not finite", measurand, text)
    allowed = UNITS.get(measurand)
    if allowed is not None and unit not in allowed:
        return None, Flag("unit", f"{measurand} in {unit!r} (expected {', '.join(allowed)})", measurand, text)
    value = base_value(measurand, unit, number)
    if measurand in NON_NEGATIVE and value < 0:
        if measurand.startswith("Current") and value >= -NOISE_A:
            return 0.0, None
        return None, Flag("negative", f"{measurand} {text} {unit} is negative", measurand, text)
    limit = _limit(measurand, bounds)
    if limit is not None and value > limit:
        return None, Flag("out_of_range", f"{measurand} {text} {unit} is above {limit:g}", measurand, text)
    return value, None


def _limit(measurand: str, bounds: Bounds) -> float | None:
    if measurand.startswith("Current"):
        return bounds.current_a
    if measurand.startswith("Power") and measurand != "Power.Factor":
        return bounds.power_w
    if measurand == "Voltage":
        return bounds.voltage_v
    return None  # energy registers: bounded by their rate of change, checked in `Gate.register`


@dataclass
class _Register:
    wh: float
    at: datetime


@dataclass
class Gate:
    """Per-site state of the gate: last register per connector, counters, and a rate-limited log."""

    clock_ahead_s: float = 900.0
    clock_behind_s: float = 7 * 86_400.0
    log_interval_s: float = 60.0
    time_scale: float = 1.0  # site seconds per real second (a sped-up demo), for the energy-rate bound
    counts: Counter[str] = field(default_factory=Counter)
    _registers: dict[tuple[str, int], _Register] = field(default_factory=dict)
    _logged_at: dict[str, float] = field(default_factory=dict)
    _suppressed: Counter[str] = field(default_factory=Counter)

    def register(self, key: tuple[str, int], wh: float, at: datetime, bounds: Bounds) -> Flag | None:
        """Check an energy register against the previous one of the same connector (monotone, bounded rate)."""
        last = self._registers.get(key)
        if last is not None and at <= last.at:
            return None  # a resend or a late reading: checked when it first came
        # The newest reading becomes the reference even when flagged, so one bad reading (or a replaced
        # meter) costs one or two flags, not a flag on every reading after it.
        self._registers[key] = _Register(wh, at)
        if last is None:
            return None
        if wh < last.wh - SLACK_WH:
            return Flag("rollback", f"register went back {last.wh:g} → {wh:g} Wh", ENERGY, f"{wh:g}")
        seconds = (at - last.at).total_seconds() * self.time_scale
        if wh - last.wh > bounds.energy_wh(seconds):
            detail = f"register rose {wh - last.wh:g} Wh in {seconds:g} s (at most {bounds.energy_wh(seconds):.0f})"
            return Flag("energy_rate", detail, ENERGY, f"{wh:g}")
        return None

    def forget(self, charger_id: str) -> None:
        """Drop a charger's registers (its meter may have been replaced while it was away)."""
        for key in [k for k in self._registers if k[0] == charger_id]:
            del self._registers[key]

    def timestamp(self, at: datetime, now: datetime, what: str) -> Flag | None:
        """A charger's timestamp far from our clock: stored as sent, flagged (clock drift or a forged time)."""
        if at > now + timedelta(seconds=self.clock_ahead_s) or at < now - timedelta(seconds=self.clock_behind_s):
            return Flag("timestamp", f"{what} {at.isoformat()} is outside the accepted clock window")
        return None

    def note(self, charger_id: str, flag: Flag) -> None:
        """Count a flag; log it, at most once per `log_interval_s` per charger and code."""
        self.counts[flag.code] += 1
        key = f"{charger_id}:{flag.code}"
        now = time.monotonic()
        if now - self._logged_at.get(key, -math.inf) < self.log_interval_s:
            self._suppressed[key] += 1
            return
        self._logged_at[key] = now
        more = self._suppressed.pop(key, 0)
        log.warning("%s: implausible data (%s): %s%s", charger_id, flag.code, flag.detail,
                    f" (+{more} similar since the last report)" if more else "")  # fmt: skip
