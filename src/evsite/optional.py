"""Optional parts of evsite and the pip extra that installs each.

The base install (`pip install evsite`) runs the design check and the whole controller; a few
integrations need packages that are heavy or pin old dependencies, so they come as extras. A site
that configures one of them without the extra gets one log line naming the extra, not a traceback.
"""

from __future__ import annotations

import importlib.util
import sys

EXTRAS: dict[str, tuple[str, str]] = {
    "openleadr": ("OpenADR 2.0b demand response", "grid"),
    "bacpypes3": ("the BACnet/IP device", "bms"),
    "asyncpg": ("PostgreSQL", "postgres"),
    "nats": ("several nodes as a cluster (NATS JetStream)", "cluster"),
}
"""Import name → (what needs it, the extra that installs it)."""


class MissingExtra(RuntimeError):
    """An optional part was asked for but its package is not installed."""


def available(module: str) -> bool:
    """True when the optional package can be imported (checked without importing it)."""
    if module in sys.modules:  # imported already, or blocked with None (how tests simulate a missing package)
        return sys.modules[module] is not None
    return importlib.util.find_spec(module) is not None


def missing_message(module: str) -> str:
    """One line for an operator: what is off, and the command that turns it on."""
    what, extra = EXTRAS[module]
    return f"{what} is off: it needs the '{extra}' extra (pip install 'evsite[{extra}]')"


def require(module: str) -> None:
    """Raise `MissingExtra` with the one-line message when `module` is not installed."""
    if not available(module):
        raise MissingExtra(missing_message(module))
