"""`evsite sim` as a separate process against the `ocpp`-package central system."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.conftest import EXAMPLES, ROOT
from tests.sim.csms import Csms

EVSITE = [sys.executable, "-c", "from evsite.cli import app; app()"]


async def run(*args: str, timeout: float = 30.0) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *EVSITE, *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_sim_command_runs_a_fleet_from_a_site_file(csms: Csms) -> None:
    code, out, err = await run(
        "sim", "--url", csms.url, "--site", str(EXAMPLES / "workplace-20.yaml"), "--duration", "2.5", "--seed", "1"
    )
    assert code == 0, err
    assert "simulating 20 charge points" in out
    assert sorted(csms.record.boots) == [f"WP-{i:02d}" for i in range(1, 21)]
    assert {(cp, c) for cp, c, _ in csms.record.statuses} >= {(f"WP-{i:02d}", 1) for i in range(1, 21)}


async def test_sim_command_with_count(csms: Csms) -> None:
    code, _, err = await run("sim", "--url", csms.url, "--count", "3", "--duration", "1.5")
    assert code == 0, err
    assert sorted(csms.record.boots) == ["SIM-001", "SIM-002", "SIM-003"]


async def test_sim_command_reports_a_bad_site_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nservice: {system: 208Y/120V, rating_a: -5}\npanels: []\n", encoding="utf-8")
    code, _, err = await run("sim", "--site", str(bad), "--duration", "1")
    assert code == 2
    assert "bad.yaml" in err
