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
    PDF = "pdf"


def register(app: typer.Typer) -> None:
    app.command(name="check")(check)


def check(
    site_file: Annotated[Path, typer.Argument(metavar="SITE.yaml", help="Site file (YAML).", show_default=False)],
    format: Annotated[ReportFormat, typer.Option("--format", "-f", help="Report format.")] = ReportFormat.TEXT,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the report to this file.")] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Text: show the arithmetic of every finding.")
    ] = False,
    package: Annotated[
        bool,
        typer.Option(
            "--package", help="With --format pdf or html: the permit package (cover, one-line, schedules, appendix)."
        ),
    ] = False,
) -> None:
    """Check a site design against NEC 2023, IEEE 519-2022, permit and metering rules.

    Exit status: 0 when nothing fails, 1 when any finding fails, 2 when the site file is invalid
    or the options cannot be honoured.
    """
    from rich.console import Console

    from evsite.console import load_or_exit
    from evsite.site.load import cyclic_gc_paused

    problem = None
    if format is ReportFormat.PDF and not package:
        problem = "--format pdf produces the permit package: add --package"
    elif package and format not in (ReportFormat.PDF, ReportFormat.HTML):
        problem = "--package needs --format pdf or --format html"
    elif format is ReportFormat.PDF and out is None:
        problem = "--format pdf writes a file: give --out FILE.pdf"
    if problem:
        Console(stderr=True).print(problem, style="bold red", markup=False)
        raise typer.Exit(2)
    with cyclic_gc_paused():
        site = load_or_exit(site_file)
        failed = _run_package(site, format, out) if package else _run(site, format, out, verbose)
    if failed:
        raise typer.Exit(1)


def _run_package(site: Site, format: ReportFormat, out: Path | None) -> bool:
    """Build the permit package and write it (PDF bytes or XHTML text); True when a finding fails."""
    from rich.console import Console

    from evsite.code.check import check_site
    from evsite.code.package import build_package, render_package_html

    report = check_site(site)
    pkg = build_package(report)
    data: bytes
    if format is ReportFormat.PDF:
        try:
            from evsite.code.pdf import render_pdf
        except ImportError:
            Console(stderr=True).print(
                "PDF output needs reportlab: pip install 'evsite[pdf]'", style="bold red", markup=False
            )
            raise typer.Exit(2) from None
        data = render_pdf(pkg)
    else:
        data = render_package_html(pkg).encode("utf-8")
    if out is None:
        typer.echo(data.decode("utf-8"), nl=False)
        return report.failed
    try:
        out.write_bytes(data)
    except OSError as exc:
        Console(stderr=True).print(f"cannot write {out}: {exc.strerror}", style="bold red", markup=False)
        raise typer.Exit(2) from None
    counts = ", ".join(f"{n} {s}" for s, n in report.counts().items())
    typer.echo(f"{'FAIL' if report.failed else 'PASS'}: {counts}; permit package written to {out}")
    return report.failed


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
