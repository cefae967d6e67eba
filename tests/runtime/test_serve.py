"""`evsite serve` runs the whole controller in one process: OCPP, load manager, API, dashboard;
`evsite ocpp …` drives its chargers through that API.

Started as a real subprocess, reached over real sockets: a charger built on the `ocpp` package
(an independent implementation) boots and is then visible through the REST API, the design-check
report and the one-line diagram are served, and SIGTERM stops it cleanly."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.conftest import EXAMPLES, free_port
from tests.ocpp.test_interop import ThirdPartyChargePoint

pytestmark = pytest.mark.slow


async def wait_for_line(proc: subprocess.Popen[str], pattern: str, timeout: float = 30.0) -> re.Match[str]:
    """Read the server's stdout until a line matches (the process prints its URLs and token at start)."""
    assert proc.stdout is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen = []
    while loop.time() < deadline:
        line = await asyncio.wait_for(loop.run_in_executor(None, proc.stdout.readline), deadline - loop.time())
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if match := re.search(pattern, line):
            return match
    raise AssertionError(f"no line matching {pattern!r}; the server printed: {''.join(seen)}")


async def evsite_cli(*args: str, ok: int = 0) -> str:
    """Run `evsite ARGS` without blocking this event loop (the charger above must keep answering)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from evsite.cli import app; app()", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == ok, out.decode()
    return out.decode()


async def test_serve_runs_ocpp_control_and_api_in_one_process(tmp_path: Path) -> None:
    ocpp_port, api_port = free_port(), free_port()
    args = [
        sys.executable, "-c", "from evsite.cli import app; app()", "serve", str(EXAMPLES / "residential.yaml"),
        "--ocpp-port", str(ocpp_port), "--api-port", str(api_port), "--db", f"sqlite+aiosqlite:///{tmp_path / 's.db'}",
        "--no-integrations", "--api-token", "--log-level", "WARNING",
    ]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        token = (await wait_for_line(proc, r"admin API token \(shown once\): (\S+)")).group(1)
        running = (await wait_for_line(proc, r"running: (.*)")).group(1)
        assert {"ocpp", "control", "api"} <= {p.strip() for p in running.split(",")}

        async with connect(f"ws://127.0.0.1:{ocpp_port}/ocpp/HOME-EV1", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
            cp = ThirdPartyChargePoint("HOME-EV1", ws)
            reader = asyncio.create_task(cp.start())
            from ocpp.v16 import call

            boot = await cp.call(call.BootNotification(charge_point_model="Home 48", charge_point_vendor="Example"))
            assert boot.status == "Accepted"
            await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available"))

            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", headers=headers) as api:
                health = (await api.get("/api/v1/health")).json()
                assert health["parts"]["ocpp"] and health["parts"]["control"]
                for _ in range(50):  # the API sees the charger the OCPP server just accepted
                    charger = (await api.get("/api/v1/chargers/HOME-EV1")).json()
                    if charger.get("connected"):
                        break
                    await asyncio.sleep(0.1)
                assert charger["connected"] is True
                report = await api.get("/api/v1/site/design-check", params={"format": "json"})
                assert (
                    report.status_code == 200 and report.json()["edition"] == "NEC 2023" and report.json()["elements"]
                )
                svg = await api.get("/api/v1/site/oneline.svg")
                assert svg.status_code == 200 and svg.text.lstrip().startswith("<svg")
                assert (await api.get("/api/v1/chargers", headers={"Authorization": "Bearer wrong"})).status_code == 401
            # `evsite ocpp …` reaches the same charger through the API of the running server.
            listed = await evsite_cli("ocpp", "chargers", "--api", f"http://127.0.0.1:{api_port}", "--token", token)
            assert re.search(r"HOME-EV1\s+online", listed), listed
            answer = await evsite_cli(
                "ocpp", "trigger", "HOME-EV1", "Heartbeat", "--api", f"http://127.0.0.1:{api_port}", "--token", token
            )
            assert "TriggerMessage → Accepted" in answer and cp.triggered == ["Heartbeat"]
            refused = await evsite_cli(
                "ocpp", "chargers", "--api", f"http://127.0.0.1:{api_port}", "--token", "x", ok=1
            )
            assert "401" in refused

            def failsafe_installed() -> bool:
                return any(
                    p["charging_profile_purpose"] == "ChargePointMaxProfile" and p["stack_level"] == 0
                    for p in cp.profiles
                )

            for _ in range(50):  # the server read the charger's configuration and installed its fail-safe cap
                if failsafe_installed():  # (the load manager's first setpoint may come a moment before it)
                    break
                await asyncio.sleep(0.1)
            assert cp.config_reads >= 1
            assert failsafe_installed(), cp.profiles
            reader.cancel()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
    assert code == 0
