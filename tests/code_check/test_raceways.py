"""Shared raceways (issue 17): contents counted once across the runs in them, for fill and 310.15(C)(1).

Numbers: Table 310.16 (6 AWG Cu THHN = 75 A in the 90 °C column), Table 310.15(C)(1) (4–6 conductors
80 %, 7–9 70 %, 10–20 50 %), Chapter 9 Table 4 (EMT total area: 1" 0.864 in², 1-1/4" 1.496 in², 1-1/2"
2.036 in²) and Table 5 (THHN: 6 AWG 0.0507 in², 10 AWG 0.0211 in²), as printed in NFPA 70 2023.
"""

from __future__ import annotations

import pytest

from evsite.code.findings import Status
from evsite.site import SiteFileError, load_site_text
from tests.code_check.helpers import check_dict, findings, one, one_circuit


def _garage(n: int, declared: int | None, trade_size: str = "1-1/2", **extra: object) -> dict:
    """`n` 48 A EV circuits (2 × 6 AWG + 10 AWG EGC each) pulled through one shared EMT raceway R1."""
    data = one_circuit({"max_current_a": 48, "listing": ["UL 2594"]})
    base = data["circuits"][0]
    data["circuits"], data["evse"] = [], []
    for i in range(n):
        run = {k: v for k, v in base["conductors"].items() if k != "raceway"}
        run["raceway_id"] = "R1"
        if declared is not None:
            run["current_carrying_conductors"] = declared
        run.update(extra)
        data["circuits"].append({**base, "id": f"C{i}", "conductors": run})
        data["evse"].append({"id": f"EV{i}", "circuit": f"C{i}", "max_current_a": 48, "listing": ["UL 2594"]})
    data["raceways"] = [{"id": "R1", "type": "emt", "trade_size": trade_size}]
    data["ems"] = [{"id": "EMS", "manages": ["service"], "setpoint_a": 160}]
    return data


def test_counts_typed_per_circuit_that_contradict_the_raceway_fail_and_the_real_count_derates():
    # Five circuits declare 2 each, but the raceway holds 10: 75 A × 50 % = 37.5 A < 48 A.
    report = check_dict(_garage(5, declared=2))
    count = one(report, "circuit C0", "Current-carrying conductors in the raceway")
    assert count.status is Status.FAIL and count.inputs == {"raceway": "R1", "declared": 2, "in_raceway": 10}
    derated = one(report, "circuit C0", "conductor ampacity after correction and adjustment")
    assert derated.status is Status.FAIL
    assert "10 current-carrying conductors" in derated.message
    assert any("37.5 A" in step for step in derated.arithmetic)


def test_consistent_counts_pass_and_use_the_80_percent_row():
    # Three circuits, 6 conductors: 75 A × 80 % = 60 A ≥ 48 A.
    report = check_dict(_garage(3, declared=6))
    assert not findings(report, "circuit C0", "Current-carrying conductors in the raceway")
    derated = one(report, "circuit C0", "conductor ampacity after correction and adjustment")
    assert derated.status is Status.PASS and any("60 A" in step for step in derated.arithmetic)


@pytest.mark.parametrize(("trade_size", "status"), [("1-1/4", Status.FAIL), ("1-1/2", Status.PASS)])
def test_fill_is_checked_once_on_the_raceway_from_all_its_conductors(trade_size, status):
    # 5 × (2 × 6 AWG + 1 × 10 AWG) THHN = 10 × 0.0507 + 5 × 0.0211 = 0.6125 in²;
    # 40 % of 1-1/4" EMT = 0.598 in² (too small), of 1-1/2" EMT = 0.814 in².
    report = check_dict(_garage(5, declared=10, trade_size=trade_size))
    fill = one(report, "raceway R1", "Raceway fill")
    assert fill.status is status
    assert fill.inputs["min_trade_size"] == "1-1/2"
    assert "C0, C1, C2, C3, C4" in fill.message
    assert not findings(report, "circuit C0", "Raceway fill")  # not once per circuit


def test_neutral_counting_follows_310_15_e():
    from evsite.code.rules.conductors import current_carrying
    from evsite.code.rules.context import SiteIndex
    from evsite.site.model import Site

    single = Site.model_validate(_garage(1, declared=None, neutral=True))  # 120/240 V 3-wire: neutral not counted
    idx = SiteIndex.build(single)
    assert current_carrying(idx, single.circuits[0]) == (2, "2 ungrounded + neutral (not counted, 310.15(E)(1))")
    wye = _garage(1, declared=None, neutral=True)
    wye["service"] = {"system": "208Y/120V", "rating_a": 400, "available_fault_current_a": 20000}
    site = Site.model_validate(wye)
    assert current_carrying(SiteIndex.build(site), site.circuits[0])[0] == 3  # 310.15(E)(2)


def _yaml(run_extra: str) -> str:
    return f"""name: t
service: {{system: 120/240V-1ph, rating_a: 200}}
panels: [{{id: P, bus_rating_a: 200, main_ocpd_a: 200}}]
raceways: [{{id: R1, type: emt, trade_size: "1"}}]
circuits:
  - id: C1
    panel: P
    ocpd_a: 60
    lines: [L1, L2]
    conductors: {{size: 6 AWG, length: 40 ft, {run_extra}}}
"""


def test_unknown_raceway_is_a_located_error():
    with pytest.raises(SiteFileError) as info:
        load_site_text(_yaml("raceway_id: R9"), "site.yaml")
    (problem,) = info.value.problems
    assert problem.line == 10 and "raceway 'R9' does not exist; known: R1" in problem.message


def test_raceway_and_raceway_id_together_is_an_error():
    with pytest.raises(SiteFileError) as info:
        load_site_text(_yaml("raceway_id: R1, raceway: {type: pvc40}"), "site.yaml")
    assert "give either raceway_id" in str(info.value)


def test_a_run_in_a_shared_raceway_takes_its_type_and_size():
    site = load_site_text(_yaml("raceway_id: R1"), "site.yaml")
    assert site.circuits[0].conductors.raceway.trade_size == "1"
