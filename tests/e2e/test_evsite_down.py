"""evsite goes down in the middle of load-managed sessions (issue 5 must-survive, with the live loop).

`tests/sim/test_evsite_server.py` covers an outage of a central system that never lifted the
fail-safe caps (no load manager ran). Here the load manager did run: ten cars on the workplace
site were given 22.8 A each — twice their chargers' fail-safe share — under leased lifts. When the
central system and its control loop stop, the lifts must lapse within one lease, every charger must
fall back to its fail-safe cap, and with all 20 ports then busy (ten cars arriving while evsite is
down) the EV feeder must stay within its 160 A EMS setpoint.

Numbers (`examples/workplace-20.yaml`): ten cars on WP-01…WP-10 load L1 with 7, L2 with 7 and L3
with 6 of them, so each gets floor(160 / 7, 0.1) = 22.8 A. The fail-safe caps are each charger's
share with all 20 busy: 11.4 A where the circuit uses L2 (14 ports on L2), 12.3 A on the L3-L1
circuits (13 ports on L1 and on L3). All 20 at their caps: L2 = 14 × 11.4 = 159.6 A,
L1 = L3 = 7 × 11.4 + 6 × 12.3 = 153.6 A.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.e2e.harness import Recorder, fast_site, live_site, wait_for

LEASE_S = 2.0
FOLLOW_WINDOW_S = 15.0  # simulated seconds an EV may take to follow a lower pilot


async def test_lifted_chargers_fall_back_to_their_fail_safe_when_evsite_dies(tmp_path: Path) -> None:
    site = fast_site("workplace-20.yaml")
    ems_a = next(e.setpoint_a for e in site.ems if "F-EV" in e.manages)
    # Cars arriving while evsite is down start offline (their tags are not in any local list).
    offline_starts = {"AllowOfflineTxForUnknownId": "true"}
    async with live_site(tmp_path, site, lift_lease_s=LEASE_S, charger_config=offline_starts) as live:
        ids = [cp.id for cp in live.fleet.charge_points]
        first, later = ids[:10], ids[10:]
        failsafe = {cp: live.cs.failsafe_limit(cp) for cp in ids}
        assert set(failsafe.values()) == {11.4, 12.3}
        recorder = Recorder(live.fleet, limit_a=ems_a)
        recorder.start()
        for cp in first:
            await live.plug_in(cp, live.ev(obc_max_a=48.0))
        await wait_for(lambda: all(live.drawn_a(cp) == 22.8 for cp in first), timeout=15, what="ten cars at 22.8 A")
        tx_ids = {cp: live.transaction_id(cp) for cp in first}

        # evsite dies: the control loop and the central system stop; the chargers lose their link.
        loop = asyncio.get_running_loop()
        died_at = loop.time()
        await live.loop.stop()
        await live.cs.stop()
        await wait_for(lambda: not any(cp.online for cp in live.fleet.charge_points), what="chargers offline")

        # Within a lease (plus the cars' follow time) every charger is back under its fail-safe cap.
        await wait_for(
            lambda: all(live.offered_a(cp) == failsafe[cp] for cp in first),
            timeout=LEASE_S + 2.0,
            what="fail-safe caps after the lifts lapsed",
        )
        assert loop.time() - died_at <= LEASE_S + 1.5
        await wait_for(lambda: all(live.drawn_a(cp) == failsafe[cp] for cp in first), timeout=2, what="cars follow")

        # Ten more cars arrive while evsite is still down.
        for cp in later:
            await live.plug_in(cp, live.ev(obc_max_a=48.0))
        await wait_for(
            lambda: all(live.drawn_a(cp) == failsafe[cp] for cp in ids), timeout=10, what="all 20 at their caps"
        )
        recorder.reset_peaks()
        await asyncio.sleep(60 / live.fleet.clock.speed)  # a simulated minute with all 20 charging offline
        await recorder.stop()

        assert {cp: live.transaction_id(cp) for cp in first} == tx_ids  # sessions ride through the outage
        assert all(live.fleet[cp].connectors[1].tx is not None for cp in later)
        assert all(amps <= ems_a for amps in recorder.peak_line_a.values()), recorder.peak_line_a
        assert recorder.peak_line_a["L2"] == pytest.approx(14 * 11.4)  # binding line, by the fail-safe shares alone

    follow_real_s = FOLLOW_WINDOW_S / live.fleet.clock.speed
    assert all(e.duration_s < follow_real_s for e in recorder.excursions), recorder.excursions
