"""Cross-reference checks on raw site data: duplicate ids and links to elements that do not exist.

These run on the parsed YAML before (and independently of) pydantic validation, so that a file
with a typo in a field and a dangling panel reference reports both problems in one pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from evsite.site.topology import ROOT

Located = tuple[tuple[str | int, ...], str]

_ID_LISTS = ("panels", "feeders", "circuits", "evse", "ems", "meters", "inverters", "batteries",
             "building_loads", "units")  # fmt: skip
_SERVICE = ROOT


def _items(data: dict[str, Any], key: str) -> Iterator[tuple[int, dict[str, Any]]]:
    value = data.get(key)
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict):
                yield index, item


def _ids(data: dict[str, Any], key: str) -> set[str]:
    return {str(item["id"]) for _, item in _items(data, key) if "id" in item}


def _dangling(data: dict[str, Any], list_key: str, field: str, allowed: set[str], what: str) -> Iterator[Located]:
    for index, item in _items(data, list_key):
        ref = item.get(field)
        if ref is None or not isinstance(ref, str):
            continue
        if ref not in allowed:
            known = ", ".join(sorted(allowed)) or "none defined"
            yield (
                (list_key, index, field),
                f"{list_key}[{index}].{field}: {what} {ref!r} does not exist; known: {known}",
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
                        f"{key}[{index}].id: duplicate id {element_id!r} (first used by {first_key}[{first_index}]);"
                        " ids must be unique",
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
                            f"ems[{index}].manages[{j}]: node {ref!r} does not exist",
                        )
                    )

    control = data.get("control")
    pv = control.get("pv_charging") if isinstance(control, dict) else None
    if isinstance(pv, dict) and isinstance(pv.get("node"), str) and pv["node"] not in nodes:
        problems.append(
            (("control", "pv_charging", "node"), f"control.pv_charging.node: node {pv['node']!r} does not exist")
        )

    problems += _feeder_loops(data)
    return problems


def _feeder_loops(data: dict[str, Any]) -> list[Located]:
    """A panel must reach the service by following feeders; a loop never does."""
    feeder_source = {str(f.get("id")): f.get("from_panel") for _, f in _items(data, "feeders")}
    panel_feed = {str(p.get("id")): (i, p.get("fed_by", _SERVICE)) for i, p in _items(data, "panels")}
    problems: list[Located] = []
    for panel_id, (index, fed_by) in panel_feed.items():
        seen = {panel_id}
        current = fed_by
        while isinstance(current, str) and current != _SERVICE:
            source = feeder_source.get(current)
            if not isinstance(source, str) or source == _SERVICE or source not in panel_feed:
                break
            if source in seen:
                problems.append(
                    (
                        ("panels", index, "fed_by"),
                        f"panels[{index}].fed_by: panel {panel_id!r} is fed in a loop",
                    )
                )
                break
            seen.add(source)
            current = panel_feed[source][1]
    return problems
