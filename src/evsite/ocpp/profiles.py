"""Setpoints → OCPP 1.6 charging profiles, and the fail-safe limits installed at boot.

How the profiles stack on a charger (1.6 §3.13), and why:

- **Fail-safe** — ChargePointMaxProfile, connector 0, stack level 0, no end. It caps the whole
  charger at its safe share of the site, and it is what remains when evsite or the network is
  gone (a charger with no profile would charge unconstrained, §3.13.6).
- **Lift** — ChargePointMaxProfile, connector 0, stack level 1, at the charger's nameplate, valid
  only for a short lease that evsite keeps renewing. While evsite runs, the highest valid stack
  level (the lift) wins and the load manager may give a charger more than its fail-safe share; if
  evsite stops renewing, the lift expires and the fail-safe cap is back within one lease.
- **Fall-back fail-safe** — a charger that refuses ChargePointMaxProfile gets a TxDefaultProfile on
  connector 0 at stack level 0 with its share split over its connectors; its setpoints then carry
  the lease as `validTo` instead (they are re-sent before it runs out), so that when evsite is
  gone they expire and the fail-safe TxDefault applies again.
- **Setpoints** — TxProfile on the connector while a transaction runs (it overrides TxDefault),
  else TxDefaultProfile on the connector, at the charger's highest stack level. Fixed profile ids
  per connector make each new setpoint replace the previous one instead of piling up.

Limits are rounded **down** to 0.1 A (the schema's granularity), and a limit between 0 and the
J1772 minimum of 6 A becomes 0 (pause): a pilot cannot signal less than 6 A.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from evsite.site import topology
from evsite.site.model import Evse, Site
from evsite.site.topology import J1772_MIN_A as J1772_MIN_A
from evsite.site.topology import pilot_limit_a as pilot_limit_a

FAILSAFE_PROFILE_ID = 1
LIFT_PROFILE_ID = 2
FAILSAFE_TX_DEFAULT_PROFILE_ID = 3
TX_DEFAULT_PROFILE_BASE = 100
TX_PROFILE_BASE = 200
UNKNOWN_CHARGER_MAX_A = 32.0
"""Nameplate assumed for a charger that is not in the site model (used for its lift only)."""

UNKNOWN_WATTS_PER_AMP = 230.0
"""W per A for a charger not in the site model: one 230 V phase (a limit in W stays at most the amperes)."""

FailsafeLimits = Callable[[Site, frozenset[str]], Mapping[str, float]]
"""Site and the chargers that refused their fail-safe → each charger's fail-safe limit (A)."""


floor_tenth = topology.floor_step


@dataclass(frozen=True)
class SmartChargingCaps:
    """What a charger's configuration says it can take (1.6 §9.4)."""

    supported: bool = True
    max_stack_level: int = 1
    rate_units: tuple[str, ...] = ("A", "W")
    max_periods: int = 1

    @classmethod
    def from_configuration(cls, config: Mapping[str, str | None]) -> SmartChargingCaps:
        """Read ChargeProfileMaxStackLevel, ChargingScheduleAllowedChargingRateUnit, ChargingScheduleMaxPeriods."""
        features = config.get("SupportedFeatureProfiles")
        supported = features is None or "smartcharging" in features.replace(" ", "").lower()
        stack = _int(config.get("ChargeProfileMaxStackLevel"), 1)
        periods = _int(config.get("ChargingScheduleMaxPeriods"), 1)
        units_text = (config.get("ChargingScheduleAllowedChargingRateUnit") or "Current,Power").replace(" ", "")
        units = tuple(u for name, u in (("Current", "A"), ("Power", "W")) if name.lower() in units_text.lower())
        return cls(supported=supported, max_stack_level=max(0, stack), rate_units=units or ("A",), max_periods=periods)


def _int(text: str | None, default: int) -> int:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return default


def watts_per_amp(site: Site | None, evse: Evse | None) -> float:
    """Watts that one ampere per phase delivers on this EVSE (to express a limit in W)."""
    if site is None or evse is None:
        return UNKNOWN_WATTS_PER_AMP
    return topology.evse_watts_per_amp(site, evse)


def _iso(at: datetime) -> str:
    return at.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def charging_profile(
    profile_id: int,
    stack_level: int,
    purpose: str,
    limit: float,
    unit: str,
    *,
    start: datetime,
    transaction_id: int | None = None,
    valid_to: datetime | None = None,
) -> dict[str, Any]:
    """One absolute, open-ended, single-period profile (fits ChargingScheduleMaxPeriods ≥ 1)."""
    profile: dict[str, Any] = {
        "chargingProfileId": profile_id,
        "stackLevel": stack_level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "startSchedule": _iso(start),
            "chargingRateUnit": unit,
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
        },
    }
    if transaction_id is not None:
        profile["transactionId"] = transaction_id
    if valid_to is not None:
        profile["validTo"] = _iso(valid_to)
    return profile


def rate(limit_a: float, caps: SmartChargingCaps, w_per_a: float) -> tuple[str, float]:
    """Express an ampere limit in the unit the charger accepts (amperes preferred)."""
    if "A" in caps.rate_units:
        return "A", limit_a
    return "W", floor_tenth(limit_a * w_per_a)


def failsafe_profile(limit_a: float, caps: SmartChargingCaps, w_per_a: float, now: datetime) -> dict[str, Any]:
    unit, value = rate(pilot_limit_a(limit_a), caps, w_per_a)
    return charging_profile(FAILSAFE_PROFILE_ID, 0, "ChargePointMaxProfile", value, unit, start=now)


def failsafe_tx_default_profile(
    limit_a: float, connectors: int, caps: SmartChargingCaps, w_per_a: float, now: datetime
) -> dict[str, Any]:
    """The fall-back fail-safe: each connector gets an equal part of the charger's share."""
    unit, value = rate(pilot_limit_a(limit_a / max(1, connectors)), caps, w_per_a)
    return charging_profile(FAILSAFE_TX_DEFAULT_PROFILE_ID, 0, "TxDefaultProfile", value, unit, start=now)


def lift_profile(
    max_a: float, caps: SmartChargingCaps, w_per_a: float, now: datetime, lease: timedelta
) -> dict[str, Any] | None:
    """The leased ChargePointMax at nameplate, or None when the charger has only one stack level."""
    if caps.max_stack_level < 1:
        return None
    unit, value = rate(floor_tenth(max_a), caps, w_per_a)
    return charging_profile(LIFT_PROFILE_ID, 1, "ChargePointMaxProfile", value, unit, start=now, valid_to=now + lease)


def setpoint_profile(
    connector_id: int,
    limit_a: float,
    caps: SmartChargingCaps,
    w_per_a: float,
    now: datetime,
    transaction_id: int | None,
    valid_to: datetime | None = None,
) -> dict[str, Any]:
    """TxProfile for a running transaction, else TxDefaultProfile, at the top stack level."""
    unit, value = rate(pilot_limit_a(limit_a), caps, w_per_a)
    # Start a minute early so a charger whose clock runs slightly behind applies it at once.
    start = now - timedelta(seconds=60)
    if transaction_id is not None and connector_id > 0:
        return charging_profile(
            TX_PROFILE_BASE + connector_id,
            caps.max_stack_level,
            "TxProfile",
            value,
            unit,
            start=start,
            transaction_id=transaction_id,
            valid_to=valid_to,
        )
    return charging_profile(
        TX_DEFAULT_PROFILE_BASE + connector_id,
        caps.max_stack_level,
        "TxDefaultProfile",
        value,
        unit,
        start=start,
        valid_to=valid_to,
    )


# --------------------------------------------------------------------------- fail-safe limits


def crude_safe_limits(site: Site, extra_chargers: int = 0) -> dict[str, float]:
    """Each EVSE's equal share of its most constrained upstream node (limits from `evsite.site.topology`).

    The fallback for when the load manager's fail-safe calculation fails: it assumes every EVSE
    under a node draws at once and ignores non-EV load, so it is crude. `extra_chargers`
    (chargers not in the site model) count against the service limit.
    """
    site_nodes = [n for n in topology.nodes(site) if n.kind not in ("evse", "connector")]
    chains = {evse.id: topology.chain(site_nodes, evse.circuit) for evse in site.evse}
    counts: dict[str, int] = {topology.ROOT: extra_chargers}
    for path in chains.values():
        for node_id in path:
            counts[node_id] = counts.get(node_id, 0) + 1
    limit_of = {n.id: n.limit_a for n in site_nodes}
    out: dict[str, float] = {}
    for evse in site.evse:
        shares = [limit_of[node_id] / counts[node_id] for node_id in chains[evse.id]]
        out[evse.id] = pilot_limit_a(min([topology.evse_limit(evse), *shares]))
    return out


def unknown_charger_limit(site: Site | None, unknown_count: int) -> float:
    """The fail-safe share of a charger not in the site model: it counts against the service limit."""
    if site is None:
        return J1772_MIN_A
    n = len(site.evse) + max(1, unknown_count)
    return pilot_limit_a(min(topology.service_limit_a(site) / n, UNKNOWN_CHARGER_MAX_A))
