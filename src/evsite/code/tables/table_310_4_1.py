"""NEC Table 310.4(1): conductor insulation types and their maximum operating temperature.

Only the temperature rating matters for Table 310.16's column. Dual-rated types (THHN/THWN-2, XHHW-2)
are 90 °C wet or dry; THWN and XHHW are 75 °C in wet locations, THHN is 90 °C dry only (we use the dry
rating; the user picks THWN-2 for wet runs). NM-B uses the 60 °C column by 334.80 even though its
conductors are 90 °C.
"""

from __future__ import annotations

from evsite.code.findings import Citation, nec

CITATION: Citation = nec("Table 310.4(1)")

INSULATION_RATING_C: dict[str, int] = {
    "TW": 60,
    "UF": 60,
    "UF-B": 60,
    "NM": 60,  # 334.80: ampacity at the 60 °C column
    "NM-B": 60,
    "THW": 75,
    "THWN": 75,
    "RHW": 75,
    "XHHW": 90,  # 90 °C dry, 75 °C wet
    "USE": 75,
    "ZW": 75,
    "THHW": 75,
    "SE": 75,
    "SER": 75,
    "THHN": 90,
    "THWN-2": 90,
    "THHN/THWN-2": 90,
    "THHN/THWN": 90,
    "XHHW-2": 90,
    "RHH": 90,
    "RHW-2": 90,
    "USE-2": 90,
    "THW-2": 90,
    "MC": 90,
}
