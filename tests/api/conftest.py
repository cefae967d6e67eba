"""A running API (uvicorn on a loopback port, in the test's event loop) with one token per role."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.pool import StaticPool

from evsite.api import SiteRuntime, create_app
from evsite.api.tokens import Role, TokenStore
from evsite.site import load_site
from tests.conftest import EXAMPLES, free_port


@dataclass
class RecordingActions:
    """A charger-actions double: records each call and answers as a compliant charge point would."""

    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    answer: str = "Accepted"
    fail_with: Exception | None = None

    async def _call(self, name: str, *args: Any) -> str:
        self.calls.append((name, args))
        if self.fail_with is not None:
            raise self.fail_with
        return self.answer

    async def remote_start(self, charge_point_id: str, connector_id: int, id_tag: str) -> str:
        return await self._call("remote_start", charge_point_id, connector_id, id_tag)

    async def remote_stop(self, charge_point_id: str, transaction_id: int) -> str:
        return await self._call("remote_stop", charge_point_id, transaction_id)

    async def reset(self, charge_point_id: str, kind: str) -> str:
        return await self._call("reset", charge_point_id, kind)

    async def unlock(self, charge_point_id: str, connector_id: int) -> str:
        return await self._call("unlock", charge_point_id, connector_id)

    async def change_availability(self, charge_point_id: str, connector_id: int, kind: str) -> str:
        return await self._call("change_availability", charge_point_id, connector_id, kind)

    async def trigger_message(self, charge_point_id: str, message: str, connector_id: int | None) -> str:
        return await self._call("trigger_message", charge_point_id, message, connector_id)

    async def get_configuration(self, charge_point_id: str) -> Mapping[str, str | None]:
        await self._call("get_configuration", charge_point_id)
        return {"HeartbeatInterval": "300", "MeterValueSampleInterval": "10"}

    async def change_configuration(self, charge_point_id: str, key: str, value: str) -> str:
        return await self._call("change_configuration", charge_point_id, key, value)


@dataclass
class RunningApi:
    url: str
    runtime: SiteRuntime
    tokens: dict[str, str]
    actions: RecordingActions

    def client(self, role: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=5.0)


async def start_server(app: Any) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
    return server, task, f"http://127.0.0.1:{port}"


async def stop_server(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    server.should_exit = True
    async with asyncio.timeout(10):
        await task


@pytest.fixture
async def api() -> AsyncIterator[RunningApi]:
    engine = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)
    db = async_sessionmaker(engine, expire_on_commit=False)
    actions = RecordingActions()
    runtime = SiteRuntime(site=load_site(EXAMPLES / "workplace-20.yaml"), db=db, actions=actions)
    server, task, url = await start_server(create_app(runtime))
    store = TokenStore(db)
    tokens = {role.value: await store.create(f"test-{role.value}", role) for role in Role}
    try:
        yield RunningApi(url, runtime, tokens, actions)
    finally:
        await stop_server(server, task)
        await engine.dispose()


class ThreadedApi:
    """The app under uvicorn in a thread with its own event loop, for synchronous clients (schemathesis)."""

    def __init__(self, runtime: SiteRuntime) -> None:
        self.runtime = runtime
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(runtime), host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self.server.serve(),), daemon=True)

    def __enter__(self) -> ThreadedApi:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)
        return self

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.loop.close()


def sqlite_memory() -> tuple[Any, async_sessionmaker[Any]]:
    engine = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)
    return engine, async_sessionmaker(engine, expire_on_commit=False)
