"""NEC Chapter 9 Table 9: ac resistance and reactance, 600 V cables, 3φ 60 Hz, 75 °C, three single
conductors in conduit, Ω to neutral per 1000 ft.

Source: sfasoft reprint cross-checked with two other reprints. Effective Z = R·cosθ + X·sinθ; the
printed "Z at 0.85 PF" columns are not stored (they are R and X evaluated at PF 0.85).
Raceway keys: "pvc" (PVC and other nonmetallic), "al" (aluminium conduit), "steel" (EMT, RMC, IMC).
"""

from __future__ import annotations

from evsite.code.findings import Citation, nec

CITATION: Citation = nec("Chapter 9 Table 9")

_SIZES = (
    "14 AWG", "12 AWG", "10 AWG", "8 AWG", "6 AWG", "4 AWG", "3 AWG", "2 AWG", "1 AWG", "1/0 AWG",
    "2/0 AWG", "3/0 AWG", "4/0 AWG", "250 kcmil", "300 kcmil", "350 kcmil", "400 kcmil", "500 kcmil",
    "600 kcmil", "750 kcmil", "1000 kcmil",
)  # fmt: skip

# Per size: XL (PVC & Al conduit), XL (steel), R Cu (PVC, Al, steel), R Al (PVC, Al, steel)
_ROWS: tuple[tuple[float, float, float, float, float, float | None, float | None, float | None], ...] = (
    (0.058, 0.073, 3.1, 3.1, 3.1, None, None, None),
    (0.054, 0.068, 2.0, 2.0, 2.0, 3.2, 3.2, 3.2),
    (0.050, 0.063, 1.2, 1.2, 1.2, 2.0, 2.0, 2.0),
    (0.052, 0.065, 0.78, 0.78, 0.78, 1.3, 1.3, 1.3),
    (0.051, 0.064, 0.49, 0.49, 0.49, 0.81, 0.81, 0.81),
    (0.048, 0.060, 0.31, 0.31, 0.31, 0.51, 0.51, 0.51),
    (0.047, 0.059, 0.25, 0.25, 0.25, 0.40, 0.41, 0.40),
    (0.045, 0.057, 0.19, 0.20, 0.20, 0.32, 0.32, 0.32),
    (0.046, 0.057, 0.15, 0.16, 0.16, 0.25, 0.26, 0.25),
    (0.044, 0.055, 0.12, 0.13, 0.12, 0.20, 0.21, 0.20),
    (0.043, 0.054, 0.10, 0.10, 0.10, 0.16, 0.16, 0.16),
    (0.042, 0.052, 0.077, 0.082, 0.079, 0.13, 0.13, 0.13),
    (0.041, 0.051, 0.062, 0.067, 0.063, 0.10, 0.11, 0.10),
    (0.041, 0.052, 0.052, 0.057, 0.054, 0.085, 0.090, 0.086),
    (0.041, 0.051, 0.044, 0.049, 0.045, 0.071, 0.076, 0.072),
    (0.040, 0.050, 0.038, 0.043, 0.039, 0.061, 0.066, 0.063),
    (0.040, 0.049, 0.033, 0.038, 0.035, 0.054, 0.059, 0.055),
    (0.039, 0.048, 0.027, 0.032, 0.029, 0.043, 0.048, 0.045),
    (0.039, 0.048, 0.023, 0.028, 0.025, 0.036, 0.041, 0.038),
    (0.038, 0.048, 0.019, 0.024, 0.021, 0.029, 0.034, 0.031),
    (0.037, 0.046, 0.015, 0.019, 0.018, 0.023, 0.027, 0.025),
)

RACEWAYS: tuple[str, ...] = ("pvc", "al", "steel")

REACTANCE_OHM_PER_KFT: dict[str, dict[str, float]] = {
    "pvc": {s: r[0] for s, r in zip(_SIZES, _ROWS, strict=True)},
    "al": {s: r[0] for s, r in zip(_SIZES, _ROWS, strict=True)},
    "steel": {s: r[1] for s, r in zip(_SIZES, _ROWS, strict=True)},
}
"""REACTANCE_OHM_PER_KFT[raceway][size] → XL, Ω to neutral per 1000 ft."""


def _resistance(offset: int) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for index, raceway in enumerate(RACEWAYS):
        table[raceway] = {}
        for size, row in zip(_SIZES, _ROWS, strict=True):
            value = row[offset + index]
            if value is not None:
                table[raceway][size] = value
    return table


AC_RESISTANCE_OHM_PER_KFT: dict[str, dict[str, dict[str, float]]] = {"cu": _resistance(2), "al": _resistance(5)}
"""AC_RESISTANCE_OHM_PER_KFT[material][raceway][size] → R, Ω to neutral per 1000 ft."""
