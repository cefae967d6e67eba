"""Charging sessions with filters, and their CSV export."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from evsite.api import auth, deps
from evsite.api.live import LiveState, SessionRecord
from evsite.api.problems import PROBLEM_RESPONSES

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


def select_sessions(live: LiveState, query: SessionFilter) -> list[SessionView]:
    """Newest first, matching every given filter."""
    out = []
    for record in sorted(live.sessions.values(), key=lambda r: r.started_at, reverse=True):
        if query.charger is not None and record.charge_point_id != query.charger:
            continue
        if query.since is not None and record.started_at < query.since:
            continue
        if query.until is not None and record.started_at >= query.until:
            continue
        view = _view(live, record)
        if query.unit is not None and view.unit != query.unit:
            continue
        if query.state is not None and view.state != query.state:
            continue
        out.append(view)
        if len(out) >= query.limit:
            break
    return out


@router.get("", dependencies=[auth.viewer], summary="Sessions, newest first")
async def list_sessions(request: Request, query: SessionFilter = Depends(session_filter)) -> list[SessionView]:
    return select_sessions(deps.live(request), query)


@router.get(
    ".csv",
    dependencies=[auth.viewer],
    summary="Sessions as CSV (same filters)",
    responses={200: {"content": {"text/csv": {}}}},
)
async def sessions_csv(request: Request, query: SessionFilter = Depends(session_filter)) -> Response:
    buffer = io.StringIO()
    fields = list(SessionView.model_fields)
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    for view in select_sessions(deps.live(request), query):
        writer.writerow(view.model_dump(mode="json"))
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="sessions.csv"'},
    )
