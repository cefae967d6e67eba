"""YAML → Site, with every problem reported at once as `file:line:column: message`.

We keep the YAML node marks beside the parsed data so that pydantic's error locations
(`circuits.3.ocpd_a`) can be turned back into the line a person has to edit.
"""

from __future__ import annotations

import difflib
import gc
import os
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from evsite.errors import ConfigurationError
from evsite.site.model import Site
from evsite.site.references import check_references
from evsite.site.text import short_repr

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


# --------------------------------------------------------------------------- limits


@dataclass(frozen=True)
class SiteLimits:
    """Bounds on what a site file may cost to read, so a hostile or runaway file fails fast and small.

    A real site file is tens of kilobytes; a 1,000-charger garage is about 0.3-0.5 MB and 30,000 YAML
    nodes. The defaults leave ample room above that and stop a "billion laughs" alias bomb or a
    47 MB generated file before it is built in memory. Raise them through the environment
    (`EVSITE_SITE_MAX_BYTES`, `EVSITE_SITE_MAX_NODES`, `EVSITE_SITE_MAX_ITEMS`) or by passing limits.
    """

    max_bytes: int = 16 * 1024 * 1024
    """Largest file read, in bytes of UTF-8."""
    max_nodes: int = 1_000_000
    """YAML nodes built (scalars, mappings, sequences), counting every node an alias repeats."""
    max_alias_nodes: int = 10_000
    """Nodes reached through aliases, beyond as many as the file writes out: aliases may at most double a
    file (PyYAML's dumper writes shared lists as aliases), while a 350-byte alias bomb stops here."""
    max_depth: int = 20
    """Nesting of mappings and sequences; the site format needs 6."""
    max_items: int = 20_000
    """Entries in any one list (circuits, EVSE, …)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SiteLimits:
        """The defaults, with any `EVSITE_SITE_MAX_*` override; a bad override is a SiteFileError."""
        env = os.environ if environ is None else environ
        values: dict[str, int] = {}
        for name in ("max_bytes", "max_nodes", "max_items"):
            key = f"EVSITE_SITE_{name.upper()}"
            text = env.get(key)
            if text is None:
                continue
            if not (text.strip().isascii() and text.strip().isdigit()) or int(text) < 1:
                raise SiteFileError([Problem(1, 1, f"{key}={text!r} must be a positive whole number", key)])
            values[name] = int(text)
        return cls(**values)


DEFAULT_LIMITS = SiteLimits()


# --------------------------------------------------------------------------- YAML with marks

_MERGE_TAG = "tag:yaml.org,2002:merge"
_SCALAR_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in ("null", "bool", "int", "float", "str", "timestamp"))
_COLLECTION_TAGS = frozenset(("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"))
_NO_KEY = object()


def _position(event: yaml.Event) -> tuple[int, int]:
    """1-based (line, column) where an event starts."""
    mark = event.start_mark
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


class _Frame:
    """An open mapping or sequence while the event stream is read."""

    __slots__ = ("anchor", "container", "key", "nodes_before", "path")

    def __init__(self, container: dict[Any, Any] | list[Any], path: PathKey, anchor: str | None, nodes: int):
        self.container = container
        self.path = path
        self.anchor = anchor
        self.key: Any = _NO_KEY
        self.nodes_before = nodes


class _Marked:
    """Parsed YAML data plus the (line, column) of each path, both 1-based.

    Built straight from the parser's event stream rather than from a composed node tree: the tree
    costs about 300 bytes per node before any data exists (590 MB for a 4 MB list of numbers), and
    counting events as they arrive lets the limits stop a runaway file before it is in memory.
    Aliases reuse the anchored value; the nodes they stand for count against `max_alias_nodes`, so
    nested aliases cannot multiply.
    """

    def __init__(self, file: str = "<site>", limits: SiteLimits = DEFAULT_LIMITS) -> None:
        self._loader = yaml.SafeLoader("")
        self.file = file
        self.limits = limits
        self.marks: dict[PathKey, tuple[int, int]] = {}
        self.key_marks: dict[PathKey, tuple[int, int]] = {}
        self.problems: list[tuple[PathKey, str]] = []
        self.nodes = 0
        self.alias_nodes = 0
        self._anchors: dict[str, tuple[Any, int]] = {}
        self._open_anchors: set[str] = set()

    def _fail(self, event: yaml.Event, message: str) -> SiteFileError:
        return SiteFileError([Problem(*_position(event), message, self.file)])

    def _count(self, event: yaml.Event, nodes: int) -> None:
        self.nodes += nodes
        if self.nodes > self.limits.max_nodes:
            raise self._fail(
                event, f"more than {self.limits.max_nodes:,} YAML nodes; the file is too large to be a site"
            )

    def _scalar(self, event: yaml.ScalarEvent) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            tag = self._loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag == _MERGE_TAG:
            raise self._fail(event, "YAML merge keys (<<) are not supported; write the fields out")
        if tag not in _SCALAR_TAGS:
            raise self._fail(event, f"YAML tag {short_repr(tag)} is not allowed in a site file")
        node = yaml.ScalarNode(tag, event.value, None, None, event.style)  # constructors read only tag and value
        try:
            return self._loader.yaml_constructors[tag](self._loader, node)
        except ValueError as exc:  # e.g. the date 2023-02-30, or an integer of 5,000 digits
            raise self._fail(event, f"{short_repr(event.value)} cannot be read: {exc}") from None

    def _alias(self, event: yaml.AliasEvent) -> Any:
        name = event.anchor
        if name in self._open_anchors:
            raise self._fail(event, f"alias *{name} refers to a node that contains it; recursive data is not allowed")
        if name not in self._anchors:
            raise self._fail(event, f"alias *{name} has no anchor &{name} before it")
        value, size = self._anchors[name]
        written = self.nodes - self.alias_nodes
        self.alias_nodes += size
        allowed = max(self.limits.max_alias_nodes, written)
        if self.alias_nodes > allowed:
            raise self._fail(
                event,
                f"aliases expand to more than {allowed:,} YAML nodes (an alias bomb?);"
                " write the data out or use fewer aliases",
            )
        self._count(event, size)
        return value

    def build(self, events: Iterable[yaml.Event]) -> Any:
        """Build the data from parser events, enforcing the limits as each event arrives."""
        stack: list[_Frame] = []
        root: Any = None
        documents = 0
        for event in events:
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise self._fail(event, "a second YAML document (---); a site file holds one")
                continue
            if isinstance(event, yaml.CollectionEndEvent):
                frame = stack.pop()
                if frame.anchor is not None:
                    self._open_anchors.discard(frame.anchor)
                    self._anchors[frame.anchor] = (frame.container, self.nodes - frame.nodes_before)
                continue
            if not isinstance(event, yaml.NodeEvent):
                continue  # stream start and end, document end
            parent = stack[-1] if stack else None
            if parent is not None and isinstance(parent.container, dict) and parent.key is _NO_KEY:
                self._key(event, parent)
                continue
            if parent is None:
                path: PathKey = ()
            elif isinstance(parent.container, dict):
                path = (*parent.path, parent.key)
            else:
                if len(parent.container) >= self.limits.max_items:
                    raise self._fail(event, f"a list of more than {self.limits.max_items:,} entries")
                path = (*parent.path, len(parent.container))
            self.marks[path] = _position(event)
            value: Any
            if isinstance(event, yaml.ScalarEvent):
                self._count(event, 1)
                value = self._scalar(event)
                if event.anchor is not None:
                    self._anchors[event.anchor] = (value, 1)
            elif isinstance(event, yaml.AliasEvent):
                value = self._alias(event)
            else:
                assert isinstance(event, yaml.CollectionStartEvent)
                value = self._open(event, path, stack)
            if parent is None:
                root = value
            elif isinstance(parent.container, dict):
                parent.container[parent.key] = value
                parent.key = _NO_KEY
            else:
                parent.container.append(value)
        return root

    def _open(self, event: yaml.CollectionStartEvent, path: PathKey, stack: list[_Frame]) -> Any:
        if len(stack) >= self.limits.max_depth:
            raise self._fail(event, f"nested more than {self.limits.max_depth} levels deep")
        if event.tag not in (None, "!") and event.tag not in _COLLECTION_TAGS:
            raise self._fail(event, f"YAML tag {short_repr(event.tag)} is not allowed in a site file")
        self._count(event, 1)
        container: dict[Any, Any] | list[Any] = {} if isinstance(event, yaml.MappingStartEvent) else []
        if event.anchor is not None:
            self._open_anchors.add(event.anchor)
        stack.append(_Frame(container, path, event.anchor, self.nodes - 1))
        return container

    def _key(self, event: yaml.NodeEvent, parent: _Frame) -> None:
        if not isinstance(event, yaml.ScalarEvent):
            raise self._fail(event, "a mapping key must be a plain word or number")
        self._count(event, 1)
        key = self._scalar(event)
        child = (*parent.path, key)
        mark = _position(event)
        assert isinstance(parent.container, dict)
        if key in parent.container:
            self.key_marks[(*child, "__dup__")] = mark
            self.problems.append(((*child, "__dup__"), f"duplicate key {short_repr(key)}; keep only one"))
        self.key_marks[child] = mark
        parent.key = key
        if event.anchor is not None:
            self._anchors[event.anchor] = (key, 1)

    def release(self) -> None:
        """Drop the anchors and the loader: nothing built from the file is needed once the data exists."""
        self._anchors.clear()
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
"""libyaml's parser when available: about 5× faster, with the same line and column marks."""


def _text_position(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of character `index` in `text`."""
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


def parse_yaml(text: str, file: str, limits: SiteLimits = DEFAULT_LIMITS) -> tuple[Any, _Marked]:
    """Parse YAML text keeping marks; syntax errors and exceeded limits become a located SiteFileError."""
    size = len(text.encode("utf-8", errors="surrogatepass")) if len(text) * 4 > limits.max_bytes else len(text)
    if size > limits.max_bytes:
        raise SiteFileError([Problem(1, 1, _too_big(size, limits), file)])
    marked = _Marked(file, limits)
    try:
        data = marked.build(yaml.parse(text, Loader=_COMPOSER))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise SiteFileError([Problem(line, column, f"YAML syntax: {exc.problem or exc}", file)]) from None
    except yaml.reader.ReaderError as exc:  # a control character: not a text file
        line, column = _text_position(text, exc.position)
        what = f"U+{exc.character:04X}" if isinstance(exc.character, int) else repr(exc.character)
        message = f"character {what} at offset {exc.position} is not allowed in YAML; is this a text file?"
        raise SiteFileError([Problem(line, column, message, file)]) from None
    finally:
        marked.release()
    if data is None:
        raise SiteFileError([Problem(1, 1, "the file is empty; expected a site mapping", file)])
    return data, marked


def _too_big(size: int, limits: SiteLimits) -> str:
    return (
        f"the file is larger than the {limits.max_bytes:,}-byte limit ({size:,}+ bytes);"
        " set EVSITE_SITE_MAX_BYTES to raise it"
    )


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
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6) if len(key) <= 64 else []
        hint = f"; did you mean {close[0]!r}?" if close else f"; expected one of: {', '.join(allowed)}"
        text = f"{where}: unknown field {short_repr(key)}{hint}"
    elif kind == "missing":
        hint = _MISSING_HINTS.get((str(path[0]), str(path[-1])) if path else ("", ""), "")
        text = f"{where}: required field is missing{hint}"
    else:
        value = error.get("input")
        shown = "" if isinstance(value, dict | list) else f" (got {short_repr(value)})"
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
        text = message.removeprefix("Value error, ")
        for key in node:
            if isinstance(key, str) and text.startswith(f"{key} "):  # a unit or range message names its key first
                return (*path, key)
        for key, value in node.items():
            if not isinstance(value, dict | list) and repr(value) in message:
                return (*path, key)
        for key in ("length", "length_m", "ambient", "ambient_f"):
            if key in node and key in message:
                return (*path, key)
    return path


# --------------------------------------------------------------------------- public API


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic collector while a site is built or checked (reference counting still frees).

    Loading allocates objects that all outlive it, so each automatic collection rescans a growing heap
    and finds nothing: with it on, load time per circuit grew by a third from 10,000 to 40,000 circuits
    (bench/site_load.py); paused, it stays flat. The limits bound what is built meanwhile.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_site_text(text: str, file: str = "<site>", limits: SiteLimits | None = None) -> Site:
    """Validate YAML text as a site; raise SiteFileError listing every problem."""
    with cyclic_gc_paused():
        return _load_site_text(text, file, limits or SiteLimits.from_env())


def _load_site_text(text: str, file: str, limits: SiteLimits) -> Site:
    data, marked = parse_yaml(text, file, limits)
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


def read_site_text(path: str | Path, limits: SiteLimits | None = None) -> str:
    """The text of a site file, read no further than the size limit; unreadable or non-UTF-8 → SiteFileError."""
    file = Path(path)
    limits = limits or SiteLimits.from_env()
    try:
        with file.open("rb") as stream:  # bounded read: /dev/zero or a 5 GB file cost max_bytes at most
            raw = stream.read(limits.max_bytes + 1)
    except OSError as exc:
        raise SiteFileError([Problem(1, 1, f"cannot read the file: {exc.strerror or exc}", str(file))]) from None
    if len(raw) > limits.max_bytes:
        raise SiteFileError([Problem(1, 1, _too_big(len(raw), limits), str(file))])
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        offset = exc.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
        line = raw.count(b"\n", 0, offset) + 1
        column = offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
        message = f"not UTF-8 text: byte 0x{raw[offset]:02x} at offset {offset} cannot be decoded; is this a site file?"
        raise SiteFileError([Problem(line, column, message, str(file))]) from None


def load_site(path: str | Path, limits: SiteLimits | None = None) -> Site:
    """Load and validate a site file."""
    limits = limits or SiteLimits.from_env()
    return load_site_text(read_site_text(path, limits), str(path), limits)


def dump_site(site: Site) -> str:
    """Serialise a site back to YAML (canonical units: feet, °C)."""
    data = site.model_dump(mode="json", exclude_defaults=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
