"""CLI: `evsite sim modbus`, `evsite sim vtn` (simulators) and `evsite grid read` (check a real device)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

grid_app = typer.Typer(help="Grid integrations: read a Modbus meter or inverter.", no_args_is_help=True)


def sim_modbus(
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1.")] = 1502,
    profile: Annotated[str, typer.Option(help="sunny | cloudy | night | flat")] = "sunny",
    site: Annotated[Path | None, typer.Option(help="Take PV size, phases and meter units from this site.")] = None,
    start_hour: Annotated[float, typer.Option(min=0, max=24, help="Simulated clock at start (hour of day).")] = 12.0,
    speed: Annotated[float, typer.Option(min=0.01, help="Simulated seconds per real second.")] = 1.0,
    pv_kw: Annotated[float, typer.Option(min=0, help="Inverter rating when no --site.")] = 7.6,
    phases: Annotated[int, typer.Option(min=1, max=3, help="Inverter phases when no --site.")] = 1,
    host: Annotated[str, typer.Option(help="Address to bind (keep it on loopback).")] = "127.0.0.1",
) -> None:
    """Serve a SunSpec PV inverter (unit 1) and site meters (units 2…) from a day profile."""
    import asyncio
    import logging

    from evsite.grid.sim_modbus import ModbusSim, SimState

    if profile not in ("sunny", "cloudy", "night", "flat"):
        raise typer.BadParameter("profile must be sunny, cloudy, night or flat", param_hint="--profile")
    state = SimState(pv_rating_w=pv_kw * 1000, profile=profile, start_hour=start_hour, speed=speed)  # type: ignore[arg-type]
    meters: tuple[int, ...] = (2,)
    if site is not None:
        from evsite.console import load_or_exit

        loaded = load_or_exit(site)
        system = loaded.service.system
        state.v_ln, state.lines = system.line_to_neutral_v, len(system.lines)
        on_port = [i for i in loaded.inverters if i.modbus and i.modbus.port == port]
        if on_port:
            state.pv_rating_w, phases = on_port[0].ac_rating_kw * 1000, on_port[0].phases
        units = sorted({m.modbus.unit_id for m in loaded.meters if m.modbus and m.modbus.port == port} - {1})
        meters = tuple(units) or meters
    logging.basicConfig(level=logging.WARNING)

    async def main() -> None:
        async with ModbusSim(port=port, host=host, state=state, inverter_phases=phases, meter_units=meters):
            typer.echo(f"Modbus simulator on {host}:{port}: inverter unit 1, meters {list(meters)} ({profile})")
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def sim_vtn(
    port: Annotated[int, typer.Option(help="HTTP port on 127.0.0.1.")] = 8080,
    ven: Annotated[str, typer.Option(help="VEN name to send the event to.")] = "workplace-p1",
    site: Annotated[Path | None, typer.Option(help="Take the VEN name, port and time zone from this site.")] = None,
    at: Annotated[str, typer.Option(help="Local start time HH:MM of the curtailment.")] = "14:00",
    in_s: Annotated[float | None, typer.Option("--in", help="Start this many seconds from now instead.")] = None,
    hours: Annotated[float, typer.Option(min=0.01, help="Event length.")] = 2.0,
    level: Annotated[int, typer.Option(min=0, max=3, help="SIMPLE level (0 normal … 3 special).")] = 2,
    tz: Annotated[str, typer.Option(help="Time zone of --at.")] = "America/Los_Angeles",
    version: Annotated[str, typer.Option(help="2.0b, or 3.0.1 / 3.1.0 for an OpenADR 3 (REST) VTN.")] = "2.0b",
    limit_kw: Annotated[float, typer.Option(min=0, help="OpenADR 3: the IMPORT_CAPACITY_LIMIT it sends.")] = 100.0,
) -> None:
    """Run a VTN that calls one event (demo: 2 h at 14:00; 2.0b SIMPLE level, 3.x IMPORT_CAPACITY_LIMIT).

    The OpenADR 3 VTN grants a token to the VEN name (or the site's client_id) as client id, with any secret."""
    import asyncio
    import logging
    from datetime import UTC, datetime, timedelta
    from urllib.parse import urlparse

    from evsite.grid.sim_vtn import next_local, serve

    if site is not None:
        from evsite.console import load_or_exit

        loaded = load_or_exit(site)
        if loaded.demand_response is None:
            typer.echo(f"{site}: the site has no demand_response section", err=True)
            raise typer.Exit(2)
        ven, tz = loaded.demand_response.ven_name, loaded.timezone
        if loaded.demand_response.openadr3 is not None:
            ven = loaded.demand_response.openadr3.client_id
            version = loaded.demand_response.version
        port = urlparse(loaded.demand_response.vtn_url).port or port
    if version not in ("2.0b", "3.0.1", "3.1.0"):
        typer.echo(f"--version {version}: choose 2.0b, 3.0.1 or 3.1.0", err=True)
        raise typer.Exit(2)
    start = datetime.now(UTC) + timedelta(seconds=in_s) if in_s is not None else next_local(at, tz)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if version != "2.0b":
        from evsite.grid.sim_vtn3 import serve as serve3

        typer.echo(f"VTN on http://127.0.0.1:{port}/openadr3/{version}: {limit_kw:g} kW for {ven} at {start:%H:%M}Z")
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve3(port, version, ven, start, hours, limit_kw))
        return
    typer.echo(
        f"VTN on http://127.0.0.1:{port}/OpenADR2/Simple/2.0b: level {level} for {ven} at {start:%Y-%m-%d %H:%M}Z"
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(port, ven, start, hours, level))


@grid_app.command("read")
def grid_read(
    target: Annotated[str, typer.Argument(help="HOST[:PORT] of the Modbus TCP device.")],
    unit: Annotated[int, typer.Option(min=0, max=247, help="Modbus unit (slave) id.")] = 1,
    register_map: Annotated[str, typer.Option("--map", help="sunspec or a map name (e.g. eastron-sdm630).")] = (
        "sunspec"
    ),
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds per request.")] = 2.0,
) -> None:
    """Read one device once and print what evsite sees (discovered SunSpec models, values)."""
    import asyncio

    from evsite.grid.modbus import DeviceError, ModbusDevice
    from evsite.grid.regmap import MapError
    from evsite.site.model import ModbusEndpoint

    host, _, port = target.partition(":")
    try:
        device = ModbusDevice(
            ModbusEndpoint(host=host, port=int(port or 502), unit_id=unit, register_map=register_map), timeout
        )
    except MapError as exc:
        raise typer.BadParameter(str(exc), param_hint="--map") from None

    async def main() -> None:
        try:
            m = await device.read()
            if device.common is not None:
                c = device.common
                typer.echo(f"{c.manufacturer} {c.model} serial {c.serial} firmware {c.version}")
            if device.models:
                typer.echo("models: " + ", ".join(f"{h.model_id}@{h.address}" for h in device.models))
        finally:
            device.close()
        for name in ("power_w", "current_a", "voltage_v", "line_power_w", "frequency_hz", "energy_import_wh",
                     "energy_export_wh", "status"):  # fmt: skip
            typer.echo(f"{name:18} {getattr(m, name)}")

    try:
        asyncio.run(main())
    except DeviceError as exc:
        typer.echo(f"{target} unit {unit}: {exc}", err=True)
        raise typer.Exit(1) from None


def register(app: typer.Typer) -> None:
    app.add_typer(grid_app, name="grid")


def register_simulators(sim_app: typer.Typer) -> None:
    """`evsite sim modbus` and `evsite sim vtn`: the device simulators join the simulator's command group."""
    sim_app.command("modbus")(sim_modbus)
    sim_app.command("vtn")(sim_vtn)
