"""Small site builders for the design-check tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from evsite.code.check import Report, check_site
from evsite.code.findings import Finding, Status
from evsite.site.model import Site

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "evsite" / "examples"


def example_dict(name: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text(encoding="utf-8"))


def check_dict(data: dict[str, Any]) -> Report:
    return check_site(Site.model_validate(copy.deepcopy(data)))


def one_circuit(
    evse: dict[str, Any] | list[dict[str, Any]],
    circuit: dict[str, Any] | None = None,
    service: dict[str, Any] | None = None,
    **site: Any,
) -> dict[str, Any]:
    """A one-panel site with one branch circuit C1 feeding the given EVSE."""
    run = {
        "material": "cu",
        "size": "6 AWG",
        "insulation": "THHN",
        "termination_c": 75,
        "length_ft": 40,
        "raceway": {"type": "emt", "trade_size": "3/4"},
        "egc": "10 AWG Cu",
    }
    c = {"id": "C1", "panel": "P", "ocpd_a": 60, "lines": ["L1", "L2"], "conductors": run}
    c.update(circuit or {})
    units = evse if isinstance(evse, list) else [evse]
    units = [{"id": f"EV{i + 1}", "circuit": "C1", **u} for i, u in enumerate(units)]
    data: dict[str, Any] = {
        "name": "test site",
        "service": service or {"system": "120/240V-1ph", "rating_a": 200, "available_fault_current_a": 10000},
        "panels": [{"id": "P", "bus_rating_a": 200, "main_ocpd_a": 200}],
        "circuits": [c],
        "evse": units,
    }
    data.update(site)
    return data


def findings(report: Report, element: str | None = None, topic: str | None = None) -> list[Finding]:
    return [
        f
        for f in report.findings
        if (element is None or f.element == element) and (topic is None or f.topic.lower() == topic.lower())
    ]


def one(report: Report, element: str, topic: str) -> Finding:
    found = findings(report, element, topic)
    assert len(found) == 1, f"expected one {topic!r} finding on {element!r}, got {found}"
    return found[0]


def statuses(found: list[Finding]) -> set[Status]:
    return {f.status for f in found}
