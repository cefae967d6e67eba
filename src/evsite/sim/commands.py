"""`evsite sim`: run simulated OCPP 1.6J (default) or 2.0.1 charge points with EVs against a central system.

`sim_app` is a Typer sub-app so other simulators (`evsite sim modbus`, `evsite sim vtn`) can be added
as its subcommands; with no subcommand it runs the charge point fleet.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Annotated

import typer

sim_app = typer.Typer(help="Simulators: OCPP charge points with EVs (default), and more as subcommands.")


@sim_app.callback(invoke_without_command=True)
def sim(
    ctx: typer.Context,
    url: Annotated[str, typer.Option(help="Central system URL; the charge point id is appended.")] = (
        "ws://127.0.0.1:9000/ocpp"
    ),
    count: Annotated[int, typer.Option(min=1, max=20_000, help="Charge points when no --site is given.")] = 20,
    site: Annotated[Path | None, typer.Option(help="Site file: simulate its EVSE (ids, phases, wiring).")] = None,
    speed: Annotated[float, typer.Option(min=0.01, help="Simulated seconds per real second (EVs, arrivals).")] = 60.0,
    duration: Annotated[float | None, typer.Option(min=0, help="Stop after this many real seconds.")] = None,
    password: Annotated[str | None, typer.Option(help="Basic-auth password (security profile 1/2).")] = None,
    interval: Annotated[int, typer.Option(min=0, help="MeterValueSampleInterval until the CSMS sets it.")] = 60,
    seed: Annotated[int | None, typer.Option(help="Random seed for EVs and arrivals.")] = None,
    ocpp: Annotated[str, typer.Option(help="OCPP version the charge points speak: 1.6 or 2.0.1.")] = "1.6",
    rate_unit: Annotated[
        str, typer.Option(help="2.0.1: SmartChargingCtrlr.RateUnit of the stations (A, W or A,W).")
    ] = "A,W",
    iso15118_share: Annotated[
        float, typer.Option(min=0, max=1, help="2.0.1: share of cars that send ISO 15118 charging needs.")
    ] = 0.3,
) -> None:
    """Run N simulated charge points with EVs arriving and leaving (Ctrl-C stops)."""
    if ctx.invoked_subcommand is not None:
        return
    import asyncio

    loaded = None
    if site is not None:
        from evsite.console import load_or_exit

        loaded = load_or_exit(site)
        if not loaded.evse:
            typer.echo(f"{site}: the site has no EVSE to simulate", err=True)
            raise typer.Exit(2)
    if ocpp not in ("1.6", "2.0.1"):
        typer.echo(f"--ocpp {ocpp}: expected 1.6 or 2.0.1", err=True)
        raise typer.Exit(2)
    if ocpp == "2.0.1":
        if rate_unit not in ("A", "W", "A,W"):
            typer.echo(f"--rate-unit {rate_unit}: expected A, W or A,W", err=True)
            raise typer.Exit(2)
        if password is not None:
            typer.echo("--password is not supported with --ocpp 2.0.1 yet", err=True)
            raise typer.Exit(2)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_run201(url, loaded, count, speed, duration, seed, rate_unit, iso15118_share))
        return
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(url, loaded, count, speed, duration, password, interval, seed))


async def _run201(
    url: str,
    site: object,
    count: int,
    speed: float,
    duration: float | None,
    seed: int | None,
    rate_unit: str,
    iso15118_share: float,
) -> None:
    from evsite.sim.v201 import StationSpec, run_fleet
    from evsite.site import topology
    from evsite.site.model import Site

    if isinstance(site, Site):
        volts = topology.watts_per_amp(site.service.system, 1)
        specs = [
            StationSpec(e.id, len(e.connectors), e.max_current_a, rate_unit, line_voltage_v=volts) for e in site.evse
        ]
    else:
        specs = [StationSpec(f"SIM{n:05d}", rate_unit=rate_unit) for n in range(1, count + 1)]
    typer.echo(f"simulating {len(specs)} OCPP 2.0.1 stations against {url} at {speed:g}× speed")
    await run_fleet(url, specs, speed, duration, seed, iso15118_share)


async def _run(
    url: str,
    site: object,
    count: int,
    speed: float,
    duration: float | None,
    password: str | None,
    interval: int,
    seed: int | None,
) -> None:
    import asyncio
    import time

    from rich.console import Console

    from evsite.sim.fleet import Fleet
    from evsite.site.model import Site

    console = Console()
    fleet = Fleet(
        url,
        site=site if isinstance(site, Site) else None,
        count=count,
        speed=speed,
        password=password,
        seed=seed,
        config={"MeterValueSampleInterval": str(interval)},
    )
    console.print(f"simulating {len(fleet.charge_points)} charge points against {url} at {speed:g}× speed")
    refusals = RefusalLog()
    logging.getLogger("evsite.sim.chargepoint").addHandler(refusals)
    logging.getLogger("evsite.sim.chargepoint").setLevel(logging.INFO)
    await fleet.start()
    started = time.monotonic()
    try:
        while duration is None or time.monotonic() - started < duration:
            await asyncio.sleep(min(5.0, duration - (time.monotonic() - started)) if duration else 5.0)
            online = sum(cp.online for cp in fleet.charge_points)
            charging = sum(c.status == "Charging" for cp in fleet.charge_points for c in cp.connectors.values())
            queued = sum(cp.pending_transaction_messages for cp in fleet.charge_points)
            lines = ", ".join(f"{k} {v:.1f} A" for k, v in sorted(fleet.total_current_a().items()))
            console.print(f"online {online}/{len(fleet.charge_points)}, charging {charging}, queued {queued}; {lines}")
            offline = {cp.id for cp in fleet.charge_points if not cp.online}
            for line in refusals.report(offline):
                console.print(line, style="yellow", highlight=False, soft_wrap=True)
    finally:
        logging.getLogger("evsite.sim.chargepoint").removeHandler(refusals)
        await fleet.stop()


class RefusalLog(logging.Handler):
    """Remembers why each simulated charger last failed to connect, to report refusals grouped by reason.

    Without it a fleet the central system refuses (unknown ids, wrong password) just sat at `online 0`."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.reasons: dict[str, str] = {}
        self._reported: set[tuple[str, frozenset[str]]] = set()

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        if "connect failed" in str(record.msg) and len(args) >= 2:
            self.reasons[str(args[0])] = str(args[1])

    def report(self, offline: set[str]) -> list[str]:
        """One line per new (reason, chargers) group among the chargers still offline (refused or unreachable)."""
        groups: dict[str, list[str]] = {}
        for cp_id in sorted(offline):
            if cp_id in self.reasons:
                groups.setdefault(self.reasons[cp_id], []).append(cp_id)
        lines = []
        for reason, ids in groups.items():
            key = (reason, frozenset(ids))
            if key in self._reported:
                continue
            self._reported.add(key)
            hint = REFUSAL_HINTS.get(next((code for code in REFUSAL_HINTS if code in reason), ""), "")
            shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
            count = f"{len(ids)} charge point{'s' if len(ids) != 1 else ''}"
            lines.append(f"not connected: {count} ({shown}): {reason}{hint}")
        return lines


REFUSAL_HINTS = {
    "HTTP 404": " — the central system does not know these ids: simulate the site's own chargers with "
    "--site SITE.yaml, or serve with --accept-unknown",
    "HTTP 401": " — Basic authentication failed: check --password against the charger's password_hash",
    "HTTP 403": " — the charger's security profile needs TLS (wss://) or a client certificate",
    "Connect call failed": " — nothing listens there: is `evsite serve` running, on this address and port?",
}


def register(app: typer.Typer) -> None:
    app.add_typer(sim_app, name="sim")
