"""Operations: events, alerts, billing statements, API tokens and the audit log."""

from __future__ import annotations

import inspect
import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from evsite.api import auth, deps
from evsite.api.bodies import Command
from evsite.api.problems import PROBLEM_RESPONSES, ApiProblem, not_configured, not_found
from evsite.api.tokens import Role, TokenNameTaken

router = APIRouter(prefix="/api/v1", tags=["operations"], responses=PROBLEM_RESPONSES)

MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class AlertView(BaseModel):
    key: str
    kind: str
    severity: str
    message: str
    since: datetime
    active: bool
    cleared_at: datetime | None


class TokenCreate(Command):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@\-]*$")
    role: Role = Field(strict=False)


class TokenCreated(BaseModel):
    name: str
    role: Role
    token: str = Field(description="Shown once; only its hash is stored.")


class TokenView(BaseModel):
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None


class AuditView(BaseModel):
    at: datetime
    actor: str
    role: str | None
    method: str
    path: str
    status: int
    detail: str | None


@router.get("/events", dependencies=[auth.viewer], summary="Recent events (connections, status, sessions, signals)")
async def events(
    request: Request,
    after: Annotated[int, Query(ge=0, description="Only events with a larger sequence number.")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    return deps.live(request).events_since(after)[-limit:]


@router.get("/alerts", dependencies=[auth.viewer], summary="Alerts, active first")
async def alerts(request: Request, active: bool | None = None) -> list[AlertView]:
    rows = [a for a in deps.live(request).alerts.values() if active is None or a.active == active]
    rows.sort(key=lambda a: (not a.active, a.since), reverse=False)
    return [AlertView(**vars(a)) for a in rows]


@router.get(
    "/billing/statements",
    dependencies=[auth.viewer],
    summary="Billing statements for a month (YYYY-MM)",
    responses={200: {"content": {"application/json": {}, "text/html": {}}}},
)
async def statements(
    request: Request, month: Annotated[str, Query(pattern=MONTH.pattern, description="e.g. 2026-10")]
) -> Response:
    produce = deps.runtime(request).statements
    if produce is None:
        raise not_configured("billing (evsite.metering)")
    result = produce(deps.runtime(request).site, month)
    if inspect.isawaitable(result):
        result = await result
    return JSONResponse(result)


@router.get(
    "/cluster", dependencies=[auth.viewer], summary="Cluster: nodes, site leaders and epochs, chargers per node"
)
async def cluster(request: Request) -> dict[str, Any]:
    runtime = deps.runtime(request)
    if runtime.cluster_status is None:
        raise not_configured("the cluster (evsite serve --cluster)")
    status = await runtime.cluster_status()
    if runtime.cluster_metrics is not None:
        status["this_node"] = runtime.cluster_metrics()
    return status


@router.get("/tokens", dependencies=[auth.admin], summary="API tokens (admin)")
async def list_tokens(request: Request) -> list[TokenView]:
    rows = await auth.token_store(request).tokens()
    return [TokenView(name=r.name, role=Role(r.role), created_at=r.created_at, revoked_at=r.revoked_at) for r in rows]


@router.post("/tokens", status_code=201, dependencies=[auth.admin], summary="Create an API token (admin)")
async def create_token(request: Request, body: TokenCreate) -> TokenCreated:
    auth.note(request, name=body.name, role=body.role.value)
    try:
        token = await auth.token_store(request).create(body.name, body.role)
    except TokenNameTaken:
        raise ApiProblem(409, "Conflict", f"a token named {body.name!r} exists", "conflict") from None
    return TokenCreated(name=body.name, role=body.role, token=token)


@router.delete("/tokens/{name}", status_code=204, dependencies=[auth.admin], summary="Revoke an API token (admin)")
async def revoke_token(request: Request, name: Annotated[str, Path(min_length=1, max_length=64)]) -> None:
    auth.note(request, name=name)
    if not await auth.token_store(request).revoke(name):
        raise not_found(f"active token {name!r}")


@router.get("/audit", dependencies=[auth.admin], summary="Audit log of mutating calls, newest first (admin)")
async def audit(
    request: Request,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditView]:
    rows = await auth.token_store(request).audit_log(limit, actor)
    return [
        AuditView(at=r.at, actor=r.actor, role=r.role, method=r.method, path=r.path, status=r.status, detail=r.detail)
        for r in rows
    ]
