"""Interrupting ratings against the available fault current (issue 17; NEC 110.9, 110.10, 110.24).

Transformer infinite-bus fault current by the first steps of the Eaton/Bussmann point-to-point method:
I_fla = kVA × 1000 / (√3 × E_LL), multiplier = 100 / %Z, I_sc = I_fla × multiplier. For 750 kVA, 208 V,
5.75 %Z: I_fla = 750,000 / (1.732 × 208) = 2,081.8 A; × 100 / 5.75 = 36,205 A (hand calculation).
"""

from __future__ import annotations

import pytest

from evsite.code.findings import Status
from tests.code_check.helpers import check_dict, one, one_circuit

TRANSFORMER = {"system": "208Y/120V", "rating_a": 800, "transformer": {"kva": 750, "impedance_pct": 5.75}}


def _site(rating: float | None, service: dict | None = None) -> dict:
    data = one_circuit({"max_current_a": 48, "listing": ["UL 2594"]}, service=service or dict(TRANSFORMER))
    if rating is not None:
        data["panels"][0]["interrupting_rating_a"] = rating
    return data


@pytest.mark.parametrize(("rating", "status"), [(22000, Status.FAIL), (36200, Status.FAIL), (42000, Status.PASS)])
def test_panel_rating_against_the_transformer_infinite_bus_value(rating, status):
    f = one(check_dict(_site(rating)), "panel P", "Interrupting rating")
    assert f.status is status
    assert f.inputs["available_fault_current_a"] == pytest.approx(36205, abs=1)


def test_utility_value_is_used_when_given_and_marked_110_24():
    service = {"system": "120/240V-1ph", "rating_a": 200, "available_fault_current_a": 10000}
    report = check_dict(_site(10000, service))
    assert one(report, "panel P", "Interrupting rating").status is Status.PASS
    mark = one(report, "service", "Available fault current marking")
    assert mark.inputs == {"available_fault_current_a": 10000} and "10,000 A" in mark.message


def test_unknown_rating_or_fault_current_warns_never_passes():
    assert one(check_dict(_site(None)), "panel P", "Interrupting rating").status is Status.WARN
    unknown = {"system": "120/240V-1ph", "rating_a": 200}
    assert one(check_dict(_site(10000, unknown)), "panel P", "Interrupting rating").status is Status.WARN
