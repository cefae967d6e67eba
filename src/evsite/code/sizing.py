"""Public API of the pure sizing calculators (NEC 2023, IEEE 519-2022, SAE J1772).

Every function is pure and returns a frozen result with the numbers, the arithmetic as readable steps
(`.steps`) and `to_dict()` for JSON. Bad input raises `CalcError` (a ValueError) with one clear message.
`evsite check` calls these for each circuit and feeder; `evsite calc` prints them.
"""

from __future__ import annotations

from evsite.code.calc.ampacity import (
    Ampacity,
    adjustment_factor,
    ampacity,
    check_conductor,
    correction_factor,
    default_termination_c,
    insulation_column,
    required_ampacity_a,
    smallest_conductor,
)
from evsite.code.calc.branch import BranchDesign, size_branch, volts_to_ground
from evsite.code.calc.common import CalcError
from evsite.code.calc.egc import Egc, egc_size
from evsite.code.calc.fill import Fill, conduit_fill
from evsite.code.calc.harmonics import Harmonics, evaluate_harmonics
from evsite.code.calc.j1772 import j1772_level, pilot_duty_pct
from evsite.code.calc.load import (
    DwellingCalc,
    LoadCalc,
    dwelling_220_82,
    evse_load_va,
    existing_load_220_87,
    upgrade_avoided_a,
)
from evsite.code.calc.ocpd import max_ocpd_for, next_standard_ocpd
from evsite.code.calc.voltage_drop import DropSizing, VoltageDrop, min_conductor_for_drop, voltage_drop

__all__ = [
    "Ampacity",
    "BranchDesign",
    "CalcError",
    "DropSizing",
    "DwellingCalc",
    "Egc",
    "Fill",
    "Harmonics",
    "LoadCalc",
    "VoltageDrop",
    "adjustment_factor",
    "ampacity",
    "check_conductor",
    "conduit_fill",
    "correction_factor",
    "default_termination_c",
    "dwelling_220_82",
    "egc_size",
    "evaluate_harmonics",
    "evse_load_va",
    "existing_load_220_87",
    "insulation_column",
    "j1772_level",
    "max_ocpd_for",
    "min_conductor_for_drop",
    "next_standard_ocpd",
    "pilot_duty_pct",
    "required_ampacity_a",
    "size_branch",
    "smallest_conductor",
    "upgrade_avoided_a",
    "voltage_drop",
    "volts_to_ground",
]
