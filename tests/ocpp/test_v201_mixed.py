"""A mixed fleet under one load manager, and ISO 15118 needs against operator entries.

WP-01 speaks 1.6 (the `ocpp` package's v16 ChargePoint), WP-02 speaks 2.0.1 (its v201 ChargePoint);
they sit on circuits L1-L2 and L2-L3 of a 208Y/120 V service, so both draw on L2.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from ocpp.v16 import call as call16
from websockets.asyncio.client import connect

from evsite.api.adapters import ControlLoopPlanner
from evsite.control.loop import ControlLoop
from evsite.ocpp.server import CentralSystem, ServerSettings
from evsite.runtime.events import EvChargingNeeds, EventBus, SiteSignal
from evsite.site import Site
from evsite.site.load import load_site
from evsite.store.ocpp import OcppStore
from tests.conftest import EXAMPLES

from .conftest import url
from .test_interop import ThirdPartyChargePoint, now
from .v201_station import station, wait_for


@contextlib.asynccontextmanager
async def charger16(cs: CentralSystem, cp_id: str) -> AsyncIterator[ThirdPartyChargePoint]:
    async with connect(url(cs, cp_id), subprotocols=["ocpp1.6"], open_timeout=5) as ws:
        cp = ThirdPartyChargePoint(cp_id, ws, response_timeout=5)
        runner = asyncio.create_task(cp.start())
        try:
            await cp.call(call16.BootNotification(charge_point_model="Pro 48", charge_point_vendor="ExampleCharge"))
            await wait_for(lambda: cs.sessions[cp_id].setup_done.is_set())
            yield cp
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner


def last_limit_16(cp: ThirdPartyChargePoint) -> float | None:
    tx = [p for p in cp.profiles if p["charging_profile_purpose"] == "TxProfile"]
    return float(tx[-1]["charging_schedule"]["charging_schedule_period"][0]["limit"]) if tx else None


def last_limit_201(cp: Any) -> float | None:
    tx = [p for _, p in cp.accepted_profiles() if p["charging_profile_purpose"] == "TxProfile"]
    return tx[-1]["charging_schedule"][0]["charging_schedule_period"][0]["limit"] if tx else None


async def test_mixed_fleet_both_versions_get_setpoints_after_a_limit_change(
    store: OcppStore, workplace: Site, settings: ServerSettings
) -> None:
    # Only the two chargers of the test: an EVSE that is not connected counts at its maximum (48 A).
    site = workplace.model_copy(update={"evse": workplace.evse[:2]})
    site.control.cycle_s = 0.05
    cs = CentralSystem(store, site, settings=settings)
    await cs.start()
    loop = ControlLoop(site, cs.bus, cs)
    await loop.start()
    try:
        async with charger16(cs, "WP-01") as one, station(cs, "WP-02") as two:
            await one.call(call16.StartTransaction(connector_id=1, id_tag="CARD-1", meter_start=0, timestamp=now()))
            await one.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
            await two.event("Started", "TX-2", 0, wh=0, state="Charging")
            await wait_for(lambda: last_limit_16(one) is not None and last_limit_201(two) is not None, timeout=10)
            before = (last_limit_16(one), last_limit_201(two))
            # An operator caps the whole service at 20 A per line: both ports draw on L2.
            cs.bus.publish(SiteSignal("manual_limit", "service", {"L1": 20.0, "L2": 20.0, "L3": 20.0}, "operator"))

            def obeyed() -> bool:
                a, b = last_limit_16(one), last_limit_201(two)
                return a is not None and b is not None and a + b <= 20.0 + 1e-9

            await wait_for(obeyed, timeout=10)
            after = (last_limit_16(one), last_limit_201(two))
            assert after != before and all(limit is not None and limit > 0 for limit in after)
    finally:
        await loop.stop()
        await cs.stop()


def test_ev_needs_fill_the_session_but_an_operator_entry_wins() -> None:
    site = load_site(EXAMPLES / "workplace-20.yaml")
    loop = ControlLoop(site, EventBus(), cs_stub())
    planner = ControlLoopPlanner(loop)
    p = loop.controller.port("WP-03", 1)
    assert p is not None
    needs = loop.controller.needs
    car_leaves = datetime.now(UTC) + timedelta(hours=2)
    assert loop.take_ev_needs(EvChargingNeeds("WP-03", 1, car_leaves, 20_000.0))
    assert (needs.departure_s[p], needs.requested_wh[p]) == (car_leaves.timestamp(), 20_000.0)
    # The car renegotiates (K17): its new values replace its old ones.
    assert loop.take_ev_needs(EvChargingNeeds("WP-03", 1, car_leaves, 25_000.0))
    assert needs.requested_wh[p] == 25_000.0
    # An operator enters the session's needs: a later message from the car does not override them.
    operator_leaves = car_leaves + timedelta(hours=1)
    planner.set_request("WP-03", 1, operator_leaves, 10_000.0)
    assert not loop.take_ev_needs(EvChargingNeeds("WP-03", 1, car_leaves, 40_000.0))
    assert (needs.departure_s[p], needs.requested_wh[p]) == (operator_leaves.timestamp(), 10_000.0)
    # A car that sends no departure leaves the one the session has.
    other = loop.controller.port("WP-04", 1)
    assert other is not None
    assert loop.take_ev_needs(EvChargingNeeds("WP-04", 1, None, 5_000.0))
    assert math.isnan(needs.departure_s[other]) and needs.requested_wh[other] == 5_000.0
    assert not loop.take_ev_needs(EvChargingNeeds("NOT-A-PORT", 1, car_leaves, 1.0))


def cs_stub() -> Any:
    class Quiet:
        async def set_connector_limit(self, charge_point_id: str, connector_id: int, limit_a: float) -> bool:
            raise AssertionError("nothing is sent here")

        def connected_charge_points(self) -> list[str]:
            return []

        def controller_alive(self, valid_s: float) -> None:
            """No chargers."""

    return Quiet()
