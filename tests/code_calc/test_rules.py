"""Behaviour of the calculators beyond the published examples: the rule boundaries, the classic
calculator bugs we must not repeat, and clear errors for inputs the tables do not cover."""

from __future__ import annotations

import math

import pytest

from evsite.code.findings import Status
from evsite.code.sizing import (
    CalcError,
    ampacity,
    check_conductor,
    default_termination_c,
    egc_size,
    evaluate_harmonics,
    existing_load_220_87,
    max_ocpd_for,
    min_conductor_for_drop,
    next_standard_ocpd,
    size_branch,
    voltage_drop,
)


def test_three_phase_drop_uses_root_3_not_2() -> None:
    one = voltage_drop("6 AWG Cu", None, 50, 480, 1, 150)
    three = voltage_drop("6 AWG Cu", None, 50, 480, 3, 150)
    assert three.voltage_drop_v / one.voltage_drop_v == pytest.approx(math.sqrt(3) / 2)
    # The research notes flag voltagedropcalculator.net's "42.6 V" for this case as wrong (≈ 6.4 V).
    assert three.voltage_drop_v == pytest.approx(6.4, abs=0.1)


def test_48a_on_6_awg_fails_at_60c_with_the_fix() -> None:
    findings = check_conductor("6 AWG", "cu", "THHN", 60, 30, 2, load_a=48, continuous=True, ocpd_a=60)
    first = findings[0]
    assert first.status is Status.FAIL
    assert str(first.rule) == "NEC 2023 210.19(A)(1)(a), 110.14(C), Table 310.16 (60 °C column)"
    assert first.fix is not None
    assert first.fix.startswith("use 4 AWG Cu (70 A at 60 °C terminations) or 75 °C-rated terminations")
    assert "48 A × 1.25 = 60 A (continuous load)" in first.arithmetic
    passing = check_conductor("6 AWG", "cu", "THHN", 75, 30, 2, load_a=48, continuous=True, ocpd_a=60)
    assert all(f.status is Status.PASS for f in passing)


def test_small_conductor_rule_240_4_d() -> None:
    findings = check_conductor("12 AWG", "cu", "THHN", 75, 30, 2, load_a=16, continuous=True, ocpd_a=25)
    protection = findings[-1]
    assert protection.status is Status.FAIL and str(protection.rule) == "NEC 2023 240.4(D)"
    assert ampacity("10 AWG Al", None, "XHHW-2", 75).max_ocpd_a == 25


def test_next_size_up_240_4_b_and_its_800_a_limit() -> None:
    # Mike Holt (lilys.ai/notes/140703): "the practice is to put 500 kcmil on 400 amp breakers" (380 A at 75 °C).
    assert ampacity("500 kcmil Cu", None, "THHN", 75).max_ocpd_a == 400
    rating, rule, _ = max_ocpd_for(810, "2000 kcmil", "cu")
    assert (rating, rule) == (800, "240.4(C)")


def test_derating_can_govern_over_terminations() -> None:
    hot = ampacity("8 AWG Cu", None, "THHN", 75, ambient_c=50, ccc=6)
    assert hot.derated_a == pytest.approx(55 * 0.82 * 0.80)
    assert hot.ampacity_a == pytest.approx(hot.derated_a)  # below the 50 A termination value


def test_derated_check_fails_when_load_exceeds_corrected_ampacity() -> None:
    findings = check_conductor("8 AWG", "cu", "THHN", 75, 50, 6, load_a=38, continuous=False, ocpd_a=40)
    derated = findings[1]
    assert derated.topic == "conductor ampacity after correction and adjustment"
    assert derated.status is Status.FAIL and derated.fix


def test_checking_a_given_circuit() -> None:
    # The residential circuit: 48 A EVSE, 60 A breaker, 6 AWG Cu — passes at 75 °C, fails at 60 °C.
    ok = size_branch(48, 240, termination_c=75, conductor="6 AWG Cu", ocpd_a=60)
    assert all(f.status is not Status.FAIL for f in ok.findings)
    bad = size_branch(48, 240, termination_c=60, conductor="6 AWG Cu", ocpd_a=60)
    failed = [f for f in bad.findings if f.status is Status.FAIL]
    assert [str(f.rule) for f in failed] == ["NEC 2023 210.19(A)(1)(a), 110.14(C), Table 310.16 (60 °C column)"]
    small_breaker = size_branch(48, 240, termination_c=75, conductor="6 AWG Cu", ocpd_a=50)
    assert any(str(f.rule) == "NEC 2023 625.41" and f.status is Status.FAIL for f in small_breaker.findings)
    odd = size_branch(48, 240, termination_c=75, conductor="6 AWG Cu", ocpd_a=65)
    assert any(str(f.rule) == "NEC 2023 240.6(A)" and f.status is Status.FAIL for f in odd.findings)


def test_ocpd_rounds_up_never_down() -> None:
    assert next_standard_ocpd(62.5) == 70
    assert next_standard_ocpd(60.0) == 60
    assert next_standard_ocpd(60.01) == 70
    with pytest.raises(CalcError):
        next_standard_ocpd(7000)


def test_three_phase_480_needs_disconnect_and_dwelling_gfci_boundary() -> None:
    assert size_branch(32, 480, phases=3).disconnect_required  # 277 V to ground > 150 V
    assert size_branch(32, 240, dwelling=True, location="outdoor").gfci_required  # 40 A circuit, 210.8(F)
    assert not size_branch(48, 240, dwelling=True, location="outdoor").gfci_required  # 60 A circuit
    assert not size_branch(32, 240, dwelling=True, location="indoor").gfci_required
    assert size_branch(32, 277).disconnect_required  # 277 V line to neutral
    assert not size_branch(32, 208).disconnect_required  # two lines of 208Y/120: 120 V to ground


def test_min_conductor_for_drop_respects_limit() -> None:
    sized = min_conductor_for_drop("cu", 48, 240, 1, 250, 3.0)
    assert sized.voltage_drop_pct <= 3.0
    assert sized.min_conductor == "3 AWG Cu"  # 4 AWG: 2×12.9×48×250/41,740 = 7.42 V = 3.09 %


def test_egc_not_upsized_when_phase_is_minimum() -> None:
    egc = egc_size(60, "cu", "6 AWG Cu", "6 AWG Cu")
    assert egc.egc == "10 AWG Cu" and egc.ratio == 1.0
    assert egc_size(100, "al").egc == "6 AWG Al"


def test_harmonics_fail_and_report_orders() -> None:
    result = evaluate_harmonics(480, 1500, 100, {5: 5.0, 7: 3.0, 11: 2.5})  # ratio 15 → row < 20
    assert result.failing_orders == [5, 11]
    assert not result.passed
    assert result.to_dict()["pass"] is False


def test_220_87_in_kva_three_phase() -> None:
    calc = existing_load_220_87(400, max_demand_kva=200, add_va=50_000, volts=480, phases=3)
    assert calc.existing_load_a == pytest.approx(200_000 / (480 * math.sqrt(3)) * 1.25)
    assert calc.new_load_a == pytest.approx(50_000 / (480 * math.sqrt(3)))


def test_feeder_with_noncontinuous_share() -> None:
    # 215.2(A)(1)(a): 125 % of continuous plus 100 % of non-continuous; 3 AWG Cu at 75 °C = 100 A.
    findings = check_conductor("3 AWG", "cu", "THHN", 75, 30, 3, load_a=60, continuous=True, ocpd_a=100,
                               noncontinuous_a=30)  # fmt: skip
    assert findings[0].status is Status.FAIL  # 60 × 1.25 + 30 = 105 A > 100 A
    assert "60 A × 1.25 + 30 A = 105 A (continuous + non-continuous)" in findings[0].arithmetic
    assert findings[0].fix and findings[0].fix.startswith("use 2 AWG Cu (115 A at 75 °C terminations)")


def test_default_termination_follows_110_14_c() -> None:
    assert default_termination_c(60, "6 AWG") == 60
    assert default_termination_c(125, "1 AWG") == 60  # 14–1 AWG conductors → 60 °C
    assert default_termination_c(200, "3/0 AWG") == 75


def test_220_87_new_load_at_125_percent_on_request() -> None:
    plain = existing_load_220_87(200, max_demand_a=100, add_va=11520, volts=240)
    continuous = existing_load_220_87(200, max_demand_a=100, add_va=11520, volts=240, new_load_continuous=True)
    assert continuous.new_load_a == pytest.approx(plain.new_load_a * 1.25)
    assert continuous.total_a > plain.total_a


@pytest.mark.parametrize(
    "call",
    [
        lambda: ampacity("14 AWG Al", None, "THHN", 75),  # not in Table 310.16 for Al
        lambda: ampacity("6 AWG Cu", None, "TW", 60, ambient_c=60),  # too hot for 60 °C insulation
        lambda: ampacity("6 AWG Cu", None, "PLASTIC", 60),
        lambda: ampacity("6 AWG Cu", "al", "THHN", 60),  # material disagrees with the name
        lambda: voltage_drop("700 kcmil Cu", None, 100, 480, 3, 100, pf=0.9),  # not in Table 9
        lambda: voltage_drop("6 AWG Cu", None, 10, 240, 2, 100),
        lambda: existing_load_220_87(200, add_va=1000, volts=240),  # no demand given
        lambda: size_branch(48, 240, location="garage"),
    ],
)
def test_clear_errors(call: object) -> None:
    with pytest.raises(CalcError):
        call()  # type: ignore[operator]
