"""Lengths and temperatures with units: the plain forms read without pint agree with pint."""

from __future__ import annotations

import pytest

from evsite.site import units
from evsite.site.units import UnitError, parse_length_ft, parse_temperature_c

LENGTHS = ["75 ft", "75ft", " 75 ft ", "23 m", "23.5 metres", "300 in", "1e2 ft", "12 inches", "3 yd", ".5 m"]
TEMPERATURES = ["86 degF", "30 degC", "30 °C", "86 °F", "-10 °C"]


@pytest.mark.parametrize("text", LENGTHS)
def test_plain_lengths_agree_with_pint(text: str) -> None:
    by_pint = float(units._parse(text, "[length]", "a length").to("ft").magnitude)
    assert parse_length_ft(text) == pytest.approx(by_pint, rel=1e-12)


@pytest.mark.parametrize("text", TEMPERATURES)
def test_plain_temperatures_agree_with_pint(text: str) -> None:
    by_pint = float(units._parse(text, "[temperature]", "a temperature").to("degC").magnitude)
    assert parse_temperature_c(text) == pytest.approx(by_pint, abs=1e-9)


def test_exact_published_conversions() -> None:
    # 1 ft = 0.3048 m exactly (international foot); 86 °F = 30 °C.
    assert parse_length_ft("30.48 m") == pytest.approx(100.0, rel=1e-12)
    assert parse_temperature_c("86 °F") == 30.0


@pytest.mark.parametrize(
    ("text", "words"),
    [("75", "has no unit"), ("75 kg", "not a length"), ("seventy ft", "cannot read"), ("2 furlong", None)],
)
def test_other_forms_still_go_to_pint(text: str, words: str | None) -> None:
    if words is None:  # a unit pint knows and the fast path does not: 2 furlongs ≈ 1,320 ft
        assert parse_length_ft(text) == pytest.approx(1320.0, rel=1e-5)  # pint: survey feet
        return
    with pytest.raises(UnitError, match=words):
        parse_length_ft(text)
