"""Issue #14, from chargers: well-formed but wrong data is flagged, stored as received, and never steers
the load manager. Every test talks to the central system over a real WebSocket on 127.0.0.1.

Bounds in the workplace example (208Y/120 V, WP-xx on 60 A two-pole circuits, 48 A EVSE): current up to
1.25 × 60 = 75 A, power up to 75 A × 208 V × 1.1 = 17,160 W, voltage up to 1.2 × 208 = 249.6 V.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ocpp.exceptions import PropertyConstraintViolationError
from ocpp.v16 import ChargePoint, call
from websockets.asyncio.client import connect

from evsite.api import SiteRuntime
from evsite.api.live import LiveState
from evsite.control.loop import ControlLoop
from evsite.metering.repository import bill_month
from evsite.ocpp import plausibility
from evsite.ocpp.plausibility import ENERGY
from evsite.ocpp.server import CentralSystem, ServerSettings
from evsite.runtime.events import ChargerConnected, ConnectorStatus, Event, MeterSample
from evsite.site import Site
from evsite.store.ocpp import OcppStore
from tests.api.conftest import RecordingActions, sqlite_memory
from tests.metering.helpers import site as metering_site

from .conftest import RawClient, raw_client, url


def ts(offset_s: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sampled(value: str, measurand: str, unit: str, phase: str | None = None) -> dict[str, Any]:
    sv = {"value": value, "measurand": measurand, "unit": unit}
    if phase:
        sv["phase"] = phase
    return sv


async def _events(queue: asyncio.Queue[Event], kind: type, timeout: float = 3.0) -> list[Any]:
    """Events of one kind that arrived so far (waits for the first)."""
    out: list[Any] = []
    async with asyncio.timeout(timeout):
        while not out:
            event = await queue.get()
            if isinstance(event, kind):
                out.append(event)
    while not queue.empty():
        event = queue.get_nowait()
        if isinstance(event, kind):
            out.append(event)
    return out


async def _until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


async def _start(client: RawClient, connector: int = 1, tag: str = "CARD-1") -> int:
    answer = await client.call("StartTransaction", {"connectorId": connector, "idTag": tag, "meterStart": 1000,
                                                    "timestamp": ts(-60)})  # fmt: skip
    assert answer[0] == 3, answer
    return int(answer[2]["transactionId"])


@pytest.mark.parametrize(
    ("value", "measurand", "unit", "code"),
    [
        ("inf", "Current.Import", "A", "non_finite"),
        ("NaN", "Current.Import", "A", "non_finite"),
        ("-500", "Current.Import", "A", "negative"),
        ("1e6", "Current.Import", "A", "out_of_range"),
        ("1e12", "Power.Active.Import", "W", "out_of_range"),
        ("18", "Power.Active.Import", "kW", "out_of_range"),  # 18 kW > 17.16 kW: the unit is applied
        ("-3", "Power.Active.Import", "W", "negative"),
        ("twelve", "Current.Import", "A", "not_a_number"),
        ("16", "Current.Import", "W", "unit"),
    ],
)
async def test_implausible_reading_is_stored_flagged_and_reported_as_implausible(
    cs: CentralSystem, value: str, measurand: str, unit: str, code: str
) -> None:
    async with cs.bus.subscribe() as events:
        client = await raw_client(cs, "WP-01")
        tx = await _start(client)
        payload = {"connectorId": 1, "transactionId": tx,
                   "meterValue": [{"timestamp": ts(), "sampledValue": [sampled(value, measurand, unit)]}]}  # fmt: skip
        assert (await client.call("MeterValues", payload))[0] == 3  # accepted: the value is kept, not refused
        samples = await _events(events, MeterSample)
    assert [(s.implausible, s.current_a, s.power_w) for s in samples] == [(True, {}, None)]
    stored = await cs.store.meter_values("WP-01")
    assert [(v["measurand"], v["value"]) for v in stored] == [(measurand, value)]  # as received, NaN included
    flags = await cs.store.flags("WP-01")
    assert [(f["code"], f["measurand"], f["value"], f["transaction_id"]) for f in flags] == [
        (code, measurand, value, tx)
    ]
    assert cs.gate.counts[code] == 1
    assert (await cs.store.transactions("WP-01"))[0]["flags"] == [code]


async def test_plausible_reading_passes_in_base_units(cs: CentralSystem) -> None:
    async with cs.bus.subscribe() as events:
        client = await raw_client(cs, "WP-02")
        values = [
            sampled("31.5", "Current.Import", "A", "L1"),
            sampled("-0.2", "Current.Import", "A", "L2"),  # noise around zero reads as zero, not flagged
            sampled("6.5", "Power.Active.Import", "kW"),
            sampled("209", "Voltage", "V", "L1-L2"),
            sampled("12.5", "Energy.Active.Import.Register", "kWh"),
        ]
        payload = {"connectorId": 1, "meterValue": [{"timestamp": ts(), "sampledValue": values}]}
        assert (await client.call("MeterValues", payload))[0] == 3
        [sample] = await _events(events, MeterSample)
    assert not sample.implausible
    assert sample.current_a == {"L1": 31.5, "L2": 0.0}
    assert (sample.power_w, sample.energy_wh, sample.voltage_v) == (6500.0, 12500.0, {"L1": 209.0})
    assert await cs.store.flags() == []


async def test_register_rollback_and_impossible_rise_are_flagged(cs: CentralSystem) -> None:
    client = await raw_client(cs, "WP-03")

    async def register(wh: int, at_s: float) -> None:
        payload = {"connectorId": 1, "meterValue": [{"timestamp": ts(at_s),
                   "sampledValue": [sampled(str(wh), "Energy.Active.Import.Register", "Wh")]}]}  # fmt: skip
        assert (await client.call("MeterValues", payload))[0] == 3

    await register(50_000, -600)
    await register(51_000, -540)  # 1 kWh in 60 s is 60 kW: more than 17.16 kW can deliver (286 Wh + 10 Wh slack)
    await register(51_200, -480)  # 200 Wh in 60 s (12 kW): fine
    await register(40_000, -420)  # went back
    await register(40_100, -360)  # counting again from the new value: fine
    flags = await cs.store.flags("WP-03")
    assert [(f["code"], f["value"]) for f in flags] == [("energy_rate", "51000"), ("rollback", "40000")]


async def test_start_on_a_connector_the_charger_lacks_is_refused(cs: CentralSystem) -> None:
    """With the `ocpp` package's charge point: the spec's CallError comes back (OCPP-J 1.6 §4.2.3)."""
    await cs.set_id_tag("CARD-1")
    async with connect(url(cs, "WP-04"), subprotocols=["ocpp1.6"]) as ws:
        cp = ChargePoint("WP-04", ws, response_timeout=5)
        runner = asyncio.create_task(cp.start())
        try:
            with pytest.raises(PropertyConstraintViolationError):
                await cp.call(
                    call.StartTransaction(connector_id=99, id_tag="CARD-1", meter_start=0, timestamp=ts()),
                    suppress=False,
                )
            ok = await cp.call(call.StartTransaction(connector_id=1, id_tag="CARD-1", meter_start=0, timestamp=ts()))
            assert ok.transaction_id > 0
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
    assert [r["connector_id"] for r in await cs.store.transactions("WP-04")] == [1]
    assert cs.gate.counts["connector"] == 1


async def test_status_and_meter_values_for_a_missing_connector_are_refused(cs: CentralSystem) -> None:
    client = await raw_client(cs, "WP-05")
    status = await client.call("StatusNotification", {"connectorId": 2, "status": "Charging", "errorCode": "NoError"})
    assert status[0] == 4 and status[2] == "PropertyConstraintViolation"
    values = {"connectorId": 7, "meterValue": [{"timestamp": ts(), "sampledValue": [{"value": "1"}]}]}
    answer = await client.call("MeterValues", values)
    assert answer[0] == 4 and answer[2] == "PropertyConstraintViolation"
    # connector 0 (the whole charge point) is valid for both
    assert (await client.call("StatusNotification", {"connectorId": 0, "status": "Available",
                                                     "errorCode": "NoError"}))[0] == 3  # fmt: skip
    assert await cs.store.meter_values("WP-05") == []
    assert [c["connector_id"] for c in await cs.store.connectors("WP-05")] == [0]


async def test_another_chargers_transaction_is_refused(cs: CentralSystem) -> None:
    owner = await raw_client(cs, "WP-06")
    tx = await _start(owner)
    intruder = await raw_client(cs, "WP-07")
    values = {"connectorId": 1, "transactionId": tx,
              "meterValue": [{"timestamp": ts(), "sampledValue": [{"value": "99999"}]}]}  # fmt: skip
    answer = await intruder.call("MeterValues", values)
    assert answer[0] == 4 and answer[2] == "PropertyConstraintViolation"
    stop = {"transactionId": tx, "meterStop": 99_999, "timestamp": ts(), "reason": "Local",
            "transactionData": [{"timestamp": ts(), "sampledValue": [{"value": "99999"}]}]}  # fmt: skip
    answer = await intruder.call("StopTransaction", stop)
    assert answer[0] == 4 and answer[2] == "PropertyConstraintViolation"
    assert await cs.store.meter_values("WP-07") == [] and await cs.store.meter_values("WP-06") == []
    [row] = await cs.store.transactions("WP-06")
    assert row["stop_time"] is None  # still open, for its owner to stop
    assert (await owner.call("StopTransaction", {**stop, "transactionData": []}))[0] == 3
    assert cs.gate.counts["foreign_transaction"] == 2


async def test_session_from_1970_to_2100_is_flagged(cs: CentralSystem) -> None:
    client = await raw_client(cs, "WP-08")
    start = await client.call("StartTransaction", {"connectorId": 1, "idTag": "X", "meterStart": 0,
                                                   "timestamp": "1970-01-01T00:00:00Z"})  # fmt: skip
    tx = start[2]["transactionId"]
    stop = {"transactionId": tx, "meterStop": 1_000_000_000, "timestamp": "2100-01-01T00:00:00Z"}
    assert (await client.call("StopTransaction", stop))[0] == 3
    [row] = await cs.store.transactions("WP-08")
    assert row["meter_stop"] == 1_000_000_000  # stored as received ...
    assert row["flags"] == ["timestamp"]  # ... but not a plain completed session
    assert len(await cs.store.flags("WP-08", tx)) == 2  # the start and the stop


async def test_energy_over_what_the_circuit_delivers_is_flagged(cs: CentralSystem) -> None:
    client = await raw_client(cs, "WP-09")
    start = await client.call("StartTransaction", {"connectorId": 1, "idTag": "X", "meterStart": 0,
                                                   "timestamp": ts(-3600)})  # fmt: skip
    tx = start[2]["transactionId"]
    # 17.16 kW for an hour is 17,160 Wh (+10 Wh slack); 20 kWh cannot have come through a 60 A circuit at 208 V.
    assert (await client.call("StopTransaction", {"transactionId": tx, "meterStop": 20_000, "timestamp": ts()}))[0] == 3
    assert [f["code"] for f in await cs.store.flags("WP-09", tx)] == ["energy_rate"]
    client2 = await raw_client(cs, "WP-10")
    start = await client2.call("StartTransaction", {"connectorId": 1, "idTag": "X", "meterStart": 0,
                                                    "timestamp": ts(-3600)})  # fmt: skip
    tx2 = start[2]["transactionId"]
    assert (await client2.call("StopTransaction", {"transactionId": tx2, "meterStop": 17_000, "timestamp": ts()}))[
        0
    ] == 3
    assert await cs.store.flags("WP-10") == []


@contextlib.asynccontextmanager
async def _loop(cs: CentralSystem) -> AsyncIterator[ControlLoop]:
    assert cs.site is not None
    cs.site.control.cycle_s = 0.05
    loop = ControlLoop(cs.site, cs.bus, cs)
    await loop.start()
    try:
        yield loop
    finally:
        await loop.stop()


async def test_inf_reading_counts_the_port_at_its_circuit_limit_until_a_plausible_one(cs: CentralSystem) -> None:
    async with _loop(cs) as loop:
        c = loop.controller
        p = c.tree.port_index[("WP-11", 1)]
        client = await raw_client(cs, "WP-11")
        assert (await client.call("StatusNotification", {"connectorId": 1, "status": "Charging",
                                                         "errorCode": "NoError"}))[0] == 3  # fmt: skip
        tx = await _start(client)

        async def current(value: str) -> None:
            element = {"timestamp": ts(), "sampledValue": [sampled(value, "Current.Import", "A")]}
            payload = {"connectorId": 1, "transactionId": tx, "meterValue": [element]}
            assert (await client.call("MeterValues", payload))[0] == 3

        await current("20")
        await _until(lambda: c.measured[p].max() == 20.0)
        await current("inf")
        await _until(lambda: bool(c.implausible[p]))
        demand = c.demand(10**10)
        # 0.8 × 60 A: the circuit's continuous limit, as the constraint tree defines it
        assert demand.fixed[p] == 48.0 and c.measured[p].max() == 0.0
        assert p not in c.decide(c.tree.limits, 10**10)[1]  # it keeps its setpoint: no raise on a bad reading
        await current("12")
        await _until(lambda: not c.implausible[p])
        assert c.measured[p].max() == 12.0


async def test_disconnected_charger_counts_at_its_maximum_and_shows_unknown(cs: CentralSystem) -> None:
    async with _loop(cs) as loop:
        c = loop.controller
        p = c.tree.port_index[("WP-12", 1)]
        client = await raw_client(cs, "WP-12")
        assert (await client.call("StatusNotification", {"connectorId": 1, "status": "Charging",
                                                         "errorCode": "NoError"}))[0] == 3  # fmt: skip
        for value in ("30", "-500"):  # the case: −500 A, then gone
            element = {"timestamp": ts(), "sampledValue": [sampled(value, "Current.Import", "A")]}
            assert (await client.call("MeterValues", {"connectorId": 1, "meterValue": [element]}))[0] == 3
        await _until(lambda: bool(c.implausible[p]) and not c.offline[p])
        await client.ws.close()
        await _until(lambda: bool(c.offline[p]))
        row = next(r for r in loop.snapshot()["connectors"] if r["charge_point_id"] == "WP-12")
        assert (row["status"], row["drawn_a"], row["unresponsive"]) == ("Unknown", 0.0, True)
        assert c.demand(10**10).fixed[p] == c.port_max[p] == 48.0


@pytest.mark.parametrize("register", ["NaN", "inf", "abc"])
async def test_a_register_that_is_not_a_number_does_not_stop_billing(tmp_path: Path, register: str) -> None:
    """One bad register used to make the month's billing run raise for the whole site (InvalidOperation on
    NaN, ValueError on text). It is flagged at the gate, and billing bills the session from the others."""
    store = await OcppStore.open(f"sqlite+aiosqlite:///{tmp_path / 'bill.db'}", synchronous="NORMAL")
    server = CentralSystem(store, metering_site(demand_charge_per_kw="0"), settings=ServerSettings(port=0))
    await server.start()
    try:
        await server.set_id_tag("TAG-U101")
        client = await raw_client(server, "MF-P1-01")
        start = {"connectorId": 1, "idTag": "TAG-U101", "meterStart": 1_000_000, "timestamp": "2026-10-14T22:30:00Z"}
        tx = (await client.call("StartTransaction", start))[2]["transactionId"]
        for at, wh in [("22:57", "1003240"), ("23:00", register), ("23:07", "1004440")]:
            element = {"timestamp": f"2026-10-14T{at}:00Z", "sampledValue": [sampled(wh, ENERGY, "Wh")]}
            values = {"connectorId": 1, "transactionId": tx, "meterValue": [element]}
            assert (await client.call("MeterValues", values))[0] == 3
        stop = {"transactionId": tx, "meterStop": 1_009_000, "timestamp": "2026-10-14T23:45:00Z"}
        assert (await client.call("StopTransaction", stop))[0] == 3
        result = await bill_month(store.engine, server.site, "2026-10")
        (statement,) = result.run.statements
        assert statement.energy_wh == 9_000  # meterStop − meterStart, nothing lost
        codes = {f["code"] for f in await store.flags("MF-P1-01")}  # (and `timestamp`: October is weeks ago)
        assert ("not_a_number" if register == "abc" else "non_finite") in codes
    finally:
        await server.stop()
        await store.close()


def test_flags_are_counted_each_but_logged_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    gate = plausibility.Gate()
    flag = plausibility.Flag("non_finite", "Current.Import 'inf' is not finite")
    with caplog.at_level("WARNING", logger="evsite.ocpp.plausibility"):
        for _ in range(500):
            gate.note("WP-01", flag)
        gate.note("WP-02", flag)
    assert gate.counts["non_finite"] == 501
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["WP-01", "WP-02"]


async def test_dashboard_state_of_a_disconnected_charger_is_unknown(workplace: Site) -> None:
    """The API's live view: a charger that reported −500 A while Charging and then went away shows
    neither its old status nor its old reading."""
    _, db = sqlite_memory()
    live = LiveState(SiteRuntime(site=workplace, db=db, actions=RecordingActions()))
    live.apply(ChargerConnected("WP-15", True))
    live.apply(ConnectorStatus("WP-15", 1, "Charging"))
    live.apply(MeterSample("WP-15", 1, datetime.now(UTC), current_a={"L1": 30.0}, power_w=6000.0))
    assert (live.connectors[("WP-15", 1)].status, live.connectors[("WP-15", 1)].drawn_a) == ("Charging", 30.0)
    live.apply(ChargerConnected("WP-15", False))
    connector = live.connectors[("WP-15", 1)]
    assert (connector.status, connector.current_a, connector.power_w) == ("Unknown", {}, None)


def test_a_sped_up_site_scales_the_energy_rate_bound(workplace: Site) -> None:
    """A demo's EVs run `speed` times faster than the clock: the rate check allows that much, no more."""
    bounds = plausibility.Bounds.for_evse(workplace, workplace.evse[0])
    t0 = datetime(2026, 12, 7, 12, tzinfo=UTC)
    ten_s = t0 + timedelta(seconds=10)
    at_600 = bounds.energy_wh(10 * 600) * 0.9  # 90 % of what the charger could give in 6,000 site seconds
    for scale, flagged in ((1.0, True), (600.0, False)):
        gate = plausibility.Gate(time_scale=scale)
        assert gate.register(("WP-01", 1), 1_000.0, t0, bounds) is None
        flag = gate.register(("WP-01", 1), 1_000.0 + at_600, ten_s, bounds)
        assert (flag is not None and flag.code == "energy_rate") is flagged
    gate = plausibility.Gate(time_scale=600.0)  # and beyond the scaled bound it is still flagged
    gate.register(("WP-01", 1), 1_000.0, t0, bounds)
    flag = gate.register(("WP-01", 1), 1_000.0 + 2 * at_600, ten_s, bounds)
    assert flag is not None and flag.code == "energy_rate"
