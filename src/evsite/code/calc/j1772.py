"""SAE J1772 AC charging levels and the pilot duty cycle that advertises a current."""

from __future__ import annotations

from typing import Any

from evsite.code.calc.common import CalcError, fmt, require_positive


def pilot_duty_pct(amps: float) -> float | None:
    """Duty cycle (%) advertising `amps`: A / 0.6 for 6–51 A, A / 2.5 + 64 for 51–80 A; None outside."""
    if 6.0 <= amps <= 51.0:
        return amps / 0.6
    if 51.0 < amps <= 80.0:
        return amps / 2.5 + 64.0
    return None


def j1772_level(volts: float, amps: float) -> dict[str, Any]:
    """AC Level 1 is 120 V up to 16 A; AC Level 2 is 208–240 V up to 80 A (19.2 kW at 240 V)."""
    require_positive("voltage", volts)
    require_positive("current", amps)
    kw = volts * amps / 1000.0
    if 110.0 <= volts <= 127.0:
        level, max_a = "AC Level 1", 16.0
    elif 200.0 <= volts <= 250.0:
        level, max_a = "AC Level 2", 80.0
    else:
        raise CalcError(f"{fmt(volts)} V is not an SAE J1772 AC level voltage (120 V, or 208–240 V)")
    within = amps <= max_a
    steps = [f"{fmt(volts)} V × {fmt(amps)} A ÷ 1000 = {fmt(kw)} kW", f"{level}: up to {fmt(max_a)} A"]
    if not within:
        steps.append(f"{fmt(amps)} A exceeds the {level} maximum of {fmt(max_a)} A")
    duty = pilot_duty_pct(amps)
    return {
        "level": level,
        "volts": volts,
        "amps": amps,
        "kw": round(kw, 3),
        "max_amps_for_level": max_a,
        "within_level": within,
        "pilot_duty_pct": round(duty, 2) if duty is not None else None,
        "steps": steps,
    }
