"""The fail-safe lift lives exactly as long as the control loop runs (issue 6 live loop, issue 5 fail-safe).

evsite lifts each charger's fail-safe cap with a leased ChargePointMaxProfile. The lease must be
renewed while the load manager runs, even on a steady site where it has nothing new to send (the
bug this guards against: chargers dropped to the fail-safe after one lease of quiet), and must
lapse once the load manager stops, even though the central system is still up.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.e2e.harness import fast_site, live_site, wait_for

LEASE_S = 2.0
CARS = ("WP-01", "WP-02", "WP-03")  # one per circuit pairing: L1-L2, L2-L3, L3-L1


async def test_lift_is_renewed_while_the_loop_cycles_and_lapses_when_it_stops(tmp_path: Path) -> None:
    site = fast_site("workplace-20.yaml")
    async with live_site(tmp_path, site, lift_lease_s=LEASE_S) as live:
        failsafe = {cp: live.cs.failsafe_limit(cp) for cp in CARS}
        # 160 A over 14 (L2) or 13 (L1, L3) ports if all were busy: far below the 48 A nameplate.
        assert failsafe == {"WP-01": 11.4, "WP-02": 11.4, "WP-03": 12.3}
        for cp in CARS:
            await live.plug_in(cp, live.ev(obc_max_a=48.0))
        # Three cars on a 160 A feeder: the load manager gives each its 48 A nameplate.
        await wait_for(lambda: all(live.offered_a(cp) == 48.0 for cp in CARS), what="48 A offered to all three")
        await wait_for(lambda: all(live.drawn_a(cp) == 48.0 for cp in CARS), what="all three drawing 48 A")

        # Steady state for three leases: no new setpoint is needed, yet nobody falls to the fail-safe.
        setpoints_before = await _tx_profiles(live.store)
        lifts_before = await _lifts(live.store)
        loop = asyncio.get_running_loop()
        until = loop.time() + 3 * LEASE_S
        lowest = 48.0
        while loop.time() < until:
            lowest = min(lowest, *(live.offered_a(cp) for cp in CARS))
            await asyncio.sleep(0.02)
        assert lowest == 48.0, f"a charger fell back to its fail-safe while evsite ran ({lowest} A)"
        # Quiet: no new setpoint, only the running TxProfiles renewed with the lifts (they are short-lived, #22).
        renewals = (await _tx_profiles(live.store))[len(setpoints_before) :]
        assert {limit for _, limit in renewals} <= {48.0}
        assert {cp for cp, _ in renewals} == set(CARS)
        assert await _lifts(live.store) >= lifts_before + len(CARS) * 2  # but the lifts were renewed

        # The load manager stops; the central system stays up. The lifts must lapse within a lease
        # (plus one renewal period), and each charger then offers its fail-safe cap.
        stopped_at = loop.time()
        await live.loop.stop()
        await wait_for(
            lambda: all(live.offered_a(cp) == failsafe[cp] for cp in CARS),
            timeout=LEASE_S + 3.0,
            what="fail-safe caps back after the control loop stopped",
        )
        assert loop.time() - stopped_at <= LEASE_S + 1.0 + 1.0  # lease + renewal period + a tick
        assert all(live.cs.sessions[cp] for cp in CARS)  # still connected: only the lift lapsed


async def _tx_profiles(store) -> list[tuple[str, float]]:  # type: ignore[no-untyped-def]
    return [(row["charger_id"], row["limit"]) for row in await store.profiles() if row["purpose"] == "TxProfile"]


async def _lifts(store) -> int:  # type: ignore[no-untyped-def]
    return sum(
        1
        for row in await store.profiles()
        if row["purpose"] == "ChargePointMaxProfile" and row["stack_level"] == 1 and row["status"] == "Accepted"
    )
