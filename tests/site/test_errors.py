"""Malformed site files: every problem reported at once, located by line, in words that help."""

from __future__ import annotations

from pathlib import Path

import pytest

from evsite.site import SiteFileError, load_site, load_site_text

GOOD = """\
name: Test site
service:
  system: 208Y/120V
  rating_a: 400
panels:
  - id: P1
    bus_rating_a: 225
circuits:
  - id: C1
    panel: P1
    ocpd_a: 60
    lines: [L1, L2]
    conductors:
      size: 6 AWG
      length: 50 ft
evse:
  - id: E1
    circuit: C1
    max_current_a: 48
"""


def problems_for(text: str) -> list[tuple[int, str]]:
    with pytest.raises(SiteFileError) as info:
        load_site_text(text, "site.yaml")
    return [(p.line, p.message) for p in info.value.problems]


def replace_line(line_no: int, new: str) -> str:
    lines = GOOD.splitlines()
    lines[line_no - 1] = new
    return "\n".join(lines) + "\n"


def test_the_base_file_is_valid() -> None:
    assert load_site_text(GOOD).name == "Test site"


@pytest.mark.parametrize(
    ("line_no", "new_line", "expected_line", "words"),
    [
        # 1. unknown field, with a suggestion
        (11, "    ocdp_a: 60", 11, ["unknown field 'ocdp_a'", "did you mean 'ocpd_a'"]),
        # 2. wrong type
        (19, "    max_current_a: forty", 19, ["max_current_a", "valid number", "'forty'"]),
        # 3. negative rating
        (4, "  rating_a: -400", 4, ["rating_a", "greater than 0", "-400"]),
        # 4. zero rating
        (7, "    bus_rating_a: 0", 7, ["bus_rating_a", "greater than 0"]),
        # 5. a circuit fed from a panel that does not exist
        (10, "    panel: P9", 10, ["panel 'P9' does not exist", "known: P1"]),
        # 6. an EVSE on a circuit that does not exist
        (18, "    circuit: C7", 18, ["circuit 'C7' does not exist"]),
        # 7. a length without a unit
        (15, "      length: 50", 15, ["50", "no unit", "'75 ft'"]),
        # 8. a length in a unit of the wrong dimension
        (15, "      length: 50 kg", 15, ["is not a length"]),
        # 9. an unknown conductor size
        (14, "      size: 7 AWG", 14, ["'7 AWG'", "not a standard AWG size"]),
        # 10. an unknown service system
        (3, "  system: 240V", 3, ["service.system", "'120/240V-1ph'", "'240V'"]),
        # 11. an unknown line name
        (12, "    lines: [L1, L4]", 12, ["lines[1]", "'L1', 'L2' or 'L3'"]),
        # 12. the same line twice
        (12, "    lines: [L1, L1]", 12, ["same line twice"]),
        # 13. YAML syntax error
        (12, "    lines: [L1, L2", 13, ["YAML syntax"]),
    ],
)
def test_malformed_field_is_located(line_no: int, new_line: str, expected_line: int, words: list[str]) -> None:
    found = problems_for(replace_line(line_no, new_line))
    at_line = [message for line, message in found if line == expected_line]
    assert at_line, found
    message = at_line[0]
    for word in words:
        assert word in message, (word, message)


def test_duplicate_ids_are_reported_at_the_second_use() -> None:
    text = GOOD.replace(
        "evse:\n",
        "  - id: C1\n    panel: P1\n    ocpd_a: 20\n    lines: [L1]\n"
        "    conductors: {size: 12 AWG, length_ft: 10}\nevse:\n",
    )
    found = problems_for(text)
    assert any(line == 16 and "duplicate id 'C1'" in message for line, message in found), found


def test_evse_on_no_circuit() -> None:
    found = problems_for(GOOD.replace("    circuit: C1\n", ""))
    assert any(line == 17 and "on no circuit" in message for line, message in found), found


def test_duplicate_yaml_key() -> None:
    found = problems_for(GOOD.replace("    ocpd_a: 60\n", "    ocpd_a: 60\n    ocpd_a: 70\n"))
    assert any(line == 12 and "duplicate key 'ocpd_a'" in message for line, message in found), found


def test_every_problem_is_reported_at_once() -> None:
    text = replace_line(4, "  rating_a: -1")
    text = text.replace("    panel: P1", "    panel: NOPE").replace("max_current_a: 48", "max_current_a: big")
    text = text.replace("      size: 6 AWG", "      size: 6 AWG\n      colour: red")
    found = problems_for(text)
    lines = [line for line, _ in found]
    assert lines == sorted(lines)
    messages = " | ".join(message for _, message in found)
    for expected in ("rating_a", "panel 'NOPE'", "max_current_a", "unknown field 'colour'"):
        assert expected in messages
    assert len(found) == 4


def test_adjustable_setting_above_nameplate() -> None:
    found = problems_for(GOOD.replace("max_current_a: 48", "max_current_a: 48\n    adjustable_setting_a: 64"))
    assert any(line in (19, 20) and "exceeds max_current_a" in message for line, message in found), found


def test_feeder_loop_is_reported() -> None:
    text = GOOD.replace(
        "  - id: P1\n    bus_rating_a: 225\n",
        "  - id: P1\n    bus_rating_a: 225\n    fed_by: F2\n  - id: P2\n    bus_rating_a: 225\n    fed_by: F1\n",
    ) + (
        "feeders:\n"
        "  - {id: F1, from_panel: P1, ocpd_a: 100, conductors: {size: 3 AWG, length_ft: 10}}\n"
        "  - {id: F2, from_panel: P2, ocpd_a: 100, conductors: {size: 3 AWG, length_ft: 10}}\n"
    )
    found = problems_for(text)
    assert any("fed in a loop" in message for _, message in found), found


def test_empty_and_non_mapping_files() -> None:
    assert "empty" in problems_for("")[0][1]
    assert "mapping" in problems_for("- just\n- a list\n")[0][1]


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(SiteFileError) as info:
        load_site(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(info.value) and "cannot read" in str(info.value)


def test_error_text_carries_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(replace_line(4, "  rating_a: -400"))
    with pytest.raises(SiteFileError) as info:
        load_site(path)
    assert str(info.value).startswith(f"{path}:4:3: service.rating_a")


def test_pv_charging_on_a_node_that_does_not_exist() -> None:
    text = GOOD + "control:\n  pv_charging:\n    mode: pv-only\n    node: P7\n"
    assert problems_for(text) == [(23, "control.pv_charging.node: node 'P7' does not exist")]


def test_pv_charging_mode_is_one_of_three() -> None:
    text = GOOD + "control:\n  pv_charging:\n    mode: solar\n"
    ((line, message),) = problems_for(text)
    assert line == 22 and "mode" in message and "'pv-only'" in message
