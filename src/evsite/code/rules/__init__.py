"""Design rules, one module per topic. Each module's `check(SiteIndex)` yields findings."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from evsite.code.findings import Finding
from evsite.code.rules import (
    comms,
    conductors,
    ems_design,
    ieee519,
    location,
    metering,
    nec220,
    nec625,
    permits,
    short_circuit,
)
from evsite.code.rules.context import ReportTable, SiteIndex

RULES: tuple[Callable[[SiteIndex], Iterable[Finding]], ...] = (
    nec220.check,
    ems_design.check,
    nec625.check,
    conductors.check,
    location.check,
    ieee519.check,
    short_circuit.check,
    metering.check,
    comms.check,
    permits.check,
)
"""Every rule `evsite check` runs, in report order within each element."""

TABLES: tuple[Callable[[SiteIndex], list[ReportTable]], ...] = (permits.tables,)

__all__ = ["RULES", "TABLES", "ReportTable", "SiteIndex"]
