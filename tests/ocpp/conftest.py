"""Fixtures: a central system on a free port with a fresh SQLite store, and raw OCPP-J clients."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from evsite.ocpp.server import CentralSystem, ServerSettings
from evsite.runtime.events import EventBus
from evsite.site import Site, load_site
from evsite.store.ocpp import OcppStore
from tests.conftest import scratch_schema

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "evsite" / "examples"


@pytest.fixture
def workplace() -> Site:
    return load_site(EXAMPLES / "workplace-20.yaml")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[OcppStore]:
    s = await OcppStore.open(f"sqlite+aiosqlite:///{tmp_path / 'cs.db'}", synchronous="NORMAL")
    yield s
    await s.close()


@contextlib.asynccontextmanager
async def postgres_store(url: str) -> AsyncIterator[OcppStore]:
    """A store in a fresh PostgreSQL schema, dropped afterwards."""
    async with scratch_schema(url) as schema:
        store = await OcppStore.open(url, schema=schema)
        try:
            yield store
        finally:
            await store.close()


@pytest.fixture
def settings() -> ServerSettings:
    return ServerSettings(port=0, call_timeout_s=5.0, reconnect_setup_delay_s=0.2)


@pytest.fixture
async def cs(store: OcppStore, workplace: Site, settings: ServerSettings) -> AsyncIterator[CentralSystem]:
    server = CentralSystem(store, workplace, bus=EventBus(), settings=settings)
    await server.start()
    yield server
    await server.stop()


class RawClient:
    """A bare OCPP-J client for protocol tests: send frames, read frames, answer CALLs by hand."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = (f"t{n}" for n in itertools.count(1))

    async def send(self, frame: Any) -> None:
        await self.ws.send(frame if isinstance(frame, str | bytes) else orjson.dumps(frame).decode())

    async def recv(self, timeout: float = 5.0) -> list[Any]:
        return list(orjson.loads(await asyncio.wait_for(self.ws.recv(), timeout)))

    async def call(self, action: str, payload: dict[str, Any], timeout: float = 5.0) -> list[Any]:
        """Send a CALL and return its answer, answering any CALL from the server with `{}`-like stubs."""
        unique_id = next(self._ids)
        await self.send([2, unique_id, action, payload])
        while True:
            message = await self.recv(timeout)
            if message[0] in (3, 4) and message[1] == unique_id:
                return message
            if message[0] == 2:
                await self.send([3, message[1], stub_answer(message[2])])


def stub_answer(action: str) -> dict[str, Any]:
    """Minimal valid answers a charge point gives to the central system's CALLs."""
    return {
        "GetConfiguration": {"configurationKey": [], "unknownKey": []},
        "SetChargingProfile": {"status": "Accepted"},
        "ClearChargingProfile": {"status": "Accepted"},
    }.get(action, {"status": "Accepted"})


def url(cs: CentralSystem, cp_id: str, prefix: str = "/ocpp/") -> str:
    return f"ws://127.0.0.1:{cs.port}{prefix}{cp_id}"


async def raw_client(cs: CentralSystem, cp_id: str, **kwargs: Any) -> RawClient:
    kwargs.setdefault("subprotocols", ["ocpp1.6"])
    kwargs.setdefault("open_timeout", 5)
    ws = await connect(url(cs, cp_id), **kwargs)
    return RawClient(ws)
