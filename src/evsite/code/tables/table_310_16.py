"""NEC Table 310.16: allowable ampacities of insulated conductors, ≤ 3 current-carrying, 30 °C ambient.

Values as printed in NFPA 70-2023 (unchanged from 2017/2020). Cross-checked: pigtail nec_tables (Cu 14–2),
a 2023-labelled table set, and pre-2011 reprints (which differ at Cu 14–10 AWG and Cu 600/1500/2000 kcmil;
those old values are *not* used). Al cells at 300, 700 and 800 kcmil differ between reprints; we use the
values printed in current editions (300: 195/230/260, 700: 315/375/425, 800: 330/395/445).
"""

from __future__ import annotations

from evsite.code.findings import Citation, nec

CITATION: Citation = nec("Table 310.16")

_SIZES = (
    "14 AWG", "12 AWG", "10 AWG", "8 AWG", "6 AWG", "4 AWG", "3 AWG", "2 AWG", "1 AWG",
    "1/0 AWG", "2/0 AWG", "3/0 AWG", "4/0 AWG",
    "250 kcmil", "300 kcmil", "350 kcmil", "400 kcmil", "500 kcmil", "600 kcmil", "700 kcmil",
    "750 kcmil", "800 kcmil", "900 kcmil", "1000 kcmil", "1250 kcmil", "1500 kcmil", "1750 kcmil",
    "2000 kcmil",
)  # fmt: skip

# (60 °C, 75 °C, 90 °C) per size, in the order of _SIZES.
_CU = (
    (15, 20, 25), (20, 25, 30), (30, 35, 40), (40, 50, 55), (55, 65, 75), (70, 85, 95), (85, 100, 115),
    (95, 115, 130), (110, 130, 145), (125, 150, 170), (145, 175, 195), (165, 200, 225), (195, 230, 260),
    (215, 255, 290), (240, 285, 320), (260, 310, 350), (280, 335, 380), (320, 380, 430), (350, 420, 475),
    (385, 460, 520), (400, 475, 535), (410, 490, 555), (435, 520, 585), (455, 545, 615), (495, 590, 665),
    (525, 625, 705), (545, 650, 735), (555, 665, 750),
)  # fmt: skip
_AL = (
    None, (15, 20, 25), (25, 30, 35), (35, 40, 45), (40, 50, 55), (55, 65, 75), (65, 75, 85),
    (75, 90, 100), (85, 100, 115), (100, 120, 135), (115, 135, 150), (130, 155, 175), (150, 180, 205),
    (170, 205, 230), (195, 230, 260), (210, 250, 280), (225, 270, 305), (260, 310, 350), (285, 340, 385),
    (315, 375, 425), (320, 385, 435), (330, 395, 445), (355, 425, 480), (375, 445, 500), (405, 485, 545),
    (435, 520, 585), (455, 545, 615), (470, 560, 630),
)  # fmt: skip

COLUMNS_C: tuple[int, ...] = (60, 75, 90)


def _build(rows: tuple[tuple[int, int, int] | None, ...]) -> dict[int, dict[str, int]]:
    table: dict[int, dict[str, int]] = {c: {} for c in COLUMNS_C}
    for size, row in zip(_SIZES, rows, strict=True):
        if row is not None:
            for column, amps in zip(COLUMNS_C, row, strict=True):
                table[column][size] = amps
    return table


TABLE_310_16: dict[str, dict[int, dict[str, int]]] = {"cu": _build(_CU), "al": _build(_AL)}
"""TABLE_310_16[material][column °C][size] → allowable ampacity in amperes."""

# 18 and 16 AWG Cu appear only in the 90 °C column (14 A and 18 A); they are not branch-circuit sizes.
TABLE_310_16["cu"][90]["18 AWG"] = 14
TABLE_310_16["cu"][90]["16 AWG"] = 18
