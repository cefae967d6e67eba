"""Submetering and per-unit billing: sessions, meter fitness, integrity, tariffs, statements.

Importing the package registers the `multifamily-month` scenario with the load manager's replay
(`evsite.control.scenarios`), built from the same month of visits that `evsite.metering.month` stores.
"""

from __future__ import annotations

from typing import Any


def _multifamily_month(seed: int) -> Any:
    from evsite.metering.month import control_scenario

    return control_scenario(seed)


def _register_scenario() -> None:
    try:
        from evsite.control.scenarios import register_session_source
    except ImportError:  # the load manager is not installed with this build
        return
    register_session_source("multifamily-month", _multifamily_month)


_register_scenario()
