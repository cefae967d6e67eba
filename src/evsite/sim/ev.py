"""A simulated electric vehicle on an AC (SAE J1772) connector.

The EV sees only the control pilot: the current the EVSE offers (6 A minimum; below that the EVSE
pauses, the EV must stop). It answers the way real cars do, which is what the load manager has to
cope with:

- J1772 states A (unplugged), B (plugged, not drawing), C (drawing);
- it follows a pilot change only after `follow_delay_s` (~5 s, J1772/IEC 61851-1 allow that);
- after being enabled it waits `start_delay_s` (10–40 s for some cars) before drawing;
- it draws at most its on-board charger current, on its own number of phases (a 1φ car on a 3φ
  port draws on one line), and less near full (taper), and nothing when full.

Times are simulated seconds (`SimClock.now()`); the clock's speed factor makes tests fast.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from enum import StrEnum

from evsite.site.topology import J1772_MAX_A, J1772_MIN_A


class PilotState(StrEnum):
    A = "A"  # not connected
    B = "B"  # connected, not drawing
    C = "C"  # connected, drawing


class SimClock:
    """Simulated time: `speed` simulated seconds pass per real second."""

    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.speed = speed
        self._origin = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._origin) * self.speed

    async def sleep(self, sim_seconds: float) -> None:
        await asyncio.sleep(max(0.0, sim_seconds) / self.speed)

    def real(self, sim_seconds: float) -> float:
        """Real seconds that `sim_seconds` of simulated time take."""
        return sim_seconds / self.speed


def pilot_amps(limit_a: float | None, evse_max_a: float) -> float:
    """What the EVSE puts on the pilot for a limit: 0 (pause) below 6 A, never a value in (0, 6)."""
    amps = evse_max_a if limit_a is None else min(limit_a, evse_max_a)
    if amps < J1772_MIN_A:
        return 0.0
    return min(amps, J1772_MAX_A)


@dataclass
class Ev:
    """An EV with a battery and an on-board charger."""

    capacity_kwh: float = 60.0
    soc: float = 0.3
    target_soc: float = 1.0
    obc_max_a: float = 32.0
    phases: int = 1
    voltage_v: float = 230.0  # volts across each phase's load, for power and energy
    taper_from_soc: float = 0.8
    follow_delay_s: float = 5.0
    start_delay_s: float = 10.0
    ignore_pilot_s: float = 0.0  # quirk: extra time before it obeys a lower pilot
    id_tag: str = "EV-TAG"
    state: PilotState = PilotState.A
    _pilot: float = 0.0
    _target: float = 0.0
    _changes: list[tuple[float, float]] = field(default_factory=list)
    _draw: float = 0.0
    _last_t: float | None = None
    energy_wh: float = 0.0  # delivered this plug-in

    @classmethod
    def random(cls, rng: random.Random, id_tag: str) -> Ev:
        """A plausible US EV mix: 1φ cars with 32–48 A on-board chargers, some 16 A."""
        return cls(
            capacity_kwh=rng.choice([40.0, 60.0, 75.0, 100.0]),
            soc=rng.uniform(0.1, 0.7),
            obc_max_a=rng.choice([16.0, 32.0, 32.0, 40.0, 48.0]),
            phases=1,
            start_delay_s=rng.uniform(10.0, 40.0),
            follow_delay_s=rng.uniform(2.0, 5.0),
            id_tag=id_tag,
        )

    # ---- what the EVSE does to the EV

    def plug_in(self, now: float) -> None:
        self.state = PilotState.B
        self._last_t = now
        self.energy_wh = 0.0

    def unplug(self, now: float) -> None:
        self.advance(now)
        self.state = PilotState.A
        self._pilot = self._target = self._draw = 0.0
        self._changes.clear()

    def set_pilot(self, amps: float, now: float) -> None:
        """The EVSE changed the PWM. The EV reacts after its delay (longer when it was not drawing)."""
        self.advance(now)
        if amps == self._pilot:
            return
        if self._pilot < J1772_MIN_A <= amps:
            delay = self.start_delay_s  # enabled from pause or from B1
        else:
            delay = self.follow_delay_s + (self.ignore_pilot_s if amps < self._pilot else 0.0)
        self._pilot = amps
        self._changes.append((now + delay, amps))

    def cut_off(self, now: float) -> None:
        """The EVSE opened its contactor (transaction stopped): the current stops at once."""
        self.advance(now)
        self._pilot = self._target = self._draw = 0.0
        self._changes.clear()
        if self.state is PilotState.C:
            self.state = PilotState.B

    # ---- physics

    @property
    def full(self) -> bool:
        return self.soc >= self.target_soc - 1e-9

    def _acceptance_a(self) -> float:
        """What the battery accepts: the on-board charger's maximum, tapering above `taper_from_soc`."""
        if self.full:
            return 0.0
        if self.soc <= self.taper_from_soc:
            return self.obc_max_a
        left = (self.target_soc - self.soc) / max(1e-9, self.target_soc - self.taper_from_soc)
        return max(1.0, self.obc_max_a * left)

    def _resolve(self, now: float) -> None:
        while self._changes and self._changes[0][0] <= now:
            _, self._target = self._changes.pop(0)

    def advance(self, now: float) -> None:
        """Integrate energy up to `now` at the current draw, then update the draw."""
        if self.state is PilotState.A or self._last_t is None:
            self._last_t = now
            return
        dt = max(0.0, now - self._last_t)
        wh = self._draw * self.phases * self.voltage_v * dt / 3600.0
        if wh and self.capacity_kwh > 0:
            self.soc = min(self.target_soc, self.soc + wh / 1000.0 / self.capacity_kwh)
        self.energy_wh += wh
        self._last_t = now
        self._resolve(now)
        self._draw = min(self._target, self._acceptance_a()) if self._target >= J1772_MIN_A else 0.0
        self.state = PilotState.C if self._draw > 0 else PilotState.B

    def current_a(self, now: float) -> float:
        """Amperes per used phase at `now`."""
        self.advance(now)
        return self._draw

    @property
    def drawing(self) -> bool:
        return self.state is PilotState.C
