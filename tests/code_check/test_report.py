"""Report formats, the one-line diagram, and the `evsite check` command (exit codes, --out)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from evsite.cli import app
from evsite.code.oneline import render_svg
from evsite.code.report import render
from evsite.site.model import Site
from tests.code_check.helpers import EXAMPLES, check_dict, example_dict, one_circuit

SVG = "{http://www.w3.org/2000/svg}"
XHTML = "{http://www.w3.org/1999/xhtml}"
runner = CliRunner()


@pytest.fixture(scope="module")
def multifamily():
    return check_dict(example_dict("multifamily-30"))


def _parse_html(text: str) -> ET.Element:
    assert text.startswith("<!DOCTYPE html>")
    return ET.fromstring(text.split("\n", 1)[1])  # well-formed XML once the doctype is removed


def test_json_structure(multifamily):
    data = json.loads(render(multifamily, "json"))
    assert data["result"] == "fail"
    assert data["counts"]["fail"] == len([f for f in multifamily.findings if f.status.value == "fail"])
    assert data["elements"][0]["kind"] == "service"
    finding = data["elements"][0]["findings"][0]
    assert set(finding) >= {"element", "topic", "status", "rule", "citation", "message", "inputs", "arithmetic", "fix"}
    assert set(finding["citation"]) == {"standard", "section", "edition"}
    total = sum(len(e["findings"]) for e in data["elements"])
    assert total == len(multifamily.findings)
    assert {t["title"] for t in data["tables"]} >= {"Permit scope", "Inspection sequence"}


def test_html_is_well_formed_and_embeds_the_svg(multifamily):
    root = _parse_html(render(multifamily, "html"))
    svgs = root.findall(f".//{SVG}svg")
    assert len(svgs) == 1
    texts = "".join(svgs[0].itertext())
    assert "MF-P2-15" in texts and "EVP-P1" in texts and "EMS" in texts
    body = "".join(root.itertext())
    assert "Items to correct or review" in body and "revenue-grade" in body
    assert "NIST Handbook 44" in body
    rows = root.findall(f".//{XHTML}section[@id='findings']//{XHTML}tr")
    assert len(rows) > len(multifamily.findings)  # every finding plus header rows


def test_html_escapes_site_text():
    data = one_circuit({"max_current_a": 48, "make": 'A<b>&"c'})
    data["name"] = "Site <script>alert(1)</script> & co"
    text = render(check_dict(data), "html")
    root = _parse_html(text)
    assert "<script>" not in text
    assert "Site <script>alert(1)</script> & co" in "".join(root.itertext())


def test_markdown(multifamily):
    text = render(multifamily, "md")
    assert text.startswith("# Design check: Multifamily building, 30 shared chargers")
    assert "## Items to correct or review" in text
    assert "### evse MF-P2-01" in text
    assert "| Permit | Required | Scope | Basis |" in text
    lines = text.splitlines()
    start = lines.index("| Permit | Required | Scope | Basis |")
    table = lines[start : lines.index("", start)]
    assert len(table) == 2 + 3
    for line in table:
        assert len(re.findall(r"(?<!\\)\|", line)) == 5  # escaped pipes stay inside their cell


def test_text_shows_arithmetic_for_failures(multifamily):
    text = render(multifamily, "text")
    assert "FAIL  Revenue-grade metering" in text
    assert "fix: " in text
    assert text.rstrip().splitlines()[-1].startswith("FAIL:")
    assert "\x1b[" not in text  # no escape codes in a file


def test_svg_readable_for_30_and_collapsed_for_many():
    svg = render_svg(Site.model_validate(example_dict("multifamily-30")))
    root = ET.fromstring(svg)
    labels = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert sum(1 for t in labels if t.startswith("MF-")) == 30  # every EVSE drawn at 30
    height_30 = float(root.get("height", "0"))

    data = one_circuit({"max_current_a": 48})
    run = data["circuits"][0]["conductors"]
    data["service"] = {"system": "208Y/120V", "rating_a": 4000}
    data["circuits"] = [
        {"id": f"C{i:03d}", "panel": "P", "ocpd_a": 60, "lines": ["L1", "L2"], "conductors": run} for i in range(300)
    ]
    data["evse"] = [{"id": f"E{i:03d}", "circuit": f"C{i:03d}", "max_current_a": 48} for i in range(300)]
    big = ET.fromstring(render_svg(Site.model_validate(data)))
    labels = [t.text or "" for t in big.iter(f"{SVG}text")]
    assert any("C000 … C299 (×300)" in t for t in labels)
    assert float(big.get("height", "0")) < height_30  # one row stands for 300 identical circuits


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_cli_exit_codes(tmp_path):
    ok = runner.invoke(app, ["check", str(EXAMPLES / "residential.yaml")])
    assert ok.exit_code == 0, ok.output
    assert "circuit C-EV1" in ok.output
    failing = runner.invoke(app, ["check", str(EXAMPLES / "multifamily-30.yaml"), "--format", "json"])
    assert failing.exit_code == 1
    assert json.loads(failing.stdout)["result"] == "fail"
    bad = _write(tmp_path, {"name": "x", "service": {"system": "120/240V-1ph", "rating_a": -5}, "panels": []})
    broken = runner.invoke(app, ["check", str(bad)])
    assert broken.exit_code == 2
    assert "site.yaml:" in broken.stderr
    missing = runner.invoke(app, ["check", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2


def test_cli_out_file(tmp_path):
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["check", str(EXAMPLES / "workplace-20.yaml"), "--format", "html", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"report written to {out}" in result.stdout
    root = _parse_html(out.read_text(encoding="utf-8"))
    assert root.find(f".//{SVG}svg") is not None
    md = tmp_path / "r.md"
    assert runner.invoke(app, ["check", str(EXAMPLES / "workplace-20.yaml"), "-f", "md", "-o", str(md)]).exit_code == 0
    assert "Service upgrade avoided" in md.read_text(encoding="utf-8")


def test_cli_fails_with_60c_terminations(tmp_path):
    data = example_dict("residential")
    data["circuits"][0]["conductors"]["termination_c"] = 60
    result = runner.invoke(app, ["check", str(_write(tmp_path, data))])
    assert result.exit_code == 1
    assert "use 4 AWG Cu (70 A at 60 °C terminations) or 75 °C-rated terminations" in result.stdout


def test_cli_unwritable_out(tmp_path):
    out = tmp_path / "missing-dir" / "r.json"
    result = runner.invoke(app, ["check", str(EXAMPLES / "residential.yaml"), "-f", "json", "-o", str(out)])
    assert result.exit_code == 2
    assert "cannot write" in result.stderr
