"""`evsite sim modbus` and `evsite grid read` as a user runs them: two processes on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import free_port, port_open

EVSITE = [str(Path(sys.executable).parent / "evsite")]


def test_sim_modbus_serves_what_grid_read_reports(examples_dir: Path) -> None:
    port = free_port()
    sim = subprocess.Popen(
        [*EVSITE, "sim", "modbus", "--port", str(port), "--profile", "flat", "--site",
         str(examples_dir / "residential.yaml")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while not port_open("127.0.0.1", port, 0.2):
            assert sim.poll() is None, sim.stdout.read().decode() if sim.stdout else ""
            assert time.monotonic() < deadline, "simulator did not open its port"
            time.sleep(0.1)
        out = subprocess.run([*EVSITE, "grid", "read", f"127.0.0.1:{port}", "--unit", "1"], capture_output=True,
                             text=True, timeout=30, check=True).stdout  # fmt: skip
        assert "evsite-sim PV-INV serial INV0001" in out
        assert "models: 1@40002, 101@40070, 123@40122" in out
        # flat profile: 80 % of the residential example's 7.6 kW inverter
        assert "power_w            6080.0" in out
        bad = subprocess.run([*EVSITE, "grid", "read", f"127.0.0.1:{free_port()}", "--timeout", "0.3"],
                             capture_output=True, text=True, timeout=30)  # fmt: skip
        assert bad.returncode == 1 and "cannot connect" in bad.stderr
    finally:
        os.killpg(sim.pid, signal.SIGTERM)
        sim.wait(timeout=10)
