"""A cluster of evsite nodes on the real NATS server (#16): ownership, leadership, fencing, failover.

Each node is a whole `running_site` stack in this process (its own OCPP port, SQLite store and NATS
connection); the charger is the `ocpp` package's v16 ChargePoint over a real WebSocket. Every test uses
its own namespace, so its buckets and stream are its own; they are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from evsite.cluster import ClusterSettings
from evsite.cluster.names import Names
from evsite.ocpp.server import ServerSettings
from evsite.runtime.stack import RunningSite, StackOptions, running_site
from evsite.site import Site, load_site
from tests.conftest import EXAMPLES

pytestmark = [pytest.mark.slow]

LEASE_S = 3.0
RETRY_S = 0.5


def fast_site() -> Site:
    site = load_site(EXAMPLES / "workplace-20.yaml")
    site.evse = site.evse[:4]  # four 48 A ports on the 200 A allocation: room for all, even unheard-of ones
    site.control.cycle_s = 0.3
    site.control.call_timeout_s = 5.0
    return site


class Charger(ChargePoint):
    """A conforming 1.6 charger that records every charging profile it is sent."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.profiles: list[dict[str, Any]] = []

    @on(Action.get_configuration)
    async def on_get_configuration(self, key: list[str] | None = None, **_: Any) -> Any:
        return call_result.GetConfiguration(
            configuration_key=[
                {"key": "ChargeProfileMaxStackLevel", "readonly": True, "value": "3"},
                {"key": "ChargingScheduleAllowedChargingRateUnit", "readonly": True, "value": "Current"},
                {"key": "ChargingScheduleMaxPeriods", "readonly": True, "value": "24"},
                {"key": "SupportedFeatureProfiles", "readonly": True, "value": "Core,SmartCharging,RemoteTrigger"},
            ]
        )

    @on(Action.change_configuration)
    async def on_change_configuration(self, key: str, value: str) -> Any:
        return call_result.ChangeConfiguration(status="Accepted")

    @on(Action.set_charging_profile)
    async def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any]) -> Any:
        self.profiles.append({"connector_id": connector_id, **cs_charging_profiles})
        return call_result.SetChargingProfile(status="Accepted")

    @on(Action.trigger_message)
    async def on_trigger_message(self, requested_message: str, **_: Any) -> Any:
        return call_result.TriggerMessage(status="Accepted")

    def tx_limits(self) -> list[float]:
        """The load manager's setpoints received, in order (TxProfile in a transaction, else TxDefaultProfile).

        A charger is dispatched as soon as it connects (0 A while no car is known), so the port's share
        (48 A for one car) is the last value, not always the first."""
        return [
            float(p["charging_schedule"]["charging_schedule_period"][0]["limit"])
            for p in self.profiles
            if p["charging_profile_purpose"] in ("TxProfile", "TxDefaultProfile")
        ]


@contextlib.asynccontextmanager
async def node(
    tmp_path: Path,
    nats_url: str,
    namespace: str,
    name: str,
    *,
    lead: bool = True,
    db_url: str | None = None,
    api_port: int | None = None,
    site: Site | None = None,
) -> AsyncIterator[RunningSite]:
    options = StackOptions(
        site=site or fast_site(),
        db_url=db_url or f"sqlite+aiosqlite:///{tmp_path / name}.db",
        ocpp=ServerSettings(port=0, call_timeout_s=5.0, reconnect_setup_delay_s=0.1),
        api_port=api_port,
        integrations=False,
        sqlite_synchronous="NORMAL",
        id_tags=[{"id_tag": "CARD-1", "status": "Accepted"}],
        cluster=ClusterSettings(
            nats_url, node_id=name, lease_s=LEASE_S, retry_s=RETRY_S, namespace=namespace, lead=lead
        ),
    )
    async with running_site(options) as running:
        yield running


@pytest.fixture
async def namespace(nats_url: str) -> AsyncIterator[str]:
    import nats

    ns = "t" + uuid.uuid4().hex[:12]
    yield ns
    names = Names(ns)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    for bucket in (names.owners_bucket, names.leaders_bucket, names.nodes_bucket):
        with contextlib.suppress(Exception):
            await js.delete_key_value(bucket)
    with contextlib.suppress(Exception):
        await js.delete_stream(names.events_stream)
    await nc.close()


async def until(check: Any, timeout: float, what: str) -> float:
    """Poll `check` until true; the seconds it took. Fails after `timeout`."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def leads(running: RunningSite) -> bool:
    return running.election is not None and running.election.holds()


def url(running: RunningSite, cp_id: str) -> str:
    return f"ws://127.0.0.1:{running.central.port}/ocpp/{cp_id}"


@contextlib.asynccontextmanager
async def charging(running: RunningSite, cp_id: str = "WP-01") -> AsyncIterator[tuple[Charger, ClientConnection]]:
    """A charger connected to `running`, booted, with an EV charging in a transaction."""
    async with connect(url(running, cp_id), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        cp = Charger(cp_id, ws, response_timeout=5)
        task = asyncio.create_task(cp.start())
        try:
            await cp.call(call.BootNotification(charge_point_model="Pro 48", charge_point_vendor="ExampleCharge"))
            await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Preparing"))
            stamp = datetime.now(UTC).isoformat()
            await cp.call(call.StartTransaction(connector_id=1, id_tag="CARD-1", meter_start=0, timestamp=stamp))
            await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
            yield cp, ws
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await task


async def test_a_charger_on_one_node_gets_setpoints_from_the_leader_on_another(
    tmp_path: Path, nats_url: str, namespace: str
) -> None:
    async with node(tmp_path, nats_url, namespace, "b") as b:
        await until(lambda: leads(b), 5, "first node leads")
        async with node(tmp_path, nats_url, namespace, "a") as a:
            await asyncio.sleep(2 * RETRY_S)
            assert not leads(a) and a.election is not None and a.election.terms == 0  # one leader per site
            async with charging(a) as (cp, _):
                await until(lambda: cp.tx_limits()[-1:] == [48.0], 20, "a setpoint from the leader on the other node")
                assert a.gateway is not None and "WP-01" in a.gateway.claims
                assert "WP-01" not in b.central.sessions  # the socket is on a, the load manager on b
                # The leader computed it: one charging EV on a 200 A allocation gets its 48 A port maximum.
                assert cp.tx_limits()[-1] == 48.0
                assert b.election is not None and a.gateway.epoch == b.election.epoch


async def owner_of(running: RunningSite, cp_id: str) -> str | None:
    from evsite.cluster.names import owner_key

    assert running.gateway is not None and running.gateway.node.owners is not None
    try:
        entry = await running.gateway.node.owners.get(owner_key(running.options.site.name, cp_id))
    except Exception:
        return None
    return None if entry.value is None else orjson.loads(entry.value)["node"]


async def test_reconnecting_to_another_node_moves_ownership_and_closes_the_old_socket(
    tmp_path: Path, nats_url: str, namespace: str
) -> None:
    async with node(tmp_path, nats_url, namespace, "a") as a, node(tmp_path, nats_url, namespace, "b") as b:
        await until(lambda: leads(a) or leads(b), 5, "a leader")
        async with charging(a) as (_, old_ws):
            await until(lambda: a.gateway is not None and "WP-01" in a.gateway.claims, 5, "a holds WP-01")
            assert await owner_of(a, "WP-01") == "a"
            async with charging(b) as (cp, _):
                took = await until(lambda: old_ws.close_code is not None, 5, "a closes its stale socket")
                assert old_ws.close_code == 1000 and "node b" in (old_ws.close_reason or "")
                assert await owner_of(a, "WP-01") == "b"
                assert a.gateway is not None and "WP-01" not in a.gateway.claims
                assert "WP-01" not in a.central.sessions and "WP-01" in b.central.sessions
                # The leader's commands now reach the charger through b, whichever node leads.
                assert await leader_commands(a if leads(a) else b).set_connector_limit("WP-01", 1, 20.0)
                assert cp.tx_limits()[-1] == 20.0
                print(f"old socket closed {took:.3f} s after the new connection had booted")
            # The charger leaves b: b deletes its record (compare-and-set on its own revision).
            await until(lambda: "WP-01" not in b.central.sessions, 5, "b sees the close")
            await asyncio.sleep(0.3)
            assert await owner_of(b, "WP-01") is None


async def test_a_dead_leader_is_replaced_within_the_lease_and_its_late_setpoints_are_refused(
    tmp_path: Path, nats_url: str, namespace: str
) -> None:
    import nats

    async with node(tmp_path, nats_url, namespace, "b") as b:
        await until(lambda: leads(b), 5, "b leads")
        async with node(tmp_path, nats_url, namespace, "a") as a, charging(a) as (cp, _):
            await until(lambda: cp.tx_limits()[-1:] == [48.0], 20, "a setpoint from b")
            assert a.election is not None and b.election is not None and b.gateway is not None
            old_epoch, before = b.election.epoch, len(cp.tx_limits())
            # b dies as far as the cluster can tell: its NATS link is gone, it renews nothing, hands nothing back.
            await b.gateway.node.client.close()
            failover = await until(lambda: leads(a), LEASE_S + RETRY_S + 2.0, "a takes the site over")
            assert a.election.epoch > old_epoch
            # The new term re-dispatches: a fresh setpoint for the charger, carrying the new epoch.
            renewed = lambda: len(cp.tx_limits()) > before and cp.tx_limits()[-1] == 48.0  # noqa: E731
            await until(renewed, 5, "the new leader's setpoint")
            assert a.gateway is not None and a.gateway.epoch == a.election.epoch
            print(f"failover {failover:.2f} s (lease {LEASE_S} s, retry {RETRY_S} s)")

            # A late setpoint of the old leader (its epoch) reaches the gateway: refused, never applied.
            profiles = len(cp.profiles)
            nc = await nats.connect(nats_url)
            try:
                subject = a.gateway.node.names.command_subject(a.options.site.name, "WP-01")
                stale = orjson.dumps({"connector_id": 1, "limit_a": 48.0, "epoch": old_epoch})
                reply = orjson.loads((await nc.request(subject, stale, timeout=5)).data)
                assert reply["accepted"] is False and "stale epoch" in reply["detail"]
                assert a.gateway.refused == 1
                # An epoch no leader holds (a forged or corrupted command) is refused too, and moves nothing.
                forged = orjson.dumps({"connector_id": 1, "limit_a": 48.0, "epoch": a.election.epoch + 10**6})
                reply = orjson.loads((await nc.request(subject, forged, timeout=5)).data)
                assert reply["accepted"] is False and "unknown epoch" in reply["detail"]
                assert a.gateway.epoch == a.election.epoch
                # The same command with the current epoch is applied: the refusal was the epoch, nothing else.
                fresh = orjson.dumps({"connector_id": 1, "limit_a": 20.0, "epoch": a.election.epoch})
                assert orjson.loads((await nc.request(subject, fresh, timeout=5)).data)["accepted"] is True
            finally:
                await nc.close()
            assert cp.tx_limits()[-1] == 20.0
            assert all(
                float(p["charging_schedule"]["charging_schedule_period"][0]["limit"]) != 48.0
                for p in cp.profiles[profiles:]
                if p["charging_profile_purpose"] in ("TxProfile", "TxDefaultProfile")
            )


async def test_a_leader_that_cannot_renew_stops_sending_at_once(tmp_path: Path, nats_url: str, namespace: str) -> None:
    async with node(tmp_path, nats_url, namespace, "b") as b:
        await until(lambda: leads(b), 5, "b leads")
        election = b.election
        assert election is not None
        commands = leader_commands(b)
        # Its lease runs out locally (a paused process wakes up after lease_s): nothing goes out any more.
        election._valid_until = 0.0
        assert not election.holds()
        assert await commands.set_connector_limit("WP-01", 1, 48.0) is False


@contextlib.asynccontextmanager
async def private_nats(tmp_path: Path) -> AsyncIterator[tuple[str, Any]]:
    """A NATS server of this test's own (the shared one on 4222 must not be restarted); yields its URL and a
    restart function."""
    import shutil
    import subprocess

    from tests.conftest import free_port

    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not Path(binary).exists():
        pytest.skip("nats-server binary not installed (needed to restart NATS in a test)")
    port, store = free_port(), tmp_path / "jetstream"
    args = [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)]
    procs: list[subprocess.Popen[bytes]] = []

    async def start() -> None:
        procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from tests.conftest import port_open

        await until(lambda: port_open("127.0.0.1", port, 0.1), 10, "private nats-server up")

    def stop() -> None:
        procs[-1].terminate()
        procs[-1].wait(10)

    await start()
    try:
        yield f"nats://127.0.0.1:{port}", (stop, start)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


async def test_nats_outage_no_raises_then_full_recovery(tmp_path: Path) -> None:
    async with private_nats(tmp_path) as (url, (stop_nats, start_nats)), node(tmp_path, url, "evsite", "b") as b:
        await until(lambda: leads(b), 5, "b leads")
        async with node(tmp_path, url, "evsite", "a") as a, charging(a) as (cp, ws):
            await until(lambda: cp.tx_limits()[-1:] == [48.0], 20, "a setpoint from b")
            assert b.election is not None and a.election is not None
            epoch, seen = b.election.epoch, len(cp.tx_limits())
            highest = max(cp.tx_limits())

            stop_nats()
            lost = await until(lambda: not leads(a) and not leads(b), LEASE_S + 1, "no node leads without NATS")
            # The charger keeps its socket and its last setpoint; nothing is sent to it while NATS is down.
            await asyncio.sleep(1.0)
            assert ws.close_code is None
            assert len(cp.tx_limits()) == seen
            assert not await leader_commands(b).set_connector_limit("WP-01", 1, 48.0)

            # A charger that connects during the outage is served; its ownership is recorded once NATS is back.
            async with charging(a, "WP-02") as (cp2, _):
                assert await owner_of(a, "WP-02") is None
                await start_nats()
                back = await until(lambda: leads(a) or leads(b), 20, "a leader again after NATS returns")
                leader = a if leads(a) else b
                assert leader.election is not None and leader.election.epoch > epoch
                await until(lambda: len(cp.tx_limits()) > seen, 10, "the new term's setpoints reach the charger")
                assert max(cp.tx_limits()) <= highest
                await until(lambda: a.gateway is not None and a.gateway.claims["WP-02"].revision > 0, 10, "reclaimed")
                assert await owner_of(a, "WP-02") == "a"
                await until(lambda: bool(cp2.tx_limits()), 10, "a setpoint for the charger that came meanwhile")
                print(f"leadership dropped {lost:.2f} s after NATS stopped; back {back:.2f} s after it restarted")


def leader_commands(running: RunningSite) -> Any:
    from evsite.cluster import LeaderCommands

    assert running.election is not None
    return LeaderCommands(running.election)


async def test_the_api_and_metrics_show_the_cluster(tmp_path: Path, nats_url: str, namespace: str) -> None:
    import httpx

    from evsite.api.tokens import Role, TokenStore
    from tests.conftest import free_port

    async with node(tmp_path, nats_url, namespace, "b") as b:
        await until(lambda: leads(b), 5, "b leads")
        async with node(tmp_path, nats_url, namespace, "a", api_port=free_port()) as a, charging(a):
            await until(lambda: a.gateway is not None and a.gateway.claims.get("WP-01") is not None, 5, "claimed")
            assert a.runtime.db is not None and a.api_url is not None and b.election is not None
            token = await TokenStore(a.runtime.db).create("viewer", Role.VIEWER)
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=a.api_url, headers=headers, timeout=5) as api:
                await until(lambda: a.gateway is not None and a.gateway.epoch > 0, 5, "a knows the epoch")
                status = (await api.get("/api/v1/cluster")).json()
                assert status["node_id"] == "a" and set(status["nodes"]) == {"a", "b"}
                assert status["nodes"]["a"]["chargers"] == 1 and status["nodes"]["b"]["chargers"] == 0
                assert status["sites"][b.options.site.name] == {"leader": "b", "epoch": b.election.epoch}
                assert status["this_node"] == {
                    "leader": 0.0, "epoch": float(b.election.epoch), "chargers_held": 1.0, "stale_refused": 0.0
                }  # fmt: skip
                text = (await api.get("/metrics")).text
                assert "evsite_cluster_leader 0" in text and "evsite_cluster_chargers_held 1" in text
                assert f"evsite_cluster_epoch {b.election.epoch}" in text
