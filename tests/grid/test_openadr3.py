"""OpenADR 3 VEN: payload mapping (pure), then over real HTTP against the loopback VTN (3.0.1 and 3.1.0)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from evsite.grid.openadr3 import ValuesMap, Ven3, WireEvent, convert_event, parse_duration, targets_match
from evsite.grid.sim_vtn3 import SimVtn3
from evsite.runtime.events import EventBus, SiteSignal
from evsite.site import Site, load_site
from evsite.site.model import DemandResponse, OpenAdr3

SQRT3 = math.sqrt(3)
T0 = datetime(2026, 7, 1, 21, 0, tzinfo=UTC)


@pytest.fixture
def site(examples_dir: Path) -> Site:
    return load_site(examples_dir / "workplace-20.yaml")


def settings(url: str, version: str = "3.0.1", **oadr3: Any) -> DemandResponse:
    o3 = {"client_id": "evsite-ven", "client_secret_env": "EVSITE_TEST_OADR3_SECRET", "report_interval_s": 0.2}
    return DemandResponse(
        version=version,  # type: ignore[arg-type]
        vtn_url=url,
        ven_name="workplace-p1",
        poll_interval_s=0.1,
        openadr3=OpenAdr3(**{**o3, **oadr3}),
    )


def amps(kw: float) -> float:
    """Per-line current of a balanced three-phase load on 208Y/120 V (P = √3 · V_LL · I), floored to 0.1 A."""
    return math.floor(kw * 1000 / (SQRT3 * 208) * 10) / 10


@contextlib.asynccontextmanager
async def running(ven: Ven3) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(ven.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def next_limit(queue: asyncio.Queue[Any], want: Callable[[SiteSignal], bool], timeout: float = 5.0) -> SiteSignal:
    async def wait() -> SiteSignal:
        while True:
            event = await queue.get()
            if isinstance(event, SiteSignal) and event.kind == "dr_limit" and want(event):
                return event

    return await asyncio.wait_for(wait(), timeout)


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVSITE_TEST_OADR3_SECRET", "ven-secret")


# ---------------------------------------------------------------- pure


def test_durations_follow_iso_8601_and_refuse_calendar_units() -> None:
    assert parse_duration("PT1H30M") == timedelta(hours=1, minutes=30)
    assert parse_duration("P1W") == timedelta(days=7)
    assert parse_duration("PT0.5S") == timedelta(seconds=0.5)
    for bad in ("P1M", "1H", "PT", "-PT5M"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def _event(payloads: list[dict[str, Any]], units: str | None = "KW", **extra: Any) -> WireEvent:
    return WireEvent.model_validate(
        {
            "id": "e1",
            "programID": "p1",
            "payloadDescriptors": [{"payloadType": p["type"], "units": units} for p in payloads],
            "intervals": [
                {"id": 0, "intervalPeriod": {"start": T0.isoformat(), "duration": "PT1H"}, "payloads": payloads}
            ],
            **extra,
        }
    )


def test_capacity_in_amps_converts_with_the_service_voltage(site: Site) -> None:
    ven = Ven3(site, EventBus(), settings=settings("http://127.0.0.1:1"))
    parts = convert_event(_event([{"type": "IMPORT_CAPACITY_LIMIT", "values": [100]}], "AMPS"), ven.kw_per_amp)
    # 100 A per line on 208Y/120 V three-phase: √3 × 208 V × 100 A = 36.03 kW
    assert parts["IMPORT_CAPACITY_LIMIT"].intervals[0].payload == pytest.approx(SQRT3 * 208 * 100 / 1000)


def test_capacity_without_units_is_read_as_watts(site: Site) -> None:
    parts = convert_event(_event([{"type": "IMPORT_CAPACITY_LIMIT", "values": [40]}], None), 0.36)
    assert parts["IMPORT_CAPACITY_LIMIT"].intervals[0].payload == pytest.approx(0.040)


def test_import_limit_leaves_room_for_the_building_first(site: Site) -> None:
    """The site may import 400 kW; the office (design peak 310 kW, no live reading) comes first: EVs get 90 kW."""
    ven = Ven3(site, EventBus(), settings=settings("http://127.0.0.1:1"))
    parts = convert_event(_event([{"type": "IMPORT_CAPACITY_LIMIT", "values": [400]}]), ven.kw_per_amp)
    at = T0 + timedelta(minutes=1)
    assert ven.mapper.cap_at(parts["IMPORT_CAPACITY_LIMIT"], at) == pytest.approx(90.0)
    ven._non_ev = lambda: 250.0  # a live reading replaces the design peak
    assert ven.mapper.cap_at(parts["IMPORT_CAPACITY_LIMIT"], at) == pytest.approx(150.0)
    ven._non_ev = lambda: 450.0  # building above the limit: EVs get nothing, never a negative cap
    assert ven.mapper.cap_at(parts["IMPORT_CAPACITY_LIMIT"], at) == 0.0


def test_prices_ghg_and_export_limits_inform_but_never_cap(site: Site) -> None:
    ven = Ven3(site, EventBus(), settings=settings("http://127.0.0.1:1"))
    payloads = [
        {"type": "PRICE", "values": [0.31]},
        {"type": "GHG", "values": [412.0]},
        {"type": "EXPORT_CAPACITY_LIMIT", "values": [0]},
    ]
    ven.apply_programs([{"id": "p1", "programName": "gac"}])
    ven.apply_events([_event(payloads).model_dump(by_alias=True, mode="json")], now=T0)
    assert [i.payload for i in ven.prices] == [0.31]
    assert [i.payload for i in ven.ghg] == [412.0]
    assert ven.cap_kw(T0 + timedelta(minutes=1)) == (None, None)


def test_targets_match_by_type_in_301_and_by_value_in_310() -> None:
    ours = {"GROUP": ["site-17"]}
    assert targets_match(ours, None)
    assert targets_match(ours, [ValuesMap(type="GROUP", values=["site-3", "site-17"])])
    assert not targets_match(ours, [ValuesMap(type="GROUP", values=["site-3"])])
    assert not targets_match(ours, [ValuesMap(type="RESOURCE_NAME", values=["site-17"])])
    assert targets_match(ours, ["site-17"]) and not targets_match(ours, ["site-3"])


def test_a_bad_modification_keeps_the_last_good_version(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    ven = Ven3(site, EventBus(), settings=settings("http://127.0.0.1:1"), non_ev_kw=lambda: 0.0)
    good = _event([{"type": "IMPORT_CAPACITY_LIMIT", "values": [30]}]).model_dump(by_alias=True, mode="json")
    ven.apply_programs([{"id": "p1", "programName": "gac"}])
    ven.apply_events([good], now=T0)
    bad = {
        **good,
        "intervals": [{**good["intervals"][0], "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": ["lots"]}]}],
    }
    with caplog.at_level(logging.WARNING, "evsite.grid.openadr3"):
        ven.apply_events([bad], now=T0)
    assert "event e1 refused: IMPORT_CAPACITY_LIMIT value 'lots' is not a finite number" in caplog.text
    assert ven.cap_kw(T0 + timedelta(minutes=1))[0] == pytest.approx(30.0)


def test_version_3_needs_its_settings() -> None:
    with pytest.raises(ValidationError, match="needs an `openadr3` section"):
        DemandResponse(version="3.0.1", vtn_url="http://x", ven_name="v")


# ---------------------------------------------------------------- over HTTP


async def test_event_starts_changes_and_is_cancelled(site: Site) -> None:
    bus = EventBus()
    async with SimVtn3(token_ttl_s=60) as vtn:
        program = vtn.add_program("gac", targets={"GROUP": ["site-17"]})
        other = vtn.add_program("elsewhere", targets={"GROUP": ["site-3"]})
        start = datetime.now(UTC) + timedelta(seconds=0.5)
        hour = [(timedelta(hours=1), {"IMPORT_CAPACITY_LIMIT": 150.0})]
        event = vtn.add_event(program, start=start, intervals=hour, targets={"GROUP": ["site-17"]})
        vtn.add_event(other, start=start, intervals=[(timedelta(hours=1), {"IMPORT_CAPACITY_LIMIT": 5.0})])
        ven = Ven3(
            site, bus, settings=settings(vtn.url, targets={"GROUP": ["site-17"]}),
            ev_power_w=lambda: 40_000.0, non_ev_kw=lambda: 100.0, tick_s=0.05,
        )  # fmt: skip
        async with bus.subscribe() as queue, running(ven):
            first = await next_limit(queue, lambda s: bool(s.current_a))
            # 150 kW import limit − 100 kW building = 50 kW for the EVs; the other site's 5 kW event is not ours
            assert first.current_a == {"L1": amps(50), "L2": amps(50), "L3": amps(50)}
            assert first.at >= start - timedelta(milliseconds=50)
            assert first.until == datetime.fromisoformat(
                vtn.events[event]["intervals"][0]["intervalPeriod"]["start"]
            ) + timedelta(hours=1)
            vtn.modify_event(event, {"IMPORT_CAPACITY_LIMIT": 120.0})
            changed = await next_limit(queue, lambda s: bool(s.current_a))
            assert changed.current_a["L1"] == amps(20)
            await asyncio.sleep(0.5)
            vtn.cancel_event(event)
            ended = await next_limit(queue, lambda s: not s.current_a)
            assert ended.current_a == {}
        reports = [r for r in vtn.log.reports if r["eventID"] == event]
        assert reports, "no report reached the VTN during the event"
        values = {p["type"]: p["values"][0] for p in reports[-1]["resources"][0]["intervals"][0]["payloads"]}
        # EV load 40 kW, baseline 40 kW when first seen, limit in force 120 kW (after the change)
        assert values == {"DEMAND": 40.0, "BASELINE": 40.0, "DELTA_USAGE": 0.0, "IMPORT_CAPACITY_LIMIT": 120.0}
        assert reports[-1]["programID"] == program


async def test_token_expires_and_is_renewed(site: Site) -> None:
    async with SimVtn3(token_ttl_s=1.0) as vtn:
        ven = Ven3(site, EventBus(), settings=settings(vtn.url), tick_s=0.05)
        async with running(ven):
            await asyncio.sleep(2.2)
            polls = vtn.log.requests.count(("GET", "events"))
            assert vtn.log.grants >= 3  # renewed 0.1 s before each 1 s token ran out (at 0, 0.9, 1.8 s)
            assert vtn.log.unauthorized == 0
            vtn.tokens.clear()  # the VTN forgets every token (e.g. restarted): one 401, a new grant, carry on
            grants = vtn.log.grants
            await asyncio.sleep(0.4)
            assert vtn.log.unauthorized >= 1 and vtn.log.grants > grants
            assert vtn.log.requests.count(("GET", "events")) > polls + 1
            assert ven.vtn_up is True


async def test_vtn_down_holds_the_limit_until_its_end_then_the_site_limits(site: Site) -> None:
    bus = EventBus()
    async with SimVtn3() as vtn:
        program = vtn.add_program("gac")
        end = datetime.now(UTC) + timedelta(seconds=1.5)
        vtn.add_event(program, start=end - timedelta(hours=1), intervals=[(timedelta(hours=1), {"SIMPLE": 2})])
        ven = Ven3(site, bus, settings=settings(vtn.url), tick_s=0.05)
        async with bus.subscribe() as queue, running(ven):
            capped = await next_limit(queue, lambda s: bool(s.current_a))
            assert capped.current_a["L1"] == amps(ven.mapper.normal_kw * 0.5)
            await vtn.stop()
            ended = await next_limit(queue, lambda s: not s.current_a)
            assert datetime.now(UTC) >= end - timedelta(milliseconds=50)
            assert ven.vtn_up is False
            assert ended.at >= end - timedelta(milliseconds=50) and capped.until == end


async def test_malformed_events_are_refused_and_the_ven_keeps_going(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    bus = EventBus()
    async with SimVtn3() as vtn:
        program = vtn.add_program("gac")
        now = datetime.now(UTC)
        period = {"start": now.isoformat(), "duration": "PT1H"}
        vtn.put_raw_event("not an object")
        vtn.put_raw_event(
            {
                "id": "neg",
                "programID": program,
                "intervals": [
                    {"id": 0, "intervalPeriod": period, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [-5]}]}
                ],
            }
        )
        vtn.put_raw_event({"id": "nointervals", "programID": program})
        vtn.put_raw_event(
            {
                "id": "level9",
                "programID": program,
                "intervals": [{"id": 0, "intervalPeriod": period, "payloads": [{"type": "SIMPLE", "values": [9]}]}],
            }
        )
        vtn.put_raw_event({"id": "badtime", "programID": program, "intervals": [
            {"id": 0, "intervalPeriod": {"start": "yesterday"}, "payloads": [{"type": "SIMPLE", "values": [1]}]},
        ]})  # fmt: skip
        vtn.add_event(program, start=now, intervals=[(timedelta(hours=1), {"IMPORT_CAPACITY_LIMIT": 60.0})])
        ven = Ven3(site, bus, settings=settings(vtn.url), non_ev_kw=lambda: 0.0, tick_s=0.05)
        with caplog.at_level(logging.WARNING, "evsite.grid.openadr3"):
            async with bus.subscribe() as queue, running(ven) as task:
                capped = await next_limit(queue, lambda s: bool(s.current_a))
                assert capped.current_a["L1"] == amps(60)
                await asyncio.sleep(0.3)
                assert not task.done()
        assert "IMPORT_CAPACITY_LIMIT -5 is negative" in caplog.text
        assert "event nointervals refused: intervals: Field required" in caplog.text
        assert "SIMPLE level 9 is not 0, 1, 2 or 3" in caplog.text
        assert "event badtime refused: intervals.0.intervalPeriod.start" in caplog.text
        assert "refused: : Input should be a valid dictionary" in caplog.text
        # each reason is logged once, not on every poll
        assert caplog.text.count("SIMPLE level 9") == 1


async def test_version_310_finds_its_token_endpoint_and_string_targets(site: Site) -> None:
    bus = EventBus()
    async with SimVtn3(version="3.1.0") as vtn:
        program = vtn.add_program("gac")
        now = datetime.now(UTC)
        ours = vtn.add_event(program, start=now, intervals=[(timedelta(hours=1), {"IMPORT_CAPACITY_LIMIT": 80.0})],
                             targets={"x": ["site-17"]})  # fmt: skip
        vtn.add_event(program, start=now, intervals=[(timedelta(hours=1), {"IMPORT_CAPACITY_LIMIT": 8.0})],
                      targets={"x": ["site-3"]})  # fmt: skip
        assert vtn.events[ours]["targets"] == ["site-17"]
        ven = Ven3(site, bus, settings=settings(vtn.url, "3.1.0", targets={"GROUP": ["site-17"]}),
                   ev_power_w=lambda: 10_000.0, non_ev_kw=lambda: 0.0, tick_s=0.05)  # fmt: skip
        async with bus.subscribe() as queue, running(ven):
            capped = await next_limit(queue, lambda s: bool(s.current_a))
            assert capped.current_a["L1"] == amps(80)
            await asyncio.sleep(0.5)
        assert vtn.log.grants >= 1 and list(ven.vtn_events) == [ours]
        assert vtn.log.reports and "programID" not in vtn.log.reports[-1]  # 3.1.0 reports carry no programID


def test_the_site_file_version_picks_the_ven(site: Site) -> None:
    from evsite.grid.integrations import make_ven
    from evsite.grid.openadr import Ven

    assert type(make_ven(site, EventBus())) is Ven  # the example is 2.0b
    assert site.demand_response is not None
    three = site.model_copy(update={"demand_response": settings("http://127.0.0.1:1/openadr3/3.0.1")})
    assert isinstance(make_ven(three, EventBus()), Ven3)


def test_a_truncated_listing_cancels_nothing(site: Site) -> None:
    ven = Ven3(site, EventBus(), settings=settings("http://127.0.0.1:1"), non_ev_kw=lambda: 0.0)
    ven.apply_programs([{"id": "p1", "programName": "gac"}])
    ven.apply_events([_event([{"type": "IMPORT_CAPACITY_LIMIT", "values": [30]}]).model_dump(by_alias=True)], now=T0)
    ven.apply_events([], now=T0, complete=False)
    assert ven.cap_kw(T0 + timedelta(minutes=1))[0] == pytest.approx(30.0)
    ven.apply_events([], now=T0)
    assert ven.cap_kw(T0 + timedelta(minutes=1)) == (None, None)


def test_the_controller_supplies_the_non_ev_load(site: Site) -> None:
    """Design peak until the office meter reports, then the live reading on its worst line."""
    from types import SimpleNamespace

    from evsite.control.signals import SiteLimits
    from evsite.control.tree import build_tree
    from evsite.runtime.stack import _non_ev_kw

    limits = SiteLimits(site, build_tree(site))
    running = SimpleNamespace(control=SimpleNamespace(limits=limits), options=SimpleNamespace(site=site))
    assert _non_ev_kw(running) == pytest.approx(310.0)  # type: ignore[arg-type]
    (node,) = limits.building_max
    limits.update(SiteSignal("building_load", node, {"L1": 150.0, "L2": 200.0, "L3": 120.0}, "M-BLDG"))
    # 200 A on the worst line of 208Y/120 V: √3 × 208 V × 200 A = 72.05 kW
    assert _non_ev_kw(running) == pytest.approx(SQRT3 * 208 * 200 / 1000)  # type: ignore[arg-type]


def test_intervals_without_a_period_follow_each_other_in_the_order_sent() -> None:
    ev = WireEvent.model_validate(
        {
            "id": "e2",
            "programID": "p1",
            "intervalPeriod": {"start": T0.isoformat(), "duration": "PT15M"},
            "intervals": [
                {"id": 7, "payloads": [{"type": "SIMPLE", "values": [1]}]},
                {"id": 3, "payloads": [{"type": "SIMPLE", "values": [2]}]},
                {"id": 5, "intervalPeriod": {"start": (T0 + timedelta(hours=2)).isoformat()}, "payloads": [
                    {"type": "SIMPLE", "values": [3]}]},
            ],
        }
    )  # fmt: skip
    simple = convert_event(ev, 0.36)["SIMPLE"]
    assert [(i.start - T0, i.payload) for i in simple.intervals] == [
        (timedelta(0), 1.0),
        (timedelta(minutes=15), 2.0),
        (timedelta(hours=2), 3.0),
    ]
    assert simple.intervals[-1].end - simple.intervals[-1].start == timedelta(days=3650)  # PT0S: until changed


def test_a_broken_program_update_keeps_its_events(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    ven = Ven3(site, EventBus(), settings=settings("http://127.0.0.1:1"), non_ev_kw=lambda: 0.0)
    event = _event([{"type": "IMPORT_CAPACITY_LIMIT", "values": [30]}]).model_dump(by_alias=True)
    ven.apply_programs([{"id": "p1", "programName": "gac"}])
    ven.apply_events([event], now=T0)
    with caplog.at_level(logging.WARNING, "evsite.grid.openadr3"):
        ven.apply_programs([{"id": "p1", "programName": ""}])
    ven.apply_events([event], now=T0)
    assert "program refused: programName: String should have at least 1 character (kept as it was)" in caplog.text
    assert ven.cap_kw(T0 + timedelta(minutes=1))[0] == pytest.approx(30.0)
