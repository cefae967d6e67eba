"""The simulator against evsite's own central system (`evsite.ocpp.server`), site `workplace-20`.

- Every EVSE of the site boots and gets the fail-safe default profile evsite installs at boot.
- evsite goes down with 20 EVs charging: once evsite's leased lift profile expires the chargers fall
  back to their fail-safe profiles, and the measured per-line current of the fleet stays within the
  site's 160 A EMS setpoint on the EV feeder.
- evsite comes back on the same database: the queued Start/Stop/MeterValues are replayed, every
  transaction is stored once with its stop, and no sampled meter value is lost.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import EXAMPLES

from evsite.ocpp.server import CentralSystem, ServerSettings
from evsite.runtime.events import EventBus
from evsite.sim import Fleet
from evsite.site import Site, load_site
from evsite.store.ocpp import OcppStore

SPEED = 20.0


async def wait_for(predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.05)


async def test_fleet_rides_through_an_evsite_outage(tmp_path: Path) -> None:
    site: Site = load_site(EXAMPLES / "workplace-20.yaml")
    # evsite sets each charger's sample interval from the site at boot: 1 s fills the offline queues fast.
    site = site.model_copy(update={"control": site.control.model_copy(update={"meter_value_interval_s": 1})})
    store = await OcppStore.open(f"sqlite+aiosqlite:///{tmp_path / 'cs.db'}", synchronous="NORMAL")
    # evsite lifts the fail-safe cap with a leased profile while it runs; a short lease keeps the test short.
    lease_s = 2.0
    settings = ServerSettings(port=0, call_timeout_s=5.0, reconnect_setup_delay_s=0.2, lift_lease_s=lease_s)
    cs = CentralSystem(store, site, bus=EventBus(), settings=settings)
    await cs.start()
    port = cs.port
    fleet = Fleet(
        f"ws://127.0.0.1:{port}/ocpp",
        site=site,
        speed=SPEED,
        arrivals=False,
        seed=7,
        config={"MeterValueSampleInterval": "1"},
        backoff_min_s=0.2,
        backoff_max_s=1.0,
    )
    cs2: CentralSystem | None = None
    try:
        evs = [fleet.new_ev() for _ in fleet.charge_points]
        for ev in evs:
            await cs.set_id_tag(ev.id_tag)
        await fleet.start()
        await fleet.wait_online(15)
        assert len(fleet.charge_points) == 20

        async def all_have_failsafe() -> bool:
            return all(cp.profiles.profiles for cp in fleet.charge_points)

        await wait_for(all_have_failsafe)
        now = datetime.now(UTC)
        failsafe = {cp.id: cp.profiles.composite_a(1, now) for cp in fleet.charge_points}
        assert all(limit is not None and 6.0 <= limit <= 48.0 for limit in failsafe.values()), failsafe

        for cp, ev in zip(fleet.charge_points, evs, strict=True):
            cp.plug_in(1, ev)

        async def all_started() -> bool:
            return len(await store.transactions()) == 20 and all(
                cp.connectors[1].tx is not None and cp.connectors[1].tx.transaction_id is not None
                for cp in fleet.charge_points
            )

        await wait_for(all_started)

        await cs.stop()  # evsite goes away
        await wait_for(lambda: _true(not any(cp.online for cp in fleet.charge_points)))

        # Once the lease has run out (and the EVs had their ~5 s to follow), the fail-safe caps rule.
        await asyncio.sleep(lease_s + 6 / SPEED)
        ems_setpoint = next(e.setpoint_a for e in site.ems if "F-EV" in e.manages)
        peak = {"L1": 0.0, "L2": 0.0, "L3": 0.0}
        loop = asyncio.get_running_loop()
        until = loop.time() + 60 / SPEED  # a simulated minute: past every EV's start delay
        while loop.time() < until:
            for line, amps in fleet.total_current_a().items():
                peak[line] = max(peak[line], amps)
            await asyncio.sleep(0.02)
        assert all(amps <= ems_setpoint for amps in peak.values()), peak
        assert min(peak.values()) > 0  # they do charge, at their fail-safe share

        leaving = fleet.charge_points[:10]
        for cp in leaving:
            cp.unplug(1)  # StopTransaction queued offline
        assert sum(cp.pending_transaction_messages for cp in fleet.charge_points) >= 10 + 20

        cs2 = CentralSystem(store, site, bus=EventBus(), settings=ServerSettings(port=port, lift_lease_s=lease_s))
        await cs2.start()

        async def drained() -> bool:
            return all(cp.online and cp.pending_transaction_messages == 0 for cp in fleet.charge_points)

        await wait_for(drained, timeout=20)

        transactions = await store.transactions()
        assert len(transactions) == 20
        stopped = {t["charger_id"]: t for t in transactions if t["stop_time"] is not None}
        assert set(stopped) == {cp.id for cp in leaving}
        assert all(t["stop_reason"] == "EVDisconnected" for t in stopped.values())
        samples = {
            (row["charger_id"], row["timestamp"])
            for row in await store.meter_values()
            if row["context"] == "Sample.Periodic"
        }
        assert len(samples) == sum(cp.generated["MeterValues"] for cp in fleet.charge_points)
    finally:
        await fleet.stop()
        if cs2 is not None:
            await cs2.stop()
        await store.close()


async def _true(value: bool) -> bool:
    return value


async def test_basic_auth_against_evsite_server(tmp_path: Path) -> None:
    """Security profile 1: the simulator sends HTTP Basic credentials; a wrong password keeps it out."""
    from evsite.ocpp.auth import hash_password
    from evsite.sim import ChargePointSpec, SimChargePoint

    site: Site = load_site(EXAMPLES / "workplace-20.yaml")
    evse = site.evse[0]
    evse.ocpp.security_profile = 1
    evse.ocpp.password_hash = hash_password("correct horse", iterations=1_000)
    store = await OcppStore.open(f"sqlite+aiosqlite:///{tmp_path / 'cs.db'}", synchronous="NORMAL")
    cs = CentralSystem(store, site, bus=EventBus(), settings=ServerSettings(port=0, lift_lease_s=0))
    await cs.start()
    url = f"ws://127.0.0.1:{cs.port}/ocpp"
    good = SimChargePoint(ChargePointSpec(id=evse.id, password="correct horse"), url, backoff_min_s=0.1)
    bad = SimChargePoint(ChargePointSpec(id=evse.id, password="wrong"), url, backoff_min_s=0.1, backoff_max_s=0.2)
    try:
        await bad.start()
        await asyncio.sleep(1.0)
        assert bad.connects == 0 and not bad.online  # 401 at the handshake, retried with backoff
        await bad.stop()
        await good.start()
        await good.wait_online(5)
        assert good.boots == 1
    finally:
        await good.stop()
        await bad.stop()
        await cs.stop()
        await store.close()
