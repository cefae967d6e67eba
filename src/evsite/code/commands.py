"""`evsite check`: run the design rules over a site file and print or write the report."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from evsite.site.model import Site


class ReportFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    MD = "md"
    HTML = "html"


def register(app: typer.Typer) -> None:
    app.command(name="check")(check)


def check(
    site_file: Annotated[Path, typer.Argument(metavar="SITE.yaml", help="Site file (YAML).", show_default=False)],
    format: Annotated[ReportFormat, typer.Option("--format", "-f", help="Report format.")] = ReportFormat.TEXT,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the report to this file.")] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Text: show the arithmetic of every finding.")
    ] = False,
) -> None:
    """Check a site design against NEC 2023, IEEE 519-2022, permit and metering rules.

    Exit status: 0 when nothing fails, 1 when any finding fails, 2 when the site file is invalid.
    """
    from evsite.code.check import cyclic_gc_paused
    from evsite.console import load_or_exit

    with cyclic_gc_paused():
        failed = _run(load_or_exit(site_file), format, out, verbose)
    if failed:
        raise typer.Exit(1)


def _run(site: Site, format: ReportFormat, out: Path | None, verbose: bool) -> bool:
    """Check, render and emit the report; True when a finding fails.

    Its own function so that the site, the report and its text are freed before the caller resumes
    the garbage collector, which then has only the few young survivors to look at.
    """
    from rich.console import Console

    from evsite.code.check import check_site
    from evsite.code.report import print_text, render

    report = check_site(site)
    if out is None and format is ReportFormat.TEXT:
        print_text(report, Console(highlight=False, soft_wrap=True), verbose)
        return report.failed
    text = render(report, format.value, verbose=verbose)
    if out is None:
        typer.echo(text, nl=False)
        return report.failed
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        Console(stderr=True).print(f"cannot write {out}: {exc.strerror}", style="bold red", markup=False)
        raise typer.Exit(2) from None
    counts = ", ".join(f"{n} {s}" for s, n in report.counts().items())
    typer.echo(f"{'FAIL' if report.failed else 'PASS'}: {counts}; report written to {out}")
    return report.failed
