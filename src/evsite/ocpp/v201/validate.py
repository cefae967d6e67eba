"""OCPP 2.0.1 JSON schema validation, compiled once per message like the 1.6 validator.

The official 2.0.1 schemas (draft 06) ship inside the `ocpp` package as `{Action}Request.json` and
`{Action}Response.json`. Failures become the CallError codes of OCPP-J 2.0.1 (Part 4 §4.3), which
spell two codes differently from 1.6: FormatViolation and OccurrenceConstraintViolation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evsite.ocpp.connection import Dialect
from evsite.ocpp.validate import SchemaSet

SCHEMA_DIR = Path(str(__import__("ocpp").__file__)).parent / "v201" / "schemas"

# Part 2 message sets by direction: what a Charging Station sends (and we serve), what the CSMS sends.
STATION_ACTIONS = frozenset(
    {
        "Authorize",
        "BootNotification",
        "ClearedChargingLimit",
        "DataTransfer",
        "FirmwareStatusNotification",
        "Get15118EVCertificate",
        "GetCertificateStatus",
        "Heartbeat",
        "LogStatusNotification",
        "MeterValues",
        "NotifyChargingLimit",
        "NotifyCustomerInformation",
        "NotifyDisplayMessages",
        "NotifyEVChargingNeeds",
        "NotifyEVChargingSchedule",
        "NotifyEvent",
        "NotifyMonitoringReport",
        "NotifyReport",
        "PublishFirmwareStatusNotification",
        "ReportChargingProfiles",
        "ReservationStatusUpdate",
        "SecurityEventNotification",
        "SignCertificate",
        "StatusNotification",
        "TransactionEvent",
    }
)
ALL_ACTIONS = frozenset(p.name.removesuffix("Request.json") for p in SCHEMA_DIR.glob("*Request.json"))
CSMS_ACTIONS = ALL_ACTIONS - STATION_ACTIONS

_RULE_CODES = {
    "required": "OccurrenceConstraintViolation",
    "minItems": "OccurrenceConstraintViolation",
    "maxItems": "OccurrenceConstraintViolation",
    "type": "TypeConstraintViolation",
    "additionalProperties": "FormatViolation",
}

RENAMED_CODES = {
    "FormationViolation": "FormatViolation",
    "OccurenceConstraintViolation": "OccurrenceConstraintViolation",
}
"""1.6 error codes (raised by the shared connection code) → their OCPP-J 2.0.1 spelling."""


SCHEMAS = SchemaSet(SCHEMA_DIR, _RULE_CODES, "FormatViolation", drop_draft=True)
_compiled = SCHEMAS.compiled
_check = SCHEMAS.check


def validate_request(action: str, payload: Any) -> None:
    """Raise OcppError with the 2.0.1 code when `payload` is not a valid `action` request."""
    _check(f"{action}Request", payload)


def validate_response(action: str, payload: Any) -> None:
    """Raise OcppError when `payload` is not a valid response to `action`."""
    _check(f"{action}Response", payload)


def warm_up(actions: frozenset[str] = ALL_ACTIONS) -> None:
    """Compile every validator ahead of time (each takes a few ms on first use otherwise)."""
    for action in actions:
        _compiled(f"{action}Request")
        _compiled(f"{action}Response")


DIALECT = Dialect(validate_request, validate_response, STATION_ACTIONS, ALL_ACTIONS, RENAMED_CODES)
"""The connection settings of a 2.0.1 station (see `evsite.ocpp.connection.Dialect`)."""
