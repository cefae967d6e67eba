"""What every `evsite` command shares: the consoles, and loading a site file or exiting with its problems.

It sits below the command modules (which live in their packages until they move to one `cli`
package) so that none of them imports the `evsite.cli` entry point that registers them.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from evsite.site import Site, SiteFileError, load_site

console = Console()
err_console = Console(stderr=True)


def load_or_exit(path: Path) -> Site:
    """Load a site file or print every problem (file:line:column) and exit with status 2."""
    try:
        return load_site(path)
    except SiteFileError as exc:
        print_problems(exc, path)
        raise typer.Exit(2) from None


def print_problems(exc: SiteFileError, path: Path) -> None:
    """One unwrapped `file:line:column: message` line per problem, so editors can jump to it."""
    for problem in exc.problems:
        err_console.print(str(problem), markup=False, highlight=False, soft_wrap=True)
    count = len(exc.problems)
    summary = f"{count} problem{'s' if count != 1 else ''} in {path}"
    err_console.print(summary, style="bold red", markup=False, highlight=False, soft_wrap=True)
