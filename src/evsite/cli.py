"""The `evsite` command line.

Each domain registers its own commands from a small `commands` module (listed in
`_COMMAND_MODULES`); heavy libraries are imported inside the command functions so that
`evsite --help` stays fast.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.tree import Tree

from evsite import __version__
from evsite.console import console, err_console, print_problems
from evsite.site import Site, SiteFileError, load_site
from evsite.site.topology import ROOT

app = typer.Typer(
    name="evsite",
    help="Plan, permit and run smart EV charging sites from one site model (YAML).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: wraps to the terminal (80 columns stay readable) and shows no <bool>/<str> placeholders.
    rich_markup_mode=None,
)

SiteArg = Annotated[Path, typer.Argument(help="Site file (YAML).", show_default=False)]


def _version(value: bool) -> None:
    if value:
        console.print(f"evsite {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Plan, permit and run smart EV charging sites from one site model (YAML)."""


@app.command()
def validate(
    sites: Annotated[list[Path], typer.Argument(help="One or more site files.", show_default=False)],
) -> None:
    """Validate site files and print each as a tree: service → panels → circuits → EVSE."""
    failed = False
    for path in sites:
        try:
            site = load_site(path)
        except SiteFileError as exc:
            failed = True
            print_problems(exc, path)
            continue
        console.print(site_tree(site))
        console.print(site_totals(site), soft_wrap=True)
    if failed:
        raise typer.Exit(2)


@app.command()
def examples(
    out_dir: Annotated[Path, typer.Argument(help="Directory to copy them into.")] = Path("examples"),
) -> None:
    """Copy the example site files (workplace-20, residential, multifamily-30) into a directory to edit."""
    from importlib import resources

    out_dir.mkdir(parents=True, exist_ok=True)
    for item in sorted(resources.files("evsite.examples").iterdir(), key=lambda i: i.name):
        if item.name.endswith(".yaml"):
            target = out_dir / item.name
            if target.exists():
                err_console.print(f"kept {target} (exists)", markup=False, highlight=False)
                continue
            target.write_text(item.read_text(encoding="utf-8"), encoding="utf-8")
            console.print(f"wrote {target}", markup=False, highlight=False)


@app.command()
def schema(
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print the JSON Schema of the site format (for editor completion and validation)."""
    text = site_schema_json()
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")


def site_schema_json() -> str:
    """The site format's JSON Schema as committed in docs/site.schema.json."""
    schema_doc = Site.model_json_schema()
    schema_doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema_doc["$id"] = "https://evsite.dev/schema/site.json"
    return json.dumps(schema_doc, indent=2, sort_keys=True) + "\n"


# --------------------------------------------------------------------------- rendering


def _evse_label(site: Site, circuit_id: str) -> list[str]:
    labels = []
    for evse in site.evse_on(circuit_id):
        make = " ".join(x for x in (evse.make, evse.model) if x)
        kind = "DC" if evse.dc else f"{evse.phases}φ"
        labels.append(f"[green]EVSE {evse.id}[/] {evse.max_current_a:g} A {kind} {make}".rstrip())
    return labels


def _add_panel(site: Site, tree: Tree, panel_id: str) -> None:
    panel = site.panel(panel_id)
    main = f", main {panel.main_ocpd_a:g} A" if panel.main_ocpd_a else ""
    node = tree.add(f"[bold]{panel.kind} {panel.id}[/] ({panel.bus_rating_a:g} A bus{main}){_ems_note(site, panel.id)}")
    for circuit in site.circuits_in(panel.id):
        run = circuit.conductors
        label = (
            f"circuit {circuit.id}: {circuit.ocpd_a:g} A {'-'.join(circuit.lines)}, "
            f"{run.size} {run.material.value.capitalize()} {run.insulation}, {run.length_ft:.0f} ft"
            f"{_ems_note(site, circuit.id)}"
        )
        branch = node.add(label)
        for evse_label in _evse_label(site, circuit.id):
            branch.add(evse_label)
    for feeder in site.feeders_from(panel.id):
        _add_feeder(site, node, feeder.id)


def _add_feeder(site: Site, tree: Tree, feeder_id: str) -> None:
    feeder = site.feeder(feeder_id)
    run = feeder.conductors
    node = tree.add(
        f"feeder {feeder.id}: {feeder.ocpd_a:g} A, {run.size} {run.material.value.capitalize()}"
        f"{_ems_note(site, feeder.id)}"
    )
    for panel in site.panels_fed_by(feeder.id):
        _add_panel(site, node, panel.id)


def _ems_note(site: Site, node_id: str) -> str:
    return "".join(f" [magenta]⟵ EMS {e.id} {e.setpoint_a:g} A[/]" for e in site.ems_for(node_id))


def site_tree(site: Site) -> Tree:
    service = site.service
    allocation = f", allocation {service.allocation_a:g} A" if service.allocation_a else ""
    root = Tree(
        f"[bold cyan]{site.name}[/]\nservice {service.system.value}, {service.rating_a:g} A{allocation}"
        f"{_ems_note(site, ROOT)}"
    )
    for panel in site.panels_fed_by(ROOT):
        _add_panel(site, root, panel.id)
    for feeder in site.feeders_from(ROOT):
        _add_feeder(site, root, feeder.id)
    return root


def site_totals(site: Site) -> str:
    """One line of totals: what is connected, what the site may draw, and what the EMS allows."""
    connected = sum(e.max_current_a for e in site.evse)
    ports = sum(len(e.connectors) for e in site.evse)
    service = site.service
    allocation = (
        f"EV allocation {service.allocation_a:g} A of a {service.rating_a:g} A service"
        if service.allocation_a
        else f"service {service.rating_a:g} A"
    )
    managed = "; ".join(
        f"managed allocation: EMS {e.id} holds {'/'.join(e.manages)} to {e.setpoint_a:g} A" for e in site.ems
    )
    return f"{len(site.evse)} EVSE, {ports} ports, {connected:g} A connected EVSE current; {allocation}" + (
        f"; {managed}" if managed else "; no energy management system"
    )


_COMMAND_MODULES: tuple[str, ...] = (
    "evsite.code.calc_commands",
    "evsite.sim.commands",
    "evsite.grid.commands",
    "evsite.code.commands",
    "evsite.api.commands",
    "evsite.ocpp.commands",
    "evsite.ocpp.client_commands",
    "evsite.control.commands",
    "evsite.metering.commands",
    "evsite.cluster.commands",
)


def _register_commands() -> None:
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(app)
    from evsite.grid.commands import register_simulators
    from evsite.sim.commands import sim_app

    register_simulators(sim_app)  # the Modbus and OpenADR simulators live with their protocols


_register_commands()
