"""Bounded fuzz of the OCPP 1.6 handlers over a real socket: payloads drawn from the official JSON schemas
(the ones the `ocpp` package ships), half of them mutated (a required field dropped, a field of the wrong
type, an unknown field, numbers and timestamps at their extremes).

Every CALL must get a CallResult or a CallError with an OCPP-J 1.6 §4.2.3 code, never an InternalError
(that would be a handler failing on input it should have refused); afterwards the server still serves
a new connection, and the process grew by less than MAX_GROWTH_MB. About 400 CALLs, a few seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect

from evsite.ocpp import validate
from evsite.ocpp.errors import ERROR_CODES
from evsite.ocpp.server import CentralSystem, ServerSettings
from evsite.site import load_site
from evsite.store.ocpp import OcppStore

from .conftest import EXAMPLES, stub_answer

EXAMPLES_RUN = 400
MAX_GROWTH_MB = 64
"""Resident memory the process may gain over the whole run (SQLite page cache and hypothesis' own
bookkeeping included); a handler that kept what it was sent would gain far more."""
CP_ID = "WP-13"

INT64 = 2**63 - 1
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-INT64, INT64) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
readings = st.one_of(
    st.text(max_size=12), st.floats().map(repr), st.sampled_from(["inf", "-inf", "NaN", "1e400", "-500", "48"])
)
timestamps = st.one_of(
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat().replace("+00:00", "Z")),
    st.sampled_from(["1970-01-01T00:00:00Z", "2100-01-01T00:00:00Z", "not a time", "2026-13-45T25:61:00Z"]),
)


def from_schema(schema: dict[str, Any], name: str = "") -> st.SearchStrategy[Any]:
    """Valid values for the small subset of JSON Schema draft 4 the OCPP 1.6 schemas use."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: from_schema(v, k) for k, v in props.items() if k in required},
            optional={k: from_schema(v, k) for k, v in props.items() if k not in required},
        )
    if kind == "array":
        low = schema.get("minItems", 0)
        return st.lists(from_schema(schema["items"], name), min_size=low, max_size=max(low, 3))
    if kind == "string":
        if schema.get("format") == "date-time":
            return timestamps
        if name == "value":
            return readings
        return st.text(max_size=schema.get("maxLength", 50))
    if kind == "integer":
        if name in ("connectorId", "transactionId"):  # mostly ids that exist, so handlers get past the checks
            return st.integers(0, 2) | st.integers(-INT64, INT64)
        return st.integers(-(2**31), 2**31 - 1) | st.integers(-INT64, INT64)
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    return json_values


def _schema(action: str) -> dict[str, Any]:
    with (validate.SCHEMA_DIR / f"{action}.json").open(encoding="utf-8-sig") as handle:
        return dict(json.load(handle))


ACTIONS = sorted(validate.CHARGE_POINT_ACTIONS)
VALID = {a: from_schema(_schema(a)) for a in ACTIONS}


@st.composite
def calls(draw: st.DrawFn) -> tuple[str, Any]:
    action = draw(st.sampled_from(ACTIONS))
    payload = draw(VALID[action])
    how = draw(st.sampled_from(["valid", "valid", "valid", "drop", "retype", "extra", "whole"]))
    if how == "drop" and payload:
        payload.pop(draw(st.sampled_from(sorted(payload))))
    elif how == "retype" and payload:
        payload[draw(st.sampled_from(sorted(payload)))] = draw(json_values)
    elif how == "extra":
        payload[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
    elif how == "whole":
        payload = draw(json_values)
    return action, payload


class ServerThread:
    """A central system with its own event loop in a thread, so hypothesis can drive a sync client."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.cs: CentralSystem | None = None
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        store = await OcppStore.open(f"sqlite+aiosqlite:///{self.db}", synchronous="OFF")
        settings_ = ServerSettings(port=0, call_timeout_s=2.0, reconnect_setup_delay_s=0.1)
        self.cs = CentralSystem(store, load_site(EXAMPLES / "workplace-20.yaml"), settings=settings_)
        self._stop = asyncio.Event()
        await self.cs.start()
        self.ready.set()
        await self._stop.wait()
        await self.cs.stop()
        await store.close()

    def __enter__(self) -> ServerThread:
        self.thread.start()
        assert self.ready.wait(20), "server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(20)

    def url(self, cp_id: str) -> str:
        assert self.cs is not None
        return f"ws://127.0.0.1:{self.cs.port}/ocpp/{cp_id}"


class Client:
    """Sends CALLs, answers the server's own CALLs like a willing charger, returns the answer to ours."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = (f"f{n}" for n in itertools.count())

    def call(self, action: str, payload: Any) -> list[Any]:
        unique_id = next(self.ids)
        self.ws.send(orjson.dumps([2, unique_id, action, payload]).decode())
        while True:
            message = orjson.loads(self.ws.recv(timeout=10))
            if message[0] == 2:
                self.ws.send(orjson.dumps([3, message[1], stub_answer(message[2])]).decode())
            elif message[1] == unique_id:
                return list(message)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    with ServerThread(tmp_path_factory.mktemp("fuzz") / "cs.db") as s:
        yield s


def test_fuzzed_calls_get_a_result_or_a_spec_error(server: ServerThread) -> None:
    answers: Counter[str] = Counter()
    with connect(server.url(CP_ID), subprotocols=["ocpp1.6"], open_timeout=5) as ws:  # type: ignore[list-item]
        client = Client(ws)
        client.call("Heartbeat", {})
        before = _rss_mb()

        @settings(max_examples=EXAMPLES_RUN, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
        @given(calls())
        def one(call: tuple[str, Any]) -> None:
            action, payload = call
            answer = client.call(action, payload)
            if answer[0] == 3:
                answers["result"] += 1
                return
            assert answer[0] == 4 and answer[2] in ERROR_CODES, answer
            assert answer[2] != "InternalError", (action, payload, answer)
            answers[answer[2]] += 1

        one()
        grown = _rss_mb() - before
    assert answers["result"] > EXAMPLES_RUN / 5 and len(answers) >= 4, answers  # both kinds were exercised
    assert grown < MAX_GROWTH_MB, f"the process grew {grown:.0f} MB"
    # still up: a new connection is served
    with connect(server.url("WP-14"), subprotocols=["ocpp1.6"], open_timeout=5) as ws:  # type: ignore[list-item]
        assert Client(ws).call("Heartbeat", {})[0] == 3
