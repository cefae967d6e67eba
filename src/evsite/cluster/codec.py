"""Run-time events on the wire between nodes: JSON with a type name, checked on the way in.

Only the kinds the load manager needs travel (a setpoint's result returns to the leader in the
command's reply). What arrives from NATS is trusted no more than a charger's frame: a message with an
unknown type, missing or extra fields or a bad timestamp is refused with `InputError`.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from datetime import datetime
from typing import Any

import orjson

from evsite.errors import InputError
from evsite.runtime.events import ChargerConnected, ConnectorStatus, Event, MeterSample, SiteSignal, TransactionEvent

FORWARDED: dict[str, type[Any]] = {
    cls.__name__: cls for cls in (ChargerConnected, ConnectorStatus, TransactionEvent, MeterSample, SiteSignal)
}
MAX_EVENT_BYTES = 16 * 1024
_TIMES = ("at", "until")


def subject_parts(event: Event) -> tuple[str, ...] | None:
    """The subject tail of an event (its last value per subject is what a new leader replays), None to skip."""
    name = type(event).__name__
    if isinstance(event, SiteSignal):
        return ("sig", event.kind, event.node, event.source)
    if isinstance(event, MeterSample):
        return ("cp", event.source, name, str(event.connector_id))
    if isinstance(event, ConnectorStatus | TransactionEvent):
        return ("cp", event.charge_point_id, name, str(event.connector_id))
    if isinstance(event, ChargerConnected):
        return ("cp", event.charge_point_id, name)
    return None


def encode(event: Event) -> bytes:
    return orjson.dumps({"type": type(event).__name__, **dataclasses.asdict(event)})


def decode(data: bytes) -> Event:
    """An event from `encode`'s bytes (raises InputError on anything else)."""
    if len(data) > MAX_EVENT_BYTES:
        raise InputError(f"event of {len(data)} bytes (at most {MAX_EVENT_BYTES})")
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"event is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InputError("event is not a JSON object")
    cls = FORWARDED.get(raw.pop("type", None))
    if cls is None:
        raise InputError("event of unknown type")
    for name in _TIMES:
        value = raw.get(name)
        if isinstance(value, str):
            try:
                raw[name] = datetime.fromisoformat(value)
            except ValueError:
                raise InputError(f"event field {name!r} is not an ISO 8601 time") from None
            if raw[name].tzinfo is None:
                raise InputError(f"event field {name!r} has no time zone")
    try:
        event: Event = cls(**raw)
    except TypeError as exc:
        raise InputError(f"event fields do not match {cls.__name__}: {exc}") from None
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(event):
        if not _fits(getattr(event, f.name), hints[f.name]):
            raise InputError(f"event field {cls.__name__}.{f.name} has the wrong type")
    return event


def _fits(value: Any, hint: Any) -> bool:
    """Whether a decoded JSON value matches a field's annotation (the few shapes events use)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_fits(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if origin is dict:
        return isinstance(value, dict) and all(_fits(k, args[0]) and _fits(v, args[1]) for k, v in value.items())
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)
