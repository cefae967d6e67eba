"""MQTT bridge: site and charger state out, validated commands in, Home Assistant discovery.

Topics under `<topic_prefix>/<site id>` (`base`):

    base/availability                 online | offline (retained; `offline` is also the last will)
    base/site/state                   JSON: ev_power_kw, current_a{L1..}, building_kw, sessions, dr_active, ev_limit_kw
    base/charger/<id>/state           JSON: status, power_kw, current_a, energy_kwh, session, limit_a, enabled
    base/site/limit_kw/set            number (kW) or "none" to clear          → CommandSink.set_site_limit_kw
    base/charger/<id>/limit_a/set     0, or 6…max A, or "none" to clear     → CommandSink.set_charger_limit_a
    base/charger/<id>/enable/set      ON | OFF                               → CommandSink.set_charger_enabled

Every command payload is validated; a bad one is logged and ignored and never stops the bridge.
Discovery configs (retained) go to `<discovery_prefix>/<component>/<node>/<object>/config` on connect
and again whenever Home Assistant announces itself on `<discovery_prefix>/status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import re
import ssl
from typing import Any

import aiomqtt

from evsite import __version__
from evsite.bms.state import ChargerState, CommandSink, SiteState, StateSource
from evsite.errors import InputError
from evsite.site.model import MqttIntegration, Site
from evsite.site.topology import J1772_MIN_A, power_kw

log = logging.getLogger(__name__)

MAX_PAYLOAD = 64
TEMPLATES = {
    "binary_sensor": "{{{{ 'ON' if value_json.{f} else 'OFF' }}}}",
    "switch": "{{{{ 'ON' if value_json.{f} else 'OFF' }}}}",
}


class CommandError(InputError):
    """A command payload that does not pass validation."""


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-") or "site"


def parse_number(payload: bytes, low: float, high: float) -> float | None:
    """A finite number within [low, high]; `none`/empty clears (returns None)."""
    if len(payload) > MAX_PAYLOAD:
        raise CommandError("payload too long")
    text = payload.decode("utf-8", "strict").strip()
    if text.lower() in ("", "none", "null"):
        return None
    value = float(text)  # ValueError for non-numbers
    if not math.isfinite(value) or not low <= value <= high:
        raise CommandError(f"{value:g} outside {low:g}…{high:g}")
    return value


def parse_switch(payload: bytes) -> bool:
    text = payload.decode("utf-8", "strict").strip().upper()
    if text in ("ON", "TRUE", "1"):
        return True
    if text in ("OFF", "FALSE", "0"):
        return False
    raise CommandError(f"expected ON or OFF, got {text[:20]!r}")


class MqttBridge:
    def __init__(
        self,
        site: Site,
        settings: MqttIntegration,
        state: StateSource,
        commands: CommandSink,
        *,
        site_id: str | None = None,
        reconnect_s: float = 5.0,
    ) -> None:
        self.site = site
        self.settings = settings
        self.state = state
        self.commands = commands
        self.site_id = slug(site_id or site.name)
        self.base = f"{settings.topic_prefix}/{self.site_id}"
        self.reconnect_s = reconnect_s
        self.max_site_kw = power_kw(site.service.system, site.service.limit_a)
        self.rejected = 0
        self.client: aiomqtt.Client | None = None
        self.ready = asyncio.Event()  # set while connected and subscribed to the command topics

    # ------------------------------------------------------------------ topics and payloads

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    def _device(self, charger: ChargerState | None = None) -> dict[str, Any]:
        site_id = f"evsite_{self.site_id}"
        if charger is None:
            return {
                "identifiers": [site_id],
                "name": self.site.name,
                "manufacturer": "evsite",
                "model": "Site controller",
                "sw_version": __version__,
            }
        evse = next((e for e in self.site.evse if e.id == charger.id), None)
        return {
            "identifiers": [f"{site_id}_{slug(charger.id)}"],
            "name": f"Charger {charger.id}",
            "manufacturer": (evse.make if evse and evse.make else "evsite"),
            "model": (evse.model if evse and evse.model else "EVSE"),
            "via_device": site_id,
        }

    def discovery(self, state: SiteState) -> dict[str, dict[str, Any]]:
        """Topic → config payload for every entity (site first, then each charger)."""
        node = f"evsite_{self.site_id}"
        out: dict[str, dict[str, Any]] = {}

        def add(component: str, obj: str, device: dict[str, Any], topic: str, field: str, **cfg: Any) -> None:
            out[f"{self.settings.discovery_prefix}/{component}/{node}/{obj}/config"] = {
                "unique_id": f"{node}_{obj}",
                "device": device,
                "availability_topic": self.availability,
                "payload_available": "online",
                "payload_not_available": "offline",
                "state_topic": topic,
                "value_template": TEMPLATES.get(component, "{{{{ value_json.{f} }}}}").format(f=field),
                **cfg,
            }

        power = {"unit_of_measurement": "kW", "device_class": "power", "state_class": "measurement"}
        amps = {"unit_of_measurement": "A", "device_class": "current", "state_class": "measurement"}
        dev, topic = self._device(), f"{self.base}/site/state"
        add("sensor", "ev_power", dev, topic, "ev_power_kw", name="EV power", **power)
        add("sensor", "building_power", dev, topic, "building_kw", name="Building power", **power)
        for line in self.site.service.system.lines:
            add("sensor", f"current_{line.lower()}", dev, topic, f"current_a.{line}", name=f"Current {line}", **amps)
        add("sensor", "sessions", dev, topic, "sessions", name="Active sessions", state_class="measurement")
        add("binary_sensor", "dr_active", dev, topic, "dr_active", name="Demand response active")
        max_kw = round(self.max_site_kw, 1)
        add("number", "ev_limit", dev, topic, "ev_limit_kw", name="EV power limit", min=0, max=max_kw, step=0.1,
            unit_of_measurement="kW", mode="box", command_topic=f"{self.base}/site/limit_kw/set")  # fmt: skip
        out[f"{self.settings.discovery_prefix}/number/{node}/ev_limit/config"]["value_template"] = (
            f"{{{{ value_json.ev_limit_kw if value_json.ev_limit_kw is not none else {max_kw} }}}}"
        )
        for charger in state.chargers:
            cid, dev = slug(charger.id), self._device(charger)
            topic = f"{self.base}/charger/{charger.id}/state"
            commands = f"{self.base}/charger/{charger.id}"
            add("sensor", f"{cid}_power", dev, topic, "power_kw", name="Power", **power)
            add("sensor", f"{cid}_current", dev, topic, "current_a", name="Current", **amps)
            add("sensor", f"{cid}_energy", dev, topic, "energy_kwh", name="Energy", unit_of_measurement="kWh",
                device_class="energy", state_class="total_increasing")  # fmt: skip
            add("sensor", f"{cid}_status", dev, topic, "status", name="Status")
            add("binary_sensor", f"{cid}_session", dev, topic, "session", name="Charging session")
            add("number", f"{cid}_limit", dev, topic, "limit_a", name="Current limit", min=0,
                max=charger.max_current_a, step=1, unit_of_measurement="A", mode="slider",
                command_topic=f"{commands}/limit_a/set")  # fmt: skip
            add("switch", f"{cid}_allow", dev, topic, "enabled", name="Allow charging", payload_on="ON",
                payload_off="OFF", command_topic=f"{commands}/enable/set")  # fmt: skip
        return out

    @staticmethod
    def site_payload(state: SiteState) -> dict[str, Any]:
        return {
            "ev_power_kw": round(state.ev_power_w / 1000, 3),
            "current_a": {k: round(v, 2) for k, v in state.current_a.items()},
            "building_kw": None if state.building_power_w is None else round(state.building_power_w / 1000, 3),
            "sessions": state.sessions,
            "dr_active": state.dr_active,
            "ev_limit_kw": None if state.ev_limit_kw is None else round(state.ev_limit_kw, 2),
        }

    @staticmethod
    def charger_payload(charger: ChargerState) -> dict[str, Any]:
        return {
            "status": charger.status,
            "power_kw": round(charger.power_w / 1000, 3),
            "current_a": round(charger.current_a, 2),
            "energy_kwh": None if charger.energy_wh is None else round(charger.energy_wh / 1000, 3),
            "session": charger.session_active,
            "limit_a": charger.max_current_a if charger.limit_a is None else charger.limit_a,  # nameplate if uncapped
            "enabled": charger.enabled,
        }

    # ------------------------------------------------------------------ commands

    def handle(self, topic: str, payload: bytes) -> bool:
        """Apply one command; False (logged) when the topic or payload is invalid."""
        try:
            self._dispatch(topic, payload)
            return True
        except (CommandError, ValueError, UnicodeDecodeError, KeyError) as exc:
            self.rejected += 1
            log.warning("MQTT command on %s ignored: %s (payload %r)", topic, exc, payload[:40])
            return False

    def _dispatch(self, topic: str, payload: bytes) -> None:
        rest = topic.removeprefix(self.base + "/")
        if rest == "site/limit_kw/set":
            self.commands.set_site_limit_kw(parse_number(payload, 0.0, self.max_site_kw), "mqtt")
            return
        parts = rest.split("/")
        if len(parts) != 4 or parts[0] != "charger" or parts[3] != "set":
            raise CommandError("unknown command topic")
        charger = next((c for c in self.state().chargers if c.id == parts[1]), None)
        if charger is None:
            raise CommandError(f"unknown charger {parts[1]!r}")
        if parts[2] == "limit_a":
            amps = parse_number(payload, 0.0, charger.max_current_a)
            if amps is not None and 0 < amps < J1772_MIN_A:
                raise CommandError(f"{amps:g} A is below the J1772 minimum of 6 A (use 0 to pause)")
            self.commands.set_charger_limit_a(charger.id, amps, "mqtt")
        elif parts[2] == "enable":
            self.commands.set_charger_enabled(charger.id, parse_switch(payload), "mqtt")
        else:
            raise CommandError("unknown command topic")

    # ------------------------------------------------------------------ session

    def _client(self) -> aiomqtt.Client:
        s = self.settings
        password = os.environ.get(s.password_env) if s.password_env else None
        return aiomqtt.Client(
            s.host,
            s.port,
            identifier=f"evsite-{self.site_id}-{os.getpid()}",
            username=s.username,
            password=password,
            tls_context=ssl.create_default_context() if s.tls else None,
            will=aiomqtt.Will(self.availability, b"offline", qos=1, retain=True),
            keepalive=30,
            timeout=5.0,
        )

    async def publish_discovery(self, client: aiomqtt.Client) -> None:
        for topic, config in self.discovery(self.state()).items():
            await client.publish(topic, json.dumps(config), qos=1, retain=True)

    async def publish_state(self, client: aiomqtt.Client) -> None:
        state = self.state()
        await client.publish(f"{self.base}/site/state", json.dumps(self.site_payload(state)), qos=0, retain=True)
        for charger in state.chargers:
            payload = json.dumps(self.charger_payload(charger))
            await client.publish(f"{self.base}/charger/{charger.id}/state", payload, qos=0, retain=True)

    async def _publisher(self, client: aiomqtt.Client) -> None:
        while True:
            await self.publish_state(client)
            await asyncio.sleep(self.settings.publish_interval_s)

    async def session(self) -> None:
        """One connection: announce, subscribe, serve commands until the connection drops."""
        async with self._client() as client:
            self.client = client
            await client.publish(self.availability, b"online", qos=1, retain=True)
            await self.publish_discovery(client)
            await client.subscribe(f"{self.base}/site/+/set", qos=1)
            await client.subscribe(f"{self.base}/charger/+/+/set", qos=1)
            await client.subscribe(f"{self.settings.discovery_prefix}/status", qos=1)
            publisher = asyncio.create_task(self._publisher(client))
            self.ready.set()
            try:
                async for message in client.messages:
                    topic, payload = message.topic.value, message.payload
                    data = payload if isinstance(payload, bytes) else str(payload).encode()
                    if topic == f"{self.settings.discovery_prefix}/status":
                        if data.strip() == b"online":  # Home Assistant restarted: announce again
                            await self.publish_discovery(client)
                        continue
                    if self.handle(topic, data):
                        await self.publish_state(client)
            finally:
                self.ready.clear()
                publisher.cancel()
                await asyncio.gather(publisher, return_exceptions=True)
                if not publisher.cancelled() and publisher.exception() is not None:
                    log.warning("MQTT publisher failed: %s", publisher.exception())
                with contextlib.suppress(aiomqtt.MqttError, TimeoutError):  # the broker may be gone already
                    await asyncio.wait_for(client.publish(self.availability, b"offline", qos=1, retain=True), 1.0)
                self.client = None

    async def run(self) -> None:
        """Stay connected until cancelled, reconnecting after broker outages."""
        while True:
            try:
                await self.session()
            except aiomqtt.MqttError as exc:
                log.warning("MQTT connection to %s:%s lost: %s", self.settings.host, self.settings.port, exc)
            await asyncio.sleep(self.reconnect_s)
