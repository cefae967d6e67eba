"""Which adapters each example site starts, straight from its YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from evsite.bms.state import BusCommands, site_state_from
from evsite.grid.integrations import integration_jobs
from evsite.runtime.events import EventBus
from evsite.site import load_site


@pytest.mark.parametrize(
    ("example", "expected"),
    [
        ("residential.yaml", {"modbus", "mqtt"}),
        ("workplace-20.yaml", {"modbus", "openadr", "bacnet"}),
        ("multifamily-30.yaml", {"modbus", "mqtt", "bacnet"}),
    ],
)
def test_examples_wire_their_integrations(examples_dir: Path, example: str, expected: set[str]) -> None:
    site = load_site(examples_dir / example)
    bus = EventBus()
    jobs = integration_jobs(site, bus, state=lambda: site_state_from(site), commands=BusCommands(site, bus))
    try:
        assert set(jobs) == expected
    finally:
        for job in jobs.values():
            job.close()
