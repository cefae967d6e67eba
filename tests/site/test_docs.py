"""docs/site-format.md stays true to the model: every field of every element is documented."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from evsite.site import model

ROOT = Path(__file__).resolve().parents[2]


def _models() -> list[type[BaseModel]]:
    return [
        value
        for value in vars(model).values()
        if isinstance(value, type) and issubclass(value, model.Strict) and value is not model.Strict
    ]


def test_every_field_is_documented() -> None:
    text = (ROOT / "docs" / "site-format.md").read_text(encoding="utf-8")
    missing = [f"{cls.__name__}.{name}" for cls in _models() for name in cls.model_fields if f"`{name}`" not in text]
    assert not missing, f"document these fields in docs/site-format.md: {missing}"


def test_limits_section_states_the_limits_the_code_enforces() -> None:
    from evsite.site.load import DEFAULT_LIMITS

    text = (ROOT / "docs" / "site-format.md").read_text(encoding="utf-8")
    section = text[text.index("## Limits and plausible values") : text.index("## How the tree is wired")]
    assert DEFAULT_LIMITS.max_bytes == 16 * 1024 * 1024 and f"{DEFAULT_LIMITS.max_bytes:,} bytes" in section
    for number in (DEFAULT_LIMITS.max_nodes, DEFAULT_LIMITS.max_items, DEFAULT_LIMITS.max_alias_nodes):
        assert f"{number:,}" in section, number
    assert f"{DEFAULT_LIMITS.max_depth} levels" in section
    assert f"at most {model.MAX_CURRENT_A:.0f} A" in section
    assert f"at most {model.MAX_FAULT_CURRENT_A:,.0f} A" in section
    assert f"at most {model.MAX_RUN_M / 1000:g} km ({model.MAX_RUN_FT:,.0f} ft)" in section
    assert f"−{-model.AMBIENT_MIN_C:g} °C to +{model.AMBIENT_MAX_C:g} °C" in section
