"""Accessors for the per-app objects routes need (kept on `app.state`)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import Request

from evsite.api.live import LiveState
from evsite.api.problems import not_found
from evsite.api.runtime import SiteRuntime
from evsite.site.model import Evse


def live(request: Request) -> LiveState:
    state: LiveState = request.app.state.live
    return state


def runtime(request: Request) -> SiteRuntime:
    value: SiteRuntime = request.app.state.runtime
    return value


def evse_or_404(request: Request, charge_point_id: str) -> Evse:
    for evse in runtime(request).site.evse:
        if evse.id == charge_point_id:
            return evse
    raise not_found(f"charger {charge_point_id!r}")


def connector_or_404(request: Request, charge_point_id: str, connector_id: int) -> Evse:
    evse = evse_or_404(request, charge_point_id)
    if all(c.id != connector_id for c in evse.connectors):
        raise not_found(f"connector {connector_id} of charger {charge_point_id!r}")
    return evse


def aware(value: datetime | None) -> datetime | None:
    """Timestamps without a zone are read as UTC, so comparisons never mix naive and aware values."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
