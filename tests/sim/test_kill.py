"""`kill -9` of the central system: the simulator survives, reconnects with backoff and replays.

The central system here is a separate process (the `ocpp`-package CSMS of `tests/sim/csms.py`) that
journals every transaction message to a file before answering it. It is killed with SIGKILL while
three chargers send MeterValues every second, and started again. Every sample the simulator took
must be in the journal; a sample may appear twice only if it was journaled but not yet answered
when the process died (at most one CALL in flight per charger: OCPP-J §4.1.1).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from tests.conftest import ROOT, free_port, port_open

from evsite.sim import Ev, Fleet


async def start_csms(port: int, journal: Path, tx_start: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.sim.csms", str(port), str(journal), str(tx_start), cwd=ROOT
    )
    for _ in range(200):
        if port_open("127.0.0.1", port, timeout=0.05):
            return process
        await asyncio.sleep(0.05)
    process.kill()
    raise AssertionError("the CSMS process did not start listening")


def read(journal: Path) -> list[dict[str, object]]:
    if not journal.exists():
        return []
    return [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines() if line.strip()]


async def wait_until(predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.05)


async def test_kill_9_of_the_central_system_loses_nothing(tmp_path: Path) -> None:
    port, journal = free_port(), tmp_path / "journal.jsonl"
    process = await start_csms(port, journal, tx_start=1)
    fleet = Fleet(
        f"ws://127.0.0.1:{port}/ocpp",
        count=3,
        speed=20,
        arrivals=False,
        config={"MeterValueSampleInterval": "1", "AllowOfflineTxForUnknownId": "true"},
        backoff_min_s=0.2,
        backoff_max_s=1.0,
    )
    try:
        await fleet.start()
        await fleet.wait_online(10)
        for cp in fleet.charge_points:
            cp.plug_in(1, Ev(id_tag=f"T-{cp.id}", start_delay_s=0, follow_delay_s=1, soc=0.2))
        await wait_until(lambda: sum(e["action"] == "MeterValues" for e in read(journal)) >= 6)

        process.send_signal(signal.SIGKILL)
        await process.wait()
        await wait_until(lambda: not any(cp.online for cp in fleet.charge_points))
        await asyncio.sleep(1.5)  # samples pile up offline
        fleet.charge_points[0].unplug(1)  # a stop while the central system is dead

        process = await start_csms(port, journal, tx_start=1000)
        await wait_until(lambda: all(cp.online and cp.pending_transaction_messages == 0 for cp in fleet.charge_points))
        for cp in fleet.charge_points[1:]:
            cp.unplug(1)
        await wait_until(lambda: all(cp.pending_transaction_messages == 0 for cp in fleet.charge_points))
    finally:
        await fleet.stop()
        if process.returncode is None:
            process.terminate()
            await process.wait()

    entries = read(journal)
    samples = [
        (e["cp"], e["connector_id"], e["meter_value"][0]["timestamp"])  # type: ignore[index]
        for e in entries
        if e["action"] == "MeterValues"
    ]
    generated = sum(cp.generated["MeterValues"] for cp in fleet.charge_points)
    assert len(set(samples)) == generated  # nothing lost
    assert len(samples) - len(set(samples)) <= len(fleet.charge_points)  # at most the in-flight ones again
    stops = {(e["cp"], e["transaction_id"]) for e in entries if e["action"] == "StopTransaction"}
    assert len(stops) == 3
    starts = {(e["cp"], e["timestamp"]) for e in entries if e["action"] == "StartTransaction"}
    assert len(starts) == 3
