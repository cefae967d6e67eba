"""OCPP-J framing and connection semantics against raw WebSocket clients (127.0.0.1)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from evsite.ocpp.errors import CallErrorReceived, CallTimeout
from evsite.ocpp.server import CentralSystem, charge_point_id

from .conftest import RawClient, raw_client, url

BOOT = {"chargePointVendor": "ExampleCharge", "chargePointModel": "Pro 48"}


async def alive(client: RawClient) -> bool:
    answer = await client.call("Heartbeat", {})
    return answer[0] == 3 and "currentTime" in answer[2]


def test_charge_point_id_from_path() -> None:
    assert charge_point_id("/ocpp/WP-01") == "WP-01"
    assert charge_point_id("/WP-01") == "WP-01"
    assert charge_point_id("/ocpp/CP%2001") == "CP 01"
    assert charge_point_id("/a/b/c") is None
    assert charge_point_id("/ocpp/" + "x" * 49) is None


async def test_both_url_forms_and_unknown_charger_refused(cs: CentralSystem) -> None:
    for prefix in ("/ocpp/", "/"):
        async with connect(url(cs, "WP-02", prefix), subprotocols=["ocpp1.6"]) as ws:
            assert ws.subprotocol == "ocpp1.6"
            assert await alive(RawClient(ws))
    with pytest.raises(InvalidStatus) as refused:
        await connect(url(cs, "NOT-IN-SITE"), subprotocols=["ocpp1.6"], open_timeout=5)
    assert refused.value.response.status_code == 404


async def test_subprotocol_refused_per_ocpp_j(cs: CentralSystem) -> None:
    """OCPP-J 1.6 §3.1.2: complete the handshake without Sec-WebSocket-Protocol, then close."""
    async with connect(url(cs, "WP-03"), subprotocols=["ocpp2.1", "ocpp1.5"], open_timeout=5) as ws:  # neither spoken
        assert ws.subprotocol is None
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1002
    async with connect(url(cs, "WP-03"), open_timeout=5) as ws:  # offers nothing at all
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)


async def test_malformed_frames_answered_and_connection_kept(cs: CentralSystem) -> None:
    client = await raw_client(cs, "WP-04")
    other = await raw_client(cs, "WP-05")
    await client.send("this is not json")
    await client.send("[2, 17, ")
    await client.send(orjson.dumps({"not": "an array"}).decode())
    await client.send([9, "u1", "Heartbeat", {}])  # unknown message type: ignored (§4.1.3)
    assert await alive(client)

    cases = {
        "shape": ([2, "s1", "Heartbeat"], "FormationViolation"),
        "unknown action": ([2, "a1", "Teleport", {}], "NotImplemented"),
        "CS-only action": ([2, "a2", "Reset", {"type": "Soft"}], "NotSupported"),
        "missing field": ([2, "m1", "BootNotification", {"chargePointVendor": "x"}], "OccurenceConstraintViolation"),
        "wrong type": ([2, "w1", "BootNotification", {**BOOT, "chargePointModel": 7}], "TypeConstraintViolation"),
        "bad enum": (
            [2, "e1", "StatusNotification", {"connectorId": 1, "errorCode": "Oops", "status": "Available"}],
            "PropertyConstraintViolation",
        ),
        "extra field": ([2, "x1", "Heartbeat", {"surprise": 1}], "FormationViolation"),
        "payload not object": ([2, "p1", "Heartbeat", []], "FormationViolation"),
        "id too long": ([2, "i" * 37, "Heartbeat", {}], "FormationViolation"),
    }
    for name, (frame, code) in cases.items():
        await client.send(frame)
        answer = await client.recv()
        assert answer[0] == 4 and answer[1] == frame[1] and answer[2] == code, name
        assert isinstance(answer[3], str) and isinstance(answer[4], dict)
    assert await alive(client)
    assert await alive(other)


async def test_binary_and_oversize_frames_close_cleanly(cs: CentralSystem) -> None:
    other = await raw_client(cs, "WP-06")
    binary = await raw_client(cs, "WP-07")
    await binary.send(b'[2, "b", "Heartbeat", {}]')
    with pytest.raises(ConnectionClosed) as closed:
        await binary.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003

    big = await raw_client(cs, "WP-08")
    await big.send([2, "big", "DataTransfer", {"vendorId": "x", "data": "y" * (cs.settings.max_message_bytes + 1)}])
    with pytest.raises(ConnectionClosed) as closed:
        await big.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009  # message too big
    assert await alive(other)


async def test_storm_of_bad_frames_closes_only_that_charger(cs: CentralSystem) -> None:
    other = await raw_client(cs, "WP-09")
    storm = await raw_client(cs, "WP-10")
    with pytest.raises(ConnectionClosed) as closed:
        for _ in range(500):
            await storm.send("{garbage")
        await asyncio.wait_for(storm.ws.wait_closed(), 5)
        await storm.recv(timeout=1)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert await alive(other)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
frames = st.one_of(
    st.text(max_size=200),
    json_values.map(lambda v: orjson.dumps(v).decode()),
    st.tuples(
        st.just(2),
        st.text(min_size=1, max_size=36),
        st.sampled_from(
            ["BootNotification", "MeterValues", "StartTransaction", "StatusNotification", "Authorize", "X"]
        ),
        st.dictionaries(st.sampled_from(["connectorId", "idTag", "meterValue", "status", "errorCode"]), json_values),
    ).map(lambda t: orjson.dumps(list(t)).decode()),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(frames, min_size=1, max_size=8))
async def test_fuzz_frames_never_break_the_server(cs: CentralSystem, batch: list[str]) -> None:
    """Whatever arrives, each CALL with a usable id gets exactly a CallResult or CallError, and the
    connection stays usable (or, for a storm, is closed cleanly)."""
    async with connect(url(cs, "WP-11"), subprotocols=["ocpp1.6"], open_timeout=5) as ws:
        client = RawClient(ws)
        for frame in batch:
            await client.send(frame)
        assert await alive(client)


async def test_crossing_calls_and_one_outstanding_call(cs: CentralSystem) -> None:
    """While our CALL waits for the charger, its own CALLs are served; our next CALL waits its turn."""
    client = await raw_client(cs, "WP-12")
    session = cs.session("WP-12")
    first = asyncio.create_task(session.reset("Soft"))
    second = asyncio.create_task(session.unlock_connector(1))
    call = await client.recv()
    assert call[0] == 2 and call[2] == "Reset"
    # The charger calls us before answering: served while our Reset is pending.
    await client.send([2, "hb", "Heartbeat", {}])
    answer = await client.recv()
    assert answer[:2] == [3, "hb"]
    with pytest.raises(TimeoutError):  # only one outstanding CALL from our side
        await client.recv(timeout=0.3)
    await client.send([3, call[1], {"status": "Accepted"}])
    assert await first == "Accepted"
    unlock = await client.recv()
    assert unlock[2] == "UnlockConnector" and len(unlock[1]) <= 36
    await client.send([4, unlock[1], "NotSupported", "no lock", {}])
    with pytest.raises(CallErrorReceived) as error:
        await second
    assert error.value.code == "NotSupported"


async def test_call_timeout_and_late_answer_dropped(cs: CentralSystem) -> None:
    client = await raw_client(cs, "WP-13")
    session = cs.session("WP-13")
    session.rpc.call_timeout = 0.3
    with pytest.raises(CallTimeout):
        await session.clear_cache()
    late = await client.recv()
    await client.send([3, late[1], {"status": "Accepted"}])  # too late: dropped, connection fine
    assert await alive(client)


async def test_invalid_answer_from_charger_is_an_error(cs: CentralSystem) -> None:
    client = await raw_client(cs, "WP-14")
    task = asyncio.create_task(cs.session("WP-14").reset())
    call = await client.recv()
    await client.send([3, call[1], {"status": "Maybe"}])
    with pytest.raises(Exception) as error:
        await task
    assert getattr(error.value, "code", None) == "PropertyConstraintViolation"


async def test_boot_sets_clock_and_interval(cs: CentralSystem) -> None:
    client = await raw_client(cs, "WP-15")
    answer = await client.call("BootNotification", BOOT)
    assert answer[2]["status"] == "Accepted" and answer[2]["interval"] == cs.settings.heartbeat_interval_s
    sent = datetime.fromisoformat(answer[2]["currentTime"])
    assert abs((sent - datetime.now(UTC)).total_seconds()) < 5


async def test_new_connection_replaces_the_old_one(cs: CentralSystem) -> None:
    old = await raw_client(cs, "WP-16")
    new = await raw_client(cs, "WP-16")
    with pytest.raises(ConnectionClosed) as closed:
        await old.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    assert await alive(new)
    assert cs.connected_charge_points().count("WP-16") == 1
