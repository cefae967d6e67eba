"""`evsite demo`: the whole site on one machine, in one asyncio process.

`evsite serve`'s stack (`evsite.runtime.stack`: OCPP central system, load manager, API and
dashboard, Modbus/OpenADR integrations) on a SQLite database in a temporary directory, with
simulated peers on loopback: chargers and EVs over real OCPP, the building meter and PV inverter
over Modbus TCP, and a utility VTN over OpenADR 2.0b that calls a curtailment mid-run. A simulated
peer that cannot start is named in the summary instead of stopping the demo.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from evsite.api.live import LiveState
from evsite.api.runtime import SiteRuntime
from evsite.optional import MissingExtra
from evsite.runtime.events import EventBus, SiteSignal
from evsite.runtime.stack import RunningSite, StackOptions, running_site
from evsite.site.model import DemandResponse, ModbusEndpoint, OpenAdr3, Site
from evsite.site.topology import ROOT

log = logging.getLogger(__name__)

DAY_IN_TEN_MINUTES = 24 * 3600 / 600
"""Default simulation speed: a workday passes in about ten minutes."""


@dataclass
class DemoOptions:
    site: Site
    speed: float = DAY_IN_TEN_MINUTES
    duration_s: float | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    ocpp_port: int = 9000
    modbus_port: int | None = None
    """Port of the simulated meters/inverter (default: the one in the site file)."""
    vtn_port: int | None = None
    """Port of the simulated utility VTN (default: the one in the site file's `demand_response.vtn_url`)."""
    openadr: str | None = None
    """OpenADR version of the utility and the VEN: 2.0b, 3.0.1 or 3.1.0 (default: the site file's)."""
    dr_after_s: float = 30.0
    """The VTN calls its curtailment this many (real) seconds after start."""
    dr_duration_s: float = 180.0
    seed: int | None = 1


@dataclass
class DemoSummary:
    ran_s: float
    parts: dict[str, bool]
    notes: list[str]
    sessions: int
    energy_kwh: float
    limit_node: str
    limit_a: float
    peak_a: float
    longest_excursion_s: float
    dr: str


@dataclass
class DrWatch:
    """When the utility's cap arrived, and when the measured EV load was first inside it (DR compliance)."""

    cap_a: float | None = None
    signalled_at: float | None = None
    complied_after_s: float | None = None
    peak_during_a: float = 0.0
    ended: bool = False

    def observe(self, signal: SiteSignal) -> None:
        if signal.kind != "dr_limit":
            return
        if signal.current_a:
            cap = min(signal.current_a.values())
            if self.cap_a is None or cap < self.cap_a:
                self.cap_a, self.signalled_at, self.complied_after_s = cap, time.monotonic(), None
        elif self.cap_a is not None:
            self.ended = True

    def check(self, ev_line_currents: list[float]) -> None:
        if self.cap_a is None or self.signalled_at is None or self.ended:
            return
        worst = max(ev_line_currents, default=0.0)
        self.peak_during_a = max(self.peak_during_a, worst)
        if self.complied_after_s is None and worst <= self.cap_a + 0.5:
            self.complied_after_s = time.monotonic() - self.signalled_at

    def text(self) -> str:
        if self.cap_a is None:
            return "no event received yet"
        state = "ended" if self.ended else "active"
        complied = "not yet" if self.complied_after_s is None else f"within {self.complied_after_s:.1f} s"
        return f"cap {self.cap_a:g} A per line ({state}); EV load inside the cap {complied}"


@dataclass
class Demo:
    """The running demo: its URL, admin token and the live state the summary reads."""

    options: DemoOptions
    url: str = ""
    token: str = ""
    runtime: SiteRuntime | None = None
    live: LiveState | None = None
    running: RunningSite | None = None
    dr: DrWatch = field(default_factory=DrWatch)
    notes: list[str] = field(default_factory=list)
    started_at: float = field(default_factory=time.monotonic)

    @property
    def dashboard_url(self) -> str:
        return f"{self.url}/dashboard/#token={self.token}"

    def binding_node(self) -> str:
        """The shared node with the lowest design limit: the one all the EVs compete for."""
        assert self.running is not None
        tree = self.running.control.controller.tree
        shared = [n for n, kind in enumerate(tree.kinds) if kind not in ("circuit", "evse", "connector")]
        return tree.node_ids[min(shared, key=lambda n: float(tree.limits[n].min()))]

    def ev_line_currents(self) -> list[float]:
        """Measured EV current per line at the service (what a DR cap limits)."""
        assert self.runtime is not None and self.runtime.control is not None
        return [r.measured_a for r in self.runtime.control.node_lines() if r.node == ROOT]

    def summary(self) -> DemoSummary:
        assert self.runtime is not None and self.live is not None
        live = self.live
        binding = self.binding_node()
        rows = live.node_lines()
        limit = min((r.limit_a for r in rows if r.node == binding), default=0.0)
        peak = max((v for k, v in live.peak.items() if k.startswith(f"{binding}:")), default=0.0)
        energy = 0.0
        for record in live.sessions.values():
            if record.energy_wh is not None:
                energy += record.energy_wh
            else:
                connector = live.connectors.get((record.charge_point_id, record.connector_id))
                energy += (connector.session_wh or 0.0) if connector else 0.0
        if self.runtime.parts.get("openadr"):
            dr = self.dr.text()
        elif self.options.site.demand_response is not None:
            dr = "not run (the site has a program; OpenADR needs the 'grid' extra)"
        else:
            dr = "no demand-response program in this site"
        return DemoSummary(
            ran_s=round(time.monotonic() - self.started_at, 1),
            parts=dict(self.runtime.parts),
            notes=list(self.notes),
            sessions=len(live.sessions),
            energy_kwh=round(energy / 1000, 2),
            limit_node=binding,
            limit_a=limit,
            peak_a=round(peak, 1),
            longest_excursion_s=round(live.longest_excursion_s, 1),
            dr=dr,
        )


def demo_site(options: DemoOptions) -> Site:
    """The site with the simulators' ports, when the caller moved them (tests run demos side by side)."""
    site = options.site
    if options.modbus_port is not None:

        def moved(endpoint: ModbusEndpoint | None) -> ModbusEndpoint | None:
            return None if endpoint is None else endpoint.model_copy(update={"port": options.modbus_port})

        site = site.model_copy(
            update={
                "meters": [m.model_copy(update={"modbus": moved(m.modbus)}) for m in site.meters],
                "inverters": [i.model_copy(update={"modbus": moved(i.modbus)}) for i in site.inverters],
            }
        )
    if options.vtn_port is not None and site.demand_response is not None:
        url = urlsplit(site.demand_response.vtn_url)
        vtn_url = urlunsplit(url._replace(netloc=f"{url.hostname}:{options.vtn_port}"))
        site = site.model_copy(update={"demand_response": site.demand_response.model_copy(update={"vtn_url": vtn_url})})
    if options.openadr is not None and site.demand_response is not None:
        site = site.model_copy(update={"demand_response": _with_openadr(site.demand_response, options.openadr)})
    return site


def _with_openadr(dr: DemandResponse, version: str) -> DemandResponse:
    """The site's DR section speaking `version` to the simulated VTN on the same host and port."""
    url = urlsplit(dr.vtn_url)
    path = "/OpenADR2/Simple/2.0b" if version == "2.0b" else f"/openadr3/{version}"
    update: dict[str, Any] = {"version": version, "vtn_url": urlunsplit(url._replace(path=path))}
    if version != "2.0b" and dr.openadr3 is None:
        update["openadr3"] = OpenAdr3(client_id=dr.ven_name, report_interval_s=10.0)
    return DemandResponse.model_validate({**dr.model_dump(), **update})


@contextlib.asynccontextmanager
async def running_demo(options: DemoOptions, workdir: Path | None = None) -> AsyncIterator[Demo]:
    """Start the simulated peers and the full controller, yield the running demo, stop in reverse order."""
    from evsite.api.tokens import Role, TokenStore
    from evsite.ocpp.server import ServerSettings

    site = demo_site(options)
    options = dataclasses.replace(options, site=site)
    demo = Demo(options)
    async with contextlib.AsyncExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="evsite-demo-")))
        sim_parts: dict[str, bool] = {}
        modbus_sim = await _start_optional(stack, sim_parts, demo.notes, "modbus-sim", _modbus_sim(options))
        vtn = await _start_optional(stack, sim_parts, demo.notes, "vtn-sim", _vtn_sim(site))
        # The simulated drivers' cards (the fleet numbers them TAG-00001, ...) are known to the site.
        tags = [
            {"id_tag": f"TAG-{n:05d}", "status": "Accepted", "expiry_date": None, "parent_id_tag": None}
            for n in range(1, 2001)
        ]
        stack_options = StackOptions(
            site=site,
            db_url=f"sqlite+aiosqlite:///{workdir / 'demo.db'}",
            ocpp=ServerSettings.from_site(site, port=options.ocpp_port, time_scale=options.speed),
            api_host=options.api_host,
            api_port=options.api_port,
            sqlite_synchronous="NORMAL",
            id_tags=tags,
        )
        running = await stack.enter_async_context(running_site(stack_options))
        demo.running, demo.runtime, demo.live = running, running.runtime, running.live
        running.runtime.parts.update(sim_parts)
        demo.url = running.api_url or ""
        assert running.runtime.db is not None
        demo.token = await TokenStore(running.runtime.db).create(f"demo-admin-{int(time.time())}", Role.ADMIN)
        watch = asyncio.create_task(_watch_signals(running.bus, demo.dr), name="demo-dr-watch")
        stack.push_async_callback(_cancel, watch)
        if isinstance(modbus_sim, ModbusSimHandle):
            feed = asyncio.create_task(_feed_ev_power(modbus_sim, running), name="demo-ev-power")
            stack.push_async_callback(_cancel, feed)
        await _start_optional(stack, running.runtime.parts, demo.notes, "simulator", _fleet(options))
        if isinstance(vtn, VtnHandle) and site.demand_response is not None and site.demand_response.version != "2.0b":
            start = datetime.now(UTC) + timedelta(seconds=options.dr_after_s)
            program = vtn.sim.add_program("evsite-demo")
            vtn.sim.add_event(
                program, start=start, intervals=[(timedelta(seconds=options.dr_duration_s), {"SIMPLE": 2})]
            )
            demo.notes.append(
                f"the utility (simulated OpenADR {site.demand_response.version} VTN) calls a SIMPLE level-2 event "
                f"at {start:%H:%M:%S} UTC for {options.dr_duration_s:g} s"
            )
        elif isinstance(vtn, VtnHandle) and site.demand_response is not None:
            start = datetime.now(UTC) + timedelta(seconds=options.dr_after_s)
            ven_id = site.demand_response.ven_id or site.demand_response.ven_name
            vtn.sim.add_event(
                ven_id,
                start=start,
                intervals=[(timedelta(seconds=options.dr_duration_s), 2.0)],
                ramp_up=timedelta(seconds=5),
                recovery=timedelta(seconds=5),
            )
            demo.notes.append(
                f"the utility (simulated VTN) calls a SIMPLE level-2 curtailment at {start:%H:%M:%S} UTC "
                f"for {options.dr_duration_s:g} s"
            )
        demo.started_at = time.monotonic()
        yield demo


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def _watch_signals(bus: EventBus, dr: DrWatch) -> None:
    async with bus.subscribe() as queue:
        while True:
            event = await queue.get()
            if isinstance(event, SiteSignal):
                dr.observe(event)


async def _feed_ev_power(handle: ModbusSimHandle, running: RunningSite) -> None:
    """The simulated site meter sees the EVs' real draw, as a real meter at the service would."""
    while True:
        live = running.live
        if live is not None:
            handle.sim.state.ev_power_w = sum(c.power_w or 0.0 for c in live.connectors.values())
        await asyncio.sleep(1.0)


async def _start_optional(
    stack: contextlib.AsyncExitStack,
    parts: dict[str, bool],
    notes: list[str],
    name: str,
    starter: Awaitable[Any],
) -> Any:
    """Start a simulated peer; one that fails to start is named in the summary instead of stopping the demo."""
    try:
        handle = await starter
    except Exception as exc:
        parts[name] = False
        notes.append(f"{name} did not start: {exc if isinstance(exc, MissingExtra) else repr(exc)}")
        return None
    parts[name] = handle is not None
    if handle is not None:
        stack.push_async_callback(handle.stop)
    return handle


@dataclass
class ModbusSimHandle:
    sim: Any

    async def stop(self) -> None:
        await self.sim.stop()


@dataclass
class VtnHandle:
    sim: Any

    async def stop(self) -> None:
        await self.sim.stop()


@dataclass
class FleetHandle:
    fleet: Any

    async def stop(self) -> None:
        await self.fleet.stop()


def office_load_w(peak_w: float) -> Callable[[float], float]:
    """A working day's building load: a fifth of the peak at night, the peak early in the afternoon."""

    def load(hour: float) -> float:
        return peak_w * (0.2 + 0.8 * math.exp(-(((hour - 13.0) / 3.5) ** 2)))

    return load


async def _modbus_sim(options: DemoOptions) -> ModbusSimHandle | None:
    site = options.site
    endpoints = [m.modbus for m in site.meters if m.modbus] + [i.modbus for i in site.inverters if i.modbus]
    if not endpoints:
        return None
    from evsite.grid.sim_modbus import ModbusSim, SimState, residential_load_w

    units = tuple(sorted({m.modbus.unit_id for m in site.meters if m.modbus}))
    inverter_w = sum(i.ac_rating_kw for i in site.inverters) * 1000.0
    building_peak_w = sum(b.peak_kw for b in site.building_loads) * 1000.0
    three_phase = site.service.system.is_three_phase
    state = SimState(
        pv_rating_w=inverter_w or 7600.0,
        start_hour=7.0,
        speed=options.speed,
        v_ln=site.service.system.line_to_line_v / (math.sqrt(3) if three_phase else 2.0),
        lines=3 if three_phase else 2,
        load_w=office_load_w(building_peak_w) if building_peak_w > 20_000 else residential_load_w,
    )
    sim = ModbusSim(
        port=endpoints[0].port,
        state=state,
        meter_units=units or (2,),
        inverter_phases=max((i.phases for i in site.inverters), default=1),
    )
    await sim.start()
    return ModbusSimHandle(sim)


async def _vtn_sim(site: Site) -> VtnHandle | None:
    if site.demand_response is None:
        return None
    url = urlsplit(site.demand_response.vtn_url)
    dr = site.demand_response
    if dr.openadr3 is not None and dr.version != "2.0b":
        from evsite.grid.sim_vtn3 import SimVtn3

        sim3 = SimVtn3(port=url.port or 80, host=url.hostname or "127.0.0.1", version=dr.version,
                       clients={dr.openadr3.client_id: None})  # fmt: skip
        await sim3.start()
        return VtnHandle(sim3)
    from evsite.optional import require

    require("openleadr")
    from evsite.grid.sim_vtn import SimVtn

    sim = SimVtn(port=url.port or 80, host=url.hostname or "127.0.0.1", poll_s=2.0)
    await sim.start()
    return VtnHandle(sim)


async def _fleet(options: DemoOptions) -> FleetHandle:
    from evsite.sim.fleet import Fleet

    fleet = Fleet(
        f"ws://127.0.0.1:{options.ocpp_port}/ocpp",
        options.site,
        speed=options.speed,
        seed=options.seed,
    )
    await fleet.start()
    return FleetHandle(fleet)


async def run(options: DemoOptions, on_ready: Callable[[Demo], None], on_tick: Callable[[Demo], None]) -> DemoSummary:
    """Run until Ctrl-C / SIGTERM or `duration_s`; returns the final summary."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        async with running_demo(options) as demo:
            on_ready(demo)
            deadline = None if options.duration_s is None else time.monotonic() + options.duration_s
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                demo.dr.check(demo.ev_line_currents())
                on_tick(demo)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
            return demo.summary()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


# ---------------------------------------------------------------------- terminal output (rich)


def escape(text: str) -> str:
    """Text shown literally by rich (`evsite[grid]` is not a style)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def ready_text(demo: Demo) -> str:
    running = ", ".join(k for k, v in sorted(demo.runtime.parts.items()) if v) if demo.runtime else ""
    lines = [
        f"[bold green]evsite demo[/] — {demo.options.site.name}",
        f"Dashboard: [link={demo.dashboard_url}]{demo.dashboard_url}[/link]",
        f"API token (admin): {demo.token}",
        f"OCPP: ws://127.0.0.1:{demo.options.ocpp_port}/ocpp/<charger id> · running: {running}",
    ]
    lines += [f"[yellow]note:[/] {escape(note)}" for note in demo.notes]  # notes may hold [brackets]
    return "\n".join(lines)


def tick_printer(console: Any, every_s: float = 5.0) -> Callable[[Demo], None]:
    """A compact status line every few seconds (plain lines, so logs and pipes read well too)."""
    last = [0.0]

    def tick(demo: Demo) -> None:
        now = time.monotonic()
        if now - last[0] < every_s or demo.live is None:
            return
        last[0] = now
        live = demo.live
        rows = live.node_lines()
        binding = demo.binding_node()
        lines = {r.line: r for r in rows if r.node == binding}
        per_line = " ".join(f"{ln} {r.measured_a:5.1f}/{r.limit_a:g}" for ln, r in sorted(lines.items()))
        connected = sum(1 for v in live.connected.values() if v)
        charging = sum(1 for c in live.connectors.values() if c.status == "Charging")
        alerts = sum(1 for a in live.alerts.values() if a.active)
        console.print(
            f"[dim]{time.strftime('%H:%M:%S')}[/] online {connected:2d} charging {charging:2d} "
            f"{binding} A {per_line}  sessions {len(live.sessions)}  alerts {alerts}",
            highlight=False,
        )

    return tick


def final_table(summary: DemoSummary) -> Any:
    from rich.table import Table

    table = Table(title="evsite demo summary", show_header=False)
    table.add_row("ran", f"{summary.ran_s:g} s")
    table.add_row("parts that ran", ", ".join(k for k, v in sorted(summary.parts.items()) if v) or "none")
    table.add_row("parts that did not run", ", ".join(k for k, v in sorted(summary.parts.items()) if not v) or "none")
    table.add_row("sessions", str(summary.sessions))
    table.add_row("energy delivered", f"{summary.energy_kwh:g} kWh")
    table.add_row(f"peak current on {summary.limit_node}", f"{summary.peak_a:g} A (limit {summary.limit_a:g} A)")
    table.add_row("longest limit excursion", f"{summary.longest_excursion_s:g} s (allowed 15 s)")
    table.add_row("demand response", summary.dr)
    for note in summary.notes:
        table.add_row("note", escape(note))
    return table
