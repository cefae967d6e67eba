"""Simulated OCPP 1.6J charge points with EVs (J1772 pilot, battery), for tests, demos and load studies.

The names below load on first use, so that `evsite --help` and `evsite check` do not pay for the
OCPP stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evsite.sim.chargepoint import ChargePointSpec, Quirks, SimChargePoint
    from evsite.sim.ev import Ev, PilotState, SimClock
    from evsite.sim.fleet import Arrivals, Fleet
    from evsite.sim.profiles import Profile, ProfileStore

_HOMES = {
    "ChargePointSpec": "chargepoint",
    "Quirks": "chargepoint",
    "SimChargePoint": "chargepoint",
    "Ev": "ev",
    "PilotState": "ev",
    "SimClock": "ev",
    "Arrivals": "fleet",
    "Fleet": "fleet",
    "Profile": "profiles",
    "ProfileStore": "profiles",
}

__all__ = [
    "Arrivals",
    "ChargePointSpec",
    "Ev",
    "Fleet",
    "PilotState",
    "Profile",
    "ProfileStore",
    "Quirks",
    "SimChargePoint",
    "SimClock",
]


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'evsite.sim' has no attribute {name!r}")
    return getattr(importlib.import_module(f"evsite.sim.{home}"), name)
