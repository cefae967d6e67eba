"""Repository of the OCPP central system: every write goes through the group committer.

Methods that record what a charger told us return only after the data is committed, so a
handler can answer the charger knowing the message survives a crash. Transaction starts are
idempotent: the same (charger, connector, start time, meter start) always maps to the same
transaction id, which is how a charger's resent StartTransaction gets the id it missed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from evsite.runtime.events import utcnow
from evsite.store import models as m
from evsite.store import samples as sv
from evsite.store.base import table_of
from evsite.store.db import create_engine, migrate
from evsite.store.writer import GroupCommitter, insert_ignore

CHARGERS = table_of(m.Charger)
BOOTS = table_of(m.BootRecord)
CONNECTORS = table_of(m.ConnectorState)
STATUS = table_of(m.StatusRecord)
CONFIG = table_of(m.ConfigurationValue)
ID_TAGS = table_of(m.IdTag)
TRANSACTIONS = table_of(m.Transaction)
PROFILES = table_of(m.ChargingProfileRecord)
RESERVATIONS = table_of(m.Reservation)
FIRMWARE = table_of(m.FirmwareEvent)
FLAGS = table_of(m.DataFlag)
STATION_TX = table_of(m.StationTransaction)


async def _upsert(conn: AsyncConnection, table: Table, row: dict[str, Any], keys: Sequence[str]) -> None:
    """Insert or update by primary key, portable across SQLite and PostgreSQL."""
    where = [table.c[k] == row[k] for k in keys]
    result = await conn.execute(update(table).where(*where).values(**{k: v for k, v in row.items() if k not in keys}))
    if result.rowcount == 0:
        await conn.execute(table.insert().values(**row))


class OcppStore:
    """Persistence for the OCPP server (SQLite or PostgreSQL)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.writer = GroupCommitter(engine)
        self.samples = sv.SampleWriter()

    @classmethod
    async def open(cls, url: str, *, schema: str | None = None, synchronous: str = "FULL") -> OcppStore:
        """Connect, migrate to the latest schema and start the writer."""
        engine = create_engine(url, schema=schema, synchronous=synchronous)
        await migrate(engine)
        store = cls(engine)
        store.writer.start()
        return store

    async def close(self) -> None:
        await self.writer.stop()
        await self.engine.dispose()

    async def _read(self, stmt: Any) -> list[Any]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(stmt)).all())

    # ------------------------------------------------------------------ chargers

    async def register_site_chargers(self, chargers: Iterable[tuple[str, str | None]]) -> None:
        """Mark the site's chargers as known (and keep their password hashes current)."""
        rows = list(chargers)

        async def op(conn: AsyncConnection) -> None:
            for cp_id, password_hash in rows:
                found = (await conn.execute(select(CHARGERS.c.id).where(CHARGERS.c.id == cp_id))).first()
                values: dict[str, Any] = {"in_site": True}
                if password_hash:
                    values["password_hash"] = password_hash
                if found:
                    await conn.execute(update(CHARGERS).where(CHARGERS.c.id == cp_id).values(**values))
                else:
                    await conn.execute(
                        CHARGERS.insert().values(
                            id=cp_id, registration_status="Accepted", local_list_version=0, **values
                        )
                    )

        await self.writer.run(op)

    async def charger(self, cp_id: str) -> dict[str, Any] | None:
        rows = await self._read(select(CHARGERS).where(CHARGERS.c.id == cp_id))
        return dict(rows[0]._mapping) if rows else None

    async def chargers(self) -> list[dict[str, Any]]:
        return [dict(r._mapping) for r in await self._read(select(CHARGERS).order_by(CHARGERS.c.id))]

    async def record_boot(self, cp_id: str, payload: dict[str, Any], status: str, at: datetime) -> None:
        row = {
            "id": cp_id,
            "registration_status": status,
            "vendor": payload.get("chargePointVendor"),
            "model": payload.get("chargePointModel"),
            "serial_number": payload.get("chargePointSerialNumber"),
            "charge_box_serial_number": payload.get("chargeBoxSerialNumber"),
            "firmware_version": payload.get("firmwareVersion"),
            "iccid": payload.get("iccid"),
            "imsi": payload.get("imsi"),
            "meter_type": payload.get("meterType"),
            "meter_serial_number": payload.get("meterSerialNumber"),
            "last_boot_at": at,
            "last_seen_at": at,
        }

        async def op(conn: AsyncConnection) -> None:
            await _upsert(conn, CHARGERS, row, ["id"])
            await conn.execute(BOOTS.insert().values(charger_id=cp_id, at=at, payload=payload))

        await self.writer.run(op)

    async def touch(self, cp_id: str, at: datetime) -> None:
        async def op(conn: AsyncConnection) -> None:
            await conn.execute(update(CHARGERS).where(CHARGERS.c.id == cp_id).values(last_seen_at=at))

        await self.writer.run(op)

    async def set_charger_fields(self, cp_id: str, **values: Any) -> None:
        async def op(conn: AsyncConnection) -> None:
            await _upsert(conn, CHARGERS, {"id": cp_id, **values}, ["id"])

        await self.writer.run(op)

    # ------------------------------------------------------------------ status, configuration, firmware

    async def record_status(
        self, cp_id: str, payload: dict[str, Any], timestamp: datetime | None, at: datetime
    ) -> None:
        connector_id = payload["connectorId"]
        state = {
            "charger_id": cp_id,
            "connector_id": connector_id,
            "status": payload["status"],
            "error_code": payload["errorCode"],
            "info": payload.get("info"),
            "vendor_error_code": payload.get("vendorErrorCode"),
            "updated_at": timestamp or at,
        }
        history = {
            **state,
            "vendor_id": payload.get("vendorId"),
            "timestamp": timestamp,
            "received_at": at,
        }
        del history["updated_at"]

        async def op(conn: AsyncConnection) -> None:
            await _upsert(conn, CONNECTORS, state, ["charger_id", "connector_id"])
            await conn.execute(STATUS.insert().values(**history))

        await self.writer.run(op)

    async def connectors(self, cp_id: str | None = None) -> list[dict[str, Any]]:
        stmt = select(CONNECTORS).order_by(CONNECTORS.c.charger_id, CONNECTORS.c.connector_id)
        if cp_id is not None:
            stmt = stmt.where(CONNECTORS.c.charger_id == cp_id)
        return [dict(r._mapping) for r in await self._read(stmt)]

    async def save_configuration(self, cp_id: str, keys: list[dict[str, Any]], at: datetime) -> None:
        async def op(conn: AsyncConnection) -> None:
            for item in keys:
                row = {
                    "charger_id": cp_id,
                    "key": item["key"],
                    "value": item.get("value"),
                    "readonly": bool(item.get("readonly", False)),
                    "read_at": at,
                }
                await _upsert(conn, CONFIG, row, ["charger_id", "key"])

        await self.writer.run(op)

    async def configuration(self, cp_id: str) -> dict[str, str | None]:
        rows = await self._read(select(CONFIG.c.key, CONFIG.c.value).where(CONFIG.c.charger_id == cp_id))
        return {r.key: r.value for r in rows}

    async def record_firmware(self, cp_id: str, kind: str, status: str, detail: str | None = None) -> None:
        column = "firmware_status" if kind == "firmware" else "diagnostics_status"

        async def op(conn: AsyncConnection) -> None:
            at = utcnow()
            await conn.execute(
                FIRMWARE.insert().values(charger_id=cp_id, kind=kind, status=status, detail=detail, at=at)
            )
            await conn.execute(update(CHARGERS).where(CHARGERS.c.id == cp_id).values(**{column: status}))

        await self.writer.run(op)

    # ------------------------------------------------------------------ id tags

    async def upsert_id_tags(self, tags: Iterable[dict[str, Any]]) -> None:
        rows = list(tags)

        async def op(conn: AsyncConnection) -> None:
            for row in rows:
                await _upsert(conn, ID_TAGS, row, ["id_tag"])

        await self.writer.run(op)

    async def id_tags(self) -> dict[str, dict[str, Any]]:
        return {r.id_tag: dict(r._mapping) for r in await self._read(select(ID_TAGS))}

    # ------------------------------------------------------------------ transactions and meter values

    async def start_transaction(
        self,
        cp_id: str,
        connector_id: int,
        id_tag: str,
        auth_status: str,
        meter_start: int,
        start_time: datetime,
        reservation_id: int | None,
    ) -> int:
        """The transaction id for this start; the same id again when the start is a resend."""
        row = {
            "charger_id": cp_id,
            "connector_id": connector_id,
            "id_tag": id_tag,
            "auth_status": auth_status,
            "meter_start": meter_start,
            "start_time": start_time,
            "reservation_id": reservation_id,
            "received_at": utcnow(),
        }

        async def op(conn: AsyncConnection) -> tuple[int, sv.Ids]:
            await conn.execute(insert_ignore(conn, TRANSACTIONS).values(**row))
            found = await conn.execute(
                select(TRANSACTIONS.c.id).where(
                    TRANSACTIONS.c.charger_id == cp_id,
                    TRANSACTIONS.c.connector_id == connector_id,
                    TRANSACTIONS.c.start_time == start_time,
                    TRANSACTIONS.c.meter_start == meter_start,
                )
            )
            tx_id = int(found.scalar_one())
            if reservation_id is not None:
                await conn.execute(
                    update(RESERVATIONS)
                    .where(RESERVATIONS.c.id == reservation_id, RESERVATIONS.c.charger_id == cp_id)
                    .values(status="Used")
                )
            # the transaction's meter series, so its samples need no look-up
            key = (cp_id, connector_id, tx_id)
            series = await conn.run_sync(lambda sync: sv.series_id(sync, key))
            return tx_id, sv.Ids(series={key: series})

        tx_id, ids = await self.writer.run(op)
        self.samples.remember(ids)
        return tx_id

    async def stop_transaction(
        self,
        cp_id: str,
        transaction_id: int,
        meter_stop: int,
        stop_time: datetime,
        reason: str | None,
        id_tag: str | None,
        meter_rows: Sequence[dict[str, Any]] = (),
    ) -> dict[str, Any] | None:
        """Close a transaction once (a resent stop changes nothing); returns its row, None if unknown."""

        async def op(conn: AsyncConnection) -> tuple[dict[str, Any] | None, sv.Ids]:
            where = (TRANSACTIONS.c.id == transaction_id, TRANSACTIONS.c.charger_id == cp_id)
            await conn.execute(
                update(TRANSACTIONS)
                .where(*where, TRANSACTIONS.c.stop_time.is_(None))
                .values(meter_stop=meter_stop, stop_time=stop_time, stop_reason=reason, stop_id_tag=id_tag)
            )
            found = (await conn.execute(select(TRANSACTIONS).where(*where))).first()
            ids = sv.Ids()
            if meter_rows:
                # Key the samples by the transaction's own connector, so a resend is recognised.
                connector = found.connector_id if found else None
                rows = [dict(r, connector_id=connector) if connector is not None else r for r in meter_rows]
                ids = await conn.run_sync(lambda sync: self.samples.write(sync, rows))
            return (dict(found._mapping) if found else None), ids

        stopped, ids = await self.writer.run(op)
        self.samples.remember(ids)
        return stopped

    # ------------------------------------------------------------------ OCPP 2.0.1 transaction ids

    async def link_station_transaction(self, cp_id: str, station_tx_id: str, transaction_id: int) -> None:
        """Remember which of our transactions a 2.0.1 station's transactionId names (idempotent)."""
        row = {"charger_id": cp_id, "station_tx_id": station_tx_id, "transaction_id": transaction_id}
        await self.writer.insert_ignore(STATION_TX, [row])

    async def station_transaction(self, cp_id: str, station_tx_id: str) -> dict[str, Any] | None:
        """Our transaction row for a 2.0.1 station's transactionId (None if we never saw it)."""
        rows = await self._read(
            select(TRANSACTIONS)
            .join(STATION_TX, STATION_TX.c.transaction_id == TRANSACTIONS.c.id)
            .where(STATION_TX.c.charger_id == cp_id, STATION_TX.c.station_tx_id == station_tx_id)
        )
        return dict(rows[0]._mapping) if rows else None

    async def station_transaction_ids(self, cp_id: str) -> dict[int, str]:
        """Our transaction id → the station's transactionId, for a 2.0.1 station's open transactions."""
        rows = await self._read(
            select(STATION_TX.c.transaction_id, STATION_TX.c.station_tx_id)
            .join(TRANSACTIONS, STATION_TX.c.transaction_id == TRANSACTIONS.c.id)
            .where(STATION_TX.c.charger_id == cp_id, TRANSACTIONS.c.stop_time.is_(None))
        )
        return {r.transaction_id: r.station_tx_id for r in rows}

    async def add_meter_values(self, rows: Sequence[dict[str, Any]], flags: Sequence[dict[str, Any]] = ()) -> None:
        """Store sampled values (rows as `meter_values` returns them) and their plausibility flags in one
        transaction; returns once committed."""
        elements = sv.encode(rows)
        flag_rows = [{**r, "received_at": utcnow()} for r in flags]
        if not elements:
            await self.writer.insert_ignore(FLAGS, flag_rows)
            return
        if self.samples.known(elements):  # the usual case: shares one executemany with the batch
            samples, texts = self.samples.rows(elements)
            await self.writer.insert_ignore_many({sv.SAMPLES: samples, sv.TEXTS: texts, FLAGS: flag_rows})
            return

        async def op(conn: AsyncConnection) -> sv.Ids:
            if flag_rows:
                await conn.execute(FLAGS.insert(), flag_rows)
            return await conn.run_sync(lambda sync: self.samples.write_elements(sync, elements))

        self.samples.remember(await self.writer.run(op))

    async def open_transactions(self, cp_id: str) -> dict[int, int]:
        """Connector id → id of its transaction that has not stopped."""
        rows = await self._read(
            select(TRANSACTIONS.c.connector_id, TRANSACTIONS.c.id)
            .where(TRANSACTIONS.c.charger_id == cp_id, TRANSACTIONS.c.stop_time.is_(None))
            .order_by(TRANSACTIONS.c.id)
        )
        return {r.connector_id: r.id for r in rows}

    async def open_transaction_tags(self, cp_id: str) -> dict[int, str]:
        """Connector id → id tag of its transaction that has not stopped."""
        rows = await self._read(
            select(TRANSACTIONS.c.connector_id, TRANSACTIONS.c.id_tag)
            .where(TRANSACTIONS.c.charger_id == cp_id, TRANSACTIONS.c.stop_time.is_(None))
            .order_by(TRANSACTIONS.c.id)
        )
        return {r.connector_id: r.id_tag for r in rows}

    async def transactions(self, cp_id: str | None = None) -> list[dict[str, Any]]:
        """Transactions with `flags`: the codes of the plausibility flags raised on them (sorted, unique)."""
        stmt = select(TRANSACTIONS).order_by(TRANSACTIONS.c.id)
        flag_stmt = select(FLAGS.c.transaction_id, FLAGS.c.code).where(FLAGS.c.transaction_id.is_not(None))
        if cp_id is not None:
            stmt = stmt.where(TRANSACTIONS.c.charger_id == cp_id)
            flag_stmt = flag_stmt.where(FLAGS.c.charger_id == cp_id)
        codes: dict[int, set[str]] = {}
        for r in await self._read(flag_stmt.distinct()):
            codes.setdefault(r.transaction_id, set()).add(r.code)
        return [dict(r._mapping, flags=sorted(codes.get(r.id, ()))) for r in await self._read(stmt)]

    async def transaction_owner(self, transaction_id: int) -> str | None:
        """The charger that started a transaction (None if no such transaction)."""
        rows = await self._read(select(TRANSACTIONS.c.charger_id).where(TRANSACTIONS.c.id == transaction_id))
        return str(rows[0].charger_id) if rows else None

    async def add_flags(self, rows: Sequence[dict[str, Any]]) -> None:
        """Store plausibility flags (rows as `plausibility.Flag.row` builds them); returns once committed."""
        at = utcnow()
        await self.writer.insert_ignore(FLAGS, [{**r, "received_at": at} for r in rows])

    async def flags(self, cp_id: str | None = None, transaction_id: int | None = None) -> list[dict[str, Any]]:
        stmt = select(FLAGS).order_by(FLAGS.c.id)
        if cp_id is not None:
            stmt = stmt.where(FLAGS.c.charger_id == cp_id)
        if transaction_id is not None:
            stmt = stmt.where(FLAGS.c.transaction_id == transaction_id)
        return [dict(r._mapping) for r in await self._read(stmt)]

    async def meter_values(self, cp_id: str | None = None) -> list[dict[str, Any]]:
        """Every stored sampled value (of one charger), decoded, in arrival order."""
        async with self.engine.connect() as conn:
            return await conn.run_sync(lambda sync: sv.read_values(sync, cp_id))

    # ------------------------------------------------------------------ smart charging, reservations

    async def record_profile(
        self, cp_id: str, connector_id: int, profile: dict[str, Any], limit: float, status: str
    ) -> None:
        schedule = profile["chargingSchedule"]
        if isinstance(schedule, list):  # OCPP 2.0.1: a list of schedules, the profile id in `id`
            schedule = schedule[0]
        row = {
            "charger_id": cp_id,
            "connector_id": connector_id,
            "profile_id": profile["chargingProfileId"] if "chargingProfileId" in profile else profile["id"],
            "stack_level": profile["stackLevel"],
            "purpose": profile["chargingProfilePurpose"],
            "rate_unit": schedule["chargingRateUnit"],
            "limit": limit,
            "payload": profile,
            "sent_at": utcnow(),
            "status": status,
        }
        await self.writer.insert_ignore(PROFILES, [row])  # rows of a batch share one executemany

    async def profiles(self, cp_id: str | None = None) -> list[dict[str, Any]]:
        stmt = select(PROFILES).order_by(PROFILES.c.id)
        if cp_id is not None:
            stmt = stmt.where(PROFILES.c.charger_id == cp_id)
        return [dict(r._mapping) for r in await self._read(stmt)]

    async def create_reservation(
        self, cp_id: str, connector_id: int, id_tag: str, parent_id_tag: str | None, expiry: datetime
    ) -> int:
        async def op(conn: AsyncConnection) -> int:
            result = await conn.execute(
                RESERVATIONS.insert().values(
                    charger_id=cp_id,
                    connector_id=connector_id,
                    id_tag=id_tag,
                    parent_id_tag=parent_id_tag,
                    expiry_date=expiry,
                    status="Pending",
                    created_at=utcnow(),
                )
            )
            assert result.inserted_primary_key is not None
            return int(result.inserted_primary_key[0])

        return await self.writer.run(op)

    async def set_reservation_status(self, reservation_id: int, status: str) -> None:
        async def op(conn: AsyncConnection) -> None:
            await conn.execute(update(RESERVATIONS).where(RESERVATIONS.c.id == reservation_id).values(status=status))

        await self.writer.run(op)

    async def reservations(self, cp_id: str) -> list[dict[str, Any]]:
        stmt = select(RESERVATIONS).where(RESERVATIONS.c.charger_id == cp_id).order_by(RESERVATIONS.c.id)
        return [dict(r._mapping) for r in await self._read(stmt)]
