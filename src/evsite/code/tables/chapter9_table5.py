"""NEC Chapter 9 Table 5: approximate area (in²) of insulated conductors, by type and size.

THHN/THWN/THWN-2 areas from the NEC reprint (unchanged since 1999) and pigtail; XHHW/XHHW-2 and
RHW/RHW-2 (with outer covering) from the Table 5 reprints in public fill calculators. The THHN areas
for ≥ 600 kcmil that some web calculators print (0.8316, 1.2667) are wrong and are not used.
"""

from __future__ import annotations

from evsite.code.findings import Citation, nec

CITATION: Citation = nec("Chapter 9 Table 5")

_SIZES = (
    "14 AWG", "12 AWG", "10 AWG", "8 AWG", "6 AWG", "4 AWG", "3 AWG", "2 AWG", "1 AWG",
    "1/0 AWG", "2/0 AWG", "3/0 AWG", "4/0 AWG",
    "250 kcmil", "300 kcmil", "350 kcmil", "400 kcmil", "500 kcmil", "600 kcmil", "700 kcmil",
    "750 kcmil", "800 kcmil", "900 kcmil", "1000 kcmil",
)  # fmt: skip

_THHN = (
    0.0097, 0.0133, 0.0211, 0.0366, 0.0507, 0.0824, 0.0973, 0.1158, 0.1562, 0.1855, 0.2223, 0.2679, 0.3237,
    0.3970, 0.4608, 0.5242, 0.5863, 0.7073, 0.8676, 0.9887, 1.0496, 1.1085, 1.2311, 1.3478,
)  # fmt: skip
_XHHW = (
    0.0139, 0.0181, 0.0243, 0.0437, 0.0590, 0.0814, 0.0962, 0.1146, 0.1534, 0.1825, 0.2190, 0.2642, 0.3197,
    0.3904, 0.4536, 0.5166, 0.5782, 0.6984, 0.8709, 0.9923, 1.0532, 1.1122, 1.2351, 1.3519,
)  # fmt: skip
_RHW = (
    0.0293, 0.0353, 0.0437, 0.0835, 0.1041, 0.1333, 0.1521, 0.1750, 0.2660, 0.3039, 0.3505, 0.4072, 0.4754,
    0.6291, 0.7088, 0.7870, 0.8626, 1.0082, 1.2135, 1.3561, 1.4272, 1.4957, 1.6377, 1.7719,
)  # fmt: skip

_THHN_AREAS = dict(zip(_SIZES, _THHN, strict=True))
_XHHW_AREAS = dict(zip(_SIZES, _XHHW, strict=True))
_RHW_AREAS = dict(zip(_SIZES, _RHW, strict=True))

TABLE_5_AREA_IN2: dict[str, dict[str, float]] = {
    "THHN": _THHN_AREAS,
    "THWN": _THHN_AREAS,
    "THWN-2": _THHN_AREAS,
    "THHN/THWN-2": _THHN_AREAS,
    "THHN/THWN": _THHN_AREAS,
    "XHHW": _XHHW_AREAS,
    "XHHW-2": _XHHW_AREAS,
    "RHW": _RHW_AREAS,
    "RHW-2": _RHW_AREAS,
    "RHH": _RHW_AREAS,
}
"""TABLE_5_AREA_IN2[insulation][size] → approximate area in square inches."""
