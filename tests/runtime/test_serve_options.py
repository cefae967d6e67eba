"""`evsite serve` refuses security settings it cannot honour, before it opens a port."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from evsite.cli import app
from tests.conftest import EXAMPLES

runner = CliRunner()
SITE = str(EXAMPLES / "residential.yaml")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--security-profile", "7"], "'--security-profile': Input should be less than or equal to 3"),
        (["--security-profile", "-1"], "'--security-profile': Input should be greater than or equal to 0"),
        (["--security-profile", "2"], "needs --tls-cert/--tls-key or --generate-cert"),
        (["--security-profile", "3", "--tls-cert", "c.pem", "--tls-key", "k.pem"], "3 needs --client-ca"),
        (["--api-max-body", "0"], "'--api-max-body': Input should be greater than or equal to 1"),
    ],
)
def test_serve_rejects_impossible_security_settings(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["serve", SITE, "--api-port", "0", *args], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output


def test_serve_help_lists_profiles_0_to_3() -> None:
    result = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    text = " ".join(result.output.split())
    assert "0 none, 1 Basic auth, 2 TLS + Basic auth, 3 TLS with client certificates" in text
    assert "0<=x<=3" in text
