"""Quoting what a site file says in an error message, briefly."""

from __future__ import annotations

_SHOWN_CHARS = 60


def short_repr(value: object) -> str:
    """repr() cut to a readable length: a message quotes what the file says, not a megabyte of it."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"
