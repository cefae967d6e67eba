"""What the building-facing bridges (BACnet, MQTT) publish and what they may command.

The bridges depend on two small interfaces instead of the load manager itself:

- `StateSource`: a callable returning a `SiteState` snapshot (read each publish cycle);
- `CommandSink`: where validated commands go. `BusCommands` is the default implementation: it
  turns them into `SiteSignal(kind="manual_limit")` events on the `EventBus`, on node `service`
  for the site EV limit and on the EVSE's node for a charger. An empty `current_a` clears the cap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from evsite.runtime.events import EventBus, SiteSignal
from evsite.site.model import Site
from evsite.site.topology import ROOT, line_current_a

SITE_NODE = ROOT
"""Node the site-wide EV limit applies to (the load manager subtracts building load below it)."""


@dataclass(frozen=True)
class ChargerState:
    id: str
    status: str  # OCPP connector status, "Unavailable" when the charger is offline
    power_w: float = 0.0
    current_a: float = 0.0  # highest line current
    energy_wh: float | None = None  # energy register (lifetime), for Home Assistant's energy dashboard
    session_active: bool = False
    limit_a: float | None = None  # setpoint in force
    max_current_a: float = 32.0
    enabled: bool = True


@dataclass(frozen=True)
class SiteState:
    ev_power_w: float = 0.0
    current_a: dict[str, float] = field(default_factory=dict)  # site current per line (service meter)
    building_power_w: float | None = None
    sessions: int = 0
    dr_active: bool = False
    ev_limit_kw: float | None = None  # effective cap on the EV load right now
    chargers: tuple[ChargerState, ...] = ()


StateSource = Callable[[], SiteState]


class CommandSink(Protocol):
    def set_site_limit_kw(self, kw: float | None, source: str) -> None:
        """Cap the site's EV load at `kw` (None removes the cap)."""

    def set_charger_limit_a(self, charger_id: str, amps: float | None, source: str) -> None:
        """Cap one charger (A per line; None removes the cap)."""

    def set_charger_enabled(self, charger_id: str, enabled: bool, source: str) -> None:
        """Allow or stop charging on one charger."""


def line_amps(site: Site, kw: float) -> float:
    """Current per line of a balanced `kw` load on the site's service."""
    return line_current_a(site.service.system, kw)


class BusCommands:
    """Commands → `manual_limit` signals. A disabled charger gets 0 A until enabled again."""

    def __init__(self, site: Site, bus: EventBus) -> None:
        self.site = site
        self.bus = bus
        self._limits: dict[str, float | None] = {}
        self._enabled: dict[str, bool] = {}
        self._lines = {e.id: [ln.value for ln in site.circuit(e.circuit).lines] for e in site.evse}

    def set_site_limit_kw(self, kw: float | None, source: str) -> None:
        lines = self.site.service.system.lines
        amps = {} if kw is None else dict.fromkeys(lines, line_amps(self.site, kw))
        self.bus.publish(SiteSignal("manual_limit", SITE_NODE, amps, source))

    def set_charger_limit_a(self, charger_id: str, amps: float | None, source: str) -> None:
        self._limits[charger_id] = amps
        self._publish(charger_id, source)

    def set_charger_enabled(self, charger_id: str, enabled: bool, source: str) -> None:
        self._enabled[charger_id] = enabled
        self._publish(charger_id, source)

    def _publish(self, charger_id: str, source: str) -> None:
        if charger_id not in self._lines:
            raise KeyError(charger_id)
        amps = 0.0 if not self._enabled.get(charger_id, True) else self._limits.get(charger_id)
        current = {} if amps is None else dict.fromkeys(self._lines[charger_id], amps)
        self.bus.publish(SiteSignal("manual_limit", charger_id, current, source))


def site_state_from(site: Site) -> SiteState:
    """A state with every charger known but idle (before the load manager reports)."""
    chargers = tuple(ChargerState(e.id, "Unavailable", max_current_a=e.max_current_a) for e in site.evse)
    return SiteState(chargers=chargers)
