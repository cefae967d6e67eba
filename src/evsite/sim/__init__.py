"""Simulated OCPP 1.6J charge points with EVs (J1772 pilot, battery), for tests, demos and load studies."""

from evsite.sim.chargepoint import ChargePointSpec, Quirks, SimChargePoint
from evsite.sim.ev import Ev, PilotState, SimClock
from evsite.sim.fleet import Arrivals, Fleet
from evsite.sim.profiles import Profile, ProfileStore

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
