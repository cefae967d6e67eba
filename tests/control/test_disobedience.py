"""Closed-loop enforcement when chargers or cars disobey (issue 22), on the replay's modelled site.

The workplace example: 20 × 48 A single-phase 208 V ports behind the EV feeder F-EV, whose EMS
setpoint is 160 A per line (`evsite check`). Twenty cars wanting 48 A each arrive together, so the
feeder is congested the whole time; the faults act from the first minute, and at 5 min a limit
step takes the feeder to 110 A per line (as the issue's operator limit did) until the end. The replay's ground truth
is what the modelled EVs physically draw, compared with the true limit every 2 s step; the
controller sees only statuses, meter samples and the answers to its commands.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from evsite.control.controller import Controller
from evsite.control.replay import Replay
from evsite.control.scenarios import DrEvent, Fault, Scenario, Session, example_site
from evsite.control.tree import build_tree
from evsite.runtime.events import ConnectorStatus, MeterSample, TransactionEvent

MINUTES = 60.0
START = datetime(2026, 6, 3, tzinfo=UTC)
T0 = START.timestamp()
LIMIT_A = 160.0  # EMS-EV setpoint on F-EV (examples/workplace-20.yaml)
STEP_A = 110.0


def _busy_feeder(
    faults: list[Fault], *, node_meters: bool = False, minutes: float = 12.0, steps: list[DrEvent] | None = None
) -> Replay:
    site = example_site("workplace-20")
    sessions = [
        Session(e.id, 0.0, minutes * MINUTES + 60, 80_000.0, ev_max_a=48.0, start_delay_s=10.0, lag_s=3.0)
        for e in site.evse
    ]
    dr = steps if steps is not None else [DrEvent(5 * MINUTES, 1e9, "F-EV", STEP_A)]
    scenario = Scenario(
        "disobedience", site, sessions, minutes * MINUTES, dr=dr, faults=faults, node_meters=node_meters
    )
    replay = Replay(scenario, "fair")
    replay.run()
    return replay


def _metrics(replay: Replay) -> dict[str, float]:
    return {"longest": replay.longest_excursion_s, "over_As": replay.over_by_node.get("F-EV", 0.0)}


def test_obedient_fleet_is_the_baseline() -> None:
    replay = _busy_feeder([])
    assert replay.longest_excursion_s <= 15.0
    assert not replay.ctrl.noncompliant.any()


@pytest.mark.parametrize("chargers", [("WP-02",), ("WP-01", "WP-02", "WP-03")])
def test_chargers_ignoring_every_profile_are_absorbed_by_the_others(chargers: tuple[str, ...]) -> None:
    # Each one keeps drawing 48 A whatever it accepted (three: two of them on every line, 96 A of the
    # 110 A). Before: counted at the ceiling of its unconfirmed reduction, which only blocked raises of
    # the others: the feeder was over for the whole run (7 minutes).
    replay = _busy_feeder([Fault("ignore", 0.0, 1e9, target=cp) for cp in chargers])
    assert replay.longest_excursion_s <= 15.0, _metrics(replay)
    ctrl = replay.ctrl
    flagged = {ctrl.tree.ports[p].charge_point_id for p in np.flatnonzero(ctrl.noncompliant)}
    assert flagged == set(chargers)
    alerts = ctrl.alerts(replay.scenario.duration_s)
    assert {a["kind"] for a in alerts} == {"charger-noncompliant"}
    assert all(any(cp in a["message"] for a in alerts) for cp in chargers)


@pytest.mark.parametrize("factor", [1.10, 1.04])
def test_cars_drawing_over_the_pilot_have_their_ratio_learned(factor: float) -> None:
    # J1772 cars may draw a few % above the pilot. Before: the reduction to the fair share was never
    # "confirmed" (the draw stayed above the setpoint), nothing was reserved, +7 to +10 A all run long.
    replay = _busy_feeder([Fault("overdraw", 0.0, 1e9, target="*", factor=factor)])
    assert replay.longest_excursion_s <= 15.0, _metrics(replay)
    ctrl = replay.ctrl
    charging = ctrl.present & (ctrl.sent >= 6.0)
    assert np.all(ctrl.ratio[charging] >= factor - 0.02)
    assert not ctrl.noncompliant.any()  # overdraw within the tolerance is not disobedience


def test_a_charger_applying_profiles_a_minute_late_is_covered_by_the_others() -> None:
    # 160 → 110 A at 5 min: WP-02 keeps its old pilot for 60 s. The first time it cannot be told from an
    # obedient car until the response window has passed and a sample shows it (≤ 15 s + one sample
    # interval + the others' own lag). From then on it is counted at its old pilot until it confirms, so
    # the second step (110 → 80 A at 9 min) is absorbed by the others within the window. Before: the
    # others were never lowered for it (over ~50 s each time).
    steps = [DrEvent(5 * MINUTES, 1e9, "F-EV", 110.0), DrEvent(9 * MINUTES, 1e9, "F-EV", 80.0)]
    replay = _busy_feeder([Fault("late", 0.0, 1e9, target="WP-02", delay_s=60.0)], steps=steps)
    assert replay.longest_excursion_s <= 15.0 + 10.0 + 11.0, _metrics(replay)
    assert replay.ctrl.flagged[replay.tree.port_index[("WP-02", 1)]]
    after_second = [d for start, d in replay.excursion_log if start >= 9 * MINUTES]
    assert max(after_second, default=0.0) <= 15.0, replay.excursion_log


def test_an_under_reporting_charger_is_caught_by_the_feeder_meter() -> None:
    # WP-02 ignores every profile and its meter reports half of its draw. The panel meter M-EVP on F-EV
    # reads the truth; the gap between it and the chargers' reports is taken off the feeder.
    faults = [
        Fault("ignore", 0.0, 1e9, target="WP-02"),
        Fault("meter-low", 0.0, 1e9, target="WP-02", factor=0.5),
    ]
    replay = _busy_feeder(faults, node_meters=True)
    assert replay.longest_excursion_s <= 15.0, _metrics(replay)
    kinds = {a["kind"] for a in replay.ctrl.alerts(replay.scenario.duration_s)}
    assert "meter-mismatch" in kinds


def test_a_non_compliant_port_is_escalated_lower_then_paused() -> None:
    """Counting + alert + escalation on the controller alone: 6 A first, then 0 A a minute later."""
    site = example_site("workplace-20")
    tree = build_tree(site)
    ctrl = Controller(site, tree)
    for e in site.evse:
        ctrl.observe(ConnectorStatus(e.id, 1, "Charging"), 0.0)
    ctrl.observe(TransactionEvent("WP-02", 1, 1, "started", "T", 0.0), 0.0)
    p = tree.port_index[("WP-02", 1)]
    t = 0.0

    def cycle(t: float) -> np.ndarray:  # the controller's clock is the events' (wall time when live)
        setpoints, to_send = ctrl.decide(tree.limits, T0 + t)
        for q in to_send:
            ctrl.begin_send(int(q), float(setpoints[q]))
            ctrl.record_result(int(q), float(setpoints[q]), True, T0 + t)
        return setpoints

    def sample(t: float, amps: float) -> None:
        for e in site.evse:
            drawn = amps if e.id == "WP-02" else float(ctrl.sent[tree.port_index[(e.id, 1)]])
            ctrl.observe(MeterSample(e.id, 1, _at(t), current_a={"L1": drawn}), T0 + t)

    setpoints = cycle(t)
    assert 6.0 <= setpoints[p] < 48.0
    for t in np.arange(2.0, 30.0, 2.0):
        sample(float(t), 48.0)
        setpoints = cycle(float(t))
    assert ctrl.noncompliant[p]
    assert setpoints[p] == 6.0  # "lower": the J1772 minimum
    assert [a["key"] for a in ctrl.alerts(T0 + 30.0)] == ["noncompliant:WP-02:1"]
    # Counted at what it takes: every line of F-EV within 160 A with WP-02 at 48 A + margin.
    load = tree.node_load(np.where(np.arange(tree.n_ports) == p, 50.0, setpoints))[tree.node_index["F-EV"]]
    assert load.max() <= LIMIT_A + 1e-6
    for t in np.arange(30.0, 100.0, 2.0):
        sample(float(t), 48.0)
        setpoints = cycle(float(t))
    assert setpoints[p] == 0.0  # "pause" a minute after detection
    # It obeys at last: no longer non-compliant, the alert clears.
    for t in np.arange(100.0, 130.0, 2.0):
        sample(float(t), 0.0)
        cycle(float(t))
    assert not ctrl.noncompliant[p]
    assert ctrl.alerts(T0 + 130.0) == []


def _at(t: float) -> datetime:
    return START + timedelta(seconds=t)
