"""`evsite calc …` through the real CLI: JSON keys and types, text output, exit code 2 on bad input."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from evsite.cli import app

runner = CliRunner()


def run_json(*args: str) -> dict[str, object]:
    result = runner.invoke(app, ["calc", *args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def test_branch_json_keys_and_values() -> None:
    data = run_json("branch", "--amps", "48", "--volts", "240", "--termination-c", "75", "--length-ft", "100")
    for key in (
        "continuous_a", "ocpd_a", "conductor", "conductor_ampacity_a", "ampacity_column_c", "egc", "raceway",
        "fill_pct", "voltage_drop_v", "voltage_drop_pct", "disconnect_required", "gfci_required", "findings",
    ):  # fmt: skip
        assert key in data, key
    assert data["continuous_a"] == 60
    assert data["ocpd_a"] == 60
    assert data["conductor"] == "6 AWG Cu"
    assert data["conductor_ampacity_a"] == 65
    assert data["ampacity_column_c"] == 75
    assert data["egc"] == "10 AWG Cu"
    assert data["raceway"] == "3/4 EMT"
    assert isinstance(data["fill_pct"], float)
    assert isinstance(data["voltage_drop_v"], float)
    assert data["disconnect_required"] is False
    findings = data["findings"]
    assert isinstance(findings, list) and findings
    assert all({"rule", "status", "message"} <= set(f) for f in findings)


def test_branch_with_60c_terminations_picks_4_awg() -> None:
    data = run_json("branch", "--amps", "48", "--volts", "240")
    assert data["conductor"] == "4 AWG Cu"
    assert data["ampacity_column_c"] == 60


def test_branch_metres_and_fahrenheit() -> None:
    metres = run_json("branch", "--amps", "32", "--volts", "240", "--length-m", "30.48", "--ambient-f", "86")
    feet = run_json("branch", "--amps", "32", "--volts", "240", "--length-ft", "100")
    assert metres["voltage_drop_v"] == pytest.approx(feet["voltage_drop_v"])


def test_branch_check_of_existing_circuit_exits_1_on_failure() -> None:
    args = ["calc", "branch", "--amps", "48", "--volts", "240", "--conductor", "6 AWG Cu", "--ocpd", "60", "--json"]
    failing = runner.invoke(app, args)
    assert failing.exit_code == 1
    data = json.loads(failing.stdout)
    fail = next(f for f in data["findings"] if f["status"] == "fail")
    assert fail["rule"] == "NEC 2023 210.19(A)(1)(a), 110.14(C), Table 310.16 (60 °C column)"
    assert fail["fix"].startswith("use 4 AWG Cu (70 A at 60 °C terminations) or 75 °C-rated terminations")
    passing = runner.invoke(app, [*args, "--termination-c", "75"])
    assert passing.exit_code == 0


def test_ampacity_json() -> None:
    data = run_json("ampacity", "--conductor", "12 AWG Cu", "--insulation", "THHN", "--ccc", "9")
    assert data["table_ampacity_a"] == 30
    assert data["correction_factor"] == 1.0
    assert data["adjustment_factor"] == 0.7
    assert data["ampacity_a"] == 20
    assert data["max_ocpd_a"] == 20


def test_vd_and_min_conductor() -> None:
    data = run_json("vd", "--conductor", "6 AWG Cu", "--amps", "48", "--volts", "240", "--phases", "1",
                    "--length-ft", "100")  # fmt: skip
    assert data["method"] == "K"
    assert {"voltage_drop_v", "voltage_drop_pct"} <= set(data)
    sized = run_json("vd", "--amps", "20", "--volts", "120", "--length-ft", "100", "--max-pct", "3")
    assert sized["min_conductor"] == "8 AWG Cu"  # 10 AWG gives 4.1 %, 8 AWG 2.6 % (tradelicenseprep example)
    table9 = run_json("vd", "--conductor", "250 kcmil Cu", "--amps", "100", "--volts", "480", "--phases", "3",
                      "--length-ft", "200", "--pf", "0.85", "--raceway", "steel")  # fmt: skip
    assert table9["method"] == "Table 9"


def test_fill_json() -> None:
    data = run_json("fill", "--conductors", "3x6 THHN,1x10 THHN", "--raceway", "emt")
    assert data["total_area_in2"] == pytest.approx(0.1732)
    assert data["min_trade_size"] == "3/4"
    assert data["allowed_pct"] == 40
    assert isinstance(data["fill_pct"], float)


def test_egc_json() -> None:
    data = run_json("egc", "--ocpd", "60", "--phase-installed", "6 AWG Cu", "--phase-min", "8 AWG Cu")
    assert data["egc"] == "8 AWG Cu"
    assert data["ratio"] == pytest.approx(26240 / 16510, abs=1e-4)


def test_load_json() -> None:
    data = run_json("load", "--service-a", "200", "--max-demand-a", "100", "--add-va", "9600", "--volts", "240")
    assert (data["existing_load_a"], data["new_load_a"], data["total_a"], data["fits"]) == (125, 40, 165, True)
    managed = run_json("load", "--service-a", "200", "--max-demand-a", "140", "--add-va", "19200", "--volts",
                       "240", "--ems-setpoint-a", "24")  # fmt: skip
    assert managed["new_load_a"] == 24 and managed["fits"] is True


def test_dwelling_json() -> None:
    data = run_json("dwelling", "--area-ft2", "2800", "--appliances-va", "23500", "--space-heat-va", "15000",
                    "--cooling-va", "6960")  # fmt: skip
    assert data["total_va"] == pytest.approx(30310)


def test_harmonics_json() -> None:
    data = run_json("harmonics", "--volts", "480", "--isc-a", "20000", "--il-a", "800",
                    "--harmonics", "5=40,7=24,11=16,13=10", "--fundamental-a", "600")  # fmt: skip
    assert data["isc_over_il"] == 25
    assert data["tdd_limit_pct"] == 8
    assert data["individual_limits_pct"] == {"5": 7.0, "7": 7.0, "11": 3.5, "13": 3.5}
    assert data["thd_v_limit_pct"] == 8 and data["individual_v_limit_pct"] == 5
    assert data["pass"] is True
    assert data["tdd_pct"] < data["thd_i_pct"]  # TDD divides by I_L (800 A), THDi by the fundamental (600 A)


def test_level_json() -> None:
    data = run_json("level", "--volts", "240", "--amps", "80")
    assert data["level"] == "AC Level 2" and data["kw"] == 19.2


def test_text_output_shows_arithmetic_and_fix() -> None:
    result = runner.invoke(app, ["calc", "branch", "--amps", "48", "--volts", "240"])
    assert result.exit_code == 0
    assert "48 A × 1.25 = 60 A" in result.stdout
    assert "NEC 2023 625.41" in result.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["ampacity", "--conductor", "7 AWG Cu"], "not a standard AWG size"),
        (["branch", "--amps", "-5", "--volts", "240"], "must be greater than zero"),
        (["ampacity", "--conductor", "6 AWG Cu", "--termination-c", "80"], "80 °C is not a Table 310.16 column"),
        (["vd", "--conductor", "6 AWG", "--amps", "48", "--volts", "240"], "length"),
        (["fill", "--conductors", "3 of 6 THHN"], "cannot read"),
        (["fill", "--conductors", "3x6 ZZZ"], "insulation"),
        (["harmonics", "--volts", "480", "--isc-a", "1", "--il-a", "1", "--harmonics", "5:4"], "ORDER=AMPS"),
        (["egc", "--ocpd", "9000"], "beyond Table 250.122"),
        (["branch", "--amps", "48", "--volts", "240", "--connection", "nema-99"], "unknown connection"),
        (["branch", "--amps", "abc", "--volts", "240"], "Invalid value for '--amps'"),
        (["branch", "--volts", "240"], "Missing option '--amps'"),
        (["level", "--volts", "240", "--amps", "32", "--bogus"], "No such option"),
        (["branch", "--amps", "48", "--volts", "240", "--phases", "2"], "phases must be 1 or 3"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], needle: str) -> None:
    result = runner.invoke(app, ["calc", *args])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and needle in lines[0]
    assert result.stdout == ""
