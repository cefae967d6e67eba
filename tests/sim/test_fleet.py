"""Fleet construction from site files, and EVs arriving and leaving on their own."""

from __future__ import annotations

import pytest
from tests.conftest import EXAMPLES
from tests.sim.csms import Csms

from evsite.sim import Arrivals, Fleet
from evsite.sim.fleet import specs_from_site
from evsite.site import load_site


def test_workplace_chargers_are_wired_like_their_circuits() -> None:
    site = load_site(EXAMPLES / "workplace-20.yaml")
    specs = {s.id: s for s in specs_from_site(site)}
    assert len(specs) == 20
    first = specs["WP-01"]
    # Single-phase 48 A EVSE on a 208Y/120 V L1-L2 circuit: 208 V across the load, current on L1 and L2.
    assert (first.phases, first.phase_voltage_v, first.lines, first.max_current_a) == (1, 208.0, ("L1", "L2"), 48.0)
    assert specs["WP-02"].lines == ("L2", "L3") and specs["WP-03"].lines == ("L3", "L1")


@pytest.mark.parametrize("name", ["residential.yaml", "multifamily-30.yaml"])
def test_every_example_site_can_be_simulated(name: str) -> None:
    site = load_site(EXAMPLES / name)
    specs = specs_from_site(site)
    assert len(specs) == len(site.evse)
    assert all(spec.phase_voltage_v in (120.0, 208.0, 240.0, 277.0, 480.0) for spec in specs)
    assert all(set(spec.lines) <= {"L1", "L2", "L3"} for spec in specs)


async def test_evs_arrive_charge_and_leave(csms: Csms) -> None:
    arrivals = Arrivals(mean_gap_s=10.0, mean_dwell_s=20.0, initial_occupancy=1.0)
    fleet = Fleet(csms.url, count=3, speed=30.0, arrivals=arrivals, seed=3, backoff_min_s=0.2)
    await fleet.start()
    try:
        await fleet.wait_online(5)
        await csms.wait_for(lambda: len(csms.record.stops) >= 3 and len(csms.record.start_messages) >= 4, timeout=10)
        reasons = {stop["reason"] for _, stop in csms.record.stops}
        assert reasons == {"EVDisconnected"}
        tags = {m["id_tag"] for _, m in csms.record.start_messages}
        assert len(tags) == len(csms.record.start_messages)  # every arrival is a new car
    finally:
        await fleet.stop()
