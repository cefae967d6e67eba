"""OpenADR 2.0b VEN: event timing and signal mapping (pure), then against openleadr's VTN on loopback."""

from __future__ import annotations

import asyncio
import math
import random
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from evsite.grid.openadr import CapMapper, DrEvent, Ven, parse_event
from evsite.grid.sim_vtn import SimVtn
from evsite.runtime.events import Event, EventBus, SiteSignal
from evsite.site import Site, load_site
from tests.conftest import free_port

pytestmark = pytest.mark.filterwarnings("ignore:It is recommended to use web.AppKey")

T0 = datetime(2026, 7, 1, 21, 0, tzinfo=UTC)  # 14:00 in San Jose (PDT)


@pytest.fixture
def site(examples_dir: Path) -> Site:
    return load_site(examples_dir / "workplace-20.yaml")


def raw_event(
    signal: str = "SIMPLE",
    kind: str = "level",
    payloads: tuple[float, ...] = (2.0,),
    *,
    minutes: int = 60,
    **period: Any,
) -> dict[str, Any]:
    intervals = [
        {"dtstart": T0 + timedelta(minutes=minutes * i), "duration": timedelta(minutes=minutes), "uid": i,
         "signal_payload": p}
        for i, p in enumerate(payloads)
    ]  # fmt: skip
    return {
        "event_descriptor": {"event_id": f"ev-{signal}-{kind}", "modification_number": 0, "event_status": "far",
                             "test_event": False, "market_context": "oadr://test"},
        "active_period": {"dtstart": T0, "duration": timedelta(minutes=minutes * len(payloads)), **period},
        "event_signals": [{"signal_name": signal, "signal_type": kind, "intervals": intervals}],
    }  # fmt: skip


def test_workplace_capacity_comes_from_the_ems_setpoint(site: Site) -> None:
    mapper = CapMapper.for_site(site)
    # EMS-EV caps the EV feeder at 160 A on 208Y/120 V: 160 × 208 × √3 = 57.64 kW
    assert mapper.normal_kw == pytest.approx(160 * 208 * math.sqrt(3) / 1000)
    # 20 single-phase 208 V ports at the 6 A J1772 minimum: 20 × 6 × 208 = 24.96 kW
    assert mapper.minimum_kw == pytest.approx(24.96)


@pytest.mark.parametrize(("level", "fraction"), [(0, None), (1, 0.75), (2, 0.50)])
def test_simple_levels_follow_the_site_table(site: Site, level: int, fraction: float | None) -> None:
    mapper = CapMapper.for_site(site)
    event = parse_event(raw_event(payloads=(float(level),)))
    cap = mapper.cap_at(event, T0 + timedelta(minutes=1))
    assert cap == (None if fraction is None else pytest.approx(mapper.normal_kw * fraction))


def test_level_3_keeps_every_port_at_the_j1772_minimum(site: Site) -> None:
    mapper = CapMapper.for_site(site)
    assert mapper.cap_at(parse_event(raw_event(payloads=(3.0,))), T0) == pytest.approx(24.96)


def test_dispatch_and_load_control_mappings(site: Site) -> None:
    mapper = CapMapper.for_site(site)
    at = T0 + timedelta(minutes=5)
    assert mapper.cap_at(parse_event(raw_event("LOAD_DISPATCH", "setpoint", (30.0,))), at) == 30.0
    delta = parse_event(raw_event("LOAD_DISPATCH", "delta", (-10.0,)))
    delta.baseline_kw = 42.0
    assert mapper.cap_at(delta, at) == pytest.approx(32.0)
    capacity = parse_event(raw_event("LOAD_CONTROL", "x-loadControlCapacity", (0.25,)))
    assert mapper.cap_at(capacity, at) == pytest.approx(mapper.normal_kw * 0.25)
    assert mapper.cap_at(parse_event(raw_event("ELECTRICITY_PRICE", "price", (0.61,))), at) is None


def test_multi_interval_event_changes_cap_per_interval(site: Site) -> None:
    mapper = CapMapper.for_site(site)
    event = parse_event(raw_event(payloads=(1.0, 2.0), minutes=30))
    assert mapper.cap_at(event, T0 + timedelta(minutes=10)) == pytest.approx(mapper.normal_kw * 0.75)
    assert mapper.cap_at(event, T0 + timedelta(minutes=40)) == pytest.approx(mapper.normal_kw * 0.5)
    assert mapper.cap_at(event, T0 + timedelta(minutes=60)) is None


def test_ramp_up_and_recovery_are_linear(site: Site) -> None:
    mapper = CapMapper.for_site(site)
    event = parse_event(
        raw_event(ramp_up_period={"duration": timedelta(minutes=10)}, recovery_period=timedelta(minutes=10))
    )
    normal, target = mapper.normal_kw, mapper.normal_kw * 0.5
    assert mapper.cap_at(event, T0 - timedelta(minutes=11)) is None
    assert mapper.cap_at(event, T0 - timedelta(minutes=5)) == pytest.approx((normal + target) / 2)
    assert mapper.cap_at(event, T0 + timedelta(minutes=30)) == pytest.approx(target)
    assert mapper.cap_at(event, T0 + timedelta(minutes=65)) == pytest.approx((normal + target) / 2)
    assert mapper.cap_at(event, T0 + timedelta(minutes=70)) is None


def test_startafter_randomisation_is_uniform_in_window(site: Site) -> None:
    """Research note §1.3: with startafter=PT5M, 1000 events → offsets in [0, 300] s, roughly uniform."""
    ven = Ven(site, EventBus(), rng=random.Random(1))
    offsets = []
    for i in range(1000):
        raw = raw_event(tolerance={"tolerate": {"startafter": timedelta(minutes=5)}})
        raw["event_descriptor"]["event_id"] = f"e{i}"
        ven.accept(raw)
        offsets.append(ven.events[f"e{i}"].offset.total_seconds())
    assert min(offsets) >= 0 and max(offsets) <= 300
    assert statistics.mean(offsets) == pytest.approx(150, abs=15)
    quartiles = [sum(1 for o in offsets if q * 75 <= o < (q + 1) * 75) for q in range(4)]
    assert all(200 <= n <= 300 for n in quartiles)
    # a modification keeps the same draw
    again = raw_event(tolerance={"tolerate": {"startafter": timedelta(minutes=5)}})
    again["event_descriptor"].update(event_id="e7", modification_number=1)
    ven.accept(again)
    assert ven.events["e7"].offset.total_seconds() == offsets[7]


def test_policy_opt_out_and_test_events_do_not_curtail(site: Site) -> None:
    settings = site.demand_response.model_copy(update={"max_event_hours": 1.5})  # type: ignore[union-attr]
    ven = Ven(site, EventBus(), settings=settings)
    assert ven.accept(raw_event(payloads=(2.0, 2.0))) == "optOut"  # 2 h > 1.5 h policy
    assert ven.cap_kw(T0 + timedelta(minutes=1)) == (None, None)
    test = raw_event("LOAD_CONTROL", "x-loadControlCapacity", (0.5,))
    test["event_descriptor"]["test_event"] = True
    assert ven.accept(test) == "optIn"
    assert ven.cap_kw(T0 + timedelta(minutes=1)) == (None, None)
    price = raw_event("ELECTRICITY_PRICE", "price", (0.31, 0.62), minutes=30)
    ven.accept(price)
    assert [p.payload for p in ven.prices] == [0.31, 0.62]


def test_lowest_of_overlapping_events_wins_and_signal_rounds_down(site: Site) -> None:
    bus = EventBus()
    ven = Ven(site, bus)
    ven.accept(raw_event(payloads=(1.0,)))
    ven.accept(raw_event("LOAD_DISPATCH", "setpoint", (20.0,)))
    cap, until = ven.cap_kw(T0 + timedelta(minutes=1))
    assert cap == 20.0 and until == T0 + timedelta(hours=1)
    # 20 kW on 208Y/120: 20000 / (208 × √3) = 55.51 A → 55.5 A (down, never up)
    assert math.floor(20000 / (208 * math.sqrt(3)) * 10) / 10 == 55.5


# --------------------------------------------------------------------------- loopback against openleadr's VTN


async def wait_for(predicate: Any, timeout: float = 8.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.05)


def dr_signals(events: list[Event]) -> list[SiteSignal]:
    return [e for e in events if isinstance(e, SiteSignal) and e.kind == "dr_limit"]


async def pump(queue: asyncio.Queue[Event], into: list[Event]) -> None:
    while True:
        into.append(await queue.get())


@pytest.fixture
def vtn_port() -> int:
    return free_port()


async def test_event_round_trip_and_vtn_gone_mid_event(site: Site, vtn_port: int) -> None:
    """Register, report telemetry, follow a SIMPLE event; the VTN dies mid-event; the cap holds to its end."""
    bus = EventBus()
    seen: list[Event] = []
    vtn = SimVtn(port=vtn_port, poll_s=1.0, report_s=1.0)
    await vtn.start()
    dr = site.demand_response.model_copy(update={"vtn_url": vtn.url, "ven_name": "wp1"})  # type: ignore[union-attr]
    ven = Ven(site, bus, settings=dr, ev_power_w=lambda: 41_000.0, tick_s=0.1)
    start = datetime.now(UTC) + timedelta(seconds=1)
    event_id = vtn.add_event("wp1", start=start, intervals=[(timedelta(seconds=5), 2.0)])
    async with bus.subscribe() as queue:
        pumper = asyncio.create_task(pump(queue, seen))
        runner = asyncio.create_task(ven.run())
        try:
            await wait_for(lambda: ("wp1", event_id, "optIn") in vtn.log.opts)
            await wait_for(lambda: any(s.current_a for s in dr_signals(seen)))
            limit = next(s for s in dr_signals(seen) if s.current_a)
            expected = math.floor(0.5 * CapMapper.for_site(site).normal_kw * 1000 / (208 * math.sqrt(3)) * 10) / 10
            assert limit.current_a == {"L1": expected, "L2": expected, "L3": expected}  # 80 A per line
            assert limit.until == start + timedelta(seconds=5)
            assert datetime.now(UTC) >= start - timedelta(seconds=0.3)
            await wait_for(lambda: len(vtn.log.reports) > 0)
            assert vtn.log.reports[0][1] == 41_000.0
            await vtn.stop()  # the utility's server goes away mid-event
            await asyncio.sleep(1.5)
            assert [s.current_a for s in dr_signals(seen)][-1] == limit.current_a  # cap kept
            await wait_for(lambda: dr_signals(seen)[-1].current_a == {}, timeout=8)
            cleared = dr_signals(seen)[-1]
            assert cleared.at >= start + timedelta(seconds=5) and not cleared.stale
        finally:
            runner.cancel()
            pumper.cancel()
            await asyncio.gather(runner, pumper, return_exceptions=True)
            await vtn.stop()


async def test_modification_cancellation_and_opt_out(site: Site, vtn_port: int) -> None:
    bus = EventBus()
    seen: list[Event] = []

    def no_dispatch(event: DrEvent) -> str | None:
        return "optOut" if event.signal_name == "LOAD_DISPATCH" else None

    async with SimVtn(port=vtn_port, poll_s=1.0) as vtn:
        dr = site.demand_response.model_copy(update={"vtn_url": vtn.url, "ven_name": "wp2"})  # type: ignore[union-attr]
        ven = Ven(site, bus, settings=dr, policy=no_dispatch, tick_s=0.1)  # type: ignore[arg-type]
        now = datetime.now(UTC)
        simple = vtn.add_event("wp2", start=now, intervals=[(timedelta(minutes=30), 1.0)])
        dispatch = vtn.add_event(
            "wp2",
            signal_name="LOAD_DISPATCH",
            signal_type="setpoint",
            start=now,
            intervals=[(timedelta(minutes=30), 5.0)],
        )
        normal = CapMapper.for_site(site).normal_kw

        def amps(kw: float) -> float:
            return math.floor(kw * 1000 / (208 * math.sqrt(3)) * 10) / 10

        async with bus.subscribe() as queue:
            pumper = asyncio.create_task(pump(queue, seen))
            runner = asyncio.create_task(ven.run())
            try:
                await wait_for(lambda: ("wp2", dispatch, "optOut") in vtn.log.opts)
                await wait_for(lambda: any(s.current_a.get("L1") == amps(0.75 * normal) for s in dr_signals(seen)))
                vtn.modify_event("wp2", simple, payload=2.0)  # utility deepens the event
                await wait_for(lambda: dr_signals(seen)[-1].current_a.get("L1") == amps(0.5 * normal))
                assert ven.events[simple].modification == 1
                await ven.opt_out(simple)  # operator opts out: cap lifted, VTN told
                await wait_for(lambda: ("wp2", simple, "optOut") in vtn.log.opts)
                assert dr_signals(seen)[-1].current_a == {}
                assert ven.client.responded_events[simple] == "optOut"
                vtn.cancel_event("wp2", dispatch)
                await wait_for(lambda: ven.events.get(dispatch) is not None and ven.events[dispatch].cancelled)
                assert all(s.current_a.get("L1") != amps(5.0) for s in dr_signals(seen))  # never applied
            finally:
                runner.cancel()
                pumper.cancel()
                await asyncio.gather(runner, pumper, return_exceptions=True)
