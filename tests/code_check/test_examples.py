"""The three shipped examples get the reports the issue asks for.

Expected numbers come from NFPA 70-2023 Table 310.16 (6 AWG Cu: 55 A at 60 °C, 65 A at 75 °C;
4 AWG Cu: 70 A at 60 °C), 625.41/625.42 (125 % continuous) and the arithmetic stated in the issue
and in the example files' own comments (20 × 48 A × 125 % = 1,200 A; 160 A × 125 % = 200 A).
"""

from __future__ import annotations

import math

import pytest

from evsite.code.findings import Status
from tests.code_check.helpers import check_dict, example_dict, findings, one, statuses


@pytest.fixture(scope="module")
def residential():
    return check_dict(example_dict("residential"))


@pytest.fixture(scope="module")
def workplace():
    return check_dict(example_dict("workplace-20"))


@pytest.fixture(scope="module")
def multifamily():
    return check_dict(example_dict("multifamily-30"))


def test_residential_circuit_passes(residential):
    circuit = findings(residential, "circuit C-EV1")
    assert circuit, "the circuit must be checked"
    assert Status.FAIL not in statuses(circuit)
    topics = {f.topic.lower() for f in circuit if f.status is Status.PASS}
    assert {"ocpd sizing", "conductor ampacity at terminations", "conductor protection", "raceway fill"} <= topics
    ocpd = one(residential, "circuit C-EV1", "OCPD sizing")
    assert ocpd.inputs["load_a"] == 48 and ocpd.inputs["min_ocpd_a"] == 60
    assert "48 A × 125 % = 60 A" in ocpd.arithmetic
    assert not residential.failed


def test_residential_fails_with_60c_terminations():
    data = example_dict("residential")
    data["circuits"][0]["conductors"]["termination_c"] = 60
    report = check_dict(data)
    assert report.failed
    f = one(report, "circuit C-EV1", "conductor ampacity at terminations")
    assert f.status is Status.FAIL
    assert "55 A" in f.message and "60 A" in f.message  # Table 310.16: 6 AWG Cu at 60 °C = 55 A < 60 A
    assert f.fix is not None
    assert "4 AWG Cu (70 A at 60 °C terminations)" in f.fix
    assert "75 °C" in f.fix


def test_workplace_service_upgrade_avoided(workplace):
    f = one(workplace, "service", "Service upgrade avoided")
    assert f.status is Status.PASS
    assert f.inputs["unmanaged_continuous_rated_a"] == pytest.approx(1200)  # 20 × 48 A × 125 %
    assert f.inputs["managed_required_a"] == pytest.approx(200)  # 160 A × 125 %
    assert f.inputs["capacity_a"] == 200
    assert "1,200 A" in f.message and "200 A" in f.message
    # Phase-rotated 208 V circuits (7 on L1-L2, 7 on L2-L3, 6 on L3-L1): line L2 carries the L1-L2 and
    # L2-L3 groups, 336 A each, 120° apart → √3 × 336 A (balanced delta: I_line = √3 × I_phase).
    assert f.inputs["unmanaged_line_a"]["L2"] == pytest.approx(math.sqrt(3) * 336, rel=1e-6)
    assert not workplace.failed


def test_workplace_per_port_current_all_busy(workplace):
    f = one(workplace, "feeder F-EV", "Per-port current, all busy")
    # 14 ports use line L2; 160 A / 14 ports.
    assert f.inputs["ports"] == 20
    assert f.inputs["ports_per_line"] == {"L1": 13, "L2": 14, "L3": 13}
    assert f.inputs["per_port_a"] == pytest.approx(160 / 14)
    assert "11.43 A" in f.message


def test_workplace_feeder_sized_for_ems(workplace):
    f = one(workplace, "feeder F-EV", "Feeder load")
    assert f.status is Status.PASS
    assert f.inputs["required_a"] == pytest.approx(200)


def test_multifamily_needs_revenue_grade_metering(multifamily):
    assert multifamily.failed
    site = one(multifamily, "site", "Metering for billing")
    assert site.status is Status.FAIL
    assert sorted(site.inputs["informational_only"]) == [f"MF-P2-{i:02d}" for i in range(1, 16)]
    assert "revenue-grade" in site.message
    for i in range(1, 16):
        assert one(multifamily, f"evse MF-P2-{i:02d}", "Revenue-grade metering").status is Status.FAIL
        assert one(multifamily, f"evse MF-P1-{i:02d}", "Revenue-grade metering").status is Status.PASS
    fails = {f.topic for f in multifamily.findings if f.status is Status.FAIL}
    assert fails == {"Revenue-grade metering", "Metering for billing"}


def test_multifamily_power_quality_study(multifamily):
    f = one(multifamily, "site", "Power-quality study")
    assert f.status is Status.WARN
    assert f.inputs == {"chargers": 30, "threshold": 10}
    assert "power-quality study" in f.message


def test_small_site_no_study(residential):
    assert one(residential, "site", "Power-quality study").status is Status.INFO


def test_study_threshold_is_a_jurisdiction_setting():
    data = example_dict("multifamily-30")
    data["jurisdiction"]["amendments"] = {"power_quality_study_at_chargers": 40}
    assert one(check_dict(data), "site", "Power-quality study").status is Status.INFO


def test_report_groups_in_walk_order(workplace):
    kinds = [element.split()[0] for element in workplace.groups()]
    order = ["service", "panel", "feeder", "circuit", "evse", "site"]
    assert kinds == sorted(kinds, key=order.index)
    assert kinds[0] == "service" and kinds[-1] == "site"


def test_workplace_setpoint_above_allocation_fails():
    # 220.70: the EMS setpoint is a continuous load: 170 A × 125 % = 212.5 A > the 200 A allocation and feeder.
    data = example_dict("workplace-20")
    data["ems"][0]["setpoint_a"] = 170
    report = check_dict(data)
    assert one(report, "service", "EV load on the service").status is Status.FAIL
    assert one(report, "feeder F-EV", "EMS setpoint").status is Status.FAIL
    assert one(report, "feeder F-EV", "Feeder load").status is Status.FAIL
    assert one(report, "service", "Service upgrade avoided").status is Status.INFO


def test_multifamily_upgrade_avoided_against_existing_load(multifamily):
    # 220.87: 420 kVA / (√3 × 208 V) = 1,165.8 A existing; 2,000 A − 125 % × 1,165.8 A = 542.7 A for EV.
    f = one(multifamily, "service", "Service upgrade avoided")
    assert f.status is Status.PASS
    assert f.inputs["capacity_a"] == pytest.approx(2000 - 1.25 * 420_000 / (math.sqrt(3) * 208))
    assert f.inputs["managed_required_a"] == pytest.approx(400)  # two EMS × 160 A × 125 %
