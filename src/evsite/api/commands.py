"""CLI: `evsite demo` (the whole site on one machine)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command()(demo)


def demo(
    site: Annotated[
        str, typer.Option(help="An example name (workplace-20, residential, multifamily-30) or a site file.")
    ] = "workplace-20",
    speed: Annotated[float, typer.Option(help="Simulated seconds per real second (default: a day in 10 min).")] = 144.0,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: until Ctrl-C).")
    ] = None,
    api_port: Annotated[int, typer.Option(help="Port of the API and dashboard.")] = 8000,
    ocpp_port: Annotated[int, typer.Option(help="Port of the OCPP central system.")] = 9000,
    api_host: Annotated[str, typer.Option(help="Address of the API and dashboard.")] = "127.0.0.1",
    modbus_port: Annotated[
        int | None, typer.Option(help="Port of the simulated meters and inverter [default: the site file's].")
    ] = None,
    vtn_port: Annotated[
        int | None, typer.Option(help="Port of the simulated utility VTN [default: the site file's].")
    ] = None,
    dr_after: Annotated[float, typer.Option(help="Seconds after start when the utility calls its event.")] = 30.0,
    openadr: Annotated[
        str | None, typer.Option(help="OpenADR version of utility and VEN: 2.0b, 3.0.1, 3.1.0 [default: the site's].")
    ] = None,
) -> None:
    """Run a simulated site end to end: OCPP chargers, load manager, Modbus meters, utility DR, API and dashboard."""
    import asyncio
    import logging

    from rich.console import Console

    from evsite.console import load_or_exit
    from evsite.demo import DemoOptions, final_table, ready_text, run, tick_printer

    path = Path(site)
    if not path.suffix:
        path = Path(__file__).resolve().parents[1] / "examples" / f"{site}.yaml"
    from evsite.logs import configure

    configure(logging.WARNING, fmt="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("openleadr").setLevel(logging.WARNING)
    console = Console()
    options = DemoOptions(load_or_exit(path), speed=speed, duration_s=duration, api_host=api_host,
                          api_port=api_port, ocpp_port=ocpp_port, modbus_port=modbus_port, vtn_port=vtn_port,
                          dr_after_s=dr_after, openadr=openadr)  # fmt: skip
    summary = asyncio.run(run(options, lambda d: console.print(ready_text(d), soft_wrap=True), tick_printer(console)))
    console.print(final_table(summary))
    if summary.longest_excursion_s > 15:
        raise typer.Exit(1)
