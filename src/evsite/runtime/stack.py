"""The whole site controller in one asyncio process: what `evsite serve` runs and `evsite demo` wraps.

Order matters for safety: the store opens first (nothing is acknowledged before it can be stored),
then the OCPP server (it installs fail-safe profiles as chargers boot), then the load manager, then
the API and the grid/building integrations. Shutdown runs in reverse, so the chargers are the last
to lose their controller and fall back to their fail-safe caps.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from evsite.runtime.events import EventBus
from evsite.site import topology
from evsite.site.model import Site

if TYPE_CHECKING:
    from fastapi import FastAPI

    from evsite.api.live import LiveState
    from evsite.api.runtime import DrEvent as ApiDrEvent
    from evsite.api.runtime import SiteRuntime
    from evsite.cluster import ClusterSettings, Election, Gateway
    from evsite.control.loop import ControlLoop
    from evsite.grid.openadr import Ven
    from evsite.ocpp.server import CentralSystem, ServerSettings
    from evsite.store.ocpp import OcppStore

log = logging.getLogger(__name__)


@dataclass
class StackOptions:
    """What to run. `api_port=None` runs without the API; `integrations=False` skips Modbus/OpenADR/BMS."""

    site: Site
    db_url: str
    ocpp: ServerSettings
    api_host: str = "127.0.0.1"
    api_port: int | None = 8000
    api_max_body_bytes: int = 1 << 20
    """Largest API request body; larger ones get 413 before they are read (evsite.api.guard)."""
    policy: str | None = None
    integrations: bool = True
    sqlite_synchronous: str = "FULL"
    id_tags: list[dict[str, Any]] = field(default_factory=list)
    """Extra id tags to register before the first charger connects (the demo's simulated drivers)."""
    cluster: ClusterSettings | None = None
    """Join a cluster over NATS (#16): this node's load manager runs only while it leads the site."""


@dataclass
class RunningSite:
    """Handles on the running parts, for the CLI, the demo and tests."""

    options: StackOptions
    bus: EventBus
    store: OcppStore
    central: CentralSystem
    control: ControlLoop
    runtime: SiteRuntime
    app: FastAPI | None = None
    ven: Ven | None = None
    gateway: Gateway | None = None
    election: Election | None = None

    @property
    def api_url(self) -> str | None:
        if self.options.api_port is None:
            return None
        return f"http://{self.options.api_host}:{self.options.api_port}"

    @property
    def live(self) -> LiveState | None:
        return None if self.app is None else self.app.state.live


class EmbeddedApiServer:
    """uvicorn serving in the caller's event loop, without taking over Ctrl-C (the caller owns it)."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        # The only WebSocket here is the live stream, which sends; a client never needs big frames (default 16 MiB).
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on", ws_max_size=1 << 16)
        self.server = Server(config)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind first, here, so a port in use is one `OSError` naming the address (uvicorn would log and exit)."""
        config = self.server.config
        try:
            sock = socket.create_server((config.host, config.port))
        except OSError as exc:
            in_use = exc.errno == errno.EADDRINUSE
            reason = "is in use (choose another with --api-port)" if in_use else "cannot be bound"
            raise OSError(exc.errno, f"the API and dashboard address {config.host}:{config.port} {reason}") from None
        self.task = asyncio.create_task(self.server.serve(sockets=[sock]), name="api-server")
        async with asyncio.timeout(15):
            while not self.server.started:
                if self.task.done():
                    self.task.result()
                    raise RuntimeError("the API server stopped during start-up (is the port in use?)")
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self.task, 10)


class VenDemandResponse:
    """The API's `DemandResponse` view of the OpenADR VEN (events list, operator opt-out)."""

    def __init__(self, ven: Ven) -> None:
        self.ven = ven

    def events(self) -> list[ApiDrEvent]:
        from evsite.api.runtime import DrEvent as ApiDrEvent

        now = datetime.now(UTC)
        out = []
        for e in self.ven.events.values():
            if e.cancelled:
                status = "cancelled"
            elif now >= e.effective_end + e.recovery:
                status = "completed"
            elif now >= e.effective_start - e.ramp_up:
                status = "active"
            else:
                status = "near" if (e.effective_start - now).total_seconds() < 3600 else "far"
            cap = self.ven.mapper.cap_at(e, max(now, e.effective_start))
            payload = e.payload_at(max(now, e.effective_start))
            signal = e.signal_name if payload is None else f"{e.signal_name} {payload:g}"
            limit = None if cap is None else round(topology.line_current_a(self.ven.site.service.system, cap), 1)
            out.append(ApiDrEvent(e.event_id, e.effective_start, e.effective_end, status, e.opt, signal, limit))
        return out

    async def set_opt(self, event_id: str, opt: Literal["optIn", "optOut"]) -> bool:
        if event_id not in self.ven.events:
            return False
        if opt == "optOut":
            await self.ven.opt_out(event_id)
        else:
            self.ven.overrides[event_id] = "optIn"
            self.ven.events[event_id].opt = "optIn"
            self.ven.tick()
        return True


def _attach_reports(runtime: SiteRuntime, store: OcppStore) -> None:
    """Design-check report, one-line diagram and billing statements for the API."""
    from evsite.code.check import check_site
    from evsite.code.oneline import render_svg
    from evsite.code.report import render_html, render_json
    from evsite.metering.repository import bill_month

    def design_report(site: Site, fmt: Literal["json", "html"]) -> str:
        report = check_site(site)
        return render_html(report, render_svg(site)) if fmt == "html" else render_json(report)

    async def statements(site: Site, month: str) -> Any:
        result = await bill_month(store.engine, site, month)
        return result.run.to_dict()

    runtime.design_report = design_report
    runtime.oneline_svg = render_svg
    runtime.statements = statements


@contextlib.asynccontextmanager
async def running_site(options: StackOptions) -> AsyncIterator[RunningSite]:
    """Start the controller's parts in a safe order, yield them, and stop them in reverse order."""
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from evsite.api.adapters import ControlLoopPlanner, ControlLoopState, OcppActions
    from evsite.api.runtime import SiteRuntime
    from evsite.control.loop import ControlLoop
    from evsite.ocpp.server import CentralSystem
    from evsite.store.ocpp import OcppStore

    site = options.site
    bus = EventBus()
    parts: dict[str, bool] = {}
    async with contextlib.AsyncExitStack() as stack:
        store = await OcppStore.open(options.db_url, synchronous=options.sqlite_synchronous)
        stack.push_async_callback(store.close)
        if options.id_tags:
            await store.upsert_id_tags(options.id_tags)
        central = CentralSystem(store, site, bus=bus, settings=options.ocpp)
        gateway = None
        if options.cluster is not None:
            gateway = await _join_cluster(stack, options.cluster, central, bus, parts)
        await central.start()
        stack.push_async_callback(central.stop)
        parts["ocpp"] = True

        control = ControlLoop(site, bus, central, options.policy)
        if gateway is None:
            await control.start()
            stack.push_async_callback(control.stop)
            parts["control"] = True

        state, planner = ControlLoopState(control), ControlLoopPlanner(control)
        runtime = SiteRuntime(
            site=site,
            bus=bus,
            commands=central,
            actions=OcppActions(central),
            db=async_sessionmaker(store.engine, expire_on_commit=False),
            control=state,
            planner=planner,
            parts=parts,
        )
        _attach_reports(runtime, store)
        running = RunningSite(options, bus, store, central, control, runtime, gateway=gateway)
        if gateway is not None:
            if gateway.node.settings.lead:
                running.election = await _elect(stack, running, state, planner)
            runtime.cluster_status = lambda: _cluster_status(running)
            runtime.cluster_metrics = lambda: _cluster_metrics(running)

        if options.api_port is not None:
            from evsite.api.app import create_app

            running.app = create_app(runtime, max_body_bytes=options.api_max_body_bytes)
            server = EmbeddedApiServer(running.app, options.api_host, options.api_port)
            await server.start()
            stack.push_async_callback(server.stop)
            parts["api"] = True

        if options.integrations:
            await _start_integrations(stack, running)
        yield running


# ---------------------------------------------------------------------- cluster (#16)


async def _join_cluster(
    stack: contextlib.AsyncExitStack, settings: ClusterSettings, central: CentralSystem, bus: EventBus, parts: dict
) -> Gateway:
    """Connect to NATS and start the gateway role before the OCPP server takes its first charger."""
    from evsite.cluster import ClusterNode, Gateway

    node = ClusterNode(settings)
    node.info = {"sites": [central.site.name] if central.site else [], "ocpp_port": central.settings.port}
    await node.start()
    stack.push_async_callback(node.stop)
    gateway = Gateway(node, central.site.name if central.site else "", central, bus)
    await gateway.start()
    stack.push_async_callback(gateway.stop)
    central.observer = gateway
    parts["cluster"] = True
    return gateway


async def _elect(stack: contextlib.AsyncExitStack, running: RunningSite, state: Any, planner: Any) -> Election:
    """Stand for the site's leadership; each term runs a fresh load manager on the site's cluster-wide events.

    Fresh, because what an earlier term knew (setpoints sent, ceilings) may have been changed since by another
    leader; a new controller starts from the conservative unknowns and re-dispatches every charger it hears from.
    """
    from evsite.cluster import Election
    from evsite.control.loop import ControlLoop

    assert running.gateway is not None
    options = running.options

    @contextlib.asynccontextmanager
    async def lead(commands: Any, site_bus: EventBus) -> AsyncIterator[None]:
        loop = ControlLoop(options.site, site_bus, commands, options.policy)
        await loop.start()
        running.control = state.loop = planner.loop = loop
        running.runtime.parts["control"] = True
        try:
            yield
        finally:
            running.runtime.parts["control"] = False
            await loop.stop()

    election = Election(running.gateway.node, options.site.name, lead)
    await election.start()
    stack.push_async_callback(election.stop)
    return election


def _cluster_metrics(running: RunningSite) -> dict[str, float]:
    gateway, election = running.gateway, running.election
    assert gateway is not None
    return {
        "leader": float(election is not None and election.holds()),
        "epoch": float(gateway.epoch),
        "chargers_held": float(len(gateway.claims)),
        "stale_refused": float(gateway.refused),
    }


async def _cluster_status(running: RunningSite) -> dict[str, Any]:
    from evsite.cluster.status import cluster_status

    assert running.gateway is not None
    node = running.gateway.node
    status = await cluster_status(node.client, node.names.namespace)
    status["node_id"] = node.node_id
    return status


async def _start_integrations(stack: contextlib.AsyncExitStack, running: RunningSite) -> None:
    """Modbus meters/PV, the OpenADR VEN and the building bridges the site configures, as one task."""
    from evsite.bms.state import BusCommands
    from evsite.grid.integrations import run_integrations

    site, runtime = running.options.site, running.runtime
    from evsite.optional import available

    ven = None
    dr = site.demand_response
    if dr is not None and (dr.version != "2.0b" or available("openleadr")):
        from evsite.grid.integrations import make_ven

        ven = make_ven(
            site, running.bus, ev_power_w=lambda: _ev_power_w(running), non_ev_kw=lambda: _non_ev_kw(running)
        )
        # openleadr logs every poll and report at INFO; keep its chatter out of an operator's console.
        logging.getLogger("openleadr").setLevel(max(logging.WARNING, logging.getLogger().getEffectiveLevel()))
        running.ven = ven
        runtime.demand_response = VenDemandResponse(ven)
    task = asyncio.create_task(
        run_integrations(
            site,
            running.bus,
            state=lambda: _bms_state(running),
            commands=BusCommands(site, running.bus),
            ev_current=running.control.ev_current_a,
            ven=ven,
        ),
        name="integrations",
    )

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    stack.push_async_callback(stop)
    for name in ("modbus", "openadr", "mqtt", "bacnet"):
        configured = {
            "modbus": any(m.modbus for m in site.meters) or any(i.modbus for i in site.inverters),
            "openadr": site.demand_response is not None,
            "mqtt": site.integrations.mqtt is not None,
            "bacnet": site.integrations.bacnet is not None,
        }[name]
        if configured:
            runtime.parts[name] = {"openadr": ven is not None, "bacnet": available("bacpypes3")}.get(name, True)


def _ev_power_w(running: RunningSite) -> float | None:
    """The EV load the VEN reports to the utility: the sum of the chargers' last power samples."""
    live = running.live
    if live is None:
        return None
    return sum(c.power_w or 0.0 for c in live.connectors.values())


def _non_ev_kw(running: RunningSite) -> float:
    """The site's non-EV load for an OpenADR 3 import limit, as the load manager sees it (live readings while
    fresh, else each meter's recorded maximum or design peak), summed over meters and taken on the worst line."""

    limits, now = running.control.limits, datetime.now(UTC)
    worst = sum(max(limits.building_current(n, now)) for n in set(limits.building) | set(limits.building_max))
    return float(worst) * topology.power_kw(running.options.site.service.system, 1.0)


def _bms_state(running: RunningSite) -> Any:
    """What the BACnet and MQTT bridges publish, from the live state and the load manager."""
    from evsite.bms.state import ChargerState, SiteState

    live = running.live
    control = running.control.snapshot()
    setpoints = {(c["charge_point_id"], c["connector_id"]): c["setpoint_a"] for c in control["connectors"]}
    service = next((n for n in control["nodes"] if n["kind"] == "service"), None)
    site_current = {line: v["measured_a"] for line, v in service["lines"].items()} if service else {}
    chargers = []
    for evse in running.options.site.evse:
        keys = [(evse.id, c.id) for c in evse.connectors]
        conns = [live.connectors.get(k) for k in keys] if live else []
        online = bool(live and live.connected.get(evse.id))
        status = next((c.status for c in conns if c and c.status), None) if online else "Unavailable"
        chargers.append(
            ChargerState(
                id=evse.id,
                status=status or "Unknown",
                power_w=sum((c.power_w or 0.0) for c in conns if c),
                current_a=max((max(c.current_a.values(), default=0.0) for c in conns if c), default=0.0),
                energy_wh=max((c.energy_wh for c in conns if c and c.energy_wh is not None), default=None),
                session_active=any(c and c.transaction_id is not None for c in conns),
                limit_a=max((setpoints.get(k, 0.0) for k in keys), default=None),
                max_current_a=evse.max_current_a,
            )
        )
    dr = running.ven.cap_kw(datetime.now(UTC))[0] if running.ven else None
    return SiteState(
        ev_power_w=_ev_power_w(running) or 0.0,
        current_a=site_current,
        sessions=sum(1 for c in chargers if c.session_active),
        dr_active=dr is not None,
        ev_limit_kw=dr,
        chargers=tuple(chargers),
    )
