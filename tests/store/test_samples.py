"""Compact meter samples: every sampled value comes back exactly as the charger sent it.

The property test feeds arbitrary MeterValue elements (numbers written every way OCPP allows, and
text that is no number at all) through the encoder and decoder and requires the same descriptors,
the same text and the same order back. The store tests check the typed columns hold what a meter
reading means (16.3 A is 1630 cA) and that unusual text is kept verbatim rather than re-rendered.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from evsite.store import samples as sv
from evsite.store.ocpp import OcppStore

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
MEASURANDS = [
    "Energy.Active.Import.Register", "Power.Active.Import", "Current.Import", "Voltage", "Current.Offered", "SoC",
    "Energy.Active.Export.Register", "Temperature",
]  # fmt: skip
UNITS = ["", "Wh", "kWh", "W", "kW", "A", "V", "Percent", "Celsius"]
numbers = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.integers(0, 9).flatmap(lambda p: st.decimals(allow_nan=False, allow_infinity=False, places=p)).map(str),
    st.builds(lambda w, f: f"{w}.{f}", st.integers(0, 10**9), st.text("0123456789", min_size=1, max_size=8)),
    st.sampled_from(["0", "-0", "+5", "1E3", "1e-2", " 7", "00042", "NaN", "Infinity", "", "abc", "3.000"]),
)
values = st.fixed_dictionaries(
    {
        "measurand": st.sampled_from(MEASURANDS),
        "phase": st.sampled_from(["", "L1", "L2", "L3", "N", "L1-N", "L1-L2"]),
        "location": st.sampled_from(["", "Outlet", "Inlet", "EV", "Body"]),
        "context": st.sampled_from(["Sample.Periodic", "Transaction.End", "Trigger"]),
        "unit": st.sampled_from(UNITS),
        "format": st.sampled_from(["Raw", "Raw", "Raw", "SignedData"]),
        "value": numbers,
    }
)
DESCRIPTOR = ("measurand", "phase", "location", "context", "unit", "format", "value")


def element(items: list[dict[str, Any]], tx: int | None = 3, at: datetime = T0) -> list[dict[str, Any]]:
    base = {"charger_id": "CP-1", "connector_id": 1, "transaction_id": tx, "timestamp": at}
    return [base | item for item in items]


@settings(max_examples=300, deadline=None)
@given(st.lists(values, min_size=1, max_size=9), st.integers(0, 10**6 - 1), st.integers(-(10**9), 4 * 10**9))
def test_every_sampled_value_decodes_to_the_text_sent(items: list[dict[str, Any]], micros: int, secs: int) -> None:
    at = sv.EPOCH + timedelta(seconds=secs, microseconds=micros)
    rows = element(items, at=at)
    (encoded,) = sv.encode(rows)
    writer = sv.SampleWriter()
    ids = sv.Ids(series={encoded.series: 1}, layouts={encoded.layout: 2})
    (sample,), texts = writer.rows([encoded], ids)
    layout = sv.Layout.parse(2, encoded.layout)
    decoded = sv.decode(sample | {"id": 1}, {"charger_id": "CP-1", "connector_id": 1, "transaction_id": 3}, layout,
                        {t["position"]: t["value"] for t in texts})  # fmt: skip
    assert [tuple(d[k] for k in DESCRIPTOR) for d in decoded] == [tuple(r[k] for k in DESCRIPTOR) for r in rows]
    assert all(d["timestamp"] == at for d in decoded)
    # typed columns only ever hold integers in range, and only raw values of the charger's own meter
    for name, number in sample.items():
        if name in sv.COLUMNS and number is not None:
            assert isinstance(number, int) and abs(number) <= sv.COLUMNS[name].bound


async def test_typed_columns_hold_the_meter_reading_and_unusual_text_is_kept(tmp_path: Path) -> None:
    store = await OcppStore.open(f"sqlite+aiosqlite:///{tmp_path / 'samples.db'}")
    try:
        tx = await store.start_transaction("CP-1", 1, "TAG", "Accepted", 1000, T0, None)
        sent = [
            {"measurand": "Energy.Active.Import.Register", "unit": "kWh", "value": "1.2607"},
            {"measurand": "Current.Import", "phase": "L1", "unit": "A", "value": "16.3"},
            {"measurand": "Current.Import", "phase": "L2", "unit": "A", "value": "16.30"},
            {"measurand": "Voltage", "phase": "L1-N", "unit": "V", "value": "+230.1"},
            {"measurand": "Power.Active.Import", "unit": "W", "value": "3749.5"},
            {"measurand": "SoC", "location": "EV", "unit": "Percent", "value": "41"},
        ]
        rows = element([{"location": "Outlet", "context": "Sample.Periodic", "format": "Raw"} | s for s in sent], tx)
        await store.add_meter_values(rows)
        await store.add_meter_values(rows)  # a resend is stored once
        # more decimals than the energy column keeps (0.001 Wh): the exact text is the record
        fine = element([{"measurand": "Energy.Active.Import.Register", "unit": "kWh", "value": "1.26070001"}], tx,
                       T0 + timedelta(minutes=1))  # fmt: skip
        await store.add_meter_values(fine)
        async with store.engine.connect() as conn:
            stored = (await conn.execute(select(sv.SAMPLES).order_by(sv.SAMPLES.c.id))).mappings().all()
            texts = (await conn.execute(select(sv.TEXTS.c.position, sv.TEXTS.c.value))).all()
        assert len(stored) == 2
        first, second = stored
        assert (first["energy_mwh"], first["current_l1_ca"], first["current_l2_ca"]) == (1_260_700, 1630, 1630)
        assert (first["voltage_dv"], first["power_dw"]) == (2301, 37495)
        assert second["energy_mwh"] is None
        # verbatim: "+230.1" (not the plain rendering), SoC (no column), the over-precise register
        assert sorted(texts) == [(0, "1.26070001"), (3, "+230.1"), (5, "41")]
        values = await store.meter_values("CP-1")
        assert [v["value"] for v in values] == [s["value"] for s in sent] + ["1.26070001"]
        assert {v["transaction_id"] for v in values} == {tx}
    finally:
        await store.close()
