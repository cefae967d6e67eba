"""NEC Table 250.122: minimum size equipment grounding conductors, by the rating of the OCPD ahead.

Full table per brunsengineering.com's reprint; first 12 rows confirmed by Mike Holt's newsletter.
"""

from __future__ import annotations

from evsite.code.findings import Citation, nec

CITATION: Citation = nec("Table 250.122")

# (OCPD rating not exceeding, Cu size, Al/CCA size)
TABLE_250_122: tuple[tuple[int, str, str], ...] = (
    (15, "14 AWG", "12 AWG"),
    (20, "12 AWG", "10 AWG"),
    (60, "10 AWG", "8 AWG"),
    (100, "8 AWG", "6 AWG"),
    (200, "6 AWG", "4 AWG"),
    (300, "4 AWG", "2 AWG"),
    (400, "3 AWG", "1 AWG"),
    (500, "2 AWG", "1/0 AWG"),
    (600, "1 AWG", "2/0 AWG"),
    (800, "1/0 AWG", "3/0 AWG"),
    (1000, "2/0 AWG", "4/0 AWG"),
    (1200, "3/0 AWG", "250 kcmil"),
    (1600, "4/0 AWG", "350 kcmil"),
    (2000, "250 kcmil", "400 kcmil"),
    (2500, "350 kcmil", "600 kcmil"),
    (3000, "400 kcmil", "600 kcmil"),
    (4000, "500 kcmil", "750 kcmil"),
    (5000, "700 kcmil", "1250 kcmil"),
    (6000, "800 kcmil", "1250 kcmil"),
)
