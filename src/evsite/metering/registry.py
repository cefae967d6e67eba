"""Meter registry: which meter measures each EVSE, and whether it is fit to bill from.

Rules (see docs/metering-billing.md):
- Billing tenants or customers needs a revenue-grade meter: ANSI C12.20 class 0.5 or 0.2 (or the older
  ±2 % ANSI C12.1 class); the informational meters built into most chargers are not fit.
- Selling energy by the kWh (`billing.sells_by_kwh`) additionally needs a device type-approved under
  NIST Handbook 44 §3.40 (NTEP; CTEP in California). A meter recorded as not approved is unfit; one
  whose approval is not recorded is billed with a warning asking for the certificate.
- A meter cannot bill a session that started before it was installed.

`evsite check` applies the same rules at design time (`evsite.code.rules.metering`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from evsite.site.model import Evse, MeterAccuracy, MeterRole, Site


@dataclass(frozen=True)
class MeterInfo:
    """One meter as billing sees it: a site meter, or the meter built into an EVSE."""

    id: str
    role: MeterRole
    measures: str
    accuracy: MeterAccuracy
    type_approved: bool | None  # None: not recorded
    serial: str | None = None
    installed: date | None = None
    last_tested: date | None = None
    builtin: bool = False


@dataclass(frozen=True)
class Fitness:
    billable: bool
    reason: str | None = None  # why not billable
    notes: tuple[str, ...] = field(default_factory=tuple)  # billable, but the statement says this


class MeterRegistry:
    """All meters of a site, and which one bills each EVSE."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.meters: dict[str, MeterInfo] = {}
        for m in site.meters:
            # `Meter.type_approved` defaults to False, so False there means "not recorded", as `evsite check` reads it
            approved = True if m.type_approved else None
            self.meters[m.id] = MeterInfo(
                m.id, m.role, m.measures, m.accuracy, approved, m.serial, m.installed, m.last_tested
            )
        self._evse = {e.id: e for e in site.evse}

    def for_evse(self, evse_id: str) -> MeterInfo:
        """The meter billing uses for an EVSE: its external submeter when it has one, else its own."""
        evse = self._evse.get(evse_id)
        if evse is None:
            return MeterInfo(evse_id, MeterRole.EVSE, evse_id, MeterAccuracy.INFORMATIONAL, None, builtin=True)
        if evse.meter_id is not None and evse.meter_id in self.meters:
            return self.meters[evse.meter_id]
        return _builtin(evse)

    def upstream(self, node_id: str) -> MeterInfo | None:
        """The site or panel meter that measures a node (for reconciliation)."""
        return next((m for m in self.meters.values() if m.measures == node_id), None)

    def fitness(self, meter: MeterInfo, session_start: date | None = None) -> Fitness:
        billing = self.site.billing
        if meter.id not in self.meters and meter.builtin and meter.id not in self._evse:
            return Fitness(False, f"charger {meter.id} is not in the site model")
        if not meter.accuracy.revenue_grade:
            return Fitness(
                False,
                f"meter {meter.id} is informational, not revenue grade: billing needs ANSI C12.20 class 0.5 or better",
            )
        if session_start is not None and meter.installed is not None and session_start < meter.installed:
            return Fitness(False, f"meter {meter.id} was installed {meter.installed}, after the session started")
        notes: list[str] = []
        if billing.sells_by_kwh:
            if meter.type_approved is False:
                return Fitness(
                    False,
                    f"meter {meter.id} is not type-approved for sale by the kWh (NIST HB 44 §3.40; NTEP/CTEP)",
                )
            if meter.type_approved is None:
                notes.append(
                    f"type approval of meter {meter.id} is not recorded; selling by the kWh needs an "
                    "NTEP/CTEP certificate (NIST HB 44 §3.40)"
                )
        if meter.accuracy is MeterAccuracy.C12_1:
            notes.append(f"meter {meter.id} is ANSI C12.1 (±2 %); tenant submetering usually asks C12.20 class 0.5")
        return Fitness(True, None, tuple(notes))

    def evse_fitness(self, evse_id: str, session_start: date | None = None) -> Fitness:
        return self.fitness(self.for_evse(evse_id), session_start)


def _builtin(evse: Evse) -> MeterInfo:
    return MeterInfo(
        id=evse.id,
        role=MeterRole.EVSE,
        measures=evse.id,
        accuracy=evse.meter_accuracy,
        type_approved=evse.meter_type_approved,
        builtin=True,
    )
