"""NEC Table 240.6(A): standard ampere ratings for fuses and inverse-time circuit breakers (2023)."""

from __future__ import annotations

from evsite.code.findings import Citation, nec

CITATION: Citation = nec("Table 240.6(A)")

TABLE_240_6_A: tuple[int, ...] = (
    15, 20, 25, 30, 35, 40, 45, 50, 60, 70, 80, 90, 100, 110, 125, 150, 175, 200, 225, 250, 300, 350,
    400, 450, 500, 600, 700, 800, 1000, 1200, 1600, 2000, 2500, 3000, 4000, 5000, 6000,
)  # fmt: skip
