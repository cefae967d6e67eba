"""Shared fixtures: example paths and detection of the local services some tests need.

A test that needs a service it cannot reach is skipped with a reason naming the service,
so `make test` passes on a machine without them and uses them where they run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "src" / "evsite" / "examples"


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


POSTGRES_URL = os.environ.get("EVSITE_TEST_POSTGRES", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
CHROMIUM = os.environ.get("EVSITE_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture
def examples_dir() -> Path:
    return EXAMPLES


@pytest.fixture
def postgres_url() -> str:
    if not port_open("127.0.0.1", 5432):
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    return POSTGRES_URL


@pytest.fixture
def mqtt_broker() -> tuple[str, int]:
    if not port_open("127.0.0.1", 1883):
        pytest.skip("Mosquitto (MQTT broker) is not running on 127.0.0.1:1883")
    return ("127.0.0.1", 1883)


@pytest.fixture
def nats_url() -> str:
    if not port_open("127.0.0.1", 4222):
        pytest.skip("NATS is not running on 127.0.0.1:4222")
    return "nats://127.0.0.1:4222"


@pytest.fixture
def chromium_path() -> str:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)")
    return CHROMIUM


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def scratch_schema(url: str, prefix: str = "t") -> AsyncIterator[str]:
    """A fresh PostgreSQL schema for one test, dropped (with everything in it) afterwards."""
    from sqlalchemy import text

    from evsite.store.db import create_engine

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


@contextlib.asynccontextmanager
async def scratch_engine(url: str, prefix: str = "t", **engine_options: Any) -> AsyncIterator[Any]:
    """An engine bound to a scratch schema (see `scratch_schema`)."""
    from evsite.store.db import create_engine

    async with scratch_schema(url, prefix) as schema:
        engine = create_engine(url, schema=schema, **engine_options)
        try:
            yield engine
        finally:
            await engine.dispose()
