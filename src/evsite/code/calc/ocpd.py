"""Overcurrent device ratings: 240.6(A) standard ratings and the 240.4(B)/(D) protection limits."""

from __future__ import annotations

from evsite.code.calc.common import CalcError, fmt
from evsite.code.tables.section_240_4 import NEXT_SIZE_UP_MAX_A, SMALL_CONDUCTOR_MAX_OCPD_A
from evsite.code.tables.table_240_6_a import TABLE_240_6_A


def next_standard_ocpd(amps: float) -> int:
    """The smallest 240.6(A) standard rating at or above `amps` (round up, never down)."""
    if amps is None or amps != amps or amps < 0:
        raise CalcError(f"current must be zero or more, got {amps}")
    needed = round(amps, 6)
    for rating in TABLE_240_6_A:
        if rating >= needed:
            return rating
    raise CalcError(f"{fmt(amps)} A exceeds the largest standard rating in Table 240.6(A) ({TABLE_240_6_A[-1]} A)")


def max_ocpd_for(ampacity_a: float, size: str, material: str) -> tuple[int, str, list[str]]:
    """Largest OCPD that protects a conductor of `ampacity_a`: (rating, rule applied, steps).

    240.4(B) lets the next standard rating up protect a conductor whose ampacity is not itself a standard
    rating, up to 800 A; above that the rating must not exceed the ampacity (240.4(C)). 240.4(D) then caps
    small conductors whatever their ampacity.
    """
    steps: list[str] = []
    exact = round(ampacity_a, 6)
    if exact in TABLE_240_6_A:
        rating, rule = int(exact), "240.4"
        steps.append(f"{fmt(ampacity_a)} A is a standard rating: OCPD ≤ {rating} A (240.4)")
    else:
        up = next((r for r in TABLE_240_6_A if r > exact), None)
        if up is not None and up <= NEXT_SIZE_UP_MAX_A:
            rating, rule = up, "240.4(B)"
            steps.append(f"{fmt(ampacity_a)} A is not a standard rating: next size up {rating} A (240.4(B), ≤ 800 A)")
        else:
            below = [r for r in TABLE_240_6_A if r <= exact]
            if not below:
                raise CalcError(f"ampacity {fmt(ampacity_a)} A is below the smallest standard rating")
            rating, rule = below[-1], "240.4(C)"
            steps.append(
                f"{fmt(ampacity_a)} A: above 800 A the OCPD may not exceed the ampacity → {rating} A (240.4(C))"
            )
    cap = SMALL_CONDUCTOR_MAX_OCPD_A.get(material, {}).get(size)
    if cap is not None and cap < rating:
        steps.append(f"240.4(D): {size} {material.capitalize()} limited to {cap} A")
        rating, rule = cap, "240.4(D)"
    elif cap is not None:
        steps.append(f"240.4(D): {size} {material.capitalize()} limit {cap} A does not reduce {rating} A")
    return rating, rule, steps
