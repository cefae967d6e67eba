"""Signals from outside the chargers: demand-response events (with opt-in/out), PV, building load; meters."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel

from evsite.api import auth, deps
from evsite.api.bodies import Command
from evsite.api.problems import PROBLEM_RESPONSES, ApiProblem, not_configured, not_found
from evsite.api.views import SignalView, site_state

router = APIRouter(prefix="/api/v1", tags=["signals and meters"], responses=PROBLEM_RESPONSES)


class DrEventView(BaseModel):
    event_id: str
    start: datetime
    end: datetime | None
    status: str
    opt: Literal["optIn", "optOut"]
    signal: str
    limit_a: float | None


class Signals(BaseModel):
    dr_configured: bool
    dr_active: bool
    dr_events: list[DrEventView]
    signals: list[SignalView]


class OptChoice(Command):
    opt: Literal["optIn", "optOut"]


class MeterView(BaseModel):
    id: str
    role: str
    measures: str
    accuracy: str
    last_at: datetime | None
    power_w: float | None
    energy_wh: float | None
    current_a: dict[str, float]


class Reading(BaseModel):
    at: datetime
    power_w: float | None
    energy_wh: float | None
    current_a: dict[str, float]
    voltage_v: dict[str, float]


@router.get("/signals", dependencies=[auth.viewer], summary="Demand response, PV surplus and building load")
async def get_signals(request: Request) -> Signals:
    runtime, live = deps.runtime(request), deps.live(request)
    events = runtime.demand_response.events() if runtime.demand_response else []
    state = site_state(live)
    return Signals(
        dr_configured=runtime.demand_response is not None,
        dr_active=state.dr_active,
        dr_events=[DrEventView(**vars(e)) for e in events],
        signals=state.signals,
    )


@router.put(
    "/signals/dr/{event_id}/opt",
    dependencies=[auth.operator],
    summary="Opt in to or out of a demand-response event (operator)",
)
async def set_opt(
    request: Request, event_id: Annotated[str, Path(min_length=1, max_length=128)], body: OptChoice
) -> DrEventView:
    dr = deps.runtime(request).demand_response
    if dr is None:
        raise not_configured("the OpenADR VEN")
    auth.note(request, event_id=event_id, opt=body.opt)
    if not any(e.event_id == event_id for e in dr.events()):
        raise not_found(f"demand-response event {event_id!r}")
    try:
        known = await dr.set_opt(event_id, body.opt)
    except TimeoutError:
        raise ApiProblem(504, "VTN timeout", "the VTN did not answer", "vtn-timeout") from None
    if not known:
        raise not_found(f"demand-response event {event_id!r}")
    event = next(e for e in dr.events() if e.event_id == event_id)
    return DrEventView(**vars(event))


@router.get("/meters", dependencies=[auth.viewer], summary="Meters of the site with their latest reading")
async def list_meters(request: Request) -> list[MeterView]:
    live = deps.live(request)
    out = []
    for meter in deps.runtime(request).site.meters:
        history = live.meter_samples.get(meter.id)
        last = history[-1] if history else None
        out.append(
            MeterView(
                id=meter.id, role=meter.role.value, measures=meter.measures, accuracy=meter.accuracy.value,
                last_at=last.at if last else None, power_w=last.power_w if last else None,
                energy_wh=last.energy_wh if last else None, current_a=dict(last.current_a) if last else {},
            )
        )  # fmt: skip
    return out


@router.get("/meters/{meter}/readings", dependencies=[auth.viewer], summary="Recent readings of a meter, newest last")
async def readings(
    request: Request,
    meter: Annotated[str, Path(min_length=1, max_length=48)],
    limit: Annotated[int, Query(ge=1, le=600)] = 120,
) -> list[Reading]:
    if all(m.id != meter for m in deps.runtime(request).site.meters):
        raise not_found(f"meter {meter!r}")
    history = list(deps.live(request).meter_samples.get(meter, ()))[-limit:]
    return [
        Reading(
            at=s.at, power_w=s.power_w, energy_wh=s.energy_wh, current_a=dict(s.current_a), voltage_v=dict(s.voltage_v)
        )
        for s in history
    ]
