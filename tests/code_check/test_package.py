"""The permit package (`evsite check --format pdf|html --package`): rendered, then read back as a reviewer would.

The PDF is read with poppler's pdftotext/pdfinfo (text, word boxes, page size and count), not with our own code.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evsite.cli import app
from evsite.code.check import check_site
from evsite.code.oneline import conductor_callout, layout_rows
from evsite.code.package import ONELINE_ROWS_FIRST_SHEET, ONELINE_ROWS_PER_SHEET, build_package
from evsite.code.pdf import MIN_PT, render_pdf
from evsite.site.model import Site
from tests.code_check.helpers import EXAMPLES, example_dict

runner = CliRunner()
needs_poppler = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils (pdftotext)")


def _pdf(tmp_path: Path, name: str) -> Path:
    out = tmp_path / f"{name}.pdf"
    result = runner.invoke(
        app, ["check", str(EXAMPLES / f"{name}.yaml"), "--format", "pdf", "--package", "--out", str(out)]
    )
    assert result.exit_code in (0, 1), result.output
    assert "permit package written" in result.output
    return out


def _text(pdf: Path, *args: str) -> str:
    return subprocess.run(["pdftotext", *args, str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def _info(pdf: Path) -> dict[str, str]:
    out = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


@needs_poppler
@pytest.mark.parametrize("name", ["residential", "workplace-20"])
def test_package_pdf_has_every_sheet_on_ansi_b(tmp_path, name):
    pdf = _pdf(tmp_path, name)
    info = _info(pdf)
    assert info["Page size"].startswith("1224 x 792 pts")  # 17 × 11 in
    site = Site.model_validate(example_dict(name))
    pkg = build_package(check_site(site))
    pages = int(info["Pages"])
    assert pages >= len(pkg.sheets)
    text = _text(pdf, "-layout")
    for sheet in pkg.sheets:
        assert re.search(rf"^\s*{re.escape(sheet.number)}\s*$", text, re.M), f"sheet {sheet.number} missing"
    for heading in (
        "Sheet index",
        "Scope of work",
        "Load calculation worksheet",
        "EV panel schedule",
        "Equipment schedule",
        "Conductor and raceway schedule",
        "Appendix",
        "SEAL / SIGNATURE",
    ):
        assert heading in text
    assert '(2) #6 + (1) #10 EGC, Cu THHN, in ¾" EMT' in text  # the callout an electrician writes
    assert "UL 2594" in text
    # No debug text for a reviewer: no "inputs:" dumps, no Python dicts or lists.
    assert "inputs:" not in text and not re.search(r"\{'|\['", text)


@needs_poppler
def test_package_text_is_at_least_8_pt(tmp_path):
    pdf = _pdf(tmp_path, "workplace-20")
    boxes = _text(pdf, "-bbox")
    word = re.compile(r'<word xMin="[\d.]+" yMin="([\d.]+)" xMax="[\d.]+" yMax="([\d.]+)">')
    heights = [float(m[2]) - float(m[1]) for m in word.finditer(boxes)]  # poppler: box height = font size
    assert len(heights) > 500
    assert min(heights) >= MIN_PT - 1e-6


@needs_poppler
def test_large_site_one_line_splits_across_sheets(tmp_path):
    data = example_dict("workplace-20")
    circuits, evse = [], []
    for i in range(200):  # alternate designs so that no two neighbours collapse into one row
        c = copy.deepcopy(data["circuits"][0])
        c["id"], c["ocpd_a"] = f"C-{i:03d}", 60 if i % 2 else 50
        circuits.append(c)
        e = copy.deepcopy(data["evse"][0])
        e["id"], e["circuit"], e["max_current_a"] = f"EV-{i:03d}", c["id"], 48 if i % 2 else 40
        evse.append(e)
    data["circuits"], data["evse"] = circuits, evse
    site = Site.model_validate(data)
    pkg = build_package(check_site(site))
    rows = layout_rows(pkg.idx)
    assert len(rows) > 200
    expected = 1 + -(-(len(rows) - ONELINE_ROWS_FIRST_SHEET) // ONELINE_ROWS_PER_SHEET)
    oneline = [s for s in pkg.sheets if s.number.startswith("E-1.")]
    assert len(oneline) == expected
    pdf = tmp_path / "garage.pdf"
    pdf.write_bytes(render_pdf(pkg))
    text = _text(pdf, "-layout")
    assert f"One-line diagram ({expected} of {expected})" in text
    assert "C-199" in text and "EV-199 48 A" in text


def test_panel_schedule_positions_sit_on_the_circuits_bus_phases():
    pkg = build_package(check_site(Site.model_validate(example_dict("workplace-20"))))
    (schedule,) = pkg.panel_schedules
    lines = schedule.phases
    circuits = {c.id: c for c in pkg.report.site.circuits}
    for row in schedule.table.rows[:-1]:
        positions = [int(p) for p in row[0].split(",")]
        rows = [(p + 1) // 2 for p in positions]
        phases = {lines[(r - 1) % len(lines)] for r in rows}
        assert phases == {str(x) for x in circuits[row[1]].lines}, row
        assert len({p % 2 for p in positions}) == 1  # a breaker's poles are on one side
    used = [p for row in schedule.table.rows[:-1] for p in row[0].split(",")]
    assert len(used) == len(set(used))


def test_panel_totals_use_the_upstream_ems():
    # Workplace: 20 × 48 A on panel EVP, capped by EMS-EV at 160 A on feeder F-EV: 160 A × 125 % = 200 A ≤ main.
    pkg = build_package(check_site(Site.model_validate(example_dict("workplace-20"))))
    totals = {row[0]: row[1:] for row in pkg.panel_schedules[0].totals.rows}
    assert totals["EMS load × 125 %"] == ("200", "200", "200")
    assert totals["Against main 200 A / bus 225 A"] == ("OK", "OK", "OK")


def test_load_worksheet_is_one_table_with_a_verdict():
    pkg = build_package(check_site(Site.model_validate(example_dict("workplace-20"))))
    ws = pkg.load_worksheet
    assert ws is not None
    items = [row[0] for row in ws.rows if row[0]]
    assert items[:2] == ["EVSE load (220.57)", "Existing load (220.87)"]
    assert "310,000 VA / (√3 × 208 V) = 860.47 A maximum demand" in [row[2] for row in ws.rows]
    assert ws.rows[-1][0] == "Result against the service" and ws.rows[-1][3] == "PASS"


def test_actions_list_failures_before_warnings():
    pkg = build_package(check_site(Site.model_validate(example_dict("multifamily-30"))))
    assert pkg.actions is not None
    statuses = [row[1] for row in pkg.actions.rows]
    assert statuses and statuses == sorted(statuses, key=lambda s: s != "FAIL")
    assert statuses[0] == "FAIL" and all(row[6] for row in pkg.actions.rows if row[1] == "FAIL")


def test_conductor_callouts():
    site = Site.model_validate(example_dict("workplace-20"))
    feeder = site.feeders[0]
    assert conductor_callout(feeder) == '(3) #3/0 + (1) #3/0 N + (1) #6 EGC, Cu THHN, in 2" EMT'
    data = example_dict("workplace-20")
    run = data["circuits"][0]["conductors"]
    run.update({"size": "250 kcmil", "material": "al", "egc": "4 AWG Cu", "parallel_sets": 2})
    run["raceway"]["trade_size"] = "2-1/2"
    circuit = Site.model_validate(data).circuits[0]
    assert conductor_callout(circuit) == '(4) 250 kcmil + (1) #4 Cu EGC, Al THHN, in 2½" EMT (2 parallel sets)'


def test_html_package_is_well_formed_with_every_sheet():
    result = runner.invoke(app, ["check", str(EXAMPLES / "residential.yaml"), "--format", "html", "--package"])
    assert result.exit_code == 0, result.output
    text = result.output
    root = ET.fromstring(text.split("\n", 2)[2])  # XML once the declaration and doctype are removed
    ids = [s.get("id") for s in root.iter("{http://www.w3.org/1999/xhtml}section")]
    assert ids[:3] == ["E-0.0", "E-0.1", "E-1.0"] and ids[-1] == "A-1"
    assert "<svg" in text and "Load calculation worksheet" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "pdf", "--out", "x.pdf"], "add --package"),
        (["--format", "json", "--package"], "--package needs --format pdf or --format html"),
        (["--format", "pdf", "--package"], "give --out FILE.pdf"),
    ],
)
def test_package_option_errors_exit_2(args, message):
    result = runner.invoke(app, ["check", str(EXAMPLES / "residential.yaml"), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_pdf_without_reportlab_says_what_to_install(monkeypatch, tmp_path):
    import sys

    monkeypatch.delitem(sys.modules, "evsite.code.pdf", raising=False)
    monkeypatch.setitem(sys.modules, "reportlab", None)  # as if not installed: importing it raises ImportError
    out = tmp_path / "x.pdf"
    result = runner.invoke(
        app, ["check", str(EXAMPLES / "residential.yaml"), "--format", "pdf", "--package", "--out", str(out)]
    )
    assert result.exit_code == 2
    assert "pip install 'evsite[pdf]'" in result.output and not out.exists()
