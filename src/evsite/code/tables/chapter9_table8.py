"""NEC Chapter 9 Table 8: conductor properties — area in circular mils and dc resistance at 75 °C.

Resistances in Ω per 1000 ft for uncoated stranded copper and stranded aluminium (sfasoft reprint,
confirmed by electrical-design-tutor and voltdropcalc). Also the K constants of the simplified
voltage-drop method (Ω·cmil/ft at 75 °C).
"""

from __future__ import annotations

from evsite.code.findings import Citation, nec

CITATION: Citation = nec("Chapter 9 Table 8")

CIRCULAR_MILS: dict[str, int] = {
    "18 AWG": 1620, "16 AWG": 2580, "14 AWG": 4110, "12 AWG": 6530, "10 AWG": 10380, "8 AWG": 16510,
    "6 AWG": 26240, "4 AWG": 41740, "3 AWG": 52620, "2 AWG": 66360, "1 AWG": 83690, "1/0 AWG": 105600,
    "2/0 AWG": 133100, "3/0 AWG": 167800, "4/0 AWG": 211600,
    "250 kcmil": 250000, "300 kcmil": 300000, "350 kcmil": 350000, "400 kcmil": 400000,
    "500 kcmil": 500000, "600 kcmil": 600000, "700 kcmil": 700000, "750 kcmil": 750000,
    "800 kcmil": 800000, "900 kcmil": 900000, "1000 kcmil": 1000000, "1250 kcmil": 1250000,
    "1500 kcmil": 1500000, "1750 kcmil": 1750000, "2000 kcmil": 2000000,
}  # fmt: skip

DC_RESISTANCE_OHM_PER_KFT: dict[str, dict[str, float]] = {
    "cu": {
        "18 AWG": 7.95, "16 AWG": 4.99, "14 AWG": 3.14, "12 AWG": 1.98, "10 AWG": 1.24, "8 AWG": 0.778,
        "6 AWG": 0.491, "4 AWG": 0.308, "3 AWG": 0.245, "2 AWG": 0.194, "1 AWG": 0.154, "1/0 AWG": 0.122,
        "2/0 AWG": 0.0967, "3/0 AWG": 0.0766, "4/0 AWG": 0.0608, "250 kcmil": 0.0515, "300 kcmil": 0.0429,
        "350 kcmil": 0.0367, "400 kcmil": 0.0321, "500 kcmil": 0.0258, "600 kcmil": 0.0214,
        "700 kcmil": 0.0184, "750 kcmil": 0.0171, "800 kcmil": 0.0161, "900 kcmil": 0.0143,
        "1000 kcmil": 0.0129, "1250 kcmil": 0.0103, "1500 kcmil": 0.00858, "1750 kcmil": 0.00735,
        "2000 kcmil": 0.00643,
    },
    "al": {
        "18 AWG": 13.1, "16 AWG": 8.21, "14 AWG": 5.17, "12 AWG": 3.25, "10 AWG": 2.04, "8 AWG": 1.28,
        "6 AWG": 0.808, "4 AWG": 0.508, "3 AWG": 0.403, "2 AWG": 0.319, "1 AWG": 0.253, "1/0 AWG": 0.201,
        "2/0 AWG": 0.159, "3/0 AWG": 0.126, "4/0 AWG": 0.100, "250 kcmil": 0.0847, "300 kcmil": 0.0707,
        "350 kcmil": 0.0605, "400 kcmil": 0.0529, "500 kcmil": 0.0424, "600 kcmil": 0.0353,
        "700 kcmil": 0.0303, "750 kcmil": 0.0282, "800 kcmil": 0.0265, "900 kcmil": 0.0235,
        "1000 kcmil": 0.0212, "1250 kcmil": 0.0169, "1500 kcmil": 0.0141, "1750 kcmil": 0.0121,
        "2000 kcmil": 0.0106,
    },
}  # fmt: skip

K_OHM_CMIL_PER_FT: dict[str, float] = {"cu": 12.9, "al": 21.2}
"""Resistivity constants of the K method (75 °C): VD = 2·K·I·L/cmil (1φ) or √3·K·I·L/cmil (3φ)."""
