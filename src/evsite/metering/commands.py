"""CLI: `evsite bill`, `evsite adjust`, `evsite readings export`.

Exit status: 0 done; 1 nothing to bill (no database, or no sessions in the month); 2 bad input (site file,
month, tariff); 3 a closed month no longer reproduces from the stored data (its frozen statements stand;
post an adjustment).
"""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer

SiteArg = Annotated[Path, typer.Argument(help="Site file (YAML).", show_default=False)]
DbOpt = Annotated[
    str | None, typer.Option("--db", help="Database URL (default: SITE.db in the current directory, as for serve).")
]

readings_app = typer.Typer(help="Raw meter readings.", no_args_is_help=True)


def _url(site_path: Path, db: str | None) -> str:
    from evsite.store.db import default_url

    return db or default_url(site_path)


def _missing_sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names when it does not exist (opening it would create an empty one)."""
    from evsite.store.db import normalise_url

    prefix = "sqlite+aiosqlite:///"
    url = normalise_url(url)
    if not url.startswith(prefix) or ":memory:" in url:
        return None
    path = Path(url[len(prefix) :].split("?", 1)[0])
    return None if path.exists() else path


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def bill(
    site_path: SiteArg,
    month: Annotated[str, typer.Option("--month", help="Billing month, YYYY-MM (site local time).")],
    db: DbOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Directory for statements (default ./statements/MONTH).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the whole run as JSON (for accounting systems).")
    ] = False,
    close: Annotated[bool, typer.Option("--close", help="Close the month: freeze these statements.")] = False,
    keys: Annotated[
        Path | None, typer.Option("--keys", help="JSON {charger id: public key} to verify OCMF signed meter values.")
    ] = None,
    standby_w: Annotated[
        float | None,
        typer.Option(
            "--standby-w", help="Override every charger's standby draw (W); default: each model's `standby_w`."
        ),
    ] = None,
) -> None:
    """Bill a month: per-unit statements (HTML, CSV), a site summary, JSON; re-runs of closed months are checked."""
    from evsite.console import load_or_exit
    from evsite.metering.billing import BillingError
    from evsite.metering.statements import to_json, write_all
    from evsite.metering.tariffs import TariffError

    site = load_or_exit(site_path)
    public_keys = _load_keys(keys)
    url = _url(site_path, db)
    missing = _missing_sqlite_file(url)
    if missing is not None:
        raise _fail(f"no database at {missing}: nothing to bill (serve writes ./SITE.db; pass --db URL)", 1)
    try:
        result = asyncio.run(_bill(site, url, month, close, public_keys, standby_w))
    except (BillingError, TariffError) as exc:
        raise _fail(str(exc)) from None
    run = result.run
    if run.summary.sessions == 0 and not result.closed:
        # Zero-filled statements look like a real month with no charging; more often the database is the wrong one.
        raise _fail(f"no charging sessions stored for {month} in {url}: nothing to bill, no statements written", 1)
    directory = out or Path("statements") / month
    files = write_all(run, directory)
    if as_json:
        typer.echo(to_json(run), nl=False)
    else:
        _print_summary(run, files)
    if result.closed and not result.matches_closed:
        frozen = directory / f"billing-{month}.closed.json"
        frozen.write_text(result.closed_json or "", encoding="utf-8")
        raise _fail(
            f"{month} is closed and the stored data no longer reproduces it; the closed statements ({frozen}) "
            "stand — post corrections with `evsite adjust` on an open month",
            3,
        )
    if result.closed:
        typer.echo(f"{month} is closed; this run reproduces it exactly (sha256 {run.digest()[:16]}…)", err=True)


async def _bill(
    site: Any, url: str, month: str, close: bool, public_keys: dict[str, str], standby_w: float | None
) -> Any:
    from evsite.metering.repository import bill_month, close_month
    from evsite.metering.tables import ensure_tables
    from evsite.store.db import create_engine

    engine = create_engine(url)
    try:
        await ensure_tables(engine)
        result = await bill_month(engine, site, month, public_keys, standby_w)
        if close and not result.closed:
            await close_month(engine, result.run)
        return result
    finally:
        await engine.dispose()


def _load_keys(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise _fail(f"cannot read keys file {path}: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise _fail(f"{path}: expected a JSON object of charger id → public key (hex DER or PEM)")
    return {str(k): v for k, v in data.items()}


def _print_summary(run: Any, files: list[Path]) -> None:
    from rich.console import Console
    from rich.table import Table

    s = run.summary
    console = Console()
    table = Table(title=f"{s.site} — {s.month}", show_header=False)
    table.add_row("sessions", str(s.sessions))
    table.add_row("units billed", str(s.units_billed))
    table.add_row("energy billed", f"{Decimal(s.energy_billed_wh) / 1000:,.3f} kWh")
    table.add_row("not billable", f"{Decimal(sum(s.energy_not_billable_wh.values())) / 1000:,.3f} kWh")
    table.add_row("total billed", f"{s.total_billed:,.2f} {s.currency} (tax {s.tax_billed:,.2f})")
    table.add_row("site EV peak", f"{s.demand_peak_kw} kW, allocated {s.demand_allocated_kw} kW")
    for r in s.reconciliations:
        parts = f"billed {r.billed_wh} + not billed {r.unbilled_wh}; losses {r.losses_wh}, standby {r.standby_wh} Wh"
        table.add_row(f"reconciliation {r.meter_id}", ("ok" if r.ok else "[red]FLAGGED[/]") + f": {parts}")
    table.add_row("flags", ", ".join(f"{k} × {v}" for k, v in s.flags.items()) or "none")
    for note in s.compliance_notes:
        table.add_row("compliance", note)
    console.print(table)
    for path in files:
        console.print(f"wrote {path}", highlight=False)


def adjust(
    site_path: SiteArg,
    unit: Annotated[str, typer.Option("--unit", help="Unit id.")],
    month: Annotated[str, typer.Option("--month", help="Open month whose statement carries the line.")],
    amount: Annotated[str, typer.Option("--amount", help="Amount, e.g. -2.50 for a credit.")],
    description: Annotated[str, typer.Option("--description", help="Text printed on the statement.")],
    refers_to: Annotated[str | None, typer.Option("--refers-to", help="Month or session it corrects.")] = None,
    not_taxable: Annotated[bool, typer.Option("--not-taxable", help="Exclude from the taxable subtotal.")] = False,
    db: DbOpt = None,
) -> None:
    """Post an adjustment: a new line on an open month's statement (closed statements never change)."""
    from evsite.console import load_or_exit
    from evsite.metering.billing import Adjustment, BillingError, BillingPeriod

    site = load_or_exit(site_path)
    if unit not in {u.id for u in site.units}:
        raise _fail(f"unit {unit!r} is not in {site_path}")
    try:
        value = Decimal(amount)
        BillingPeriod.of(month, site.timezone)
    except InvalidOperation:
        raise _fail(f"amount {amount!r} is not a number") from None
    except BillingError as exc:
        raise _fail(str(exc)) from None
    adjustment = Adjustment("", unit, month, description, value, not not_taxable, refers_to)
    try:
        new_id = asyncio.run(_adjust(_url(site_path, db), adjustment))
    except BillingError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"adjustment {new_id} posted on {unit}'s {month} statement: {value}")


async def _adjust(url: str, adjustment: Any) -> int:
    from evsite.metering.repository import add_adjustment
    from evsite.metering.tables import ensure_tables
    from evsite.store.db import create_engine

    engine = create_engine(url)
    try:
        await ensure_tables(engine)
        return await add_adjustment(engine, adjustment)
    finally:
        await engine.dispose()


@readings_app.command("export")
def export(
    site_path: SiteArg,
    start: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD (site local time).")],
    end: Annotated[str, typer.Option("--to", help="Day after the last, YYYY-MM-DD (site local time).")],
    out: Annotated[Path, typer.Option("--out", help="CSV file to write.")],
    charger: Annotated[str | None, typer.Option("--charger", help="Only this charger or meter.")] = None,
    db: DbOpt = None,
) -> None:
    """Export every stored reading (OCPP samples and submeter registers) as CSV, values verbatim."""
    from zoneinfo import ZoneInfo

    from evsite.console import load_or_exit
    from evsite.metering.repository import export_readings
    from evsite.store.db import create_engine

    site = load_or_exit(site_path)
    tz = ZoneInfo(site.timezone)
    try:
        first, last = (datetime.combine(date.fromisoformat(d), datetime.min.time(), tzinfo=tz) for d in (start, end))
    except ValueError as exc:
        raise _fail(f"dates must be YYYY-MM-DD: {exc}") from None
    if last <= first:
        raise _fail("--to must be after --from")

    async def run() -> int:
        engine = create_engine(_url(site_path, db))
        try:
            return await export_readings(engine, out, first, last, charger)
        finally:
            await engine.dispose()

    count = asyncio.run(run())
    typer.echo(f"wrote {count} readings to {out}")


def register(app: typer.Typer) -> None:
    app.command("bill")(bill)
    app.command("adjust")(adjust)
    app.add_typer(readings_app, name="readings")
