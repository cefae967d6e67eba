"""Submetering and per-unit billing: sessions, meter fitness, integrity, tariffs, statements.

`register_scenarios()` gives the load manager's replay (`evsite.control.scenarios`) the
`multifamily-month` scenario, built from the same month of visits that `evsite.metering.month`
stores; the replay calls it when that scenario is asked for.
"""

from __future__ import annotations

from typing import Any


def _multifamily_month(seed: int) -> Any:
    from evsite.metering.month import control_scenario

    return control_scenario(seed)


def register_scenarios() -> None:
    from evsite.control.scenarios import register_session_source

    register_session_source("multifamily-month", _multifamily_month)
