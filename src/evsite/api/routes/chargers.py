"""Chargers and connectors: live status, setpoints and their history, configuration, operator actions."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Path, Request
from pydantic import BaseModel, Field

from evsite.api import auth, deps
from evsite.api.bodies import Command
from evsite.api.problems import PROBLEM_RESPONSES, ApiProblem, not_configured
from evsite.api.runtime import AvailabilityKind, ChargerActions, ResetKind, TriggerKind
from evsite.api.views import ChargerView, charger_views

router = APIRouter(prefix="/api/v1/chargers", tags=["chargers"], responses=PROBLEM_RESPONSES)

ChargerId = Annotated[str, Path(min_length=1, max_length=48, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")]
ConnectorId = Annotated[int, Path(ge=1, le=8)]


class SetpointChange(BaseModel):
    at: datetime
    limit_a: float
    accepted: bool
    detail: str


class ActionResult(BaseModel):
    charger: str
    action: str
    status: str = Field(description="The charger's answer (Accepted, Rejected, Scheduled, Unlocked, ...).")


class RemoteStart(Command):
    connector_id: int = Field(ge=1, le=8)
    id_tag: str = Field(min_length=1, max_length=20)


class RemoteStop(Command):
    transaction_id: int = Field(ge=0, le=2**31 - 1)


class Reset(Command):
    type: ResetKind = "Soft"


class Unlock(Command):
    connector_id: int = Field(ge=1, le=8)


class Availability(Command):
    connector_id: int = Field(ge=0, le=8, description="0 means the whole charger.")
    type: AvailabilityKind


class Trigger(Command):
    message: TriggerKind
    connector_id: int | None = Field(default=None, ge=0, le=8)


class ConfigurationChange(Command):
    key: str = Field(min_length=1, max_length=50)
    value: str = Field(max_length=500)


@router.get("", dependencies=[auth.viewer], summary="Every charger with its connectors' live state")
async def list_chargers(request: Request) -> list[ChargerView]:
    return charger_views(deps.live(request))


@router.get("/{charger}", dependencies=[auth.viewer], summary="One charger")
async def get_charger(request: Request, charger: ChargerId) -> ChargerView:
    deps.evse_or_404(request, charger)
    return charger_views(deps.live(request), only=charger)[0]


@router.get(
    "/{charger}/connectors/{connector}/setpoints",
    dependencies=[auth.viewer],
    summary="Recent current limits sent to a connector and whether the charger accepted them",
)
async def setpoint_history(request: Request, charger: ChargerId, connector: ConnectorId) -> list[SetpointChange]:
    deps.connector_or_404(request, charger, connector)
    live = deps.live(request).connectors[(charger, connector)]
    return [SetpointChange(**entry) for entry in live.setpoints]


def _actions(request: Request, charger: str) -> ChargerActions:
    deps.evse_or_404(request, charger)
    actions = deps.runtime(request).actions
    if actions is None:
        raise not_configured("the OCPP server")
    if not deps.live(request).connected.get(charger, False):
        raise ApiProblem(409, "Charger offline", f"charger {charger!r} is not connected", "charger-offline")
    return actions


async def _answer(request: Request, charger: str, action: str, call: Awaitable[object]) -> ActionResult:
    """Await the charger's answer; a charger that times out or fails is a gateway problem, not ours."""
    try:
        status = await call
    except TimeoutError:
        raise ApiProblem(
            504, "Charger timeout", f"charger {charger!r} did not answer {action}", "charger-timeout"
        ) from None
    except ApiProblem:
        raise
    except Exception as exc:
        raise ApiProblem(502, "Charger error", f"{action} to {charger!r} failed: {exc}", "charger-error") from None
    auth.note(request, charger=charger, action=action, result=str(status))
    return ActionResult(charger=charger, action=action, status=str(status))


@router.get(
    "/{charger}/configuration", dependencies=[auth.operator], summary="Configuration keys read from the charger"
)
async def get_configuration(request: Request, charger: ChargerId) -> dict[str, str | None]:
    actions = _actions(request, charger)
    try:
        return dict(await actions.get_configuration(charger))
    except TimeoutError:
        raise ApiProblem(504, "Charger timeout", f"charger {charger!r} did not answer", "charger-timeout") from None


@router.put("/{charger}/configuration", dependencies=[auth.admin], summary="Change one configuration key")
async def change_configuration(request: Request, charger: ChargerId, body: ConfigurationChange) -> ActionResult:
    auth.note(request, key=body.key, value=body.value)
    return await _answer(
        request,
        charger,
        "ChangeConfiguration",
        _actions(request, charger).change_configuration(charger, body.key, body.value),
    )


@router.post("/{charger}/remote-start", dependencies=[auth.operator], summary="Start a session remotely")
async def remote_start(request: Request, charger: ChargerId, body: RemoteStart) -> ActionResult:
    deps.connector_or_404(request, charger, body.connector_id)
    auth.note(request, connector_id=body.connector_id, id_tag=body.id_tag)
    return await _answer(
        request,
        charger,
        "RemoteStartTransaction",
        _actions(request, charger).remote_start(charger, body.connector_id, body.id_tag),
    )


@router.post("/{charger}/remote-stop", dependencies=[auth.operator], summary="Stop a session remotely")
async def remote_stop(request: Request, charger: ChargerId, body: RemoteStop) -> ActionResult:
    auth.note(request, transaction_id=body.transaction_id)
    return await _answer(
        request, charger, "RemoteStopTransaction", _actions(request, charger).remote_stop(charger, body.transaction_id)
    )


@router.post("/{charger}/reset", dependencies=[auth.operator], summary="Reset the charger (Soft or Hard)")
async def reset(request: Request, charger: ChargerId, body: Annotated[Reset, Body()]) -> ActionResult:
    auth.note(request, type=body.type)
    return await _answer(request, charger, "Reset", _actions(request, charger).reset(charger, body.type))


@router.post("/{charger}/unlock", dependencies=[auth.operator], summary="Unlock a connector")
async def unlock(request: Request, charger: ChargerId, body: Unlock) -> ActionResult:
    deps.connector_or_404(request, charger, body.connector_id)
    auth.note(request, connector_id=body.connector_id)
    return await _answer(
        request, charger, "UnlockConnector", _actions(request, charger).unlock(charger, body.connector_id)
    )


@router.post("/{charger}/availability", dependencies=[auth.operator], summary="Make a connector (in)operative")
async def availability(request: Request, charger: ChargerId, body: Availability) -> ActionResult:
    if body.connector_id:
        deps.connector_or_404(request, charger, body.connector_id)
    auth.note(request, connector_id=body.connector_id, type=body.type)
    return await _answer(
        request,
        charger,
        "ChangeAvailability",
        _actions(request, charger).change_availability(charger, body.connector_id, body.type),
    )


@router.post("/{charger}/trigger", dependencies=[auth.operator], summary="Ask the charger to send a message now")
async def trigger(request: Request, charger: ChargerId, body: Trigger) -> ActionResult:
    if body.connector_id:
        deps.connector_or_404(request, charger, body.connector_id)
    auth.note(request, message=body.message, connector_id=body.connector_id)
    return await _answer(
        request,
        charger,
        "TriggerMessage",
        _actions(request, charger).trigger_message(charger, body.message, body.connector_id),
    )
