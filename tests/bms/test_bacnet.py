"""evsite as a BACnet/IP device, exercised by a second bacpypes3 application acting as the BMS.

Both run on 127.0.0.1 with distinct UDP ports and direct addressing (Who-Is needs a broadcast
domain, which loopback does not give: research note §3.3).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from bacpypes3.apdu import ErrorRejectAbortNack
from bacpypes3.ipv4.app import NormalApplication
from bacpypes3.local.device import DeviceObject
from bacpypes3.pdu import Address, IPv4Address
from bacpypes3.primitivedata import Null, ObjectIdentifier

from evsite.bms.bacnet import BacnetDevice
from evsite.bms.state import BusCommands, ChargerState, SiteState
from evsite.runtime.events import EventBus, SiteSignal
from evsite.site import Site, load_site
from evsite.site.model import BacnetIntegration


def free_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Recorder:
    def __init__(self) -> None:
        self.limits: list[float | None] = []

    def set_site_limit_kw(self, kw: float | None, source: str) -> None:
        self.limits.append(kw)

    def set_charger_limit_a(self, charger_id: str, amps: float | None, source: str) -> None: ...

    def set_charger_enabled(self, charger_id: str, enabled: bool, source: str) -> None: ...


class Snapshot:
    def __init__(self, site: Site) -> None:
        first = site.evse[0].id
        self.value = SiteState(
            ev_power_w=23_040, current_a={"L1": 64.0, "L2": 63.5, "L3": 64.2}, building_power_w=180_000, sessions=4,
            chargers=(ChargerState(first, "Charging", 5_760, 27.7, None, True),),
        )  # fmt: skip

    def __call__(self) -> SiteState:
        return self.value


@pytest.fixture
def site(examples_dir: Path) -> Site:
    return load_site(examples_dir / "workplace-20.yaml")


@pytest.fixture
def ports() -> Iterator[tuple[int, int]]:
    yield free_udp_port(), free_udp_port()


@pytest.fixture
async def bms(ports: tuple[int, int]) -> AsyncIterator[NormalApplication]:
    device = DeviceObject(objectIdentifier=("device", 2002), objectName="test-bms", vendorIdentifier=999)
    app = NormalApplication(device, IPv4Address(f"127.0.0.1:{ports[1]}"))
    yield app
    app.close()


async def test_bms_reads_points_and_follows_cov(site: Site, ports: tuple[int, int], bms: NormalApplication) -> None:
    state = Snapshot(site)
    evsite = BacnetDevice(site, BacnetIntegration(device_id=1001, address=f"127.0.0.1:{ports[0]}"), state, Recorder())
    evsite.start()
    addr = Address(f"127.0.0.1:{ports[0]}")
    try:
        async with asyncio.timeout(10):
            assert await bms.read_property(addr, "device,1001", "objectName") == f"evsite {site.name}"
            assert await bms.read_property(addr, "analogValue,1", "presentValue") == pytest.approx(23.04)
            assert (await bms.read_property(addr, "analogValue,1", "units")).attr == "kilowatts"
            assert await bms.read_property(addr, "analogValue,4", "presentValue") == pytest.approx(64.2)
            assert await bms.read_property(addr, "analogValue,6", "presentValue") == 4
            assert await bms.read_property(addr, "multiStateValue,101", "presentValue") == 3  # Charging
            assert (await bms.read_property(addr, "binaryValue,1", "presentValue")).attr == "inactive"
            async with bms.change_of_value(addr, ObjectIdentifier("analogValue,1"), 7, True, 60) as sub:
                prop, value = await sub.get_value()  # the initial notification carries the current value
                while prop.attr != "presentValue":
                    prop, value = await sub.get_value()
                assert value == pytest.approx(23.04)
                state.value = SiteState(ev_power_w=11_520, dr_active=True)  # a DR event halves the EV load
                evsite.update(state.value)
                prop, value = await sub.get_value()
                while prop.attr != "presentValue":
                    prop, value = await sub.get_value()
                assert value == pytest.approx(11.52)
            assert (await bms.read_property(addr, "binaryValue,1", "presentValue")).attr == "active"
    finally:
        evsite.close()


async def test_bms_demand_limit_priority_relinquish_and_range(
    site: Site, ports: tuple[int, int], bms: NormalApplication
) -> None:
    bus = EventBus()
    evsite = BacnetDevice(
        site, BacnetIntegration(device_id=1001, address=f"127.0.0.1:{ports[0]}"), Snapshot(site), BusCommands(site, bus)
    )
    evsite.start()
    addr, limit = Address(f"127.0.0.1:{ports[0]}"), "analogValue,10"
    try:
        async with asyncio.timeout(10), bus.subscribe() as queue:
            capacity = await bms.read_property(addr, limit, "relinquishDefault")
            # the EV capacity is EMS-EV's 160 A on 208Y/120 V: 160 × 208 × √3 / 1000 = 57.6 kW
            assert capacity == pytest.approx(57.6)
            assert await bms.read_property(addr, limit, "presentValue") == pytest.approx(57.6)
            await bms.write_property(addr, limit, "presentValue", 41.6, priority=8)
            await bms.write_property(addr, limit, "presentValue", 20.8, priority=12)  # lower priority: no effect
            assert await bms.read_property(addr, limit, "presentValue") == pytest.approx(41.6)
            slots = await bms.read_property(addr, limit, "priorityArray")
            assert slots[7].real == pytest.approx(41.6) and slots[11].real == pytest.approx(20.8)
            assert slots[0].null is not None
            for bad in (57.7, -1.0, 1e9):
                with pytest.raises(ErrorRejectAbortNack) as refused:
                    await bms.write_property(addr, limit, "presentValue", bad, priority=8)
                error = refused.value
                assert (error.errorClass.attr, error.errorCode.attr) == ("property", "valueOutOfRange")
            with pytest.raises(ErrorRejectAbortNack) as refused:  # priority 6 is minimum on/off time
                await bms.write_property(addr, limit, "presentValue", 30.0, priority=6)
            assert refused.value.errorCode.attr == "writeAccessDenied"
            assert await bms.read_property(addr, limit, "presentValue") == pytest.approx(41.6)  # unchanged
            await bms.write_property(addr, limit, "presentValue", Null(()), priority=8)  # relinquish 8 → 12 rules
            assert await bms.read_property(addr, limit, "presentValue") == pytest.approx(20.8)
            await bms.write_property(addr, limit, "presentValue", Null(()), priority=12)
            assert await bms.read_property(addr, limit, "presentValue") == pytest.approx(57.6)
            signals = [queue.get_nowait() for _ in range(queue.qsize())]
    finally:
        evsite.close()
    # what the load manager sees: 41.6 kW → 115.4 A per line, then 20.8 kW → 57.7 A, then no cap
    caps = [s.current_a.get("L1") for s in signals if isinstance(s, SiteSignal) and s.kind == "manual_limit"]
    assert caps == [pytest.approx(41_600 / (208 * 3**0.5)), pytest.approx(20_800 / (208 * 3**0.5)), None]
    assert all(s.node == "service" and s.source == "bacnet" for s in signals if isinstance(s, SiteSignal))
    # and the load manager's limits follow: the first write caps the EV load on the service node
    from datetime import UTC, datetime

    from evsite.control.signals import SiteLimits
    from evsite.control.tree import build_tree

    tree = build_tree(site)
    limits = SiteLimits(site, tree)
    first = next(s for s in signals if isinstance(s, SiteSignal))
    limits.update(first)
    service = limits.limits(datetime.now(UTC))[tree.node_index["service"]]
    assert max(service) <= 41_600 / (208 * 3**0.5) + 1e-6
