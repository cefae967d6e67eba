"""NEC Chapter 9 Table 1: percent of cross-section of conduit and tubing for conductors and cables.

Note (3): equipment grounding and bonding conductors count. Note (4): nipples ≤ 24 in may be filled to 60 %.
"""

from __future__ import annotations

from evsite.code.findings import Citation, nec

CITATION: Citation = nec("Chapter 9 Table 1")

ONE_CONDUCTOR_PCT = 53.0
TWO_CONDUCTORS_PCT = 31.0
OVER_TWO_CONDUCTORS_PCT = 40.0
NIPPLE_PCT = 60.0


def allowed_fill_pct(conductor_count: int) -> float:
    """Table 1 percentage for a number of conductors (EGC included)."""
    if conductor_count <= 1:
        return ONE_CONDUCTOR_PCT
    if conductor_count == 2:
        return TWO_CONDUCTORS_PCT
    return OVER_TWO_CONDUCTORS_PCT
