"""The MQTT bridge against the real Mosquitto broker on 127.0.0.1:1883 (skipped where absent)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from evsite.bms.mqtt import MqttBridge
from evsite.bms.state import BusCommands, ChargerState, SiteState
from evsite.runtime.events import EventBus, SiteSignal
from evsite.site import Site, load_site
from evsite.site.model import MqttIntegration

WAIT = 5.0


class Recorder:
    """A CommandSink that remembers what reached it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object, object]] = []

    def set_site_limit_kw(self, kw: float | None, source: str) -> None:
        self.calls.append(("site", kw, source))

    def set_charger_limit_a(self, charger_id: str, amps: float | None, source: str) -> None:
        self.calls.append(("limit", charger_id, amps))

    def set_charger_enabled(self, charger_id: str, enabled: bool, source: str) -> None:
        self.calls.append(("enable", charger_id, enabled))


def snapshot() -> SiteState:
    return SiteState(
        ev_power_w=11_520,
        current_a={"L1": 48.0, "L2": 48.0},
        building_power_w=2_400,
        sessions=1,
        dr_active=False,
        chargers=(ChargerState("HOME-EV1", "Charging", 11_520, 48.0, 1_234_500, True, 48.0, 48.0),),
    )


@pytest.fixture
def site(examples_dir: Path) -> Site:
    return load_site(examples_dir / "residential.yaml")


@pytest.fixture
def settings(mqtt_broker: tuple[str, int]) -> MqttIntegration:
    tag = uuid.uuid4().hex[:8]
    return MqttIntegration(
        host=mqtt_broker[0], port=mqtt_broker[1], topic_prefix=f"t-{tag}", discovery_prefix=f"ha-{tag}",
        publish_interval_s=0.2,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def running(bridge: MqttBridge) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(bridge.session())
    try:
        await asyncio.wait_for(bridge.ready.wait(), WAIT)
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def collect(client: aiomqtt.Client, want: int, timeout: float = WAIT) -> dict[str, bytes]:
    got: dict[str, bytes] = {}

    async def loop() -> None:
        async for msg in client.messages:
            got[msg.topic.value] = msg.payload if isinstance(msg.payload, bytes) else str(msg.payload).encode()
            if len(got) >= want:
                return

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(loop(), timeout)
    return got


async def test_discovery_state_and_availability(site: Site, settings: MqttIntegration) -> None:
    bridge = MqttBridge(site, settings, snapshot, Recorder(), site_id="home")
    async with running(bridge):
        await asyncio.sleep(0.3)
        # a Home Assistant that arrives later still finds every entity (retained)
        async with aiomqtt.Client(settings.host, settings.port, identifier=f"ha-{uuid.uuid4().hex[:6]}") as ha:
            await ha.subscribe(f"{settings.discovery_prefix}/#", qos=1)
            await ha.subscribe(f"{bridge.base}/#", qos=1)
            expected = len(bridge.discovery(snapshot())) + 3  # + availability, site state, charger state
            got = await collect(ha, expected)
    prefix = f"{settings.discovery_prefix}"
    number = json.loads(got[f"{prefix}/number/evsite_home/home-ev1_limit/config"])
    assert number["command_topic"] == f"{bridge.base}/charger/HOME-EV1/limit_a/set"
    assert (number["min"], number["max"], number["unit_of_measurement"]) == (0, 48.0, "A")
    switch = json.loads(got[f"{prefix}/switch/evsite_home/home-ev1_allow/config"])
    assert switch["command_topic"].endswith("/HOME-EV1/enable/set") and switch["payload_on"] == "ON"
    energy = json.loads(got[f"{prefix}/sensor/evsite_home/home-ev1_energy/config"])
    assert (energy["device_class"], energy["state_class"], energy["unit_of_measurement"]) == (
        "energy",
        "total_increasing",
        "kWh",
    )
    assert energy["availability_topic"] == f"{bridge.base}/availability"
    assert energy["device"]["via_device"] == "evsite_home"
    assert got[f"{bridge.base}/availability"] == b"online"
    site_state = json.loads(got[f"{bridge.base}/site/state"])
    assert site_state["ev_power_kw"] == 11.52 and site_state["current_a"] == {"L1": 48.0, "L2": 48.0}
    charger = json.loads(got[f"{bridge.base}/charger/HOME-EV1/state"])
    assert charger["energy_kwh"] == 1234.5 and charger["status"] == "Charging"


async def test_commands_are_validated_and_bad_ones_ignored(site: Site, settings: MqttIntegration) -> None:
    sink = Recorder()
    bridge = MqttBridge(site, settings, snapshot, sink, site_id="home")
    base = bridge.base
    async with running(bridge) as task:
        async with aiomqtt.Client(settings.host, settings.port) as ctl:
            bad = [
                (f"{base}/site/limit_kw/set", b"lots"),
                (f"{base}/site/limit_kw/set", b"-5"),
                (f"{base}/site/limit_kw/set", b"nan"),
                (f"{base}/site/limit_kw/set", b"1e309"),
                (f"{base}/site/limit_kw/set", b"\xff\xfe"),
                (f"{base}/site/limit_kw/set", b"9" * 500),
                (f"{base}/charger/HOME-EV1/limit_a/set", b"3"),  # inside the J1772 dead band
                (f"{base}/charger/HOME-EV1/limit_a/set", b"80"),  # above the 48 A nameplate
                (f"{base}/charger/HOME-EV1/enable/set", b"maybe"),
                (f"{base}/charger/NOPE/enable/set", b"ON"),
                (f"{base}/charger/HOME-EV1/colour/set", b"red"),
            ]
            good = [
                (f"{base}/site/limit_kw/set", b"7.5"),
                (f"{base}/charger/HOME-EV1/limit_a/set", b"16"),
                (f"{base}/charger/HOME-EV1/limit_a/set", b"0"),
                (f"{base}/charger/HOME-EV1/enable/set", b"OFF"),
                (f"{base}/site/limit_kw/set", b"none"),
            ]
            for topic, payload in [*bad, *good]:
                await ctl.publish(topic, payload, qos=1)
            for _ in range(100):
                if len(sink.calls) >= len(good) and bridge.rejected >= len(bad):
                    break
                await asyncio.sleep(0.05)
        assert not task.done()  # the bridge survived every bad payload
    assert bridge.rejected == len(bad)
    assert sink.calls == [
        ("site", 7.5, "mqtt"),
        ("limit", "HOME-EV1", 16.0),
        ("limit", "HOME-EV1", 0.0),
        ("enable", "HOME-EV1", False),
        ("site", None, "mqtt"),
    ]


async def test_discovery_is_sent_again_when_home_assistant_restarts(site: Site, settings: MqttIntegration) -> None:
    bridge = MqttBridge(site, settings, snapshot, Recorder(), site_id="home")
    config = f"{settings.discovery_prefix}/switch/evsite_home/home-ev1_allow/config"
    async with running(bridge), aiomqtt.Client(settings.host, settings.port) as ha:
        await ha.publish(config, b"", qos=1, retain=True)  # HA lost its retained configs (broker reset)
        await ha.subscribe(config, qos=1)
        await ha.publish(f"{settings.discovery_prefix}/status", b"online", qos=1)  # HA's birth message
        got = await collect(ha, 1)
        while not got.get(config):
            got = await collect(ha, 1)
        assert json.loads(got[config])["name"] == "Allow charging"
        await ha.publish(config, b"", qos=1, retain=True)


async def test_last_will_marks_bridge_offline_when_it_dies(site: Site, settings: MqttIntegration) -> None:
    bridge = MqttBridge(site, settings, snapshot, Recorder(), site_id="home")
    async with running(bridge), aiomqtt.Client(settings.host, settings.port) as watcher:
        await watcher.subscribe(bridge.availability, qos=1)
        assert (await collect(watcher, 1))[bridge.availability] == b"online"
        assert bridge.client is not None
        sock = bridge.client._client.socket()  # cut the TCP connection without a DISCONNECT packet
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)
        assert (await collect(watcher, 1, timeout=WAIT))[bridge.availability] == b"offline"


async def test_bus_commands_become_manual_limits(site: Site) -> None:
    bus = EventBus()
    commands = BusCommands(site, bus)
    async with bus.subscribe() as queue:
        commands.set_site_limit_kw(9.6, "bms")  # 9.6 kW at 240 V = 40 A per line
        commands.set_charger_limit_a("HOME-EV1", 16, "mqtt")
        commands.set_charger_enabled("HOME-EV1", False, "mqtt")
        commands.set_charger_enabled("HOME-EV1", True, "mqtt")
        commands.set_charger_limit_a("HOME-EV1", None, "mqtt")
        signals = [queue.get_nowait() for _ in range(5)]
    assert all(isinstance(s, SiteSignal) and s.kind == "manual_limit" for s in signals)
    assert [(s.node, s.current_a) for s in signals if isinstance(s, SiteSignal)] == [
        ("service", {"L1": pytest.approx(40.0), "L2": pytest.approx(40.0)}),
        ("HOME-EV1", {"L1": 16, "L2": 16}),
        ("HOME-EV1", {"L1": 0.0, "L2": 0.0}),
        ("HOME-EV1", {"L1": 16, "L2": 16}),
        ("HOME-EV1", {}),
    ]
