"""`evsite demo --duration N` on the workplace example: exits 0 and its summary shows every part ran,
energy was delivered, no limit excursion lasted more than 15 s, and the utility's curtailment was met."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.slow


def summary_value(output: str, label: str) -> str:
    match = re.search(rf"│\s*{re.escape(label)}\s*│\s*(.+?)\s*│", output)
    assert match, f"no {label!r} row in the demo summary:\n{output}"
    return match.group(1)


def test_demo_runs_the_whole_site_and_stays_inside_its_limits() -> None:
    run_demo([])


def test_demo_with_an_openadr3_utility_meets_its_curtailment() -> None:
    run_demo(["--openadr", "3.0.1"], duration=30, dr_after=5)


def run_demo(extra: list[str], duration: float = 55, dr_after: float = 15) -> None:
    args = [
        sys.executable, "-c", "from evsite.cli import app; app()", "demo", "--duration", f"{duration:g}",
        "--dr-after", f"{dr_after:g}", "--api-port", str(free_port()), "--ocpp-port", str(free_port()),
        "--modbus-port", str(free_port()), "--vtn-port", str(free_port()), *extra,
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=180, env={**os.environ, "COLUMNS": "160"})
    output = done.stdout
    assert done.returncode == 0, output + done.stderr
    assert summary_value(output, "parts that did not run") == "none"
    ran = summary_value(output, "parts that ran")
    for part in ("ocpp", "control", "api", "modbus", "openadr", "simulator", "vtn-sim", "modbus-sim"):
        assert part in ran
    assert float(summary_value(output, "energy delivered").split()[0]) > 0
    excursion = float(summary_value(output, "longest limit excursion").split()[0])
    assert excursion <= 15.0
    dr = summary_value(output, "demand response")
    assert "cap" in dr and "within" in dr, dr
