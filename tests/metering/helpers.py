"""Builders for hand-made sessions on the multifamily example (America/Los_Angeles; PDT = UTC−7 in October)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from evsite.metering.sessions import Reading, Session, TransactionRecord, build_session
from evsite.site import Site, load_site
from evsite.site.model import Tariff
from evsite.store.samples import SampleWriter, read_values

EXAMPLE = Path(__file__).resolve().parents[2] / "src" / "evsite" / "examples" / "multifamily-30.yaml"
MAX_W = 40 * 208.0  # a 40 A charger on 208 V


def site(**tariff_changes: object) -> Site:
    """The multifamily example, its tariff changed where a test needs it."""
    base = load_site(EXAMPLE)
    assert base.tariff is not None
    tariff = Tariff.model_validate(base.tariff.model_dump() | tariff_changes)
    return base.model_copy(update={"tariff": tariff})


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def session(
    charger: str, tag: str, tx: str, points: list[tuple[str, int]], stop: bool = True, gap_s: float = 3600
) -> Session:
    """A session from (UTC time, register Wh) points: first = start message, last = stop message."""
    first, *middle = points
    last = middle.pop() if stop else None
    record = TransactionRecord(
        charger_id=charger,
        transaction_id=tx,
        connector_id=1,
        id_tag=tag,
        start_at=utc(first[0]),
        start_wh=Decimal(first[1]),
        stop_at=utc(last[0]) if last else None,
        stop_wh=Decimal(last[1]) if last else None,
    )
    readings = [Reading(utc(t), Decimal(wh)) for t, wh in middle]
    return build_session(record, readings, MAX_W, gap_s=gap_s)


async def store_samples(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Store sampled-value rows the way the OCPP server does (compact sample tables), in conn's transaction."""
    await conn.run_sync(lambda sync: SampleWriter().write(sync, rows))


async def stored_values(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Every stored sampled value, decoded, in arrival order."""
    return await conn.run_sync(lambda sync: read_values(sync))
