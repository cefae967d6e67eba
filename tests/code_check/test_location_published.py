"""Where a raceway runs (issue 17): worked examples from published sources, each named.

Sources:
- [T300.5] NEC Table 300.5 "Minimum Cover Requirements, 0 to 1000 Volts", as reprinted by UpCodes
  (up.codes/s/underground-installations), same values in the 2020 and 2023 editions.
- [ECM] EC&M "Code Q&A" (Mike Holt): service lateral in rigid nonmetallic conduit needs 18 in. of cover.
- [SPARK] sparkshift.app "NEC 300.5": RMC/IMC 6 in., PVC 18 in., direct burial 24 in.; 120 V GFCI 20 A
  residential branch circuits 12 in. regardless of wiring method.
- [ELR] electricallicenserenewal.com, 2020 NEC change 310.15(B)(2) "Rooftop": raceways in sunlight less than
  7/8 in. above the roof add 33 °C (60 °F) to the outdoor temperature.
- [ECA] Electrical Code Academy, "Understanding Section 310.15(B)(3)(c)": the single 33 °C adder below 7/8 in.
  and the XHHW-2 exception (2017 text, carried into 310.15(B)(2) in 2020).
- [MH] Mike Holt forum, "310.15(B)(16)" thread: XHHW in a wet location is a 75 °C conductor, so correction
  starts from the 75 °C ampacity.
- Table values (310.16 6 AWG Cu: 65 A at 75 °C, 75 A at 90 °C; 310.15(B)(1)(1) factors 0.88/0.91 at
  36–40 °C and 0.50 at 71–75 °C for 90 °C) are the audited tables in evsite/code/tables.
"""

from __future__ import annotations

import pytest

from evsite.code.findings import Status
from tests.code_check.helpers import check_dict, one, one_circuit

EVSE_48 = {"max_current_a": 48, "listing": ["UL 2594"]}


def _run(raceway: dict, evse: dict | None = None, **conductors: object) -> dict:
    data = one_circuit(evse or EVSE_48)
    run = data["circuits"][0]["conductors"]
    run["raceway"] = {"type": "emt", "trade_size": "3/4", **raceway}
    run.update(conductors)
    return data


def _burial(raceway: dict, **kw: object):
    return one(check_dict(_run({"location": "underground", **raceway}, **kw)), "circuit C1", "Burial depth")


@pytest.mark.parametrize(
    ("raceway", "required", "status", "source"),
    [
        ({"type": "pvc40", "burial_depth_in": 18}, 18, Status.PASS, "ECM, T300.5 col 3"),
        ({"type": "pvc40", "burial_depth_in": 12}, 18, Status.FAIL, "T300.5 col 3"),
        ({"type": "rmc", "burial_depth_in": 6}, 6, Status.PASS, "SPARK, T300.5 col 2"),
        ({"type": "cable", "burial_depth_in": 18}, 24, Status.FAIL, "SPARK, T300.5 col 1 (UF direct burial)"),
        ({"type": "rmc", "burial_depth_in": 18, "burial_location": "street-driveway-parking"}, 24, Status.FAIL,
         "T300.5 row: streets, driveways, parking lots"),
        ({"type": "pvc40", "burial_depth_in": 18, "burial_location": "dwelling-driveway"}, 18, Status.PASS,
         "T300.5 row: dwelling driveways"),
        ({"type": "pvc40", "burial_depth_in": 12, "burial_location": "trench-under-2in-concrete"}, 12, Status.PASS,
         "T300.5 row: trench below 2 in. concrete"),
        ({"type": "pvc40", "burial_depth_in": 4, "burial_location": "under-4in-slab"}, 4, Status.PASS,
         "T300.5 row: under 4 in. slab"),
    ],
)  # fmt: skip
def test_table_300_5_cover(raceway, required, status, source):
    f = _burial(raceway, insulation="THWN-2")
    assert f.inputs["required_in"] == required, source
    assert f.status is status, source


def test_column_4_residential_120v_gfci_20a_branch_circuit():
    # SPARK, T300.5 col 4: 12 in. for a dwelling 120 V, GFCI, ≤ 20 A branch circuit, whatever the wiring method.
    evse = {"max_current_a": 12, "listing": ["UL 2594"], "dwelling": True}
    data = _run({"location": "underground", "type": "pvc40", "burial_depth_in": 12}, evse, insulation="THWN-2")
    data["circuits"][0].update({"ocpd_a": 20, "lines": ["L1"], "gfci": True})
    data["circuits"][0]["conductors"].update({"size": "12 AWG", "neutral": True})
    f = one(check_dict(data), "circuit C1", "Burial depth")
    assert f.inputs["column"] == 4 and f.inputs["required_in"] == 12 and f.status is Status.PASS


def test_underground_without_a_depth_warns_and_fmc_fails():
    assert _burial({"type": "pvc40"}, insulation="THWN-2").status is Status.WARN
    assert _burial({"type": "fmc", "burial_depth_in": 24}, insulation="THWN-2").status is Status.FAIL  # 348.12(1)


@pytest.mark.parametrize(
    ("location", "insulation", "status"),
    [
        ("underground", "THHN", Status.FAIL),  # 300.5(B): underground raceway interior is wet; THHN is dry/damp only
        ("underground", "THWN-2", Status.PASS),
        ("outdoor", "THHN", Status.FAIL),  # 300.9: outdoor raceway above grade is wet inside
        ("outdoor", "XHHW-2", Status.PASS),
        ("rooftop", "NM-B", Status.FAIL),
    ],
)
def test_wet_location_insulation_310_10_c(location, insulation, status):
    f = one(check_dict(_run({"location": location}, insulation=insulation)), "circuit C1", "Wet-location insulation")
    assert f.status is status


def test_xhhw_outdoors_corrects_from_the_75c_column():
    # MH: XHHW wet = 75 °C. 6 AWG Cu at 40 °C: 65 A × 0.88 = 57.2 A (dry XHHW would be 75 A × 0.91 = 68.25 A).
    wet = check_dict(_run({"location": "outdoor"}, insulation="XHHW", ambient_c=40))
    f = one(wet, "circuit C1", "conductor ampacity after correction and adjustment")
    assert any("57.2 A" in step for step in f.arithmetic), f.arithmetic
    dry = check_dict(_run({}, insulation="XHHW", ambient_c=40))
    g = one(dry, "circuit C1", "conductor ampacity after correction and adjustment")
    assert any("68.25 A" in step for step in g.arithmetic), g.arithmetic


@pytest.mark.parametrize(
    ("height", "insulation", "status", "amps"),
    [
        (0.5, "THWN-2", Status.FAIL, "37.5 A"),  # ELR: 40 + 33 = 73 °C → 0.50; 75 A × 0.50 = 37.5 A < 48 A
        (1.0, "THWN-2", Status.PASS, "68.25 A"),  # ELR: ≥ 7/8 in., no adder: 75 A × 0.91
        (0.0, "XHHW-2", Status.PASS, "68.25 A"),  # ECA: XHHW-2 exempt from the adder
        (None, "THWN-2", Status.FAIL, "37.5 A"),  # height not given: taken as on the roof (conservative)
    ],
)
def test_rooftop_adder_310_15_b_2(height, insulation, status, amps):
    raceway = {"location": "rooftop"} | ({} if height is None else {"height_above_roof_in": height})
    report = check_dict(_run(raceway, insulation=insulation, ambient_c=40))
    f = one(report, "circuit C1", "conductor ampacity after correction and adjustment")
    assert f.status is status
    assert any(amps in step for step in f.arithmetic), f.arithmetic
    adder = one(report, "circuit C1", "Rooftop temperature adder")
    assert adder.inputs["adder"] is (status is Status.FAIL)


def test_shared_raceway_location_applies_to_every_run_in_it():
    data = _run({})
    run = data["circuits"][0]["conductors"]
    del run["raceway"]
    run["raceway_id"] = "R1"
    data["raceways"] = [{"id": "R1", "type": "pvc40", "trade_size": "1", "location": "underground",
                         "burial_depth_in": 24}]  # fmt: skip
    report = check_dict(data)
    assert one(report, "circuit C1", "Wet-location insulation").status is Status.FAIL  # THHN underground
    assert one(report, "circuit C1", "Burial depth").status is Status.PASS


def test_rooftop_heat_beyond_the_insulation_fails_rather_than_going_unevaluated():
    # ELR: 55 °C + 33 °C = 88 °C, beyond Table 310.15(B)(1)(1) for any insulation: the run cannot be used there.
    report = check_dict(_run({"location": "rooftop", "height_above_roof_in": 0}, insulation="THWN-2", ambient_c=55))
    f = one(report, "circuit C1", "conductor ampacity after correction and adjustment")
    assert f.status is Status.FAIL and "88 °C" in f.message
