"""Fixtures for simulator tests: an `ocpp`-package central system and an independent schema check."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest
from tests.conftest import free_port
from tests.sim.csms import Csms

import ocpp

SCHEMAS = Path(ocpp.__file__).parent / "v16" / "schemas"


@pytest.fixture
async def csms() -> AsyncIterator[Csms]:
    server = Csms(free_port())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@cache
def _validator(name: str) -> Callable[[Any], Any]:
    schema = json.loads((SCHEMAS / f"{name}.json").read_text(encoding="utf-8-sig"))
    return fastjsonschema.compile(schema)


def validate_frames(frames: list[tuple[str, str]]) -> int:
    """Check every frame the charge point sent against the official OCPP 1.6 JSON schemas.

    fastjsonschema is independent of the `ocpp` package's validator and stricter (it checks the
    date-time format). CallResults are matched to the inbound CALL they answer. Returns the count.
    """
    inbound_actions: dict[str, str] = {}
    checked = 0
    for direction, text in frames:
        message = json.loads(text)
        if direction == "in":
            if message[0] == 2:
                inbound_actions[message[1]] = message[2]
            continue
        assert len(message[1]) <= 36, f"message id longer than 36 characters: {message[1]}"
        if message[0] == 2:
            _validator(message[2])(message[3])
        elif message[0] == 3:
            _validator(inbound_actions[message[1]] + "Response")(message[2])
        else:
            raise AssertionError(f"the charge point sent a CallError: {text}")
        checked += 1
    return checked
