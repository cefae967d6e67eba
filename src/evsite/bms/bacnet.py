"""evsite as a BACnet/IP device (bacpypes3) for the building automation system.

Points list (instance numbers are stable; per-charger points use 100 + n, n = the charger's position
in the site file, from 1). Full table with units and COV increments: docs/integrations.md.

    analog-value 1        ev-power             R, COV  kW   total EV charging power
    analog-value 2..4     site-current-L1..L3  R, COV  A    site current per line (service meter)
    analog-value 5        building-power       R, COV  kW   non-EV building power
    analog-value 6        active-sessions      R, COV  -    charging sessions in progress
    binary-value 1        dr-event-active      R, COV  -    a utility demand-response event is in force
    analog-value 10       ev-demand-limit      W, COV  kW   commandable cap on the EV load (priority array,
                                                            relinquish default = EV capacity; writes outside
                                                            0..max are refused with property/value-out-of-range)
    analog-value 11       ev-limit-effective   R, COV  kW   cap in force from all sources (BMS, DR, operator)
    analog-value 100+n    <charger>-power      R, COV  kW   charger power
    multi-state-value 100+n <charger>-status   R, COV  -    Available, Preparing, Charging, SuspendedEV,
                                                            SuspendedEVSE, Finishing, Reserved, Unavailable, Faulted

A write to ev-demand-limit at any priority goes to `CommandSink.set_site_limit_kw`; relinquishing
the last priority clears the cap (None). Who-Is/I-Am work on a real subnet; the device binds the
configured address (default 0.0.0.0:47808).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from evsite.bms.state import CommandSink, SiteState, StateSource
from evsite.site.model import BacnetIntegration, Site
from evsite.site.topology import power_kw

log = logging.getLogger(__name__)

STATUSES = ("Available", "Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing", "Reserved",
            "Unavailable", "Faulted")  # fmt: skip
DEMAND_LIMIT = 10
VENDOR_ID = 999  # ASHRAE's "unassigned/test" vendor id until evsite registers one


def ev_capacity_kw(site: Site) -> float:
    amps = site.service.limit_a
    if site.ems:
        amps = min(amps, sum(e.setpoint_a for e in site.ems))
    return round(power_kw(site.service.system, amps), 1)


class BacnetDevice:
    """Builds the objects, keeps them current from `state`, and sends demand-limit writes to `commands`."""

    def __init__(
        self,
        site: Site,
        settings: BacnetIntegration,
        state: StateSource,
        commands: CommandSink,
        interval_s: float = 1.0,
    ) -> None:
        self.site, self.settings, self.state, self.commands = site, settings, state, commands
        self.interval_s = interval_s
        self.max_kw = settings.demand_limit_max_kw or ev_capacity_kw(site)
        self.app: Any = None
        self.objects: dict[str, Any] = {}
        self.last_limit: float | None = None

    def _build(self) -> Any:
        from bacpypes3.errors import PropertyError
        from bacpypes3.ipv4.app import NormalApplication
        from bacpypes3.local.analog import AnalogValueObject, AnalogValueObjectCmd
        from bacpypes3.local.binary import BinaryValueObject
        from bacpypes3.local.device import DeviceObject
        from bacpypes3.local.multistate import MultiStateValueObject
        from bacpypes3.pdu import IPv4Address
        from bacpypes3.primitivedata import Null, Real

        bridge = self
        low, high = 0.0, self.max_kw

        class DemandLimit(AnalogValueObjectCmd):
            """The BMS's cap on the EV load; out-of-range values are refused, not clipped."""

            async def write_property(self, attr: Any, value: Any, index: Any = None, priority: Any = None) -> None:
                name = self._property_identifier_class(attr).attr if isinstance(attr, int) else str(attr)
                if name == "presentValue" and not isinstance(value, Null):
                    number = float(value)
                    if not low <= number <= high:
                        raise PropertyError("valueOutOfRange")
                if name == "presentValue" and priority == 6:
                    raise PropertyError("writeAccessDenied")  # priority 6: minimum on/off, not for limits
                await super().write_property(attr, value, index, priority)
                bridge._limit_written()

        name = self.settings.device_name or f"evsite {self.site.name}"[:64]
        device = DeviceObject(
            objectIdentifier=("device", self.settings.device_id),
            objectName=name,
            vendorIdentifier=VENDOR_ID,
            vendorName="evsite",
            modelName="evsite site controller",
            maxApduLengthAccepted=1476,
            segmentationSupported="segmentedBoth",
        )
        app = NormalApplication(device, IPv4Address(self.settings.address))

        def analog(instance: int, object_name: str, units: str, cov: float, description: str) -> Any:
            obj = AnalogValueObject(
                objectIdentifier=("analogValue", instance), objectName=object_name, presentValue=Real(0.0),
                units=units, covIncrement=cov, statusFlags=[0, 0, 0, 0], eventState="normal", outOfService=False,
                description=description,
            )  # fmt: skip
            self.objects[object_name] = obj
            app.add_object(obj)
            return obj

        cov = self.settings.cov_increment_kw
        analog(1, "ev-power", "kilowatts", cov, "Total EV charging power")
        for i, line in enumerate(("L1", "L2", "L3"), start=2):
            if line in self.site.service.system.lines:
                analog(i, f"site-current-{line}", "amperes", 1.0, f"Site current on {line}")
        analog(5, "building-power", "kilowatts", cov, "Non-EV building power")
        analog(6, "active-sessions", "noUnits", 1.0, "Charging sessions in progress")
        analog(11, "ev-limit-effective", "kilowatts", cov, "EV load cap in force (all sources)")
        dr = BinaryValueObject(
            objectIdentifier=("binaryValue", 1), objectName="dr-event-active", presentValue="inactive",
            statusFlags=[0, 0, 0, 0], eventState="normal", outOfService=False,
            description="Utility demand-response event in force",
        )  # fmt: skip
        self.objects["dr-event-active"] = dr
        app.add_object(dr)
        limit = DemandLimit(
            objectIdentifier=("analogValue", DEMAND_LIMIT), objectName="ev-demand-limit", presentValue=Real(high),
            relinquishDefault=Real(high), units="kilowatts", covIncrement=cov, statusFlags=[0, 0, 0, 0],
            eventState="normal", outOfService=False, minPresValue=Real(low), maxPresValue=Real(high),
            description="BMS demand limit on the EV load (kW); relinquish to remove",
        )  # fmt: skip
        self.objects["ev-demand-limit"] = limit
        app.add_object(limit)
        for n, evse in enumerate(self.site.evse, start=1):
            analog(100 + n, f"{evse.id}-power", "kilowatts", 0.5, f"Charger {evse.id} power")
            status = MultiStateValueObject(
                objectIdentifier=("multiStateValue", 100 + n), objectName=f"{evse.id}-status", presentValue=8,
                numberOfStates=len(STATUSES), stateText=list(STATUSES), statusFlags=[0, 0, 0, 0],
                eventState="normal", outOfService=False, description=f"Charger {evse.id} OCPP status",
            )  # fmt: skip
            self.objects[f"{evse.id}-status"] = status
            app.add_object(status)
        return app

    def _limit_written(self) -> None:
        obj = self.objects["ev-demand-limit"]
        commanded = obj.currentCommandPriority.null is None  # some priority holds a value
        value = float(obj.presentValue) if commanded else None
        if value != self.last_limit:
            self.last_limit = value
            self.commands.set_site_limit_kw(value, "bacnet")

    def update(self, state: SiteState) -> None:
        """Copy a state snapshot into the points (COV notifications follow from the changes)."""
        o = self.objects

        def put(name: str, value: float | None) -> None:
            if name in o and value is not None and float(o[name].presentValue) != round(value, 3):
                o[name].presentValue = round(value, 3)

        put("ev-power", state.ev_power_w / 1000)
        for line, amps in state.current_a.items():
            put(f"site-current-{line}", amps)
        put("building-power", None if state.building_power_w is None else state.building_power_w / 1000)
        put("active-sessions", float(state.sessions))
        put("ev-limit-effective", self.max_kw if state.ev_limit_kw is None else state.ev_limit_kw)
        dr = "active" if state.dr_active else "inactive"
        if str(o["dr-event-active"].presentValue) != dr:
            o["dr-event-active"].presentValue = dr
        for charger in state.chargers:
            put(f"{charger.id}-power", charger.power_w / 1000)
            key = f"{charger.id}-status"
            if key in o:
                index = STATUSES.index(charger.status) + 1 if charger.status in STATUSES else 8
                if int(o[key].presentValue) != index:
                    o[key].presentValue = index

    def start(self) -> None:
        self.app = self._build()
        self.update(self.state())

    def close(self) -> None:
        if self.app is not None:
            self.app.close()
            self.app = None

    async def run(self) -> None:
        """Serve until cancelled, refreshing the points every `interval_s`."""
        self.start()
        try:
            while True:
                try:
                    self.update(self.state())
                except Exception:  # a bad snapshot must not take the BMS interface down
                    log.exception("BACnet point update failed")
                await asyncio.sleep(self.interval_s)
        finally:
            self.close()
