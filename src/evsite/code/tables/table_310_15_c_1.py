"""NEC Table 310.15(C)(1): adjustment factors for more than three current-carrying conductors.

Applies to raceways and cables longer than 24 in (Chapter 9 Note 4 exempts short nipples).
"""

from __future__ import annotations

from evsite.code.findings import Citation, nec

CITATION: Citation = nec("Table 310.15(C)(1)")

# (lowest count in the band, factor); 1–3 conductors need no adjustment.
TABLE_310_15_C_1: tuple[tuple[int, float], ...] = (
    (1, 1.00),
    (4, 0.80),
    (7, 0.70),
    (10, 0.50),
    (21, 0.45),
    (31, 0.40),
    (41, 0.35),
)
