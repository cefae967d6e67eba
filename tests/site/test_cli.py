"""The foundation commands: --version, validate, schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evsite import __version__
from evsite.cli import app, site_schema_json

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_validate_workplace_shows_20_evse_and_the_200_a_allocation(examples_dir: Path) -> None:
    result = runner.invoke(app, ["validate", str(examples_dir / "workplace-20.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.count("EVSE WP-") == 20
    assert "20 EVSE" in result.output
    assert "EV allocation 200 A" in result.output
    assert "EMS EMS-EV holds F-EV to 160 A" in result.output


def test_validate_reports_located_problems_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nservice: {system: 208Y/120V, rating_a: 0}\npanels: [{id: P, bus_rating_a: 100}]\n")
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:2:" in result.output
    assert "greater than 0" in result.output


def test_committed_schema_is_current() -> None:
    committed = (ROOT / "docs" / "site.schema.json").read_text(encoding="utf-8")
    assert committed == site_schema_json(), "run `make schema` to refresh docs/site.schema.json"


def test_schema_command_prints_json_schema() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    doc = json.loads(result.output)
    assert doc["title"] == "Site"
    assert "evse" in doc["properties"]


PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


@pytest.mark.parametrize("command", ["validate", "check", "serve"])
def test_a_binary_file_is_one_located_line_and_exit_2(tmp_path: Path, command: str) -> None:
    path = tmp_path / "photo.yaml"
    path.write_bytes(PNG_HEADER)
    result = runner.invoke(app, [command, str(path)])
    assert result.exit_code == 2, result.output
    assert not isinstance(result.exception, UnicodeDecodeError)
    lines = result.output.splitlines()
    assert lines[0] == f"{path}:1:1: not UTF-8 text: byte 0x89 at offset 0 cannot be decoded; is this a site file?"
    assert lines[1:] == [f"1 problem in {path}"]


@pytest.mark.parametrize("command", ["validate", "check", "serve"])
def test_a_directory_or_missing_file_is_one_line_and_exit_2(tmp_path: Path, command: str) -> None:
    for path in (tmp_path, tmp_path / "absent.yaml"):
        result = runner.invoke(app, [command, str(path)])
        assert result.exit_code == 2, result.output
        assert result.output.startswith(f"{path}:1:1: cannot read the file: "), result.output
