"""Hostile and runaway site files: refused fast, in bounded memory, with a located one-line reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from evsite.site import SiteFileError, load_site, load_site_text
from evsite.site.load import DEFAULT_LIMITS, SiteLimits
from evsite.site.model import MAX_RUN_FT

from .test_errors import GOOD

SRC = Path(__file__).resolve().parents[2] / "src"


def billion_laughs() -> str:
    """The classic nested-alias document: 9 levels of 9 aliases, 9**9 ≈ 387 million strings once expanded."""
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    previous = "a"
    for name in "bcdefghi":
        text += f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]\n"
        previous = name
    return text


def problem(text: str, limits: SiteLimits | None = None) -> tuple[int, int, str]:
    with pytest.raises(SiteFileError) as info:
        load_site_text(text, "site.yaml", limits)
    first = info.value.problems[0]
    return first.line, first.column, first.message


# --------------------------------------------------------------------------- aliases


_BOMB_RUN = """
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # a regression fails here instead of eating the machine
from evsite.site import SiteFileError, load_site_text
text = sys.stdin.read()
start = time.perf_counter()
try:
    load_site_text(text, "bomb.yaml")
    outcome = "loaded"
except SiteFileError as exc:
    outcome = str(exc)
# The peak of this process image (VmHWM): ru_maxrss survives exec, so it would report the forking parent's peak.
hwm_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"outcome": outcome, "seconds": time.perf_counter() - start, "rss_mb": hwm_kb / 1024}))
"""


def test_billion_laughs_is_refused_in_bounded_time_and_memory() -> None:
    bomb = billion_laughs()
    assert len(bomb) < 400
    # Its own process, capped at 1 GiB of address space and 60 s: the unguarded loader took 60 s and 6.6 GB.
    run = subprocess.run(
        [sys.executable, "-c", _BOMB_RUN],
        input=bomb,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout)
    assert result["outcome"].startswith("bomb.yaml:"), result
    assert "alias" in result["outcome"] and "10,000" in result["outcome"]
    assert result["seconds"] < 5.0  # a correctness bound with wide slack for a shared machine, not a benchmark
    assert result["rss_mb"] < 300


def test_billion_laughs_is_located_at_the_alias_that_crosses_the_budget() -> None:
    line, column, message = problem(billion_laughs())
    # a..d expand to 9 + 81 + 729 + 6,561 nodes; the second *d on line 5 crosses 10,000
    assert (line, column) == (5, 8), message
    assert "alias bomb" in message


def test_a_run_written_once_and_reused_through_an_alias_loads() -> None:
    text = GOOD.replace(
        "    conductors:\n      size: 6 AWG\n      length: 50 ft\n",
        "    conductors: &run {size: 6 AWG, length: 50 ft}\n"
        "  - {id: C2, panel: P1, ocpd_a: 60, lines: [L2, L3], conductors: *run}\n",
    )
    site = load_site_text(text)
    assert site.circuit("C2").conductors == site.circuit("C1").conductors
    assert site.circuit("C2").conductors.length_ft == 50.0


def test_a_pyyaml_dump_with_shared_lists_loads() -> None:
    """PyYAML writes shared objects as anchors and aliases; a generated site must not read as a bomb."""
    lines = ["L1", "L2"]
    circuits = [
        {"id": f"C{i}", "panel": "P1", "ocpd_a": 20, "lines": lines, "conductors": {"size": "12 AWG", "length_ft": 10}}
        for i in range(300)
    ]
    data = {
        "name": "generated",
        "service": {"system": "208Y/120V", "rating_a": 400},
        "panels": [{"id": "P1", "bus_rating_a": 225}],
        "circuits": circuits,
    }
    text = yaml.safe_dump(data, sort_keys=False)
    assert text.count("*id") == 299
    limits = SiteLimits(max_alias_nodes=100)  # 598 aliased nodes: more than 100, fewer than the file writes out
    assert len(load_site_text(text, limits=limits).circuits) == 300


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("a: &a [1, *a]\n", (1, 11), "refers to a node that contains it"),
        ("a: *nope\n", (1, 4), "no anchor &nope"),
        ("x: &r {a: 1}\ny:\n  <<: *r\n", (3, 3), "merge keys (<<) are not supported"),
        ("a: !!python/object/apply:os.system [ls]\n", (1, 4), "is not allowed in a site file"),
        ("a: !custom 3\n", (1, 4), "is not allowed in a site file"),
        ("a: 1\n---\nb: 2\n", (2, 1), "a second YAML document"),
        ("a: " + "[" * 30 + "]" * 30 + "\n", (1, 23), "nested more than 20 levels"),
        ("? [1, 2]\n: x\n", (1, 3), "mapping key must be a plain"),
        ("created: 2023-02-30\n", (1, 10), "cannot be read"),
        ("n: " + "9" * 5000 + "\n", (1, 4), "cannot be read"),
    ],
)
def test_yaml_features_a_site_file_does_not_need_are_refused_with_a_location(
    text: str, where: tuple[int, int], words: str
) -> None:
    line, column, message = problem(text)
    assert (line, column) == where, message
    assert words in message


# --------------------------------------------------------------------------- size and count limits


def _circuits(n: int) -> str:
    rows = "".join(
        f"  - {{id: C{i}, panel: P1, ocpd_a: 20, lines: [L1], conductors: {{size: 12 AWG, length_ft: 10}}}}\n"
        for i in range(n)
    )
    head = "name: x\nservice: {system: 208Y/120V, rating_a: 400}\npanels: [{id: P1, bus_rating_a: 225}]\ncircuits:\n"
    return head + rows


def test_a_list_longer_than_the_limit_is_refused_at_its_first_extra_entry() -> None:
    limits = SiteLimits(max_items=50)
    assert len(load_site_text(_circuits(50), limits=limits).circuits) == 50
    line, column, message = problem(_circuits(51), limits)
    assert (line, column) == (5 + 50, 5), message
    assert "more than 50 entries" in message


def test_the_default_list_limit_is_20000() -> None:
    assert DEFAULT_LIMITS.max_items == 20_000
    others = "      other_conductors: [" + "12 THHN, " * 19_999 + "12 THHN]\n"
    assert len(load_site_text(GOOD.replace("      length: 50 ft\n", "      length: 50 ft\n" + others)).circuits) == 1
    _, column, message = problem("x: [" + "1," * 20_000 + "1]\n")
    assert column == 5 + 2 * 20_000 and "more than 20,000 entries" in message


def test_node_limit_stops_a_dense_file_early() -> None:
    text = "name: [" + "1," * 5_000 + "1]\n"
    _, column, message = problem(text, SiteLimits(max_nodes=1_000))
    assert "more than 1,000 YAML nodes" in message
    assert column < 2_100  # stopped near the thousandth node, not at the end of the list


def test_text_over_the_size_limit_is_refused_before_parsing() -> None:
    limits = SiteLimits(max_bytes=len(GOOD.encode()))
    assert load_site_text(GOOD, limits=limits).name == "Test site"
    _, _, message = problem(GOOD + "#", limits)
    assert f"{len(GOOD):,}-byte limit" in message


def test_a_file_over_the_size_limit_is_read_no_further_than_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(GOOD + "#" * 1000)
    with pytest.raises(SiteFileError) as info:
        load_site(path, SiteLimits(max_bytes=100))
    assert str(info.value).startswith(f"{path}:1:1: the file is larger than the 100-byte limit (101+ bytes)")


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVSITE_SITE_MAX_ITEMS", "3")
    assert "more than 3 entries" in problem(_circuits(4))[2]
    monkeypatch.setenv("EVSITE_SITE_MAX_ITEMS", "lots")
    assert "EVSITE_SITE_MAX_ITEMS='lots' must be a positive whole number" in problem(_circuits(1))[2]


# --------------------------------------------------------------------------- bytes that are not UTF-8 text


def test_latin1_file_names_the_byte_and_its_offset(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: x\naddress: Caf\xe9 Street\n")
    with pytest.raises(SiteFileError) as info:
        load_site(path)
    assert str(info.value) == (
        f"{path}:2:13: not UTF-8 text: byte 0xe9 at offset 20 cannot be decoded; is this a site file?"
    )


def test_a_nul_byte_is_located(tmp_path: Path) -> None:
    path = tmp_path / "nul.yaml"
    path.write_bytes(b"name: x\nservice: \x00\n")
    with pytest.raises(SiteFileError) as info:
        load_site(path)
    assert str(info.value) == f"{path}:2:10: character U+0000 at offset 17 is not allowed in YAML; is this a text file?"


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    assert load_site(path).name == "Test site"


# --------------------------------------------------------------------------- units: dimension and size


@pytest.mark.parametrize(
    ("old", "new", "line", "words"),
    [
        ("length: 50 ft", "length: 45 parsecs", 15, ["length '45 parsecs'", "4.556e+18 ft", "at most 9,843 ft"]),
        ("length: 50 ft", "length: 480 V", 15, ["'480 V' is not a length"]),
        ("length: 50 ft", "length: 40 A", 15, ["'40 A' is not a length"]),
        ("length: 50 ft", "length_m: 3001", 15, ["length_m 3001", "at most 9,843 ft"]),
        ("length: 50 ft", "length_ft: 9843", 15, ["length_ft", "less than or equal to 9842.5"]),
        ("length: 50 ft", "length: 0 ft", 15, ["length '0 ft'", "more than 0"]),
        ("length: 50 ft", "length: 1e400 ft", 15, ["is inf ft"]),
        ("length: 50 ft", "length: 10 ft\n      ambient: 91 degC", 16, ["ambient '91 degC' is 91 °C", "-50 and 90"]),
        ("length: 50 ft", "length: 10 ft\n      ambient_f: -60", 16, ["ambient_f -60 is -51.11 °C"]),
        ("length: 50 ft", "length: 10 ft\n      ambient: 30 ft", 16, ["'30 ft' is not a temperature"]),
        ("rating_a: 400", "rating_a: 6001", 4, ["rating_a", "less than or equal to 6000"]),
        ("rating_a: 400", "rating_a: .inf", 4, ["rating_a", "finite number"]),
        ("rating_a: 400", "rating_a: .nan", 4, ["rating_a", "finite number"]),
        ("rating_a: 400", "rating_a: true", 4, ["rating_a True is yes/no"]),
        ("rating_a: 400", "rating_a: 400\n  available_fault_current_a: 1.0e+9", 5, ["less than or equal to 300000"]),
        ("ocpd_a: 60", "ocpd_a: 1.0e+12", 11, ["ocpd_a", "less than or equal to 6000"]),
        ("max_current_a: 48", "max_current_a: 1.0e+6", 19, ["max_current_a", "less than or equal to 6000"]),
        ("bus_rating_a: 225", "bus_rating_a: 10000", 7, ["bus_rating_a", "less than or equal to 6000"]),
    ],
)
def test_implausible_or_wrong_dimension_quantities_are_located_errors(
    old: str, new: str, line: int, words: list[str]
) -> None:
    at, _, message = problem(GOOD.replace(old, new))
    assert at == line, message
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("length: 50 ft", "length: 3 km"),
        ("length: 50 ft", "length_m: 3000"),
        ("length: 50 ft", f"length_ft: {MAX_RUN_FT}"),
        ("length: 50 ft", "length: 50 ft\n      ambient: -58 °F"),
        ("length: 50 ft", "length: 50 ft\n      ambient_c: 90"),
        ("rating_a: 400", "rating_a: 6000"),
    ],
)
def test_the_bounds_themselves_are_accepted(old: str, new: str) -> None:
    assert load_site_text(GOOD.replace(old, new)).name == "Test site"


# --------------------------------------------------------------------------- references on large files


def test_a_dangling_reference_lists_a_few_known_ids_not_all() -> None:
    text = _circuits(30).replace("panel: P1, ocpd_a: 20", "panel: P9, ocpd_a: 20", 1)
    text = text.replace(
        "panels: [{id: P1, bus_rating_a: 225}]",
        "panels: ["
        + ", ".join(f"{{id: P{i:02d}, bus_rating_a: 225}}" for i in range(25))
        + ", {id: P1, bus_rating_a: 225}]",
    )
    line, _, message = problem(text)
    assert line == 5
    assert "panel 'P9' does not exist; known: P00, P01" in message
    assert message.endswith("P09 and 16 more")


def test_every_panel_below_a_feeder_loop_is_reported() -> None:
    text = (
        "name: x\nservice: {system: 208Y/120V, rating_a: 400}\n"
        "panels:\n"
        "  - {id: A, bus_rating_a: 100, fed_by: FB}\n"
        "  - {id: B, bus_rating_a: 100, fed_by: FA}\n"
        "  - {id: C, bus_rating_a: 100, fed_by: FB2}\n"
        "  - {id: D, bus_rating_a: 100}\n"
        "  - {id: E, bus_rating_a: 100, fed_by: FD}\n"
        "feeders:\n"
        "  - {id: FA, from_panel: A, ocpd_a: 60, conductors: {size: 6 AWG, length_ft: 10}}\n"
        "  - {id: FB, from_panel: B, ocpd_a: 60, conductors: {size: 6 AWG, length_ft: 10}}\n"
        "  - {id: FB2, from_panel: B, ocpd_a: 60, conductors: {size: 6 AWG, length_ft: 10}}\n"
        "  - {id: FD, from_panel: D, ocpd_a: 60, conductors: {size: 6 AWG, length_ft: 10}}\n"
    )
    with pytest.raises(SiteFileError) as info:
        load_site_text(text)
    looped = sorted(p.message.split("'")[1] for p in info.value.problems if "fed in a loop" in p.message)
    assert looped == ["A", "B", "C"]  # D is fed by the service and E by D: not in a loop


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("rating_a: 400", "rating_a: " + "x" * 100_000),
        ("length: 50 ft", "length: " + "9" * 100_000 + " ft"),
        ("    panel: P1", "    panel: " + "P" * 100_000),
        ("    ocpd_a: 60", "    ocpd_a: 60\n    " + "k" * 100_000 + ": 1"),
    ],
)
def test_a_huge_value_is_quoted_briefly(old: str, new: str) -> None:
    with pytest.raises(SiteFileError) as info:
        load_site_text(GOOD.replace(old, new), "site.yaml")
    assert all(len(p.message) < 300 for p in info.value.problems), [len(p.message) for p in info.value.problems]
