"""Run every design rule over a site and collect the findings into a Report.

The report groups findings by element in the order an inspector walks the site: service, panels,
feeders, circuits, EVSE, then site-wide items.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from evsite.code.findings import Finding, Status
from evsite.code.rules import RULES, TABLES, ReportTable, SiteIndex
from evsite.site.model import Site

ELEMENT_ORDER = ("service", "panel", "feeder", "circuit", "raceway", "evse", "meter", "site")
STATUS_ORDER = (Status.FAIL, Status.WARN, Status.PASS, Status.INFO)


def element_kind(element: str) -> str:
    return element.split(" ", 1)[0]


@dataclass(frozen=True)
class Report:
    """Findings of one `evsite check` run, plus the tables the permit application needs."""

    site: Site
    findings: tuple[Finding, ...]
    tables: tuple[ReportTable, ...] = ()
    edition: str = "NEC 2023"
    _groups: dict[str, list[Finding]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def failed(self) -> bool:
        return any(f.status is Status.FAIL for f in self.findings)

    def counts(self) -> dict[str, int]:
        counts = Counter(f.status.value for f in self.findings)
        return {s.value: counts.get(s.value, 0) for s in STATUS_ORDER}

    def groups(self) -> dict[str, list[Finding]]:
        """Findings by element, elements in walk order (service → … → site), file order within a kind."""
        if not self._groups:
            by_element: dict[str, list[Finding]] = {}
            for finding in self.findings:
                by_element.setdefault(finding.element, []).append(finding)
            rank = {kind: i for i, kind in enumerate(ELEMENT_ORDER)}
            ordered = sorted(by_element, key=lambda e: rank.get(element_kind(e), len(rank)))
            self._groups.update({e: by_element[e] for e in ordered})
        return self._groups

    def by_status(self, status: Status) -> list[Finding]:
        return [f for f in self.findings if f.status is status]

    def to_dict(self) -> dict[str, Any]:
        return {
            "site": self.site.name,
            "edition": self.edition,
            "result": "fail" if self.failed else "pass",
            "counts": self.counts(),
            "elements": [
                {"element": element, "kind": element_kind(element), "findings": [finding_dict(f) for f in findings]}
                for element, findings in self.groups().items()
            ],
            "tables": [t.to_dict() for t in self.tables],
        }


def finding_dict(f: Finding) -> dict[str, Any]:
    """`Finding.to_dict()` without its deep copy (the report is serialised once, right away)."""
    rule = f.rule
    return {
        "element": f.element,
        "topic": f.topic,
        "status": f.status.value,
        "rule": str(rule),
        "citation": {"standard": rule.standard, "section": rule.section, "edition": rule.edition},
        "message": f.message,
        "inputs": f.inputs,
        "arithmetic": f.arithmetic,
        "fix": f.fix,
    }


def check_site(site: Site) -> Report:
    """Run every rule over `site`; rules are pure, so this does no I/O."""
    idx = SiteIndex.build(site)
    findings: list[Finding] = []
    for rule in RULES:
        findings.extend(rule(idx))
    tables = [t for make in TABLES for t in make(idx)]
    return Report(site=site, findings=tuple(findings), tables=tuple(tables))
