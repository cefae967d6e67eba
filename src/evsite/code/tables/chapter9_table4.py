"""NEC Chapter 9 Table 4: internal area (100 %, in²) of conduit and tubing by article and trade size.

Only the total-area column is stored; the 53/31/40 % columns in the book are this area times the
percentage, rounded. Sources: the Table 4 reprints in adevenuto/conduitFillCalc and two other public
fill calculators (values agree), pigtail (EMT ≤ 2), and the EMT ID table cited in the research notes.
"""

from __future__ import annotations

from evsite.code.findings import Citation, nec

CITATION: Citation = nec("Chapter 9 Table 4")

TRADE_SIZES: tuple[str, ...] = ("3/8", "1/2", "3/4", "1", "1-1/4", "1-1/2", "2", "2-1/2", "3", "3-1/2", "4", "5", "6")

RACEWAY_NAMES: dict[str, str] = {
    "emt": "EMT",
    "rmc": "RMC",
    "imc": "IMC",
    "pvc40": "PVC 40",
    "pvc80": "PVC 80",
    "fmc": "FMC",
    "lfmc": "LFMC",
    "ent": "ENT",
}

RACEWAY_ARTICLES: dict[str, str] = {
    "emt": "358",
    "rmc": "344",
    "imc": "342",
    "pvc40": "352",
    "pvc80": "352",
    "fmc": "348",
    "lfmc": "350",
    "ent": "362",
}

TABLE_4_AREA_IN2: dict[str, dict[str, float]] = {
    "emt": {
        "1/2": 0.304, "3/4": 0.533, "1": 0.864, "1-1/4": 1.496, "1-1/2": 2.036, "2": 3.356,
        "2-1/2": 5.858, "3": 8.846, "3-1/2": 11.545, "4": 14.753,
    },
    "rmc": {
        "1/2": 0.314, "3/4": 0.549, "1": 0.887, "1-1/4": 1.526, "1-1/2": 2.071, "2": 3.408,
        "2-1/2": 4.866, "3": 7.499, "3-1/2": 10.010, "4": 12.882, "5": 20.212, "6": 29.158,
    },
    "imc": {
        "1/2": 0.342, "3/4": 0.586, "1": 0.959, "1-1/4": 1.647, "1-1/2": 2.225, "2": 3.630,
        "2-1/2": 5.135, "3": 7.922, "3-1/2": 10.584, "4": 13.631,
    },
    "pvc40": {
        "1/2": 0.285, "3/4": 0.508, "1": 0.832, "1-1/4": 1.453, "1-1/2": 1.986, "2": 3.291,
        "2-1/2": 4.695, "3": 7.268, "3-1/2": 9.737, "4": 12.554, "5": 19.761, "6": 28.567,
    },
    "pvc80": {
        "1/2": 0.217, "3/4": 0.409, "1": 0.688, "1-1/4": 1.237, "1-1/2": 1.711, "2": 2.874,
        "2-1/2": 4.119, "3": 6.442, "3-1/2": 8.688, "4": 11.258, "5": 17.855, "6": 25.598,
    },
    "fmc": {
        "3/8": 0.116, "1/2": 0.317, "3/4": 0.533, "1": 0.817, "1-1/4": 1.277, "1-1/2": 1.858,
        "2": 3.269, "2-1/2": 4.909, "3": 7.069, "3-1/2": 9.621, "4": 12.566,
    },
    "lfmc": {
        "3/8": 0.192, "1/2": 0.314, "3/4": 0.541, "1": 0.873, "1-1/4": 1.528, "1-1/2": 1.981,
        "2": 3.246, "2-1/2": 4.881, "3": 7.475, "3-1/2": 9.731, "4": 12.692,
    },
    "ent": {"1/2": 0.246, "3/4": 0.454, "1": 0.785, "1-1/4": 1.410, "1-1/2": 1.936, "2": 3.205},
}  # fmt: skip
