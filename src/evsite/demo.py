"""`evsite demo`: the whole site on one machine, in one asyncio process.

OCPP central system + load manager + API/dashboard (uvicorn in the same loop) on a SQLite
database in a temporary directory, with simulated chargers over real OCPP and the site's Modbus
meter/inverter simulated on loopback. Parts that are not available in this build are skipped and
named in the summary, so the demo always runs with what exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evsite.api.live import LiveState
from evsite.api.runtime import SiteRuntime
from evsite.runtime.events import EventBus
from evsite.site.model import Site

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
class Demo:
    """The running demo: its URL, admin token and the live state the summary reads."""

    options: DemoOptions
    url: str = ""
    token: str = ""
    runtime: SiteRuntime | None = None
    live: LiveState | None = None
    notes: list[str] = field(default_factory=list)
    started_at: float = field(default_factory=time.monotonic)

    @property
    def dashboard_url(self) -> str:
        return f"{self.url}/dashboard/#token={self.token}"

    def summary(self) -> DemoSummary:
        assert self.runtime is not None and self.live is not None
        live = self.live
        rows = live.node_lines()
        binding = "allocation" if any(r.node == "allocation" for r in rows) else "service"
        limit = min((r.limit_a for r in rows if r.node == binding), default=0.0)
        peak = max((v for k, v in live.peak.items() if k.startswith(f"{binding}:")), default=0.0)
        energy = 0.0
        for record in live.sessions.values():
            if record.energy_wh is not None:
                energy += record.energy_wh
            else:
                connector = live.connectors.get((record.charge_point_id, record.connector_id))
                energy += (connector.session_wh or 0.0) if connector else 0.0
        dr = "no VTN in this build" if not self.runtime.parts.get("openadr") else "see dashboard"
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


class _EmbeddedServer:
    """uvicorn serving in the caller's event loop, without taking over Ctrl-C (the demo owns it)."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        self.server = Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve(), name="api-server")
        async with asyncio.timeout(15):
            while not self.server.started:
                if self.task.done():
                    self.task.result()
                    raise RuntimeError("the API server stopped during start-up")
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self.task, 10)


@contextlib.asynccontextmanager
async def running_demo(options: DemoOptions, workdir: Path | None = None) -> AsyncIterator[Demo]:
    """Start every available part, yield the running demo, and stop everything in reverse order."""
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from evsite.api.app import create_app
    from evsite.api.tokens import Role, TokenStore

    site = options.site
    demo = Demo(options)
    bus = EventBus()
    parts: dict[str, bool] = {}
    stack = contextlib.AsyncExitStack()
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="evsite-demo-")
        workdir = Path(tmp.name)
    try:
        db_url = f"sqlite+aiosqlite:///{workdir / 'demo.db'}"
        commands: Any = None
        actions: Any = None
        db: Any = None
        try:
            from evsite.api.adapters import OcppActions
            from evsite.ocpp.server import CentralSystem, ServerSettings
            from evsite.store.ocpp import OcppStore

            store = await OcppStore.open(db_url, synchronous="NORMAL")
            stack.push_async_callback(store.close)
            db = async_sessionmaker(store.engine, expire_on_commit=False)
            central = CentralSystem(
                store, site, bus=bus, settings=ServerSettings.from_site(site, port=options.ocpp_port)
            )
            await central.start()
            stack.push_async_callback(central.stop)
            # The simulated drivers' cards (the fleet numbers them TAG-00001, ...) are known to the site.
            names = [f"TAG-{n:05d}" for n in range(1, 2001)]
            tags: list[dict[str, Any]] = [
                {"id_tag": name, "status": "Accepted", "expiry_date": None, "parent_id_tag": None} for name in names
            ]
            await store.upsert_id_tags(tags)
            central.id_tags.update(zip(names, tags, strict=True))
            commands, actions = central, OcppActions(central)
            parts["ocpp"] = True
        except ImportError as exc:
            parts["ocpp"] = False
            demo.notes.append(f"OCPP server not available ({exc})")
        if db is None:
            from sqlalchemy.ext.asyncio import create_async_engine

            engine = create_async_engine(db_url)
            stack.push_async_callback(engine.dispose)
            db = async_sessionmaker(engine, expire_on_commit=False)

        control = None
        if commands is not None:
            try:
                from evsite.api.adapters import ControlLoopState
                from evsite.control.loop import ControlLoop

                loop = ControlLoop(site, bus, commands)
                await loop.start()
                stack.push_async_callback(loop.stop)
                control = ControlLoopState(loop)
                parts["control"] = True
            except ImportError as exc:
                parts["control"] = False
                demo.notes.append(f"load manager not available ({exc})")

        runtime = SiteRuntime(
            site=site, bus=bus, commands=commands, actions=actions, db=db, control=control, parts=parts
        )
        _attach_reports(runtime, demo.notes)
        app = create_app(runtime)
        server = _EmbeddedServer(app, options.api_host, options.api_port)
        await server.start()
        stack.push_async_callback(server.stop)
        parts["api"] = True
        demo.runtime, demo.live = runtime, app.state.live
        demo.url = f"http://{options.api_host}:{options.api_port}"
        demo.token = await TokenStore(db).create(f"demo-admin-{int(time.time())}", Role.ADMIN)

        await _start_optional(stack, parts, demo.notes, "modbus", _modbus(site, bus))
        if commands is not None:
            await _start_optional(stack, parts, demo.notes, "simulator", _fleet(options))
        parts.setdefault("openadr", False)
        if site.demand_response is not None:
            demo.notes.append("OpenADR VTN simulator not available in this build: no DR event is called")
        demo.started_at = time.monotonic()
        yield demo
    finally:
        await stack.aclose()
        if tmp is not None:
            tmp.cleanup()


def _attach_reports(runtime: SiteRuntime, notes: list[str]) -> None:
    """Design-check report and one-line diagram when evsite.code provides them."""
    try:
        from evsite.code import oneline

        render = getattr(oneline, "render_svg", None) or getattr(oneline, "oneline_svg", None)
        if callable(render):
            runtime.oneline_svg = render
    except ImportError:
        notes.append("one-line diagram not available")


async def _start_optional(
    stack: contextlib.AsyncExitStack,
    parts: dict[str, bool],
    notes: list[str],
    name: str,
    starter: Awaitable[Callable[[], Awaitable[None]] | None],
) -> None:
    try:
        stop = await starter
    except Exception as exc:  # an optional part that fails to start must not stop the demo
        parts[name] = False
        notes.append(f"{name} did not start: {exc!r}")
        return
    parts[name] = stop is not None
    if stop is not None:
        stack.push_async_callback(stop)


async def _modbus(site: Site, bus: EventBus) -> Callable[[], Awaitable[None]] | None:
    endpoints = [m.modbus for m in site.meters if m.modbus] + [i.modbus for i in site.inverters if i.modbus]
    if not endpoints:
        return None
    from evsite.grid.modbus import run_site_modbus
    from evsite.grid.sim_modbus import ModbusSim

    port = endpoints[0].port
    units = tuple(sorted({m.modbus.unit_id for m in site.meters if m.modbus}))
    phases = max((i.phases for i in site.inverters), default=1)
    sim = ModbusSim(port=port, meter_units=units or (2,), inverter_phases=phases)
    await sim.start()
    task = asyncio.create_task(run_site_modbus(site, bus), name="modbus-client")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await sim.stop()

    return stop


async def _fleet(options: DemoOptions) -> Callable[[], Awaitable[None]] | None:
    from evsite.sim.fleet import Fleet

    fleet = Fleet(
        f"ws://127.0.0.1:{options.ocpp_port}/ocpp",
        options.site,
        speed=options.speed,
        seed=options.seed,
    )
    await fleet.start()
    return fleet.stop


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
                on_tick(demo)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
            return demo.summary()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


# ---------------------------------------------------------------------- terminal output (rich)


def ready_text(demo: Demo) -> str:
    running = ", ".join(k for k, v in sorted(demo.runtime.parts.items()) if v) if demo.runtime else ""
    lines = [
        f"[bold green]evsite demo[/] — {demo.options.site.name}",
        f"Dashboard: [link={demo.dashboard_url}]{demo.dashboard_url}[/link]",
        f"API token (admin): {demo.token}",
        f"OCPP: ws://127.0.0.1:{demo.options.ocpp_port}/ocpp/<charger id> · running: {running}",
    ]
    lines += [f"[yellow]note:[/] {note}" for note in demo.notes]
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
        binding = "allocation" if any(r.node == "allocation" for r in rows) else "service"
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
        table.add_row("note", note)
    return table
