"""The API over a real socket: auth and roles, problem+json errors, audit log, live state, actions, limits."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import websockets

from evsite.runtime.events import (
    ChargerConnected,
    ConnectorStatus,
    FailsafeState,
    MeterSample,
    SetpointResult,
    SiteSignal,
    TransactionEvent,
)
from tests.api.conftest import RunningApi

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["title"]
    return dict(body)


async def settle() -> None:
    """Let the API's bus subscriber fold the events just published."""
    await asyncio.sleep(0.05)


def plug_in(api: RunningApi, cp: str, amps: float, transaction_id: int, tag: str = "TAG-A") -> None:
    at = datetime.now(UTC)
    bus = api.runtime.bus
    bus.publish(ChargerConnected(cp, True))
    bus.publish(ConnectorStatus(cp, 1, "Charging"))
    bus.publish(TransactionEvent(cp, 1, transaction_id, "started", tag, 1_000.0, at=at - timedelta(minutes=30)))
    bus.publish(MeterSample(cp, 1, at, energy_wh=4_000.0, power_w=amps * 208, current_a={"L1": amps}, offered_a=32))
    bus.publish(SetpointResult(cp, 1, 32.0, True))


# ------------------------------------------------------------------ auth


async def test_requests_without_a_valid_token_get_401_problem(api: RunningApi) -> None:
    async with api.client() as anonymous:
        body = assert_problem(await anonymous.get("/api/v1/site/state"), 401)
        assert "token" in str(body["detail"])
        response = await anonymous.get("/api/v1/chargers", headers={"Authorization": "Bearer evs_not-a-real-token"})
        assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"
        assert_problem(await anonymous.get("/metrics"), 401)
        health = await anonymous.get("/api/v1/health")
        assert health.status_code == 200 and health.json()["site"] == "Workplace charging, 20 ports"


async def test_roles_gate_reads_actions_and_administration(api: RunningApi) -> None:
    async with api.client("viewer") as viewer, api.client("operator") as operator, api.client("admin") as admin:
        assert (await viewer.get("/api/v1/site/state")).status_code == 200
        assert_problem(await viewer.put("/api/v1/load/limit", json={"limit_a": 100}), 403)
        assert (await operator.put("/api/v1/load/limit", json={"limit_a": 100})).status_code == 200
        assert_problem(await operator.get("/api/v1/tokens"), 403)
        assert_problem(await operator.post("/api/v1/tokens", json={"name": "x", "role": "admin"}), 403)
        assert (await admin.get("/api/v1/tokens")).status_code == 200


async def test_tokens_are_created_once_stored_hashed_and_revocable(api: RunningApi) -> None:
    async with api.client("admin") as admin:
        created = await admin.post("/api/v1/tokens", json={"name": "inspector", "role": "viewer"})
        assert created.status_code == 201
        token = created.json()["token"]
        assert_problem(await admin.post("/api/v1/tokens", json={"name": "inspector", "role": "admin"}), 409)
        listed = (await admin.get("/api/v1/tokens")).json()
        assert {"name": "inspector", "role": "viewer"}.items() <= listed[-1].items()
        assert token not in json.dumps(listed)
        async with httpx.AsyncClient(base_url=api.url, headers={"Authorization": f"Bearer {token}"}) as inspector:
            assert (await inspector.get("/api/v1/chargers")).status_code == 200
            assert (await admin.delete("/api/v1/tokens/inspector")).status_code == 204
            assert_problem(await inspector.get("/api/v1/chargers"), 401)
    from sqlalchemy import text

    assert api.runtime.db is not None
    async with api.runtime.db() as session:
        stored = (await session.execute(text("select digest from api_token where name = 'inspector'"))).scalar_one()
    assert stored != token and len(stored) == 64


# ------------------------------------------------------------------ validation and problem+json


async def test_bad_input_is_a_422_problem_naming_the_field(api: RunningApi) -> None:
    async with api.client("operator") as operator:
        body = assert_problem(await operator.put("/api/v1/load/limit", json={"limit_a": -5}), 422)
        assert body["type"] == "https://evsite.dev/problems/validation"
        assert any(e["name"] == "body.limit_a" for e in body["errors"])  # type: ignore[attr-defined]
        assert_problem(await operator.put("/api/v1/load/limit", content=b"{not json"), 422)
        too_high = assert_problem(await operator.put("/api/v1/load/limit", json={"limit_a": 1300}), 422)
        assert "1280 A" in str(too_high["detail"])  # 80 % of the workplace's 1600 A service
        over_allocation = {"limit_a": 500, "node": "allocation"}
        too_high = assert_problem(await operator.put("/api/v1/load/limit", json=over_allocation), 422)
        assert "200 A" in str(too_high["detail"])  # the workplace's EV allocation
        assert_problem(await operator.put("/api/v1/load/limit", json={"limit_a": 50, "node": "nowhere"}), 422)
        past = {"limit_a": 50, "until": "2000-01-01T00:00:00Z"}
        assert_problem(await operator.put("/api/v1/load/limit", json=past), 422)
        assert_problem(await operator.get("/api/v1/sessions", params={"since": "yesterday"}), 422)
        assert_problem(await operator.get("/api/v1/chargers/NOPE-99"), 404)
        assert_problem(await operator.get("/api/v1/chargers/WP-01/connectors/7/setpoints"), 404)
        assert_problem(await operator.get("/api/v1/billing/statements", params={"month": "2026-13"}), 422)
        assert_problem(await operator.delete("/api/v1/load/limit"), 404)


# ------------------------------------------------------------------ audit


async def test_every_mutating_call_by_a_known_token_is_audited_with_who_and_what(api: RunningApi) -> None:
    async with api.client("operator") as operator, api.client("viewer") as viewer, api.client("admin") as admin:
        await operator.put("/api/v1/load/limit", json={"limit_a": 120, "duration_s": 600})
        await viewer.put("/api/v1/load/limit", json={"limit_a": 10})
        await operator.put("/api/v1/load/limit", json={"limit_a": -1})
        async with api.client() as anonymous:
            await anonymous.delete("/api/v1/load/limit")
        entries = (await admin.get("/api/v1/audit")).json()
    newest_first = [(e["actor"], e["method"], e["path"], e["status"]) for e in entries]
    assert newest_first == [  # the anonymous DELETE is counted in /metrics, not written (tests/api/test_trust.py)
        ("test-operator", "PUT", "/api/v1/load/limit", 422),
        ("test-viewer", "PUT", "/api/v1/load/limit", 403),
        ("test-operator", "PUT", "/api/v1/load/limit", 200),
    ]
    detail = json.loads(entries[-1]["detail"])
    assert detail["node"] == "service" and detail["limit_a"] == 120


# ------------------------------------------------------------------ live state


async def test_state_places_charger_current_on_its_circuit_lines_and_up_the_tree(api: RunningApi) -> None:
    plug_in(api, "WP-01", 16.0, 101)  # C-01 is L1-L2: a 208 V single-phase load on two lines
    plug_in(api, "WP-02", 10.0, 102)  # C-02 is L2-L3
    await settle()
    async with api.client("viewer") as viewer:
        state = (await viewer.get("/api/v1/site/state")).json()
        chargers = (await viewer.get("/api/v1/chargers")).json()
    nodes = {n["id"]: {line["line"]: line for line in n["lines"]} for n in state["nodes"]}
    assert nodes["C-01"]["L1"]["measured_a"] == 16 and nodes["C-01"]["L2"]["measured_a"] == 16
    assert nodes["C-01"]["L1"]["limit_a"] == 48  # 80 % of the 60 A breaker
    assert [nodes["service"][x]["measured_a"] for x in ("L1", "L2", "L3")] == [16, 26, 10]
    assert nodes["service"]["L1"]["limit_a"] == 1280  # 80 % of the 1600 A service
    assert nodes["allocation"]["L1"]["limit_a"] == 200  # the EV allocation, its own node as in the load manager
    assert nodes["allocation"]["L2"]["measured_a"] == 26
    assert nodes["F-EV"]["L2"]["limit_a"] == 160  # the EMS setpoint caps the feeder
    assert state["chargers_connected"] == 2 and state["connectors_charging"] == 2
    wp01 = next(c for c in chargers if c["id"] == "WP-01")
    connector = wp01["connectors"][0]
    assert wp01["connected"] and connector["status"] == "Charging"
    assert connector["drawn_a"] == 16 and connector["offered_a"] == 32 and connector["setpoint_a"] == 32
    assert connector["session_wh"] == 3_000  # register 4,000 Wh minus 1,000 Wh at start
    assert len(chargers) == 20


async def test_sessions_filter_and_export_as_csv(api: RunningApi) -> None:
    plug_in(api, "WP-01", 16.0, 101)
    plug_in(api, "WP-03", 16.0, 103, tag="TAG-B")
    api.runtime.bus.publish(TransactionEvent("WP-01", 1, 101, "stopped", "TAG-A", 9_500.0, reason="EVDisconnected"))
    await settle()
    async with api.client("viewer") as viewer:
        all_sessions = (await viewer.get("/api/v1/sessions")).json()
        completed = (await viewer.get("/api/v1/sessions", params={"state": "completed"})).json()
        on_wp03 = (await viewer.get("/api/v1/sessions", params={"charger": "WP-03"})).json()
        future = (await viewer.get("/api/v1/sessions", params={"since": "2999-01-01"})).json()
        exported = await viewer.get("/api/v1/sessions.csv")
    assert {s["transaction_id"] for s in all_sessions} == {101, 103}
    assert [(s["transaction_id"], s["energy_wh"], s["stop_reason"]) for s in completed] == [
        (101, 8_500.0, "EVDisconnected")
    ]
    assert [s["transaction_id"] for s in on_wp03] == [103] and on_wp03[0]["state"] == "active"
    assert future == []
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {r["transaction_id"] for r in rows} == {"101", "103"}
    assert next(r for r in rows if r["transaction_id"] == "101")["energy_wh"] == "8500.0"


async def test_alerts_for_rejected_profiles_and_offline_chargers(api: RunningApi) -> None:
    plug_in(api, "WP-04", 16.0, 104)
    api.runtime.bus.publish(SetpointResult("WP-04", 1, 12.0, False, "Rejected"))
    api.runtime.bus.publish(ChargerConnected("WP-05", False))
    await settle()
    async with api.client("viewer") as viewer:
        active = (await viewer.get("/api/v1/alerts", params={"active": True})).json()
        history = (await viewer.get("/api/v1/chargers/WP-04/connectors/1/setpoints")).json()
    assert {a["kind"] for a in active} == {"profile-rejected", "charger-offline"}
    assert [(h["limit_a"], h["accepted"]) for h in history] == [(32.0, True), (12.0, False)]
    api.runtime.bus.publish(SetpointResult("WP-04", 1, 12.0, True))
    await settle()
    async with api.client("viewer") as viewer:
        active = (await viewer.get("/api/v1/alerts", params={"active": True})).json()
    assert [a["kind"] for a in active] == ["charger-offline"]


async def test_a_refused_failsafe_is_an_alert_naming_the_charger(api: RunningApi) -> None:
    api.runtime.bus.publish(FailsafeState("WP-10", True, 48.0, ("WP-07",)))
    await settle()
    async with api.client("viewer") as viewer:
        active = (await viewer.get("/api/v1/alerts", params={"active": True})).json()
    assert [a["kind"] for a in active] == ["failsafe-refused"]
    assert "WP-10" in active[0]["message"] and "WP-07" in active[0]["message"]
    api.runtime.bus.publish(FailsafeState("WP-10", False, 48.0))  # it took one after a reconnection
    await settle()
    async with api.client("viewer") as viewer:
        assert (await viewer.get("/api/v1/alerts", params={"active": True})).json() == []


# ------------------------------------------------------------------ limits and actions


async def test_manual_limit_is_published_on_the_bus_and_cleared(api: RunningApi) -> None:
    async with api.runtime.bus.subscribe() as queue, api.client("operator") as operator:
        response = await operator.put("/api/v1/load/limit", json={"limit_a": 120, "duration_s": 900})
        assert response.status_code == 200
        signal = await asyncio.wait_for(queue.get(), 2)
        assert isinstance(signal, SiteSignal) and signal.kind == "manual_limit" and signal.node == "service"
        assert signal.current_a == {"L1": 120, "L2": 120, "L3": 120}
        assert signal.until is not None
        assert abs((signal.until - datetime.now(UTC)).total_seconds() - 900) < 5
        assert signal.source == "api:test-operator"
        state = (await operator.get("/api/v1/site/state")).json()
        service = next(n for n in state["nodes"] if n["id"] == "service")
        assert {line["limit_a"] for line in service["lines"]} == {120}
        assert state["manual_limit"]["set_by"] == "test-operator"
        assert (await operator.delete("/api/v1/load/limit")).status_code == 204
        cleared = await asyncio.wait_for(queue.get(), 2)
        assert isinstance(cleared, SiteSignal) and cleared.current_a == {}
        assert (await operator.get("/api/v1/load/policy")).json()["manual_limit"] is None


async def test_actions_reach_the_charger_interface_only_when_connected(api: RunningApi) -> None:
    async with api.client("operator") as operator:
        offline = await operator.post("/api/v1/chargers/WP-06/remote-start", json={"connector_id": 1, "id_tag": "T1"})
        assert_problem(offline, 409)
        api.runtime.bus.publish(ChargerConnected("WP-06", True))
        await settle()
        started = await operator.post("/api/v1/chargers/WP-06/remote-start", json={"connector_id": 1, "id_tag": "T1"})
        assert started.json() == {"charger": "WP-06", "action": "RemoteStartTransaction", "status": "Accepted"}
        await operator.post("/api/v1/chargers/WP-06/reset", json={"type": "Hard"})
        await operator.post("/api/v1/chargers/WP-06/trigger", json={"message": "MeterValues", "connector_id": 1})
        assert_problem(await operator.post("/api/v1/chargers/WP-06/unlock", json={"connector_id": 3}), 404)
        assert_problem(await operator.post("/api/v1/chargers/WP-06/reset", json={"type": "Warm"}), 422)
        api.actions.fail_with = TimeoutError()
        assert_problem(await operator.post("/api/v1/chargers/WP-06/unlock", json={"connector_id": 1}), 504)
    assert api.actions.calls == [
        ("remote_start", ("WP-06", 1, "T1")),
        ("reset", ("WP-06", "Hard")),
        ("trigger_message", ("WP-06", "MeterValues", 1)),
        ("unlock", ("WP-06", 1)),
    ]


# ------------------------------------------------------------------ live stream and metrics


async def test_live_stream_pushes_state_every_second_with_new_events(api: RunningApi) -> None:
    ws_url = api.url.replace("http://", "ws://") + "/api/v1/live"
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with websockets.connect(ws_url, additional_headers={"Authorization": "Bearer evs_wrong"}) as ws:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    viewer = {"Authorization": f"Bearer {api.tokens['viewer']}"}
    async with websockets.connect(ws_url, additional_headers=viewer, open_timeout=5) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), 3))
        plug_in(api, "WP-07", 20.0, 107)
        started = asyncio.get_running_loop().time()
        second = json.loads(await asyncio.wait_for(ws.recv(), 3))
        elapsed = asyncio.get_running_loop().time() - started
    assert first["type"] == "state" and len(first["chargers"]) == 20
    assert elapsed <= 1.5
    assert {"ChargerConnected", "TransactionEvent"} <= {e["type"] for e in second["events"]}
    wp07 = next(c for c in second["chargers"] if c["id"] == "WP-07")
    assert wp07["connectors"][0]["drawn_a"] == 20


async def test_metrics_in_prometheus_text_format(api: RunningApi) -> None:
    plug_in(api, "WP-08", 30.0, 108)
    await settle()
    async with api.client("viewer") as viewer:
        response = await viewer.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = response.text.splitlines()
    assert "evsite_chargers_connected 1" in lines
    assert "# TYPE evsite_node_headroom_amperes gauge" in lines
    assert 'evsite_node_measured_amperes{node="C-08",line="L2"} 30' in lines  # C-08 is L2-L3
    assert 'evsite_node_headroom_amperes{node="allocation",line="L1"} 200' in lines
    assert "evsite_dr_active 0" in lines
