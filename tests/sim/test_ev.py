"""The EV model against J1772 pilot facts (DESIGN.md §3; grid-building-protocols.md §5).

6 A is the lowest pilot current; below it the EVSE pauses (no 0–6 A). EVs follow a pilot change
after a delay (~5 s), may wait 10–40 s before drawing after being enabled, draw at most their
on-board charger current, and less near full.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from evsite.sim.ev import Ev, PilotState, pilot_amps


@given(st.one_of(st.none(), st.floats(-10, 200, allow_nan=False)), st.floats(6, 80, allow_nan=False))
def test_pilot_is_a_pause_or_at_least_six_amps_and_never_above_the_evse(limit: float | None, evse: float) -> None:
    amps = pilot_amps(limit, evse)
    assert amps == 0.0 or 6.0 <= amps <= evse
    if limit is not None:
        assert amps <= max(limit, 0.0)


def test_pilot_examples() -> None:
    assert pilot_amps(5.9, 32) == 0.0
    assert pilot_amps(6.0, 32) == 6.0
    assert pilot_amps(None, 32) == 32.0  # no profile: the EVSE offers its maximum (§3.13.6)
    assert pilot_amps(40.0, 32) == 32.0


def test_start_delay_then_follow_delay() -> None:
    ev = Ev(obc_max_a=32, start_delay_s=20, follow_delay_s=5, soc=0.2)
    ev.plug_in(0.0)
    assert ev.state is PilotState.B
    ev.set_pilot(32, 0.0)
    assert ev.current_a(19.9) == 0.0  # enabled, but this car waits 20 s
    assert ev.current_a(20.0) == 32.0
    assert ev.state is PilotState.C
    ev.set_pilot(10, 100.0)
    assert ev.current_a(104.9) == 32.0  # allowed to take up to ~5 s to follow
    assert ev.current_a(105.0) == 10.0
    ev.set_pilot(0.0, 200.0)  # pause
    assert ev.current_a(205.0) == 0.0
    assert ev.state is PilotState.B


def test_quirk_ignores_a_lower_pilot_for_longer() -> None:
    ev = Ev(obc_max_a=32, start_delay_s=0, follow_delay_s=5, ignore_pilot_s=10, soc=0.2)
    ev.plug_in(0.0)
    ev.set_pilot(32, 0.0)
    ev.set_pilot(16, 10.0)
    assert ev.current_a(24.9) == 32.0
    assert ev.current_a(25.0) == 16.0


def test_draws_no_more_than_its_on_board_charger() -> None:
    ev = Ev(obc_max_a=16, start_delay_s=0, soc=0.2)
    ev.plug_in(0.0)
    ev.set_pilot(48, 0.0)
    assert ev.current_a(6.0) == 16.0


def test_energy_soc_and_taper() -> None:
    ev = Ev(capacity_kwh=60, soc=0.5, obc_max_a=32, phases=1, voltage_v=230, start_delay_s=0, follow_delay_s=0)
    ev.plug_in(0.0)
    ev.set_pilot(32, 0.0)
    ev.current_a(0.0)
    ev.advance(3600.0)
    # 32 A × 230 V × 1 h = 7.36 kWh on a 60 kWh battery.
    assert abs(ev.energy_wh - 7360.0) < 1e-6
    assert abs(ev.soc - (0.5 + 7.36 / 60)) < 1e-9
    tapering = Ev(soc=0.9, taper_from_soc=0.8, obc_max_a=32, start_delay_s=0, follow_delay_s=0)
    tapering.plug_in(0.0)
    tapering.set_pilot(32, 0.0)
    assert abs(tapering.current_a(0.0) - 16.0) < 1e-9  # halfway through the taper band
    full = Ev(soc=1.0, start_delay_s=0, follow_delay_s=0)
    full.plug_in(0.0)
    full.set_pilot(32, 0.0)
    assert full.current_a(1.0) == 0.0
    assert full.state is PilotState.B


def test_stopping_the_transaction_cuts_the_current_at_once() -> None:
    ev = Ev(obc_max_a=32, start_delay_s=0, follow_delay_s=5, soc=0.2)
    ev.plug_in(0.0)
    ev.set_pilot(32, 0.0)
    assert ev.current_a(10.0) == 32.0
    ev.cut_off(10.0)  # the EVSE opened its contactor: no ~5 s grace as for a pilot change
    assert ev.current_a(10.0) == 0.0
    assert ev.state is PilotState.B
