"""OCPP 1.6 JSON schema validation with compiled validators.

The official schemas ship inside the `ocpp` package; we compile each one with fastjsonschema on
first use (about 20× faster than the interpreted Draft 4 validator the `ocpp` package uses) and
check every message in both directions: what a charger sends us, and what we send it. Failures
become the CallError codes of OCPP-J 1.6 §4.2.3.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema

from evsite.ocpp.errors import OcppError

Validator = Callable[[Any], Any]

SCHEMA_DIR = Path(str(__import__("ocpp").__file__)).parent / "v16" / "schemas"

# OCPP-J 1.6 message sets, by direction (the security extension's messages are not part of 1.6J).
CHARGE_POINT_ACTIONS = frozenset(
    {
        "Authorize",
        "BootNotification",
        "DataTransfer",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "MeterValues",
        "StartTransaction",
        "StatusNotification",
        "StopTransaction",
    }
)
CENTRAL_SYSTEM_ACTIONS = frozenset(
    {
        "CancelReservation",
        "ChangeAvailability",
        "ChangeConfiguration",
        "ClearCache",
        "ClearChargingProfile",
        "DataTransfer",
        "GetCompositeSchedule",
        "GetConfiguration",
        "GetDiagnostics",
        "GetLocalListVersion",
        "RemoteStartTransaction",
        "RemoteStopTransaction",
        "ReserveNow",
        "Reset",
        "SendLocalList",
        "SetChargingProfile",
        "TriggerMessage",
        "UnlockConnector",
        "UpdateFirmware",
    }
)
ALL_ACTIONS = CHARGE_POINT_ACTIONS | CENTRAL_SYSTEM_ACTIONS

# fastjsonschema rule → OCPP-J error code
_RULE_CODES = {
    "required": "OccurenceConstraintViolation",
    "minItems": "OccurenceConstraintViolation",
    "maxItems": "OccurenceConstraintViolation",
    "type": "TypeConstraintViolation",
    "additionalProperties": "FormationViolation",
}


@cache
def _compiled(name: str) -> Validator:
    path = SCHEMA_DIR / f"{name}.json"
    with path.open(encoding="utf-8-sig") as handle:
        schema = json.load(handle)
    return fastjsonschema.compile(schema)


def _check(name: str, payload: Any) -> None:
    if not isinstance(payload, dict):
        raise OcppError("FormationViolation", f"{name} payload must be a JSON object")
    try:
        _compiled(name)(payload)
    except fastjsonschema.JsonSchemaValueException as exc:
        code = _RULE_CODES.get(exc.rule or "", "PropertyConstraintViolation")
        path = ".".join(str(p) for p in exc.path[1:]) if exc.path else ""
        raise OcppError(code, exc.message.replace("data.", "", 1), {"field": path, "rule": exc.rule or ""}) from None


def validate_request(action: str, payload: Any) -> None:
    """Raise OcppError with the spec's code when `payload` is not a valid `action` request."""
    _check(action, payload)


def validate_response(action: str, payload: Any) -> None:
    """Raise OcppError when `payload` is not a valid response (`…Response` schema) to `action`."""
    _check(f"{action}Response", payload)


def warm_up(actions: frozenset[str] = ALL_ACTIONS) -> None:
    """Compile validators ahead of time (otherwise each compiles on first use)."""
    for action in actions:
        _compiled(action)
        _compiled(f"{action}Response")
