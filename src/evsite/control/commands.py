"""`evsite replay`: run a scenario or a sessions file through the load manager and print metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command()(replay)


def replay(
    site_file: Annotated[
        Path | None, typer.Argument(help="Site file (YAML); defaults to the scenario's own site.", show_default=False)
    ] = None,
    scenario: Annotated[
        str | None, typer.Option(help="Scenario name (workplace-day, faults, scale-1000, ...).")
    ] = None,
    sessions: Annotated[Path | None, typer.Option(help="Sessions file (JSON list or CSV of Session fields).")] = None,
    policy: Annotated[str, typer.Option(help="fair, mpc, or a baseline: uncontrolled, fcfs, equal.")] = "fair",
    hours: Annotated[float | None, typer.Option(help="Site hours to simulate (default: the scenario's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Replay days of site time in seconds: modelled EVs, the real controller, safety and service metrics."""
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from evsite.cli import load_or_exit
    from evsite.control.baselines import get_policy
    from evsite.control.replay import Replay
    from evsite.control.scenarios import Scenario, get_scenario, load_sessions

    err = Console(stderr=True)
    if (scenario is None) == (sessions is None):
        err.print("give exactly one of --scenario NAME or --sessions FILE")
        raise typer.Exit(2)
    try:
        get_policy(policy)
    except ValueError as exc:
        err.print(str(exc))
        raise typer.Exit(2) from None
    if scenario is not None:
        try:
            run = get_scenario(scenario)
        except (KeyError, LookupError) as exc:
            err.print(str(exc).strip("'\""))
            raise typer.Exit(2) from None
        if site_file is not None:
            run.site = load_or_exit(site_file)
    else:
        assert sessions is not None
        if site_file is None:
            err.print("--sessions needs the site file")
            raise typer.Exit(2)
        site = load_or_exit(site_file)
        try:
            loaded = load_sessions(sessions)
        except (OSError, ValueError) as exc:
            err.print(str(exc))
            raise typer.Exit(2) from None
        end = max((s.departure_s for s in loaded), default=0.0)
        run = Scenario(sessions.stem, site, loaded, end)
    known = {e.id for e in run.site.evse}
    unknown = sorted({s.evse for s in run.sessions} - known)
    if unknown and len(unknown) == len({s.evse for s in run.sessions}):
        err.print(f"no session's EVSE is in the site (e.g. {unknown[0]!r}); check the site file")
        raise typer.Exit(2)
    if hours is not None:
        run.duration_s = hours * 3600.0
    sim = Replay(run, policy)
    if as_json:
        metrics = sim.run()
        typer.echo(json.dumps(metrics, indent=2))
        return
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task(f"{run.name} / {policy}", total=1.0)
        metrics = sim.run(lambda frac: bar.update(task, completed=frac))
    table = Table(title=f"replay {run.name} — policy {policy}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, "—" if value is None else str(value))
    Console().print(table)
