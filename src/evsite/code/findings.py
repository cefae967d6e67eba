"""A finding: one rule applied to one element, with its citation, inputs and arithmetic.

Every number evsite reports to an AHJ travels in a Finding, so the report can always show
which rule produced it, from what inputs, and how.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any


class Status(StrEnum):
    FAIL = "fail"
    WARN = "warn"
    PASS = "pass"
    INFO = "info"


@dataclass(frozen=True)
class Citation:
    """A rule reference such as NEC 2023 625.42 or IEEE 519-2022 Table 2."""

    standard: str  # "NEC", "IEEE 519", "ANSI C12.20", "NIST HB 44", "UL 2594", ...
    section: str  # "625.42(A)", "Table 310.16", "Table 2"
    edition: str  # "2023", "2022"

    def __str__(self) -> str:
        return f"{self.standard} {self.edition} {self.section}"


@lru_cache(maxsize=1024)
def nec(section: str, edition: str = "2023") -> Citation:
    return Citation("NEC", section, edition)


@dataclass(frozen=True)
class Finding:
    """The result of one rule on one element."""

    element: str  # "service", "feeder F-EV", "circuit C-01", "evse WP-01", "site"
    topic: str  # short name of the check, e.g. "OCPD sizing"
    status: Status
    rule: Citation
    message: str
    inputs: dict[str, Any] = field(default_factory=dict)
    arithmetic: list[str] = field(default_factory=list)  # human-readable steps: "48 A × 1.25 = 60 A"
    fix: str | None = None  # for failures: what would make it pass

    def at(self, element: str) -> Finding:
        """The same finding on another element: memoised rule results are shared by identical designs.

        Cheaper than `dataclasses.replace`; the inputs and arithmetic are shared, never mutated."""
        return Finding(
            element, self.topic, self.status, self.rule, self.message, self.inputs, self.arithmetic, self.fix
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["rule"] = str(self.rule)
        data["citation"] = asdict(self.rule)
        return data
