"""Load calculations: 220.57 EVSE load, 220.87 existing load from demand data, 220.82 dwelling
optional method, with the EMS setpoint of 625.42(A)/220.70 where one limits the EV load."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from evsite.code.calc.common import CalcError, Result, fmt, line_current_a, require_positive

EVSE_MIN_VA = 7200.0  # 220.57(A): the larger of 7200 W (VA) or the nameplate rating


@dataclass(frozen=True)
class LoadCalc(Result):
    method: str  # "220.87"
    service_a: float
    existing_load_a: float  # max demand × 1.25
    new_load_a: float
    total_a: float
    fits: bool
    headroom_a: float
    steps: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DwellingCalc(Result):
    method: str  # "220.82"
    general_va: float
    general_demand_va: float
    hvac_va: float
    total_va: float
    total_a: float
    service_a: float | None
    fits: bool | None
    steps: list[str] = field(default_factory=list)


def evse_load_va(nameplate_va: float) -> float:
    """220.57: an EVSE counts as 7200 VA or its nameplate, whichever is larger."""
    return max(EVSE_MIN_VA, require_positive("EVSE nameplate", nameplate_va))


def _amps_text(volts: float, phases: int) -> str:
    return f"({fmt(volts)} V × √3)" if phases == 3 else f"{fmt(volts)} V"


def existing_load_220_87(
    service_a: float,
    max_demand_a: float | None = None,
    max_demand_kva: float | None = None,
    add_va: float = 0.0,
    volts: float = 240.0,
    phases: int = 1,
    ems_setpoint_a: float | None = None,
    new_load_continuous: bool = False,
) -> LoadCalc:
    """220.87: existing load = 125 % of the highest demand of the last 12 months; the new load is added
    and the sum must not exceed the service rating (or feeder ampacity). With an EMS that limits the new
    EV load (625.42(A), 220.70), the setpoint replaces the connected new load when smaller.
    220.87 adds the new load as calculated; `new_load_continuous` adds it at 125 % instead, as many
    AHJs ask for EV charging (625.42 makes it a continuous load)."""
    require_positive("service rating", service_a)
    require_positive("voltage", volts)
    require_positive("added load", add_va, allow_zero=True)
    if phases not in (1, 3):
        raise CalcError(f"phases must be 1 or 3, got {phases}")
    if (max_demand_a is None) == (max_demand_kva is None):
        raise CalcError("give the 12-month maximum demand either in amperes or in kVA (exactly one)")
    steps: list[str] = []
    if max_demand_kva is not None:
        require_positive("maximum demand", max_demand_kva, allow_zero=True)
        demand_a = line_current_a(max_demand_kva * 1000.0, volts, phases)
        steps.append(f"{fmt(max_demand_kva)} kVA × 1000 ÷ {_amps_text(volts, phases)} = {fmt(demand_a)} A max demand")
    else:
        assert max_demand_a is not None
        demand_a = require_positive("maximum demand", max_demand_a, allow_zero=True)
    existing = demand_a * 1.25
    steps.append(f"existing load = {fmt(demand_a)} A × 1.25 = {fmt(existing)} A (220.87)")
    new = line_current_a(add_va, volts, phases)
    steps.append(f"new load = {fmt(add_va, 0)} VA ÷ {_amps_text(volts, phases)} = {fmt(new)} A")
    if ems_setpoint_a is not None:
        require_positive("EMS setpoint", ems_setpoint_a, allow_zero=True)
        if ems_setpoint_a < new:
            steps.append(f"EMS limits the new load to {fmt(ems_setpoint_a)} A (625.42(A), 220.70)")
            new = float(ems_setpoint_a)
        else:
            steps.append(f"EMS setpoint {fmt(ems_setpoint_a)} A ≥ new load: no reduction")
    if new_load_continuous:
        steps.append(f"continuous new load: {fmt(new)} A × 1.25 = {fmt(new * 1.25)} A (625.42)")
        new *= 1.25
    total = existing + new
    fits = total <= service_a + 1e-9
    steps.append(f"total = {fmt(existing)} A + {fmt(new)} A = {fmt(total)} A {'≤' if fits else '>'} {fmt(service_a)} A")
    return LoadCalc("220.87", float(service_a), existing, new, total, fits, service_a - total, steps)


def dwelling_220_82(
    area_ft2: float,
    volts: float = 240.0,
    small_appliance_circuits: int = 2,
    laundry_circuits: int = 1,
    appliances_va: float = 0.0,
    evse_va: float = 0.0,
    cooling_va: float = 0.0,
    heat_pump_va: float = 0.0,
    space_heat_va: float = 0.0,
    space_heat_units: int = 1,
    service_a: float | None = None,
) -> DwellingCalc:
    """220.82 optional method for one dwelling unit (120/240 V or 208Y/120 V 3-wire, ≥ 100 A).

    General load (3 VA/ft², 1500 VA per small-appliance and laundry circuit, nameplate of fastened
    appliances including EVSE per 220.57) at 100 % of the first 10 kVA plus 40 % of the rest, plus the
    largest heating/cooling option of 220.82(C): 100 % of A/C or heat pump without supplemental heat,
    65 % of central electric space heat (or of fewer than four separately controlled units), 40 % of
    four or more separately controlled units.
    """
    require_positive("floor area", area_ft2)
    require_positive("voltage", volts)
    for name, value in (
        ("appliances", appliances_va),
        ("EVSE", evse_va),
        ("cooling", cooling_va),
        ("heat pump", heat_pump_va),
        ("space heat", space_heat_va),
    ):
        require_positive(name, value, allow_zero=True)
    lighting = 3.0 * area_ft2
    circuits = small_appliance_circuits + laundry_circuits
    evse = evse_load_va(evse_va) if evse_va > 0 else 0.0
    general = lighting + 1500.0 * circuits + appliances_va + evse
    steps = [
        f"3 VA × {fmt(area_ft2, 0)} ft² = {fmt(lighting, 0)} VA",
        f"1500 VA × {circuits} circuits = {1500 * circuits:,} VA",
    ]
    if appliances_va:
        steps.append(f"fastened-in-place appliances (nameplate) = {fmt(appliances_va, 0)} VA")
    if evse:
        steps.append(f"EVSE = max(7200 VA, {fmt(evse_va, 0)} VA) = {fmt(evse, 0)} VA (220.57)")
    first = min(general, 10_000.0)
    rest = max(general - 10_000.0, 0.0)
    demand = first + 0.4 * rest
    steps.append(f"general load {fmt(general, 0)} VA: 10,000 VA + 40 % × {fmt(rest, 0)} VA = {fmt(demand, 0)} VA")
    heat_factor = 0.4 if space_heat_units >= 4 else 0.65
    options = {
        "A/C at 100 %": cooling_va,
        "heat pump at 100 %": heat_pump_va,
        f"space heat at {int(heat_factor * 100)} %": space_heat_va * heat_factor,
    }
    hvac_name, hvac = max(options.items(), key=lambda kv: kv[1])
    if hvac:
        steps.append(f"220.82(C): largest is {hvac_name} = {fmt(hvac, 0)} VA")
    total = demand + hvac
    amps = total / volts
    steps.append(f"total {fmt(total, 0)} VA ÷ {fmt(volts)} V = {fmt(amps)} A")
    fits = None
    if service_a is not None:
        fits = amps <= service_a + 1e-9
        steps.append(f"{fmt(amps)} A {'≤' if fits else '>'} {fmt(service_a)} A service")
    return DwellingCalc("220.82", general, demand, hvac, total, amps, service_a, fits, steps)


def upgrade_avoided_a(connected_a: float, ems_setpoint_a: float) -> float:
    """Continuous capacity an EMS saves: connected EV current × 1.25 minus setpoint × 1.25 (220.70)."""
    return max(0.0, 1.25 * connected_a - 1.25 * ems_setpoint_a) if math.isfinite(connected_a) else 0.0
