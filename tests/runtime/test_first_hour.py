"""A new user's first hour: clear one-line messages instead of tracebacks and floods.

- an API port in use is one line and exit status 2, as for the OCPP port;
- a charger id the site does not know is refused with its id and the reason, once, however often it retries;
- a configured integration whose optional package is missing is one warning naming the pip extra;
- the same device fault repeating every few seconds is shown once, then once per window with a count.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from evsite.logs import RepeatFilter
from evsite.site import load_site
from tests.conftest import EXAMPLES, free_port
from tests.runtime.test_serve import wait_for_line

CLI = [sys.executable, "-c", "from evsite.cli import app; app()"]


def test_api_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        api_port = taken.getsockname()[1]
        args = [*CLI, "serve", str(EXAMPLES / "residential.yaml"), "--no-integrations", "--log-level", "ERROR",
                "--ocpp-port", str(free_port()), "--api-port", str(api_port)]  # fmt: skip
        done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [f"cannot start: the API and dashboard address 127.0.0.1:{api_port} is in use "
                     "(choose another with --api-port)"]  # fmt: skip


@pytest.mark.slow
async def test_unknown_charger_is_refused_with_its_id_and_why_once(tmp_path: Path) -> None:
    """README's generic fleet against a site that lists other ids: both sides say what is wrong, once."""
    ocpp_port = free_port()
    args = [*CLI, "serve", str(EXAMPLES / "residential.yaml"), "--no-integrations", "--api-port", "0",
            "--ocpp-port", str(ocpp_port), "--log-level", "WARNING"]  # fmt: skip
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        await wait_for_line(proc, r"OCPP 1\.6J: ws://")
        sim = await asyncio.create_subprocess_exec(
            *CLI, "sim", "--url", f"ws://127.0.0.1:{ocpp_port}/ocpp", "--count", "2", "--duration", "6",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env={**os.environ, "COLUMNS": "300"},
        )  # fmt: skip
        sim_out = (await asyncio.wait_for(sim.communicate(), 60))[0].decode()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert sim.returncode == 0, sim_out
    assert "online 0/2" in sim_out
    assert (
        "not connected: 2 charge points (SIM-001, SIM-002): server rejected WebSocket connection: HTTP 404 — "
        "the central system does not know these ids" in sim_out
    )
    for cp_id in ("SIM-001", "SIM-002"):  # each retried several times in 6 s; the server says so once
        refusals = [line for line in out.splitlines() if f"{cp_id}: refused" in line]
        assert len(refusals) == 1, out
        assert "refused (HTTP 404): not an EVSE id in the site file" in refusals[0]
        assert "--accept-unknown" in refusals[0]
    assert list(tmp_path.glob("*.db")) == [tmp_path / "residential.db"]  # data in the current directory
    assert not list(EXAMPLES.glob("*.db"))


def test_repeated_fault_is_logged_once_then_with_a_count() -> None:
    now = [0.0]
    repeat = RepeatFilter(window_s=60, clock=lambda: now[0])

    def record(msg: str, *args: object, level: int = logging.WARNING) -> logging.LogRecord:
        return logging.LogRecord("evsite.grid.modbus", level, __file__, 1, msg, args, None)

    shown = []
    for second in range(0, 60, 2):  # a meter failing every 2 s for a minute, two meters
        now[0] = second
        for meter in ("M-1", "M-2"):
            rec = record("%s: no answer from %s", meter, "10.0.0.5:502")
            if repeat.filter(rec):
                shown.append(rec.getMessage())
        assert repeat.filter(record("%s: polled", "M-1", level=logging.INFO))  # INFO is never held back
    assert shown == ["M-1: no answer from 10.0.0.5:502", "M-2: no answer from 10.0.0.5:502"]
    now[0] = 61
    rec = record("%s: no answer from %s", "M-1", "10.0.0.5:502")
    assert repeat.filter(rec)
    assert rec.getMessage() == "M-1: no answer from 10.0.0.5:502 (repeated 29 more times in 1 min)"


def test_missing_optional_package_is_one_line_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from evsite.bms.state import BusCommands, SiteState
    from evsite.grid.integrations import integration_jobs
    from evsite.runtime.events import EventBus

    monkeypatch.setitem(sys.modules, "openleadr", None)  # as if not installed: importing it fails
    monkeypatch.setitem(sys.modules, "bacpypes3", None)
    site = load_site(EXAMPLES / "workplace-20.yaml")
    assert site.demand_response is not None and site.integrations.bacnet is not None
    bus = EventBus()
    with caplog.at_level(logging.WARNING):
        jobs = integration_jobs(site, bus, state=lambda: SiteState(), commands=BusCommands(site, bus))
    for job in jobs.values():
        job.close()
    assert "openadr" not in jobs and "bacnet" not in jobs and "modbus" in jobs
    messages = [r.getMessage() for r in caplog.records]
    assert "OpenADR 2.0b demand response is off: it needs the 'grid' extra (pip install 'evsite[grid]')" in messages
    assert "the BACnet/IP device is off: it needs the 'bms' extra (pip install 'evsite[bms]')" in messages
    assert not any(r.exc_info for r in caplog.records)


def test_terminal_text_reads_right() -> None:
    """Units after numbers, yes/no for flags, right plurals, and help that fits 80 columns."""
    from typer.testing import CliRunner

    from evsite.cli import app

    runner = CliRunner()
    calc = runner.invoke(app, ["calc", "branch", "--amps", "48", "--volts", "240", "--termination-c", "75",
                               "--length-ft", "60"])  # fmt: skip
    assert "continuous load × 125 %: 60 A" in calc.output and "OCPD: 60 A" in calc.output
    assert "ampacity column: 75 °C" in calc.output and "GFCI required: no" in calc.output
    assert "continuous a:" not in calc.output and "pct" not in calc.output
    check = runner.invoke(app, ["check", str(EXAMPLES / "residential.yaml")], env={"COLUMNS": "300"})
    assert "With its one port busy, it gets at least 48 A" in check.output
    assert "1 branch circuit, 0 feeders" in check.output and "1 branch circuits" not in check.output
    help_text = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "80"}).output
    assert "<bool>" not in help_text and "…" not in help_text.replace("postgresql+asyncpg://…", "")
    assert max(len(line) for line in help_text.splitlines()) <= 80


def test_demo_notes_show_the_extra_literally() -> None:
    """A note naming `evsite[grid]` must not lose `[grid]` to rich markup (it did: "pip install 'evsite'")."""
    from rich.console import Console

    from evsite.demo import DemoSummary, final_table
    from evsite.optional import missing_message

    note = f"vtn-sim did not start: {missing_message('openleadr')}"
    summary = DemoSummary(1.0, {"vtn-sim": False}, [note], 0, 0.0, "service", 200.0, 0.0, 0.0, "none")
    console = Console(width=300, record=True)
    console.print(final_table(summary))
    assert "pip install 'evsite[grid]'" in console.export_text()
