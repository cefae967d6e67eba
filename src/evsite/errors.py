"""One exception tree for evsite: catch `EvsiteError` to catch anything evsite raises on purpose.

Each kind keeps the built-in base its callers already catch (a configuration error is still a
`ValueError`), so moving a class under this tree breaks no `except` clause. Imports nothing.

    EvsiteError
    ├── ConfigurationError (ValueError)   site files, units, conductor sizes, tariffs, register maps
    ├── InputError (ValueError)           a value from outside rejected: API/MQTT command, calculator input, OCMF
    ├── StoreError (ValueError)           a value the store refuses to write (naive datetime)
    ├── ChargerError                      talking to a charger failed
    │   ├── OcppError                     maps to an OCPP-J CallError (evsite.ocpp.errors)
    │   ├── CallTimeout, NotConnected     no answer / no connection (evsite.ocpp.errors)
    └── DeviceError                       a meter, inverter or other field device failed (evsite.grid)
"""

from __future__ import annotations


class EvsiteError(Exception):
    """The root of every exception evsite raises on purpose."""


class ConfigurationError(EvsiteError, ValueError):
    """A site file, setting or data file that cannot be used as written."""


class InputError(EvsiteError, ValueError):
    """A value that arrived from outside (a command, a request, a signed record) and was rejected."""


class StoreError(EvsiteError, ValueError):
    """A value the store refuses to write."""


class ChargerError(EvsiteError):
    """Talking to a charger failed: it refused, answered with an error, timed out or is not connected."""


class DeviceError(EvsiteError):
    """A field device (meter, inverter, BMS peer) did not answer or answered nonsense."""
