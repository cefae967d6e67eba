"""Defects from issue 17: an invented listing, a termination failure without 110.14(C), IEEE 519 wording and I_L."""

from __future__ import annotations

import pytest

from evsite.code.findings import Status
from tests.code_check.helpers import check_dict, one, one_circuit

DC_SERVICE = {"system": "480Y/277V", "rating_a": 800, "available_fault_current_a": 30000}


def _dc(**evse: object) -> dict:
    unit = {"max_current_a": 60, "dc": True, "phases": 3, "power_kw": 50, "disconnect": "remote-lockable", **evse}
    circuit = {"ocpd_a": 80, "lines": ["L1", "L2", "L3"], "conductors": _run("4 AWG")}
    return one_circuit(unit, circuit, DC_SERVICE)


def _run(size: str, termination_c: int = 75) -> dict:
    return {
        "material": "cu",
        "size": size,
        "insulation": "THHN",
        "termination_c": termination_c,
        "length_ft": 40,
        "raceway": {"type": "emt", "trade_size": "1"},
        "egc": "8 AWG Cu",
    }


def test_dc_charger_without_listing_is_a_finding_not_a_ul_2594_pass():
    f = one(check_dict(_dc()), "evse EV1", "Listed equipment")
    assert f.status is Status.FAIL
    assert "UL 2594" not in f.message
    assert f.fix is not None and "UL 2202" in f.fix


@pytest.mark.parametrize(
    ("dc", "listing", "status"),
    [
        (True, ["UL 2594"], Status.FAIL),  # an AC standard does not cover DC equipment
        (True, ["UL 2202"], Status.PASS),
        (False, ["UL 2202"], Status.FAIL),  # a DC standard does not cover AC EVSE
        (False, ["UL 2594"], Status.PASS),
        (False, ["CSA C22.2 No. 280"], Status.PASS),
        (True, ["UL 9741"], Status.PASS),  # bidirectional equipment of either kind
        (False, [], Status.FAIL),
    ],
)
def test_listing_must_fit_ac_or_dc(dc, listing, status):
    data = _dc(listing=listing) if dc else one_circuit({"max_current_a": 48, "listing": listing})
    assert one(check_dict(data), "evse EV1", "Listed equipment").status is status


def test_classification_table_does_not_invent_a_listing_and_describes_dc_output():
    report = check_dict(_dc())
    table = next(t for t in report.tables if t.title.startswith("EVSE classification"))
    row = dict(zip(table.columns, table.rows[0], strict=True))
    assert "UL 2594" not in row["Standards"] and "no listing given (UL 2202 expected)" in row["Standards"]
    assert "J1772" not in row["Output modulation"]


def test_termination_failure_cites_110_14_c_and_the_table_column():
    # 48 A EVSE: 60 A required; 6 AWG Cu at 60 °C terminations carries 55 A (Table 310.16) -> fails on 110.14(C).
    data = one_circuit({"max_current_a": 48, "listing": ["UL 2594"]}, {"conductors": _run("6 AWG", 60)})
    f = one(check_dict(data), "circuit C1", "conductor ampacity at terminations")
    assert f.status is Status.FAIL
    assert f.rule.section == "210.19(A)(1)(a), 110.14(C), Table 310.16 (60 °C column)"


def test_feeder_termination_cites_215_2():
    from tests.code_check.helpers import example_dict

    report = check_dict(example_dict("workplace-20"))
    f = one(report, "feeder F-EV", "conductor ampacity at terminations")
    assert f.rule.section.startswith("215.2(A)(1)(a), 110.14(C), Table 310.16")


def test_ieee519_without_ems_does_not_mention_ems_setpoints():
    data = one_circuit({"max_current_a": 48, "listing": ["UL 2594"]})
    f = one(check_dict(data), "service", "Harmonic current distortion (TDD)")
    assert not any("EMS setpoints" in step for step in f.arithmetic)
    assert any("EVSE ratings, no EMS" in step for step in f.arithmetic)


def test_ieee519_il_uses_220_87_demand_not_the_service_rating():
    # 200 A service, 60 A measured demand, 48 A EV: I_L = 108 A, not 200 A (which would halve the TDD).
    service = {
        "system": "120/240V-1ph",
        "rating_a": 200,
        "available_fault_current_a": 10000,
        "existing_load": {"max_demand_a": 60},
    }
    with_data = check_dict(one_circuit({"max_current_a": 48, "listing": ["UL 2594"]}, service=service))
    f = one(with_data, "service", "Harmonic current distortion (TDD)")
    assert f.inputs["il_a"] == pytest.approx(108)
    del service["existing_load"]
    without = check_dict(one_circuit({"max_current_a": 48, "listing": ["UL 2594"]}, service=service))
    g = one(without, "service", "Harmonic current distortion (TDD)")
    assert g.inputs["il_a"] == 200
    assert f.inputs["tdd_pct"] > g.inputs["tdd_pct"]
