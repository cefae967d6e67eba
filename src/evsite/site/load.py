"""YAML → Site, with every problem reported at once as `file:line:column: message`.

We keep the YAML node marks beside the parsed data so that pydantic's error locations
(`circuits.3.ocpd_a`) can be turned back into the line a person has to edit.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from evsite.errors import ConfigurationError
from evsite.site.model import Site
from evsite.site.references import check_references

PathKey = tuple[str | int, ...]


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a site file, located for the person who has to fix it."""

    line: int
    column: int
    message: str
    file: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class SiteFileError(ConfigurationError):
    """A site file that cannot be loaded; `problems` lists every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


# --------------------------------------------------------------------------- YAML with marks


class _Marked:
    """Parsed YAML data plus the (line, column) of each path, both 1-based."""

    def __init__(self) -> None:
        self._loader = yaml.SafeLoader("")
        self.marks: dict[PathKey, tuple[int, int]] = {}
        self.key_marks: dict[PathKey, tuple[int, int]] = {}
        self.problems: list[tuple[PathKey, str]] = []

    def build(self, node: yaml.Node, path: PathKey = ()) -> Any:
        self.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self._loader.construct_object(key_node, deep=True)
                child = (*path, key)
                if key in result:
                    line = key_node.start_mark.line + 1
                    self.key_marks[(*child, "__dup__")] = (line, key_node.start_mark.column + 1)
                    self.problems.append(((*child, "__dup__"), f"duplicate key {key!r}; keep only one"))
                self.key_marks[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                result[key] = self.build(value_node, child)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._loader.construct_object(node, deep=True)

    def release(self) -> None:
        """Drop the loader's node → object cache: it pins the whole YAML node tree in memory, and on a
        large site that is garbage only the cyclic collector would find (a measurable share of a check)."""
        self._loader.constructed_objects.clear()
        self._loader.dispose()

    def locate(self, path: Iterable[str | int]) -> tuple[int, int]:
        """The mark of the longest prefix of `path` that exists in the file."""
        full = tuple(path)
        for end in range(len(full), -1, -1):
            prefix = full[:end]
            if prefix in self.key_marks and end == len(full):
                return self.key_marks[prefix]
            if prefix in self.marks:
                return self.marks[prefix]
        return (1, 1)


_COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's composer when available: about 5× faster, with the same line and column marks."""


def parse_yaml(text: str, file: str) -> tuple[Any, _Marked]:
    """Parse YAML text keeping marks; syntax errors become a located SiteFileError."""
    marked = _Marked()
    try:
        node = yaml.compose(text, Loader=_COMPOSER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise SiteFileError([Problem(line, column, f"YAML syntax: {exc.problem or exc}", file)]) from exc
    if node is None:
        raise SiteFileError([Problem(1, 1, "the file is empty; expected a site mapping", file)])
    data = marked.build(node)
    marked.release()
    return data, marked


# --------------------------------------------------------------------------- pydantic errors → problems


def _field_names(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names accepted where `loc` points, walking the model's annotations."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = field.annotation
        elif isinstance(part, int) and typing.get_origin(current) is list:
            current = typing.get_args(current)[0]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """Strip Optional/Annotated/list wrappers down to a model class where there is one."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            inner = _unwrap(arg)
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return annotation


def _data_path(data: Any, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop loc parts that name union branches rather than keys present in the data."""
    path: list[Any] = []
    current = data
    for part in loc:
        if (isinstance(current, dict) and part in current) or (
            isinstance(current, list) and isinstance(part, int) and part < len(current)
        ):
            current = current[part]
            path.append(part)
        elif isinstance(current, dict) and part not in current and path[-1:] != [part]:
            path.append(part)
            break
    return tuple(path)


def _describe(error: dict[str, Any], data: Any, marked: _Marked, file: str) -> Problem:
    loc = tuple(error["loc"])
    path = _data_path(data, loc)
    kind = error["type"]
    where = format_path(path)
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        key = str(path[-1])
        allowed = _field_names(Site, path[:-1])
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else f"; expected one of: {', '.join(allowed)}"
        text = f"{where}: unknown field {key!r}{hint}"
    elif kind == "missing":
        hint = _MISSING_HINTS.get((str(path[0]), str(path[-1])) if path else ("", ""), "")
        text = f"{where}: required field is missing{hint}"
    else:
        value = error.get("input")
        shown = "" if isinstance(value, dict | list) else f" (got {value!r})"
        text = f"{where}: {message}{shown}"
    line, column = marked.locate(_value_key(data, path, str(error.get("msg", ""))))
    return Problem(line, column, text, file)


_MISSING_HINTS = {
    ("evse", "circuit"): "; this EVSE is on no circuit: add `circuit: <circuit id>`",
    ("circuits", "panel"): "; add `panel: <panel id>` for the panel the circuit is fed from",
}


def format_path(path: tuple[Any, ...]) -> str:
    """`('circuits', 0, 'ocpd_a')` → `circuits[0].ocpd_a`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "site"


def _value_key(data: Any, path: tuple[Any, ...], message: str) -> tuple[Any, ...]:
    """For an error raised on a whole mapping, point at the key whose value the message quotes."""
    node = data
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return path
    if isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(value, dict | list) and repr(value) in message:
                return (*path, key)
        for key in ("length", "length_m", "ambient", "ambient_f"):
            if key in node and key in message:
                return (*path, key)
    return path


# --------------------------------------------------------------------------- public API


def load_site_text(text: str, file: str = "<site>") -> Site:
    """Validate YAML text as a site; raise SiteFileError listing every problem."""
    data, marked = parse_yaml(text, file)
    problems = [Problem(*marked.locate(path), message, file) for path, message in marked.problems]
    if not isinstance(data, dict):
        raise SiteFileError([Problem(1, 1, "expected a mapping of site fields at the top level", file)])
    for path, message in check_references(data):
        problems.append(Problem(*marked.locate(path), message, file))
    site: Site | None = None
    try:
        site = Site.model_validate(data)
    except ValidationError as exc:
        problems.extend(_describe(dict(err), data, marked, file) for err in exc.errors())
    if problems or site is None:
        raise SiteFileError(problems)
    return site


def load_site(path: str | Path) -> Site:
    """Load and validate a site file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SiteFileError([Problem(1, 1, f"cannot read the file: {exc.strerror}", str(file))]) from exc
    return load_site_text(text, str(file))


def dump_site(site: Site) -> str:
    """Serialise a site back to YAML (canonical units: feet, °C)."""
    data = site.model_dump(mode="json", exclude_defaults=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
