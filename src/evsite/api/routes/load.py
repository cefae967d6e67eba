"""Load management: the policy in force, a temporary manual site limit, priorities and session requests.

A manual limit is published on the event bus as `SiteSignal(kind="manual_limit")`; the load manager
applies it like any other cap (the minimum of all limits on a node wins), so an operator can lower
a limit but never raise one above the electrical design. Clearing publishes the same signal with
no currents and an `until` in the past.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field, model_validator

from evsite.api import auth, deps
from evsite.api.bodies import Command, Timestamp
from evsite.api.live import ManualLimit, now
from evsite.api.problems import PROBLEM_RESPONSES, ApiProblem, not_found
from evsite.api.routes.chargers import ChargerId, ConnectorId
from evsite.api.tokens import Principal
from evsite.api.views import ManualLimitView
from evsite.runtime.events import SiteSignal
from evsite.site.topology import ROOT

router = APIRouter(prefix="/api/v1/load", tags=["load management"], responses=PROBLEM_RESPONSES)

MAX_OVERRIDE = timedelta(days=7)


class Policy(BaseModel):
    policy: str
    cycle_s: float
    safety_margin_a: float
    manual_limit: ManualLimitView | None
    last_cycle_s: float | None


class LimitRequest(Command):
    """A temporary cap on a node (default the service), in amperes per line."""

    limit_a: float = Field(ge=0, le=100_000, description="Amperes per line; 0 pauses every charger under the node.")
    node: str = Field(default=ROOT, min_length=1, max_length=48)
    duration_s: float | None = Field(default=3600, gt=0, le=MAX_OVERRIDE.total_seconds())
    until: Timestamp | None = Field(default=None, description="End of the override (instead of duration_s).")

    @model_validator(mode="after")
    def _one_end(self) -> LimitRequest:
        if self.until is not None:
            self.until = deps.aware(self.until)
            assert self.until is not None
            if self.until <= now():
                raise ValueError("until must be in the future")
            if self.until - now() > MAX_OVERRIDE:
                raise ValueError("an override lasts at most 7 days")
        return self

    def end(self) -> datetime:
        return self.until if self.until is not None else now() + timedelta(seconds=self.duration_s or 3600)


class Priority(Command):
    priority: int = Field(ge=0, le=9, description="Priority class; higher classes get a larger share.")


class ChargeRequest(Command):
    departure: Timestamp | None = None
    energy_wh: float | None = Field(default=None, gt=0, le=500_000)


class Applied(BaseModel):
    applied: bool = Field(description="False when no load manager is running to use it (kept for when one is).")


@router.get("/policy", dependencies=[auth.viewer], summary="Policy and settings of the load manager")
async def get_policy(request: Request) -> Policy:
    runtime, live = deps.runtime(request), deps.live(request)
    control = runtime.site.control
    return Policy(
        policy=runtime.control.policy if runtime.control else control.policy,
        cycle_s=control.cycle_s,
        safety_margin_a=control.safety_margin_a,
        manual_limit=ManualLimitView.of(live.manual_limit),
        last_cycle_s=runtime.control.cycle_time_s() if runtime.control else None,
    )


@router.put("/limit", summary="Set a temporary manual limit on a node (operator)")
async def set_limit(request: Request, body: LimitRequest, who: Principal = auth.operator) -> ManualLimitView:
    live = deps.live(request)
    node = next((n for n in live.nodes if n.id == body.node), None)
    if node is None:
        raise ApiProblem(422, "Invalid request", f"node {body.node!r} is not in the site", "validation")
    if body.limit_a > node.limit_a:
        raise ApiProblem(
            422,
            "Invalid request",
            f"{body.limit_a:g} A is above the {node.id} design limit of {node.limit_a:g} A; "
            "a manual limit can only lower it",
            "validation",
        )
    until = body.end()
    live.manual_limit = ManualLimit(node=node.id, limit_a=body.limit_a, until=until, set_by=who.name)
    deps.runtime(request).bus.publish(
        SiteSignal(
            kind="manual_limit",
            node=node.id,
            current_a=dict.fromkeys(node.lines, body.limit_a),
            source=f"api:{who.name}",
            until=until,
        )
    )
    auth.note(request, node=node.id, limit_a=body.limit_a, until=until.isoformat())
    view = ManualLimitView.of(live.manual_limit)
    assert view is not None
    return view


@router.delete("/limit", status_code=204, summary="Clear the manual limit (operator)")
async def clear_limit(request: Request, who: Principal = auth.operator) -> None:
    live = deps.live(request)
    if live.manual_limit is None:
        raise not_found("a manual limit")
    node = live.manual_limit.node
    live.manual_limit = None
    deps.runtime(request).bus.publish(
        SiteSignal(kind="manual_limit", node=node, current_a={}, source=f"api:{who.name}", until=now())
    )
    auth.note(request, node=node, cleared=True)


@router.put(
    "/priorities/{charger}/{connector}", dependencies=[auth.operator], summary="Set a connector's priority class"
)
async def set_priority(request: Request, charger: ChargerId, connector: ConnectorId, body: Priority) -> Applied:
    deps.connector_or_404(request, charger, connector)
    deps.live(request).connectors[(charger, connector)].priority = body.priority
    planner = deps.runtime(request).planner
    if planner is not None:
        planner.set_priority(charger, connector, body.priority)
    auth.note(request, charger=charger, connector=connector, priority=body.priority)
    return Applied(applied=planner is not None)


@router.put(
    "/requests/{charger}/{connector}",
    dependencies=[auth.operator],
    summary="Departure time and energy wanted for the session on a connector",
)
async def set_request(
    request: Request, charger: ChargerId, connector: Annotated[int, Path(ge=1, le=8)], body: ChargeRequest
) -> Applied:
    deps.connector_or_404(request, charger, connector)
    live = deps.live(request).connectors[(charger, connector)]
    if live.transaction_id is None:
        raise ApiProblem(409, "No session", f"no session is running on {charger}/{connector}", "no-session")
    live.departure, live.energy_request_wh = deps.aware(body.departure), body.energy_wh
    planner = deps.runtime(request).planner
    if planner is not None:
        planner.set_request(charger, connector, live.departure, body.energy_wh)
    auth.note(request, charger=charger, connector=connector, departure=str(body.departure), energy_wh=body.energy_wh)
    return Applied(applied=planner is not None)
