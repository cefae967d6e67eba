"""The configuration keys a simulated charge point reports and accepts (OCPP 1.6 §9).

The set mirrors what a typical smart-charging AC charger exposes: the Core keys, the Local Auth
List, Reservation and Smart Charging keys. Values are kept as strings (that is how OCPP carries
them) and checked by type on ChangeConfiguration, so an out-of-range or malformed value is
`Rejected` as §5.3 requires.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

KeyType = Literal["int", "bool", "csl", "str"]

MEASURANDS = (
    "Energy.Active.Import.Register",
    "Current.Import",
    "Power.Active.Import",
    "Current.Offered",
    "Voltage",
    "SoC",
)


@dataclass
class Key:
    value: str
    kind: KeyType = "str"
    readonly: bool = False
    minimum: int | None = None
    allowed: tuple[str, ...] = ()  # allowed CSL members


def default_keys(connectors: int, phases: int) -> dict[str, Key]:
    """A realistic key set; callers override values with `Config.update`."""
    measurands = ",".join(MEASURANDS[:4])
    return {
        # Core
        "AllowOfflineTxForUnknownId": Key("false", "bool"),
        "AuthorizationCacheEnabled": Key("true", "bool"),
        "AuthorizeRemoteTxRequests": Key("false", "bool"),
        "ClockAlignedDataInterval": Key("0", "int", minimum=0),
        "ConnectionTimeOut": Key("120", "int", minimum=1),
        "ConnectorPhaseRotation": Key(",".join(f"{c}.RST" for c in range(connectors + 1)), "csl"),
        "GetConfigurationMaxKeys": Key("64", "int", readonly=True),
        "HeartbeatInterval": Key("300", "int", minimum=0),
        "LocalAuthorizeOffline": Key("true", "bool"),
        "LocalPreAuthorize": Key("false", "bool"),
        "MeterValuesAlignedData": Key("Energy.Active.Import.Register", "csl", allowed=MEASURANDS),
        "MeterValuesSampledData": Key(measurands, "csl", allowed=MEASURANDS),
        "MeterValueSampleInterval": Key("60", "int", minimum=0),
        "NumberOfConnectors": Key(str(connectors), "int", readonly=True),
        "ResetRetries": Key("3", "int", minimum=0),
        "StopTransactionOnEVSideDisconnect": Key("true", "bool"),
        "StopTransactionOnInvalidId": Key("true", "bool"),
        "StopTxnAlignedData": Key("", "csl", allowed=MEASURANDS),
        "StopTxnSampledData": Key("Energy.Active.Import.Register", "csl", allowed=MEASURANDS),
        "SupportedFeatureProfiles": Key(
            "Core,FirmwareManagement,LocalAuthListManagement,Reservation,SmartCharging,RemoteTrigger",
            "csl",
            readonly=True,
        ),
        "TransactionMessageAttempts": Key("3", "int", minimum=1),
        "TransactionMessageRetryInterval": Key("10", "int", minimum=0),
        "UnlockConnectorOnEVSideDisconnect": Key("true", "bool"),
        "WebSocketPingInterval": Key("30", "int", minimum=0),
        # Local Auth List Management
        "LocalAuthListEnabled": Key("true", "bool"),
        "LocalAuthListMaxLength": Key("1000", "int", readonly=True),
        "SendLocalListMaxLength": Key("100", "int", readonly=True),
        # Reservation
        "ReserveConnectorZeroSupported": Key("false", "bool", readonly=True),
        # Smart Charging
        "ChargeProfileMaxStackLevel": Key("8", "int", readonly=True),
        "ChargingScheduleAllowedChargingRateUnit": Key("Current,Power", "csl", readonly=True),
        "ChargingScheduleMaxPeriods": Key("24", "int", readonly=True),
        "ConnectorSwitch3to1PhaseSupported": Key("false", "bool", readonly=True),
        "MaxChargingProfilesInstalled": Key("16", "int", readonly=True),
    }


class Config:
    """Configuration keys with typed access."""

    def __init__(self, connectors: int = 1, phases: int = 3, overrides: dict[str, str] | None = None) -> None:
        self.keys = default_keys(connectors, phases)
        for name, value in (overrides or {}).items():
            if name in self.keys:
                self.keys[name].value = str(value)
            else:
                self.keys[name] = Key(str(value))

    def int(self, name: str) -> int:
        return int(self.keys[name].value)

    def bool(self, name: str) -> bool:
        return self.keys[name].value.strip().lower() == "true"

    def csl(self, name: str) -> list[str]:
        return [x.strip() for x in self.keys[name].value.split(",") if x.strip()]

    def get(self, names: list[str] | None) -> tuple[list[dict[str, object]], list[str]]:
        """GetConfiguration: (known keys with value and readonly, unknown names)."""
        wanted = names if names else list(self.keys)
        known = [
            {"key": n, "readonly": self.keys[n].readonly, "value": self.keys[n].value} for n in wanted if n in self.keys
        ]
        unknown = [n for n in wanted if n not in self.keys]
        return known, unknown

    def change(self, name: str, value: str) -> str:
        """ChangeConfiguration status: Accepted, Rejected or NotSupported (§5.3)."""
        key = self.keys.get(name)
        if key is None:
            return "NotSupported"
        if key.readonly or not _valid(key, value):
            return "Rejected"
        key.value = value.strip() if key.kind != "str" else value
        return "Accepted"


def _valid(key: Key, value: str) -> bool:
    text = value.strip()
    if key.kind == "bool":
        return text.lower() in ("true", "false")
    if key.kind == "int":
        try:
            number = int(text)
        except ValueError:
            return False
        return key.minimum is None or number >= key.minimum
    if key.kind == "csl" and key.allowed:
        return all(item.strip() in key.allowed for item in text.split(",") if item.strip())
    return True
