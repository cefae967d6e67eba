"""The small exception hierarchy of the OCPP layer."""

from __future__ import annotations

from typing import Any

from evsite.errors import ChargerError

ERROR_CODES = frozenset(
    {
        "NotImplemented",
        "NotSupported",
        "InternalError",
        "ProtocolError",
        "SecurityError",
        "FormationViolation",
        "PropertyConstraintViolation",
        "OccurenceConstraintViolation",  # sic: the OCPP-J 1.6 spelling
        "TypeConstraintViolation",
        "GenericError",
        # OCPP-J 2.0.1 (Part 4 §4.3) renames two codes and adds two
        "FormatViolation",
        "OccurrenceConstraintViolation",
        "MessageTypeNotSupported",
        "RpcFrameworkError",
    }
)


class OcppError(ChargerError):
    """An error that maps to an OCPP-J CallError (code, description, details)."""

    def __init__(self, code: str, description: str = "", details: dict[str, Any] | None = None) -> None:
        assert code in ERROR_CODES, code
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.details = details or {}


class CallErrorReceived(OcppError):
    """The charger answered our CALL with a CallError."""


class CallTimeout(ChargerError):
    """The charger did not answer our CALL within the timeout."""


class NotConnected(ChargerError):
    """The charger is not connected (or its connection closed while we waited)."""
