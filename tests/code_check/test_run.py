"""How a check run is carried out: the paused garbage collector and memoised rule results.

Speed itself is measured in bench/check_scale.py; these tests pin the behaviour the speed-ups
must not change.
"""

from __future__ import annotations

import copy
import gc
import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from evsite.cli import app
from evsite.code.report import render
from evsite.site.load import cyclic_gc_paused
from tests.code_check.helpers import EXAMPLES, check_dict, one, one_circuit

runner = CliRunner()
XHTML = "{http://www.w3.org/1999/xhtml}"


@pytest.fixture
def collector_enabled():
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_gc_pause_restores_an_enabled_collector(collector_enabled):
    with cyclic_gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), cyclic_gc_paused():
        raise RuntimeError("rule crashed")
    assert gc.isenabled()


def test_gc_pause_leaves_a_disabled_collector_disabled(collector_enabled):
    gc.disable()
    with cyclic_gc_paused():
        pass
    assert not gc.isenabled()


@pytest.mark.parametrize("args", [[], ["--format", "html"], ["--format", "json"]])
def test_check_command_resumes_the_collector(collector_enabled, args):
    result = runner.invoke(app, ["check", str(EXAMPLES / "workplace-20.yaml"), *args])
    assert result.exit_code in (0, 1), result.output
    assert gc.isenabled()


def test_invalid_site_file_resumes_the_collector(collector_enabled, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nservice: [\n", encoding="utf-8")
    assert runner.invoke(app, ["check", str(bad)]).exit_code == 2
    assert gc.isenabled()


def _two_circuits(length_2: float, egc_2: str = "10 AWG Cu") -> dict:
    data = one_circuit({"max_current_a": 48})
    second = copy.deepcopy(data["circuits"][0])
    second["id"] = "C2"
    second["conductors"]["length_ft"] = length_2
    second["conductors"]["egc"] = egc_2
    data["circuits"].append(second)
    data["evse"].append({"id": "EV2", "circuit": "C2", "max_current_a": 48})
    return data


def test_identical_designs_keep_their_own_elements():
    """Memoised conductor results are shared by identical circuits but reported on each one."""
    report = check_dict(_two_circuits(length_2=40))
    for topic in ("Equipment grounding conductor", "Raceway fill", "Voltage drop", "conductor protection"):
        first, second = one(report, "circuit C1", topic), one(report, "circuit C2", topic)
        assert (first.status, first.message, first.arithmetic) == (second.status, second.message, second.arithmetic)


def test_designs_that_differ_are_not_confused():
    """Same conductors, twice the length: the drop doubles (V = 2·K·I·L/cmil is linear in L); a
    smaller EGC fails on its own circuit only."""
    report = check_dict(_two_circuits(length_2=80, egc_2="14 AWG Cu"))
    vd1 = one(report, "circuit C1", "Voltage drop").inputs["voltage_drop_v"]
    vd2 = one(report, "circuit C2", "Voltage drop").inputs["voltage_drop_v"]
    assert vd2 == pytest.approx(2 * vd1, rel=1e-3)
    assert one(report, "circuit C1", "Equipment grounding conductor").status.value == "pass"
    assert one(report, "circuit C2", "Equipment grounding conductor").status.value == "fail"


def test_report_text_is_escaped_in_messages_steps_and_inputs():
    """The renderers escape each distinct text once and shared steps/inputs by identity; markup
    from the site (a cable name) and from the rules ("2 chargers < 10") must still
    come out escaped, and the HTML must stay well-formed XML."""
    cable = "Cat6 <shielded> & co_1"
    data = _two_circuits(length_2=40)
    for evse in data["evse"]:
        evse["comms"] = {"medium": "ethernet", "cable": cable, "routing": "separate-raceway"}
    html = render(check_dict(data), "html")
    root = ET.fromstring(html.split("\n", 1)[1])
    inputs = [d for d in root.iter(f"{XHTML}div") if d.get("class") == "inputs"]
    assert sum(f"cable={cable}" in "".join(d.itertext()) for d in inputs) == 2
    steps = ["".join(li.itertext()) for li in root.iter(f"{XHTML}li")]
    assert "2 chargers < 10 (study threshold)" in steps
    md = render(check_dict(data), "md")
    assert "cable=Cat6 <shielded> & co\\_1" in md
