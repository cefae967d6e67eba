"""Benchmark: server memory with many OCPP 2.0.1 stations on one evsite process.

N stations connect in waves, boot (the server then reads SmartChargingCtrlr with GetVariables, sets
SampledDataCtrlr with SetVariables and installs the fail-safe ChargingStationMaxProfile), start a
transaction and send a TransactionEvent(Updated) with meter values every `--interval` seconds. The
server's RSS is read from /proc once all are connected and again after the traffic period.
Target: 1,000 stations ≤ 200 MiB. Baseline: the idle server's RSS in the same run.

    .venv/bin/python bench/ocpp201_connections.py [--count 1000] [--interval 10] [--traffic 20]

Writes bench/results/ocpp201_connections.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ocpp201_throughput import event_frame, start_server
from ocpp_harness import free_port, rss_mib, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "ocpp201_connections.json"
TARGET_RSS_MIB = 200.0
BOOT = {"chargingStation": {"model": "Light", "vendorName": "Bench"}, "reason": "PowerUp"}


def answer(message: list[Any]) -> str:
    """A conforming station's minimal answer to the CSMS's setup calls."""
    action, payload = message[2], message[3]
    if action == "GetVariables":
        result: dict[str, Any] = {
            "getVariableResult": [
                {"attributeStatus": "UnknownVariable", "component": d["component"], "variable": d["variable"]}
                for d in payload["getVariableData"]
            ]
        }
    elif action == "SetVariables":
        result = {
            "setVariableResult": [
                {"attributeStatus": "Accepted", "component": d["component"], "variable": d["variable"]}
                for d in payload["setVariableData"]
            ]
        }
    else:
        result = {"status": "Accepted"}
    return orjson.dumps([3, message[1], result]).decode()


class Station:
    def __init__(self, url: str, cp_id: str) -> None:
        self.url, self.cp_id, self.ws = url, cp_id, None
        self._waiter: asyncio.Future[list[Any]] | None = None
        self._n = 0
        self.server_calls = 0

    async def connect(self) -> None:
        from websockets.asyncio.client import connect

        self.ws = await connect(
            f"{self.url}/{self.cp_id}", subprotocols=["ocpp2.0.1"], compression=None, ping_interval=None,  # type: ignore[list-item]
            open_timeout=60,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(Exception):
            async for frame in self.ws:
                message = orjson.loads(frame)
                if message[0] == 2:
                    self.server_calls += 1
                    await self.ws.send(answer(message))
                elif self._waiter is not None and not self._waiter.done():
                    self._waiter.set_result(message)

    async def call(self, action: str, payload: dict[str, Any]) -> list[Any]:
        return await self.call_frame(orjson.dumps([2, self.next_id(), action, payload]).decode())

    async def call_frame(self, frame: str) -> list[Any]:
        assert self.ws is not None
        self._waiter = asyncio.get_running_loop().create_future()
        await self.ws.send(frame)
        return await asyncio.wait_for(self._waiter, 120)

    def next_id(self) -> str:
        self._n += 1
        return str(self._n)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        self._reader.cancel()


async def drive(port: int, count: int, interval: float, traffic: float, pid: int) -> dict[str, Any]:
    stations = [Station(f"ws://127.0.0.1:{port}/ocpp", f"M201-{i:05d}") for i in range(count)]
    started = time.perf_counter()
    for wave in range(0, count, 100):
        await asyncio.gather(*(s.connect() for s in stations[wave : wave + 100]))
        await asyncio.gather(*(s.call("BootNotification", BOOT) for s in stations[wave : wave + 100]))
    connected_s = time.perf_counter() - started
    await asyncio.sleep(3)  # let the setup calls (GetVariables, SetVariables, fail-safe profile) finish
    rss_connected = rss_mib(pid)
    seq = 0
    errors = 0

    async def traffic_loop(station: Station, offset: float) -> None:
        nonlocal seq, errors
        await asyncio.sleep(offset)
        seq += 1
        kinds = ["Started"]
        deadline = time.perf_counter() + traffic
        while True:
            seq += 1
            reply = await station.call_frame(event_frame(station.next_id(), f"TX-{station.cp_id}", seq, kinds[0]))
            errors += reply[0] != 3
            kinds = ["Updated"]
            if time.perf_counter() + interval > deadline:
                return
            await asyncio.sleep(interval)

    await asyncio.gather(*(traffic_loop(s, i * interval / count) for i, s in enumerate(stations)))
    rss_after = rss_mib(pid)
    setup_calls = sum(s.server_calls for s in stations)
    await asyncio.gather(*(s.close() for s in stations))
    return {
        "stations": count,
        "connect_and_boot_s": connected_s,
        "rss_connected_mib": rss_connected,
        "rss_after_traffic_mib": rss_after,
        "server_calls_answered": setup_calls,
        "events_refused": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--traffic", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = start_server("evsite", port, Path(tmp) / "m.db")
        try:
            time.sleep(1)
            idle = rss_mib(server.pid)
            result = asyncio.run(drive(port, args.count, args.interval, args.traffic, server.pid))
        finally:
            server.terminate()
            server.wait(10)
    result["rss_idle_mib"] = idle
    peak = max(result["rss_connected_mib"], result["rss_after_traffic_mib"])
    verdict = "PASS" if peak <= TARGET_RSS_MIB else "FAIL"
    print(
        f"{args.count} OCPP 2.0.1 stations: idle {idle:.0f} MiB, connected {result['rss_connected_mib']:.0f} MiB,"
        f" after traffic {result['rss_after_traffic_mib']:.0f} MiB (target ≤ {TARGET_RSS_MIB:g}) {verdict};"
        f" setup calls answered {result['server_calls_answered']}, events refused {result['events_refused']}"
    )
    write_results(RESULTS, {"benchmark": "ocpp201_connections", **result, "target_rss_mib": TARGET_RSS_MIB})


if __name__ == "__main__":
    main()
