"""Start every integration the site file configures, as one task group the runtime can cancel.

The runtime supplies the bus, a state snapshot callable and a command sink (see `evsite.bms.state`);
which adapters run follows from the site: Modbus devices with a `modbus` endpoint, the VEN when there
is a `demand_response` section (OpenADR 2.0b or 3, by its `version`), MQTT and BACnet when `integrations`
has them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from evsite.bms.state import CommandSink, StateSource
from evsite.grid.modbus import EvCurrent, run_site_modbus
from evsite.optional import available, missing_message
from evsite.runtime.events import EventBus
from evsite.site.model import Site

if TYPE_CHECKING:
    from evsite.grid.openadr import Ven

log = logging.getLogger(__name__)


def make_ven(
    site: Site,
    bus: EventBus,
    *,
    ev_power_w: Callable[[], float | None] = lambda: None,
    non_ev_kw: Callable[[], float | None] = lambda: None,
) -> Ven:
    """The VEN for the site's `demand_response.version`: 2.0b (openleadr) or 3.0.1/3.1.0 (REST).

    `non_ev_kw` (OpenADR 3 import limits) is the site's non-EV load; None means the building loads' design peak."""
    dr = site.demand_response
    if dr is None:
        raise ValueError("the site has no demand_response section")
    if dr.version == "2.0b":
        from evsite.grid.openadr import Ven

        return Ven(site, bus, ev_power_w=ev_power_w)
    from evsite.grid.openadr3 import Ven3

    return Ven3(site, bus, ev_power_w=ev_power_w, non_ev_kw=non_ev_kw)


def integration_jobs(
    site: Site,
    bus: EventBus,
    *,
    state: StateSource,
    commands: CommandSink,
    ev_current: EvCurrent | None = None,
    ev_power_w: Callable[[], float | None] = lambda: None,
    ven: Ven | None = None,
) -> dict[str, Coroutine[Any, Any, None]]:
    """Name → coroutine for each configured adapter (nothing is started here).

    An adapter whose optional package is missing is left out with one warning naming its extra."""
    jobs: dict[str, Coroutine[Any, Any, None]] = {}
    if any(m.modbus for m in site.meters) or any(i.modbus for i in site.inverters):
        jobs["modbus"] = run_site_modbus(site, bus, ev_current)
    dr = site.demand_response
    if ven is None and dr is not None:
        if dr.version == "2.0b" and not available("openleadr"):
            log.warning(missing_message("openleadr"))
        else:
            ven = make_ven(site, bus, ev_power_w=ev_power_w)
    if ven is not None:
        jobs["openadr"] = ven.run()
    if site.integrations.mqtt is not None:
        from evsite.bms.mqtt import MqttBridge

        jobs["mqtt"] = MqttBridge(site, site.integrations.mqtt, state, commands).run()
    if site.integrations.bacnet is not None and not available("bacpypes3"):
        log.warning(missing_message("bacpypes3"))
    elif site.integrations.bacnet is not None:
        from evsite.bms.bacnet import BacnetDevice

        jobs["bacnet"] = BacnetDevice(site, site.integrations.bacnet, state, commands).run()
    return jobs


async def run_integrations(
    site: Site,
    bus: EventBus,
    *,
    state: StateSource,
    commands: CommandSink,
    ev_current: EvCurrent | None = None,
    ev_power_w: Callable[[], float | None] = lambda: None,
    ven: Ven | None = None,
) -> None:
    """Run the configured adapters until cancelled; one adapter failing does not stop the others.

    Pass `ven` to keep a handle on the OpenADR client (the API lists its events and opts out)."""
    jobs = integration_jobs(
        site, bus, state=state, commands=commands, ev_current=ev_current, ev_power_w=ev_power_w, ven=ven
    )

    async def guarded(name: str, job: Coroutine[Any, Any, None]) -> None:
        try:
            await job
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("integration %s stopped", name)

    async with asyncio.TaskGroup() as tg:
        for name, job in jobs.items():
            tg.create_task(guarded(name, job), name=f"integration-{name}")
