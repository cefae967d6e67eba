"""Charging sessions with filters, and their CSV export."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import OperationalError, ProgrammingError

from evsite.api import auth, deps
from evsite.api.live import LiveState, SessionRecord
from evsite.api.problems import PROBLEM_RESPONSES
from evsite.api.runtime import SessionFactory
from evsite.csvsafe import SafeDictWriter

router = APIRouter(prefix="/api/v1/sessions", tags=["sessions"], responses=PROBLEM_RESPONSES)


class SessionView(BaseModel):
    transaction_id: int
    charger: str
    connector_id: int
    id_tag: str | None
    unit: str | None
    started_at: datetime
    stopped_at: datetime | None
    state: Literal["active", "completed"]
    energy_wh: float | None
    stop_reason: str | None


class SessionFilter(BaseModel):
    charger: str | None = None
    unit: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    state: Literal["active", "completed"] | None = None
    limit: int = 500


def session_filter(
    charger: Annotated[str | None, Query(max_length=48)] = None,
    unit: Annotated[str | None, Query(max_length=48)] = None,
    since: Annotated[datetime | None, Query(description="Sessions started at or after (UTC if no zone).")] = None,
    until: Annotated[datetime | None, Query(description="Sessions started before (UTC if no zone).")] = None,
    state: Literal["active", "completed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
) -> SessionFilter:
    return SessionFilter(
        charger=charger, unit=unit, since=deps.aware(since), until=deps.aware(until), state=state, limit=limit
    )


def _view(live: LiveState, record: SessionRecord) -> SessionView:
    energy = record.energy_wh
    if record.stopped_at is None:
        connector = live.connectors.get((record.charge_point_id, record.connector_id))
        if connector is not None and connector.transaction_id == record.transaction_id:
            energy = connector.session_wh
    unit = live.site.tag_unit(record.id_tag, record.started_at.date()) if record.id_tag else None
    return SessionView(
        transaction_id=record.transaction_id,
        charger=record.charge_point_id,
        connector_id=record.connector_id,
        id_tag=record.id_tag,
        unit=unit,
        started_at=record.started_at,
        stopped_at=record.stopped_at,
        state="active" if record.stopped_at is None else "completed",
        energy_wh=None if energy is None else round(energy, 1),
        stop_reason=record.reason,
    )


def _matches(view: SessionView, query: SessionFilter) -> bool:
    return (query.unit is None or view.unit == query.unit) and (query.state is None or view.state == query.state)


def select_live_sessions(live: LiveState, query: SessionFilter) -> list[SessionView]:
    """Sessions this process has seen (newest first): used when there is no session store."""
    out = []
    for record in sorted(live.sessions.values(), key=lambda r: r.started_at, reverse=True):
        if query.charger is not None and record.charge_point_id != query.charger:
            continue
        if query.since is not None and record.started_at < query.since:
            continue
        if query.until is not None and record.started_at >= query.until:
            continue
        view = _view(live, record)
        if _matches(view, query):
            out.append(view)
            if len(out) >= query.limit:
                break
    return out


async def select_stored_sessions(db: SessionFactory, live: LiveState, query: SessionFilter) -> list[SessionView]:
    """Sessions from the project database (they survive restarts and include replayed runs), newest first."""
    from evsite.store.models import Transaction

    stmt = select(Transaction).order_by(Transaction.start_time.desc(), Transaction.id.desc())
    if query.charger is not None:
        stmt = stmt.where(Transaction.charger_id == query.charger)
    if query.since is not None:
        stmt = stmt.where(Transaction.start_time >= query.since)
    if query.until is not None:
        stmt = stmt.where(Transaction.start_time < query.until)
    if query.state == "active":
        stmt = stmt.where(Transaction.stop_time.is_(None))
    elif query.state == "completed":
        stmt = stmt.where(Transaction.stop_time.is_not(None))
    if query.unit is None:
        stmt = stmt.limit(query.limit)  # the unit comes from the tag history, so it is filtered below
    out = []
    async with db() as session:
        for row in (await session.execute(stmt)).scalars():
            record = SessionRecord(
                transaction_id=row.id, charge_point_id=row.charger_id, connector_id=row.connector_id,
                id_tag=row.id_tag, started_at=row.start_time, start_wh=float(row.meter_start),
                stopped_at=row.stop_time, stop_wh=None if row.meter_stop is None else float(row.meter_stop),
                reason=row.stop_reason,
            )  # fmt: skip
            view = _view(live, record)
            if _matches(view, query):
                out.append(view)
                if len(out) >= query.limit:
                    break
    return out


async def select_sessions(request: Request, query: SessionFilter) -> list[SessionView]:
    """Stored sessions, plus any this process saw that are not (yet) in the store, newest first."""
    runtime, live = deps.runtime(request), deps.live(request)
    stored: list[SessionView] = []
    if runtime.db is not None:
        try:
            stored = await select_stored_sessions(runtime.db, live, query)
        except (OperationalError, ProgrammingError):  # a database without the OCPP tables (design-time use)
            stored = []
    known = {view.transaction_id for view in stored}
    recent = [view for view in select_live_sessions(live, query) if view.transaction_id not in known]
    merged = sorted([*stored, *recent], key=lambda v: (v.started_at, v.transaction_id), reverse=True)
    return merged[: query.limit]


@router.get("", dependencies=[auth.viewer], summary="Sessions, newest first")
async def list_sessions(request: Request, query: SessionFilter = Depends(session_filter)) -> list[SessionView]:
    return await select_sessions(request, query)


@router.get(
    ".csv",
    dependencies=[auth.viewer],
    summary="Sessions as CSV (same filters)",
    responses={200: {"content": {"text/csv": {}}}},
)
async def sessions_csv(request: Request, query: SessionFilter = Depends(session_filter)) -> Response:
    buffer = io.StringIO()
    fields = list(SessionView.model_fields)
    writer = SafeDictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    for view in await select_sessions(request, query):
        writer.writerow(view.model_dump(mode="json"))
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="sessions.csv"'},
    )
