"""NEC Table 300.5: minimum cover, in inches, for underground wiring 0–1000 V (same values in 2020 and 2023).

Transcribed from the table as published (up.codes reprint of NFPA 70, "Minimum Cover Requirements, 0 to
1000 Volts, Nominal, Burial in Millimeters (Inches)"). Columns: 1 direct burial cables or conductors;
2 rigid metal or intermediate metal conduit; 3 nonmetallic raceways listed for direct burial without
concrete encasement, or other approved raceways; 4 residential branch circuits of 120 V or less with
GFCI protection and at most 20 A overcurrent protection; 5 irrigation and landscape lighting control
circuits of 30 V or less. Cover is measured from the top of the raceway or cable to finished grade.
"""

from __future__ import annotations

from evsite.code.findings import Citation, nec

CITATION: Citation = nec("300.5(A), Table 300.5")

# row -> cover in inches for columns 1..5
TABLE_300_5: dict[str, tuple[float, float, float, float, float]] = {
    "general": (24, 6, 18, 12, 6),  # all locations not specified below
    "trench-under-2in-concrete": (18, 6, 12, 6, 6),
    "under-building": (0, 0, 0, 0, 0),  # in raceway, or Type MC/MI cable identified for direct burial
    "under-4in-slab": (18, 4, 4, 6, 6),  # no vehicular traffic, slab 6 in beyond; col 1 and 4 in raceway: 4 in
    "street-driveway-parking": (24, 24, 24, 24, 24),
    "dwelling-driveway": (18, 18, 18, 12, 18),  # one- and two-family dwellings, dwelling-related use only
    "airport-runway": (18, 18, 18, 18, 18),
}

ROW_TEXT: dict[str, str] = {
    "general": "all locations not specified below",
    "trench-under-2in-concrete": "in trench below 2 in. thick concrete or equivalent",
    "under-building": "under a building",
    "under-4in-slab": "under a 4 in. exterior concrete slab, no vehicular traffic",
    "street-driveway-parking": "under streets, highways, roads, alleys, driveways and parking lots",
    "dwelling-driveway": "one- and two-family dwelling driveways and outdoor parking areas",
    "airport-runway": "in or under airport runways",
}

COLUMN_TEXT = (
    "",
    "column 1, direct burial cables or conductors",
    "column 2, RMC or IMC",
    "column 3, nonmetallic raceways listed for direct burial or other approved raceways",
    "column 4, residential branch circuits ≤ 120 V, GFCI, ≤ 20 A",
    "column 5, irrigation and landscape lighting ≤ 30 V",
)
