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
