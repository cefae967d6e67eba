"""NEC Table 310.15(B)(1)(1): ambient temperature correction factors, 30 °C base (for Table 310.16).

Values from NFPA 70-2023 as reprinted in the 2014+ editions and pigtail's TABLE_310_15_B_1_1.
Rows are the upper bound of each ambient band in °C; None means the insulation may not be used there.
"""

from __future__ import annotations

from evsite.code.findings import Citation, nec

CITATION: Citation = nec("Table 310.15(B)(1)(1)")

# (upper bound °C, factor for 60 °C, 75 °C, 90 °C insulation)
TABLE_310_15_B_1_1: tuple[tuple[int, float | None, float | None, float | None], ...] = (
    (10, 1.29, 1.20, 1.15),
    (15, 1.22, 1.15, 1.12),
    (20, 1.15, 1.11, 1.08),
    (25, 1.08, 1.05, 1.04),
    (30, 1.00, 1.00, 1.00),
    (35, 0.91, 0.94, 0.96),
    (40, 0.82, 0.88, 0.91),
    (45, 0.71, 0.82, 0.87),
    (50, 0.58, 0.75, 0.82),
    (55, 0.41, 0.67, 0.76),
    (60, None, 0.58, 0.71),
    (65, None, 0.47, 0.65),
    (70, None, 0.33, 0.58),
    (75, None, None, 0.50),
    (80, None, None, 0.41),
    (85, None, None, 0.29),
)
