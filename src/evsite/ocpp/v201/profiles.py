"""Setpoints → OCPP 2.0.1 charging profiles, and the K01 rules every profile we send must pass.

The stack is the one of `evsite.ocpp.profiles` (fail-safe cap at stack 0, leased lift at stack 1,
setpoints at the station's top stack level, fixed ids so a new setpoint replaces the old one), in
2.0.1 terms: the station-wide cap is a ChargingStationMaxProfile on EVSE 0, a setpoint is a TxProfile
carrying the station's transactionId (a string in 2.0.1) or, without a transaction, a TxDefaultProfile
on the EVSE. evsite numbers its ports like 1.6 connectors; a port is a 2.0.1 EVSE with the same id.

`check` is the guard in front of every SetChargingProfile: a profile that breaks a rule of K01 is a
bug on our side and never leaves the process (a station would reject it, or worse, apply it oddly).

Rate units (K01.FR.26/50/51): amperes are per phase and preferred. A W-only station gets watts that it
turns back into amperes with K01.FR.50, current per phase = W / (nominal line voltage × numberPhases);
we send numberPhases with every W schedule and compute W = A × V_LN × numberPhases, so the station ends up
at the same per-phase current whatever the car does. V_LN is the site's nominal line-to-neutral voltage
(`topology.watts_per_amp(system, 1)`); without a site model the lowest nominal in use (120 V), so an
unknown station can only end up lower in amperes.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from evsite.ocpp.profiles import SmartChargingCaps
from evsite.site import topology
from evsite.site.model import Evse, Site

FAILSAFE_PROFILE_ID = 1
LIFT_PROFILE_ID = 2
FAILSAFE_TX_DEFAULT_PROFILE_ID = 3
TX_DEFAULT_PROFILE_BASE = 100
TX_PROFILE_BASE = 200
UNKNOWN_LINE_TO_NEUTRAL_V = 120.0
"""Nominal line-to-neutral voltage assumed without a site model: the lowest in use, so W → A can only be lower."""

SMART_CHARGING_VARIABLES = (
    "Available",
    "RateUnit",
    "ProfileStackLevel",
    "PeriodsPerSchedule",
    "ACPhaseSwitchingSupported",
    "LimitChangeSignificance",
    "NotifyChargingLimitWithSchedules",
)
"""SmartChargingCtrlr variables read with GetVariables after boot, before the first profile."""


class ProfileRuleError(ValueError):
    """A profile we built breaks a K01 rule (a bug: it is not sent)."""


@dataclass(frozen=True)
class Rate:
    unit: str
    limit: float
    number_phases: int | None = None


def caps_from_variables(values: Mapping[str, str | None]) -> SmartChargingCaps:
    """SmartChargingCtrlr variables (None where the station reported no value) → what it takes.

    A missing RateUnit means we do not know: amperes first, watts as the fall-back (a station
    rejects an unit it lacks, K01.FR.26). A missing stack level or period count means the least.
    """
    available = (values.get("Available") or "true").strip().lower() != "false"
    units_text = values.get("RateUnit") or "A,W"
    units = tuple(u for u in ("A", "W") if u in {x.strip().upper() for x in units_text.split(",")})
    return SmartChargingCaps(
        supported=available,
        max_stack_level=max(0, _int(values.get("ProfileStackLevel"), 0)),
        rate_units=units or ("A",),
        max_periods=max(1, _int(values.get("PeriodsPerSchedule"), 1)),
    )


def _int(text: str | None, default: int) -> int:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return default


def number_phases(site: Site | None, evse: Evse | None) -> int:
    """Phases the EVSE can feed (3 only for a three-phase EVSE on a three-line circuit)."""
    if site is None or evse is None:
        return 1
    circuit = next((c for c in site.circuits if c.id == evse.circuit), None)
    return 3 if topology.drawn_lines(evse, 2 if circuit is None else len(circuit.lines)) == 3 else 1


def line_to_neutral_v(site: Site | None) -> float:
    return UNKNOWN_LINE_TO_NEUTRAL_V if site is None else topology.watts_per_amp(site.service.system, 1)


def rate(limit_a: float, caps: SmartChargingCaps, site: Site | None, evse: Evse | None) -> Rate:
    """An ampere-per-phase limit in the unit the station takes (see the module docstring for W)."""
    if "A" in caps.rate_units:
        return Rate("A", topology.floor_step(limit_a))
    phases = number_phases(site, evse)
    return Rate("W", topology.floor_step(limit_a * line_to_neutral_v(site) * phases), phases)


def _iso(at: datetime) -> str:
    return at.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def profile(
    profile_id: int,
    stack_level: int,
    purpose: str,
    value: Rate,
    *,
    start: datetime,
    transaction_id: str | None = None,
    valid_to: datetime | None = None,
) -> dict[str, Any]:
    """One Absolute, open-ended, single-period profile (one schedule: K01.FR.34; fits PeriodsPerSchedule ≥ 1)."""
    period: dict[str, Any] = {"startPeriod": 0, "limit": value.limit}
    if value.number_phases is not None:
        period["numberPhases"] = value.number_phases
    out: dict[str, Any] = {
        "id": profile_id,
        "stackLevel": stack_level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [
            {
                "id": profile_id,
                "startSchedule": _iso(start),
                "chargingRateUnit": value.unit,
                "chargingSchedulePeriod": [period],
            }
        ],
    }
    if transaction_id is not None:
        out["transactionId"] = transaction_id
    if valid_to is not None:
        out["validTo"] = _iso(valid_to)
    return out


def check(
    evse_id: int,
    p: Mapping[str, Any],
    caps: SmartChargingCaps,
    live_transactions: Mapping[int, str],
    installed: Mapping[int, tuple[int, str, int]],
    *,
    phase_switching: bool = False,
    iso15118: bool = False,
) -> None:
    """Raise ProfileRuleError when sending `p` to `evse_id` would break a K01 rule.

    `live_transactions`: EVSE id → transactionId running there. `installed`: profile id → (stack level,
    purpose, EVSE id) of the profiles we installed and did not clear (all ours are open-ended).
    """
    purpose, kind, stack = p["chargingProfilePurpose"], p["chargingProfileKind"], p["stackLevel"]
    if purpose == "ChargingStationExternalConstraints":
        raise ProfileRuleError("K01.FR.22: the CSMS never sends ChargingStationExternalConstraints")
    if purpose == "ChargingStationMaxProfile":
        if evse_id != 0:
            raise ProfileRuleError("K01: ChargingStationMaxProfile only on EVSE 0")
        if kind == "Relative":
            raise ProfileRuleError("K01.FR.38: ChargingStationMaxProfile is never Relative")
    if purpose == "TxProfile":
        if evse_id <= 0:
            raise ProfileRuleError("K01.FR.16: TxProfile only on an EVSE > 0")
        tx = p.get("transactionId")
        if tx is None:
            raise ProfileRuleError("K01.FR.03: a TxProfile carries the transactionId")
        if live_transactions.get(evse_id) != tx:
            raise ProfileRuleError(f"K01.FR.09/33: transaction {tx!r} is not running on EVSE {evse_id}")
    elif "transactionId" in p:
        raise ProfileRuleError("K01: only a TxProfile names a transaction")
    if not 0 <= stack <= caps.max_stack_level:
        raise ProfileRuleError(f"stack level {stack} is beyond the station's ProfileStackLevel {caps.max_stack_level}")
    schedules = p["chargingSchedule"]
    if len(schedules) > (3 if iso15118 and purpose == "TxProfile" else 1):
        raise ProfileRuleError("K01.FR.34: one schedule unless ISO 15118 (then at most 3)")
    for schedule in schedules:
        has_start = "startSchedule" in schedule
        if kind in ("Absolute", "Recurring") and not has_start:
            raise ProfileRuleError(f"K01.FR.40: an {kind} schedule needs startSchedule")
        if kind == "Relative" and has_start:
            raise ProfileRuleError("K01.FR.41: a Relative schedule has no startSchedule")
        if schedule["chargingRateUnit"] not in caps.rate_units:
            raise ProfileRuleError(
                f"K01.FR.26: unit {schedule['chargingRateUnit']} is not in RateUnit {caps.rate_units}"
            )
        periods = schedule["chargingSchedulePeriod"]
        if len(periods) > caps.max_periods:
            raise ProfileRuleError(f"{len(periods)} periods exceed PeriodsPerSchedule {caps.max_periods}")
        starts = [period["startPeriod"] for period in periods]
        if starts[0] != 0:
            raise ProfileRuleError("K01.FR.31: the first period starts at 0")
        if any(b <= a for a, b in itertools.pairwise(starts)):
            raise ProfileRuleError("K01.FR.35: periods in increasing startPeriod")
        for period in periods:
            if period.get("limit", 0) < 0:
                raise ProfileRuleError("a limit is never negative")
            if "phaseToUse" in period and (period.get("numberPhases") != 1 or not phase_switching):
                raise ProfileRuleError("K01.FR.19/20: phaseToUse only with numberPhases 1 and phase switching")
    for other_id, (other_stack, other_purpose, other_evse) in installed.items():
        if other_id == p["id"] or other_purpose != purpose or other_stack != stack or purpose == "TxProfile":
            continue
        if other_evse == evse_id:
            raise ProfileRuleError(f"K01.FR.06: profile {other_id} has the same stack level, purpose and EVSE")
        if purpose == "TxDefaultProfile" and 0 in (other_evse, evse_id):
            raise ProfileRuleError(f"K01.FR.52/53: TxDefaultProfile {other_id} at the same stack level on EVSE 0")
