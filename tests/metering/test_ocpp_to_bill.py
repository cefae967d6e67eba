"""From a charger's OCPP messages over a real socket to a statement line, through the OCPP server's store.

The charger (a bare OCPP-J 1.6 client) starts a session at 15:30 PDT, reports 1-minute-apart registers around
the 16:00 TOU boundary (resending one MeterValues, as chargers do after a reconnect), and stops with an OCMF
signed end reading. Billing reads only what the central system stored.
Hand computation (as in test_billing): off-peak 3,600 Wh × $0.25 = $0.90, peak 5,400 Wh × $0.45 = $2.43,
session fee $0.25, subtotal $3.58, tax 7.25 % = $0.25955 → $0.26, total $3.84.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from evsite.metering.repository import bill_month
from evsite.ocpp.server import CentralSystem, ServerSettings
from evsite.runtime.events import EventBus
from evsite.store.ocpp import OcppStore
from tests.metering.helpers import site
from tests.metering.test_ocmf import PAYLOAD, sign
from tests.ocpp.conftest import raw_client

ENERGY = "Energy.Active.Import.Register"


def meter(ts: str, wh: int) -> dict[str, object]:
    return {"timestamp": ts, "sampledValue": [{"value": str(wh), "measurand": ENERGY, "unit": "Wh"}]}


@pytest.fixture
async def cs(tmp_path: Path) -> AsyncIterator[CentralSystem]:
    store = await OcppStore.open(f"sqlite+aiosqlite:///{tmp_path / 'cs.db'}", synchronous="NORMAL")
    server = CentralSystem(
        store, site(demand_charge_per_kw="0"), bus=EventBus(), settings=ServerSettings(port=0, call_timeout_s=5.0)
    )
    await server.start()
    yield server
    await server.stop()
    await store.close()


async def test_ocpp_session_is_billed_from_the_store(cs: CentralSystem) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    await cs.set_id_tag("TAG-U101")
    client = await raw_client(cs, "MF-P1-01")
    boot = await client.call("BootNotification", {"chargePointVendor": "ExampleCharge", "chargePointModel": "Share 40"})
    assert boot[2]["status"] == "Accepted"
    start = await client.call(
        "StartTransaction",
        {"connectorId": 1, "idTag": "TAG-U101", "meterStart": 1_000_000, "timestamp": "2026-10-14T22:30:00Z"},
    )
    tx = start[2]["transactionId"]
    samples = [("2026-10-14T22:57:00Z", 1_003_240), ("2026-10-14T23:07:00Z", 1_004_440)]
    for ts, wh in samples:
        values = {"connectorId": 1, "transactionId": tx, "meterValue": [meter(ts, wh)]}
        assert (await client.call("MeterValues", values))[0] == 3
    assert (await client.call("MeterValues", values))[0] == 3  # resent: must not count twice
    signed = {
        "timestamp": "2026-10-14T23:45:00Z",
        "sampledValue": [
            {"value": sign(PAYLOAD, key), "format": "SignedData", "measurand": ENERGY, "context": "Transaction.End"}
        ],
    }
    stop = {
        "transactionId": tx,
        "meterStop": 1_009_000,
        "timestamp": "2026-10-14T23:45:00Z",
        "reason": "EVDisconnected",
        "transactionData": [meter("2026-10-14T23:45:00Z", 1_009_000), signed],
    }
    assert (await client.call("StopTransaction", stop))[0] == 3
    await client.ws.close()

    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    result = await bill_month(cs.store.engine, cs.site, "2026-10", public_keys={"MF-P1-01": public.hex()})
    (statement,) = result.run.statements
    assert statement.unit_id == "U101"
    assert [(ln.kind, ln.quantity, ln.amount) for ln in statement.lines] == [
        ("energy", Decimal("3.6"), Decimal("0.90")),
        ("energy", Decimal("5.4"), Decimal("2.43")),
        ("session_fee", Decimal(1), Decimal("0.25")),
        ("tax", Decimal("3.58"), Decimal("0.26")),
    ]
    assert statement.total == Decimal("3.84") and statement.energy_wh == 9_000
    (entry,) = statement.sessions
    assert entry.billable and entry.key == f"MF-P1-01#{tx}"
    assert entry.signed == "verified"  # the OCMF end reading, stored verbatim by the server, checks out
