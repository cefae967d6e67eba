"""IEEE 519-2022 Table 1: voltage distortion limits at the PCC (identical to the 2014 table)."""

from __future__ import annotations

from evsite.code.findings import Citation

CITATION: Citation = Citation("IEEE 519", "Table 1", "2022")

# (bus voltage upper bound in volts, individual harmonic %, THD %); the last row has no upper bound.
TABLE_1: tuple[tuple[float, float, float], ...] = (
    (1_000.0, 5.0, 8.0),
    (69_000.0, 3.0, 5.0),
    (161_000.0, 1.5, 2.5),
    (float("inf"), 1.0, 1.5),
)
