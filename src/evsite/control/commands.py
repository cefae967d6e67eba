"""`evsite replay`: run a scenario or a sessions file through the load manager and print metrics.

Like a live run, a replay stores its sessions and meter readings, but in its own database by default
(SITE-replay.db in the current directory, or `--db URL`), so a later `evsite bill` on the live SITE.db
never mixes simulated sessions with real ones; `evsite bill SITE --db …-replay.db` bills the replay.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

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
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Database to store the replay's sessions and meter readings in "
            "(default: SITE-replay.db in the current directory, apart from the live SITE.db; "
            "without a site file, nothing is stored).",
        ),
    ] = None,
    no_db: Annotated[bool, typer.Option("--no-db", help="Store nothing; only print the metrics.")] = False,
    manage_demand: Annotated[
        bool | None,
        typer.Option(
            "--manage-demand/--no-manage-demand",
            help="Hold the EV load under the month's billed demand peak (default: the site's control.manage_demand).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Replay days of site time in seconds: modelled EVs, the real controller, safety and service metrics."""
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from evsite.console import load_or_exit
    from evsite.control.baselines import get_policy
    from evsite.control.replay import Replay
    from evsite.control.scenarios import Scenario, load_sessions
    from evsite.sim.scenarios import get_scenario

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
    sim = Replay(run, policy, manage_demand=manage_demand)
    url = None if no_db else db or (_default_db(site_file) if site_file is not None else None)
    recorder = _recorder(url, sim, err) if url else None
    try:
        if as_json:
            metrics = sim.run()
        else:
            with Progress(console=err, transient=True) as bar:
                task = bar.add_task(f"{run.name} / {policy}", total=1.0)
                metrics = sim.run(lambda frac: bar.update(task, completed=frac))
    finally:
        stored = recorder.close() if recorder is not None else None
    if stored is not None:
        metrics["stored"] = stored | {"month": _local_month(run.start, run.site.timezone)}
    if as_json:
        typer.echo(json.dumps(metrics, indent=2))
        return
    table = Table(title=f"replay {run.name} — policy {policy}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if key != "stored":
            table.add_row(key, "—" if value is None else str(value))
    Console().print(table)
    for line in sim.demand_log[-5:]:
        err.print(f"demand: {line}")
    if stored is not None:
        err.print(
            f"stored {stored['transactions']} sessions and {stored['meter_samples']} meter samples in "
            f"{stored['database']} (bill with: evsite bill SITE --db {stored['database']} "
            f"--month {metrics['stored']['month']})"
        )


def _default_db(site_file: Path) -> str:
    from evsite.store.db import default_url

    return default_url(site_file, "-replay")


def _recorder(url: str, sim: Any, err: Any) -> Any:
    """A recorder attached to `sim`, storing through the OCPP store; exit 2 if the database cannot be opened."""
    from evsite.store.replay import ReplayRecorder

    try:
        recorder = ReplayRecorder(url)
    except Exception as exc:  # a bad URL, an unreachable server, a read-only file
        err.print(f"cannot open the database {url}: {exc}")
        raise typer.Exit(2) from None
    recorder.attach(sim)
    return recorder


def _local_month(start: datetime, timezone: str) -> str:
    """The site-local month a replay starts in: the month to bill."""
    from zoneinfo import ZoneInfo

    return start.astimezone(ZoneInfo(timezone)).strftime("%Y-%m")
