"""Shared fixtures: example paths and detection of the local services some tests need.

A test that needs a service it cannot reach is skipped with a reason naming the service,
so `make test` passes on a machine without them and uses them where they run.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

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
