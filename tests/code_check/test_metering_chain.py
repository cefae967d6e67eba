"""CT accuracy class in the metering chain (issue 17).

Sources:
- [RITZ] Ritz Instrument Transformers, Technical Bulletin #103 "Applying 600V High-Accuracy Current
  Transformers for Revenue Metering": IEEE C57.13 class 0.3 is 0.3 % from rated current to the rating
  factor and 0.6 % from 10 % to rated; C57.13.6 class 0.15 is 0.15 %, and 0.3 % from 5 % to rated.
- [DENT] DENT Instruments, "Dent Cloud issue 01": ANSI C12.20 tests the meter and CTs together as a system.
- [AN136] Accuenergy AN-136 "Metering System Accuracy": a 0.2 % meter with 0.3 % CTs may not give 0.5 %.
"""

from __future__ import annotations

import pytest

from evsite.code.findings import Status
from tests.code_check.helpers import check_dict, findings, one, one_circuit


def _site(billing: bool = True, **meter: object) -> dict:
    data = one_circuit({"max_current_a": 48, "listing": ["UL 2594"], "meter_accuracy": "c12.20-0.5"})
    data["meters"] = [{"id": "M1", "role": "panel", "measures": "P", "ct_ratio": "200:5", **meter}]
    data["billing"] = {"enabled": billing}
    return data


@pytest.mark.parametrize(
    ("meter", "status", "worst"),
    [
        ({"accuracy": "c12.20-0.5", "ct_accuracy_class": "0.3"}, Status.FAIL, "1.1 %"),  # RITZ: 0.5 + 0.6
        ({"accuracy": "c12.20-0.2", "ct_accuracy_class": "0.3"}, Status.FAIL, "0.8 %"),  # AN136: 0.2 + 0.6
        ({"accuracy": "c12.20-0.2", "ct_accuracy_class": "0.15"}, Status.FAIL, "0.5 %"),  # RITZ: 0.2 + 0.3
    ],
)
def test_separately_classed_cts_are_taken_at_their_worst_case(meter, status, worst):
    f = one(check_dict(_site(**meter)), "meter M1", "Metering chain accuracy")
    assert f.status is status
    assert any(worst in step for step in f.arithmetic), f.arithmetic


def test_a_system_tested_meter_and_ct_pass():
    # DENT: C12.20 classes the meter and its CTs tested together.
    f = one(check_dict(_site(ct_accuracy_class="0.3", ct_system_tested=True)), "meter M1", "Metering chain accuracy")
    assert f.status is Status.PASS


def test_missing_ct_class_fails_when_billing_and_warns_otherwise():
    assert one(check_dict(_site()), "meter M1", "Metering chain accuracy").status is Status.FAIL
    assert one(check_dict(_site(billing=False)), "meter M1", "Metering chain accuracy").status is Status.WARN


def test_self_contained_meters_are_not_a_chain():
    data = _site()
    del data["meters"][0]["ct_ratio"]
    assert not findings(check_dict(data), "meter M1", "Metering chain accuracy")
