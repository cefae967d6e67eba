"""The example sites shipped with evsite (also at `examples/` in the source tree)."""

from pathlib import Path

EXAMPLES_DIR = Path(__file__).parent


def example_path(name: str) -> Path:
    """Path of a shipped example by file name or stem, e.g. `workplace-20`."""
    path = EXAMPLES_DIR / (name if name.endswith(".yaml") else f"{name}.yaml")
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in EXAMPLES_DIR.glob("*.yaml")))
        raise FileNotFoundError(f"no example named {name!r}; known: {known}")
    return path
