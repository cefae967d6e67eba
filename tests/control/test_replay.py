"""Replay: the real controller against modelled EVs; safety and service metrics; the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from evsite.cli import app
from evsite.control.mpc import offline_optimum
from evsite.control.replay import run_replay
from evsite.control.scenarios import HOUR, Scenario, Session, example_site, get_scenario, residential_evening
from evsite.control.tree import build_tree


def test_residential_evening_sheds_and_recovers_without_pausing() -> None:
    m = run_replay(residential_evening(), "fair")
    assert m["excursions_gt_15s"] == 0
    assert m["pause_resume_per_session"] == 0
    # The house steps from 50 A to 142 A at once: the car at 48 A needs one PWM update plus its lag
    # (≤ 5 s + 3 s) to come down to 16 A, 30 A over the 160 A for at most ~8 s. Nothing else is over.
    assert 0 < m["over_limit_As"] <= 30 * 10


def test_uncontrolled_baseline_overloads_and_fair_does_not() -> None:
    scenario = get_scenario("workplace-day")
    scenario.duration_s = 13 * HOUR
    fair = run_replay(scenario, "fair")
    scenario = get_scenario("workplace-day")
    scenario.duration_s = 13 * HOUR
    wild = run_replay(scenario, "uncontrolled")
    assert wild["excursions_gt_15s"] > 0 and wild["over_limit_As"] > 1e5
    assert fair["excursions_gt_15s"] == 0
    assert fair["over_limit_As"] <= 0.01 * wild["over_limit_As"]
    assert fair["pause_resume_per_session"] == 0  # 160 A / 14 ports stays above 6 A: nobody needs pausing


def test_workplace_day_fair_shares_by_need() -> None:
    """The issue's fairness goal: Jain ≥ 0.90 over delivered/requested among equal-class sessions.

    Equal currents left it at 0.89: an EV that must average 45 A in a 3-hour stay got the same ~11 A
    as one that needs 8 A over 8 hours, so the first left with a third of its energy while the second
    was done by noon. Weighting each EV by the current it needs gives everyone the same fraction of
    its need instead, and the day delivers more energy with it (no more idle current after noon).
    """
    m = run_replay(get_scenario("workplace-day"), "fair")
    assert m["jain_fairness"] >= 0.90
    assert m["excursions_gt_15s"] == 0 and m["over_limit_As"] == 0
    # Weighted shares pause a car only when its share falls under 3.5 A: at most one pause in 23 sessions.
    assert m["pause_resume_per_session"] <= 1 / 23 + 1e-9
    blind = run_replay(get_scenario("workplace-day"), "equal")  # equal currents, the old sharing
    assert m["energy_delivered_pct"] > blind["energy_delivered_pct"]


def test_dr_curtailment_with_lost_channel_keeps_the_cap() -> None:
    scenario = get_scenario("dr-curtailment-lost")
    scenario.duration_s = 17 * HOUR
    m = run_replay(scenario, "fair")
    assert m["excursions_gt_15s"] == 0
    assert m["t_comply_s"] is not None and m["t_comply_s"] <= 15.0


def test_faults_scenario_stays_safe() -> None:
    scenario = get_scenario("faults")
    scenario.duration_s = 13 * HOUR
    m = run_replay(scenario, "fair")
    assert m["excursions_gt_15s"] == 0


def test_single_session_gets_everything_it_asked_for() -> None:
    site = example_site("workplace-20")
    scenario = Scenario("one", site, [Session("WP-01", 60.0, 6 * HOUR, 20_000.0, ev_max_a=32.0)], 7 * HOUR)
    m = run_replay(scenario, "fair")
    assert m["sessions_fully_served"] == 1
    assert m["energy_delivered_pct"] == pytest.approx(100.0, abs=0.1)


def test_offline_optimum_of_two_sessions_by_hand() -> None:
    """Two 208 V sessions on one L1-L2 pair under a 160 A cap: both get everything (48 A max each, 2 h,
    48 A × 208 V × 2 h = 19.97 kWh each ≥ the 10 kWh asked)."""
    site = example_site("workplace-20")
    tree = build_tree(site)
    volts = [208.0] * tree.n_ports
    import numpy as np

    got = offline_optimum(
        tree, [0.0, 0.0], [7200.0, 7200.0], [10_000.0, 30_000.0], [48.0, 48.0], [0, 3], np.array(volts)
    )
    assert got[0] == pytest.approx(10_000.0, rel=1e-6)
    # The second can take 48 A for the whole steps inside its stay: 7200 s = 24 whole 5-min steps × 48 A × 208 V.
    assert got[1] == pytest.approx(24 * 300 / 3600 * 48 * 208, rel=1e-6)


def test_cli_replay_json_and_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["replay", "--scenario", "residential-evening", "--json", "--hours", "19"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["scenario"] == "residential-evening"
    bad = runner.invoke(app, ["replay", "--scenario", "nope"])
    assert bad.exit_code == 2 and "unknown scenario" in bad.output
    sessions = tmp_path / "s.json"
    sessions.write_text(
        json.dumps([{"evse": "HOME-EV1", "arrival_s": 0, "departure_s": 7200, "energy_wh": 5000, "colour": 1}])
    )
    site = Path(__file__).resolve().parents[2] / "examples" / "residential.yaml"
    bad = runner.invoke(app, ["replay", str(site), "--sessions", str(sessions)])
    assert bad.exit_code == 2 and "unknown field(s) colour" in bad.output
    sessions.write_text(json.dumps([{"evse": "HOME-EV1", "arrival_s": 0, "departure_s": 7200, "energy_wh": 5000}]))
    ok = runner.invoke(app, ["replay", str(site), "--sessions", str(sessions), "--json", "--no-db"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["sessions_fully_served"] == 1


def test_the_multifamily_month_is_a_named_scenario_without_an_import_cycle() -> None:
    from evsite.metering.month import control_scenario
    from evsite.sim import scenarios

    month = scenarios.get_scenario("multifamily-month")
    assert len(month.sessions) == len(control_scenario().sessions) > 100  # the billing generator's visits
    assert scenarios.get_scenario("workplace-day").name == get_scenario("workplace-day").name
    with pytest.raises(KeyError, match="multifamily-month"):
        scenarios.get_scenario("nowhere")  # the message lists every name, the month included
    with pytest.raises(KeyError):
        get_scenario("multifamily-month")  # the load manager alone does not know the billing generator


def test_steady_steps_stop_before_the_taper_and_the_horizon() -> None:
    from evsite.control.replay import steady_steps

    one = np.ones(1, dtype=bool)
    # 32 A at 240 V for 2 s is 32 * 240 * 2 / 3600 = 4.2667 Wh a step; the taper reaches 32 A at 3000 Wh left
    # (0.15 * 20 kWh), so from 10,000 Wh left (10,000 - 3000) / 4.2667 = 1640.6 -> 1640 steady steps.
    k = steady_steps(0.0, 2.0, 1e9, one, np.array([32.0]), np.array([10_000.0]), np.array([3000.0]), np.array([240.0]))
    assert k == 1640
    # An arrival at t = 7 s: steps at 0, 2, 4, 6 are before it, the one at 8 s must be an ordinary step.
    k = steady_steps(0.0, 2.0, 7.0, one, np.array([32.0]), np.array([10_000.0]), np.array([3000.0]), np.array([240.0]))
    assert k == 4
    # A car on its taper floor (no taper bound) still stops one step short of finishing: 10 / 4.2667 = 2.3 -> 1.
    k = steady_steps(0.0, 2.0, 1e9, one, np.array([32.0]), np.array([10.0]), np.array([0.0]), np.array([240.0]))
    assert k == 1


def test_leaps_and_quiet_cycles_give_the_same_replay() -> None:
    from evsite.control.replay import Replay

    site = example_site("residential")
    evse = site.evse[0].id
    sessions = [
        Session(evse, 600.0, 6 * HOUR, 30_000.0, ev_max_a=16.0),  # 16 A on a 48 A charger for hours: steady
        Session(evse, 7 * HOUR, 9 * HOUR, 4_000.0, ev_max_a=32.0),
    ]
    fine = Replay(Scenario("steady", site, sessions, 10 * HOUR), "fair", leap_s=0.0, quiet_cycles=False).run()
    fast = Replay(Scenario("steady", site, sessions, 10 * HOUR), "fair").run()
    assert fine["leaps"] == 0 and fast["leaps"] > 10
    for key in (
        "energy_delivered_kwh",
        "sessions_fully_served",
        "over_limit_As",
        "energy_cost",
        "pause_resume_per_session",
    ):
        assert fast[key] == fine[key], key
    assert fast["cycles"] < fine["cycles"] / 3
