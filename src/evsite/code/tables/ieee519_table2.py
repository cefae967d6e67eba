"""IEEE 519-2022 Table 2: current distortion limits for systems rated 120 V through 69 kV, % of I_L.

Values are unchanged since 1992. The 2022 edition relaxed even harmonics: orders 2, 4 and 6 are limited
to 50 % of the limit of their range; even orders above 6 take 100 % of the odd limit of their range
(1992/2014: 25 % of the odd limits). The printed I_SC/I_L bands ("20 < 50") leave the boundaries open;
we assign each boundary value to the higher row's lower bound (20 belongs to "20 < 50").
"""

from __future__ import annotations

from evsite.code.findings import Citation

CITATION: Citation = Citation("IEEE 519", "Table 2", "2022")

ORDER_RANGES: tuple[tuple[int, int], ...] = ((2, 11), (11, 17), (17, 23), (23, 35), (35, 51))
"""Half-open harmonic-order ranges [low, high) of the table's columns (the 2022 table starts at h = 2)."""

# (I_SC/I_L lower bound, limits per ORDER_RANGES column, TDD %)
TABLE_2: tuple[tuple[float, tuple[float, float, float, float, float], float], ...] = (
    (0.0, (4.0, 2.0, 1.5, 0.6, 0.3), 5.0),
    (20.0, (7.0, 3.5, 2.5, 1.0, 0.5), 8.0),
    (50.0, (10.0, 4.5, 4.0, 1.5, 0.7), 12.0),
    (100.0, (12.0, 5.5, 5.0, 2.0, 1.0), 15.0),
    (1000.0, (15.0, 7.0, 6.0, 2.5, 1.4), 20.0),
)

EVEN_LOW_ORDER_FACTOR = 0.5
"""2022: even harmonics h ≤ 6 are limited to 50 % of the range limit."""
EVEN_LOW_ORDER_MAX = 6
MAX_ORDER = 50
