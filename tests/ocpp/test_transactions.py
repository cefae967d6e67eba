"""Transactions, idempotent resends, authorization and unknown chargers over real sockets."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from evsite.ocpp.server import CentralSystem, ServerSettings
from evsite.runtime.events import ChargerConnected
from evsite.site import Site, load_site_text
from evsite.store.ocpp import OcppStore

from .conftest import EXAMPLES, RawClient, raw_client, stub_answer, url

T0 = "2026-03-01T08:00:00.000Z"


def meter(ts: str, wh: int) -> dict:
    return {"timestamp": ts, "sampledValue": [{"value": str(wh), "measurand": "Energy.Active.Import.Register"}]}


async def test_resent_transaction_messages_are_idempotent(cs: CentralSystem) -> None:
    await cs.set_id_tag("CARD-7")
    client = await raw_client(cs, "WP-03")
    start = {"connectorId": 1, "idTag": "CARD-7", "meterStart": 100, "timestamp": T0}
    first = await client.call("StartTransaction", start)
    tx = first[2]["transactionId"]
    # The charger lost the answer and reconnects: the resend gets the same transaction id.
    await client.ws.close()
    client = await raw_client(cs, "WP-03")
    again = await client.call("StartTransaction", start)
    assert again[2]["transactionId"] == tx
    values = {"connectorId": 1, "transactionId": tx, "meterValue": [meter("2026-03-01T08:01:00Z", 400)]}
    for _ in range(3):
        assert (await client.call("MeterValues", values))[0] == 3
    stop = {
        "transactionId": tx,
        "meterStop": 900,
        "timestamp": "2026-03-01T09:00:00Z",
        "reason": "EVDisconnected",
        "transactionData": [meter("2026-03-01T09:00:00Z", 900)],
    }
    for _ in range(2):
        assert (await client.call("StopTransaction", stop))[0] == 3
    # A different start on the same connector is a new transaction.
    other = await client.call("StartTransaction", {**start, "timestamp": "2026-03-01T10:00:00Z", "meterStart": 900})
    assert other[2]["transactionId"] != tx

    rows = await cs.store.transactions("WP-03")
    assert next((r["id"], r["meter_stop"], r["stop_reason"]) for r in rows) == (tx, 900, "EVDisconnected")
    assert len(rows) == 2
    samples = await cs.store.meter_values("WP-03")
    assert sorted(s["value"] for s in samples) == ["400", "900"]


async def test_id_tag_status_expiry_and_parent(cs: CentralSystem) -> None:
    past = datetime.now(UTC) - timedelta(days=1)
    future = datetime.now(UTC) + timedelta(days=30)
    await cs.set_id_tag("OLD", expiry=past)
    await cs.set_id_tag("FLEET-1", expiry=future, parent_id_tag="FLEET")
    await cs.set_id_tag("LOST", status="Blocked")
    client = await raw_client(cs, "WP-04")
    infos = {
        tag: (await client.call("Authorize", {"idTag": tag}))[2]["idTagInfo"]
        for tag in ("OLD", "FLEET-1", "LOST", "??")
    }
    assert infos["OLD"]["status"] == "Expired"
    assert infos["FLEET-1"]["status"] == "Accepted" and infos["FLEET-1"]["parentIdTag"] == "FLEET"
    assert datetime.fromisoformat(infos["FLEET-1"]["expiryDate"]) > datetime.now(UTC)
    assert infos["LOST"]["status"] == "Blocked"
    assert infos["??"]["status"] == "Invalid"
    # An unauthorized start still gets a transaction id (the charger then stops it), with the status.
    answer = await client.call(
        "StartTransaction", {"connectorId": 1, "idTag": "LOST", "meterStart": 0, "timestamp": T0}
    )
    assert answer[2]["idTagInfo"]["status"] == "Blocked" and answer[2]["transactionId"] > 0


async def test_local_list_and_reservation(cs: CentralSystem) -> None:
    await cs.set_id_tag("CARD-1")
    client = await raw_client(cs, "WP-05")
    session = cs.session("WP-05")
    task = asyncio.create_task(session.send_local_list())
    call = await client.recv()
    assert call[2] == "SendLocalList" and call[3]["listVersion"] == 1 and call[3]["updateType"] == "Full"
    assert {"idTag": "CARD-1", "idTagInfo": {"status": "Accepted"}} in call[3]["localAuthorizationList"]
    await client.send([3, call[1], {"status": "Accepted"}])
    assert await task == "Accepted"
    assert (await cs.store.charger("WP-05"))["local_list_version"] == 1

    expiry = datetime.now(UTC) + timedelta(minutes=15)
    task2 = asyncio.create_task(session.reserve_now(1, "CARD-1", expiry))
    call = await client.recv()
    assert call[2] == "ReserveNow"
    await client.send([3, call[1], {"status": "Accepted"}])
    reservation_id, status = await task2
    assert status == "Accepted" and call[3]["reservationId"] == reservation_id
    start = {"connectorId": 1, "idTag": "CARD-1", "meterStart": 0, "timestamp": T0, "reservationId": reservation_id}
    await client.call("StartTransaction", start)
    assert (await cs.store.reservations("WP-05"))[0]["status"] == "Used"


async def test_firmware_and_diagnostics_status_stored(cs: CentralSystem) -> None:
    client = await raw_client(cs, "WP-06")
    assert (await client.call("FirmwareStatusNotification", {"status": "Downloading"}))[0] == 3
    assert (await client.call("DiagnosticsStatusNotification", {"status": "Uploaded"}))[0] == 3
    row = await cs.store.charger("WP-06")
    assert row["firmware_status"] == "Downloading" and row["diagnostics_status"] == "Uploaded"


async def test_unknown_charger_registration(store: OcppStore, workplace: Site) -> None:
    settings = ServerSettings(port=0, accept_unknown=True, unknown_status="Pending")
    async with CentralSystem(store, workplace, settings=settings) as cs:
        client = await raw_client(cs, "GUEST-1")
        boot = await client.call("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
        assert boot[2]["status"] == "Pending"
        assert (await cs.store.charger("GUEST-1"))["registration_status"] == "Pending"
    async with CentralSystem(store, workplace, settings=ServerSettings(port=0)) as cs:
        # Known from the store now, so it may connect even with unknown chargers refused...
        async with connect(url(cs, "GUEST-1"), subprotocols=["ocpp1.6"], open_timeout=5) as ws:
            boot = await RawClient(ws).call("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
            assert boot[2]["status"] == "Pending"  # ...but stays unaccepted until an operator accepts it
            await cs.set_registration("GUEST-1", "Accepted")
            boot = await RawClient(ws).call("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
            assert boot[2]["status"] == "Accepted"
        with pytest.raises(InvalidStatus):
            await connect(url(cs, "GUEST-2"), subprotocols=["ocpp1.6"], open_timeout=5)


async def test_idempotent_resends_on_postgres(postgres_url: str, workplace: Site) -> None:
    from .conftest import postgres_store

    async with (
        postgres_store(postgres_url) as store,
        CentralSystem(store, workplace, settings=ServerSettings(port=0)) as cs,
    ):
        await cs.set_id_tag("CARD-7")
        client = await raw_client(cs, "WP-03")
        start = {"connectorId": 1, "idTag": "CARD-7", "meterStart": 100, "timestamp": T0}
        tx = (await client.call("StartTransaction", start))[2]["transactionId"]
        assert (await client.call("StartTransaction", start))[2]["transactionId"] == tx
        values = {"connectorId": 1, "transactionId": tx, "meterValue": [meter("2026-03-01T08:01:00Z", 400)]}
        for _ in range(2):
            assert (await client.call("MeterValues", values))[0] == 3
        stop = {"transactionId": tx, "meterStop": 900, "timestamp": "2026-03-01T09:00:00Z"}
        for _ in range(2):
            assert (await client.call("StopTransaction", stop))[0] == 3
        assert [(r["id"], r["meter_stop"]) for r in await cs.store.transactions("WP-03")] == [(tx, 900)]
        assert len(await cs.store.meter_values("WP-03")) == 1


async def test_reconnect_without_boot_restores_state(cs: CentralSystem) -> None:
    """1.6J §5.4: a charger reconnecting need not boot again; its open transaction and profiles come back."""
    await cs.set_id_tag("CARD")
    client = await raw_client(cs, "WP-16")
    await client.call("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
    start = {"connectorId": 1, "idTag": "CARD", "meterStart": 0, "timestamp": T0}
    tx = (await client.call("StartTransaction", start))[2]["transactionId"]
    await client.ws.close()
    for _ in range(50):
        if "WP-16" not in cs.sessions:
            break
        await asyncio.sleep(0.02)
    client = await raw_client(cs, "WP-16")
    actions = []
    for _ in range(3):  # configuration read and set, and the fail-safe — without any BootNotification
        call = await client.recv(timeout=5)
        actions.append(call[2])
        answer = {"configurationKey": []} if call[2] == "GetConfiguration" else {"status": "Accepted"}
        await client.send([3, call[1], answer])
    assert actions == ["GetConfiguration", "ChangeConfiguration", "SetChargingProfile"]
    assert cs.session("WP-16").active_tx == {1: tx}


async def test_lift_is_renewed_and_offline_charger_detected(store: OcppStore, workplace: Site) -> None:
    settings = ServerSettings(port=0, lift_lease_s=3, ping_interval_s=0.3, ping_timeout_s=0.3, close_timeout_s=0.5)
    async with CentralSystem(store, workplace, settings=settings) as cs, cs.bus.subscribe() as events:
        client = await raw_client(cs, "WP-17")
        await client.send([2, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}])
        lifts: list[tuple[float, dict]] = []
        loop = asyncio.get_running_loop()
        setpoint: asyncio.Task[bool] | None = None
        quiet_until = None
        while quiet_until is None or loop.time() < quiet_until:
            try:
                message = await client.recv(timeout=0.5)
            except TimeoutError:
                continue
            if message[0] != 2:
                continue
            profile = message[3].get("csChargingProfiles", {})
            if message[2] == "SetChargingProfile" and profile["stackLevel"] == 0 and setpoint is None:
                # Fail-safe installed; now the load manager speaks (once), which installs the lift.
                setpoint = asyncio.create_task(cs.set_connector_limit("WP-17", 1, 40))
            if profile.get("chargingProfilePurpose") == "ChargePointMaxProfile" and profile["stackLevel"] == 1:
                lifts.append((loop.time(), profile))
                if quiet_until is None:
                    quiet_until = loop.time() + 3 + 2.5  # one lease, then a quiet spell
            answer = {"configurationKey": []} if message[2] == "GetConfiguration" else {"status": "Accepted"}
            await client.send([3, message[1], answer])
        assert setpoint is not None and await setpoint
        first = lifts[0][0]
        # Renewed while the load manager was heard from within the lease; not after it fell silent.
        assert len(lifts) >= 2 and all(t - first <= 3 + 1.2 for t, _ in lifts)
        valid_to = [datetime.fromisoformat(p["validTo"]) for _, p in lifts]
        assert valid_to == sorted(valid_to) and valid_to[-1] > valid_to[0]  # each renewal extends the lease

        # A charger that stops answering pings is declared offline.
        raw = await asyncio.open_connection("127.0.0.1", cs.port)
        reader, writer = raw
        writer.write(
            b"GET /ocpp/WP-18 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
        )
        assert b"101" in (await reader.readline())
        seen = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while loop.time() < deadline:
            event = await asyncio.wait_for(events.get(), 5)
            if isinstance(event, ChargerConnected) and event.charge_point_id == "WP-18":
                seen.append(event.connected)
                if not event.connected:
                    break
        assert seen == [True, False]
        writer.close()


async def test_tag_in_a_running_transaction_elsewhere_is_concurrent(cs: CentralSystem) -> None:
    await cs.set_id_tag("ONE-CAR")
    a = await raw_client(cs, "WP-19")
    b = await raw_client(cs, "WP-20")
    start = {"connectorId": 1, "idTag": "ONE-CAR", "meterStart": 0, "timestamp": T0}
    first = await a.call("StartTransaction", start)
    assert first[2]["idTagInfo"]["status"] == "Accepted"
    assert (await a.call("StartTransaction", start))[2]["idTagInfo"]["status"] == "Accepted"  # a resend
    other = await b.call("StartTransaction", start)
    assert other[2]["idTagInfo"]["status"] == "ConcurrentTx"
    await a.call("StopTransaction", {"transactionId": first[2]["transactionId"], "meterStop": 10, "timestamp": T0})
    later = {**start, "timestamp": "2026-03-01T09:00:00Z"}
    assert (await b.call("StartTransaction", later))[2]["idTagInfo"]["status"] == "Accepted"


async def test_open_authorization_accepts_unknown_tags_only(store: OcppStore, workplace: Site) -> None:
    async with CentralSystem(store, workplace, settings=ServerSettings(port=0, open_authorization=True)) as cs:
        await cs.set_id_tag("STOLEN", status="Blocked")
        client = await raw_client(cs, "WP-02")
        assert (await client.call("Authorize", {"idTag": "ANYONE"}))[2]["idTagInfo"]["status"] == "Accepted"
        assert (await client.call("Authorize", {"idTag": "STOLEN"}))[2]["idTagInfo"]["status"] == "Blocked"


async def test_every_lift_goes_out_after_the_idle_connectors_leases(store: OcppStore, workplace: Site) -> None:
    """#22 outage handover: a lift renewed from a setpoint must not outlive the idle connectors' TxDefaults.

    Otherwise a car arriving at an idle connector while evsite is down could take the nameplate in
    the gap. Every lift is therefore preceded by the renewal of every idle connector's TxDefault,
    whose lease (1.5 lifts) ends after the lift's.
    """
    text = (EXAMPLES / "workplace-20.yaml").read_text()
    text = text.replace("{id: WP-17, circuit: C-17,", "{id: WP-17, circuit: C-17, connectors: [{id: 1}, {id: 2}],")
    site = load_site_text(text, "two-connector.yaml")
    settings = ServerSettings(port=0, lift_lease_s=300, call_timeout_s=5.0)  # the renewer stays out of the way
    async with CentralSystem(store, site, settings=settings) as cs:
        client = await raw_client(cs, "WP-17")
        await client.send([2, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}])
        sent: list[tuple[str, int, dict]] = []

        async def answer(count: int) -> None:
            while count:
                message = await client.recv()
                if message[0] != 2:
                    continue
                if message[2] == "SetChargingProfile":
                    profile = message[3]["csChargingProfiles"]
                    sent.append((profile["chargingProfilePurpose"], message[3]["connectorId"], profile))
                    count -= 1
                await client.send([3, message[1], stub_answer(message[2])])

        await answer(1)  # the fail-safe
        await asyncio.gather(cs.set_connector_limit("WP-17", 2, 0.0), answer(3))  # setpoint, idle renewal, lift
        session = cs.session("WP-17")
        for _ in range(50):  # the lift's answer is recorded after our stub went out
            if not session._lift_pending:
                break
            await asyncio.sleep(0.02)
        session.lift_until = 0.0  # the lift is due: the next setpoint renews it
        await asyncio.gather(cs.set_connector_limit("WP-17", 1, 40.0), answer(4))

    lifts = [i for i, (purpose, _, p) in enumerate(sent) if purpose == "ChargePointMaxProfile" and p["stackLevel"] == 1]
    assert len(lifts) == 2
    for i in lifts:
        before = [p for purpose, c, p in sent[:i] if purpose == "TxDefaultProfile" and c == 2]
        assert before, "a lift went out before any lease of the idle connector"
        idle_until = datetime.fromisoformat(before[-1]["validTo"])
        assert idle_until > datetime.fromisoformat(sent[i][2]["validTo"])
        previous = max([j for j in lifts if j < i], default=-1)
        renewed = [c for purpose, c, _ in sent[previous + 1 : i] if purpose == "TxDefaultProfile"]
        assert 2 in renewed, "the idle connector's lease was not renewed with this lift"


async def test_running_transaction_profiles_are_short_lived_and_renewed_with_the_lift(
    store: OcppStore, workplace: Site
) -> None:
    """#22 late chargers: a TxProfile lapses 1.5 leases after it is sent, so one applied later is already void.

    It is renewed before every lift, and outlives that lift: a live lift over an expired TxProfile would
    leave the car its nameplate.
    """
    lease = 300.0
    settings = ServerSettings(port=0, lift_lease_s=lease, call_timeout_s=5.0)  # the renewer stays out of the way
    async with CentralSystem(store, workplace, settings=settings) as cs:
        client = await raw_client(cs, "WP-17")
        await client.send([2, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}])
        sent: list[tuple[datetime, dict]] = []

        async def answer(count: int) -> None:
            while count:
                message = await client.recv()
                if message[0] != 2:
                    continue
                if message[2] == "SetChargingProfile":
                    sent.append((datetime.now(UTC), message[3]["csChargingProfiles"]))
                    count -= 1
                await client.send([3, message[1], stub_answer(message[2])])

        await answer(1)  # the fail-safe
        start = {"connectorId": 1, "idTag": "WP-17-TAG", "meterStart": 0, "timestamp": T0}
        await cs.set_id_tag("WP-17-TAG")
        assert (await client.call("StartTransaction", start))[2]["idTagInfo"]["status"] == "Accepted"
        await asyncio.gather(cs.set_connector_limit("WP-17", 1, 40.0), answer(3))  # setpoint, its renewal, lift
        session = cs.session("WP-17")
        for _ in range(50):  # the lift's answer is recorded after our stub went out
            if not session._lift_pending:
                break
            await asyncio.sleep(0.02)
        session.lift_until = 0.0  # the lift is due: the next setpoint renews it
        await asyncio.gather(cs.set_connector_limit("WP-17", 1, 30.0), answer(3))

    tx = [(at, p) for at, p in sent if p["chargingProfilePurpose"] == "TxProfile"]
    assert len(tx) == 4
    for at, profile in tx:
        left = (datetime.fromisoformat(profile["validTo"]) - at).total_seconds()
        assert lease < left <= 1.5 * lease + 1
    lifts = [i for i, (_, p) in enumerate(sent) if p["chargingProfilePurpose"] == "ChargePointMaxProfile"][1:]
    assert len(lifts) == 2
    for i in lifts:
        renewed = sent[i - 1][1]  # the running transaction's TxProfile, renewed just before the lift
        assert renewed["chargingProfilePurpose"] == "TxProfile"
        assert datetime.fromisoformat(renewed["validTo"]) > datetime.fromisoformat(sent[i][1]["validTo"])
