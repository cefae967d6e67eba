"""Cross-reference checks on raw site data: duplicate ids and links to elements that do not exist.

These run on the parsed YAML before (and independently of) pydantic validation, so that a file
with a typo in a field and a dangling panel reference reports both problems in one pass.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from datetime import date
from typing import Any

from evsite.site.text import short_repr
from evsite.site.topology import ROOT

Located = tuple[tuple[str | int, ...], str]


_ID_LISTS = ("panels", "feeders", "circuits", "evse", "ems", "meters", "inverters", "batteries",
             "building_loads", "units", "raceways")  # fmt: skip
_SERVICE = ROOT


def _items(data: dict[str, Any], key: str) -> Iterator[tuple[int, dict[str, Any]]]:
    value = data.get(key)
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict):
                yield index, item


def _ids(data: dict[str, Any], key: str) -> set[str]:
    return {str(item["id"]) for _, item in _items(data, key) if "id" in item}


_KNOWN_SHOWN = 10
"""Ids listed in a dangling-reference message: enough to spot a typo, never the whole file."""


def _known(allowed: set[str]) -> str:
    shown = heapq.nsmallest(_KNOWN_SHOWN, allowed)
    more = len(allowed) - len(shown)
    return (", ".join(shown) or "none defined") + (f" and {more:,} more" if more else "")


def _dangling(data: dict[str, Any], list_key: str, field: str, allowed: set[str], what: str) -> Iterator[Located]:
    known: str | None = None  # worked out once: a file of 20,000 dangling references must not sort 20,000 times
    for index, item in _items(data, list_key):
        ref = item.get(field)
        if ref is None or not isinstance(ref, str):
            continue
        if ref not in allowed:
            if known is None:
                known = _known(allowed)
            yield (
                (list_key, index, field),
                f"{list_key}[{index}].{field}: {what} {short_repr(ref)} does not exist; known: {known}",
            )


def check_references(data: dict[str, Any]) -> list[Located]:
    """Return (path, message) for every duplicate id and every reference to a missing element."""
    problems: list[Located] = []
    seen: dict[str, tuple[str, int]] = {}
    for key in _ID_LISTS:
        for index, item in _items(data, key):
            element_id = item.get("id")
            if not isinstance(element_id, str):
                continue
            if element_id == _SERVICE:
                problems.append(
                    ((key, index, "id"), f"{key}[{index}].id: 'service' is reserved for the utility service")
                )
            elif element_id in seen:
                first_key, first_index = seen[element_id]
                problems.append(
                    (
                        (key, index, "id"),
                        f"{key}[{index}].id: duplicate id {short_repr(element_id)}"
                        f" (first used by {first_key}[{first_index}]); ids must be unique",
                    )
                )
            else:
                seen[element_id] = (key, index)

    panels, feeders, circuits, evse = (_ids(data, k) for k in ("panels", "feeders", "circuits", "evse"))
    meters = _ids(data, "meters")
    problems += _dangling(data, "panels", "fed_by", feeders | {_SERVICE}, "feeder")
    problems += _dangling(data, "feeders", "from_panel", panels | {_SERVICE}, "panel")
    problems += _dangling(data, "circuits", "panel", panels, "panel")
    problems += _dangling(data, "evse", "circuit", circuits, "circuit")
    problems += _dangling(data, "evse", "meter_id", meters, "meter")
    for key in ("inverters", "batteries", "building_loads"):
        problems += _dangling(data, key, "panel", panels, "panel")
    problems += _dangling(data, "building_loads", "metered_by", meters, "meter")
    nodes = panels | feeders | circuits | evse | {_SERVICE}
    problems += _dangling(data, "meters", "measures", nodes, "node")
    for index, item in _items(data, "ems"):
        managed = item.get("manages")
        if isinstance(managed, list):
            for j, ref in enumerate(managed):
                if isinstance(ref, str) and ref not in nodes:
                    problems.append(
                        (
                            (("ems", index, "manages", j)),
                            f"ems[{index}].manages[{j}]: node {short_repr(ref)} does not exist",
                        )
                    )

    control = data.get("control")
    pv = control.get("pv_charging") if isinstance(control, dict) else None
    if isinstance(pv, dict) and isinstance(pv.get("node"), str) and pv["node"] not in nodes:
        problems.append(
            (
                ("control", "pv_charging", "node"),
                f"control.pv_charging.node: node {short_repr(pv['node'])} does not exist",
            )
        )

    problems += _raceway_references(data)
    problems += _feeder_loops(data)
    problems += _overlapping_tags(data)
    return problems


def _raceway_references(data: dict[str, Any]) -> list[Located]:
    """A run names a shared raceway that exists, and does not also describe its own raceway."""
    raceways = _ids(data, "raceways")
    problems: list[Located] = []
    for key in ("feeders", "circuits"):
        for index, item in _items(data, key):
            run = item.get("conductors")
            if not isinstance(run, dict) or not isinstance(run.get("raceway_id"), str):
                continue
            ref = run["raceway_id"]
            where = f"{key}[{index}].conductors"
            if ref not in raceways:
                problems.append(
                    (
                        (key, index, "conductors", "raceway_id"),
                        f"{where}.raceway_id: raceway {short_repr(ref)} does not exist; known: {_known(raceways)}",
                    )
                )
            elif "raceway" in run:
                problems.append(
                    (
                        (key, index, "conductors", "raceway"),
                        f"{where}: give either raceway_id (the shared raceway {short_repr(ref)}) or raceway, not both",
                    )
                )
    return problems


def _day(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def _overlapping_tags(data: dict[str, Any]) -> list[Located]:
    """An id tag held by two units on the same day would bill one tenant for another's charging.

    Each overlap is reported at both assignments, each naming the other, so both lines can be found.
    Holding runs from `since` (inclusive) to `until` (exclusive); a missing end is open.
    """
    held: dict[str, list[tuple[str, tuple[str | int, ...], date, date]]] = {}
    for u, unit in _items(data, "units"):
        tags = unit.get("tags")
        if not isinstance(tags, list):
            continue
        for t, item in enumerate(tags):
            path: tuple[str | int, ...]
            if isinstance(item, str):
                tag, since, until, path = item, None, None, ("units", u, "tags", t)
            elif isinstance(item, dict) and isinstance(item.get("tag"), str):
                tag, since, until = item["tag"], _day(item.get("since")), _day(item.get("until"))
                path = ("units", u, "tags", t, "tag")
            else:
                continue
            held.setdefault(tag, []).append((str(unit.get("id")), path, since or date.min, until or date.max))
    problems: list[Located] = []
    for tag, holders in held.items():
        for (unit_a, path_a, since_a, until_a), (unit_b, path_b, since_b, until_b) in itertools.combinations(
            holders, 2
        ):
            if unit_a == unit_b or not (since_a < until_b and since_b < until_a):
                continue
            first, last = max(since_a, since_b), min(until_a, until_b)
            when = (
                " ".join(
                    part
                    for part in (
                        f"from {first}" if first != date.min else "",
                        f"until {last}" if last != date.max else "",
                    )
                    if part
                )
                or "with no dates"
            )
            for here, there in (((unit_a, path_a), (unit_b, path_b)), ((unit_b, path_b), (unit_a, path_a))):
                problems.append(
                    (
                        here[1],
                        f"{_dotted(here[1])}: id tag {tag!r} is held by unit {here[0]!r} and by unit {there[0]!r} "
                        f"({_dotted(there[1])}) at the same time ({when}); a tag belongs to one unit at a time",
                    )
                )
    return problems


def _dotted(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(path))


def _feeder_loops(data: dict[str, Any]) -> list[Located]:
    """A panel must reach the service by following feeders; a loop never does.

    Each panel's verdict is remembered, so a chain of N panels is walked once, not N times.
    """
    feeder_source = {str(f.get("id")): f.get("from_panel") for _, f in _items(data, "feeders")}
    panel_feed = {str(p.get("id")): (i, p.get("fed_by", _SERVICE)) for i, p in _items(data, "panels")}
    in_loop: dict[str, bool] = {}
    for start in panel_feed:
        path: list[str] = []
        on_path: set[str] = set()
        current: str | None = start
        looped = False
        while current is not None:
            if current in in_loop:
                looped = in_loop[current]
                break
            if current in on_path:
                looped = True
                break
            path.append(current)
            on_path.add(current)
            current = _source_panel(current, panel_feed, feeder_source)
        for panel_id in path:
            in_loop[panel_id] = looped
    return [
        (("panels", index, "fed_by"), f"panels[{index}].fed_by: panel {short_repr(panel_id)} is fed in a loop")
        for panel_id, (index, _) in panel_feed.items()
        if in_loop[panel_id]
    ]


def _source_panel(panel_id: str, panel_feed: dict[str, tuple[int, Any]], feeder_source: dict[str, Any]) -> str | None:
    """The panel whose feeder feeds `panel_id`; None at the service or a reference that leads nowhere."""
    fed_by = panel_feed[panel_id][1]
    if not isinstance(fed_by, str) or fed_by == _SERVICE:
        return None
    source = feeder_source.get(fed_by)
    if not isinstance(source, str) or source == _SERVICE or source not in panel_feed:
        return None
    return source
